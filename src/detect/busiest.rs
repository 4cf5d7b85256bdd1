//! The busiest-window tally: per source and rule of a large capacity, the most events in
//! one window of a fixed grid, which rules out before the replay the sources whose bucket
//! can never fill. Why that is safe is proved on [`Busiest`]. The engine decides what to
//! replay with it; the buckets themselves are in `bucket`.

use super::bucket::Limits;
use super::journal::Event;
use super::matcher::RuleInfo;
use super::rule::rule_bits;

/// Per slot and busy rule, the most events in one window of a fixed grid, which rules out
/// most of the sources with more events than the rule's capacity: those that come back
/// often but never fast.
///
/// Why it is safe: a rule's bucket (capacity `c`, leak `l`) overflows at an event at `t`
/// only if the `k` events it counted since it was last empty, from `t0` on, put its empty
/// instant `t0 + k*l` more than `(c - 1)*l` past `t`: so the `n >= k + 1` events in
/// `[t0, t]` number more than `c + (t - t0)/l`. With windows of `w >= m*l` for `m = c/2`,
/// `[t0, t]` meets at most `(t - t0)/w + 2` of them; if none holds more than `m` events,
/// `n <= (t - t0)/l + 2m <= c + (t - t0)/l`, so the bucket never fills. Events a bucket
/// ignores (a value already seen, the blackhole) only make that surer. Windows are powers
/// of two milliseconds, so finding one is a shift. Lines are written when requests end, so
/// an event may fall in the window before the current one and is counted there; a slot
/// with an event older than that (lines far out of order, several journals) is not ruled
/// out.
pub(super) struct Busiest {
    /// Per rule: its index among the counted rules, or `u8::MAX` when not counted.
    index: [u8; 64],
    /// Per counted rule: the log2 of its window in ms, and `m`.
    windows: Vec<(u32, u16)>,
    /// Rules that are counted, as a mask.
    counted: u64,
    /// Per slot, then per counted rule.
    tallies: Vec<WindowTally>,
}

/// Rules with a smaller capacity are not counted: few ordinary sources have more of their
/// events than that, and a tally per source costs memory.
pub(super) const BUSY_CAPACITY: u32 = 16;

/// One slot's events of one rule in the current window and the one before it, and the most
/// in any window so far (`u16::MAX`: an event came before the window before, or too many).
#[derive(Clone, Copy)]
struct WindowTally {
    window: i64,
    events: u16,
    before: u16,
    most: u16,
}

const NO_WINDOW: WindowTally = WindowTally {
    window: i64::MIN,
    events: 0,
    before: 0,
    most: 0,
};

impl Busiest {
    pub(super) fn new(rules: &[RuleInfo]) -> Busiest {
        let mut b = Busiest {
            index: [u8::MAX; 64],
            windows: Vec::new(),
            counted: 0,
            tallies: Vec::new(),
        };
        for (ri, rule) in rules.iter().enumerate().take(64) {
            let Limits {
                capacity, leak_ms, ..
            } = rule.limits;
            let m = capacity / 2;
            let shortest = leak_ms.checked_mul(i64::from(m)).filter(|&w| w > 0);
            let (true, Ok(m), Some(shortest)) =
                (capacity >= BUSY_CAPACITY, u16::try_from(m), shortest)
            else {
                continue;
            };
            // The smallest power of two at least `shortest`.
            let log2 = 64 - (shortest - 1).leading_zeros();
            if m < u16::MAX && log2 < 62 {
                b.index[ri] = b.windows.len() as u8;
                b.windows.push((log2, m));
                b.counted |= 1u64 << ri;
            }
        }
        b
    }

    pub(super) fn count(&mut self, slot: u32, e: Event) {
        let bits = e.rules & self.counted;
        if bits == 0 {
            return;
        }
        let per = self.windows.len();
        let base = slot as usize * per;
        if self.tallies.len() < base + per {
            self.tallies.resize(base + per, NO_WINDOW);
        }
        let t = e.time.saturating_mul(1000);
        for ri in rule_bits(bits) {
            let wi = usize::from(self.index[ri]);
            let window = t >> self.windows[wi].0;
            let tally = &mut self.tallies[base + wi];
            let events = if window == tally.window {
                tally.events = tally.events.saturating_add(1);
                tally.events
            } else if window > tally.window {
                // The next window keeps the current one as the one before it.
                tally.before = if window - 1 == tally.window {
                    tally.events
                } else {
                    0
                };
                tally.window = window;
                tally.events = 1;
                1
            } else if window + 1 == tally.window {
                tally.before = tally.before.saturating_add(1);
                tally.before
            } else {
                u16::MAX
            };
            tally.most = tally.most.max(events);
        }
    }

