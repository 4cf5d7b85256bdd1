//! Where `watch` stopped reading, kept across restarts: `positions.json` in the state
//! directory (one [`Position`] per followed file), and the optional line counts per file
//! (`--stats-file`). Both are replaced atomically by `rewrite::write_small_file`; the
//! positions are saved after every round that read lines, and synced to disk only every few
//! seconds and at the end (a crash reads again at most the lines since the last sync).

use std::path::Path;

use serde_json::json;

use super::Log;
use crate::input::follow::{Follower, Position};

#[derive(serde::Serialize, serde::Deserialize)]
struct Positions {
    version: u32,
    files: Vec<Position>,
}

/// The positions saved in `path`: none when it does not exist, or (with a warning) when it
/// cannot be read as positions.
pub(super) fn load(path: &Path, log: &Log) -> Vec<Position> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Positions>(&bytes) {
            Ok(p) => p.files,
            Err(e) => {
                log(&format!(
                    "warning: {}: unreadable ({e}); starting without positions",
                    path.display()
                ));
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    }
}

/// Saves the follower's positions in `path` (synced to disk when `sync`), and its line
/// counts in `stats` when given. A failure is logged: the watch goes on.
pub(super) fn save(follower: &Follower, path: &Path, stats: Option<&Path>, sync: bool, log: &Log) {
    let positions = Positions {
        version: 1,
        files: follower.positions(),
    };
    let bytes = serde_json::to_vec_pretty(&positions).unwrap_or_default();
    if let Err(e) = crate::rewrite::write_small_file(path, &bytes, sync) {
        log(&format!("error: {}: {e}", path.display()));
    }
    if let Some(stats) = stats {
        let (files, closed) = follower.line_counts();
        let total: u64 = files.iter().map(|(_, n)| n).sum::<u64>() + closed;
        let value = json!({
            "schema_version": crate::store::export::JSON_SCHEMA_VERSION,
            "lines": total,
            "closed_lines": closed,
            "files": files.iter().map(|(p, n)| json!({"path": p, "lines": n})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        if let Err(e) = crate::rewrite::write_small_file(stats, &bytes, false) {
            log(&format!("error: {}: {e}", stats.display()));
        }
    }
}
