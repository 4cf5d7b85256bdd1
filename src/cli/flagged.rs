//! `logward flagged`: queries the flagged-source store and exports it for firewalls
//! (nftables, ipset) and CrowdSec; `--prune` deletes old entries.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};

use super::{Config, Outcome, state};
use crate::store::{Filter, Store, Target, export};
use crate::timefmt::{parse_duration, parse_rfc3339};

#[derive(Debug, Args)]
pub struct FlaggedArgs {
    /// Addresses (the entries that contain them: their own and their /64's) or networks
    /// (the entries inside them). None lists every entry.
    #[arg(value_name = "IP|CIDR")]
    pub targets: Vec<String>,

    /// Only entries last seen at or after this time (RFC 3339, or a duration ago like 24h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only entries last seen before this time (RFC 3339, or a duration ago).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only entries flagged by this rule.
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,

    /// Only entries in this country (ISO code, as recorded with --geoip).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,

    /// Only entries in this AS number (as recorded with --asn).
    #[arg(long, value_name = "ASN")]
    pub asn: Option<String>,

    /// Only entries whose ban has not expired.
    #[arg(long)]
    pub active: bool,

    /// Output format. nftables and ipset print files for `nft -f` and `ipset restore`
    /// (active entries only, with their remaining timeout); crowdsec prints JSON for
    /// `cscli decisions import -i`.
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::Table)]
    pub format: ExportFormat,

    /// Delete entries last seen longer ago than --keep, then print how many went.
    #[arg(long)]
    pub prune: bool,

    /// How long --prune keeps entries. [default: 180d]
    #[arg(long, value_name = "DURATION")]
    pub keep: Option<String>,

    /// The store to read (see `logward scan --help`).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// Treat this time as now (RFC 3339), for expiry and durations; for tests and replays.
    #[arg(long, value_name = "TIME", hide = true)]
    pub now: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Table,
    Json,
    Csv,
    Plain,
    Nftables,
    Ipset,
    Crowdsec,
}

/// Now as Unix seconds, or the time `--now` gave.
pub fn now(fixed: Option<&str>) -> Result<i64> {
    match fixed {
        Some(t) => parse_rfc3339(t).ok_or_else(|| anyhow!("--now: not an RFC 3339 time: {t:?}")),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)),
    }
}

/// An RFC 3339 time, or a duration meaning that long before `now`.
pub fn time_arg(name: &str, text: &str, now: i64) -> Result<i64> {
    parse_rfc3339(text)
        .or_else(|| parse_duration(text).map(|d| now - d))
        .ok_or_else(|| {
            anyhow!("--{name}: {text:?} is neither an RFC 3339 time nor a duration like 24h")
        })
}

pub fn run(args: FlaggedArgs, config: &Config) -> Result<Outcome> {
    let now = now(args.now.as_deref())?;
    let path = state::store_path(args.store.as_deref(), config)?;
    if !path.exists() {
        bail!("{}: no store yet: run `logward scan` first", path.display());
    }
    let mut store = Store::open(&path).map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if args.prune {
        let keep = args
            .keep
            .as_deref()
            .or(config.keep.as_deref())
            .unwrap_or("180d");
        let keep =
            parse_duration(keep).with_context(|| format!("--keep: not a duration: {keep:?}"))?;
        let removed = store.prune(now - keep).map_err(|e| anyhow!("{e}"))?;
        writeln!(
            out,
            "pruned {removed} entries last seen before {}",
            crate::timefmt::rfc3339(now - keep)
        )?;
        return Ok(Outcome::Success);
    }
    let mut filter = Filter::default();
    for t in &args.targets {
        filter
            .targets
            .push(t.parse::<Target>().map_err(|e| anyhow!("{e}"))?);
    }
    filter.since = args
        .since
        .as_deref()
        .map(|t| time_arg("since", t, now))
        .transpose()?;
    filter.until = args
        .until
        .as_deref()
        .map(|t| time_arg("until", t, now))
        .transpose()?;
    filter.rule = args.rule;
    filter.country = args.country.map(|c| c.to_ascii_uppercase());
    filter.asn = match args.asn {
        Some(a) => Some(
            a.trim_start_matches("AS")
                .trim_start_matches("as")
                .parse()
                .with_context(|| format!("--asn: not an AS number: {a:?}"))?,
        ),
        None => None,
    };
    let firewall = matches!(
        args.format,
        ExportFormat::Nftables | ExportFormat::Ipset | ExportFormat::Crowdsec
    );
    if args.active || firewall {
        filter.active_at = Some(now);
    }
    let entries = store.query(&filter).map_err(|e| anyhow!("{e}"))?;
    let write = match args.format {
        ExportFormat::Table => export::table,
        ExportFormat::Json => export::json,
        ExportFormat::Csv => export::csv,
        ExportFormat::Plain => export::plain,
        ExportFormat::Nftables => export::nftables,
        ExportFormat::Ipset => export::ipset,
        ExportFormat::Crowdsec => export::crowdsec,
    };
    write(&mut out, &entries, now)?;
    out.flush()?;
    Ok(Outcome::Success)
}
