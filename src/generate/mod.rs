//! The seeded access-log generator: realistic traffic in every supported format, optional
//! labelled attacks, a few malformed lines, and the ground truth that says which sources
//! are abusive. Used for tests, sample logs and benchmarks; it knows nothing of parsing or
//! detection.
//!
//! The same [`GenConfig`] always produces the same bytes (the PRNG is [`rng::Rng`], written
//! here so no crate update can change the output).
//!
//! Traffic model: a population of clients (about `lines / 20`, at most 50 000) with
//! Zipf-like popularity makes page views; a page view is one page or API request followed,
//! within a second, by up to 15 static assets. Each client waits 10 to 30 s between page
//! views and may get a 404 (or a `"-"` 400) at most once every 2 minutes, so no normal client
//! comes near a detection threshold. When `lines` is large and `span_secs` small, the span
//! is widened (see [`GroundTruth::span_secs`]) so that at most a third of the clients are
//! ever waiting: more requests per client per second would be a flood, not a busy site.
//!
//! Apache-style formats ([`Format::Combined`], [`Format::Common`],
//! [`Format::VhostCombined`]) write a `"` inside a quoted field as `\"` and a zero size as
//! `-`; nginx-only formats ([`Format::Main`], [`Format::Custom`]) write `\x22` and `0`;
//! [`Format::Json`] follows nginx `escape=json`, where missing values are empty strings.

mod attacks;
mod rng;
mod shapes;
mod vocab;
mod write;

use std::io::{self, Write};
use std::str::FromStr;

use serde::Serialize;

pub use rng::Rng;
use shapes::ShapeStream;
pub use shapes::{Profile, UnknownProfile};
use vocab::*;
use write::{Escape, Out};
pub use write::{civil_from_days, days_from_civil};

/// nginx `log_format` of [`Format::Main`]: combined plus the forwarded-for header.
pub const MAIN_LOG_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;

/// nginx `log_format` of [`Format::Custom`]: combined plus request time and host.
pub const CUSTOM_LOG_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time host=$host"#;

/// nginx `log_format json escape=json` of [`Format::Json`].
pub const JSON_LOG_FORMAT: &str = r#"{"time_iso8601":"$time_iso8601","remote_addr":"$remote_addr","remote_user":"$remote_user","request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,"http_referer":"$http_referer","http_user_agent":"$http_user_agent","http_x_forwarded_for":"$http_x_forwarded_for","host":"$host"}"#;

/// Unix time of 2026-11-15T00:00:00Z, the default start.
pub const DEFAULT_START: i64 = 1_794_700_800;

/// Output format of generated lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Format {
    /// NCSA combined: `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
    Combined,
    /// NCSA common: `%h %l %u %t "%r" %>s %b`.
    Common,
    /// Apache `vhost_combined`: `%v:%p` then combined.
    VhostCombined,
    /// nginx `main` as shipped in many distributions: [`MAIN_LOG_FORMAT`].
    Main,
    /// nginx JSON lines: [`JSON_LOG_FORMAT`].
    Json,
    /// nginx with extra fields: [`CUSTOM_LOG_FORMAT`].
    Custom,
}

impl Format {
    /// Names accepted by [`FromStr`], in declaration order.
    pub const NAMES: [&'static str; 6] =
        ["combined", "common", "vcombined", "main", "json", "custom"];

    /// The Apache `LogFormat` or nginx `log_format` string that produces this format.
    pub fn log_format(self) -> &'static str {
        match self {
            Format::Combined => r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#,
            Format::Common => r#"%h %l %u %t "%r" %>s %b"#,
            Format::VhostCombined => {
                r#"%v:%p %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#
            }
            Format::Main => MAIN_LOG_FORMAT,
            Format::Json => JSON_LOG_FORMAT,
            Format::Custom => CUSTOM_LOG_FORMAT,
        }
    }

    fn escape(self) -> Escape {
        match self {
            Format::Combined | Format::Common | Format::VhostCombined => Escape::Apache,
            Format::Main | Format::Custom => Escape::Nginx,
            Format::Json => Escape::Json,
        }
    }
}