    /// The rules whose bucket can never fill for `slot`.
    pub(super) fn never_full(&self, slot: u32) -> u64 {
        let per = self.windows.len();
        let Some(tallies) = self
            .tallies
            .get(slot as usize * per..(slot as usize + 1) * per)
        else {
            return 0;
        };
        rule_bits(self.counted)
            .filter(|&ri| {
                let wi = usize::from(self.index[ri]);
                tallies[wi].most <= self.windows[wi].1
            })
            .fold(0, |quiet, ri| quiet | 1u64 << ri)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::detect::bucket::{Bucket, Offer};
    use crate::detect::journal::NO_VHOST;
    use crate::detect::matcher::CompiledRules;
    use crate::detect::rule::{Filter, Rule, RuleSet};

    /// A rule of `capacity` and `leak_ms` for the window tallies.
    fn busy_rule(capacity: u32, leak_ms: i64) -> RuleInfo {
        let mut set = RuleSet::new();
        set.insert(Rule::new("r", "", Filter::default(), capacity, leak_ms));
        let rules = CompiledRules::new(&set).expect("rules compile");
        rules.rules()[0].clone()
    }

    /// Whether a bucket of `rule` overflows on `times` (seconds) replayed in time order.
    pub(in crate::detect) fn overflows_in_order(rule: &RuleInfo, times: &[i64]) -> bool {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        let mut bucket = Bucket::default();
        sorted
            .iter()
            .any(|&t| bucket.offer(t * 1000, rule.limits) == Offer::Overflow)
    }

    /// Whether the window tallies rule `rule` out for a source with events at `times`, in
    /// that (arrival) order.
    fn ruled_out(rule: &RuleInfo, times: &[i64]) -> bool {
        let mut busiest = Busiest::new(std::slice::from_ref(rule));
        for (i, &time) in times.iter().enumerate() {
            let e = Event {
                time,
                order: i as u64,
                rules: 1,
                site: NO_VHOST,
            };
            busiest.count(0, e);
        }
        busiest.never_full(0) == 1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// A source the window tallies rule out never overflows the bucket, whatever the
        /// spacing, bursts and disorder of its events.
        #[test]
        fn sources_ruled_out_by_their_busiest_window_never_overflow(
            capacity in BUSY_CAPACITY..40,
            leak_ms in prop_oneof![Just(1000i64), 100i64..3000],
            start in 0i64..100_000,
            // Runs of events after a pause: how many (in eighths of the capacity, so that
            // runs come near what overflows), seconds between them, the pause.
            runs in proptest::collection::vec((1u32..17, 0i64..3, 0i64..120), 1..8),
            swaps in proptest::collection::vec((0usize..400, 0usize..3), 0..30),
        ) {
            let rule = busy_rule(capacity, leak_ms);
            let mut t = 1_700_000_000 + start;
            let mut times = Vec::new();
            for &(eighths, spacing, pause) in &runs {
                t += pause;
                for _ in 0..(capacity * eighths).div_ceil(8) {
                    times.push(t);
                    t += spacing;
                }
            }
            // Lines written a little out of order.
            let len = times.len();
            for &(a, d) in &swaps {
                times.swap(a % len, (a + d) % len);
            }
            prop_assert!(
                !(ruled_out(&rule, &times) && overflows_in_order(&rule, &times)),
                "ruled out but overflows: capacity {} leak {} times {:?}",
                capacity,
                leak_ms,
                times
            );
        }
    }

    #[test]
    fn busiest_windows_rule_out_slow_sources_and_keep_fast_ones() {
        // Capacity 20 and leak 1 s: windows of at least 10 s, at most 10 events in one.
        let rule = busy_rule(20, 1000);
        let steady: Vec<i64> = (0..500).map(|i| 1_700_000_000 + 4 * i).collect();
        assert!(ruled_out(&rule, &steady) && !overflows_in_order(&rule, &steady));
        // 21 events at once overflow and are kept.
        let burst = vec![1_700_000_000i64; 21];
        assert!(!ruled_out(&rule, &burst) && overflows_in_order(&rule, &burst));
        // 22 events over two seconds on either side of a window boundary (2048 s is a
        // multiple of every power-of-two window from 1 to 2^14 ms): 11 in each window, one
        // more than the tally allows, and the bucket does overflow.
        let edge = 2048 * 830_079;
        let split: Vec<i64> = (0..22).map(|i| edge - 1 + i / 11).collect();
        assert!(!ruled_out(&rule, &split) && overflows_in_order(&rule, &split));
        // A line of the window before the current one is counted there; one from further
        // back is lines too far out of order to tell: the source is kept.
        let mut late = steady.clone();
        late.swap(10, 13);
        assert!(ruled_out(&rule, &late));
        let mut far = steady.clone();
        far.swap(10, 60);
        assert!(!ruled_out(&rule, &far));
        // Rules of a small capacity are not counted at all.
        let small = busy_rule(BUSY_CAPACITY - 1, 1000);
        assert!(!ruled_out(&small, &steady));
    }
}
