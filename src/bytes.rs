//! Byte comparisons sixteen at a time, shared by the parser's field search and the
//! masker's URL prefilter: the one place that uses SIMD instructions.

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

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn mask_marks_exactly_the_equal_bytes(chunk in proptest::prelude::any::<[u8; 16]>(), needle in proptest::prelude::any::<u8>()) {
            let want = (0..16).filter(|&i| chunk[i] == needle).fold(0u32, |m, i| m | 1 << i);
            proptest::prop_assert_eq!(eq_mask16(&chunk, needle), want);
        }
    }
}
