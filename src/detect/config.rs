//! Loading a TOML rules file on top of a base rule set: new rules, changed thresholds,
//! disabled built-ins. Errors name the file, the line, the rule and the field.
//!
//! # Rules file
//!
//! ```toml
//! # Change thresholds of a built-in rule.
//! [rule.http-flood]
//! capacity = 600
//! leak = "100ms"
//!
//! # Disable a built-in rule.
//! [rule.http-crawl]
//! enabled = false
//!
//! # A new rule: every filter key present must match (AND).
//! [rule.secret-probe]
//! description = "probes for /secret"
//! status = [404]
//! path_contains = ["/secret"]
//! capacity = 3
//! leak = "10s"
//!
//! # A new rule with alternatives: it matches when any `[[rule.NAME.any]]` filter does.
//! [rule.api-abuse]
//! capacity = 20
//! leak = "1s"
//! [[rule.api-abuse.any]]
//! methods = ["POST"]
//! path_regex = ['^/api/v\d+/login']
//! [[rule.api-abuse.any]]
//! status = [429]
//! ```
//!
//! Keys of `[rule.NAME]`:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `enabled` | run the rule | `true` |
//! | `description` | free text for `logward rules` | `""` |
//! | `capacity` | events the bucket holds; the next one flags; `0` flags at once | required for new rules |
//! | `leak` | one event leaks out every this long (`200ms`, `10s`, `1m`, `4h`, `7d`) | required for new rules |
//! | `blackhole` | after flagging, the same source is not flagged by this rule for this long | `"1m"` |
//! | `distinct` | count only new values of `path`, `query`, `target` or `user_agent` | none |
//! | `v4_prefix`, `v6_prefix` | group sources by this prefix | `32`, `64` |
//! | `per_vhost` | count each virtual host separately | `false` |
//!
//! Filter keys, at the rule level or in each `[[rule.NAME.any]]` (not both): `status` (list
//! of codes), `methods` (list, any case), `path_contains`, `query_contains`,
//! `target_contains`, `user_agent_contains` (ASCII case-insensitive substrings; a trailing
//! `$` anchors at the end), `path_regex`, `query_regex`, `target_regex`, `user_agent_regex`
//! (regexes; `(?i)` for case-insensitive), `not_static`, `bad_protocol`, `absolute_uri`,
//! `numeric_query` (booleans; the last is a query of 7 to 12 digits only, `/?183700723108`). Path, query and target patterns are tried on the raw text and on a once
//! percent-decoded copy. A rule without any filter key matches every request. The filter of
//! a built-in rule cannot be changed: define a new rule (and disable the built-in) instead.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::duration::parse_duration;
use super::error::RuleError;
use super::rule::{DEFAULT_BLACKHOLE_MS, Field, FieldMatch, Filter, Grouping, Rule, RuleSet};

/// A rules file: `[rule.NAME]` tables (the older `[rule.NAME]` is still read).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default, rename = "rule", alias = "rules")]
    rules: std::collections::BTreeMap<String, Spanned<RuleToml>>,
}

