//! Crypto-PAn prefix-preserving pseudonymization (Xu, Fan, Ammar, Moon, "Prefix-Preserving
//! IP Address Anonymization", ICNP 2002), and the keyed hash used for host names. Owns the
//! cipher state built from a [`Key`]; loading keys is `key.rs`, caching is the `Masker`.
//!
//! Two addresses sharing exactly their first k bits map to two addresses sharing exactly
//! their first k bits, so network structure survives while the addresses themselves do not.
//! Output bit i is input bit i XOR the top bit of AES(first i input bits followed by the
//! remaining bits of the pad), with the address in the top bits of the 128-bit block; this
//! matches the reference implementation and its IPv6 extension, so pseudonyms agree with
//! other Crypto-PAn tools given the same key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};

use super::key::Key;

/// The Crypto-PAn cipher for one key.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    /// AES of the key's last 16 bytes, as a big-endian 128-bit number.
    pad: u128,
    /// A second cipher, derived from the key, for host-name hashes, so that a host-name hash
    /// can never be confused with an address round.
    host_cipher: Aes128,
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoPan { .. }")
    }
}

/// Domain separation for the host-name key: AES(key, this block) is the host-name AES key.
const HOST_KEY_LABEL: [u8; 16] = *b"logward-host-v1\0";

impl CryptoPan {
    /// The ciphers and pad derived from `key`.
    pub fn new(key: &Key) -> CryptoPan {
        let bytes = key.bytes();
        let mut aes_key = [0u8; 16];
        aes_key.copy_from_slice(&bytes[..16]);
        let cipher = Aes128::new(&Array::from(aes_key));
        let mut pad = [0u8; 16];
        pad.copy_from_slice(&bytes[16..]);
        let pad = encrypt(&cipher, pad);
        let host_key = encrypt(&cipher, HOST_KEY_LABEL);
        let host_cipher = Aes128::new(&Array::from(host_key));
        CryptoPan {
            cipher,
            pad: u128::from_be_bytes(pad),
            host_cipher,
        }
    }

    /// Pseudonymizes the top `bits` bits of `value` (the address sits in the top bits).
    fn rounds(&self, value: u128, bits: u32) -> u128 {
        let mut flips: u128 = 0;
        for i in 0..bits {
            // The first i bits of the input followed by the pad's bits from i on.
            let keep = if i == 0 { 0 } else { u128::MAX << (128 - i) };
            let block = (value & keep) | (self.pad & !keep);
            let out = encrypt(&self.cipher, block.to_be_bytes());
            flips |= u128::from(out[0] >> 7) << (127 - i);
        }
        value ^ flips
    }

    /// The pseudonym of an IPv4 address (32 AES rounds).
    pub(crate) fn v4(&self, addr: Ipv4Addr) -> Ipv4Addr {
        let value = u128::from(addr.to_bits()) << 96;
        Ipv4Addr::from((self.rounds(value, 32) >> 96) as u32)
    }

    /// The pseudonym of an IPv6 address (128 AES rounds). A mapped IPv4 address is taken
    /// as any IPv6 one here; [`CryptoPan::anonymize`] keeps it IPv4.
    pub(crate) fn v6(&self, addr: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.rounds(addr.to_bits(), 128))
    }

    /// Either family; an IPv4-mapped IPv6 address is pseudonymized as IPv4 and stays mapped,
    /// so the same client gets the same pseudonym whether it was logged mapped or not.
    pub fn anonymize(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => IpAddr::V4(self.v4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V6(self.v4(v4).to_ipv6_mapped()),
                None => IpAddr::V6(self.v6(v6)),
            },
        }
    }

    /// A keyed 64-bit hash of `bytes`, ASCII case folded (host names are case-insensitive).
    /// CBC-MAC under the derived host key with the length in the first block, which makes
    /// it a pseudorandom function on inputs of any length.
    pub fn host_hash(&self, bytes: &[u8]) -> u64 {
        let mut state = [0u8; 16];
        state[..8].copy_from_slice(&(bytes.len() as u64).to_be_bytes());
        state = encrypt(&self.host_cipher, state);
        for chunk in bytes.chunks(16) {
            for (s, b) in state.iter_mut().zip(chunk) {
                *s ^= b.to_ascii_lowercase();
            }
            state = encrypt(&self.host_cipher, state);
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&state[..8]);
        u64::from_be_bytes(first)
    }
}

