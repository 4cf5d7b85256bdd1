//! Writes a generated access log (and optionally its ground truth) with
//! `logward::generate`: `cargo run --release --example genlog -- --seed 1 --lines 1000000
//! --format combined --attacks -o access.log`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::Parser;
use flate2::Compression;
use flate2::write::GzEncoder;
use logward::generate::{Format, GenConfig, Profile, generate, parse_start};

#[derive(Parser)]
#[command(about = "Generate a seeded web access log")]
struct Args {
    #[arg(long, default_value_t = GenConfig::default().seed)]
    seed: u64,
    #[arg(long, default_value_t = GenConfig::default().lines)]
    lines: u64,
    /// combined, common, vhost_combined, main, json or custom.
    #[arg(long, default_value = "combined")]
    format: Format,
    /// First request: 2026-11-15T00:00:00Z, 2026-11-15 or unix seconds.
    #[arg(long, value_parser = parse_start, default_value = "2026-11-15T00:00:00Z")]
    start: i64,
    /// Days the traffic spans (default: 7 for the week profile, 1 for the others).
    #[arg(long)]
    span_days: Option<f64>,
    /// The shape of the normal traffic: week, busy-day, steady, crawlers, nat or scanners
    /// (see `logward generate --help`).
    #[arg(long, default_value = "week")]
    profile: Profile,
    /// Timestamp offset in minutes east of UTC.
    #[arg(long, default_value_t = GenConfig::default().utc_offset_minutes, allow_hyphen_values = true)]
    utc_offset: i32,
    #[arg(long, default_value_t = GenConfig::default().ipv6_share)]
    ipv6_share: f64,
    #[arg(long, default_value_t = GenConfig::default().malformed_per_million)]
    malformed_per_million: u32,
    /// Inject labelled attacks.
    #[arg(long)]
    attacks: bool,
    /// Also inject this many slow exploiters (at most 30) and as many decoy visitors.
    #[arg(long, default_value_t = 0)]
    slow_exploiters: u32,
    /// Gzip the output.
    #[arg(long)]
    gzip: bool,
    /// Write the ground truth as JSON here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Print the format's Apache `LogFormat` / nginx `log_format` string and exit.
    #[arg(long)]
    print_format: bool,
    /// Output file; stdout when absent.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.print_format {
        println!("{}", a.format.log_format());
        return Ok(());
    }
    let cfg = GenConfig {
        seed: a.seed,
        lines: a.lines,
        start: a.start,
        span_secs: (a.span_days.unwrap_or(a.profile.default_span_days() as f64) * 86_400.0) as i64,
        utc_offset_minutes: a.utc_offset,
        format: a.format,
        ipv6_share: a.ipv6_share,
        malformed_per_million: a.malformed_per_million,
        attacks: a.attacks,
        slow_exploiters: a.slow_exploiters,
        profile: a.profile,
    };
    let sink: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(File::create(p)?),
        None => Box::new(io::stdout().lock()),
    };
    let truth = if a.gzip {
        // mtime 0 and no file name in the header, so the bytes depend on the seed only.
        let mut gz = GzEncoder::new(sink, Compression::new(6));
        let t = generate(&cfg, &mut gz)?;
        gz.finish()?.flush()?;
        t
    } else {
        let mut w = BufWriter::with_capacity(1 << 16, sink);
        let t = generate(&cfg, &mut w)?;
        w.flush()?;
        t
    };
    if let Some(p) = a.truth {
        let mut f = File::create(p)?;
        serde_json::to_writer_pretty(&mut f, &truth)?;
        f.write_all(b"\n")?;
    }
    Ok(())
}