/// The `[rule.NAME]` tables of a configuration file, whose other keys are not rules.
#[derive(Deserialize)]
struct ConfigToml {
    #[serde(default)]
    rule: std::collections::BTreeMap<String, Spanned<RuleToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterToml {
    status: Option<Vec<Spanned<u16>>>,
    methods: Option<Vec<Spanned<String>>>,
    path_contains: Option<Vec<String>>,
    query_contains: Option<Vec<String>>,
    target_contains: Option<Vec<String>>,
    user_agent_contains: Option<Vec<String>>,
    path_regex: Option<Vec<Spanned<String>>>,
    query_regex: Option<Vec<Spanned<String>>>,
    target_regex: Option<Vec<Spanned<String>>>,
    user_agent_regex: Option<Vec<Spanned<String>>>,
    not_static: Option<bool>,
    bad_protocol: Option<bool>,
    absolute_uri: Option<bool>,
    numeric_query: Option<bool>,
}

impl FilterToml {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.methods.is_none()
            && self.path_contains.is_none()
            && self.query_contains.is_none()
            && self.target_contains.is_none()
            && self.user_agent_contains.is_none()
            && self.path_regex.is_none()
            && self.query_regex.is_none()
            && self.target_regex.is_none()
            && self.user_agent_regex.is_none()
            && self.not_static.is_none()
            && self.bad_protocol.is_none()
            && self.absolute_uri.is_none()
            && self.numeric_query.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    enabled: Option<bool>,
    description: Option<String>,
    capacity: Option<u32>,
    leak: Option<Spanned<String>>,
    blackhole: Option<Spanned<String>>,
    distinct: Option<Spanned<String>>,
    v4_prefix: Option<Spanned<u8>>,
    v6_prefix: Option<Spanned<u8>>,
    per_vhost: Option<bool>,
    any: Option<Spanned<Vec<FilterToml>>>,
    // The filter keys of FilterToml, repeated: `serde(flatten)` would lose the spans that
    // errors need.
    status: Option<Vec<Spanned<u16>>>,
    methods: Option<Vec<Spanned<String>>>,
    path_contains: Option<Vec<String>>,
    query_contains: Option<Vec<String>>,
    target_contains: Option<Vec<String>>,
    user_agent_contains: Option<Vec<String>>,
    path_regex: Option<Vec<Spanned<String>>>,
    query_regex: Option<Vec<Spanned<String>>>,
    target_regex: Option<Vec<Spanned<String>>>,
    user_agent_regex: Option<Vec<Spanned<String>>>,
    not_static: Option<bool>,
    bad_protocol: Option<bool>,
    absolute_uri: Option<bool>,
    numeric_query: Option<bool>,
}

impl RuleToml {
    fn take_filter(&mut self) -> FilterToml {
        FilterToml {
            status: self.status.take(),
            methods: self.methods.take(),
            path_contains: self.path_contains.take(),
            query_contains: self.query_contains.take(),
            target_contains: self.target_contains.take(),
            user_agent_contains: self.user_agent_contains.take(),
            path_regex: self.path_regex.take(),
            query_regex: self.query_regex.take(),
            target_regex: self.target_regex.take(),
            user_agent_regex: self.user_agent_regex.take(),
            not_static: self.not_static.take(),
            bad_protocol: self.bad_protocol.take(),
            absolute_uri: self.absolute_uri.take(),
            numeric_query: self.numeric_query.take(),
        }
    }
}

/// Reads `path` and applies it to `base`.
pub fn load_rules_file(path: &Path, base: RuleSet) -> Result<RuleSet, RuleError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_rules_str(&text, path, base)
}

