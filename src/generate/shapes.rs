//! Traffic shapes ([`Profile`]): the same site seen on a quiet week, a busy day, or a day
//! with many sources of one kind that stay under every threshold for hours (API pollers,
//! crawlers walking distinct pages, NAT gateways with many browsers behind one address,
//! slow 404 scanners). They exist to measure detection on more than one shape of traffic;
//! none of their sources is an attacker a rule should flag.
//!
//! Pollers, crawlers and scanners are a [`ShapeStream`]: sources that each send one request
//! at a steady pace during a window of hours, merged into the normal traffic by time. NAT
//! gateways are normal clients that share addresses (see [`Profile::nat_share`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::str::FromStr;

use serde::Serialize;

use super::rng::Rng;
use super::{push_dec, push_public_v4};

/// A shape of traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Profile {
    /// A quiet week of a shop: browsers, API calls, assets (the default).
    #[default]
    Week,
    /// The same site on one busy day: the same lines in a seventh of the time.
    BusyDay,
    /// A busy day where a third of the requests come from about a thousand API pollers and
    /// apps, each asking every 10 to 60 s for one to four hours.
    Steady,
    /// A busy day where a quarter of the requests come from a few dozen crawlers, each
    /// walking distinct pages every 1 to 4 s for two to eight hours.
    Crawlers,
    /// A busy day where a third of the browsers sit behind a few hundred NAT gateways
    /// (about 25 each, with their own user agents).
    Nat,
    /// A busy day where a sixth of the requests are 404s from several hundred slow
    /// scanners, each asking for a distinct missing page every 12 to 40 s for up to three
    /// hours.
    Scanners,
}

impl Profile {
    /// Names accepted by [`FromStr`], in declaration order.
    pub const NAMES: [&'static str; 6] =
        ["week", "busy-day", "steady", "crawlers", "nat", "scanners"];

    /// The span of traffic when none is given: seven days for [`Profile::Week`], one
    /// otherwise.
    pub fn default_span_days(self) -> i64 {
        match self {
            Profile::Week => 7,
            _ => 1,
        }
    }

    /// Share of normal clients that sit behind a NAT gateway.
    pub(super) fn nat_share(self) -> f64 {
        match self {
            Profile::Nat => 0.33,
            _ => 0.0,
        }
    }

    /// Share of the normal lines (attacks and malformed lines aside) sent by the shape's
    /// stream, and the stream's kind.
    pub(super) fn stream(self) -> Option<(Kind, f64)> {
        match self {
            Profile::Steady => Some((Kind::Poller, 0.33)),
            Profile::Crawlers => Some((Kind::Crawler, 0.25)),
            Profile::Scanners => Some((Kind::Scanner, 0.17)),
            Profile::Week | Profile::BusyDay | Profile::Nat => None,
        }
    }
}

/// An unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl std::fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown profile {:?} (expected one of: {})",
            self.0,
            Profile::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Profile, UnknownProfile> {
        const ALL: [Profile; 6] = [
            Profile::Week,
            Profile::BusyDay,
            Profile::Steady,
            Profile::Crawlers,
            Profile::Nat,
            Profile::Scanners,
        ];
        Profile::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| ALL[i])
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

/// What the sources of a [`ShapeStream`] do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Poller,
    Crawler,
    Scanner,
}

impl Kind {
    /// Shortest and longest pause between two requests of one source, in milliseconds.
    fn gap_ms(self) -> (u64, u64) {
        match self {
            Kind::Poller => (10_000, 60_000),
            Kind::Crawler => (1_000, 4_000),
            Kind::Scanner => (12_000, 40_000),
        }
    }

    /// Shortest and longest time a source keeps going, in milliseconds.
    fn window_ms(self) -> (u64, u64) {
        match self {
            Kind::Poller => (3_600_000, 4 * 3_600_000),
            Kind::Crawler => (2 * 3_600_000, 8 * 3_600_000),
            Kind::Scanner => (1_800_000, 3 * 3_600_000),
        }
    }
}

/// Well-behaved crawlers that publish no address ranges and are named by no rule.
const CRAWLER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; Applebot/0.1; +http://www.apple.com/go/applebot)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/seznambot-crawler/)",
    "Mozilla/5.0 (compatible; Qwantbot/1.0; +https://help.qwant.com/bot/)",
];

/// Apps and scripts of the site's own customers that poll its API.
const POLLER_AGENTS: &[&str] = &[
    "okhttp/4.12.0",
    "ShopApp/4.2.1 (iPhone; iOS 18.1; Scale/3.00)",
    "ShopApp/4.2.0 (Android 14; SM-S918B)",
    "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230901.001)",
    "StockSync/2.3 (+https://example.net/stocksync)",
];

/// Browsers that a slow scanner of dead links pretends to be.
const SCANNER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
];

/// Words of the missing pages a slow scanner asks for: nothing a rule knows as a probe.
const MISSING_WORDS: &[&str] = &[
    "catalogue",
    "offers",
    "news",
    "events",
    "press",
    "team",
    "archive",
    "gallery",
];

/// Site sections a crawler walks.
const CRAWL_SECTIONS: &[&str] = &["/products/", "/blog/", "/category/", "/tag/", "/help/"];

/// API endpoints a poller asks for; an id follows.
const POLL_ENDPOINTS: &[&str] = &[
    "/api/v1/stock/",
    "/api/v1/orders/",
    "/api/v1/products/",
    "/api/v1/notifications?since=",
];

