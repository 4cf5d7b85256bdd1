//! Parsing addresses out of the bytes of one field: bare IPv4 and IPv6, `[v6]:port`,
//! `v4:port`, and comma-separated lists (`X-Forwarded-For`). Finding addresses in free text
//! is not here (see [`super::tokens`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::record::Span;

/// Parses a whole field as one address, with no surrounding text. IPv4 takes a fast path
/// (dotted quad, no leading `+`, each part at most three digits and at most 255).
pub fn parse_ip(bytes: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(bytes) {
        return Some(IpAddr::V4(v4));
    }
    parse_ipv6(bytes).map(IpAddr::V6)
}

/// A dotted-quad IPv4 address, exactly: four parts of one to three digits (leading zeros
/// allowed), each at most 255. Read part by part rather than byte by byte through one
/// state machine: this runs for the client of nearly every line.
pub fn parse_ipv4(bytes: &[u8]) -> Option<Ipv4Addr> {
    if bytes.len() < 7 || bytes.len() > 15 {
        return None;
    }
    let digit = |b: u8| b.wrapping_sub(b'0');
    let mut octets = [0u8; 4];
    let mut rest = bytes;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            rest = rest.strip_prefix(b".")?;
        }
        let (value, len) = match *rest {
            [a, b, c, ..] if digit(a) < 10 && digit(b) < 10 && digit(c) < 10 => (
                u32::from(digit(a)) * 100 + u32::from(digit(b)) * 10 + u32::from(digit(c)),
                3,
            ),
            [a, b, ..] if digit(a) < 10 && digit(b) < 10 => {
                (u32::from(digit(a)) * 10 + u32::from(digit(b)), 2)
            }
            [a, ..] if digit(a) < 10 => (u32::from(digit(a)), 1),
            _ => return None,
        };
        if value > 255 {
            return None;
        }
        *octet = value as u8;
        rest = &rest[len..];
    }
    rest.is_empty().then(|| Ipv4Addr::from(octets))
}

/// An IPv6 address in any RFC 4291 text form, including an embedded IPv4 tail.
pub fn parse_ipv6(bytes: &[u8]) -> Option<Ipv6Addr> {
    // The longest form is 45 bytes (full groups with an IPv4 tail).
    if bytes.len() < 2 || bytes.len() > 45 || !bytes.contains(&b':') {
        return None;
    }
    // No check of the bytes first: `parse_v6` reads only hex digits, `:` and `.`, and
    // fails unless it read every byte.
    eight_groups(bytes).or_else(|| parse_v6(bytes))
}

/// An IPv6 address written as eight groups of one to four hex digits, as servers log most
/// clients (`2001:db8:85a3:0:0:8a2e:370:7334`), read in one pass. `None` for any other text,
/// which may still be an address in another form ([`parse_v6`] reads them all).
#[inline]
fn eight_groups(text: &[u8]) -> Option<Ipv6Addr> {
    let hex = |at: usize| text.get(at).and_then(|b| hex_value(*b)).map(u16::from);
    let mut groups = [0u16; 8];
    let mut at = 0;
    for (i, group) in groups.iter_mut().enumerate() {
        if i > 0 {
            if text.get(at) != Some(&b':') {
                return None;
            }
            at += 1;
        }
        let mut value = hex(at)?;
        at += 1;
        for _ in 0..3 {
            let Some(d) = hex(at) else { break };
            value = value << 4 | d;
            at += 1;
        }
        *group = value;
    }
    (at == text.len()).then(|| Ipv6Addr::from(groups))
}