/// Applies rules written in `text` to `base`; `origin` names the text in errors (the rules
/// file, or the config file a `[rules]` table was taken from).
pub fn load_rules_str(text: &str, origin: &Path, base: RuleSet) -> Result<RuleSet, RuleError> {
    let file: FileToml = toml::from_str(text).map_err(|e| RuleError::Syntax {
        path: origin.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    apply_rules(file.rules, text, origin, base)
}

/// Applies the `[rule.NAME]` tables of a configuration file's `text` to `base`; errors
/// name the configuration file and its lines.
pub fn load_config_rules(text: &str, origin: &Path, base: RuleSet) -> Result<RuleSet, RuleError> {
    let file: ConfigToml = toml::from_str(text).map_err(|e| RuleError::Syntax {
        path: origin.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    apply_rules(file.rule, text, origin, base)
}

fn apply_rules(
    tables: std::collections::BTreeMap<String, Spanned<RuleToml>>,
    text: &str,
    origin: &Path,
    mut base: RuleSet,
) -> Result<RuleSet, RuleError> {
    let mut rules: Vec<(String, Spanned<RuleToml>)> = tables.into_iter().collect();
    // Keep file order for new rules (the map sorts by name).
    rules.sort_by_key(|(_, r)| r.span().start);
    for (name, spanned) in rules {
        let rule_line = line_of(text, spanned.span().start);
        let ctx = Ctx {
            text,
            origin,
            rule: &name,
            rule_line,
        };
        let mut t = spanned.into_inner();
        let top_filter = t.take_filter();
        let mut rule = match base.get(&name).cloned() {
            Some(rule) => {
                if !top_filter.is_empty() || t.any.is_some() {
                    return Err(ctx.err(None, "filter", "the filter of an existing rule cannot be changed; define a new rule and disable this one"));
                }
                rule
            }
            None => new_rule(&name, &t, &top_filter, &ctx)?,
        };
        apply_settings(&mut rule, t, &ctx)?;
        base.insert(rule);
    }
    Ok(base)
}

/// A rule the file defines: its filter (at the rule level or in `any`), capacity and leak
/// must be given; the other settings start at their defaults.
fn new_rule(
    name: &str,
    t: &RuleToml,
    top_filter: &FilterToml,
    ctx: &Ctx<'_>,
) -> Result<Rule, RuleError> {
    let capacity = t
        .capacity
        .ok_or_else(|| ctx.err(None, "capacity", "a new rule needs a capacity"))?;
    if t.leak.is_none() {
        return Err(ctx.err(
            None,
            "leak",
            "a new rule needs a leak interval such as \"10s\"",
        ));
    }
    let filters = match &t.any {
        Some(any) => {
            if !top_filter.is_empty() {
                return Err(ctx.err(
                    Some(any.span().start),
                    "any",
                    "put filter keys either at the rule level or in `any`, not both",
                ));
            }
            if any.get_ref().is_empty() {
                return Err(ctx.err(
                    Some(any.span().start),
                    "any",
                    "`any` needs at least one filter",
                ));
            }
            any.get_ref()
                .iter()
                .map(|f| build_filter(f, ctx))
                .collect::<Result<Vec<_>, _>>()?
        }
        None => vec![build_filter(top_filter, ctx)?],
    };
    Ok(Rule {
        name: name.to_string(),
        description: String::new(),
        filters,
        distinct: None,
        capacity,
        leak_ms: 1000,
        blackhole_ms: DEFAULT_BLACKHOLE_MS,
        grouping: Grouping::default(),
        enabled: true,
    })
}

/// Applies the settings a rule's table gives (to a new rule or a built-in one).
fn apply_settings(rule: &mut Rule, t: RuleToml, ctx: &Ctx<'_>) -> Result<(), RuleError> {
    if let Some(enabled) = t.enabled {
        rule.enabled = enabled;
    }
    if let Some(d) = t.description {
        rule.description = d;
    }
    if let Some(c) = t.capacity {
        rule.capacity = c;
    }
    if let Some(leak) = &t.leak {
        let ms = ctx.duration(leak, "leak")?;
        if ms <= 0 {
            return Err(ctx.err(Some(leak.span().start), "leak", "must be longer than 0"));
        }
        rule.leak_ms = ms;
    }
    if let Some(bh) = &t.blackhole {
        rule.blackhole_ms = ctx.duration(bh, "blackhole")?;
    }
    if let Some(d) = &t.distinct {
        let field = Field::ALL.into_iter().find(|f| f.name() == d.get_ref());
        rule.distinct = Some(field.ok_or_else(|| {
            ctx.err(
                Some(d.span().start),
                "distinct",
                &format!(
                    "`{}` is not one of path, query, target, user_agent",
                    d.get_ref()
                ),
            )
        })?);
    }
    if let Some(p) = &t.v4_prefix {
        if *p.get_ref() > 32 {
            return Err(ctx.err(Some(p.span().start), "v4_prefix", "must be at most 32"));
        }
        rule.grouping.v4_prefix = *p.get_ref();
    }
    if let Some(p) = &t.v6_prefix {
        if *p.get_ref() > 128 {
            return Err(ctx.err(Some(p.span().start), "v6_prefix", "must be at most 128"));
        }
        rule.grouping.v6_prefix = *p.get_ref();
    }
    if let Some(v) = t.per_vhost {
        rule.grouping.per_vhost = v;
    }
    Ok(())
}

struct Ctx<'a> {
    text: &'a str,
    origin: &'a Path,
    rule: &'a str,
    rule_line: usize,
}

impl Ctx<'_> {
    fn err(&self, offset: Option<usize>, field: &str, message: &str) -> RuleError {
        RuleError::Invalid {
            path: self.origin.to_path_buf(),
            line: Some(offset.map_or(self.rule_line, |o| line_of(self.text, o))),
            rule: self.rule.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    fn duration(&self, value: &Spanned<String>, field: &str) -> Result<i64, RuleError> {
        parse_duration(value.get_ref()).map_err(|m| self.err(Some(value.span().start), field, &m))
    }
}

fn build_filter(t: &FilterToml, ctx: &Ctx<'_>) -> Result<Filter, RuleError> {
    let mut f = Filter::default();
    for s in t.status.iter().flatten() {
        if !(100..=599).contains(s.get_ref()) {
            return Err(ctx.err(
                Some(s.span().start),
                "status",
                "a status code is between 100 and 599",
            ));
        }
        f.status.push(*s.get_ref());
    }
    for m in t.methods.iter().flatten() {
        let ok = !m.get_ref().is_empty()
            && m.get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_');
        if !ok {
            return Err(ctx.err(
                Some(m.span().start),
                "methods",
                &format!("`{}` is not a method name", m.get_ref()),
            ));
        }
        f.methods.push(m.get_ref().to_ascii_uppercase());
    }
    let lists = [
        (Field::Path, &t.path_contains, &t.path_regex),
        (Field::Query, &t.query_contains, &t.query_regex),
        (Field::Target, &t.target_contains, &t.target_regex),
        (
            Field::UserAgent,
            &t.user_agent_contains,
            &t.user_agent_regex,
        ),
    ];
    for (field, contains, regexes) in lists {
        let mut m = FieldMatch::default();
        for p in contains.iter().flatten() {
            if p.is_empty() || p == "$" {
                return Err(ctx.err(None, &format!("{}_contains", field.name()), "empty pattern"));
            }
            m.contains.push(p.clone());
        }
        for r in regexes.iter().flatten() {
            if let Err(e) = regex::bytes::Regex::new(r.get_ref()) {
                return Err(ctx.err(
                    Some(r.span().start),
                    &format!("{}_regex", field.name()),
                    &e.to_string(),
                ));
            }
            m.regex.push(r.get_ref().clone());
        }
        *f.field_mut(field) = m;
    }
    f.not_static = t.not_static.unwrap_or(false);
    f.bad_protocol = t.bad_protocol.unwrap_or(false);
    f.absolute_uri = t.absolute_uri.unwrap_or(false);
    f.numeric_query = t.numeric_query.unwrap_or(false);
    Ok(f)
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::builtin::builtin_rules;

    fn load(text: &str) -> Result<RuleSet, RuleError> {
        load_rules_str(text, Path::new("rules.toml"), builtin_rules())
    }

    #[test]
    fn boolean_filter_keys_are_read() {
        let set = load(
            "[rule.busting]\ncapacity = 3\nleak = \"1s\"\nnumeric_query = true\nnot_static = true\n",
        )
        .expect("valid");
        let f = &set.get("busting").expect("added").filters[0];
        assert!(f.numeric_query && f.not_static && !f.absolute_uri);
    }

    #[test]
    fn example_from_the_docs() {
        let text = r#"
[rule.http-flood]
capacity = 600
leak = "100ms"
[rule.http-crawl]
enabled = false
[rule.secret-probe]
status = [404]
path_contains = ["/secret"]
capacity = 3
leak = "10s"
blackhole = "5m"
v6_prefix = 56
[rule.api-abuse]
capacity = 20
leak = "1s"
distinct = "query"
[[rule.api-abuse.any]]
methods = ["post"]
path_regex = ['^/api/v\d+/login']
[[rule.api-abuse.any]]
status = [429]
"#;
        let set = load(text).expect("valid");
        let flood = set.get("http-flood").expect("kept");
        assert_eq!((flood.capacity, flood.leak_ms), (600, 100));
        assert_eq!(
            flood.filters,
            builtin_rules().get("http-flood").expect("b").filters
        );
        assert!(!set.get("http-crawl").expect("kept").enabled);
        let secret = set.get("secret-probe").expect("added");
        assert_eq!(secret.filters[0].status, [404]);
        assert_eq!(secret.filters[0].path.contains, ["/secret"]);
        assert_eq!(
            (secret.capacity, secret.leak_ms, secret.blackhole_ms),
            (3, 10_000, 300_000)
        );
        assert_eq!(secret.grouping.v6_prefix, 56);
        let api = set.get("api-abuse").expect("added");
        assert_eq!(api.filters.len(), 2);
        assert_eq!(api.filters[0].methods, ["POST"]);
        assert_eq!(api.distinct, Some(Field::Query));
        // New rules come after the built-ins, in file order.
        let names: Vec<&str> = set.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(&names[names.len() - 2..], ["secret-probe", "api-abuse"]);
    }

    fn error(text: &str) -> String {
        load(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = error("[rule.a]\ncapacity = 3\nleak = \"1s\"\nbogus = 1\n");
        assert!(e.starts_with("rules.toml:4: "), "{e}");
        let e = error("[rule.a]\ncapacity = \"many\"\n");
        assert!(e.starts_with("rules.toml:2: "), "{e}");
    }

    #[test]
    fn semantic_errors_name_file_line_rule_and_field() {
        let e = error("[rule.a]\ncapacity = 3\n\nleak = \"10 parsecs\"\n");
        assert!(e.starts_with("rules.toml:4: rule `a`, field `leak`"), "{e}");
        let e = error(
            "[rule.a]\ncapacity = 3\nleak = \"1s\"\npath_regex = [\"ok\",\n  \"(unclosed\"]\n",
        );
        assert!(
            e.starts_with("rules.toml:5: rule `a`, field `path_regex`"),
            "{e}"
        );
        let e = error("[rule.http-flood]\nleak = \"0s\"\n");
        assert!(
            e.starts_with("rules.toml:2: rule `http-flood`, field `leak`"),
            "{e}"
        );
        let e = error("[rule.b]\nleak = \"1s\"\n");
        assert!(e.contains("rule `b`, field `capacity`"), "{e}");
        let e = error("[rule.http-probing]\nstatus = [500]\n");
        assert!(e.contains("field `filter`"), "{e}");
        let e = error("[rule.c]\ncapacity = 1\nleak = \"1s\"\nstatus = [42]\n");
        assert!(
            e.starts_with("rules.toml:4: rule `c`, field `status`"),
            "{e}"
        );
        let e = error("[rule.c]\ncapacity = 1\nleak = \"1s\"\ndistinct = \"cookie\"\n");
        assert!(e.contains("field `distinct`"), "{e}");
        let e = error("[rule.c]\ncapacity = 1\nleak = \"1s\"\nv6_prefix = 129\n");
        assert!(e.contains("field `v6_prefix`"), "{e}");
    }

    #[test]
    fn missing_file_names_it() {
        let e = load_rules_file(Path::new("/nonexistent/rules.toml"), RuleSet::new())
            .expect_err("missing");
        assert!(
            e.to_string().starts_with("/nonexistent/rules.toml: "),
            "{e}"
        );
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
