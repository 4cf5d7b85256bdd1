//! `logward watch`: the options, turned into the library's `watch::Settings` and
//! detection, and the loop around [`Watcher::poll`]: a round, then a sleep of the interval
//! unless the files are still being caught up with. Runs in the foreground for systemd: the
//! watch's messages go to stderr one line per event, SIGHUP reloads the configuration and
//! the rules, SIGTERM and SIGINT stop it after saving the store and the positions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use logward::error::chain;
use logward::format::FormatSpec;
use logward::metrics::http::{Page, Server};
use logward::watch::actions::ActionSettings;
use logward::watch::nft::NftSet;
use logward::watch::{Log, Settings, Watcher};

use super::detection::{self, DetectArgs};
use super::{Config, Outcome, state, switch};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Log files, directories (watched for access logs appearing in them) or quoted glob
    /// patterns such as '/var/log/nginx/*.log'. Gzip files are not followed.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,

    /// Log format: auto (per file, from its first lines), a preset, nginx:'<log_format>' or
    /// apache:'<LogFormat>', or one of these after a wrapper (journal:combined; see `scan
    /// --help`). [default: auto]
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// How often files are checked for new lines (like 250ms or 1s). [default: 250ms]
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,

    /// Read files found at start from their beginning, not their end. Files known from the
    /// saved positions always resume where they stopped.
    #[arg(long, overrides_with = "no_from_start")]
    pub from_start: bool,

    /// Undoes --from-start (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "from_start")]
    pub no_from_start: bool,

    /// Run this command (with sh -c) for each new flag; it gets LOGWARD_SOURCE,
    /// LOGWARD_RULES, LOGWARD_EXPIRES (RFC 3339) and LOGWARD_EVENTS in its environment.
    #[arg(long, value_name = "CMD")]
    pub on_flag: Option<String>,

    /// Keep nftables sets in sync: [FAMILY:]TABLE:SET4[,SET6], like
    /// inet:logward:flagged_v4,flagged_v6 (the sets `logward flagged -f nftables` makes).
    #[arg(long, value_name = "SPEC")]
    pub nft_set: Option<String>,

    /// How often to log a status line (lines, lines/s, lag); 0 turns it off. [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub status_every: Option<String>,

    /// Serve metrics over HTTP at http://ADDR/metrics for Prometheus (lines, lag,
    /// backlog, open files, buckets, flags per rule, failed nft runs), such as
    /// 127.0.0.1:9321; port 0 takes a free port, which the start message names. Whoever
    /// can reach the address can read them: keep it on loopback or behind a firewall.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// The longest an --on-flag command or nft may run before it is killed.
    #[arg(long, hide = true, value_name = "DURATION", default_value = "10s")]
    pub action_timeout: String,

    /// Write line counts per file (JSON) here whenever the positions are saved.
    #[arg(long, hide = true, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,

    #[command(flatten)]
    pub detect: DetectArgs,
}

pub use logward::timefmt::parse_interval;

/// `127.0.0.1:9321`, `[::1]:9321`, `0.0.0.0:9321`: an address and a port, no name.
pub fn parse_listen(text: &str) -> Option<SocketAddr> {
    text.trim().parse().ok()
}

