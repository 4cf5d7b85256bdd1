//! Byte comparisons several bytes at a time, shared by the parser's field search, the
//! masker's URL prefilter and line check, and the detection caches: the one place that
//! uses SIMD instructions.

/// The eight bytes of `s` at `at` as a little-endian word; `at + 8 <= s.len()`.
#[inline(always)]
pub(crate) fn word_at(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A bit per byte of `chunk` that equals `needle`, lowest bit first. On x86_64 one SSE2
/// compare (SSE2 is part of every x86_64 processor); elsewhere a loop the compiler may
/// vectorize.
#[inline(always)]
pub(crate) fn eq_mask16(chunk: &[u8; 16], needle: u8) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is always present on x86_64, and the load reads the 16 bytes of
        // `chunk`, which the type guarantees.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(needle as i8))) as u32
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk
            .iter()
            .enumerate()
            .fold(0, |m, (i, &b)| m | (u32::from(b == needle) << i))
    }
}

/// [`eq_mask16`] for 32 bytes: two compares, one mask.
#[inline(always)]
pub(crate) fn eq_mask32(chunk: &[u8; 32], needle: u8) -> u32 {
    // Both halves are 16 bytes, which the compiler sees: no `None` is left to handle.
    let half = |h: Option<&[u8; 16]>| h.map_or(0, |h| eq_mask16(h, needle));
    let (lo, hi) = chunk.split_at(16);
    half(lo.first_chunk()) | half(hi.first_chunk()) << 16
}

/// How many bytes of `hay` equal `a`, and how many equal `b`. On x86_64 the matches are
/// summed sixteen lanes at a time in byte counters, added up at the end and every 255
/// chunks (before a counter can wrap). The bytes short of a whole chunk are compared once
/// more within the last 16 bytes, with the lanes already counted masked off; a text
/// shorter than 16 bytes is copied into a chunk padded with a byte that is neither.
#[inline]
pub(crate) fn count_eq2(hay: &[u8], a: u8, b: u8) -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128,
            _mm_sad_epu8, _mm_set1_epi8, _mm_setzero_si128, _mm_sub_epi8, _mm_unpackhi_epi64,
        };
        /// Sixteen zero bytes, then sixteen of all ones: 16 bytes from offset `k` keep the
        /// last `k` lanes.
        static LAST_LANES: [u8; 32] = {
            let mut m = [0u8; 32];
            let mut i = 16;
            while i < 32 {
                m[i] = 0xff;
                i += 1;
            }
            m
        };
        // SAFETY: SSE2 is always present on x86_64. Every load reads 16 bytes: of a chunk
        // that `chunks_exact(16)` or `last_chunk::<16>` guarantees, of the local `padded`,
        // or of `LAST_LANES` at an offset of at most 15.
        unsafe {
            let (va, vb) = (_mm_set1_epi8(a as i8), _mm_set1_epi8(b as i8));
            let zero = _mm_setzero_si128();
            let (mut acc_a, mut acc_b) = (zero, zero);
            let (mut na, mut nb) = (0usize, 0usize);
            let sum = |acc: __m128i| {
                let sad = _mm_sad_epu8(acc, zero);
                (_mm_cvtsi128_si64(sad) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(sad, sad))) as usize
            };
            // A match is all ones, -1: subtracting it adds one to the lane.
            let add = |(acc_a, acc_b): (__m128i, __m128i), v: __m128i, keep: __m128i| {
                (
                    _mm_sub_epi8(acc_a, _mm_and_si128(_mm_cmpeq_epi8(v, va), keep)),
                    _mm_sub_epi8(acc_b, _mm_and_si128(_mm_cmpeq_epi8(v, vb), keep)),
                )
            };
            let all = _mm_cmpeq_epi8(zero, zero);
            let mut chunks = hay.chunks_exact(16);
            let mut batch = 0;
            for chunk in &mut chunks {
                let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
                (acc_a, acc_b) = add((acc_a, acc_b), v, all);
                batch += 1;
                if batch == 255 {
                    na += sum(acc_a);
                    nb += sum(acc_b);
                    (acc_a, acc_b, batch) = (zero, zero, 0);
                }
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                match hay.last_chunk::<16>() {
                    Some(last) => {
                        let keep = _mm_loadu_si128(LAST_LANES[rest.len()..].as_ptr().cast());
                        let v = _mm_loadu_si128(last.as_ptr().cast());
                        (acc_a, acc_b) = add((acc_a, acc_b), v, keep);
                    }
                    None => {
                        let pad = if a.wrapping_add(1) == b {
                            a.wrapping_add(2)
                        } else {
                            a.wrapping_add(1)
                        };
                        let mut padded = [pad; 16];
                        padded[..rest.len()].copy_from_slice(rest);
                        let v = _mm_loadu_si128(padded.as_ptr().cast());
                        (acc_a, acc_b) = add((acc_a, acc_b), v, all);
                    }
                }
            }
            (na + sum(acc_a), nb + sum(acc_b))
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        hay.iter().fold((0, 0), |(x, y), &c| {
            (x + usize::from(c == a), y + usize::from(c == b))
        })
    }
}

