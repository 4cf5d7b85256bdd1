//! The command line: clap definitions (what the user typed), turned into validated settings
//! with the configuration file, and one module per subcommand that calls the library and
//! prints the result. Nothing else in logward knows about options: this module belongs to
//! the binary (`main.rs` declares it), not to the library.

pub mod allow;
pub mod anonymize;
pub mod audit;
pub mod config;
pub mod detection;
pub mod docs;
pub mod flagged;
pub mod fleet;
#[cfg(feature = "generator")]
pub mod generate;
pub mod keygen;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod rules;
pub mod scan;
pub mod search;
pub mod state;
pub mod watch;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

pub use config::Config;
pub use logward::plural::count;

/// How a command prints its report (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputKind {
    Text,
    Json,
    /// One JSON object per line, for Elasticsearch, Splunk or `jq -c`.
    Ndjson,
}

/// How a run ended, as the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked.
    Success = 0,
    /// Something was found, and a flag asked to say so (`--fail-on-flag`).
    Found = 1,
    /// An error: a file could not be read or rewritten, or the run could not start.
    Error = 2,
}

/// logward: find abusive sources in web access logs and anonymize client addresses past the
/// retention window, in one fast pass over plain and gzip logs.
#[derive(Debug, Parser)]
#[command(name = "logward", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML). Default: $LOGWARD_CONFIG, else /etc/logward/logward.toml
    /// when present. Every setting has a key of the same name; the command line wins.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A proxy or load balancer whose X-Forwarded-For word is trusted (an address or a
    /// CIDR network; repeatable; config key trusted_proxies). Where the client is taken
    /// from a list, it is the rightmost address that is not a trusted proxy; where a
    /// format logs the peer and X-Forwarded-For, the peer unless it is a trusted proxy.
    #[arg(long = "trusted-proxy", global = true, value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,

    /// The longest line read whole (bytes, or with KiB/MiB): a longer line is counted as
    /// malformed ("line too long") and skipped while reading, and `anonymize` copies it
    /// through unchanged. Bounds memory on hostile logs. [default: 1MiB]
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_line: Option<String>,

    #[command(flatten)]
    pub fleet: fleet::FleetOptions,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read access logs and summarize them: formats, lines, malformed lines, time range,
    /// top sources, status codes; flag abusive sources and record them in the store.
    Scan(scan::ScanArgs),

    /// Write one self-contained HTML page about the logs: requests over time, flagged
    /// sources with sample lines, top sources, paths, user agents and status codes.
    Report(report::ReportArgs),

    /// Follow live logs like tail -F, flag sources as they overflow, and act on them.
    Watch(watch::WatchArgs),

    /// Query the flagged-source store; export it for nftables, ipset or CrowdSec.
    Flagged(flagged::FlaggedArgs),

    /// List the detection rules with their thresholds (built-ins and your changes).
    Rules(rules::RulesArgs),

    /// Mask client addresses in rotated logs past the retention window, in place.
    Anonymize(anonymize::AnonymizeArgs),

    /// Write a new random key for `anonymize --mode pseudonymize`.
    Keygen(keygen::KeygenArgs),

    /// End the bans of addresses or networks (a false positive), keeping their history:
    /// `logward flagged --unban` with the addresses given. `logward allow add` also keeps
    /// them from being flagged again.
    Unban(flagged::UnbanArgs),

    /// Keep addresses or networks from being flagged, for good (a false positive), each
    /// with a note saying why: `allow add`, `allow list`, `allow remove`.
    Allow(allow::AllowArgs),

    /// Query the audit log: which entries concern an address (`audit verify --source IP`).
    Audit(audit::AuditArgs),

    /// Print the lines about some addresses or ranges, from plain and gzip logs.
    Search(search::SearchArgs),

    /// Write the manual pages (logward(1), logward-scan(1)...) into a directory.
    Man(docs::ManArgs),

    /// Print a completion script for bash, zsh, fish, elvish or powershell.
    Completions(docs::CompletionsArgs),

    /// Share flags, bans and erasure requests with other servers through PostgreSQL:
    /// `fleet init` creates the schema.
    Fleet(fleet::FleetArgs),

    /// Write a seeded sample access log with labelled attacks.
    #[cfg(feature = "generator")]
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// The run ended on a closed pipe (`logward ... | head`): a success, not an error.
pub fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Parses the command line, runs the command, and returns its outcome.
pub fn run() -> Result<Outcome> {
    let cli = Cli::parse();
    // The pages and completions describe the options, whatever the configuration says.
    let command = match cli.command {
        Command::Man(args) => return docs::man(args),
        Command::Completions(args) => return docs::completions(args),
        command => command,
    };
    let mut config = Config::load(cli.config.as_deref())?;
    cli.fleet.apply(&mut config);
    let proxies = if cli.trusted_proxies.is_empty() {
        config.trusted_proxies.clone().unwrap_or_default()
    } else {
        cli.trusted_proxies.clone()
    };
    let mut nets = Vec::with_capacity(proxies.len());
    for text in &proxies {
        match detection::parse_net(text) {
            Some(net) => nets.push(net),
            None => anyhow::bail!(
                "--trusted-proxy: {text:?} is not an address or a CIDR network such as 10.0.0.0/8"
            ),
        }
    }
    logward::format::addr::set_trusted_proxies(nets);
    if let Some(text) = cli.max_line.as_deref().or(config.max_line.as_deref()) {
        let (lo, hi) = logward::input::read::MAX_LINE_RANGE;
        match parse_size(text) {
            Some(n) if (lo..=hi).contains(&n) => logward::input::read::set_max_line(n),
            _ => anyhow::bail!(
                "--max-line: {text:?} is not a size from 4KiB to 1GiB, such as 1MiB or 262144"
            ),
        }
    }
    match command {
        Command::Scan(args) => scan::run(args, &config),
        Command::Report(args) => report::run(args, &config),
        Command::Watch(args) => watch::run(args, &config),
        // The fleet's side of flagged and anonymize lives with the other fleet commands.
        Command::Flagged(args) if args.fleet => {
            let now = flagged::now(args.now.as_deref())?;
            fleet::flagged(&args, &config, now)
        }
        Command::Flagged(args) => flagged::run(args, &config),
        Command::Rules(args) => rules::run(args, &config),
        #[cfg(feature = "generator")]
        Command::Generate(args) => generate::run(args),
        Command::Anonymize(args) if args.fleet => {
            let ticket = args.ticket.as_deref().unwrap_or_default();
            fleet::request_erasure(&args.sources, ticket, &config)
        }
        Command::Anonymize(args) => anonymize::run(args, &config),
        Command::Keygen(args) => keygen::run(args),
        Command::Audit(args) => audit::run(args, &config),
        Command::Unban(args) => flagged::unban(args, &config),
        Command::Allow(args) => allow::run(args, &config),
        Command::Search(args) => search::run(args, &config),
        Command::Man(args) => docs::man(args),
        Command::Completions(args) => docs::completions(args),
        Command::Fleet(args) => fleet::run(args, &config),
    }
}

