//! The fleet's options (`--fleet-*`, the `[fleet]` table) and the `logward fleet`
//! commands: parsing and printing only; the work is [`logward::fleet`]'s.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use ipnet::IpNet;

use super::Config;
use super::config::FleetTable;
use super::flagged::FlaggedArgs;
use logward::error::chain;
use logward::fleet::Settings;
use logward::fleet::link::{Link, LinkEvent};
use logward::fleet::pull::{FleetBan, Puller};
use logward::fleet::query::{FleetEntry, FleetFilter};
use logward::format::time::rfc3339;
use logward::store::{Store, net};
use logward::watch::Log;
use logward::watch::actions::{ActionSettings, Actions, FlagEvent};
use logward::watch::nft::NftSet;

/// The fleet's options, taken by every command; each is a key of the `[fleet]` table
/// without the `fleet-` prefix, and the command line wins.
#[derive(Debug, Default, Args)]
pub struct FleetOptions {
    /// The fleet's PostgreSQL database, postgres://USER@HOST:PORT/DATABASE, without a
    /// password (config [fleet] url).
    #[arg(long, global = true, value_name = "URL", help_heading = "Fleet")]
    pub fleet_url: Option<String>,

    /// A file (mode 0600) whose first line is the fleet login's password (config [fleet]
    /// password_file).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Fleet")]
    pub fleet_password_file: Option<PathBuf>,

    /// The CA certificates (PEM) the fleet server's certificate must chain to; TLS is
    /// always on (config [fleet] ca_file).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Fleet")]
    pub fleet_ca_file: Option<PathBuf>,

    /// This server's name in the fleet [default: the host name] (config [fleet] host).
    #[arg(long, global = true, value_name = "NAME", help_heading = "Fleet")]
    pub fleet_host: Option<String>,

    /// A source flagged by this many servers is banned on all of them (config [fleet]
    /// min_hosts).
    #[arg(long, global = true, value_name = "N", help_heading = "Fleet")]
    pub fleet_min_hosts: Option<u32>,
}

impl FleetOptions {
    /// Lays the command line over the config's `[fleet]` table: the command line wins.
    pub fn apply(self, config: &mut Config) {
        let given = self.fleet_url.is_some()
            || self.fleet_password_file.is_some()
            || self.fleet_ca_file.is_some()
            || self.fleet_host.is_some()
            || self.fleet_min_hosts.is_some();
        if !given {
            return;
        }
        let table = config.fleet.get_or_insert_with(FleetTable::default);
        table.url = self.fleet_url.or(table.url.take());
        table.password_file = self.fleet_password_file.or(table.password_file.take());
        table.ca_file = self.fleet_ca_file.or(table.ca_file.take());
        table.host = self.fleet_host.or(table.host.take());
        table.min_hosts = self.fleet_min_hosts.or(table.min_hosts);
    }
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Create or upgrade the fleet schema in the database (run it as the database's owner;
    /// running it again is harmless), then print the roles and grants to create.
    Init,

    /// Carry out the fleet's erasure requests in the logs under PATH (as `anonymize
    /// --source` does) and acknowledge them, push this server's waiting flags and learn
    /// the other servers' bans once, adding them to the nftables sets.
    Sync(SyncArgs),

    /// List the erasure requests with the servers that have and have not carried them out;
    /// with --prune (needs logward_admin), delete those every server carried out.
    Erasures(ErasuresArgs),
}

#[derive(Debug, Args)]
pub struct ErasuresArgs {
    /// Delete the requests that every server known to the fleet carried out completely,
    /// the last of them longer ago than --keep, and print them (the record to keep).
    #[arg(long)]
    pub prune: bool,

    /// How long --prune keeps requests every server carried out (config: [fleet]
    /// keep_erasures). [default: 30d]
    #[arg(long, value_name = "DURATION", requires = "prune")]
    pub keep: Option<String>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Add the fleet's bans to these nftables sets, as `watch --nft-set` does
    /// (`[FAMILY:]TABLE:SET4[,SET6]`).
    #[arg(long, value_name = "SPEC")]
    pub nft_set: Option<String>,

