//! Substring patterns of the rules as one case-insensitive automaton, walked byte by byte
//! to report every occurrence of every pattern.
//!
//! `AhoCorasick::find_overlapping_iter` reports the same matches, but through a dynamic
//! call and an iterator state per step; most targets match nothing, and on traffic with
//! many distinct targets (crawlers) that overhead was most of the cost of a verdict. This
//! walk keeps the state in a register and looks at the match list only in match states.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{Anchored, MatchKind, dfa, nfa};

/// An automaton reporting every occurrence of its patterns, ASCII case-insensitive.
pub enum Patterns {
    /// The fastest search, and the slowest and largest build.
    Dfa(dfa::DFA),
    /// For pattern sets a DFA would make too large, or where a fast build matters more.
    Nfa(nfa::contiguous::NFA),
}

impl Patterns {
    /// Builds the automaton for `texts`: a DFA when `fast` and it can be built, else an NFA.
    pub fn new<T: AsRef<[u8]>>(texts: &[T], fast: bool) -> Result<Patterns, String> {
        if fast {
            let built = dfa::DFA::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .start_kind(aho_corasick::StartKind::Unanchored)
                .build(texts);
            if let Ok(dfa) = built {
                return Ok(Patterns::Dfa(dfa));
            }
        }
        nfa::contiguous::NFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(texts)
            .map(Patterns::Nfa)
            .map_err(|e| e.to_string())
    }

    /// Calls `found(pattern, start, end)` for every occurrence of every pattern in `hay`,
    /// in order of `end`.
    #[inline]
    pub fn for_each_match(&self, hay: &[u8], mut found: impl FnMut(usize, usize, usize)) {
        match self {
            Patterns::Dfa(a) => walk(a, hay, &mut found),
            Patterns::Nfa(a) => walk(a, hay, &mut found),
        }
    }
}

/// The walk of [`Patterns::for_each_match`]. Out of line, with `found` called through a
/// pointer from the rare match states only: inlined into its callers, the loop shared
/// their registers and reloaded its table and haystack from the stack on every byte.
#[inline(never)]
fn walk<A: Automaton>(a: &A, hay: &[u8], found: &mut dyn FnMut(usize, usize, usize)) {
    // Both builders above make an unanchored start state; without one nothing matches.
    let Ok(mut sid) = a.start_state(Anchored::No) else {
        return;
    };
    if a.is_match(sid) {
        report(a, sid, 0, found);
    }
    // One compare per byte leaves the loop: match states are special, and with no
    // prefilter the other special states (dead, fail) are rare.
    let mut end = 0;
    for &b in hay {
        end += 1;
        sid = a.next_state(Anchored::No, sid, b);
        if a.is_special(sid) {
            report(a, sid, end, found);
        }
    }
}

/// Calls `found` for each pattern that state `sid` matches, ending at `end` (none when
/// it is a special state that is not a match state).
#[cold]
#[inline(never)]
fn report<A: Automaton>(
    a: &A,
    sid: StateID,
    end: usize,
    found: &mut dyn FnMut(usize, usize, usize),
) {
    if !a.is_match(sid) {
        return;
    }
    for i in 0..a.match_len(sid) {
        let pid = a.match_pattern(sid, i);
        let len = a.pattern_len(pid);
        found(pid.as_usize(), end - len, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::AhoCorasick;

    fn matches(p: &Patterns, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        p.for_each_match(hay, |pid, s, e| v.push((pid, s, e)));
        v.sort_unstable();
        v
    }

    fn reference(texts: &[&str], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(texts)
            .unwrap();
        let mut v: Vec<_> = ac
            .find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn overlapping_and_nested_patterns_all_reported() {
        let texts = ["/.env", ".env", "env", "ENV.bak", "../"];
        for fast in [true, false] {
            let p = Patterns::new(&texts, fast).unwrap();
            let hay = b"/a/../../.ENV.bak";
            assert_eq!(matches(&p, hay), reference(&texts, hay));
            assert_eq!(matches(&p, hay).len(), 6);
        }
    }

    proptest::proptest! {
        #[test]
        fn walk_reports_what_the_library_iterator_reports(
            texts in proptest::collection::vec("[a-cA-C./%]{1,4}", 1..12),
            hay in "[a-dA-D./%]{0,40}",
            fast in proptest::bool::ANY,
        ) {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let p = Patterns::new(&refs, fast).unwrap();
            proptest::prop_assert_eq!(
                matches(&p, hay.as_bytes()),
                reference(&refs, hay.as_bytes())
            );
        }
    }
}
