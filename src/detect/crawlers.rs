//! Search engine crawlers: the address ranges they publish (Google's `googlebot.json`,
//! Bing's `bingbot.json`...), so a real crawler is never banned for its volume, and a
//! source that claims to be one from outside its ranges is flagged as a fake.
//!
//! Banning Googlebot costs a hosting customer their search ranking, and scanners often
//! claim to be it. The ranges are loaded once at start: no network round trip per line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::{FieldMatch, Filter, Rule};

/// The crawlers logward knows: a name, as given in `--crawler-ranges NAME=FILE`, and the
/// user-agent words (lower case) by which a request claims to be that crawler.
pub const KNOWN_CRAWLERS: &[(&str, &[&str])] = &[
    (
        "googlebot",
        &[
            "googlebot",
            "googleother",
            "google-inspectiontool",
            "storebot-google",
            "adsbot-google",
            "mediapartners-google",
            "apis-google",
        ],
    ),
    ("bingbot", &["bingbot", "msnbot", "adidxbot", "bingpreview"]),
    ("applebot", &["applebot"]),
    ("duckduckbot", &["duckduckbot"]),
    ("gptbot", &["gptbot"]),
];

/// The rules that count volume, which a crawler inside its published ranges never feeds:
/// it walks many pages quickly by design. Payload rules (an injection, a web shell) still
/// count its requests.
pub const VOLUME_RULES: &[&str] = &["http-crawl", "http-flood", "http-probing"];

/// The rule that flags a source whose user agent claims a crawler whose ranges do not
/// hold it. Added to the rule set only when ranges are loaded.
pub const FAKE_CRAWLER_RULE: &str = "fake-crawler";

/// One crawler's published ranges.
#[derive(Clone, Debug)]
pub struct Crawler {
    /// Its name in [`KNOWN_CRAWLERS`] (`googlebot`).
    pub name: String,
    /// Lower-case user-agent words that claim it.
    pub agents: Vec<String>,
    /// The prefixes of its ranges files, merged.
    pub(crate) ranges: Ranges,
    /// How many prefixes the file listed.
    pub prefixes: usize,
}

/// Every crawler whose ranges were loaded.
#[derive(Clone, Debug, Default)]
pub struct Crawlers {
    /// The loaded crawlers, in the order their names were first given.
    pub(crate) crawlers: Vec<Crawler>,
}

/// Why a ranges setting could not be used; names the file.
#[derive(Debug)]
pub enum CrawlerError {
    /// The name is not in [`KNOWN_CRAWLERS`]; carries it, lower-cased.
    UnknownName(String),
    /// The ranges file could not be read.
    Read {
        /// The ranges file.
        path: PathBuf,
        /// The error reading it.
        source: std::io::Error,
    },
    /// The ranges file is neither the search engines' JSON nor a list of networks.
    Invalid {
        /// The ranges file.
        path: PathBuf,
        /// What is wrong, and where (`line 3: "x" is not a network`).
        what: String,
    },
}

impl std::fmt::Display for CrawlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrawlerError::UnknownName(name) => {
                let known: Vec<&str> = KNOWN_CRAWLERS.iter().map(|(n, _)| *n).collect();
                write!(
                    f,
                    "crawler ranges: no crawler is named {name:?}; write NAME=FILE with NAME one of {}",
                    known.join(", ")
                )
            }
            CrawlerError::Read { path, .. } => {
                write!(
                    f,
                    "{}: cannot read crawler ranges",
                    crate::escape::path(path)
                )
            }
            CrawlerError::Invalid { path, what } => {
                write!(f, "{}: {what}", crate::escape::path(path))
            }
        }
    }
}