/// An unknown format name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl std::fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown format {:?} (expected one of: {})",
            self.0,
            Format::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Ok(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "combined" => Format::Combined,
            "common" | "clf" => Format::Common,
            // `vcombined` as in every other command; Apache's own name still works.
            "vcombined" | "vhost_combined" | "vhost" => Format::VhostCombined,
            "main" => Format::Main,
            "json" => Format::Json,
            "custom" => Format::Custom,
            _ => return Err(UnknownFormat(s.to_string())),
        })
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (or `YYYY-MM-DD`, or plain unix seconds) to unix seconds.
pub fn parse_start(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("bad start time {s:?} (expected 2026-11-15T00:00:00Z or unix seconds)");
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r)
            .and_then(|x| x.parse::<u32>().ok())
            .map(i64::from)
            .ok_or_else(bad)
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m as u32, d as u32) * 86_400;
    if b.len() > 10 {
        let ok = b.len() == 20 && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z';
        if !ok {
            return Err(bad());
        }
        let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if hh > 23 || mm > 59 || ss > 60 {
            return Err(bad());
        }
        secs += hh * 3600 + mm * 60 + ss;
    }
    Ok(secs)
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GenConfig {
    /// The PRNG seed: the same configuration and seed give the same bytes.
    pub seed: u64,
    /// Exact number of lines written.
    pub lines: u64,
    /// Unix seconds of the first request.
    pub start: i64,
    /// Seconds the traffic spans (may be widened, see the module docs).
    pub span_secs: i64,
    /// Offset written in timestamps, e.g. 60 for `+0100`.
    pub utc_offset_minutes: i32,
    /// How lines are written.
    pub format: Format,
    /// Share of clients with an IPv6 address, 0.0 to 1.0.
    pub ipv6_share: f64,
    /// Malformed lines per million lines (rounded to the nearest line).
    pub malformed_per_million: u32,
    /// Inject the labelled attacks of [`GroundTruth::attackers`].
    pub attacks: bool,
    /// Also inject this many slow exploiters (at most 30), labelled `exploit-slow`: each
    /// sends an exploit payload every 0.5 to 40 s for a few minutes. As many decoy visitors
    /// come with them, whose searches hold apostrophes and SQL words; they are normal
    /// clients, not in the ground truth.
    pub slow_exploiters: u32,
    /// The shape of the normal traffic; [`Profile::Week`] keeps the bytes of logs made
    /// before shapes existed.
    pub profile: Profile,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            seed: 1,
            lines: 10_000,
            start: DEFAULT_START,
            span_secs: 7 * 86_400,
            utc_offset_minutes: 60,
            format: Format::Combined,
            ipv6_share: 0.15,
            malformed_per_million: 100,
            attacks: false,
            slow_exploiters: 0,
            profile: Profile::Week,
        }
    }
}

/// One abusive source and one rule it is expected to trip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attacker {
    /// An address, or a prefix such as `2001:db8:1:2::/64`.
    pub source: String,
    /// One of: http-probing http-crawl http-flood bad-user-agent sensitive-files
    /// path-traversal sqli-probing xss-probing backdoor-probing admin-probing
    /// login-bruteforce login-bruteforce-slow open-proxy bad-http-version exploit-slow
    /// cve-probing wordpress-user-enum cache-bypass-flood.
    pub rule: &'static str,
}

/// What was generated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroundTruth {
    /// The injected attackers, each with the rule it should trip.
    pub attackers: Vec<Attacker>,
    /// Lines written.
    pub lines: u64,
    /// Malformed lines among them.
    pub malformed: u64,
    /// The malformed lines no parser reads as a record (cut short, binary junk, empty);
    /// the others are TLS handshakes sent to a plain HTTP port, which servers log as a
    /// record with a garbage request and which logward reads as such.
    pub unreadable: u64,
    /// Span actually used (at least the configured one).
    pub span_secs: i64,
}

/// Every rule name an attacker may carry.
pub const RULES: [&str; 18] = [
    "http-probing",
    "http-crawl",
    "http-flood",
    "bad-user-agent",
    "sensitive-files",
    "path-traversal",
    "sqli-probing",
    "xss-probing",
    "backdoor-probing",
    "admin-probing",
    "login-bruteforce",
    "login-bruteforce-slow",
    "open-proxy",
    "bad-http-version",
    "exploit-slow",
    "cve-probing",
    "wordpress-user-enum",
    "cache-bypass-flood",
];

const MAX_CLIENTS: u64 = 50_000;
/// Shortest and longest pause of a client between page views.
const PV_GAP_MS: (u64, u64) = (10_000, 30_000);
/// Shortest pause of a client between two error answers (404 or `"-"` 400).
const ERR_GAP_MS: i64 = 120_000;

struct Client {
    addr: (u32, u8),
    user: u8,
    ua: u8,
    host: u8,
    http2: bool,
    next_pv_ms: i64,
    next_err_ms: i64,
}

/// Where a line's referer comes from.
#[derive(Clone, Copy)]
enum Referer {
    None,
    External(u8),
    Home,
    /// The page of the current page view.
    Page,
}

/// One normal request of the current page view.
#[derive(Clone, Copy)]
struct Pending {
    time_ms: i64,
    method: &'static str,
    /// Range in the page-view path arena, or an asset.
    path: PathRef,
    status: u16,
    size: u64,
    rt_ms: u64,
    referer: Referer,
    dash: bool,
}

