//! `logward flagged`: queries the flagged-source store and exports it for firewalls
//! (nftables, ipset) and CrowdSec; `--prune` deletes old entries.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use ipnet::IpNet;

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

    /// Output format (`-o` as in every command; `--format` and `-f` still work). nftables
    /// and ipset print files for `nft -f` and `ipset restore` (active entries only, with
    /// their remaining timeout); crowdsec prints JSON for `cscli decisions import -i`.
    #[arg(
        long = "format",
        short = 'o',
        visible_alias = "output",
        short_alias = 'f',
        value_enum,
        default_value_t = ExportFormat::Table
    )]
    pub format: ExportFormat,

    /// Delete entries last seen longer ago than --keep, then print how many went. Takes
    /// no filter (an address, --rule, --since... are refused rather than ignored).
    #[arg(long)]
    pub prune: bool,

    /// With --prune, --delete or --unban: list the entries concerned, change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Delete the entries the filters select (a false positive to forget). Needs at least
    /// one filter; with --dry-run, lists them.
    #[arg(long, conflicts_with_all = ["prune", "unban"])]
    pub delete: bool,

    /// End the active bans of the entries the filters select, keeping their history (the
    /// same as `logward unban`). Needs at least one filter.
    #[arg(long, conflicts_with = "prune")]
    pub unban: bool,

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

#[derive(Debug, Args)]
pub struct UnbanArgs {
    /// The addresses (entries that contain them) or networks (entries inside them).
    #[arg(value_name = "IP|CIDR", required = true)]
    pub targets: Vec<String>,

    /// List the bans that would end, change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// The store (see `logward scan --help`).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

/// `logward unban IP|CIDR...`: `flagged --unban` with those targets.
pub fn unban(args: UnbanArgs, config: &Config) -> Result<Outcome> {
    run(
        FlaggedArgs {
            targets: args.targets,
            since: None,
            until: None,
            rule: None,
            country: None,
            asn: None,
            active: false,
            format: ExportFormat::Table,
            prune: false,
            dry_run: args.dry_run,
            delete: false,
            unban: true,
            keep: None,
            store: args.store,
            now: None,
        },
        config,
    )
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

/// An RFC 3339 time, a date alone (`2026-12-06`, midnight UTC), or a duration meaning
/// that long before `now`.
pub fn time_arg(name: &str, text: &str, now: i64) -> Result<i64> {
    parse_rfc3339(text)
        .or_else(|| parse_date(text))
        .or_else(|| parse_duration(text).map(|d| now - d))
        .ok_or_else(|| {
            anyhow!(
                "--{name}: {text:?} is neither an RFC 3339 time, a date like 2026-12-06, nor a duration like 24h"
            )
        })
}

/// `YYYY-MM-DD` as midnight UTC.
fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.len() != 10 {
        return None;
    }
    parse_rfc3339(&format!("{t}T00:00:00Z"))
}

/// The filters given on the command line, by name: `--prune` refuses any, `--delete` and
/// `--unban` need one.
fn filters_given(args: &FlaggedArgs) -> Vec<&'static str> {
    let mut given = Vec::new();
    if !args.targets.is_empty() {
        given.push("an address or network");
    }
    for (on, name) in [
        (args.since.is_some(), "--since"),
        (args.until.is_some(), "--until"),
        (args.rule.is_some(), "--rule"),
        (args.country.is_some(), "--country"),
        (args.asn.is_some(), "--asn"),
        (args.active, "--active"),
    ] {
        if on {
            given.push(name);
        }
    }
    given
}

/// An unknown rule name is an error listing the known ones: those of this host's rule set
/// and those the store has recorded (rules from a rules file no longer in use).
fn check_rule_name(rule: &str, store: &Store, config: &Config) -> Result<()> {
    let mut known: std::collections::BTreeSet<String> = super::detection::rule_set(None, config)?
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    for e in store
        .query(&Filter::default())
        .map_err(|e| anyhow!("{e}"))?
    {
        known.extend(e.rules);
    }
    if known.contains(rule) {
        return Ok(());
    }
    let list: Vec<&str> = known.iter().map(String::as_str).collect();
    bail!(
        "--rule: no rule is named {rule:?}; the rules are: {}",
        list.join(", ")
    )
}

pub fn run(args: FlaggedArgs, config: &Config) -> Result<Outcome> {
    let now = now(args.now.as_deref())?;
    let path = state::store_path(args.store.as_deref(), config)?;
    if !path.exists() {
        bail!("{}: no store yet: run `logward scan` first", path.display());
    }
    let mut store = state::open_store(&path)?;
    let mut out = std::io::stdout().lock();
    let given = filters_given(&args);
    if args.prune {
        // Regression: --prune ignored every filter and emptied the store.
        let filters = &given;
        if !filters.is_empty() {
            bail!(
                "--prune deletes every entry last seen before the --keep window and takes no \
                 filter; {} would not restrict it. Run it without, or --prune --dry-run to \
                 see what would go",
                filters.join(", ")
            );
        }
        let keep = args
            .keep
            .as_deref()
            .or(config.keep.as_deref())
            .unwrap_or("180d");
        let keep =
            parse_duration(keep).with_context(|| format!("--keep: not a duration: {keep:?}"))?;
        let before = crate::timefmt::rfc3339(now - keep);
        if args.dry_run {
            let going = store
                .query(&Filter {
                    until: Some(now - keep),
                    ..Filter::default()
                })
                .map_err(|e| anyhow!("{e}"))?;
            for e in &going {
                writeln!(
                    out,
                    "{}\tlast seen {}",
                    crate::store::net::display(e.source),
                    crate::timefmt::rfc3339(e.last_seen)
                )?;
            }
            writeln!(
                out,
                "would prune {} last seen before {before} (dry run: nothing deleted)",
                super::count(going.len() as u64, "entry", "entries")
            )?;
            return Ok(Outcome::Success);
        }
        let removed = store.prune(now - keep).map_err(|e| anyhow!("{e}"))?;
        writeln!(
            out,
            "pruned {} last seen before {before}",
            super::count(removed as u64, "entry", "entries")
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
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        bail!(
            "--since {} is not before --until {}: nothing could match",
            crate::timefmt::rfc3339(since),
            crate::timefmt::rfc3339(until)
        );
    }
    if let Some(rule) = &args.rule {
        check_rule_name(rule, &store, config)?;
    }
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
    if args.delete || args.unban {
        if given.is_empty() {
            bail!(
                "--{} needs a filter (an address or network, --rule, --since...): it never \
                 applies to the whole store by default",
                if args.delete { "delete" } else { "unban" }
            );
        }
        // Only active bans can end; the entries chosen are listed either way, and a dry
        // run stops there.
        if args.unban {
            filter.active_at = Some(now);
        }
        let chosen: Vec<IpNet> = store
            .query(&filter)
            .map_err(|e| anyhow!("{e}"))?
            .into_iter()
            .map(|e| e.source)
            .collect();
        if !args.dry_run {
            if args.delete {
                store.delete_sources(&chosen)
            } else {
                store.end_bans(&chosen, now)
            }
            .map_err(|e| anyhow!("{e}"))?;
        }
        for source in &chosen {
            writeln!(out, "{}", crate::store::net::display(*source))?;
        }
        let verb = match (args.dry_run, args.delete) {
            (true, true) => "would delete",
            (true, false) => "would unban",
            (false, true) => "deleted",
            (false, false) => "unbanned",
        };
        writeln!(
            out,
            "{verb} {}{}",
            super::count(chosen.len() as u64, "entry", "entries"),
            if args.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        )?;
        return Ok(Outcome::Success);
    }
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
