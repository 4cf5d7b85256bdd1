//! The leaky bucket of one rule for one source, on log time in integer milliseconds.
//!
//! The bucket is kept as the instant it would be empty again (`empty_at`): each accepted
//! event pushes that instant one `leak` later, and time drains it continuously. The level at
//! `t` is `(empty_at - t) / leak` events, so "the bucket already holds `capacity` events" is
//! `empty_at - t > (capacity - 1) * leak`, an exact integer comparison with no rounding.

/// What an event did to the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// The event fit.
    Counted,
    /// The bucket was full: the source is flagged, the bucket starts over empty and the
    /// blackhole begins.
    Overflow,
    /// The event fell in the blackhole after an overflow and was ignored.
    Blackholed,
}

/// One rule's bucket for one source: when it is empty again and when its blackhole ends, in
/// log milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    empty_at: i64,
    blackhole_until: i64,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            empty_at: i64::MIN,
            blackhole_until: i64::MIN,
        }
    }
}

/// A bucket's fixed parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events the bucket holds; the next one overflows. 0 makes a trigger.
    pub capacity: u32,
    /// Milliseconds of log time in which the bucket loses one event.
    pub leak_ms: i64,
    /// Milliseconds of log time after an overflow in which the rule ignores the source's
    /// events.
    pub blackhole_ms: i64,
}

impl Limits {
    /// `(capacity - 1) * leak`: how far ahead `empty_at` may be when an event still fits.
    /// A trigger (capacity 0) gives `-leak`, so even an empty bucket overflows.
    fn headroom(self) -> i128 {
        (i128::from(self.capacity) - 1) * i128::from(self.leak_ms)
    }
}

impl Bucket {
    /// Whether the bucket has leaked empty by `now` (and no blackhole is running), so its
    /// state can be dropped: a fresh bucket would behave the same.
    pub fn is_idle(&self, now: i64) -> bool {
        self.empty_at <= now && self.blackhole_until <= now
    }

    /// Whether the bucket holds nothing at `now`; distinct values seen so far are forgotten
    /// when this is true, as the bucket's lifetime has ended.
    pub fn is_empty(&self, now: i64) -> bool {
        self.empty_at <= now
    }

    /// Whether the bucket holds more than `events` events at `now`: it is not empty again
    /// until more than `events` leaks from `now`.
    pub fn holds_more_than(&self, now: i64, events: u32, leak_ms: i64) -> bool {
        i128::from(self.empty_at) - i128::from(now) > i128::from(events) * i128::from(leak_ms)
    }

    /// Pours one event arriving at `now` (ms). Events must come in time order.
    pub fn offer(&mut self, now: i64, limits: Limits) -> Offer {
        if now < self.blackhole_until {
            return Offer::Blackholed;
        }
        let start = self.empty_at.max(now);
        let ahead = i128::from(start) - i128::from(now);
        if ahead > limits.headroom() {
            self.empty_at = now;
            self.blackhole_until = now.saturating_add(limits.blackhole_ms);
            return Offer::Overflow;
        }
        self.empty_at = start.saturating_add(limits.leak_ms);
        Offer::Counted
    }
}

