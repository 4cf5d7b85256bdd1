//! What a detection rule is, as data: its filter over a record, how sources are grouped,
//! what counts as a new event, and its leaky-bucket thresholds. Compiling rules for speed is
//! in `matcher`, running buckets is in `bucket` and `engine`; this file only describes.

use std::fmt;

use super::duration::format_duration;
use crate::format::Record;

/// A record field a pattern list or a distinct count looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The target without its query string.
    Path,
    /// The query string without its `?`.
    Query,
    /// Path and query as written.
    Target,
    /// The `User-Agent` header as logged.
    UserAgent,
}

impl Field {
    /// Every field, in [`Field::index`] order.
    pub const ALL: [Field; 4] = [Field::Path, Field::Query, Field::Target, Field::UserAgent];

    /// The field's name in rules files and the rules table (`user_agent`).
    pub fn name(self) -> &'static str {
        match self {
            Field::Path => "path",
            Field::Query => "query",
            Field::Target => "target",
            Field::UserAgent => "user_agent",
        }
    }

    /// The field's position in [`Field::ALL`], for per-field tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The value of this field that distinct counting keeps for `rec`. A request line that
    /// is not `METHOD target` (a TLS handshake sent to a plain port, a malware beacon,
    /// `HELP`) has no target: its path and target are then the whole request as written, so
    /// each distinct garbage request counts as a new page, as each distinct missing page
    /// does.
    pub fn distinct_value<'a>(self, rec: &Record<'a>) -> Option<&'a [u8]> {
        match self {
            Field::Path => rec.path().or(rec.request),
            Field::Query => rec.query(),
            Field::Target => rec.target.or(rec.request),
            Field::UserAgent => rec.user_agent,
        }
    }
}

/// Patterns one field must match for a filter to pass: any substring or any regex.
///
/// Substrings are ASCII case-insensitive. A substring ending in `$` must end the field
/// (`.sql$` matches `/dump.sql` but not `/dump.sql.html`). Path, query and target patterns
/// are tried on the raw bytes and on a once percent-decoded copy (`%2e%2e%2f` is also seen as
/// `../`; in a query `+` also decodes to a space), so a list needs no encoded variants except
/// for double encoding. Regexes run on the same two forms, are byte-oriented and are written
/// in `regex` syntax; add `(?i)` to ignore case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMatch {
    /// Substrings, any of which matches.
    pub contains: Vec<String>,
    /// Regexes, any of which matches.
    pub regex: Vec<String>,
}

impl FieldMatch {
    /// A match on any of `patterns` as substrings, with no regex.
    pub fn contains<S: AsRef<str>>(patterns: &[S]) -> FieldMatch {
        FieldMatch {
            contains: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            regex: Vec::new(),
        }
    }

    /// Whether there is no pattern, so the field is not looked at.
    pub fn is_empty(&self) -> bool {
        self.contains.is_empty() && self.regex.is_empty()
    }
}

/// Conditions one record must all meet. An empty list means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Status codes, any of which passes.
    pub status: Vec<u16>,
    /// Methods, compared ASCII case-insensitively.
    pub methods: Vec<String>,
    /// Patterns on the path.
    pub path: FieldMatch,
    /// Patterns on the query string.
    pub query: FieldMatch,
    /// Patterns on the target, path and query as written.
    pub target: FieldMatch,
    /// Patterns on the user agent.
    pub user_agent: FieldMatch,
    /// Only requests whose path does not end in a static-asset extension (css, js, png...).
    pub not_static: bool,
    /// Only requests with a protocol that is not a known HTTP version.
    pub bad_protocol: bool,
    /// Only requests whose target is an absolute URI (`http://host/...`), as sent to proxies.
    pub absolute_uri: bool,
    /// Only requests whose query string is a bare number of 7 to 12 digits
    /// (`/?183700723108`): the cache-busting query of DoS tools. The 13-digit millisecond
    /// timestamps that pages and AMP clients append (`?1548117000000`) do not count.
    pub numeric_query: bool,
}

impl Filter {
    /// The patterns on `field`.
    pub fn field(&self, field: Field) -> &FieldMatch {
        match field {
            Field::Path => &self.path,
            Field::Query => &self.query,
            Field::Target => &self.target,
            Field::UserAgent => &self.user_agent,
        }
    }

