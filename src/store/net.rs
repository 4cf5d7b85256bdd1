//! The address arithmetic behind the store's containment queries: canonical network form
//! and the 16-byte big-endian `net_lo`/`net_hi` bounds kept in SQL.
//!
//! IPv4 is mapped into `::ffff:0:0/96` (RFC 4291 section 2.5.5.2) so both families share one
//! ordering; the `family` column keeps an IPv4 `/0` from matching IPv6 rows and back.

use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;

/// The network in the form the store keys on: host bits cleared, and an IPv4-mapped IPv6
/// prefix of length 96 or more turned into the IPv4 network it stands for.
pub fn canonical(net: IpNet) -> IpNet {
    // Written without let-chains to keep the crate's rust-version (1.85).
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.addr().to_ipv4_mapped() {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n.trunc());
                }
            }
        }
    }
    net.trunc()
}

/// The single-address network of `addr` (`/32` or `/128`), canonical.
pub fn host(addr: IpAddr) -> IpNet {
    canonical(IpNet::from(addr.to_canonical()))
}

/// `4` or `6`: the `family` column.
pub fn family(net: IpNet) -> i64 {
    match net {
        IpNet::V4(_) => 4,
        IpNet::V6(_) => 6,
    }
}

/// The 16-byte big-endian form of an address, IPv4 mapped into `::ffff:0:0/96`.
pub fn key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The first and last address of `net` as 16-byte keys.
pub fn bounds(net: IpNet) -> ([u8; 16], [u8; 16]) {
    (key(net.network()), key(net.broadcast()))
}

/// `1.2.3.4` for a single address, `10.0.0.0/24` for a wider network: the form people
/// and most tools expect.
pub fn display(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical(n("10.1.2.3/24")), n("10.1.2.0/24"));
        assert_eq!(canonical(n("::ffff:1.2.3.4/128")), n("1.2.3.4/32"));
        assert_eq!(canonical(n("::ffff:1.2.3.4/120")), n("1.2.3.0/24"));
        assert_eq!(canonical(n("2001:db8::1/64")), n("2001:db8::/64"));
        // A mapped prefix shorter than /96 spans non-mapped space: it stays IPv6.
        assert_eq!(canonical(n("::ffff:0:0/80")), n("::/80"));
        assert_eq!(host("::ffff:9.9.9.9".parse().unwrap()), n("9.9.9.9/32"));
    }

    #[test]
    fn bounds_order_and_mapping() {
        let (lo, hi) = bounds(n("10.0.0.0/8"));
        assert_eq!(&lo[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&lo[12..], &[10, 0, 0, 0]);
        assert_eq!(&hi[12..], &[10, 255, 255, 255]);
        let (lo, hi) = bounds(n("2001:db8::/32"));
        assert!(lo < hi);
        assert_eq!(hi[4..], [0xff; 12]);
        assert_eq!(display(n("1.2.3.4/32")), "1.2.3.4");
        assert_eq!(display(n("2001:db8::/64")), "2001:db8::/64");
    }
}
