//! The library side of `logward watch`: what it does with a new flag besides storing it
//! (`actions`: a command per flag, nftables sets kept in sync through `nft`'s batches).
//! It prints nothing: what happens is said through a [`Log`], which the command line
//! prints on stderr and tests collect.

pub mod actions;
pub mod nft;

use std::sync::Arc;

/// Where the watch says what happens: one line per event, without the program's name
/// (`flagged 192.0.2.7 by http-flood ...`, `warning: ...`, `error: ...`). Called from
/// the reading thread and from the threads that record flags and run actions.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;