/// How many leading bytes `a` and `b` share.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let diff = word_at(a, i) ^ word_at(b, i);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many trailing bytes `a` and `b` share.
pub(crate) fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (ea, eb) = (a.len(), b.len());
    let mut i = 0;
    while i + 8 <= n {
        // Little-endian: the last byte of each window is the most significant.
        let diff = word_at(a, ea - i - 8) ^ word_at(b, eb - i - 8);
        if diff != 0 {
            return i + (diff.leading_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[ea - i - 1] == b[eb - i - 1] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn mask_marks_exactly_the_equal_bytes(chunk in proptest::prelude::any::<[u8; 16]>(), needle in proptest::prelude::any::<u8>()) {
            let want = (0..16).filter(|&i| chunk[i] == needle).fold(0u32, |m, i| m | 1 << i);
            proptest::prop_assert_eq!(eq_mask16(&chunk, needle), want);
        }

        #[test]
        fn wide_mask_marks_exactly_the_equal_bytes(chunk in proptest::prelude::any::<[u8; 32]>(), needle in proptest::prelude::any::<u8>()) {
            let want = (0..32).filter(|&i| chunk[i] == needle).fold(0u32, |m, i| m | 1 << i);
            proptest::prop_assert_eq!(eq_mask32(&chunk, needle), want);
        }

        #[test]
        fn pairs_are_counted_like_a_byte_loop(
            hay in proptest::collection::vec(proptest::sample::select(b".:/\0\x01\x02".to_vec()), 0..200),
            a in 0u8..3,
            b in 0u8..3,
        ) {
            let count = |n: u8| hay.iter().filter(|&&c| c == n).count();
            proptest::prop_assert_eq!(count_eq2(&hay, b'.', b':'), (count(b'.'), count(b':')));
            proptest::prop_assert_eq!(count_eq2(&hay, a, b), (count(a), count(b)));
        }
    }

    #[test]
    fn pairs_are_counted_past_the_byte_counters_limit() {
        // 255 chunks fill a byte counter; lengths around whole batches and chunks.
        for len in [4079, 4080, 4081, 4095, 4096, 4097, 8160, 8161, 10_000] {
            let hay: Vec<u8> = (0..len)
                .map(|i| if i % 3 == 0 { b'.' } else { b':' })
                .collect();
            let dots = hay.iter().filter(|&&c| c == b'.').count();
            assert_eq!(count_eq2(&hay, b'.', b':'), (dots, len - dots), "len {len}");
            let all = vec![b'.'; len];
            assert_eq!(count_eq2(&all, b'.', b':'), (len, 0), "len {len}");
        }
    }
}