/// Distinct values arrive already hashed with a per-run seed; the set needs no second hash.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type SeenSet = std::collections::HashSet<u64, std::hash::BuildHasherDefault<Prehashed>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(capacity: u32, leak_ms: i64) -> Limits {
        Limits {
            capacity,
            leak_ms,
            blackhole_ms: 60_000,
        }
    }

    /// Offers events at the given instants and returns the indices that overflowed.
    fn overflows(l: Limits, times: &[i64]) -> Vec<usize> {
        let mut b = Bucket::default();
        times
            .iter()
            .enumerate()
            .filter(|&(_, &t)| b.offer(t, l) == Offer::Overflow)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn capacity_at_one_instant_fits_and_one_more_overflows() {
        let l = limits(10, 10_000);
        assert_eq!(overflows(l, &[5_000; 10]), Vec::<usize>::new());
        assert_eq!(overflows(l, &[5_000; 11]), vec![10]);
    }

    #[test]
    fn spacing_of_exactly_the_leak_never_overflows() {
        let l = limits(1, 1_000);
        let times: Vec<i64> = (0..1_000).map(|i| i * 1_000).collect();
        assert!(overflows(l, &times).is_empty());
        // One millisecond less and the second event finds the bucket still full.
        assert_eq!(overflows(l, &[0, 999]), vec![1]);
    }

    #[test]
    fn leak_is_continuous() {
        // Capacity 3, leak 1s: three at t=0, then at t=1000 one has leaked, so one fits,
        // and a fifth at the same instant overflows.
        let l = limits(3, 1_000);
        assert_eq!(overflows(l, &[0, 0, 0, 1_000]), Vec::<usize>::new());
        assert_eq!(overflows(l, &[0, 0, 0, 1_000, 1_000]), vec![4]);
        assert_eq!(overflows(l, &[0, 0, 0, 999]), vec![3]);
    }

    #[test]
    fn trigger_overflows_at_once() {
        assert_eq!(overflows(limits(0, 1_000), &[42]), vec![0]);
    }

    #[test]
    fn blackhole_suppresses_then_expires() {
        let l = Limits {
            capacity: 0,
            leak_ms: 1_000,
            blackhole_ms: 60_000,
        };
        let mut b = Bucket::default();
        assert_eq!(b.offer(0, l), Offer::Overflow);
        assert_eq!(b.offer(1, l), Offer::Blackholed);
        assert_eq!(b.offer(59_999, l), Offer::Blackholed);
        assert!(!b.is_idle(59_999));
        assert_eq!(b.offer(60_000, l), Offer::Overflow);
    }

    #[test]
    fn bucket_starts_over_after_the_blackhole() {
        let l = Limits {
            capacity: 2,
            leak_ms: 1_000_000,
            blackhole_ms: 10,
        };
        let mut b = Bucket::default();
        let got: Vec<Offer> = [0, 0, 0, 5, 10, 10, 10]
            .iter()
            .map(|&t| b.offer(t, l))
            .collect();
        use Offer::*;
        assert_eq!(
            got,
            [
                Counted, Counted, Overflow, Blackholed, Counted, Counted, Overflow
            ]
        );
    }

    #[test]
    fn extreme_values_do_not_overflow_arithmetic() {
        let l = Limits {
            capacity: u32::MAX,
            leak_ms: i64::MAX,
            blackhole_ms: i64::MAX,
        };
        let mut b = Bucket::default();
        assert_eq!(b.offer(i64::MAX - 1, l), Offer::Counted);
        assert_eq!(b.offer(i64::MAX, l), Offer::Counted);
        let mut t = Bucket::default();
        let trig = Limits {
            capacity: 0,
            leak_ms: i64::MAX,
            blackhole_ms: i64::MAX,
        };
        assert_eq!(t.offer(0, trig), Offer::Overflow);
        assert_eq!(t.offer(i64::MAX - 1, trig), Offer::Blackholed);
    }

    #[test]
    fn holds_more_than_counts_what_has_not_leaked() {
        let l = limits(10, 1_000);
        let mut b = Bucket::default();
        assert!(!b.holds_more_than(0, 0, 1_000));
        (0..6).for_each(|_| assert_eq!(b.offer(0, l), Offer::Counted));
        assert!(b.holds_more_than(0, 5, 1_000));
        assert!(!b.holds_more_than(0, 6, 1_000));
        // One event has leaked a second later, and a part of the next one.
        assert!(!b.holds_more_than(1_000, 5, 1_000));
        assert!(b.holds_more_than(1_000, 4, 1_000));
        assert!(b.holds_more_than(1_500, 4, 1_000));
        assert!(!b.holds_more_than(2_000, 4, 1_000));
    }

    #[test]
    fn idle_after_leaking_empty() {
        let l = limits(5, 100);
        let mut b = Bucket::default();
        b.offer(0, l);
        b.offer(0, l);
        assert!(!b.is_idle(199));
        assert!(b.is_idle(200));
    }
}