impl std::error::Error for CrawlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CrawlerError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Crawlers {
    /// Loads `NAME=FILE` settings (a bare `FILE` takes its name from the file's stem,
    /// `googlebot.json` being `googlebot`). The same name twice joins both files' ranges.
    pub fn load(settings: &[String]) -> Result<Crawlers, CrawlerError> {
        let mut by_name: Vec<(String, Vec<IpNet>)> = Vec::new();
        for setting in settings {
            let (name, path) = match setting.split_once('=') {
                Some((name, path)) => (name.trim().to_ascii_lowercase(), PathBuf::from(path)),
                None => {
                    let path = PathBuf::from(setting);
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().to_ascii_lowercase())
                        .unwrap_or_default();
                    (stem, path)
                }
            };
            if !KNOWN_CRAWLERS.iter().any(|(n, _)| *n == name) {
                return Err(CrawlerError::UnknownName(name));
            }
            let nets = read_ranges(&path)?;
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, all)) => all.extend(nets),
                None => by_name.push((name, nets)),
            }
        }
        let crawlers = by_name
            .into_iter()
            .map(|(name, nets)| {
                let agents = KNOWN_CRAWLERS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, a)| a.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default();
                Crawler {
                    prefixes: nets.len(),
                    ranges: Ranges::new(&nets),
                    name,
                    agents,
                }
            })
            .collect();
        Ok(Crawlers { crawlers })
    }

    /// Whether no crawler's ranges were loaded.
    pub fn is_empty(&self) -> bool {
        self.crawlers.is_empty()
    }

    /// The user-agent words of every loaded crawler, for the fake-crawler rule's filter.
    pub fn agent_words(&self) -> Vec<String> {
        self.crawlers
            .iter()
            .flat_map(|c| c.agents.iter().cloned())
            .collect()
    }

    /// The rule that flags a user agent claiming one of the loaded crawlers from outside
    /// its ranges (the ranges check is `CompiledRules::veto`'s): three such requests within
    /// ten minutes. A rule set gets it only when ranges are loaded.
    pub fn fake_crawler_rule(&self) -> Rule {
        Rule::new(
            FAKE_CRAWLER_RULE,
            "a user agent claiming a search engine crawler from outside its published ranges",
            Filter {
                user_agent: FieldMatch::contains(&self.agent_words()),
                ..Filter::default()
            },
            2,
            600_000,
        )
    }

    /// Whether `addr` is inside the published ranges of any loaded crawler.
    pub fn is_crawler(&self, addr: IpAddr) -> bool {
        self.crawlers.iter().any(|c| c.ranges.contains(addr))
    }

    /// Whether a request from `addr` with `user_agent` claims a loaded crawler from outside
    /// that crawler's ranges.
    pub fn is_fake(&self, addr: IpAddr, user_agent: &[u8]) -> bool {
        let ua = user_agent.to_ascii_lowercase();
        self.crawlers.iter().any(|c| {
            c.agents
                .iter()
                .any(|a| memchr::memmem::find(&ua, a.as_bytes()).is_some())
                && !c.ranges.contains(addr)
        })
    }
}

/// Networks as sorted, merged intervals: a lookup is a binary search, since a crawler
/// publishes hundreds of prefixes and every request is checked.
#[derive(Clone, Debug, Default)]
pub struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    /// The intervals of `nets`, sorted and merged.
    pub(crate) fn new(nets: &[IpNet]) -> Ranges {
        let mut v4: Vec<(u32, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128)> = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Ranges {
            v4: merged(v4),
            v6: merged(v6),
        }
    }

    /// Whether `addr` is inside one of the ranges; an IPv4-mapped address is looked up as
    /// IPv4.
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => inside(&self.v4, u32::from(a)),
            IpAddr::V6(a) => inside(&self.v6, u128::from(a)),
        }
    }
}

/// Sorted intervals with overlapping and adjacent ones joined.
fn merged<T: Ord + Copy + num_like::Succ>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1.succ() => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn inside<T: Ord + Copy>(v: &[(T, T)], a: T) -> bool {
    let i = v.partition_point(|&(lo, _)| lo <= a);
    i > 0 && a <= v[i - 1].1
}

/// The next value, saturating: what "adjacent" means for an interval's end.
mod num_like {
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> u32 {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> u128 {
            self.saturating_add(1)
        }
    }
}