#[derive(Clone, Copy)]
enum PathRef {
    Arena(u32, u32),
    Asset(u8),
}

/// The fields of one line, borrowed from wherever they live.
struct Line<'a> {
    unix: i64,
    addr: &'a [u8],
    user: &'a [u8],
    /// `None` writes the request as `-`; `Some((method, path, proto))`.
    request: Option<(&'a [u8], &'a [u8], &'a [u8])>,
    status: u16,
    size: u64,
    referer: [&'a [u8]; 3],
    ua: &'a [u8],
    host: &'a [u8],
    port: u16,
    xff: &'a [u8],
    rt_ms: u64,
}

fn write_line(out: &mut Out, fmt: Format, l: &Line, off: i32) {
    let esc = fmt.escape();
    if fmt == Format::Json {
        out.push(b"{\"time_iso8601\":\"");
        out.time_iso(l.unix, off);
        out.push(b"\",\"remote_addr\":\"");
        out.push(l.addr);
        out.push(b"\",\"remote_user\":\"");
        if l.user != b"-" {
            out.escaped(l.user, esc);
        }
        out.push(b"\",\"request\":\"");
        write_request(out, l, esc);
        out.push(b"\",\"status\":");
        out.num(u64::from(l.status));
        out.push(b",\"body_bytes_sent\":");
        out.num(l.size);
        out.push(b",\"request_time\":");
        out.millis(l.rt_ms);
        out.push(b",\"http_referer\":\"");
        for part in l.referer {
            out.escaped(part, esc);
        }
        out.push(b"\",\"http_user_agent\":\"");
        if l.ua != b"-" {
            out.escaped(l.ua, esc);
        }
        out.push(b"\",\"http_x_forwarded_for\":\"");
        out.push(l.xff);
        out.push(b"\",\"host\":\"");
        out.push(l.host);
        out.push(b"\"}");
        return;
    }
    if fmt == Format::VhostCombined {
        out.push(l.host);
        out.push(b":");
        out.num(u64::from(l.port));
        out.push(b" ");
    }
    out.push(l.addr);
    out.push(b" - ");
    out.push(l.user);
    out.push(b" [");
    out.time_local(l.unix, off);
    out.push(b"] \"");
    write_request(out, l, esc);
    out.push(b"\" ");
    out.num(u64::from(l.status));
    out.push(b" ");
    if l.size == 0 && esc == Escape::Apache {
        out.push(b"-");
    } else {
        out.num(l.size);
    }
    if fmt == Format::Common {
        return;
    }
    out.push(b" \"");
    if l.referer.iter().all(|p| p.is_empty()) {
        out.push(b"-");
    } else {
        for part in l.referer {
            out.escaped(part, esc);
        }
    }
    out.push(b"\" \"");
    out.escaped(l.ua, esc);
    out.push(b"\"");
    match fmt {
        Format::Main => {
            out.push(b" \"");
            out.push(if l.xff.is_empty() { b"-" } else { l.xff });
            out.push(b"\"");
        }
        Format::Custom => {
            out.push(b" rt=");
            out.millis(l.rt_ms);
            out.push(b" host=");
            out.push(l.host);
        }
        _ => {}
    }
}

fn write_request(out: &mut Out, l: &Line, esc: Escape) {
    match l.request {
        None => {
            if esc != Escape::Json {
                out.push(b"-");
            }
        }
        Some((m, p, v)) => {
            out.push(m);
            out.push(b" ");
            out.escaped(p, esc);
            out.push(b" ");
            out.push(v);
        }
    }
}

/// Appends a random public IPv4 address outside private, reserved and documentation
/// ranges (the attackers live in the documentation ranges).
fn push_public_v4(rng: &mut Rng, buf: &mut Vec<u8>) -> [u8; 4] {
    loop {
        let x = rng.next_u64();
        let o = [(x >> 24) as u8, (x >> 16) as u8, (x >> 8) as u8, x as u8];
        let bad = matches!(o[0], 0 | 10 | 127 | 224..=255)
            || (o[0] == 172 && (16..=31).contains(&o[1]))
            || (o[0] == 192 && o[1] == 168)
            || (o[0] == 192 && o[1] == 0)
            || (o[0] == 100 && (64..=127).contains(&o[1]))
            || (o[0] == 169 && o[1] == 254)
            || (o[0] == 198 && (18..=19).contains(&o[1]))
            || (o[0] == 198 && o[1] == 51 && o[2] == 100)
            || (o[0] == 203 && o[1] == 0 && o[2] == 113)
            || o[3] == 0
            || o[3] == 255;
        if bad {
            continue;
        }
        for (i, n) in o.iter().enumerate() {
            if i > 0 {
                buf.push(b'.');
            }
            push_dec(buf, u64::from(*n));
        }
        return o;
    }
}

fn push_dec(buf: &mut Vec<u8>, n: u64) {
    if n >= 10 {
        push_dec(buf, n / 10);
    }
    buf.push(b'0' + (n % 10) as u8);
}

fn push_hex16(buf: &mut Vec<u8>, n: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let d = (n >> shift) & 15;
        if d != 0 || started || shift == 0 {
            buf.push(HEX[usize::from(d)]);
            started = true;
        }
    }
}

