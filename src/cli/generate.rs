//! `logward generate` (hidden): writes a seeded, realistic access log with labelled attacks,
//! for benchmarks, tests and trying logward out. The same options as `examples/genlog.rs`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use logward::generate::{Format, GenConfig, Profile, generate, parse_start};

use super::Outcome;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 10_000)]
    pub lines: u64,
    /// combined, common, vcombined (Apache's vhost_combined), main, json or custom.
    #[arg(long, default_value = "combined")]
    pub format: String,
    /// First request: RFC 3339, a date, or Unix seconds.
    #[arg(long, default_value = "2026-11-15T00:00:00Z")]
    pub start: String,
    /// Days the traffic spans (default: 7 for the week profile, 1 for the others).
    #[arg(long)]
    pub span_days: Option<i64>,
    /// The shape of the normal traffic: week (a quiet week), busy-day, steady (API pollers
    /// asking every 10 to 60 s for hours), crawlers (walking distinct pages every 1 to 4 s),
    /// nat (browsers behind shared gateway addresses) or scanners (slow 404s).
    #[arg(long, default_value = "week")]
    pub profile: String,
    /// Inject labelled attacks.
    #[arg(long)]
    pub attacks: bool,
    /// Also inject this many slow exploiters (at most 30, labelled exploit-slow), each
    /// sending a payload every 0.5 to 40 s for a few minutes, and as many decoy visitors.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub slow_exploiters: u32,
    /// Write the attackers as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: GenerateArgs) -> Result<Outcome> {
    let format: Format = args.format.parse().context("--format")?;
    let profile: Profile = args.profile.parse().context("--profile")?;
    let span_days = args.span_days.unwrap_or(profile.default_span_days());
    let cfg = GenConfig {
        seed: args.seed,
        lines: args.lines,
        start: parse_start(&args.start).map_err(|e| anyhow!("--start: {e}"))?,
        span_secs: span_days * 86_400,
        profile,
        format,
        attacks: args.attacks,
        slow_exploiters: args.slow_exploiters,
        ..GenConfig::default()
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let truth = generate(&cfg, &mut out)?;
    out.flush()?;
    if let Some(p) = &args.truth {
        std::fs::write(p, serde_json::to_vec_pretty(&truth)?)
            .with_context(|| format!("{}: cannot write", p.display()))?;
    }
    Ok(Outcome::Success)
}
