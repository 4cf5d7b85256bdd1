//! `logward flagged`: queries the flagged-source store and exports it for firewalls
//! (nftables, ipset) and CrowdSec; `--prune` deletes old entries.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use logward::metrics::RunCounts;
use logward::store::{Episode, Explained, Filter, FlaggedEntry, Sample, Store, Target, export};
use logward::timefmt::{
    format_duration, parse_duration, parse_rfc3339, rfc3339, time_or_ago, unix_now,
};
use serde_json::{Value, json};

use super::metrics::MetricsFile;
use super::{Config, Outcome, state};

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

    /// Only entries flagged by this rule; repeat for any of several.
    #[arg(long, value_name = "NAME")]
    pub rule: Vec<String>,

    /// Only entries whose events targeted this site (the virtual host, for log formats
    /// that have one; case-insensitive).
    #[arg(long, value_name = "NAME")]
    pub vhost: Option<String>,

    /// Only entries in this country (ISO code, as recorded with --geoip).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,

    /// Only entries in this AS number (as recorded with --asn).
    #[arg(long, value_name = "ASN")]
    pub asn: Option<String>,

    /// Only entries whose ban has not expired.
    #[arg(long)]
    pub active: bool,

    /// Order of the entries: source (address order), events (most first), first_seen or
    /// last_seen (latest first).
    #[arg(long, value_enum, default_value_t = SortBy::Source)]
    pub sort: SortBy,

    /// At most this many entries (after --sort).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Instead of the entries: how many there are, and their events, by rule, site,
    /// country and AS.
    #[arg(long, conflicts_with_all = ["explain", "prune", "delete", "unban"])]
    pub summary: bool,

    /// For each entry: its episodes, and per rule its bucket (capacity and leak), when it
    /// overflowed and the lines that filled it, with where they are (`file:line`).
    #[arg(long, conflicts_with_all = ["prune", "delete", "unban"])]
    pub explain: bool,

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

    /// Query the fleet's PostgreSQL store (see [fleet] in the config) instead of this
    /// server's: every server's entries, merged per source, each with the servers that
    /// flagged it. Takes addresses, networks, --since, --until, --rule and --active.
    #[arg(long)]
    pub fleet: bool,

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

    /// With --prune: at the end, write its metrics (entries deleted, duration, last
    /// success...) into this node_exporter textfile as command "prune", replaced
    /// atomically; other commands' metrics in it stay. --dry-run writes none.
    #[arg(long, value_name = "FILE", requires = "prune")]
    pub metrics_file: Option<PathBuf>,

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
            rule: Vec::new(),
            vhost: None,
            country: None,
            asn: None,
            active: false,
            sort: SortBy::Source,
            limit: None,
            summary: false,
            explain: false,
            format: ExportFormat::Table,
            fleet: false,
            prune: false,
            dry_run: args.dry_run,
            delete: false,
            unban: true,
            keep: None,
            metrics_file: None,
            store: args.store,
            now: None,
        },
        config,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    Source,
    Events,
    #[value(name = "first_seen", alias = "first-seen")]
    FirstSeen,
    #[value(name = "last_seen", alias = "last-seen")]
    LastSeen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Table,
    Json,
    /// One JSON object per line.
    Ndjson,
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
        None => Ok(unix_now()),
    }
}