/// [`parse_ipv6`] through the standard parser: the reference the hand parser is tested
/// against.
#[cfg(test)]
pub(crate) fn parse_ipv6_std(bytes: &[u8]) -> Option<Ipv6Addr> {
    if bytes.len() < 2 || bytes.len() > 45 || !bytes.contains(&b':') {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if let Ok(v6) = text.parse() {
        return Some(v6);
    }
    // An IPv4 tail is read like a bare IPv4 address, so `::ffff:010.1.2.3` parses when
    // `010.1.2.3` does (the standard parser refuses leading zeros there).
    let colon = text.rfind(':')?;
    let tail = parse_ipv4(&bytes[colon + 1..])?;
    format!("{}{tail}", &text[..=colon]).parse().ok()
}

/// Parses an IPv6 address (RFC 4291 text forms, an IPv4 tail in the last two groups with
/// leading zeros allowed, `::` at most once) straight from the bytes: no UTF-8 check and no
/// generic parser. Tested against the standard parser (`parse_ipv6_std`).
pub(crate) fn parse_v6(text: &[u8]) -> Option<Ipv6Addr> {
    let mut p = V6Parser { text, pos: 0 };
    let mut head = [0u16; 8];
    let (head_len, head_v4) = p.groups(&mut head);
    if head_len == 8 {
        return p.done().then(|| Ipv6Addr::from(head));
    }
    if head_v4 || !p.eat(b':') || !p.eat(b':') {
        return None;
    }
    let mut tail = [0u16; 7];
    let limit = 7 - head_len;
    let (tail_len, _) = p.groups(&mut tail[..limit]);
    head[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    p.done().then(|| Ipv6Addr::from(head))
}

struct V6Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl V6Parser<'_> {
    fn done(&self) -> bool {
        self.pos == self.text.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.text.get(self.pos) == Some(&b);
        self.pos += usize::from(hit);
        hit
    }

    /// Up to `out.len()` groups separated by `:` (none before the first); where two groups
    /// remain, a group followed by `.` is read again as an IPv4 tail, which ends the run.
    /// Returns the groups read and whether an IPv4 tail ended them. On a failed group the
    /// position stays before it.
    fn groups(&mut self, out: &mut [u16]) -> (usize, bool) {
        let limit = out.len();
        for i in 0..limit {
            let at = self.pos;
            if i > 0 && !self.eat(b':') {
                self.pos = at;
                return (i, false);
            }
            let group_start = self.pos;
            let Some(group) = self.hex4() else {
                self.pos = at;
                return (i, false);
            };
            // A dotted quad starts with one to three digits and a dot, which hex4 reads as a
            // group ending before the dot: only then can an IPv4 tail be here.
            if i + 1 < limit && self.text.get(self.pos) == Some(&b'.') {
                let after = self.pos;
                self.pos = group_start;
                if let Some(v4) = self.v4() {
                    out[i] = u16::from_be_bytes([v4[0], v4[1]]);
                    out[i + 1] = u16::from_be_bytes([v4[2], v4[3]]);
                    return (i + 2, true);
                }
                self.pos = after;
            }
            out[i] = group;
        }
        (limit, false)
    }

    /// One to four hex digits (a fifth digit fails the group).
    fn hex4(&mut self) -> Option<u16> {
        let mut value = 0u16;
        let mut n = 0;
        while let Some(d) = self.text.get(self.pos).and_then(|b| hex_value(*b)) {
            if n == 4 {
                return None;
            }
            value = value << 4 | u16::from(d);
            n += 1;
            self.pos += 1;
        }
        (n > 0).then_some(value)
    }

    /// A dotted quad as a bare IPv4 address is read: parts of one to three digits, at most
    /// 255, leading zeros allowed (the standard parser refuses them in an IPv6 tail, which
    /// made `1::033.1.2.3` split into two tokens).
    fn v4(&mut self) -> Option<[u8; 4]> {
        let mut octets = [0u8; 4];
        for (k, octet) in octets.iter_mut().enumerate() {
            if k > 0 && !self.eat(b'.') {
                return None;
            }
            let digits = self.pos;
            let mut value = 0u32;
            while let Some(d) = self.text.get(self.pos).filter(|b| b.is_ascii_digit()) {
                if self.pos - digits == 3 {
                    return None;
                }
                value = value * 10 + u32::from(d - b'0');
                self.pos += 1;
            }
            let len = self.pos - digits;
            if len == 0 || value > 255 {
                return None;
            }
            *octet = value as u8;
        }
        Some(octets)
    }
}

/// The value of one hex digit, either case: one load from a table, as every digit of an
/// IPv6 client goes through here.
#[inline(always)]
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    /// The value of each byte as a hex digit, `NOT_HEX` for the others.
    const NOT_HEX: u8 = 0xff;
    static HEX: [u8; 256] = {
        let mut t = [NOT_HEX; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let v = HEX[usize::from(b)];
    (v != NOT_HEX).then_some(v)
}

/// Parses a client field that may carry brackets and a port: `1.2.3.4`, `1.2.3.4:5678`,
/// `::1`, `[::1]`, `[2001:db8::1]:443`. Returns the address and the span of its text inside
/// `field`, so a replacement keeps the brackets and the port.
pub fn parse_host(field: &[u8]) -> Option<(IpAddr, Span)> {
    if let Some(ip) = parse_ip(field) {
        return Some((ip, Span::new(0, field.len())));
    }
    if field.first() == Some(&b'[') {
        let close = memchr::memchr(b']', field)?;
        let rest = &field[close + 1..];
        if !rest.is_empty() && !is_port_suffix(rest) {
            return None;
        }
        let v6 = parse_ipv6(&field[1..close])?;
        return Some((IpAddr::V6(v6), Span::new(1, close)));
    }
    // `v4:port`; a bare IPv6 address was handled by parse_ip above.
    let colon = memchr::memrchr(b':', field)?;
    if is_port_suffix(&field[colon..]) {
        let v4 = parse_ipv4(&field[..colon])?;
        return Some((IpAddr::V4(v4), Span::new(0, colon)));
    }
    None
}

/// `:` followed by one to five digits.
fn is_port_suffix(bytes: &[u8]) -> bool {
    bytes.len() >= 2
        && bytes.len() <= 6
        && bytes[0] == b':'
        && bytes[1..].iter().all(u8::is_ascii_digit)
}

/// One element of an address list: its span inside the field and the address it holds,
/// when it holds one (`unknown`, a host name or garbage give `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListElement {
    /// Where the element is in the field.
    pub span: Span,
    /// The address it holds.
    pub addr: Option<IpAddr>,
}

/// Splits a comma- or space-separated list (`X-Forwarded-For: a, b, c`) into its elements.
/// Spans are relative to `field`; the separators and spaces are not part of any element.
pub fn split_list(field: &[u8]) -> impl Iterator<Item = ListElement> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        while pos < field.len() && matches!(field[pos], b',' | b' ' | b'\t') {
            pos += 1;
        }
        if pos >= field.len() {
            return None;
        }
        let start = pos;
        while pos < field.len() && !matches!(field[pos], b',' | b' ' | b'\t') {
            pos += 1;
        }
        let text = &field[start..pos];
        Some(match parse_host(text) {
            Some((addr, inner)) => ListElement {
                span: Span::new(start + inner.start as usize, start + inner.end as usize),
                addr: Some(addr),
            },
            None => ListElement {
                span: Span::new(start, pos),
                addr: None,
            },
        })
    })
}

