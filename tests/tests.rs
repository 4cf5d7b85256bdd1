//! Integration tests: one binary that runs the real `logward` executable in fresh temporary
//! directories and checks exit codes, output and the files on disk.

mod allow;
mod anonymize;
mod daily;
mod detect;
mod erase;
mod fleet;
mod hostile;
mod layers;
mod metrics;
mod packaging;
mod proxies;
mod readme;
mod report;
mod samples;
mod scan;
mod search;
mod staff;
mod util;
mod watch;
mod wrappers;