/// The prefixes of a ranges file: the JSON the search engines publish
/// (`{"prefixes": [{"ipv4Prefix": "66.249.64.0/27"}, {"ipv6Prefix": "2001:4860:4801:10::/64"}]}`),
/// or one CIDR per line (`#` comments and blank lines skipped).
pub fn read_ranges(path: &Path) -> Result<Vec<IpNet>, CrawlerError> {
    let text = std::fs::read_to_string(path).map_err(|source| CrawlerError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |what: String| CrawlerError::Invalid {
        path: path.to_path_buf(),
        what,
    };
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let prefixes = v
            .get("prefixes")
            .and_then(|p| p.as_array())
            .ok_or_else(|| invalid("no \"prefixes\" array".into()))?;
        let mut nets = Vec::with_capacity(prefixes.len());
        for (i, p) in prefixes.iter().enumerate() {
            let text = p
                .get("ipv4Prefix")
                .or_else(|| p.get("ipv6Prefix"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    invalid(format!("prefix {} has no ipv4Prefix or ipv6Prefix", i + 1))
                })?;
            nets.push(
                text.parse::<IpNet>()
                    .map_err(|_| invalid(format!("prefix {}: {text:?} is not a network", i + 1)))?,
            );
        }
        return Ok(nets);
    }
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let net = match line.parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => line
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| invalid(format!("line {}: {line:?} is not a network", i + 1)))?,
        };
        nets.push(net);
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn published_json_and_plain_lists_load() {
        let d = tempfile::tempdir().unwrap();
        let google = write(
            d.path(),
            "googlebot.json",
            r#"{"creationTime":"2026-12-01T00:00:00","prefixes":[{"ipv6Prefix":"2001:4860:4801:10::/64"},{"ipv4Prefix":"66.249.64.0/27"}]}"#,
        );
        let bing = write(
            d.path(),
            "bing.txt",
            "# bing\n157.55.39.0/24\n\n40.77.167.9\n",
        );
        let c = Crawlers::load(&[
            google.display().to_string(),
            format!("bingbot={}", bing.display()),
        ])
        .unwrap();
        assert_eq!(c.crawlers.len(), 2);
        assert_eq!((c.crawlers[0].prefixes, c.crawlers[1].prefixes), (2, 2));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(c.is_crawler(ip("66.249.64.7")));
        assert!(c.is_crawler(ip("2001:4860:4801:10::1")));
        assert!(c.is_crawler(ip("40.77.167.9")));
        assert!(!c.is_crawler(ip("66.249.64.40")));
        let googlebot = b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert!(!c.is_fake(ip("66.249.64.7"), googlebot));
        assert!(c.is_fake(ip("203.0.113.9"), googlebot));
        // Claiming Googlebot from Bing's ranges is still a fake Googlebot.
        assert!(c.is_fake(ip("157.55.39.4"), googlebot));
        assert!(!c.is_fake(ip("203.0.113.9"), b"Mozilla/5.0 Firefox/133.0"));
        assert!(c.is_fake(ip("203.0.113.9"), b"Mozilla/5.0 (compatible; bingbot/2.0)"));
        let rule = c.fake_crawler_rule();
        assert_eq!(rule.name, FAKE_CRAWLER_RULE);
        assert_eq!((rule.capacity, rule.leak_ms), (2, 600_000));
    }

    #[test]
    fn ranges_merge_and_find_their_addresses() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.0.128/25",
            "192.0.2.7/32",
            "2001:db8::/64",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        let r = Ranges::new(&nets);
        assert_eq!(
            r.v4,
            [(0x0a00_0000, 0x0a00_01ff), (0xc000_0207, 0xc000_0207)]
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (a, want) in [
            ("10.0.0.0", true),
            ("10.0.1.255", true),
            ("10.0.2.0", false),
            ("9.255.255.255", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("::ffff:10.0.1.1", true),
            ("2001:db8::ffff", true),
            ("2001:db8:0:1::", false),
        ] {
            assert_eq!(r.contains(ip(a)), want, "{a}");
        }
    }

    #[test]
    fn bad_settings_name_the_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let bad = write(d.path(), "googlebot.txt", "66.249.64.0/27\nnot-a-net\n");
        let e = Crawlers::load(&[bad.display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("googlebot.txt"), "{e}");
        let e = Crawlers::load(&["yahoo=/dev/null".into()]).unwrap_err();
        assert!(e.to_string().contains("googlebot, bingbot"), "{e}");
        let json = write(d.path(), "bingbot.json", r#"{"prefixes":[{"other":"x"}]}"#);
        let e = Crawlers::load(&[json.display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("prefix 1"), "{e}");
        let missing = d.path().join("applebot.json");
        let e = Crawlers::load(&[missing.display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("applebot.json"), "{e}");
    }
}