/// Appends a global-unicast-looking IPv6 address from a common provider block, with all
/// eight groups non-zero so the text form is the canonical one.
fn push_public_v6(rng: &mut Rng, buf: &mut Vec<u8>) {
    const BLOCKS: [u16; 8] = [
        0x2a02, 0x2a01, 0x2003, 0x2600, 0x2605, 0x2406, 0x2804, 0x2a00,
    ];
    let first = *rng.pick(&BLOCKS);
    push_hex16(buf, first);
    for _ in 0..7 {
        buf.push(b':');
        push_hex16(buf, rng.range(1, 0xffff) as u16);
    }
}

/// Builds the client population: addresses in one arena, attributes per client.
fn population(rng: &mut Rng, n: usize, ipv6_share: f64) -> (Vec<u8>, Vec<Client>) {
    let mut arena = Vec::with_capacity(n * 20);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let off = arena.len();
        if rng.chance(ipv6_share) {
            push_public_v6(rng, &mut arena);
        } else {
            let mapped = rng.chance(0.01);
            if mapped {
                arena.extend_from_slice(b"::ffff:");
            }
            push_public_v4(rng, &mut arena);
        }
        let len = arena.len() - off;
        clients.push(Client {
            addr: (off as u32, len as u8),
            user: if rng.chance(0.01) {
                1 + rng.below(USERS.len() as u64) as u8
            } else {
                0
            },
            ua: rng.weighted(UA_CUM) as u8,
            host: rng.weighted(&[6, 8, 9, 10]) as u8,
            http2: rng.chance(0.35),
            next_pv_ms: i64::MIN,
            next_err_ms: i64::MIN,
        });
    }
    (arena, clients)
}

fn asset_size(rng: &mut Rng, path: &str) -> u64 {
    let ext = path.split('?').next().unwrap_or(path);
    if ext.ends_with(".css") {
        rng.range(4_000, 60_000)
    } else if ext.ends_with(".js") {
        rng.range(8_000, 320_000)
    } else if ext.ends_with(".woff2") {
        rng.range(20_000, 90_000)
    } else if ext.ends_with(".ico") {
        1150
    } else {
        rng.range(600, 240_000)
    }
}

