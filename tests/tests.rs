//! Integration tests: one binary that runs the real `logward` executable in fresh temporary
//! directories and checks exit codes, output and the files on disk.

mod detect;
mod scan;
mod util;
mod watch;
