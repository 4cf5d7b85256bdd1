//! Rule compilation: [`CompiledRules::new`] turns a rule set into the matcher's tables
//! (statuses, methods, flag masks) and automata (one per field, one for targets as a whole)
//! and regex sets, step by step. What the tables mean and how a line is evaluated with them
//! are in `matcher`.

use std::collections::BTreeMap;

use regex::bytes::RegexSetBuilder;

use super::bucket::Limits;
use super::builtin::STATIC_EXTENSIONS;
use super::error::RuleError;
use super::matcher::{
    CompiledRules, ESCAPE, FieldAutomaton, FieldRegexes, MAX_RULES, RuleInfo, STATIC_END, Served,
    TargetAutomaton,
};
use super::patterns::Patterns;
use super::rule::{Field, Filter, Rule, RuleSet, pattern_lines};
use super::verdict_cache::cache_seeds;

/// Per field, what the filters ask of it while rules are compiled: each pattern text (lower
/// case, and whether it must end the field) with the filters it serves, and the regexes
/// with their filter.
#[derive(Default)]
struct FieldPatterns {
    contains: [BTreeMap<(String, bool), u64>; 4],
    regexes: [Vec<(String, u64)>; 4],
}

/// The most rules, and the most filters over all of them, that fit a mask.
fn check_counts(enabled: &[&Rule]) -> Result<(), RuleError> {
    if enabled.len() > MAX_RULES {
        return Err(RuleError::TooMany {
            what: "rules",
            count: enabled.len(),
            max: MAX_RULES,
        });
    }
    let nfilters: usize = enabled.iter().map(|r| r.filters.len()).sum();
    if nfilters > MAX_RULES {
        return Err(RuleError::TooMany {
            what: "filters",
            count: nfilters,
            max: MAX_RULES,
        });
    }
    Ok(())
}

impl CompiledRules {
    /// Compiles the enabled rules of `set`. Regexes were checked when a file was loaded;
    /// rules built in code are checked here.
    pub fn new(set: &RuleSet) -> Result<CompiledRules, RuleError> {
        let enabled: Vec<&Rule> = set.enabled().collect();
        check_counts(&enabled)?;
        let mut c = CompiledRules::empty();
        let mut patterns = FieldPatterns::default();
        for (ri, rule) in enabled.iter().enumerate() {
            c.add_rule(ri, rule, &mut patterns);
        }
        c.build_target_automaton(&patterns)?;
        c.build_field_matchers(patterns)?;
        Ok(c)
    }

    /// Rules with no rule in them, and the seeds of their hashes drawn.
    fn empty() -> CompiledRules {
        let mut c = CompiledRules {
            rules: Vec::new(),
            filter_rule: Vec::new(),
            all_filters: 0,
            status_table: vec![0; 600],
            status_any: 0,
            method_filters: 0,
            methods: Vec::new(),
            not_static: 0,
            bad_protocol: 0,
            absolute_uri: 0,
            numeric_query: 0,
            fields: Default::default(),
            static_exts: pattern_lines(STATIC_EXTENSIONS)
                .into_iter()
                .map(|e| e.into_bytes().into_boxed_slice())
                .collect(),
            groupings: Vec::new(),
            distinct_fields: [0; 4],
            cache_target: true,
            target_automaton: None,
            hasher: foldhash::quality::RandomState::default(),
            cache_seeds: [0; 8],
            crawlers: None,
        };
        c.cache_seeds = cache_seeds(&c.hasher);
        c
    }

    /// Adds rule `ri`: its limits, distinct field and grouping, and its filters (see
    /// [`CompiledRules::add_filter`]).
    fn add_rule(&mut self, ri: usize, rule: &Rule, patterns: &mut FieldPatterns) {
        let rbit = 1u64 << ri;
        self.rules.push(RuleInfo {
            name: rule.name.clone(),
            limits: Limits {
                capacity: rule.capacity,
                leak_ms: rule.leak_ms.max(1),
                blackhole_ms: rule.blackhole_ms.max(0),
            },
            distinct: rule.distinct,
            grouping: rule.grouping,
        });
        if let Some(field) = rule.distinct {
            self.distinct_fields[field.index()] |= rbit;
        }
        match self.groupings.iter_mut().find(|(g, _)| *g == rule.grouping) {
            Some((_, mask)) => *mask |= rbit,
            None => self.groupings.push((rule.grouping, rbit)),
        }
        for filter in &rule.filters {
            self.add_filter(ri, filter, patterns);
        }
    }

    /// Adds the next filter, of rule `ri`: its bit in the status table and the flag masks,
    /// its methods, and its field patterns and regexes to `patterns`.
    fn add_filter(&mut self, ri: usize, filter: &Filter, patterns: &mut FieldPatterns) {
        let fbit = 1u64 << self.filter_rule.len();
        self.filter_rule.push(ri as u8);
        self.all_filters |= fbit;
        if filter.status.is_empty() {
            self.status_any |= fbit;
            self.status_table.iter_mut().for_each(|m| *m |= fbit);
        } else {
            for &s in &filter.status {
                if let Some(slot) = self.status_table.get_mut(usize::from(s)) {
                    *slot |= fbit;
                }
            }
        }
        if !filter.methods.is_empty() {
            self.method_filters |= fbit;
        }
        self.methods.push(
            filter
                .methods
                .iter()
                .map(|m| m.as_bytes().to_vec().into_boxed_slice())
                .collect(),
        );
        if filter.not_static {
            self.not_static |= fbit;
        }
        if filter.bad_protocol {
            self.bad_protocol |= fbit;
        }
        if filter.absolute_uri {
            self.absolute_uri |= fbit;
        }
        if filter.numeric_query {
            self.numeric_query |= fbit;
        }
        for field in Field::ALL {
            let m = filter.field(field);
            if m.is_empty() {
                continue;
            }
            self.fields[field.index()].need |= fbit;
            for p in &m.contains {
                let (text, anchored) = match p.strip_suffix('$') {
                    Some(t) => (t, true),
                    None => (p.as_str(), false),
                };
                if text.is_empty() {
                    continue;
                }
                *patterns.contains[field.index()]
                    .entry((text.to_ascii_lowercase(), anchored))
                    .or_insert(0) |= fbit;
            }
            for r in &m.regex {
                patterns.regexes[field.index()].push((r.clone(), fbit));
            }
        }
    }