/// A switch's value: the command line's last word on it (the switch, or its hidden
/// negation, which clap keeps from both being set), else the config key, else off. The
/// negation lets the command line undo a switch the config file turns on.
pub fn switch(on: bool, off: bool, config: Option<bool>) -> bool {
    if on {
        true
    } else if off {
        false
    } else {
        config.unwrap_or(false)
    }
}

/// The `--format` setting: the flag, else the config's `format`, else `auto`.
pub fn format_setting(
    flag: Option<String>,
    config: &Config,
) -> Result<logward::format::FormatSpec> {
    let text = flag
        .or_else(|| config.format.clone())
        .unwrap_or_else(|| "auto".into());
    logward::format::FormatSpec::parse(&text).context("--format")
}

/// The `--output` setting: the flag, else the config's `output`, else text.
pub fn output_setting(flag: Option<scan::OutputKind>, config: &Config) -> Result<scan::OutputKind> {
    match (flag, config.output.as_deref()) {
        (Some(o), _) => Ok(o),
        (None, Some("json")) => Ok(scan::OutputKind::Json),
        (None, Some("text") | None) => Ok(scan::OutputKind::Text),
        (None, Some(other)) => {
            anyhow::bail!("config key output: unknown value {other:?} (text or json)")
        }
    }
}

/// How a command that reads logs walks its paths and shows its progress: shared by
/// `scan`, `anonymize` and `report`.
#[derive(Debug, clap::Args, Clone, Copy, Default)]
pub struct WalkArgs {
    /// Also list the files a directory walk skipped.
    #[arg(long, short = 'v', overrides_with = "no_verbose")]
    pub verbose: bool,

    /// Undoes --verbose (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "verbose")]
    pub no_verbose: bool,

    /// A path that does not exist, or a pattern that matches nothing, is noted and the run
    /// goes on with exit 0, as logrotate's `missingok`: for shared units and hooks that
    /// list the directories of servers a host may not have.
    #[arg(long, overrides_with = "no_missing_ok")]
    pub missing_ok: bool,

    /// Undoes --missing-ok (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "missing_ok")]
    pub no_missing_ok: bool,

    /// Never draw the progress line, even on a terminal.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,

    /// Undoes --no-progress (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "no_progress")]
    pub progress: bool,
}

impl WalkArgs {
    /// `--verbose`, else the config's `verbose`.
    pub fn verbose(&self, config: &Config) -> bool {
        switch(self.verbose, self.no_verbose, config.verbose)
    }

    /// `--missing-ok`, else the config's `missing_ok`.
    pub fn missing_ok(&self, config: &Config) -> bool {
        switch(self.missing_ok, self.no_missing_ok, config.missing_ok)
    }

    /// Whether the progress line may be drawn: not with `--no-progress` or the config's
    /// `no_progress`.
    pub fn progress(&self, config: &Config) -> bool {
        !switch(self.no_progress, self.progress, config.no_progress)
    }
}

/// Says what discovery left out, the same way for every command that reads logs: missing
/// paths become errors unless `missing_ok` (then a note with `verbose`), errors and
/// refused entries always, skipped names with `verbose`.
pub fn report_discovery(found: &mut logward::input::Discovered, missing_ok: bool, verbose: bool) {
    for (arg, reason) in found.settle_missing(missing_ok) {
        if verbose {
            eprintln!("logward: note: {arg}: {reason} (--missing-ok: not an error)");
        }
    }
    for (arg, reason) in &found.errors {
        eprintln!("logward: {arg}: {reason}");
    }
    for (path, reason) in &found.refused {
        eprintln!(
            "logward: warning: {}: {reason}",
            logward::escape::path(path)
        );
    }
    if verbose {
        for p in &found.skipped {
            eprintln!(
                "logward: skipped (not an access log name): {}",
                logward::escape::path(p)
            );
        }
    }
}

/// A size in bytes: `262144`, `256KiB`, `1MiB`, `1GiB` (also `K`, `M`, `G`, `KB`...).
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: usize = t[..digits].parse().ok()?;
    let unit = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// Runs `f` on a rayon pool of `threads` workers (0: one per core).
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start worker threads")?;
    Ok(pool.install(f))
}
