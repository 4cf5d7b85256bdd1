//! The allowlist: networks whose sources are never flagged. A short list checked by a linear
//! scan over masked integers, which beats any tree for the handful of entries real
//! configurations have.

use std::net::IpAddr;

use ipnet::IpNet;

/// Networks that [`Allowlist::new`] always adds: loopback, `127.0.0.0/8` and `::1/128`.
/// Local health checks and the server talking to itself must never be blocked.
pub const DEFAULT_ALLOWED: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Allowed networks as integer network and mask pairs, scanned linearly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// (network, mask) as integers.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Allowlist {
    /// The given networks plus the loopback defaults ([`DEFAULT_ALLOWED`]).
    pub fn new(nets: Vec<IpNet>) -> Allowlist {
        let mut all: Vec<IpNet> = DEFAULT_ALLOWED
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        all.extend(nets);
        Allowlist::exact(all)
    }

    /// Exactly the given networks, without the loopback defaults.
    pub fn exact(nets: Vec<IpNet>) -> Allowlist {
        let mut list = Allowlist::default();
        for net in nets {
            match net {
                IpNet::V4(n) => list
                    .v4
                    .push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => list
                    .v6
                    .push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        list
    }

    /// Whether `addr` is inside an allowed network; an IPv4-mapped address is looked up as
    /// IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }

    /// Whether `net` contains or is inside an allowed network. A grouped source (an IPv6
    /// /64) that holds an allowed address is kept out of the results: exporting it to a
    /// firewall would block the allowed host too.
    pub fn overlaps(&self, net: IpNet) -> bool {
        match net {
            IpNet::V4(n) => {
                let (a, m) = (u32::from(n.network()), u32::from(n.netmask()));
                self.v4.iter().any(|&(net, mask)| {
                    let common = mask & m;
                    a & common == net & common
                })
            }
            IpNet::V6(n) => {
                let (a, m) = (u128::from(n.network()), u128::from(n.netmask()));
                self.v6.iter().any(|&(net, mask)| {
                    let common = mask & m;
                    a & common == net & common
                })
            }
        }
    }

    /// Networks in the list, the loopback defaults included when [`Allowlist::new`] made
    /// it.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the list holds no network.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    #[test]
    fn loopback_by_default() {
        let list = Allowlist::new(vec![]);
        assert!(list.contains(ip("127.0.0.1")));
        assert!(list.contains(ip("127.255.3.4")));
        assert!(list.contains(ip("::1")));
        assert!(list.contains(ip("::ffff:127.0.0.1")));
        assert!(!list.contains(ip("128.0.0.1")));
        assert!(!list.contains(ip("::2")));
        assert!(!Allowlist::exact(vec![]).contains(ip("127.0.0.1")));
    }

    #[test]
    fn prefix_edges() {
        let list = Allowlist::exact(vec![net("192.0.2.0/24"), net("2001:db8::/48")]);
        assert!(list.contains(ip("192.0.2.0")));
        assert!(list.contains(ip("192.0.2.255")));
        assert!(!list.contains(ip("192.0.3.0")));
        assert!(!list.contains(ip("192.0.1.255")));
        assert!(list.contains(ip("2001:db8:0:ffff::1")));
        assert!(!list.contains(ip("2001:db8:1::1")));
    }

    #[test]
    fn overlap_both_ways() {
        let list = Allowlist::exact(vec![net("2001:db8::5/128"), net("10.0.0.0/8")]);
        assert!(list.overlaps(net("2001:db8::/64")));
        assert!(!list.overlaps(net("2001:db8:0:1::/64")));
        assert!(list.overlaps(net("10.1.2.3/32")));
        assert!(!list.overlaps(net("11.1.2.3/32")));
    }
}
