//! Knowing a file again by its first bytes: the FNV-1a 64 hash of a head, which the scan
//! ledger (`store::ledger`), the anonymize ledger (`anonymize::ledger`) and the follower
//! (`follow`) keep to tell a file they saw before from another.
//!
//! Each covers its own number of bytes and stores hashes made with it. The scan ledger
//! hashes 4 KiB of the file as stored and does not store the length: a hash over other
//! bytes makes a file already scanned look new, and it is counted twice. The anonymize
//! ledger hashes 64 KiB of the decompressed lines and each entry records its length, but a
//! head read shorter than an entry's never matches it, and its lines would be
//! pseudonymized twice. The follower hashes 1 KiB of a live file, and each saved position
//! records its length. So the two ledgers' lengths cannot change, nor become one, without
//! migrating what is stored.

/// 64-bit FNV-1a (<http://www.isthe.com/chongo/tech/comp/fnv/>): not cryptographic, only a
/// cheap way to tell two file heads apart.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        // Test vectors from the FNV reference page.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