    /// Targets are cached when path, query and target have no regexes. Their verdicts then
    /// come from one automaton over all three fields' patterns, built here, and each field's
    /// own is used only on percent-decoded text: those are small NFAs, not DFAs.
    fn build_target_automaton(&mut self, patterns: &FieldPatterns) -> Result<(), RuleError> {
        self.cache_target = [Field::Path, Field::Query, Field::Target]
            .iter()
            .all(|f| patterns.regexes[f.index()].is_empty());
        // Text -> per target field, the filters it serves unanchored and anchored, and its
        // marks.
        let mut together: BTreeMap<String, (Served, u8)> = BTreeMap::new();
        for field in [Field::Path, Field::Query, Field::Target] {
            for ((text, anchored), &mask) in &patterns.contains[field.index()] {
                let served = &mut together.entry(text.clone()).or_default().0[field.index()];
                if *anchored {
                    served.1 |= mask;
                } else {
                    served.0 |= mask;
                }
            }
        }
        if !self.cache_target {
            return Ok(());
        }
        // The static extension check finds the extension after the last `.` or `/` of the
        // path's last 9 bytes, so a `.ext` that ends the path is the same test for every
        // extension of at most 8 bytes with neither in it; the others never match.
        for ext in &self.static_exts {
            if ext.len() <= 8 && !ext.iter().any(|&b| b == b'.' || b == b'/') {
                let text = format!(".{}", String::from_utf8_lossy(ext));
                together.entry(text).or_default().1 |= STATIC_END;
            }
        }
        for escape in ["%", "+"] {
            together.entry(escape.to_string()).or_default().1 |= ESCAPE;
        }
        let mut texts = Vec::with_capacity(together.len());
        let mut served = Vec::with_capacity(together.len());
        let mut marks = Vec::with_capacity(together.len());
        for (text, (s, m)) in together {
            texts.push(text);
            served.push(s);
            marks.push(m);
        }
        self.target_automaton = Some(TargetAutomaton {
            ac: build_automaton(&texts, "target", true)?,
            patterns: served,
            marks,
        });
        Ok(())
    }

    /// Each field's own automaton and regex set.
    fn build_field_matchers(&mut self, mut patterns: FieldPatterns) -> Result<(), RuleError> {
        for field in Field::ALL {
            let i = field.index();
            let pats = std::mem::take(&mut patterns.contains[i]);
            if !pats.is_empty() {
                let (texts, patterns): (Vec<String>, Vec<(u64, bool)>) = pats
                    .into_iter()
                    .map(|((text, anchored), mask)| (text, (mask, anchored)))
                    .unzip();
                let fast = field == Field::UserAgent || !self.cache_target;
                let ac = build_automaton(&texts, field.name(), fast)?;
                self.fields[i].automaton = Some(FieldAutomaton { ac, patterns });
            }
            let res = std::mem::take(&mut patterns.regexes[i]);
            if !res.is_empty() {
                let set = RegexSetBuilder::new(res.iter().map(|(r, _)| r.as_str()))
                    .size_limit(1 << 24)
                    .build()
                    .map_err(|e| self.regex_error(field, &res, e))?;
                self.fields[i].regexes = Some(FieldRegexes {
                    set,
                    filters: res.iter().map(|(_, f)| *f).collect(),
                });
            }
        }
        Ok(())
    }

    /// The error for `field`'s regexes `res` (each with its filter's bit) that failed to
    /// build together: it names the first rule whose regex fails on its own.
    fn regex_error(&self, field: Field, res: &[(String, u64)], e: regex::Error) -> RuleError {
        let bad = res
            .iter()
            .find(|(r, _)| regex::bytes::Regex::new(r).is_err())
            .map(|(_, fbit)| fbit.trailing_zeros() as usize);
        let rule = bad
            .and_then(|fi| self.filter_rule.get(fi))
            .and_then(|&ri| self.rules.get(usize::from(ri)))
            .map_or_else(|| "(all)".to_string(), |r| r.name.clone());
        RuleError::Compile {
            rule,
            field: format!("{}_regex", field.name()),
            message: e.to_string(),
        }
    }
}

/// An ASCII case-insensitive automaton reporting every occurrence of `texts`: a DFA when
/// `fast` and it fits (the fastest search, the slowest and largest build), else an NFA.
fn build_automaton<T: AsRef<[u8]>>(
    texts: &[T],
    field: &str,
    fast: bool,
) -> Result<Patterns, RuleError> {
    Patterns::new(texts, fast).map_err(|message| RuleError::Compile {
        rule: "(all)".into(),
        field: field.into(),
        message,
    })
}