/// An RFC 3339 time, a date alone (`2026-12-06`, midnight UTC), or a duration meaning
/// that long before `now`.
pub fn time_arg(name: &str, text: &str, now: i64) -> Result<i64> {
    time_or_ago(text, now).ok_or_else(|| {
            anyhow!(
                "--{name}: {text:?} is neither an RFC 3339 time, a date like 2026-12-06, nor a duration like 24h"
            )
        })
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
        (!args.rule.is_empty(), "--rule"),
        (args.vhost.is_some(), "--vhost"),
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
    for e in store.query(&Filter::default())? {
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

pub fn run(mut args: FlaggedArgs, config: &Config) -> Result<Outcome> {
    if !args.prune {
        return flagged(args, config, &mut RunCounts::default());
    }
    let metrics = match args.dry_run {
        true => None,
        false => MetricsFile::setting(args.metrics_file.take(), config, "prune")?,
    };
    let mut counts = RunCounts::default();
    let result = flagged(args, config, &mut counts);
    super::metrics::finish(metrics, result, counts, |o| o != Outcome::Error)
}

/// The writer of one `-o` format: the entries, as of `now`.
pub type Exporter = fn(&mut dyn Write, &[FlaggedEntry], i64) -> std::io::Result<()>;

/// The store's writer for `format`.
pub fn exporter(format: ExportFormat) -> Exporter {
    match format {
        ExportFormat::Table => export::table,
        ExportFormat::Json => export::json,
        ExportFormat::Ndjson => export::ndjson,
        ExportFormat::Csv => export::csv,
        ExportFormat::Plain => export::plain,
        ExportFormat::Nftables => export::nftables,
        ExportFormat::Ipset => export::ipset,
        ExportFormat::Crowdsec => export::crowdsec,
    }
}

/// What this server's store and the fleet's read alike from the options.
impl FlaggedArgs {
    /// The addresses and networks given, parsed.
    pub fn parsed_targets(&self) -> Result<Vec<Target>> {
        self.targets
            .iter()
            .map(|t| t.parse::<Target>().map_err(anyhow::Error::msg))
            .collect()
    }

    /// `--since` and `--until` as Unix seconds, each when given.
    pub fn time_window(&self, now: i64) -> Result<(Option<i64>, Option<i64>)> {
        let since = self
            .since
            .as_deref()
            .map(|t| time_arg("since", t, now))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| time_arg("until", t, now))
            .transpose()?;
        Ok((since, until))
    }

    /// The time at which listed bans must be active: `now` with `--active` or a firewall
    /// format (a firewall is given only the bans to apply), else none.
    pub fn active_at(&self, now: i64) -> Option<i64> {
        let firewall = matches!(
            self.format,
            ExportFormat::Nftables | ExportFormat::Ipset | ExportFormat::Crowdsec
        );
        (self.active || firewall).then_some(now)
    }

    /// Puts `items`, which come in address order, in `--sort` order (ties keep the
    /// address order), then keeps the first `--limit`.
    pub fn sort_and_limit<T>(&self, items: &mut Vec<T>, entry: impl Fn(&T) -> &FlaggedEntry) {
        match self.sort {
            SortBy::Source => {}
            SortBy::Events => items.sort_by_key(|e| std::cmp::Reverse(entry(e).events)),
            SortBy::FirstSeen => items.sort_by_key(|e| std::cmp::Reverse(entry(e).first_seen)),
            SortBy::LastSeen => items.sort_by_key(|e| std::cmp::Reverse(entry(e).last_seen)),
        }
        if let Some(n) = self.limit {
            items.truncate(n);
        }
    }
}

/// The query, export or change; `--prune` fills in `counts` for the metrics.
fn flagged(args: FlaggedArgs, config: &Config, counts: &mut RunCounts) -> Result<Outcome> {
    let now = now(args.now.as_deref())?;
    let path = state::store_path(args.store.as_deref(), config)?;
    if !path.exists() {
        bail!("{}: no store yet: run `logward scan` first", path.display());
    }
    let mut store = state::open_store(&path)?;
    let mut out = std::io::stdout().lock();
    if args.prune {
        return prune(&mut out, &mut store, &args, config, now, counts);
    }
    let mut filter = local_filter(&args, &store, config, now)?;
    if args.delete || args.unban {
        return delete_or_unban(&mut out, &mut store, &args, filter, now);
    }
    filter.active_at = args.active_at(now);
    let mut entries = store.query(&filter)?;
    args.sort_and_limit(&mut entries, |e| e);
    if args.summary {
        return summary(&mut out, &entries, args.format, now);
    }
    if args.explain {
        return explain(&mut out, &store, &entries, args.format, now);
    }
    exporter(args.format)(&mut out, &entries, now)?;
    out.flush()?;
    Ok(Outcome::Success)
}

/// `--prune`: deletes the entries last seen before the `--keep` window (with `--dry-run`,
/// lists them) and says how many.
fn prune(
    out: &mut dyn Write,
    store: &mut Store,
    args: &FlaggedArgs,
    config: &Config,
    now: i64,
    counts: &mut RunCounts,
) -> Result<Outcome> {
    // Regression: --prune ignored every filter and emptied the store.
    let filters = filters_given(args);
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
    let keep = parse_duration(keep).with_context(|| format!("--keep: not a duration: {keep:?}"))?;
    let before = logward::timefmt::rfc3339(now - keep);
    if args.dry_run {
        let going = store.query(&Filter {
            until: Some(now - keep),
            ..Filter::default()
        })?;
        for e in &going {
            writeln!(
                out,
                "{}\tlast seen {}",
                logward::store::net::display(e.source),
                logward::timefmt::rfc3339(e.last_seen)
            )?;
        }
        writeln!(
            out,
            "would prune {} last seen before {before} (dry run: nothing deleted)",
            super::count(going.len() as u64, "entry", "entries")
        )?;
        return Ok(Outcome::Success);
    }
    let removed = store.prune(now - keep)?;
    counts.pruned_entries = Some(removed as u64);
    writeln!(
        out,
        "pruned {} last seen before {before}",
        super::count(removed as u64, "entry", "entries")
    )?;
    Ok(Outcome::Success)
}

/// The store query for the filters given: addresses, networks, times, rules, site, country
/// and AS; whether bans must be active is the caller's to add.
fn local_filter(args: &FlaggedArgs, store: &Store, config: &Config, now: i64) -> Result<Filter> {
    let targets = args.parsed_targets()?;
    let (since, until) = args.time_window(now)?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        bail!(
            "--since {} is not before --until {}: nothing could match",
            logward::timefmt::rfc3339(since),
            logward::timefmt::rfc3339(until)
        );
    }
    for rule in &args.rule {
        check_rule_name(rule, store, config)?;
    }
    Ok(Filter {
        targets,
        since,
        until,
        rules: args.rule.clone(),
        vhost: args.vhost.clone(),
        country: args.country.as_ref().map(|c| c.to_ascii_uppercase()),
        asn: args.asn.as_deref().map(parse_asn).transpose()?,
        active_at: None,
    })
}

