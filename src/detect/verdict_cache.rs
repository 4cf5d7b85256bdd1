//! The verdict caches of rule evaluation: small two-way set-associative caches from a
//! field's bytes (a target, a user agent) to what it matches, the inline key compare and the
//! seeded hash that places a key. What a verdict holds and when a cache is used are the
//! matcher's.

use std::hash::BuildHasher;

use crate::bytes::word_at;

/// Longer values are not cached, which bounds the caches' memory (about 1 MiB).
const MAX_CACHED_LEN: usize = 256;

/// A two-way set-associative cache from field bytes to a verdict. Slots keep their
/// buffers, so once warm a replacement does not allocate. Two ways, not one: with a
/// direct-mapped table, two busy keys that the run's random seed puts in one slot evict each
/// other on every alternation, and the miss rate swung by half from run to run.
pub(super) struct VerdictCache<V> {
    /// Set `i` is slots `2i` and `2i + 1`.
    slots: Vec<Slot<V>>,
    /// Per set: the way used last, so a miss replaces the other.
    recent: Vec<u8>,
    /// The slot of the last lookup. Lines of one client come in runs and repeat its user
    /// agent, so that slot is tried before hashing when `try_last`; a target repeats on
    /// too few lines (under 1% of the generated log's) to pay for the compare.
    last: usize,
    try_last: bool,
}

/// One cache slot: the key's hash, the key, and its verdict. Aligned so that a slot with a
/// target verdict is exactly one cache line: a hit loads one line besides the key's bytes.
#[repr(align(64))]
struct Slot<V>(u64, Vec<u8>, V);

impl<V: Copy + Default> VerdictCache<V> {
    /// A cache of `n` slots (a power of two, at least 2).
    pub(super) fn new(n: usize, try_last: bool) -> Self {
        VerdictCache {
            slots: (0..n).map(|_| Slot(0, Vec::new(), V::default())).collect(),
            recent: vec![0; n / 2],
            last: 0,
            try_last,
        }
    }

    /// The verdict for `key`, computed by `make` when it is not cached. `hash` gives the
    /// key's hash, which picks its set; it is not called when the last slot holds `key`.
    pub(super) fn get(
        &mut self,
        key: &[u8],
        hash: impl FnOnce(&[u8]) -> u64,
        make: impl FnOnce() -> V,
    ) -> V {
        if key.len() > MAX_CACHED_LEN || self.recent.is_empty() {
            return make();
        }
        // An empty buffer is an empty slot only while `h` is 0: a hash of `b""` is not 0
        // with any realistic seed, and a false hit on it would just compare bytes anyway.
        if self.try_last {
            if let Some(Slot(h, bytes, v)) = self.slots.get(self.last) {
                if bytes.as_slice() == key && (*h != 0 || !bytes.is_empty()) {
                    return *v;
                }
            }
        }
        let hash = hash(key);
        let set = (hash as usize) & (self.recent.len() - 1);
        for way in 0..2 {
            let i = 2 * set + way;
            let Slot(h, bytes, v) = &self.slots[i];
            if *h == hash && same_bytes(bytes, key) && (hash != 0 || !bytes.is_empty()) {
                self.last = i;
                self.recent[set] = way as u8;
                return *v;
            }
        }
        let way = usize::from(self.recent[set] == 0);
        let i = 2 * set + way;
        self.last = i;
        self.recent[set] = way as u8;
        let fresh = make();
        let Slot(h, bytes, v) = &mut self.slots[i];
        *h = hash;
        bytes.clear();
        bytes.extend_from_slice(key);
        *v = fresh;
        fresh
    }
}

/// The random words that key [`cache_hash`], drawn from `hasher`.
pub(super) fn cache_seeds(hasher: &foldhash::quality::RandomState) -> [u64; 8] {
    std::array::from_fn(|i| hasher.hash_one(i as u64))
}

/// The hash that places a target or user agent in its verdict cache, and that distinct
/// counting keeps of a value. Keys of up to 64 bytes (most targets, paths and queries) are
/// hashed inline from (overlapping) 8-byte words that cover every byte, each pair mixed with
/// random `seeds` of its own in a folded multiply, as foldhash does, without its call and
/// length prefix: this runs on nearly every line. Longer keys use `hasher`, out of line.
#[inline(always)]
pub(super) fn cache_hash(
    seeds: &[u64; 8],
    hasher: &foldhash::quality::RandomState,
    key: &[u8],
) -> u64 {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = *seeds;
    let n = key.len();
    let len = n as u64;
    let w = |at: usize| word_at(key, at);
    match n {
        0..=7 => folded_multiply(short_word(key) ^ s0, s1 ^ len),
        8..=16 => folded_multiply(w(0) ^ s0, w(n - 8) ^ s1 ^ len),
        17..=32 => {
            folded_multiply(w(0) ^ s0, w(8) ^ s1)
                ^ folded_multiply(w(n - 16) ^ s2, w(n - 8) ^ s3 ^ len)
        }
        33..=64 => {
            folded_multiply(w(0) ^ s0, w(8) ^ s1)
                ^ folded_multiply(w(16) ^ s2, w(24) ^ s3)
                ^ folded_multiply(w(n - 32) ^ s4, w(n - 24) ^ s5)
                ^ folded_multiply(w(n - 16) ^ s6, w(n - 8) ^ s7 ^ len)
        }
        _ => cache_hash_other(hasher, key),
    }
}

