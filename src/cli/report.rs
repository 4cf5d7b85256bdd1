//! `logward report PATH... -o FILE`: the HTML report alone. It is `scan` with the page as
//! its output: the same single pass and the same detection, but it writes nothing to the
//! store (a page made of old logs must not ban anyone) and counts every line, including
//! those an earlier scan recorded; its ban column shows the bans the store already holds.
//! `scan --report FILE` makes the same page while it scans.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::detection::{DetectArgs, RuleInputArgs};
use super::scan::{ScanArgs, Settings};
use super::{Config, Outcome};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Log files, directories, quoted glob patterns, or - for standard input (as `scan`).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,

    /// Where the page goes (- for standard output). It holds client addresses unless
    /// --mask: it is written readable by its owner only.
    #[arg(long, short = 'o', value_name = "FILE", required = true)]
    pub output: PathBuf,

    /// Truncate every address on the page to /24 (IPv4) and /48 (IPv6), as `anonymize`
    /// does, for a page sent to a customer.
    #[arg(long, overrides_with = "no_mask")]
    pub mask: bool,

    /// Undoes --mask (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "mask")]
    pub no_mask: bool,

    /// Log format, as `scan --format`. [default: auto]
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// Worker threads; 0 uses every core. [default: 0]
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,

    /// Leave out detection: no flagged sources on the page.
    #[arg(long, overrides_with = "detect_on")]
    pub no_detect: bool,

    /// Undoes --no-detect (from the config file, or earlier on the line).
    #[arg(long = "detect", hide = true, overrides_with = "no_detect")]
    pub detect_on: bool,

    #[command(flatten)]
    pub walk: super::WalkArgs,

    #[command(flatten)]
    pub input: RuleInputArgs,

    /// The store whose allowlist applies and whose active bans the page shows (never
    /// written). Default as `scan --store`.
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

impl ReportArgs {
    /// The scan that makes this page: detection without store writes, every line counted.
    fn into_scan(self) -> ScanArgs {
        ScanArgs {
            paths: self.paths,
            format: self.format,
            output: None,
            threads: self.threads,
            check: false,
            no_check: true,
            walk: self.walk,
            no_detect: self.no_detect,
            detect_on: self.detect_on,
            fail_on_flag: false,
            no_fail_on_flag: true,
            metrics_file: None,
            report: Some(self.output),
            mask: self.mask,
            no_mask: self.no_mask,
            detect: DetectArgs {
                input: self.input,
                store: self.store,
                no_store: true,
                use_store: false,
                rescan: true,
                no_rescan: false,
                ban: None,
                max_ban: None,
                ban_window: None,
            },
            chunk_size: 16 << 20,
        }
    }
}

pub fn run(args: ReportArgs, config: &Config) -> Result<Outcome> {
    let mut settings = Settings::new(args.into_scan(), config)?;
    settings.page_only = true;
    let mut counts = logward::metrics::RunCounts::default();
    super::scan::scan(settings, config, &mut counts)
}