/// The proxies whose word is trusted about the client (`trusted_proxies`,
/// `--trusted-proxy`), set once at start; none by default.
static TRUSTED_PROXIES: std::sync::OnceLock<Vec<ipnet::IpNet>> = std::sync::OnceLock::new();

/// Sets the trusted proxies for this process (the first call wins; later calls are
/// ignored and return false).
pub fn set_trusted_proxies(nets: Vec<ipnet::IpNet>) -> bool {
    TRUSTED_PROXIES.set(nets).is_ok()
}

/// The trusted proxies in force.
pub fn trusted_proxies() -> &'static [ipnet::IpNet] {
    TRUSTED_PROXIES.get().map_or(&[], Vec::as_slice)
}

fn is_trusted(addr: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    let addr = addr.to_canonical();
    trusted.iter().any(|n| n.contains(&addr))
}

/// The client of a field that holds a list (X-Forwarded-For style, as nginx writes into
/// `$remote_addr` behind some proxies): the rightmost address that is not a trusted proxy,
/// as nginx `real_ip_recursive on` and Apache `mod_remoteip` take it. Each proxy appends
/// the address it saw, so everything to the left of the first untrusted one (from the
/// right) was written by the client and never decides who is flagged. When every address
/// is a trusted proxy, the leftmost.
///
/// Cold: a list in the client field is rare, and keeping it out of line keeps the common
/// single-address path of the parser inlined.
#[cold]
pub fn client_of_list(field: &[u8]) -> Option<IpAddr> {
    client_of_list_with(field, trusted_proxies())
}

/// [`client_of_list`] with the trusted proxies given.
pub fn client_of_list_with(field: &[u8], trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let mut leftmost = None;
    // Walking from the right, the first untrusted address is the rightmost one.
    let mut rightmost_untrusted = None;
    for addr in split_list(field).filter_map(|e| e.addr) {
        leftmost.get_or_insert(addr);
        if !is_trusted(addr, trusted) {
            rightmost_untrusted = Some(addr);
        }
    }
    rightmost_untrusted.or(leftmost)
}