fn encrypt(cipher: &Aes128, block: [u8; 16]) -> [u8; 16] {
    let mut block = Array::from(block);
    cipher.encrypt_block(&mut block);
    block.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTOR_KEY: &[u8] = b"1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

    fn pan() -> CryptoPan {
        CryptoPan::new(&Key::from_hex(VECTOR_KEY).unwrap())
    }

    fn anon(s: &str) -> String {
        pan().anonymize(s.parse().unwrap()).to_string()
    }

    #[test]
    fn reference_vectors() {
        // From the Crypto-PAn reference distribution (sample_trace_raw / sanitized).
        assert_eq!(anon("128.11.68.132"), "135.242.180.132");
        assert_eq!(anon("129.118.74.4"), "134.136.186.123");
        assert_eq!(anon("::1"), "78ff:f001:9fc0:20df:8380:b1f1:704:ed");
    }

    /// Crypto-PAn has fixed points: an address whose every flip bit is zero keeps its
    /// value. Round i encrypts the same block as round i - 1 wherever the address bit
    /// equals the pad bit, so the flips along one address are far from independent, and
    /// about one address in several thousand maps to itself (documented in
    /// docs/anonymization.md, "Modes").
    #[test]
    fn some_addresses_are_their_own_pseudonym() {
        let key = b"0b1e0e00d5a833f6df5b9c15aab9c9ab619a1d87bd295f3dbbeb059d32d3839c";
        let pan = CryptoPan::new(&Key::from_hex(key).unwrap());
        let fixed: IpAddr = "212.241.43.220".parse().unwrap();
        assert_eq!(pan.anonymize(fixed), fixed);
        let other: IpAddr = "212.241.43.222".parse().unwrap();
        assert_ne!(pan.anonymize(other), other);
    }

    #[test]
    fn mapped_is_pseudonymized_as_ipv4() {
        assert_eq!(anon("::ffff:128.11.68.132"), "::ffff:135.242.180.132");
    }

    #[test]
    fn another_key_gives_other_pseudonyms() {
        let other = CryptoPan::new(&Key::from_bytes([7u8; 32]));
        let a: IpAddr = "128.11.68.132".parse().unwrap();
        assert_ne!(other.anonymize(a), pan().anonymize(a));
    }

    #[test]
    fn host_hash_is_keyed_case_folded_and_length_aware() {
        let p = pan();
        assert_eq!(
            p.host_hash(b"DSL-1.Example.NET"),
            p.host_hash(b"dsl-1.example.net")
        );
        assert_ne!(
            p.host_hash(b"dsl-1.example.net"),
            p.host_hash(b"dsl-2.example.net")
        );
        assert_ne!(p.host_hash(b"a"), p.host_hash(b"a\0"));
        let other = CryptoPan::new(&Key::from_bytes([7u8; 32]));
        assert_ne!(p.host_hash(b"a"), other.host_hash(b"a"));
    }

    fn common_prefix(a: u128, b: u128) -> u32 {
        (a ^ b).leading_zeros()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prefix_preserving_v4(a in any::<u32>(), b in any::<u32>()) {
            let p = pan();
            let (x, y) = (p.v4(Ipv4Addr::from(a)).to_bits(), p.v4(Ipv4Addr::from(b)).to_bits());
            prop_assert_eq!((x ^ y).leading_zeros(), (a ^ b).leading_zeros());
            prop_assert_eq!(p.v4(Ipv4Addr::from(a)).to_bits(), x);
        }

        #[test]
        fn prefix_preserving_v6(a in any::<u128>(), k in 0u32..128, flip_tail in any::<u128>()) {
            // b shares exactly k bits with a: same first k bits, bit k flipped, tail random.
            let bit = 1u128 << (127 - k);
            let tail = if k == 127 { 0 } else { flip_tail & (bit - 1) };
            let b = ((a & !(bit | bit.wrapping_sub(1))) | (!a & bit)) | tail;
            prop_assert_eq!(common_prefix(a, b), k);
            let p = pan();
            let x = p.anonymize(IpAddr::V6(Ipv6Addr::from(a)));
            let y = p.anonymize(IpAddr::V6(Ipv6Addr::from(b)));
            prop_assert!(x.is_ipv6() && y.is_ipv6());
            if let (IpAddr::V6(x), IpAddr::V6(y)) = (x, y) {
                if Ipv6Addr::from(a).to_ipv4_mapped().is_none() && Ipv6Addr::from(b).to_ipv4_mapped().is_none() {
                    prop_assert_eq!(common_prefix(x.to_bits(), y.to_bits()), k);
                }
            }
            prop_assert_eq!(p.anonymize(IpAddr::V6(Ipv6Addr::from(a))), x);
        }
    }
}