/// The bytes of a key shorter than 8 in one word: every byte of it, for each length.
#[inline(always)]
fn short_word(key: &[u8]) -> u64 {
    let n = key.len();
    let u32_at = |at: usize| {
        u64::from(u32::from_le_bytes([
            key[at],
            key[at + 1],
            key[at + 2],
            key[at + 3],
        ]))
    };
    match n {
        0 => 0,
        1..=3 => u64::from(key[0]) | u64::from(key[n / 2]) << 8 | u64::from(key[n - 1]) << 16,
        _ => u32_at(0) | u32_at(n - 4) << 32,
    }
}

/// [`cache_hash`] of keys longer than 64 bytes.
#[inline(never)]
fn cache_hash_other(hasher: &foldhash::quality::RandomState, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

/// The high and low halves of the 128-bit product of `a` and `b`, folded into one word.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// `a == b`, comparing keys of 8 to 32 bytes (most targets) in (overlapping) 8-byte words
/// inline rather than through a call to `memcmp`: a cache hit compares one on nearly every
/// line.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let differ = |at: usize| word_at(a, at) ^ word_at(b, at);
    match n {
        8..=16 => differ(0) | differ(n - 8) == 0,
        17..=32 => differ(0) | differ(8) | differ(n - 16) | differ(n - 8) == 0,
        _ => a == b,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn verdict_cache_keeps_two_keys_of_one_set() {
        // With and without trying the last slot first.
        for try_last in [false, true] {
            let mut cache: VerdictCache<u64> = VerdictCache::new(8, try_last);
            let mut made = 0;
            // Every key hashes to one set; the verdict is the key's length.
            let mut get = |cache: &mut VerdictCache<u64>, key: &[u8]| {
                cache.get(
                    key,
                    |_| 5,
                    || {
                        made += 1;
                        key.len() as u64
                    },
                )
            };
            for key in [&b"/a"[..], b"/a", b"/bb", b"/a", b"/bb", b"/a"] {
                assert_eq!(get(&mut cache, key), key.len() as u64);
            }
            // A third key replaces the one used less recently (/bb), not /a.
            assert_eq!(get(&mut cache, b"/ccc"), 4);
            assert_eq!(get(&mut cache, b"/a"), 2);
            assert_eq!(get(&mut cache, b"/bb"), 3);
            assert_eq!(made, 4, "try_last {try_last}");
        }
    }

    proptest::proptest! {
        /// The inline cache hash reads every byte: flipping any one bit of a key of any
        /// length changes it (a miss here would mean a byte left out, not bad luck: the
        /// chance of a true collision is about 2^-64).
        #[test]
        fn cache_hash_covers_every_byte(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let hasher = foldhash::quality::RandomState::default();
            let seeds = cache_seeds(&hasher);
            let hash = |key: &[u8]| cache_hash(&seeds, &hasher, key);
            proptest::prop_assume!(!key.is_empty());
            let mut other = key.clone();
            other[at.index(key.len())] ^= 1 << bit;
            proptest::prop_assert_eq!(hash(&key), hash(&key.clone()));
            proptest::prop_assert_ne!(hash(&key), hash(&other));
        }
    }

    proptest::proptest! {
        /// The inline key compare is `==`, on keys of every length, equal or differing in
        /// one bit anywhere or in length.
        #[test]
        fn same_bytes_is_equality(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
            shorter in proptest::prelude::any::<bool>(),
        ) {
            compare_is_equality(same_bytes, &a, at, bit, shorter)?;
        }
    }

    /// Checks that `compare` is `==` for `a` against itself and against `a` with one bit
    /// flipped at `at` and, when `shorter`, its last byte dropped.
    pub(in crate::detect) fn compare_is_equality(
        compare: fn(&[u8], &[u8]) -> bool,
        a: &[u8],
        at: proptest::sample::Index,
        bit: u8,
        shorter: bool,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        // A copy elsewhere in memory, so equal contents are compared, not addresses.
        let copy = a.to_vec();
        proptest::prop_assert!(compare(a, &copy));
        let mut b = copy;
        if !b.is_empty() {
            b[at.index(a.len())] ^= 1 << bit;
        }
        if shorter {
            b.pop();
        }
        proptest::prop_assert_eq!(compare(a, &b), a == b.as_slice());
        Ok(())
    }
}
