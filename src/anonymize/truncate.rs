//! Address truncation: keep a prefix of the address bits and zero the rest. Owns only the
//! bit arithmetic and the prefix lengths; writing text and host names live in `mod.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

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

impl Prefixes {
    /// The prefixes for an erasure request over `sources`. Truncating the members of a
    /// range to the usual prefix would keep the range itself whenever the range is at
    /// least that wide (a `/24` source truncated to `/24`), so every line would still say
    /// it came from there. Instead a range is hidden as well as truncation hides one
    /// address: its members lose as many bits above the range's own prefix as an address
    /// loses, so a source of prefix length `p` keeps at most `p - (L - kept)` bits (`L` is
    /// 32 or 128), never below zero. A single address keeps the usual prefix. With several
    /// sources, each family takes the shortest result. An IPv4-mapped network counts as
    /// the IPv4 network it maps, since mapped addresses are truncated as IPv4.
    pub fn for_erasure(self, sources: &[IpNet]) -> Prefixes {
        let hide = |prefix: u8, len: u8, kept: u8| prefix.saturating_sub(len - kept);
        let mapped = Ipv6Net::new(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(), 96)
            .expect("96 is a valid IPv6 prefix length");
        let mut out = self;
        for net in sources {
            match net {
                IpNet::V4(n) => out.ipv4 = out.ipv4.min(hide(n.prefix_len(), 32, self.ipv4)),
                IpNet::V6(n) if mapped.contains(n) => {
                    let p = n.prefix_len() - 96;
                    out.ipv4 = out.ipv4.min(hide(p, 32, self.ipv4));
                }
                IpNet::V6(n) => {
                    out.ipv6 = out.ipv6.min(hide(n.prefix_len(), 128, self.ipv6));
                    // A range wide enough to hold the mapped block covers every IPv4
                    // address written in mapped form.
                    if n.contains(&mapped) {
                        out.ipv4 = 0;
                    }
                }
            }
        }
        out
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

    fn erasing(v4: u8, v6: u8, sources: &[&str]) -> (u8, u8) {
        let nets: Vec<IpNet> = sources.iter().map(|s| s.parse().unwrap()).collect();
        let p = Prefixes::new(v4, v6).unwrap().for_erasure(&nets);
        (p.ipv4, p.ipv6)
    }

    #[test]
    fn erasure_hides_a_range_as_truncation_hides_an_address() {
        // One address keeps the usual prefix.
        assert_eq!(erasing(24, 48, &["203.0.113.7/32"]), (24, 48));
        assert_eq!(erasing(24, 48, &["2001:db8::1/128"]), (24, 48));
        // A /24 loses eight bits above itself, as one address loses eight.
        assert_eq!(erasing(24, 48, &["203.0.113.0/24"]), (16, 48));
        assert_eq!(erasing(24, 48, &["10.0.0.0/8"]), (0, 48));
        assert_eq!(erasing(16, 48, &["203.0.113.0/24"]), (8, 48));
        // Narrower than the kept prefix: still hidden by the same margin.
        assert_eq!(erasing(24, 48, &["203.0.113.0/28"]), (20, 48));
        assert_eq!(erasing(24, 48, &["2001:db8:7::/48"]), (24, 0));
        assert_eq!(erasing(24, 48, &["2001:db8:7::/112"]), (24, 32));
        // Several sources: the shortest per family.
        assert_eq!(
            erasing(
                24,
                48,
                &["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/120"]
            ),
            (16, 40)
        );
        // Mapped networks count as IPv4; a range over the mapped block covers all IPv4.
        assert_eq!(erasing(24, 48, &["::ffff:203.0.113.0/120"]), (16, 48));
        assert_eq!(erasing(24, 48, &["::/0"]), (0, 0));
        assert_eq!(erasing(24, 48, &[]), (24, 48));
    }

    #[test]
    fn erased_range_members_no_longer_show_the_range() {
        let nets = ["203.0.113.0/24".parse().unwrap()];
        let p = Prefixes::DEFAULT.for_erasure(&nets);
        let out = truncate(ip("203.0.113.77"), p);
        assert_eq!(out, ip("203.0.0.0"));
        assert!(!nets[0].contains(&out));
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