/// An AS number as `--asn` takes it: `64500`, `AS64500` or `as64500`.
fn parse_asn(text: &str) -> Result<u32> {
    text.trim_start_matches("AS")
        .trim_start_matches("as")
        .parse()
        .with_context(|| format!("--asn: not an AS number: {text:?}"))
}

/// `--delete` and `--unban`: deletes the entries `filter` selects, or ends their active
/// bans, and lists them; with `--dry-run`, only lists them.
fn delete_or_unban(
    out: &mut dyn Write,
    store: &mut Store,
    args: &FlaggedArgs,
    mut filter: Filter,
    now: i64,
) -> Result<Outcome> {
    if filters_given(args).is_empty() {
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
        .query(&filter)?
        .into_iter()
        .map(|e| e.source)
        .collect();
    if !args.dry_run {
        if args.delete {
            store.delete_sources(&chosen)?;
        } else {
            store.end_bans(&chosen, now)?;
        }
    }
    for source in &chosen {
        writeln!(out, "{}", logward::store::net::display(*source))?;
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
    Ok(Outcome::Success)
}

/// `--summary`: the entries and their events by rule, site, country and AS.
fn summary(
    out: &mut dyn Write,
    entries: &[FlaggedEntry],
    format: ExportFormat,
    now: i64,
) -> Result<Outcome> {
    let summary = Summary::of(entries, now);
    match format {
        ExportFormat::Json | ExportFormat::Ndjson => {
            summary.write_json(out, format == ExportFormat::Json)?
        }
        ExportFormat::Table => summary.write_table(out)?,
        other => bail!("--summary prints a table or JSON, not {other:?}"),
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// Per name in one dimension of `--summary`: (entries, events).
type Tally = BTreeMap<String, (u64, u64)>;

/// What `--summary` prints: the totals, and the tallies by rule, site, country and AS.
struct Summary {
    entries: usize,
    active: usize,
    events: u64,
    by: [(&'static str, Tally); 4],
}

impl Summary {
    /// Adds up `entries`; a ban counts as active when time is left at `now`.
    fn of(entries: &[FlaggedEntry], now: i64) -> Summary {
        let mut by: [(&str, Tally); 4] = [
            ("rule", Tally::new()),
            ("site", Tally::new()),
            ("country", Tally::new()),
            ("asn", Tally::new()),
        ];
        for e in entries {
            for (rule, n) in &e.rule_events {
                tally(&mut by[0].1, rule.clone(), *n);
            }
            // Entries recorded before rule counts were kept still count for their rules.
            for rule in e
                .rules
                .iter()
                .filter(|r| !e.rule_events.iter().any(|(k, _)| k == *r))
            {
                tally(&mut by[0].1, rule.clone(), 0);
            }
            for (site, n) in &e.sites {
                tally(&mut by[1].1, site.clone(), *n);
            }
            tally(
                &mut by[2].1,
                e.country.clone().unwrap_or_else(|| "-".into()),
                e.events,
            );
            let asn = match (e.asn, &e.as_org) {
                (Some(a), Some(org)) => format!("AS{a} {org}"),
                (Some(a), None) => format!("AS{a}"),
                _ => "-".into(),
            };
            tally(&mut by[3].1, asn, e.events);
        }
        Summary {
            entries: entries.len(),
            active: entries.iter().filter(|e| e.remaining(now) > 0).count(),
            events: entries.iter().map(|e| e.events).sum(),
            by,
        }
    }

    /// One JSON object: the totals and, per dimension, its names most events first;
    /// indented when `pretty`, else on one line.
    fn write_json(&self, out: &mut dyn Write, pretty: bool) -> Result<()> {
        let mut value = json!({
            "schema_version": export::JSON_SCHEMA_VERSION,
            "entries": self.entries,
            "active": self.active,
            "events": self.events,
        });
        for (dimension, tally) in &self.by {
            value[format!("by_{dimension}")] = Value::Array(
                most_events_first(tally)
                    .into_iter()
                    .map(|(name, (n, ev))| json!({ *dimension: name, "entries": n, "events": ev }))
                    .collect(),
            );
        }
        if pretty {
            serde_json::to_writer_pretty(&mut *out, &value)?;
        } else {
            serde_json::to_writer(&mut *out, &value)?;
        }
        writeln!(out)?;
        Ok(())
    }

    /// The totals, then a table per dimension that names anything, most events first.
    fn write_table(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(
            out,
            "{} ({} banned now), {}",
            super::count(self.entries as u64, "entry", "entries"),
            self.active,
            super::count(self.events, "event", "events")
        )?;
        for (dimension, tally) in &self.by {
            if tally.is_empty() || tally.keys().all(|k| k == "-") {
                continue;
            }
            writeln!(out, "\nBy {dimension}:")?;
            let rows = most_events_first(tally);
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (name, (n, ev)) in rows {
                writeln!(
                    out,
                    "  {:<width$}  {:>6} {}  {:>8} events",
                    logward::escape::text(name.as_bytes()),
                    n,
                    if *n == 1 { "entry  " } else { "entries" },
                    ev
                )?;
            }
        }
        Ok(())
    }
}

/// Counts one entry and its `events` for `name`.
fn tally(t: &mut Tally, name: String, events: u64) {
    let v = t.entry(name).or_default();
    v.0 += 1;
    v.1 += events;
}

/// A tally's rows: most events first, then most entries, then by name.
fn most_events_first(t: &Tally) -> Vec<(&String, &(u64, u64))> {
    let mut v: Vec<(&String, &(u64, u64))> = t.iter().collect();
    v.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(b.1.0.cmp(&a.1.0)).then(a.0.cmp(b.0)));
    v
}

/// `--explain`: per entry, each episode and why its rules flagged it.
fn explain(
    out: &mut dyn Write,
    store: &Store,
    entries: &[FlaggedEntry],
    format: ExportFormat,
    now: i64,
) -> Result<Outcome> {
    let json_format = matches!(format, ExportFormat::Json | ExportFormat::Ndjson);
    if !json_format && format != ExportFormat::Table {
        bail!("--explain prints text or JSON, not {format:?}");
    }
    let mut all = Vec::new();
    for e in entries {
        let episodes = store.episodes(e.source)?;
        if !json_format {
            explain_text(out, e, &episodes, now)?;
        } else if format == ExportFormat::Ndjson {
            serde_json::to_writer(&mut *out, &explained_json(e, &episodes, now))?;
            writeln!(out)?;
        } else {
            all.push(explained_json(e, &episodes, now));
        }
    }
    if format == ExportFormat::Json {
        serde_json::to_writer_pretty(&mut *out, &all)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// An entry as `flagged -o json` prints it, with its episodes.
fn explained_json(e: &FlaggedEntry, episodes: &[Episode], now: i64) -> Value {
    let mut value = export::entry_json(e, now);
    value["episodes"] = Value::Array(episodes.iter().map(episode_json).collect());
    value
}

/// One episode as JSON: its times, counts, places, samples and buckets.
fn episode_json(ep: &Episode) -> Value {
    json!({
        "first_seen": rfc3339(ep.first_seen),
        "last_seen": rfc3339(ep.last_seen),
        "events": ep.events,
        "rule_events": ep.rule_events.iter().map(|(r, n)| (r.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "sites": ep.sites.iter().map(|(s, n)| json!({"site": s, "events": n})).collect::<Vec<_>>(),
        "files": ep.files.iter().map(|(f, n)| json!({"file": f, "events": n})).collect::<Vec<_>>(),
        "samples": ep.samples,
        "explain": ep.explain,
        "recorded_at": rfc3339(ep.recorded_at),
    })
}

/// An entry in words: its events and ban, then each of its episodes.
fn explain_text(
    out: &mut dyn Write,
    e: &FlaggedEntry,
    episodes: &[Episode],
    now: i64,
) -> Result<()> {
    let left = e.remaining(now);
    writeln!(
        out,
        "{}  {} in {}, banned {}",
        logward::store::net::display(e.source),
        super::count(e.events, "event", "events"),
        super::count(u64::from(e.times_flagged), "episode", "episodes"),
        if left > 0 {
            format!(
                "until {} ({} left)",
                rfc3339(e.expires),
                format_duration(left)
            )
        } else {
            format!("until {} (expired)", rfc3339(e.expires))
        }
    )?;
    if episodes.is_empty() {
        writeln!(
            out,
            "  (no episode recorded: pruned, or flagged before they were kept)"
        )?;
    }
    for (i, ep) in episodes.iter().enumerate() {
        explain_episode(out, i + 1, ep)?;
    }
    writeln!(out)?;
    Ok(())
}

/// Episode `number` in words: its span, events by rule, sites and files, each rule's
/// bucket, then its first lines.
fn explain_episode(out: &mut dyn Write, number: usize, ep: &Episode) -> Result<()> {
    writeln!(
        out,
        "  Episode {number}: {} .. {}, {}",
        rfc3339(ep.first_seen),
        rfc3339(ep.last_seen),
        super::count(ep.events, "event", "events")
    )?;
    let per_rule: Vec<String> = ep
        .rule_events
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    if !per_rule.is_empty() {
        writeln!(out, "    events by rule: {}", per_rule.join(", "))?;
    }
    if !ep.sites.is_empty() {
        writeln!(out, "    sites: {}", listed(&ep.sites))?;
    }
    if !ep.files.is_empty() {
        writeln!(out, "    files: {}", listed(&ep.files))?;
    }
    for x in &ep.explain {
        explain_bucket(out, x)?;
    }
    if !ep.samples.is_empty() {
        writeln!(out, "    first lines:")?;
    }
    for l in &ep.samples {
        sample_line(out, l, "      ")?;
    }
    Ok(())
}

/// Names with their counts, `name (n), ...`, escaped for a terminal.
fn listed(v: &[(String, u64)]) -> String {
    v.iter()
        .map(|(k, n)| format!("{} ({n})", logward::escape::text(k.as_bytes())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a rule flagged an episode: its bucket, when it overflowed, and the latest lines
/// that filled it.
fn explain_bucket(out: &mut dyn Write, x: &Explained) -> Result<()> {
    writeln!(
        out,
        "    {}: bucket of {} leaking one per {}; overflowed at {}{}",
        x.rule,
        x.capacity,
        leak(x.leak_ms),
        rfc3339(x.at),
        if x.times > 1 {
            format!(" ({} times in this episode)", x.times)
        } else {
            String::new()
        }
    )?;
    if !x.lines.is_empty() {
        writeln!(out, "      the latest lines that filled it:")?;
    }
    for l in &x.lines {
        sample_line(out, l, "        ")?;
    }
    Ok(())
}

/// A stored sample (printable ASCII already) with where it was.
fn sample_line(out: &mut dyn Write, s: &Sample, indent: &str) -> Result<()> {
    match &s.at {
        Some(at) => writeln!(out, "{indent}{at}: {}", s.line)?,
        None => writeln!(out, "{indent}{}", s.line)?,
    }
    Ok(())
}

/// A leak interval in words: `10s`, `500ms`, `5m`.
fn leak(ms: i64) -> String {
    if ms % 1000 != 0 || ms < 1000 {
        format!("{ms}ms")
    } else {
        format_duration(ms / 1000)
    }
}
