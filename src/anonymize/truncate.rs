//! Address truncation: keep a prefix of the address bits and zero the rest. Owns only the
//! bit arithmetic and the prefix lengths; writing text and host names live in `mod.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How many leading bits truncation keeps for each family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefixes {
    /// Bits kept of an IPv4 address (0..=32). IPv4-mapped IPv6 addresses use this too.
    pub ipv4: u8,
    /// Bits kept of an IPv6 address (0..=128).
    pub ipv6: u8,
}

impl Prefixes {
    /// `/24` and `/48`: the usual retention-policy choice (one site / one subscriber prefix).
    pub const DEFAULT: Prefixes = Prefixes { ipv4: 24, ipv6: 48 };
    /// `/16` and `/32`, for stricter policies.
    pub const STRICT: Prefixes = Prefixes { ipv4: 16, ipv6: 32 };

    /// Checked constructor: `None` when a prefix is longer than the address.
    pub fn new(ipv4: u8, ipv6: u8) -> Option<Prefixes> {
        (ipv4 <= 32 && ipv6 <= 128).then_some(Prefixes { ipv4, ipv6 })
    }
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes::DEFAULT
    }
}

/// Keeps the first `bits` bits of `addr` (values above 32 keep everything).
pub fn truncate_v4(addr: Ipv4Addr, bits: u8) -> Ipv4Addr {
    let mask = match bits {
        0 => 0,
        b if b >= 32 => u32::MAX,
        b => u32::MAX << (32 - b),
    };
    Ipv4Addr::from(addr.to_bits() & mask)
}

/// Keeps the first `bits` bits of `addr` (values above 128 keep everything).
pub fn truncate_v6(addr: Ipv6Addr, bits: u8) -> Ipv6Addr {
    let mask = match bits {
        0 => 0,
        b if b >= 128 => u128::MAX,
        b => u128::MAX << (128 - b),
    };
    Ipv6Addr::from(addr.to_bits() & mask)
}

/// Truncates either family. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is truncated as
/// IPv4 with the IPv4 prefix and stays mapped, so `::ffff:1.2.3.4` becomes `::ffff:1.2.3.0`
/// rather than losing its whole IPv4 part to a `/48`.
pub fn truncate(addr: IpAddr, prefixes: Prefixes) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(truncate_v4(v4, prefixes.ipv4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(truncate_v4(v4, prefixes.ipv4).to_ipv6_mapped()),
            None => IpAddr::V6(truncate_v6(v6, prefixes.ipv6)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn t(addr: &str, v4: u8, v6: u8) -> String {
        truncate(ip(addr), Prefixes::new(v4, v6).unwrap()).to_string()
    }

    #[test]
    fn ipv4_prefix_edges() {
        assert_eq!(t("203.0.113.195", 0, 48), "0.0.0.0");
        assert_eq!(t("203.0.113.195", 8, 48), "203.0.0.0");
        assert_eq!(t("203.0.113.195", 24, 48), "203.0.113.0");
        assert_eq!(t("203.0.113.195", 32, 48), "203.0.113.195");
        // A prefix that is not a multiple of eight cuts inside an octet.
        assert_eq!(t("203.0.113.195", 25, 48), "203.0.113.128");
        assert_eq!(t("255.255.255.255", 1, 48), "128.0.0.0");
    }

    #[test]
    fn ipv6_prefix_edges() {
        let a = "2001:db8:85a3:1234:5678:8a2e:370:7334";
        assert_eq!(t(a, 24, 0), "::");
        assert_eq!(t(a, 24, 48), "2001:db8:85a3::");
        assert_eq!(t(a, 24, 64), "2001:db8:85a3:1234::");
        assert_eq!(t(a, 24, 128), a);
        assert_eq!(
            t("2001:0db8:85a3::8a2e:0370:7334", 24, 44),
            "2001:db8:85a0::"
        );
    }

    #[test]
    fn mapped_addresses_are_truncated_as_ipv4_and_stay_mapped() {
        assert_eq!(t("::ffff:203.0.113.195", 24, 48), "::ffff:203.0.113.0");
        assert_eq!(t("::ffff:203.0.113.195", 16, 0), "::ffff:203.0.0.0");
        assert_eq!(t("::ffff:203.0.113.195", 0, 128), "::ffff:0.0.0.0");
    }

    #[test]
    fn named_prefixes() {
        assert_eq!(Prefixes::default(), Prefixes::new(24, 48).unwrap());
        assert_eq!(Prefixes::STRICT, Prefixes::new(16, 32).unwrap());
        assert_eq!(Prefixes::new(33, 48), None);
        assert_eq!(Prefixes::new(24, 129), None);
    }

    proptest! {
        #[test]
        fn keeps_family_prefix_and_is_idempotent(bits in any::<u128>(), v4 in 0u8..=32, v6 in 0u8..=128, is_v4 in any::<bool>()) {
            let p = Prefixes::new(v4, v6).unwrap();
            let addr = if is_v4 { IpAddr::V4(Ipv4Addr::from(bits as u32)) } else { IpAddr::V6(Ipv6Addr::from(bits)) };
            let out = truncate(addr, p);
            prop_assert_eq!(out.is_ipv4(), addr.is_ipv4());
            prop_assert_eq!(truncate(out, p), out);
            let net = match addr {
                IpAddr::V4(_) => ipnet::IpNet::new(addr, v4).unwrap(),
                IpAddr::V6(_) => ipnet::IpNet::new(addr, v6).unwrap(),
            };
            prop_assert!(net.contains(&out));
            prop_assert_eq!(net.network(), out);
        }
    }
}