/// Writes `cfg.lines` log lines to `out` and returns what they contain.
///
/// Fails with `InvalidInput` when `lines` cannot hold the malformed lines plus, with
/// `attacks`, the roughly 750 attack lines (and the slow exploiters' and decoys' lines), or
/// when more than 30 slow exploiters are asked for; otherwise only with the writer's errors.
///
/// One function because it is the generator's main loop: the clients, attackers, decoys
/// and malformed lines share one clock and one random stream, and the order of their
/// draws is what makes a seed reproduce the same bytes.
pub fn generate(cfg: &GenConfig, out: &mut dyn Write) -> io::Result<GroundTruth> {
    let mut root = Rng::new(cfg.seed);
    let mut rng = root.fork();
    let mut attack_rng = root.fork();
    let mut junk_rng = root.fork();

    let total = cfg.lines;
    let malformed_total =
        ((u128::from(total) * u128::from(cfg.malformed_per_million) + 500_000) / 1_000_000) as u64;
    let n_clients = (total / 20).clamp(20, MAX_CLIENTS) as usize;

    // Widen the span so that at most a third of the clients are ever between page views:
    // page views are at least a third of the lines, a client pauses 20 s on average.
    let pv_est = total / 3 + 1;
    let avg_gap_s = (PV_GAP_MS.0 + PV_GAP_MS.1) / 2 / 1000;
    let min_span = (3 * pv_est * avg_gap_s / n_clients as u64) as i64;
    let span_secs = cfg.span_secs.max(min_span).max(1);
    let start_ms = cfg.start * 1000;
    let span_ms = span_secs * 1000;

    let mut attack_lines: Vec<attacks::AttackLine> = Vec::new();
    let mut attackers = Vec::new();
    if cfg.attacks {
        for a in attacks::build(&mut attack_rng, start_ms, span_ms) {
            attackers.push(Attacker {
                source: a.source,
                rule: a.rule,
            });
            attack_lines.extend(a.lines);
        }
        attack_lines.sort_by_key(|l| l.time_ms);
    }
    if cfg.slow_exploiters > 0 {
        if cfg.slow_exploiters > attacks::MAX_SLOW_EXPLOITERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "at most {} slow exploiters, not {}",
                    attacks::MAX_SLOW_EXPLOITERS,
                    cfg.slow_exploiters
                ),
            ));
        }
        // Forked after the other streams, and only when asked for: logs without slow
        // exploiters keep their bytes.
        let mut slow_rng = root.fork();
        let (exploits, decoys) =
            attacks::slow_exploits(&mut slow_rng, start_ms, span_ms, cfg.slow_exploiters);
        for a in exploits {
            attackers.push(Attacker {
                source: a.source,
                rule: a.rule,
            });
            attack_lines.extend(a.lines);
        }
        attack_lines.extend(decoys);
        attack_lines.sort_by_key(|l| l.time_ms);
    }
    let fixed = malformed_total + attack_lines.len() as u64;
    if fixed > total {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{total} lines cannot hold {fixed} attack and malformed lines"),
        ));
    }
    let mut normal_total = total - fixed;

    let (arena, mut clients) = population(&mut rng, n_clients, cfg.ipv6_share);
    // Shapes draw from their own stream, forked only when asked for: a week's log keeps
    // its bytes.
    let mut shape_stream = None;
    if cfg.profile != Profile::Week {
        let mut shape_rng = root.fork();
        share_nat_gateways(&mut shape_rng, &mut clients, cfg.profile.nat_share());
        if let Some((kind, share)) = cfg.profile.stream() {
            let budget = (normal_total as f64 * share) as u64;
            normal_total -= budget;
            shape_stream = Some(ShapeStream::new(
                kind,
                shape_rng.fork(),
                start_ms,
                span_ms,
                budget,
            ));
        }
    }
    // Zipf-like popularity, exponent 0.8: the top client makes about 2% of the page views
    // with 50 000 clients.
    let mut zipf = Vec::with_capacity(n_clients);
    let mut acc = 0.0f64;
    for i in 0..n_clients {
        acc += 1.0 / ((i + 1) as f64).powf(0.8);
        zipf.push(acc);
    }

    let fmt = cfg.format;
    let off = cfg.utc_offset_minutes;
    let mut w = Out::new(out);
    let mut paths: Vec<u8> = Vec::with_capacity(512);
    let mut queue: Vec<Pending> = Vec::with_capacity(32);
    let mut qpos = 0usize;
    let mut cur_client = 0usize;
    let mut page_range = (0u32, 0u32);
    let mut xff: Vec<u8> = Vec::with_capacity(64);
    let mut scratch: Vec<u8> = Vec::with_capacity(512);
    let mut next_attack = 0usize;
    let mut normal_done = 0u64;
    let mut malformed_done = 0u64;
    let mut unreadable = 0u64;

    for emitted in 0..total {
        // Selection sampling (Knuth's Algorithm S): exactly `malformed_total` lines,
        // uniformly placed.
        let left = total - emitted;
        let malformed_left = malformed_total - malformed_done;
        if malformed_left > 0 && junk_rng.below(left) < malformed_left {
            let c = &clients[junk_rng.below(clients.len() as u64) as usize];
            let addr = &arena[c.addr.0 as usize..][..usize::from(c.addr.1)];
            let now = start_ms
                + (span_ms as u128 * u128::from(normal_done) / u128::from(normal_total.max(1)))
                    as i64;
            let readable = write_malformed(
                &mut w,
                &mut junk_rng,
                &mut scratch,
                fmt,
                addr,
                now / 1000,
                off,
            );
            malformed_done += 1;
            unreadable += u64::from(!readable);
            w.end_line()?;
            continue;
        }

        // Refill the page-view queue when empty.
        if qpos == queue.len() && normal_done < normal_total {
            queue.clear();
            qpos = 0;
            paths.clear();
            let now = start_ms
                + (span_ms as u128 * u128::from(normal_done) / u128::from(normal_total)) as i64;
            cur_client = pick_client(&mut rng, &zipf, &clients, now);
            page_range = page_view(
                &mut rng,
                &mut clients[cur_client],
                now,
                &mut paths,
                &mut queue,
            );
            xff.clear();
            // Drawn for every format so that the traffic does not depend on the format.
            if rng.chance(0.08) {
                push_public_v4(&mut rng, &mut xff);
                xff.extend_from_slice(b", 10.0.");
                push_dec(&mut xff, rng.below(256));
                xff.push(b'.');
                push_dec(&mut xff, rng.range(1, 254));
            }
        }

        let normal_next = queue.get(qpos).map(|p| p.time_ms);
        let attack_next = attack_lines.get(next_attack).map(|a| a.time_ms);
        if let Some(stream) = shape_stream.as_mut()
            && let Some(t) = stream.next_time()
            && normal_next.is_none_or(|n| t <= n)
            && attack_next.is_none_or(|a| t < a)
        {
            let l = stream.next_line();
            let line = Line {
                unix: l.time_ms.div_euclid(1000),
                addr: l.addr,
                user: b"-",
                request: Some((l.method, l.path, b"HTTP/1.1")),
                status: l.status,
                size: l.size,
                referer: [b"", b"", b""],
                ua: l.ua,
                host: HOSTS[0].as_bytes(),
                port: 443,
                xff: b"",
                rt_ms: 3 + (l.time_ms as u64 % 90),
            };
            write_line(&mut w, fmt, &line, off);
            w.end_line()?;
            continue;
        }
        let attack_due = attack_next.is_some_and(|a| normal_next.is_none_or(|n| a <= n));
        if attack_due {
            let a = &attack_lines[next_attack];
            next_attack += 1;
            let line = Line {
                unix: a.time_ms.div_euclid(1000),
                addr: a.addr.as_bytes(),
                user: b"-",
                request: Some((a.method.as_bytes(), a.path.as_bytes(), a.proto.as_bytes())),
                status: a.status,
                size: a.size,
                referer: [b"", b"", b""],
                ua: a.ua.as_bytes(),
                host: HOSTS[0].as_bytes(),
                port: 443,
                xff: b"",
                rt_ms: 2 + (a.time_ms as u64 % 40),
            };
            write_line(&mut w, fmt, &line, off);
            w.end_line()?;
            continue;
        }

        let p = queue[qpos];
        qpos += 1;
        normal_done += 1;
        let c = &clients[cur_client];
        let host = HOSTS[usize::from(c.host)].as_bytes();
        let path: &[u8] = match p.path {
            PathRef::Arena(a, b) => &paths[a as usize..b as usize],
            PathRef::Asset(i) => ASSETS[usize::from(i)].as_bytes(),
        };
        let referer: [&[u8]; 3] = match p.referer {
            Referer::None => [b"", b"", b""],
            Referer::External(i) => [EXTERNAL_REFERERS[usize::from(i)].as_bytes(), b"", b""],
            Referer::Home => [b"https://", host, b"/"],
            Referer::Page => [
                b"https://",
                host,
                &paths[page_range.0 as usize..page_range.1 as usize],
            ],
        };
        let proto: &[u8] = if c.http2 { b"HTTP/2.0" } else { b"HTTP/1.1" };
        let line = Line {
            unix: p.time_ms.div_euclid(1000),
            addr: &arena[c.addr.0 as usize..][..usize::from(c.addr.1)],
            user: if p.dash || c.user == 0 {
                b"-"
            } else {
                USERS[usize::from(c.user - 1)].as_bytes()
            },
            request: if p.dash {
                None
            } else {
                Some((p.method.as_bytes(), path, proto))
            },
            status: p.status,
            size: p.size,
            referer: if p.dash { [b"", b"", b""] } else { referer },
            ua: if p.dash {
                b"-"
            } else {
                USER_AGENTS[usize::from(c.ua)].as_bytes()
            },
            host,
            port: if c.http2 {
                443
            } else if c.ua % 5 == 0 {
                80
            } else {
                443
            },
            xff: &xff,
            rt_ms: p.rt_ms,
        };
        write_line(&mut w, fmt, &line, off);
        w.end_line()?;
    }
    w.finish()?;
    Ok(GroundTruth {
        attackers,
        lines: total,
        malformed: malformed_total,
        unreadable,
        span_secs,
    })
}