/// How often at most the page `/metrics` serves is renewed while lines stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Sets the handlers: they only set a flag the main loop reads.
fn install_signals() {
    let set = |sig: libc::c_int, handler: extern "C" fn(libc::c_int)| {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and
        // the sigaction struct is fully initialized before use.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    };
    set(libc::SIGTERM, on_stop);
    set(libc::SIGINT, on_stop);
    set(libc::SIGHUP, on_reload);
}

pub fn run(args: WatchArgs, config: &Config) -> Result<Outcome> {
    let options = Options::new(&args, config)?;
    let mut config = config.clone();
    let detection = detection::setup(&args.detect, &config)?;
    // With a [fleet], the store's flags go to the fleet's database and the other servers'
    // bans come back to these actions (see `logward fleet`).
    let allow = detection::fixed_allowlist(&args.detect.input, &config)?;
    let fleet_link = detection.store.as_ref().and_then(|s| {
        let actions = ActionSettings {
            on_flag: options.on_flag.clone(),
            nft: options.nft.clone(),
            timeout: options.action_timeout,
            nft_failures: Default::default(),
        };
        super::fleet::link_in_background(
            &config,
            s.path(),
            options.interval,
            actions,
            allow,
            args.paths.clone(),
        )
    });
    let state_dir = match &detection.store {
        Some(store) => store.state_dir(),
        None => state::state_dir(args.detect.store.as_deref(), &config)?,
    };
    let settings = options.watch_settings(&args, &config, &state_dir);
    let positions = settings.positions.clone();
    let rules = detection.rules.rules().len();
    let store_name = detection
        .store
        .as_ref()
        .map_or("off".to_string(), |s| s.path().display().to_string());

    // Listening before the watch starts: a port in use fails the start, not later.
    let page = Page::new();
    let server = match options.listen {
        Some(addr) => Some(Server::start(addr, page.clone()).context("--metrics-listen")?),
        None => None,
    };
    install_signals();
    let log: Log = Arc::new(|message: &str| eprintln!("logward: {message}"));
    let mut watcher = Watcher::start(settings, detection, log)?;
    eprintln!(
        "logward: watching {} (every {} ms), {rules} rules, store {store_name}",
        args.paths.join(" "),
        options.interval.as_millis(),
    );
    if let Some(server) = &server {
        eprintln!(
            "logward: serving metrics on http://{}/metrics",
            server.addr()
        );
        page.publish(watcher.metrics().render());
    }
    let served = server.as_ref().map(|_| &page);
    poll_until_stopped(&args, &mut config, &mut watcher, served, options.interval);
    drop(server);
    let done = watcher.finish();
    // One last push of what the recorder stored.
    drop(fleet_link);
    eprintln!(
        "logward: stopped after {} lines, {} flagged; positions saved in {}",
        done.lines,
        done.flagged,
        positions.display()
    );
    Ok(Outcome::Success)
}

/// The watch's format, timing and actions, from the command line or else the config.
struct Options {
    format: FormatSpec,
    interval: Duration,
    status_every: Duration,
    action_timeout: Duration,
    nft: Option<NftSet>,
    on_flag: Option<String>,
    listen: Option<SocketAddr>,
}

impl Options {
    /// Reads and checks the options: the command line wins over the config.
    fn new(args: &WatchArgs, config: &Config) -> Result<Options> {
        let format = crate::cli::format_setting(args.format.clone(), config)?;
        let interval = duration_setting(
            args.interval.as_deref(),
            config.interval.as_deref(),
            "interval",
            "250ms",
        )?
        .max(Duration::from_millis(10));
        let status_every = duration_setting(
            args.status_every.as_deref(),
            config.status_every.as_deref(),
            "status-every",
            "60s",
        )?;
        let action_timeout = duration_setting(Some(&args.action_timeout), None, "", "10s")?;
        let nft = match args.nft_set.as_deref().or(config.nft_set.as_deref()) {
            Some(text) => Some(NftSet::parse(text).context("--nft-set")?),
            None => None,
        };
        let on_flag = args.on_flag.clone().or_else(|| config.on_flag.clone());
        let listen = match args
            .metrics_listen
            .as_deref()
            .or(config.metrics_listen.as_deref())
        {
            Some(text) => Some(parse_listen(text).with_context(|| {
                format!(
                    "--metrics-listen: {text:?} is not an address and port such as 127.0.0.1:9321"
                )
            })?),
            None => None,
        };
        Ok(Options {
            format,
            interval,
            status_every,
            action_timeout,
            nft,
            on_flag,
            listen,
        })
    }

    /// The library's watch settings, with the positions kept in `state_dir`.
    fn watch_settings(&self, args: &WatchArgs, config: &Config, state_dir: &Path) -> Settings {
        Settings {
            paths: args.paths.clone(),
            format: self.format.clone(),
            from_start: switch(args.from_start, args.no_from_start, config.from_start),
            positions: state_dir.join("positions.json"),
            stats_file: args.stats_file.clone(),
            status_every: self.status_every,
            actions: ActionSettings {
                on_flag: self.on_flag.clone(),
                nft: self.nft.clone(),
                timeout: self.action_timeout,
                ..ActionSettings::default()
            },
            near_misses: super::fleet::counts_near_misses(config),
        }
    }
}

/// A duration option: the flag, else the config's key, else `default`; `name` is the
/// option's, for the error.
fn duration_setting(
    flag: Option<&str>,
    key: Option<&str>,
    name: &str,
    default: &str,
) -> Result<Duration> {
    let text = flag.or(key).unwrap_or(default);
    parse_interval(text)
        .with_context(|| format!("--{name}: not a duration: {text:?} (like 250ms or 1s)"))
}

/// Polls the files until SIGTERM or SIGINT: reloads on SIGHUP, renews the metrics `page`
/// (when served) once caught up or every [`PUBLISH_EVERY`], and once caught up waits the
/// `interval` before the next round.
fn poll_until_stopped(
    args: &WatchArgs,
    config: &mut Config,
    watcher: &mut Watcher,
    page: Option<&Page>,
    interval: Duration,
) {
    let mut published = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        if RELOAD.swap(false, Ordering::SeqCst) {
            reload(args, config, watcher);
        }
        let round = watcher.poll();
        if let Some(page) = page
            && (round.caught_up() || published.elapsed() >= PUBLISH_EVERY)
        {
            page.publish(watcher.metrics().render());
            published = Instant::now();
        }
        // Caught up: wait. Still reading large blocks: go on at once.
        if round.caught_up() {
            sleep_unless_stopped(interval);
        }
    }
}

fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while !STOP.load(Ordering::SeqCst) && !RELOAD.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Re-reads the configuration file and the rules; on an error keeps what runs.
fn reload(args: &WatchArgs, config: &mut Config, watcher: &mut Watcher) {
    let fresh = match &config.path {
        Some(path) => match Config::read(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "logward: reload failed, keeping the running rules: {}",
                    chain(e.as_ref())
                );
                return;
            }
        },
        None => config.clone(),
    };
    match detection::setup(&args.detect, &fresh) {
        Ok(d) => {
            watcher.reload(d);
            *config = fresh;
        }
        Err(e) => eprintln!(
            "logward: reload failed, keeping the running rules: {}",
            chain(e.as_ref())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("0"), Some(Duration::ZERO));
        assert_eq!(parse_interval("fast"), None);
        assert_eq!(parse_interval("5"), None);
    }
}
