//! `--metrics-file FILE` (config key `metrics_file`) of `scan`, `anonymize`, `search` and
//! `flagged --prune`: the setting, checked before the run starts, and the write at its
//! end, whatever the outcome, into the shared node_exporter textfile
//! (`logward::metrics::write_textfile`). `watch --metrics-listen` is `watch`'s.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use logward::error::chain;
use logward::metrics::{Ending, RunCounts};

use super::{Config, Outcome};

/// Where one run writes its metrics, under which `command` label, and since when it runs.
pub struct MetricsFile {
    path: PathBuf,
    command: &'static str,
    started: Instant,
}

impl MetricsFile {
    /// The flag, else the config's `metrics_file`, else none. The file's directory must
    /// exist now: a wrong path fails before the work, not after.
    pub fn setting(
        flag: Option<PathBuf>,
        config: &Config,
        command: &'static str,
    ) -> Result<Option<MetricsFile>> {
        let Some(path) = flag.or_else(|| config.metrics_file.clone()) else {
            return Ok(None);
        };
        logward::metrics::check_textfile_dir(&path)?;
        Ok(Some(MetricsFile {
            path,
            command,
            started: Instant::now(),
        }))
    }
}

/// Ends a run that may write metrics: writes `counts` with the run's duration and whether
/// it `succeeded`, then returns the run's own result. A metrics file that cannot be written
/// is reported on stderr and makes the exit status 2 (an unwatched run is a problem too);
/// a run that failed keeps its own error.
pub fn finish(
    file: Option<MetricsFile>,
    result: Result<Outcome>,
    mut counts: RunCounts,
    succeeded: impl Fn(Outcome) -> bool,
) -> Result<Outcome> {
    let Some(file) = file else {
        return result;
    };
    counts.duration = Some(file.started.elapsed().as_secs_f64());
    let ending = Ending {
        at: logward::timefmt::unix_now(),
        // A closed pipe (`| head`) ends a run with success, as main says.
        success: match &result {
            Ok(o) => succeeded(*o),
            Err(e) => super::broken_pipe(e),
        },
    };
    let written = logward::metrics::write_textfile(
        &file.path,
        file.command,
        counts.exposition(file.command),
        ending,
    );
    match (written, result) {
        (Ok(warning), result) => {
            if let Some(w) = warning {
                eprintln!("logward: warning: {w}");
            }
            result
        }
        (Err(e), Ok(_)) => {
            eprintln!("logward: {}", chain(&e));
            Ok(Outcome::Error)
        }
        (Err(e), Err(run)) => {
            eprintln!("logward: {}", chain(&e));
            Err(run)
        }
    }
}