/// Puts a `share` of the clients behind NAT gateways, about 25 to a gateway: they keep
/// their own user agents and habits but send from the gateway's address.
fn share_nat_gateways(rng: &mut Rng, clients: &mut [Client], share: f64) {
    let gateways = ((clients.len() as f64 * share / 25.0) as usize).min(clients.len());
    if gateways == 0 {
        return;
    }
    for i in gateways..clients.len() {
        if rng.chance(share) {
            clients[i].addr = clients[rng.below(gateways as u64) as usize].addr;
        }
    }
}

/// Picks a client that may start a page view at `now`: by popularity first, then
/// uniformly, then the first ready one after a random point, then the one ready soonest.
fn pick_client(rng: &mut Rng, zipf: &[f64], clients: &[Client], now: i64) -> usize {
    let total = zipf.last().copied().unwrap_or(1.0);
    for _ in 0..4 {
        let x = rng.f64() * total;
        let i = zipf.partition_point(|&c| c <= x).min(clients.len() - 1);
        if clients[i].next_pv_ms <= now {
            return i;
        }
    }
    for _ in 0..16 {
        let i = rng.below(clients.len() as u64) as usize;
        if clients[i].next_pv_ms <= now {
            return i;
        }
    }
    let from = rng.below(clients.len() as u64) as usize;
    let mut best = from;
    for k in 0..clients.len() {
        let i = (from + k) % clients.len();
        if clients[i].next_pv_ms <= now {
            return i;
        }
        if clients[i].next_pv_ms < clients[best].next_pv_ms {
            best = i;
        }
    }
    best
}