/// The client of a record that logs both the connecting peer and an X-Forwarded-For
/// list: the peer, unless it is a trusted proxy; then the list's client (see
/// [`client_of_list`]). Nothing changes without trusted proxies.
pub fn resolve_forwarded(peer: Option<IpAddr>, forwarded: Option<&[u8]>) -> Option<IpAddr> {
    let trusted = trusted_proxies();
    match (peer, forwarded) {
        (Some(p), Some(list)) if !trusted.is_empty() && is_trusted(p, trusted) => {
            match client_of_list_with(list, trusted) {
                Some(c) if !is_trusted(c, trusted) => Some(c),
                _ => Some(p),
            }
        }
        _ => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Regression: the first public element of a list was taken, and that element is
    /// whatever the client sent: `1.1.1.1, 203.0.113.66` flagged 1.1.1.1.
    #[test]
    fn the_client_of_a_list_is_the_rightmost_untrusted_address() {
        let none: [ipnet::IpNet; 0] = [];
        let lb: [ipnet::IpNet; 2] = [
            "10.0.0.0/8".parse().unwrap(),
            "203.0.113.0/24".parse().unwrap(),
        ];
        let client = |text: &str, trusted: &[ipnet::IpNet]| {
            client_of_list_with(text.as_bytes(), trusted).map(|a| a.to_string())
        };
        assert_eq!(
            client("1.1.1.1, 203.0.113.66", &none).as_deref(),
            Some("203.0.113.66")
        );
        assert_eq!(
            client("1.1.1.1, 8.8.8.8, 203.0.113.66", &none).as_deref(),
            Some("203.0.113.66")
        );
        assert_eq!(
            client("1.1.1.1, 198.51.100.7, 203.0.113.66", &lb).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            client("198.51.100.7, 10.0.0.1", &lb).as_deref(),
            Some("198.51.100.7")
        );
        // Everything trusted: the leftmost.
        assert_eq!(
            client("10.1.1.1, 10.0.0.1", &lb).as_deref(),
            Some("10.1.1.1")
        );
        assert_eq!(
            client("unknown, 2001:db8::1", &none).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(client("unknown", &none), None);
    }

    #[test]
    fn ipv4_tail_with_leading_zeros() {
        assert_eq!(
            parse_ipv6(b"1::033.1.2.3"),
            Some("1::33.1.2.3".parse().unwrap())
        );
        assert_eq!(parse_ip(b"::ffff:010.0.0.1"), Some(ip("::ffff:10.0.0.1")));
        assert_eq!(parse_ipv6(b"1::0333.1.2.3"), None);
        assert_eq!(parse_ipv6(b"1::256.1.2.3"), None);
    }

    #[test]
    fn ipv4_fast_path_accepts_only_dotted_quads() {
        assert_eq!(parse_ip(b"83.149.9.216"), Some(ip("83.149.9.216")));
        assert_eq!(parse_ip(b"0.0.0.0"), Some(ip("0.0.0.0")));
        for bad in [
            &b"256.1.1.1"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"1..2.3",
            b"1.2.3.",
            b"1234.1.1.1",
            b"a.b.c.d",
            b"",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// A dotted quad as the text says: four parts split at `.`, each one to three ASCII
    /// digits and at most 255.
    fn ipv4_by_splitting(bytes: &[u8]) -> Option<Ipv4Addr> {
        let parts: Vec<&[u8]> = bytes.split(|b| *b == b'.').collect();
        if parts.len() != 4 {
            return None;
        }
        let mut octets = [0u8; 4];
        for (octet, part) in octets.iter_mut().zip(parts) {
            if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            *octet = std::str::from_utf8(part)
                .ok()?
                .parse::<u16>()
                .ok()?
                .try_into()
                .ok()?;
        }
        Some(Ipv4Addr::from(octets))
    }

    /// Text near an IPv6 address written in full: seven to nine groups of up to five hex
    /// digits, or a jumble of hex digits, colons and dots.
    fn v6_like_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(proptest::sample::select(b"0f9aA:::.g".to_vec()), 0..42),
            proptest::collection::vec("[0-9a-fA-F]{0,5}", 8).prop_map(|g| g.join(":").into_bytes()),
            proptest::collection::vec("[0-9a-fA-F]{1,4}", 7..10)
                .prop_map(|g| g.join(":").into_bytes()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn ipv4_agrees_with_splitting_the_text(
            text in proptest::collection::vec(
                proptest::sample::select(b"0123456789.....:a/ ".to_vec()),
                0..18,
            ),
            parts in [
                proptest::prop_oneof![0u16..1000, 240u16..270],
                proptest::prop_oneof![0u16..1000, 240u16..270],
                proptest::prop_oneof![0u16..1000, 240u16..270],
                proptest::prop_oneof![0u16..1000, 240u16..270],
            ],
            zeros in 0usize..3,
            odd in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => "[0-9]{1,3}",
                    2 => "[0-9/:]{1,3}",
                    1 => "[0-9]{4}|",
                ],
                4,
            ),
        ) {
            proptest::prop_assert_eq!(parse_ipv4(&text), ipv4_by_splitting(&text));
            let odd = odd.join(".");
            proptest::prop_assert_eq!(parse_ipv4(odd.as_bytes()), ipv4_by_splitting(odd.as_bytes()));
            let quad = format!(
                "{}{}.{}.{}.{}",
                "0".repeat(zeros), parts[0], parts[1], parts[2], parts[3]
            );
            proptest::prop_assert_eq!(parse_ipv4(quad.as_bytes()), ipv4_by_splitting(quad.as_bytes()));
        }

        #[test]
        fn eight_groups_agree_with_the_standard_parser(text in v6_like_text()) {
            if let Some(v6) = eight_groups(&text) {
                proptest::prop_assert_eq!(Some(v6), parse_ipv6_std(&text));
            }
            proptest::prop_assert_eq!(parse_ipv6(&text), parse_ipv6_std(&text));
        }

        #[test]
        fn hex_digits_are_read_as_the_standard_library_reads_them(b in proptest::prelude::any::<u8>()) {
            let want = (b as char).to_digit(16).filter(|_| b.is_ascii()).map(|d| d as u8);
            proptest::prop_assert_eq!(hex_value(b), want);
        }
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(parse_ip(b"::1"), Some(ip("::1")));
        assert_eq!(
            parse_ip(b"2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            Some(ip("2001:db8:85a3::8a2e:370:7334"))
        );
        assert_eq!(parse_ip(b"::ffff:1.2.3.4"), Some(ip("::ffff:1.2.3.4")));
        assert_eq!(parse_ip(b"2001:db8::g"), None);
        assert_eq!(parse_ip(b":"), None);
    }

    #[test]
    fn host_with_brackets_and_ports() {
        assert_eq!(parse_host(b"[::1]:443"), Some((ip("::1"), Span::new(1, 4))));
        assert_eq!(
            parse_host(b"[2001:db8::1]"),
            Some((ip("2001:db8::1"), Span::new(1, 12)))
        );
        assert_eq!(
            parse_host(b"1.2.3.4:5678"),
            Some((ip("1.2.3.4"), Span::new(0, 7)))
        );
        assert_eq!(
            parse_host(b"2001:db8::1"),
            Some((ip("2001:db8::1"), Span::new(0, 11)))
        );
        assert_eq!(parse_host(b"[::1]x"), None);
        assert_eq!(parse_host(b"example.com"), None);
        assert_eq!(parse_host(b"example.com:80"), None);
    }

    #[test]
    fn lists_split_into_elements_with_spans() {
        let field = b"10.0.0.2, unknown, [2001:db8::7]:80,81.2.69.143";
        let elements: Vec<_> = split_list(field).collect();
        assert_eq!(elements.len(), 4);
        assert_eq!(elements[0].span.of(field), b"10.0.0.2");
        assert_eq!(elements[1].addr, None);
        assert_eq!(elements[1].span.of(field), b"unknown");
        assert_eq!(elements[2].span.of(field), b"2001:db8::7");
        assert_eq!(elements[3].addr, Some(ip("81.2.69.143")));
        // No trusted proxy in this process's tests: the rightmost address.
        assert_eq!(client_of_list(field), Some(ip("81.2.69.143")));
        assert_eq!(
            client_of_list(b"10.0.0.2, 10.0.0.1, 127.0.0.1"),
            Some(ip("127.0.0.1"))
        );
    }
}
