//! Abuse detection: rules as leaky buckets on log time, keyed by source, evaluated by
//! per-worker collectors that merge into the list of flagged sources.
//!
//! - `rule`: what a rule is (filter, grouping, thresholds) and the `logward rules` table;
//! - `builtin`: the built-in rule set and its pattern lists (`patterns/*.txt`);
//! - `config`: the TOML rules file;
//! - `matcher`: rules compiled for per-line evaluation;
//! - `compile`: a rule set turned into the matcher's tables and automata;
//! - `verdict_cache`: the matcher's caches of what a target or a user agent matches;
//! - `patterns`: the rules' substrings as one automaton, every occurrence reported;
//! - `bucket`: leaky-bucket arithmetic;
//! - `engine`: collectors, merging, and the replay that flags sources;
//! - `journal`: the engine's events, encoded a few bytes each and written out when large;
//! - `busiest`: the busiest-window tally that rules sources out before the replay;
//! - `samples`: flagged sources' sample lines, copied or read back;
//! - `live`: the streaming engine `watch` feeds line by line;
//! - `spill`: temporary files for events that outgrow memory;
//! - `allowlist`: networks never flagged;
//! - `crawlers`: search engines' published ranges, never banned for volume, and their fakes;
//! - `duration`: rule durations (`500ms`, `10s`, `5m`) read and written;
//! - `error`: what goes wrong loading or compiling rules.
//!
//! Records without a client address or a time are not counted: detection runs on log time,
//! never on the wall clock.

pub mod allowlist;
pub mod bucket;
pub mod builtin;
mod busiest;
mod compile;
pub mod config;
pub mod crawlers;
pub mod duration;
pub mod engine;
pub mod error;
mod journal;
pub mod live;
pub mod matcher;
mod patterns;
pub mod rule;
mod samples;
pub mod spill;
mod verdict_cache;

pub use allowlist::Allowlist;
pub use builtin::builtin_rules;
pub use config::{load_config_rules, load_rules_file, load_rules_str};
pub use duration::{format_duration, parse_duration};
pub use engine::{
    Collector, EPISODE_GAP_MS, Flagged, NearMiss, NoReadBack, Overflow, ReadBack, SampleLine,
};
pub use error::RuleError;
pub use matcher::CompiledRules;
pub use rule::{Field, FieldMatch, Filter, Grouping, Rule, RuleSet};