fn push_path(paths: &mut Vec<u8>, parts: &[&[u8]]) -> PathRef {
    let a = paths.len() as u32;
    for p in parts {
        paths.extend_from_slice(p);
    }
    PathRef::Arena(a, paths.len() as u32)
}

fn push_path_num(paths: &mut Vec<u8>, prefix: &[u8], n: u64) -> PathRef {
    let a = paths.len() as u32;
    paths.extend_from_slice(prefix);
    push_dec(paths, n);
    PathRef::Arena(a, paths.len() as u32)
}

/// Queues the requests of one page view of `c` starting at `now` (or when `c` is next
/// allowed to, if later). Returns the page's range in `paths` for asset referers.
///
/// Kept whole: it is a table of what a browser fetches for a page, and every draw from
/// the random stream must stay in this order for a seed to give the same log.
fn page_view(
    rng: &mut Rng,
    c: &mut Client,
    now: i64,
    paths: &mut Vec<u8>,
    queue: &mut Vec<Pending>,
) -> (u32, u32) {
    let base = now.max(c.next_pv_ms);
    c.next_pv_ms = base + rng.range(PV_GAP_MS.0, PV_GAP_MS.1) as i64;
    let may_err = c.next_err_ms <= base;
    let t = base + rng.below(1500) as i64;
    let r = rng.f64();

    // A connection closed before a request line: `"-" 400`, rare and error-gated.
    if may_err && r < 0.0005 {
        c.next_err_ms = base + ERR_GAP_MS;
        queue.push(Pending {
            time_ms: t,
            method: "",
            path: PathRef::Arena(0, 0),
            status: 400,
            size: 0,
            rt_ms: rng.range(0, 5),
            referer: Referer::None,
            dash: true,
        });
        return (0, 0);
    }

    // API calls: one to three, no assets.
    if r < 0.2 {
        let calls = rng.range(1, 3);
        for k in 0..calls {
            let ep = *rng.pick(API);
            let path = if ep.ends_with('/') || ep.ends_with('=') {
                push_path_num(paths, ep.as_bytes(), rng.range(1, 9999))
            } else {
                push_path(paths, &[ep.as_bytes()])
            };
            let post = (ep == "/api/v1/cart" || ep == "/graphql") && rng.chance(0.5);
            let status = if post {
                if rng.chance(0.3) { 201 } else { 200 }
            } else if rng.chance(0.002) {
                500
            } else {
                200
            };
            queue.push(Pending {
                time_ms: t + k as i64 * rng.range(100, 900) as i64,
                method: if post { "POST" } else { "GET" },
                path,
                status,
                size: rng.range(40, 6000),
                rt_ms: rng.range(3, 250),
                referer: Referer::Home,
                dash: false,
            });
        }
        return (0, 0);
    }

    // A page.
    let r2 = rng.f64();
    let (method, path) = if r2 < 0.02 {
        (
            "POST",
            push_path(
                paths,
                &[if rng.chance(0.5) {
                    b"/contact"
                } else {
                    b"/cart"
                }],
            ),
        )
    } else {
        let method = if r2 < 0.05 { "HEAD" } else { "GET" };
        let p = *rng.pick(PAGES);
        let path = if p.ends_with('/') && p.len() > 1 {
            if p.starts_with("/products") {
                push_path_num(paths, p.as_bytes(), rng.range(100, 99_999))
            } else {
                push_path(paths, &[p.as_bytes(), rng.pick(SLUGS).as_bytes()])
            }
        } else if p.ends_with('=') {
            push_path(paths, &[p.as_bytes(), rng.pick(SLUGS).as_bytes()])
        } else {
            push_path(paths, &[p.as_bytes()])
        };
        (method, path)
    };
    let s = rng.f64();
    let (path, status, size) = if method == "POST" {
        (path, if s < 0.7 { 302 } else { 200 }, rng.range(0, 400))
    } else if may_err && s < 0.004 {
        c.next_err_ms = base + ERR_GAP_MS;
        paths.truncate(0);
        let p = push_path(paths, &[rng.pick(STALE).as_bytes()]);
        (p, 404, rng.range(150, 600))
    } else if s < 0.005 {
        (path, 500, rng.range(450, 700))
    } else if s < 0.035 {
        (path, 301, rng.range(162, 178))
    } else if s < 0.05 {
        (path, 302, rng.range(0, 200))
    } else if s < 0.1 {
        (path, 304, 0)
    } else {
        (path, 200, rng.range(2_500, 90_000))
    };
    let size = if method == "HEAD" { 0 } else { size };
    let rr = rng.f64();
    let referer = if rr < 0.35 {
        Referer::None
    } else if rr < 0.6 {
        Referer::External(rng.below(EXTERNAL_REFERERS.len() as u64) as u8)
    } else {
        Referer::Home
    };
    queue.push(Pending {
        time_ms: t,
        method,
        path,
        status,
        size,
        rt_ms: rng.range(5, 800),
        referer,
        dash: false,
    });
    let range = match path {
        PathRef::Arena(a, b) => (a, b),
        PathRef::Asset(_) => (0, 0),
    };

    // Static assets, within a second of the page.
    if method == "GET" && (status == 200 || status == 304) && rng.chance(0.6) {
        let n = rng.range(2, 15) as usize;
        let first = rng.below(ASSETS.len() as u64) as usize;
        let cached = status == 304 || rng.chance(0.4);
        for k in 0..n.min(ASSETS.len()) {
            let i = (first + k) % ASSETS.len();
            let st = if cached && rng.chance(0.8) { 304 } else { 200 };
            queue.push(Pending {
                time_ms: t + rng.range(60, 1000) as i64,
                method: "GET",
                path: PathRef::Asset(i as u8),
                status: st,
                size: if st == 304 {
                    0
                } else {
                    asset_size(rng, ASSETS[i])
                },
                rt_ms: rng.range(0, 60),
                referer: Referer::Page,
                dash: false,
            });
        }
    }
    range
}