    /// The patterns on `field`, to change them.
    pub fn field_mut(&mut self, field: Field) -> &mut FieldMatch {
        match field {
            Field::Path => &mut self.path,
            Field::Query => &mut self.query,
            Field::Target => &mut self.target,
            Field::UserAgent => &mut self.user_agent,
        }
    }

    /// A short human summary for the rules table.
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.methods.is_empty() {
            parts.push(self.methods.join("/"));
        }
        if !self.status.is_empty() {
            let codes: Vec<String> = self.status.iter().map(u16::to_string).collect();
            parts.push(format!("status {}", codes.join("/")));
        }
        for field in Field::ALL {
            let m = self.field(field);
            if !m.is_empty() {
                parts.push(format!(
                    "{} ~ {} pattern(s)",
                    field.name(),
                    m.contains.len() + m.regex.len()
                ));
            }
        }
        if self.not_static {
            parts.push("not static".into());
        }
        if self.bad_protocol {
            parts.push("bad protocol".into());
        }
        if self.absolute_uri {
            parts.push("absolute URI".into());
        }
        if self.numeric_query {
            parts.push("numeric query".into());
        }
        if parts.is_empty() {
            "any request".into()
        } else {
            parts.join(", ")
        }
    }
}

/// How events are grouped into one bucket: by the source address cut to a prefix, and
/// optionally by virtual host too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grouping {
    /// IPv4 sources are grouped by this prefix length: 32 by default, each address alone.
    pub v4_prefix: u8,
    /// IPv6 sources are grouped by their /64 by default: one host usually owns a whole /64
    /// and can rotate addresses inside it at will.
    pub v6_prefix: u8,
    /// Each virtual host gets its own bucket, so a source is counted per site.
    pub per_vhost: bool,
}

impl Grouping {
    /// The network a source is counted as under this grouping (its /32, its IPv6 /64...).
    pub fn net_of(self, source: std::net::IpAddr) -> ipnet::IpNet {
        let prefix = match source {
            std::net::IpAddr::V4(_) => self.v4_prefix.min(32),
            std::net::IpAddr::V6(_) => self.v6_prefix.min(128),
        };
        // The prefix is clamped to the family's width, so this cannot fail.
        ipnet::IpNet::new(source, prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| ipnet::IpNet::from(source))
    }
}

impl Default for Grouping {
    fn default() -> Self {
        Grouping {
            v4_prefix: 32,
            v6_prefix: 64,
            per_vhost: false,
        }
    }
}

/// The default time a flagged source is not flagged again by the same rule.
pub const DEFAULT_BLACKHOLE_MS: i64 = 60_000;

/// One leaky-bucket rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Unique within a [`RuleSet`]; names the rule in flags, the store and rules files.
    pub name: String,
    /// Free text for the rules table; may be empty.
    pub description: String,
    /// The rule matches a record when any of these filters does.
    pub filters: Vec<Filter>,
    /// When set, only values of this field not yet seen in the current bucket count.
    pub distinct: Option<Field>,
    /// Events the bucket holds; the next one flags. 0 makes a trigger.
    pub capacity: u32,
    /// The bucket loses one event every `leak_ms` milliseconds of log time.
    pub leak_ms: i64,
    /// Milliseconds of log time after an overflow in which the rule ignores the source's
    /// events.
    pub blackhole_ms: i64,
    /// How events are grouped into buckets.
    pub grouping: Grouping,
    /// A disabled rule stays in its set but is not compiled.
    pub enabled: bool,
}

impl Rule {
    /// A rule with one filter, default grouping and blackhole, enabled.
    pub fn new(name: &str, description: &str, filter: Filter, capacity: u32, leak_ms: i64) -> Rule {
        Rule {
            name: name.to_string(),
            description: description.to_string(),
            filters: vec![filter],
            distinct: None,
            capacity,
            leak_ms,
            blackhole_ms: DEFAULT_BLACKHOLE_MS,
            grouping: Grouping::default(),
            enabled: true,
        }
    }

    /// The rule counting only values of `field` not yet seen in the bucket.
    pub fn distinct(mut self, field: Field) -> Rule {
        self.distinct = Some(field);
        self
    }

    /// Whether one event flags (capacity 0).
    pub fn is_trigger(&self) -> bool {
        self.capacity == 0
    }
}

