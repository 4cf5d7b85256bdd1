//! Detection settings shared by `scan`, `watch` and `report`: the rule set (built-ins,
//! the config's `[rule.NAME]` tables, `--rules FILE`), the allowlist (`--allow`,
//! `--allow-file`, the config's keys, loopback, and the store's persistent allowlist),
//! GeoIP/ASN databases and the store, turned into the library's [`Detection`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use ipnet::IpNet;
use logward::detect::crawlers::Crawlers;
use logward::detect::{self, CompiledRules, RuleSet};
use logward::error::chain;
use logward::geo::Geo;
use logward::scan::Detection;
use logward::store::BanPolicy;
use logward::timefmt::parse_duration;

use super::{Config, state, switch};

/// What detection starts from, shared by `scan`, `watch` and `report`: the rules, the
/// allowlist given for the run, crawler ranges and the GeoIP/ASN databases.
#[derive(Debug, Args, Clone, Default)]
pub struct RuleInputArgs {
    /// A TOML rules file that adds rules, changes thresholds or disables built-ins
    /// (see `logward rules` and the README).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Never flag this address or network (repeatable), for this run. Loopback is allowed
    /// too, unless --no-default-allow, and so is the store's allowlist (`logward allow`).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,

    /// Do not allow loopback (127.0.0.0/8, ::1) by default: for logs written behind a local
    /// proxy, or test logs made on localhost.
    #[arg(long, overrides_with = "default_allow")]
    pub no_default_allow: bool,

    /// Undoes --no-default-allow (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "no_default_allow")]
    pub default_allow: bool,

    /// A file of addresses or networks never flagged, one per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    pub allow_file: Option<PathBuf>,

    /// A search engine's published address ranges, as NAME=FILE: googlebot, bingbot,
    /// applebot, duckduckbot or gptbot, and the JSON file the engine publishes (or one CIDR
    /// per line); repeatable. A source inside them is never flagged for volume (http-crawl,
    /// http-flood, http-probing), only for payloads; a source whose user agent claims a
    /// loaded crawler from outside its ranges is flagged by fake-crawler.
    #[arg(long, value_name = "NAME=FILE")]
    pub crawler_ranges: Vec<String>,

    /// A MaxMind Country or City database: the country of flagged sources (and the
    /// countries table of `report`).
    #[arg(long, value_name = "FILE")]
    pub geoip: Option<PathBuf>,

    /// A MaxMind ASN database: the AS number and organisation of flagged sources (and the
    /// AS table of `report`).
    #[arg(long, value_name = "FILE")]
    pub asn: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct DetectArgs {
    #[command(flatten)]
    pub input: RuleInputArgs,

    /// The flagged-source store (SQLite). Default: $LOGWARD_STORE, the config's store,
    /// /var/lib/logward/logward.db when writable, else ~/.local/state/logward/logward.db.
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// Run detection without writing to the store.
    #[arg(long, overrides_with = "use_store")]
    pub no_store: bool,

    /// Undoes --no-store (from the config file, or earlier on the line).
    #[arg(long = "use-store", hide = true, overrides_with = "no_store")]
    pub use_store: bool,

    /// Count again what the store has already counted: files seen before (same device,
    /// inode, size and first bytes) and the old part of a live log that grew since.
    #[arg(long, overrides_with = "no_rescan")]
    pub rescan: bool,

    /// Undoes --rescan (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "rescan")]
    pub no_rescan: bool,

    /// First ban of a flagged source; doubled for each repeat. [default: 4h]
    #[arg(long, value_name = "DURATION")]
    pub ban: Option<String>,

    /// The longest ban. [default: 7d]
    #[arg(long, value_name = "DURATION")]
    pub max_ban: Option<String>,

    /// A flag whose last event is at most this long before the clock is banned from the
    /// moment it is recorded (a nightly scan of yesterday's log); an older one (a replay,
    /// forensics) is recorded without an active ban. [default: 24h]
    #[arg(long, value_name = "DURATION")]
    pub ban_window: Option<String>,
}

/// The rule set for this run: built-ins, then the config's inline rules, then `--rules`.
pub fn rule_set(rules_file: Option<&Path>, config: &Config) -> Result<RuleSet> {
    let mut set = detect::builtin_rules();
    if let (Some(_), Some(text)) = (&config.rule, &config.text) {
        let origin = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("config"));
        set = detect::load_config_rules(text, &origin, set)?;
    }
    if let Some(path) = rules_file {
        set = detect::load_rules_file(path, set)?;
    } else if let Some(path) = config.rules.as_deref() {
        let origin = config
            .path
            .as_deref()
            .map_or("the config file".to_string(), |p| p.display().to_string());
        set = detect::load_rules_file(path, set)
            .with_context(|| format!("the rules file named by key rules in {origin}"))?;
    }
    Ok(set)
}