/// The malformed lines nginx and Apache really write: a TLS handshake sent to a plain
/// HTTP port, a line cut short (disk full, crash), binary junk and an empty line. True when
/// the line is still a record (the handshake, logged with a garbage request).
fn write_malformed(
    w: &mut Out,
    rng: &mut Rng,
    scratch: &mut Vec<u8>,
    fmt: Format,
    addr: &[u8],
    unix: i64,
    off: i32,
) -> bool {
    let kind = rng.below(10);
    if kind < 4 {
        const TLS: &[u8] = br"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03";
        const TLS_JSON: &[u8] =
            b"\\u0016\\u0003\\u0001\\u0002\\u0000\\u0001\\u0000\\u0001\xFC\\u0003\\u0003";
        let line = Line {
            unix,
            addr,
            user: b"-",
            request: None,
            status: 400,
            size: 157,
            referer: [b"", b"", b""],
            ua: b"-",
            host: HOSTS[0].as_bytes(),
            port: 443,
            xff: b"",
            rt_ms: 1,
        };
        // Write with a `-` request, then splice the raw handshake bytes in its place.
        let start = w.buf.len();
        write_line(w, fmt, &line, off);
        let written = w.buf.split_off(start);
        let (needle, raw): (&[u8], &[u8]) = if fmt == Format::Json {
            (b"\"request\":\"\"", TLS_JSON)
        } else {
            (b"] \"-\"", TLS)
        };
        let at = written
            .windows(needle.len())
            .position(|win| win == needle)
            .map(|p| p + needle.len() - 1)
            .unwrap_or(written.len());
        w.buf.extend_from_slice(&written[..at]);
        if fmt == Format::Json {
            w.buf.extend_from_slice(raw);
            w.buf.extend_from_slice(&written[at..]);
        } else {
            // Replace the `-` between the quotes.
            w.buf.pop();
            w.buf.extend_from_slice(raw);
            w.buf.extend_from_slice(&written[at..]);
        }
        return true;
    } else if kind < 7 {
        // A normal-looking line cut in its first half: the status never makes it.
        scratch.clear();
        let line = Line {
            unix,
            addr,
            user: b"-",
            request: Some((b"GET", b"/blog/winter-sale", b"HTTP/1.1")),
            status: 200,
            size: 5120,
            referer: [b"https://www.google.com/", b"", b""],
            ua: USER_AGENTS[0].as_bytes(),
            host: HOSTS[0].as_bytes(),
            port: 443,
            xff: b"",
            rt_ms: 30,
        };
        let start = w.buf.len();
        write_line(w, fmt, &line, off);
        let len = w.buf.len() - start;
        let cut = len / 4 + rng.below((len / 4) as u64) as usize;
        w.buf.truncate(start + cut);
    } else if kind < 9 {
        let n = rng.range(20, 120);
        w.buf.push(0xFF);
        for _ in 0..n {
            let b = rng.below(256) as u8;
            w.buf.push(if b == b'\n' { 0xC0 } else { b });
        }
    }
    // else: an empty line.
    false
}

#[cfg(test)]
mod tests;