/// An ordered set of rules, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// An empty set.
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    /// Adds a rule, replacing one of the same name in place.
    pub fn insert(&mut self, rule: Rule) {
        match self.get_mut(&rule.name) {
            Some(existing) => *existing = rule,
            None => self.rules.push(rule),
        }
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The rule named `name`, to change it in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Rule> {
        self.rules.iter_mut().find(|r| r.name == name)
    }

    /// Every rule, disabled ones included, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// The enabled rules, in insertion order.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// Rules in the set, disabled ones included.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The `logward rules` table: one line per rule with its thresholds.
impl fmt::Display for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The name column fits the longest name, so the columns after it line up.
        let width = self.rules.iter().map(|r| r.name.len()).fold(18, usize::max);
        writeln!(
            f,
            "{:<width$} {:>8} {:>7} {:>9} {:<10} {:<9} {:<3} MATCHES",
            "RULE", "CAPACITY", "LEAK", "BLACKHOLE", "DISTINCT", "GROUP", "ON"
        )?;
        for rule in &self.rules {
            let capacity = if rule.is_trigger() {
                "trigger".to_string()
            } else {
                rule.capacity.to_string()
            };
            let group = format!(
                "/{} /{}{}",
                rule.grouping.v4_prefix,
                rule.grouping.v6_prefix,
                if rule.grouping.per_vhost { "+vh" } else { "" }
            );
            let matches: Vec<String> = rule.filters.iter().map(Filter::summary).collect();
            writeln!(
                f,
                "{:<width$} {:>8} {:>7} {:>9} {:<10} {:<9} {:<3} {}",
                rule.name,
                capacity,
                format_duration(rule.leak_ms),
                format_duration(rule.blackhole_ms),
                rule.distinct.map_or("-", Field::name),
                group,
                if rule.enabled { "yes" } else { "no" },
                matches.join(" | ")
            )?;
        }
        Ok(())
    }
}

/// Reads a pattern list: one pattern per line, `#` starts a comment line, blank lines and
/// surrounding spaces are ignored.
pub fn pattern_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The indices of the rules set in a rule mask (bit `i` is rule `i`), lowest first.
pub(crate) fn rule_bits(mask: u64) -> impl Iterator<Item = usize> {
    let mut m = mask;
    std::iter::from_fn(move || {
        (m != 0).then(|| {
            let ri = m.trailing_zeros() as usize;
            m &= m - 1;
            ri
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_lines_skip_comments_and_blanks() {
        let text = "# scanners\nsqlmap\n\n  nikto  \n#nmap\n";
        assert_eq!(pattern_lines(text), vec!["sqlmap", "nikto"]);
    }

    #[test]
    fn insert_replaces_by_name() {
        let mut set = RuleSet::new();
        set.insert(Rule::new("a", "", Filter::default(), 1, 1000));
        set.insert(Rule::new("b", "", Filter::default(), 2, 1000));
        set.insert(Rule::new("a", "", Filter::default(), 5, 1000));
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("a").map(|r| r.capacity), Some(5));
        assert_eq!(set.iter().next().map(|r| r.name.as_str()), Some("a"));
    }

    #[test]
    fn table_shows_thresholds() {
        let mut set = RuleSet::new();
        set.insert(Rule::new("flood", "", Filter::default(), 300, 200));
        let mut trig = Rule::new("trig", "", Filter::default(), 0, 1000);
        trig.enabled = false;
        set.insert(trig);
        let table = set.to_string();
        assert!(table.contains("flood"), "{table}");
        assert!(table.contains("300") && table.contains("200ms"), "{table}");
        assert!(table.contains("trigger"), "{table}");
        assert_eq!(table.lines().count(), 3);
        // A name longer than the column widens it: the capacities stay in one column.
        set.insert(Rule::new(
            "a-rule-with-a-long-name",
            "",
            Filter::default(),
            7,
            1000,
        ));
        let table = set.to_string();
        // The capacity column is right-aligned: it ends at the same byte on every line.
        let capacity_ends: Vec<usize> = table
            .lines()
            .map(|l| {
                let name_end = l.find(' ').expect("a name");
                let rest = l[name_end..].trim_start();
                l.len() - rest.len() + rest.find(' ').expect("a capacity")
            })
            .collect();
        assert!(capacity_ends.windows(2).all(|w| w[0] == w[1]), "{table}");
    }
}