/// Parses an address or network; a bare address is its /32 or /128.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// Reads an allowlist file: one address or network per line, `#` starts a comment.
pub fn read_allow_file(path: &Path) -> Result<Vec<IpNet>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the allowlist", path.display()))?;
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match parse_net(entry) {
            Some(net) => nets.push(net),
            None => bail!(
                "{}:{}: not an address or network: {entry:?}",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(nets)
}

/// The networks allowed for this run: `--allow` and the config's `allow`, then the
/// `--allow-file` or the config's `allow_file` (loopback and the store's list not included).
pub fn run_allowlist(input: &RuleInputArgs, config: &Config) -> Result<Vec<IpNet>> {
    let mut nets = Vec::new();
    for text in input.allow.iter().chain(config.allow.iter().flatten()) {
        match parse_net(text) {
            Some(n) => nets.push(n),
            None => bail!("--allow: not an address or network: {text:?}"),
        }
    }
    if let Some(path) = input.allow_file.as_deref().or(config.allow_file.as_deref()) {
        nets.extend(read_allow_file(path)?);
    }
    Ok(nets)
}

/// The networks a ban learnt from elsewhere (the fleet) must not cover: the run's
/// allowlist ([`run_allowlist`]) and loopback unless `--no-default-allow`. The store's
/// list is checked where the bans are applied, as it may change while `watch` runs.
pub fn fixed_allowlist(input: &RuleInputArgs, config: &Config) -> Result<Vec<IpNet>> {
    let mut nets = run_allowlist(input, config)?;
    if allows_loopback(input, config) {
        nets.extend(
            detect::allowlist::DEFAULT_ALLOWED
                .iter()
                .filter_map(|n| n.parse::<IpNet>().ok()),
        );
    }
    Ok(nets)
}

/// Whether loopback is allowed: yes unless `--no-default-allow` or the config says so.
pub fn allows_loopback(input: &RuleInputArgs, config: &Config) -> bool {
    !switch(
        input.no_default_allow,
        input.default_allow,
        config.default_allow.map(|on| !on),
    )
}

/// The networks of the store's allowlist for a run that does not use the store
/// (`--no-store`): none when there is no store (or no place for one). Nothing is written
/// to it, though opening it adds an `allowlist` table an older store lacks.
fn stored_allowlist(args: &DetectArgs, config: &Config) -> Result<Vec<IpNet>> {
    let Ok(path) = state::store_path(args.store.as_deref(), config) else {
        return Ok(Vec::new());
    };
    if !path.exists() {
        return Ok(Vec::new());
    }
    let store = state::open_store(&path)?;
    let list = store.allowlist()?;
    Ok(list.into_iter().map(|a| a.net).collect())
}

/// The end of each ban the store holds still active at `now` for one of `sources`: the ban
/// column of a page made without recording (`logward report`). Empty without a store.
pub fn stored_bans(
    args: &DetectArgs,
    config: &Config,
    sources: &std::collections::HashSet<IpNet>,
    now: i64,
) -> Result<std::collections::HashMap<IpNet, i64>> {
    let Ok(path) = state::store_path(args.store.as_deref(), config) else {
        return Ok(Default::default());
    };
    if sources.is_empty() || !path.exists() {
        return Ok(Default::default());
    }
    let store = state::open_store(&path)?;
    let active = logward::store::Filter {
        active_at: Some(now),
        ..Default::default()
    };
    Ok(store
        .query(&active)?
        .into_iter()
        .filter(|e| sources.contains(&e.source))
        .map(|e| (e.source, e.expires))
        .collect())
}

/// The detection of one run, from the command line and the configuration file.
pub fn setup(args: &DetectArgs, config: &Config) -> Result<Detection> {
    let mut set = rule_set(args.input.rules.as_deref(), config)?;
    let crawler_settings = if args.input.crawler_ranges.is_empty() {
        config.crawler_ranges.clone().unwrap_or_default()
    } else {
        args.input.crawler_ranges.clone()
    };
    let crawlers = Crawlers::load(&crawler_settings)?;
    if !crawlers.is_empty() {
        set.insert(crawlers.fake_crawler_rule());
    }
    let rules = Arc::new(CompiledRules::new(&set)?.with_crawlers(crawlers));
    let nets = run_allowlist(&args.input, config)?;
    let geo = Geo::open(
        args.input.geoip.as_deref().or(config.geoip.as_deref()),
        args.input.asn.as_deref().or(config.asn.as_deref()),
    )?;
    let store = if switch(args.no_store, args.use_store, config.no_store) {
        None
    } else {
        let path = state::store_path(args.store.as_deref(), config)?;
        let mut store = state::open_store(&path)?;
        let duration = |flag: &Option<String>,
                        key: &Option<String>,
                        name: &str,
                        default: i64|
         -> Result<i64> {
            match flag.as_deref().or(key.as_deref()) {
                None => Ok(default),
                Some(t) => parse_duration(t)
                    .with_context(|| format!("--{name}: not a duration: {t:?} (like 4h or 7d)")),
            }
        };
        let base = BanPolicy::default();
        store.set_ban_policy(BanPolicy {
            base: duration(&args.ban, &config.ban, "ban", base.base)?,
            max: duration(&args.max_ban, &config.max_ban, "max-ban", base.max)?,
            window: duration(
                &args.ban_window,
                &config.ban_window,
                "ban-window",
                base.window,
            )?,
        });
        Some(store)
    };
    let allow_loopback = allows_loopback(&args.input, config);
    let mut detection = Detection::new(
        rules,
        nets,
        allow_loopback,
        geo,
        store,
        switch(args.rescan, args.no_rescan, config.rescan),
    );
    if detection.store.is_some() {
        detection.refresh_allowlist()?;
    } else {
        // --no-store writes nothing, but what the store allows is still never flagged.
        match stored_allowlist(args, config) {
            Ok(stored) => detection.set_stored_allowlist(stored),
            Err(e) => {
                eprintln!(
                    "logward: warning: the store's allowlist is not applied: {}",
                    chain(e.as_ref())
                );
                detection.set_stored_allowlist(Vec::new());
            }
        }
    }
    Ok(detection)
}