    /// Run this command for each ban learnt, as `watch --on-flag` does (through `sh -c`,
    /// with the ban in LOGWARD_* variables).
    #[arg(long, value_name = "CMD")]
    pub on_flag: Option<String>,

    /// The store (see `logward scan --help`).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// The logs to carry out erasure requests in (files, directories or quoted globs, as
    /// for `anonymize`). Without them, requests wait.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

/// `anonymize`'s options, parsed as if typed, for carrying out an erasure request.
#[derive(clap::Parser)]
struct Erase {
    #[command(flatten)]
    args: super::anonymize::AnonymizeArgs,
}

/// Runs `logward fleet ...`.
pub fn run(args: FleetArgs, config: &Config) -> Result<super::Outcome> {
    let settings = settings(config)?;
    match args.command {
        FleetCommand::Init => {
            let mut fleet = logward::fleet::connect(&settings)?;
            let done = logward::fleet::schema::init(&mut fleet)?;
            let v = logward::fleet::schema::VERSION;
            match done {
                logward::fleet::schema::Init::Created => {
                    eprintln!(
                        "logward: {}: fleet schema created (version {v})",
                        fleet.server
                    )
                }
                logward::fleet::schema::Init::Upgraded { from } => eprintln!(
                    "logward: {}: fleet schema upgraded from version {from} to {v}",
                    fleet.server
                ),
                logward::fleet::schema::Init::Current => eprintln!(
                    "logward: {}: fleet schema already at version {v}; nothing changed",
                    fleet.server
                ),
            }
            eprintln!("logward: run these statements as a superuser to create the roles:");
            print!("{}", logward::fleet::schema::ROLES);
            Ok(super::Outcome::Success)
        }
        FleetCommand::Sync(args) => sync(args, settings, config),
        FleetCommand::Erasures(args) if args.prune => prune_erasures(args, settings, config),
        FleetCommand::Erasures(_) => erasures(settings),
    }
}

/// `anonymize --source ... --fleet --ticket REF`: records the requests.
pub fn request_erasure(
    sources: &[String],
    ticket: &str,
    config: &Config,
) -> Result<super::Outcome> {
    if ticket.trim().is_empty() {
        bail!("--ticket: an erasure request needs a reference, such as a ticket number");
    }
    let mut nets = Vec::new();
    for s in sources {
        match super::detection::parse_net(s) {
            Some(net) => nets.push(net),
            None => bail!("--source: {s:?} is not an address or a CIDR network"),
        }
    }
    let mut fleet = logward::fleet::connect(&settings(config)?)?;
    logward::fleet::schema::check(&mut fleet)?;
    for net in nets {
        let id = logward::fleet::erasure::request_erasure(&mut fleet, net, ticket)?;
        // The address goes to the database, not to the terminal's scrollback or a log.
        eprintln!(
            "logward: fleet: erasure request {id} recorded ({}); every server carries it out \
             at its next `logward fleet sync`; `logward fleet erasures` shows which did",
            logward::escape::text(ticket.as_bytes())
        );
    }
    Ok(super::Outcome::Success)
}

/// `logward fleet erasures`.
fn erasures(settings: Settings) -> Result<super::Outcome> {
    let mut fleet = logward::fleet::connect(&settings)?;
    logward::fleet::schema::check(&mut fleet)?;
    let list = logward::fleet::erasure::list(&mut fleet)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ID\tTICKET\tREQUESTED\tBY\tDONE\tINCOMPLETE\tWAITING")?;
    let names = |v: &[(String, i64)]| {
        v.iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    for s in &list {
        let r = &s.request;
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            logward::escape::text(r.ticket.as_bytes()),
            rfc3339(r.requested_at),
            logward::escape::text(r.requested_by.as_bytes()),
            or_dash(names(&s.done)),
            or_dash(names(&s.incomplete)),
            or_dash(s.waiting.join(","))
        )?;
    }
    out.flush()?;
    Ok(super::Outcome::Success)
}

/// `logward fleet erasures --prune`.
fn prune_erasures(
    args: ErasuresArgs,
    settings: Settings,
    config: &Config,
) -> Result<super::Outcome> {
    let keep_text = args
        .keep
        .or_else(|| config.fleet.as_ref().and_then(|f| f.keep_erasures.clone()))
        .unwrap_or_else(|| "30d".into());
    let Some(keep) = logward::timefmt::parse_duration(&keep_text) else {
        bail!("--keep: {keep_text:?} is not a duration such as 30d or 12h");
    };
    let mut fleet = logward::fleet::connect(&settings)?;
    logward::fleet::schema::check(&mut fleet)?;
    let gone = logward::fleet::erasure::prune(&mut fleet, keep)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ID\tTICKET\tREQUESTED\tDONE\tSERVERS")?;
    for p in &gone {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            p.id,
            logward::escape::text(p.ticket.as_bytes()),
            rfc3339(p.requested_at),
            rfc3339(p.done_at),
            logward::escape::text(p.hosts.join(",").as_bytes())
        )?;
    }
    out.flush()?;
    eprintln!(
        "logward: fleet: {} carried out by every server and done more than {keep_text} ago \
         deleted",
        super::count(gone.len() as u64, "erasure request", "erasure requests")
    );
    Ok(super::Outcome::Success)
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

/// Carries out this server's pending erasure requests in `paths` and its store, as
/// `anonymize --source` does, and acknowledges each; returns how many were complete.
fn carry_out_erasures(
    settings: &Settings,
    paths: &[String],
    store: Option<&Path>,
    config: &Config,
) -> Result<usize> {
    use clap::Parser;
    let mut fleet = logward::fleet::push::connect_as_host(settings)?;
    let pending = logward::fleet::erasure::pending(&mut fleet)?;
    if pending.is_empty() {
        return Ok(0);
    }
    if paths.is_empty() {
        eprintln!(
            "logward: fleet: warning: {} wait: give `fleet sync` the log paths to erase in",
            super::count(pending.len() as u64, "erasure request", "erasure requests")
        );
        return Ok(0);
    }
    let mut complete = 0;
    for request in pending {
        let mut argv: Vec<String> = vec!["anonymize".into(), "--source".into()];
        argv.push(request.source.to_string());
        if let Some(store) = store {
            argv.push("--store".into());
            argv.push(store.display().to_string());
        }
        argv.push("--".into());
        argv.extend(paths.iter().cloned());
        let args = Erase::try_parse_from(&argv)?.args;
        eprintln!(
            "logward: fleet: carrying out erasure request {}",
            request.id
        );
        let done = match super::anonymize::run(args, config) {
            Ok(super::Outcome::Success) => true,
            Ok(_) => false,
            Err(e) => {
                eprintln!(
                    "logward: fleet: erasure request {}: {}",
                    request.id,
                    chain(e.as_ref())
                );
                continue;
            }
        };
        logward::fleet::erasure::acknowledge(&mut fleet, request.id, done)?;
        complete += usize::from(done);
    }
    Ok(complete)
}

/// `logward fleet sync`: one push, one pull, the bans to nftables.
fn sync(args: SyncArgs, settings: Settings, config: &Config) -> Result<super::Outcome> {
    let path = super::state::store_path(args.store.as_deref(), config)?;
    // Erasures first, so that nothing they remove is pushed.
    let erased = carry_out_erasures(&settings, &args.paths, args.store.as_deref(), config)?;
    let store = super::state::open_store(&path)?;
    let now = logward::timefmt::unix_now();
    let mut pusher =
        logward::fleet::push::Pusher::new(settings.clone(), &path, sample_max_age(config))?;
    let pushed = pusher.drain(now)?;
    let mut puller = Puller::open(settings, &path)?;
    let bans = puller.pull()?;
    let nft = match args.nft_set.as_deref().or(config.nft_set.as_deref()) {
        Some(text) => Some(NftSet::parse(text)?),
        None => None,
    };
    let allow = super::detection::fixed_allowlist(&Default::default(), config)?;
    let mut applier = BanApplier::new(
        Actions::start(
            ActionSettings {
                on_flag: args.on_flag.clone().or_else(|| config.on_flag.clone()),
                nft,
                timeout: Duration::from_secs(10),
                nft_failures: Default::default(),
            },
            &action_log(),
        ),
        Some(store),
        allow,
    );
    let applied = applier.apply(&bans, now);
    applier.drain();
    eprintln!(
        "logward: fleet: {} carried out, pushed {}, learnt {} from other servers",
        super::count(erased as u64, "erasure request", "erasure requests"),
        pushed_text(pushed, pusher.near_misses_pushed()),
        super::count(applied as u64, "ban", "bans")
    );
    Ok(super::Outcome::Success)
}

/// `logward flagged --fleet`: the fleet's entries, in the formats of `flagged`.
pub fn flagged(args: &FlaggedArgs, config: &Config, now: i64) -> Result<super::Outcome> {
    use super::flagged::{ExportFormat, exporter};
    refuse_local_options(args)?;
    let settings = settings(config)?;
    let filter = fleet_filter(args, now, settings.min_hosts)?;
    let mut fleet = logward::fleet::connect(&settings)?;
    logward::fleet::schema::check(&mut fleet)?;
    let mut found = logward::fleet::query::query(&mut fleet, &filter)?;
    args.sort_and_limit(&mut found, |f| &f.entry);
    let mut out = std::io::stdout().lock();
    match args.format {
        ExportFormat::Table => fleet_table(&mut out, &found, now)?,
        ExportFormat::Json => fleet_json(&mut out, &found, now, true)?,
        ExportFormat::Ndjson => fleet_json(&mut out, &found, now, false)?,
        ExportFormat::Csv => fleet_csv(&mut out, &found)?,
        other => {
            let entries: Vec<_> = found.iter().map(|f| f.entry.clone()).collect();
            exporter(other)(&mut out, &entries, now)?
        }
    }
    out.flush()?;
    Ok(super::Outcome::Success)
}

/// Refuses the options of `flagged` that work on this server's store only.
fn refuse_local_options(args: &FlaggedArgs) -> Result<()> {
    for (on, name) in [
        (args.vhost.is_some(), "--vhost"),
        (args.country.is_some(), "--country"),
        (args.asn.is_some(), "--asn"),
        (args.summary, "--summary"),
        (args.explain, "--explain"),
        (args.prune, "--prune"),
        (args.delete, "--delete"),
        (args.unban, "--unban"),
    ] {
        if on {
            bail!(
                "--fleet takes addresses, networks, --since, --until, --rule, --active, --sort, \
                 --limit and -o; {name} works on this server's store only"
            );
        }
    }
    Ok(())
}

/// The fleet query for the filters given.
fn fleet_filter(args: &FlaggedArgs, now: i64, min_hosts: Option<u32>) -> Result<FleetFilter> {
    let targets = args.parsed_targets()?;
    let (since, until) = args.time_window(now)?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        bail!("--since must be before --until");
    }
    Ok(FleetFilter {
        targets,
        since,
        until,
        rules: args.rule.clone(),
        active_at: args.active_at(now),
        min_hosts,
    })
}

/// The servers that flagged an entry, escaped for a terminal.
fn servers(f: &FleetEntry) -> Vec<String> {
    f.hosts
        .iter()
        .map(|h| logward::escape::text(h.as_bytes()))
        .collect()
}

/// The fleet's entries as a table, with the servers that flagged each.
fn fleet_table(out: &mut dyn Write, found: &[FleetEntry], now: i64) -> Result<()> {
    let rows: Vec<[String; 6]> = found.iter().map(|f| table_row(f, now)).collect();
    let header = [
        "SOURCE",
        "RULES",
        "EVENTS",
        "LAST SEEN",
        "EXPIRES",
        "SERVERS",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |out: &mut dyn Write, cells: [&str; 6]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, header)?;
    for r in &rows {
        line(out, r.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// One row of the table: source, rules, events, last seen, expiry and servers.
fn table_row(f: &FleetEntry, now: i64) -> [String; 6] {
    let e = &f.entry;
    let left = e.remaining(now);
    [
        net::display(e.source),
        e.rules.join(","),
        e.events.to_string(),
        rfc3339(e.last_seen),
        if left > 0 {
            format!("in {}", logward::timefmt::format_duration(left))
        } else {
            "expired".into()
        },
        servers(f).join(","),
    ]
}

/// The fleet's entries as `flagged -o json` prints them, each with its servers ("hosts"):
/// one indented array when `pretty`, else one object a line (ndjson).
fn fleet_json(out: &mut dyn Write, found: &[FleetEntry], now: i64, pretty: bool) -> Result<()> {
    let values: Vec<serde_json::Value> = found
        .iter()
        .map(|f| {
            let mut v = logward::store::export::entry_json(&f.entry, now);
            v["hosts"] = serde_json::json!(servers(f));
            v
        })
        .collect();
    if pretty {
        serde_json::to_writer_pretty(&mut *out, &values)?;
        writeln!(out)?;
    } else {
        for v in values {
            serde_json::to_writer(&mut *out, &v)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// The fleet's entries as CSV, each with its servers ("hosts", separated by spaces).
fn fleet_csv(out: &mut dyn Write, found: &[FleetEntry]) -> Result<()> {
    writeln!(
        out,
        "source,rules,events,first_seen,last_seen,expires,times_flagged,country,asn,as_org,hosts"
    )?;
    for f in found {
        let mut fields = logward::store::export::csv_fields(&f.entry, false);
        fields.push(f.hosts.join(" "));
        logward::store::export::csv_record(out, &fields)?;
    }
    Ok(())
}

/// Whether fleet mode is configured (a `[fleet]` url, or `--fleet-url`).
pub fn configured(config: &Config) -> bool {
    config.fleet.as_ref().is_some_and(|f| f.url.is_some())
}

/// Whether this server records near misses for the fleet: fleet mode with `min_hosts` of 2
/// or more, where a fleet ban may come from servers that each saw too little.
pub fn counts_near_misses(config: &Config) -> bool {
    configured(config)
        && config
            .fleet
            .as_ref()
            .and_then(|f| f.min_hosts)
            .is_some_and(|n| n >= 2)
}

/// The fleet settings, checked: a url and a CA file are required.
pub fn settings(config: &Config) -> Result<Settings> {
    let table = config.fleet.clone().unwrap_or_default();
    let Some(url) = table.url else {
        bail!("no fleet database: set url in the config's [fleet] table (or --fleet-url)");
    };
    logward::fleet::connect::parse_url(&url)?;
    let Some(ca_file) = table.ca_file else {
        bail!(
            "no CA for the fleet database: set ca_file in the config's [fleet] table \
             (or --fleet-ca-file); the connection always uses TLS and checks the server"
        );
    };
    let host = match table.host.or_else(logward::fleet::host_name) {
        Some(h) if valid_host(&h) => h,
        Some(h) => bail!(
            "fleet host {:?}: a host name is 1 to 63 letters, digits and . _ -; \
             set host in the config's [fleet] table",
            logward::escape::text(h.as_bytes())
        ),
        None => bail!("no host name: set host in the config's [fleet] table"),
    };
    if table.min_hosts == Some(0) {
        bail!("--fleet-min-hosts: 0 servers; write 1 or more");
    }
    Ok(Settings {
        url,
        password_file: table.password_file,
        ca_file,
        host,
        min_hosts: table.min_hosts,
    })
}

pub use logward::fleet::valid_host;

/// Sample lines older than the retention window (`older_than`, default 7d) are not pushed.
fn sample_max_age(config: &Config) -> i64 {
    config
        .older_than
        .as_deref()
        .and_then(logward::timefmt::parse_duration)
        .unwrap_or(7 * 86_400)
}

/// A pusher for the store at `store`, when fleet mode is configured; a fleet that cannot
/// be set up is reported and left out, so local work goes on.
fn pusher(config: &Config, store: &Path) -> Option<logward::fleet::push::Pusher> {
    if !configured(config) {
        return None;
    }
    let made = settings(config).and_then(|s| {
        logward::fleet::push::Pusher::new(s, store, sample_max_age(config)).map_err(Into::into)
    });
    match made {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "logward: fleet: error: {}; flags stay local",
                chain(e.as_ref())
            );
            None
        }
    }
}

/// After `scan` recorded its flags: pushes the outbox (a second try after a second); when
/// the database cannot be reached, says how many entries wait for the next run.
pub fn push_after_scan(config: &Config, store: &Path) {
    let Some(mut pusher) = pusher(config, store) else {
        return;
    };
    let mut result = pusher.drain(logward::timefmt::unix_now());
    if result.is_err() {
        std::thread::sleep(logward::fleet::push::FIRST_PAUSE);
        result = pusher.drain(logward::timefmt::unix_now());
    }
    match result {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "logward: fleet: pushed {}",
            pushed_text(n, pusher.near_misses_pushed())
        ),
        Err(e) => eprintln!(
            "logward: fleet: warning: {}; {} in the store's outbox for the next scan, \
             watch or fleet sync",
            chain(&e),
            super::count(
                pusher.pending().unwrap_or(0),
                "source waits",
                "sources wait"
            )
        ),
    }
}

/// "3 flagged sources", or with near misses among the `total` entries pushed, "3 flagged
/// sources and 2 near misses".
fn pushed_text(total: u64, near_misses: u64) -> String {
    let flags = super::count(
        total.saturating_sub(near_misses),
        "flagged source",
        "flagged sources",
    );
    match near_misses {
        0 => flags,
        n => format!(
            "{flags} and {}",
            super::count(n, "near miss", "near misses")
        ),
    }
}

/// Hands the fleet's bans to this server's actions (nftables set, `--on-flag`), each once
/// per ban (again when it was extended), except sources this server allows: its run's
/// allowlist and loopback (`fixed`) and the store's allowlist, read at each batch.
pub struct BanApplier {
    actions: Actions,
    applied: HashMap<IpNet, i64>,
    store: Option<Store>,
    fixed: Vec<IpNet>,
}

impl BanApplier {
    pub fn new(actions: Actions, store: Option<Store>, fixed: Vec<IpNet>) -> BanApplier {
        BanApplier {
            actions,
            applied: HashMap::new(),
            store,
            fixed,
        }
    }

    /// Applies `bans`, logging each; returns how many were new to the actions.
    pub fn apply(&mut self, bans: &[FleetBan], now: i64) -> usize {
        let allowed: Vec<IpNet> = self
            .store
            .as_ref()
            .and_then(|s| s.allowlist().ok())
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.net)
            .chain(self.fixed.iter().copied())
            .collect();
        self.applied.retain(|_, expires| *expires > now);
        let mut n = 0;
        for ban in bans {
            let overlaps = allowed
                .iter()
                .any(|a| a.contains(&ban.source.network()) || ban.source.contains(&a.network()));
            if overlaps || ban.expires <= now {
                continue;
            }
            if self
                .applied
                .get(&ban.source)
                .is_some_and(|e| *e >= ban.expires)
            {
                continue;
            }
            self.applied.insert(ban.source, ban.expires);
            // Rule and host names come from other servers' reports: escaped for the terminal.
            let how = if ban.spread {
                "flagged or nearly flagged (a spread attack)"
            } else {
                "flagged"
            };
            eprintln!(
                "logward: fleet: {} {how} by {} on {}, banned until {}",
                net::display(ban.source),
                logward::escape::text(ban.rules.join(",").as_bytes()),
                logward::escape::text(ban.hosts.join(",").as_bytes()),
                rfc3339(ban.expires)
            );
            self.actions.flag(
                &FlagEvent {
                    source: ban.source,
                    rules: ban.rules.clone(),
                    expires: ban.expires,
                    events: ban.events.max(0) as u64,
                },
                now,
            );
            n += 1;
        }
        n
    }

    /// Applies what is pending to nftables and stops the actions.
    pub fn finish(self) {
        self.actions.finish();
    }

    /// Runs every queued action to its end, then stops them: for `fleet sync`.
    pub fn drain(self) {
        self.actions.drain();
    }
}

/// `watch`'s link to the fleet: pushes the outbox every `every`, pulls the other servers'
/// bans into a second set of actions made with `actions` (none on sources in `allow` or
/// the store's allowlist), and logs outages and recoveries once each; `None` without
/// fleet mode.
pub fn link_in_background(
    config: &Config,
    store: &Path,
    every: Duration,
    actions: ActionSettings,
    allow: Vec<IpNet>,
    erase_in: Vec<String>,
) -> Option<Link> {
    let pusher = pusher(config, store)?;
    let puller = match settings(config).map(|s| Puller::open(s, store)) {
        Ok(Ok(p)) => Some(p),
        Ok(Err(e)) => {
            eprintln!("logward: fleet: error: {}; not pulling bans", chain(&e));
            None
        }
        Err(e) => {
            eprintln!(
                "logward: fleet: error: {}; not pulling bans",
                chain(e.as_ref())
            );
            None
        }
    };
    let (erasing, config_copy, store_copy) =
        (settings(config).ok(), config.clone(), store.to_path_buf());
    // A look costs a connection; every report wakes the link, so look at most every 5 s.
    let mut looked: Option<std::time::Instant> = None;
    let mut applier = Some(BanApplier::new(
        Actions::start(actions, &action_log()),
        Store::open(store).ok(),
        allow,
    ));
    Some(Link::spawn(
        pusher,
        puller,
        every,
        logward::timefmt::unix_now,
        move |event| match event {
            LinkEvent::Pushed {
                sent,
                near_misses,
                recovered,
            } if recovered => eprintln!(
                "logward: fleet: reconnected; pushed {}",
                pushed_text(sent, near_misses)
            ),
            LinkEvent::Pushed { .. } => {}
            LinkEvent::PushFailed {
                error,
                pending,
                retry_in,
            } => eprintln!(
                "logward: fleet: warning: {}; flagging and banning go on locally, {} \
                 in the outbox, retrying from {} s on",
                chain(&error),
                super::count(pending, "source waits", "sources wait"),
                retry_in.as_secs().max(1)
            ),
            LinkEvent::Bans(bans) => {
                if let Some(a) = applier.as_mut() {
                    a.apply(&bans, logward::timefmt::unix_now());
                }
            }
            LinkEvent::CheckErasures => {
                if looked.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
                    return;
                }
                looked = Some(std::time::Instant::now());
                if let Some(settings) = &erasing
                    && let Err(e) =
                        carry_out_erasures(settings, &erase_in, Some(&store_copy), &config_copy)
                {
                    eprintln!(
                        "logward: fleet: warning: erasure requests: {}",
                        chain(e.as_ref())
                    );
                }
            }
            LinkEvent::Stopped => {
                if let Some(a) = applier.take() {
                    a.finish();
                }
            }
            LinkEvent::PullFailed { error, .. } => eprintln!(
                "logward: fleet: warning: {}; not learning other servers' bans until it \
                 is back",
                chain(&error)
            ),
            LinkEvent::PullRecovered => {
                eprintln!("logward: fleet: reconnected; learning other servers' bans again")
            }
        },
    ))
}

/// Where the actions of learnt bans report: stderr, as watch's own do.
fn action_log() -> Log {
    std::sync::Arc::new(|message: &str| eprintln!("logward: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_wins_over_the_fleet_table() {
        let mut config = Config::parse(
            "[fleet]\nurl = \"postgres://a@db/f\"\nca_file = \"/ca.pem\"\nhost = \"web1\"\n",
            std::path::Path::new("c"),
        )
        .unwrap();
        FleetOptions {
            fleet_host: Some("web2".into()),
            ..FleetOptions::default()
        }
        .apply(&mut config);
        let s = settings(&config).unwrap();
        assert_eq!(s.host, "web2");
        assert_eq!(s.url, "postgres://a@db/f");
        assert_eq!(s.ca_file, PathBuf::from("/ca.pem"));
        let mut none = Config::default();
        assert!(!configured(&none));
        FleetOptions {
            fleet_url: Some("postgres://a@db/f".into()),
            ..FleetOptions::default()
        }
        .apply(&mut none);
        let err = settings(&none).unwrap_err().to_string();
        assert!(err.contains("ca_file"), "{err}");
    }

    #[test]
    fn host_names() {
        assert!(valid_host("web-01.example.net"));
        assert!(!valid_host(""));
        assert!(!valid_host("a b"));
        assert!(!valid_host("web1\"; DROP"));
        assert!(!valid_host(&"a".repeat(64)));
    }
}