/// One request of a shape's source, borrowed from the stream.
pub(super) struct ShapeLine<'a> {
    pub time_ms: i64,
    pub addr: &'a [u8],
    pub method: &'static [u8],
    pub path: &'a [u8],
    pub status: u16,
    pub size: u64,
    pub ua: &'static [u8],
}

struct Source {
    addr: Vec<u8>,
    ua: &'static str,
    end_ms: i64,
}

/// The requests of a shape's sources in time order, exactly `budget` of them.
pub(super) struct ShapeStream {
    kind: Kind,
    rng: Rng,
    budget: u64,
    span_end_ms: i64,
    sources: Vec<Source>,
    /// (next request time, source index), earliest first.
    due: BinaryHeap<Reverse<(i64, usize)>>,
    path: Vec<u8>,
}

impl ShapeStream {
    /// A stream of `budget` requests between `start_ms` and `start_ms + span_ms`, from as
    /// many sources as that takes (more start when the budget is not spent by the end).
    pub fn new(kind: Kind, mut rng: Rng, start_ms: i64, span_ms: i64, budget: u64) -> Self {
        let (g0, g1) = kind.gap_ms();
        let (w0, w1) = kind.window_ms();
        let per_source = ((w0 + w1) / (g0 + g1)).max(1);
        let n = budget.div_ceil(per_source);
        let mut s = ShapeStream {
            kind,
            rng: rng.fork(),
            budget,
            span_end_ms: start_ms + span_ms,
            sources: Vec::new(),
            due: BinaryHeap::new(),
            path: Vec::with_capacity(64),
        };
        for _ in 0..n {
            let window = rng.range(w0, w1) as i64;
            let latest = (span_ms - window).max(1) as u64;
            let begin = start_ms + rng.below(latest) as i64;
            s.start_source(begin, window);
        }
        s
    }

    fn start_source(&mut self, begin_ms: i64, window_ms: i64) {
        let mut addr = Vec::with_capacity(16);
        push_public_v4(&mut self.rng, &mut addr);
        let agents = match self.kind {
            Kind::Poller => POLLER_AGENTS,
            Kind::Crawler => CRAWLER_AGENTS,
            Kind::Scanner => SCANNER_AGENTS,
        };
        let ua = *self.rng.pick(agents);
        let i = self.sources.len();
        self.sources.push(Source {
            addr,
            ua,
            end_ms: begin_ms + window_ms,
        });
        self.due.push(Reverse((begin_ms, i)));
    }

    /// The time of the next request, if any is left.
    pub fn next_time(&mut self) -> Option<i64> {
        if self.budget == 0 {
            return None;
        }
        if self.due.is_empty() {
            // Every source stopped before the budget was spent: one more starts at the
            // end of the span and keeps going until it is.
            let (w0, _) = self.kind.window_ms();
            self.start_source(self.span_end_ms, w0 as i64);
        }
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// The next request; call only after [`ShapeStream::next_time`] returned `Some`.
    pub fn next_line(&mut self) -> ShapeLine<'_> {
        let Reverse((time_ms, i)) = self.due.pop().expect("next_time returned a time");
        self.budget -= 1;
        let (g0, g1) = self.kind.gap_ms();
        let next = time_ms + self.rng.range(g0, g1) as i64;
        if next <= self.sources[i].end_ms || self.due.is_empty() {
            self.due.push(Reverse((next, i)));
        }
        self.path.clear();
        let rng = &mut self.rng;
        let (method, status, size): (&'static [u8], u16, u64) = match self.kind {
            Kind::Poller => {
                self.path
                    .extend_from_slice(rng.pick(POLL_ENDPOINTS).as_bytes());
                push_dec(&mut self.path, rng.range(1, 99_999));
                (b"GET", 200, rng.range(80, 4_000))
            }
            Kind::Crawler => {
                self.path
                    .extend_from_slice(rng.pick(CRAWL_SECTIONS).as_bytes());
                push_dec(&mut self.path, rng.range(1, 999_999));
                let status = if rng.chance(0.03) { 301 } else { 200 };
                (b"GET", status, rng.range(2_500, 90_000))
            }
            Kind::Scanner => {
                self.path.push(b'/');
                self.path
                    .extend_from_slice(rng.pick(MISSING_WORDS).as_bytes());
                self.path.push(b'-');
                push_dec(&mut self.path, rng.range(1, 999_999));
                self.path.extend_from_slice(b".html");
                (b"GET", 404, rng.range(150, 600))
            }
        };
        let source = &self.sources[i];
        ShapeLine {
            time_ms,
            addr: &source.addr,
            method,
            path: &self.path,
            status,
            size,
            ua: source.ua.as_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_gives_its_budget_in_time_order() {
        let mut s = ShapeStream::new(Kind::Scanner, Rng::new(7), 0, 86_400_000, 5_000);
        let mut last = i64::MIN;
        let mut n = 0;
        while let Some(t) = s.next_time() {
            assert!(t >= last, "{t} after {last}");
            last = t;
            let l = s.next_line();
            assert_eq!(l.status, 404);
            n += 1;
        }
        assert_eq!(n, 5_000);
    }

    #[test]
    fn profile_names_round_trip() {
        for name in Profile::NAMES {
            let p: Profile = name.parse().unwrap();
            assert_eq!(Profile::NAMES[p as usize], name);
        }
        assert!("monday".parse::<Profile>().is_err());
    }
}
