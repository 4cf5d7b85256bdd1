//! Masking client addresses and host names in log lines, for retention runs and erasure
//! requests. Owns the masking rules and the [`Masker`]; replacing files on disk is
//! `crate::rewrite`, parsing lines is `crate::format`.
//!
//! Two modes:
//!
//! * **Truncate** keeps the first [`Prefixes::ipv4`] / [`Prefixes::ipv6`] bits (default
//!   `/24` and `/48`, strict `/16` and `/32`) and zeroes the rest. Idempotent: masking a
//!   truncated line again changes nothing.
//! * **Pseudonymize** replaces each address with its Crypto-PAn pseudonym under a secret
//!   [`Key`] (see [`cryptopan`]): prefix-preserving and stable across runs with the same key,
//!   but not idempotent (a pseudonym is itself an address and would be pseudonymized
//!   again), so callers must record which files are already done rather than rely on
//!   re-running being harmless.
//!
//! In both modes an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is masked as IPv4 and
//! written back mapped, and replacements are canonical text (RFC 5952 for IPv6).
//!
//! **Host names.** With Apache `HostnameLookups On` the client field holds a name such as
//! `dsl-81-2-69-142.example.net`, which identifies a subscriber as well as an address does.
//! Such a name keeps only its last two labels (the provider's domain); everything before
//! them becomes `x` when truncating (`x.example.net`), or `h` and 16 hex digits of a keyed
//! hash of the whole name when pseudonymizing (`h0123456789abcdef.example.net`). A
//! two-label name keeps only its last label (`x.net`) and a single label becomes `x` /
//! `h…`, so at least one label is always replaced. A trailing root dot is kept. The truncate
//! form is idempotent (`x.example.net` stays `x.example.net`).

pub mod cryptopan;
pub mod key;
pub mod ledger;
pub mod line;
pub mod retention;
pub mod truncate;
pub mod verify;
pub mod wrapped;

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

pub use cryptopan::CryptoPan;
pub use key::{Key, KeyError, KeyFormat, generate_key_file, load_key_file};
pub use line::{Edit, Edits, LineMasked, Select, mask_fields, mask_line};
use truncate::truncate_v4;
pub use truncate::{Prefixes, truncate};
pub use verify::{LineVerifier, only_addresses_changed};

/// What masking does to an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keep the first bits of each address, as many as the [`Prefixes`] say, and zero the
    /// rest.
    Truncate(Prefixes),
    /// Replace each address with its Crypto-PAn pseudonym under this key.
    Pseudonymize(Key),
}

enum Method {
    Truncate(Prefixes),
    Pseudonymize(Box<CryptoPan>),
}

/// The longest canonical address text: a mapped address, `::ffff:255.255.255.255`, is 22
/// bytes and a full IPv6 address 39; 47 leaves room.
const TEXT_CAP: usize = 47;

/// Replacement text stored inline, so caching an address never allocates on its own.
#[derive(Clone, Copy)]
struct Text {
    len: u8,
    bytes: [u8; TEXT_CAP],
}

impl Text {
    fn of(addr: IpAddr) -> Text {
        let mut bytes = [0u8; TEXT_CAP];
        let mut cursor = &mut bytes[..];
        // Cannot fail: every address's text fits in TEXT_CAP bytes.
        let _ = write!(cursor, "{addr}");
        let len = TEXT_CAP - cursor.len();
        Text {
            len: len as u8,
            bytes,
        }
    }

    /// The dotted-quad text of an IPv4 address, without the formatting machinery: an
    /// address truncated is cheaper to write again than to look up.
    fn of_v4(addr: Ipv4Addr) -> Text {
        let mut bytes = [0u8; TEXT_CAP];
        let mut len = 0;
        for (i, octet) in addr.octets().into_iter().enumerate() {
            if i > 0 {
                bytes[len] = b'.';
                len += 1;
            }
            let (hundreds, tens, ones) = (octet / 100, octet / 10 % 10, octet % 10);
            if hundreds > 0 {
                bytes[len] = b'0' + hundreds;
                len += 1;
            }
            if hundreds > 0 || tens > 0 {
                bytes[len] = b'0' + tens;
                len += 1;
            }
            bytes[len] = b'0' + ones;
            len += 1;
        }
        Text {
            len: len as u8,
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Past this many distinct addresses the cache is emptied and refilled, so a log full of
/// random IPv6 sources costs bounded memory (about 20 MiB) instead of growing without end.
const CACHE_LIMIT: usize = 1 << 18;

/// Masks addresses and host names in one mode, remembering the replacement text of every
/// address seen: logs repeat far fewer addresses than they have lines. The cache's hasher
/// is seeded at random because its keys are chosen by whoever sends requests.
pub struct Masker {
    method: Method,
    /// Keyed by addresses from the log, which a client chooses: foldhash seeds every map
    /// at random, and hashes an address several times faster than the standard hasher.
    cache: HashMap<IpAddr, Text, foldhash::fast::RandomState>,
    /// The last few addresses, direct-mapped: a log repeats the same client on consecutive
    /// lines and the same version-like token in every user agent, and a slot compare is
    /// cheaper than hashing. Slots are picked by a fixed hash; colliding keys only miss.
    recent: Box<[Option<(IpAddr, Text)>; RECENT]>,
    /// The last client or address field read and what it held (see [`line`]).
    pub(crate) last_field: line::FieldMemo,
    /// The replacements made in the last line masked, for the line check.
    pub edits: line::Edits,
}

const RECENT: usize = 64;

fn recent_slot(addr: IpAddr) -> usize {
    let bits = match addr {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            (b as u64) ^ ((b >> 64) as u64).rotate_left(17)
        }
    };
    (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.method {
            Method::Truncate(p) => format!("Truncate({}, {})", p.ipv4, p.ipv6),
            Method::Pseudonymize(_) => "Pseudonymize".to_string(),
        };
        f.debug_struct("Masker")
            .field("mode", &mode)
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Masker {
    /// A masker for `mode`, with an empty cache.
    pub fn new(mode: &Mode) -> Masker {
        let method = match mode {
            Mode::Truncate(p) => Method::Truncate(*p),
            Mode::Pseudonymize(key) => Method::Pseudonymize(Box::new(CryptoPan::new(key))),
        };
        Masker {
            method,
            cache: HashMap::default(),
            recent: Box::new([None; RECENT]),
            last_field: line::FieldMemo::default(),
            edits: line::Edits::default(),
        }
    }

    /// Whether masking a masked line again leaves it unchanged (true for truncation only).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method, Method::Truncate(_))
    }

    /// The masked address, computed without the cache.
    pub fn masked(&self, addr: IpAddr) -> IpAddr {
        match &self.method {
            Method::Truncate(p) => truncate(addr, *p),
            Method::Pseudonymize(pan) => pan.anonymize(addr),
        }
    }

    /// The canonical text that replaces `addr`.
    pub fn mask(&mut self, addr: IpAddr) -> &[u8] {
        let slot = recent_slot(addr);
        if !matches!(self.recent[slot], Some((a, _)) if a == addr) {
            let text = match (&self.method, addr) {
                // Truncating and writing an IPv4 address costs less than the cache miss a
                // lookup among thousands of addresses takes.
                (Method::Truncate(p), IpAddr::V4(v4)) => Text::of_v4(truncate_v4(v4, p.ipv4)),
                _ => self.mask_cached(addr),
            };
            self.recent[slot] = Some((addr, text));
        }
        match &self.recent[slot] {
            Some((_, text)) => text.as_bytes(),
            None => &[],
        }
    }

    fn mask_cached(&mut self, addr: IpAddr) -> Text {
        if self.cache.len() >= CACHE_LIMIT && !self.cache.contains_key(&addr) {
            self.cache.clear();
        }
        let method = &self.method;
        *self.cache.entry(addr).or_insert_with(|| {
            Text::of(match method {
                Method::Truncate(p) => truncate(addr, *p),
                Method::Pseudonymize(pan) => pan.anonymize(addr),
            })
        })
    }

    /// Appends the masked form of host name `name` to `out` (rule in the module docs).
    /// `name` should satisfy [`is_host_name`]; anything else is masked the same way.
    pub fn mask_host(&self, name: &[u8], out: &mut Vec<u8>) {
        let (bare, root_dot) = match name.strip_suffix(b".") {
            Some(bare) => (bare, true),
            None => (name, false),
        };
        match &self.method {
            Method::Truncate(_) => out.push(b'x'),
            Method::Pseudonymize(pan) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hash = pan.host_hash(bare);
                out.push(b'h');
                for i in (0..16).rev() {
                    out.push(HEX[((hash >> (4 * i)) & 15) as usize]);
                }
            }
        }
        let kept = kept_suffix(bare);
        if !kept.is_empty() {
            out.push(b'.');
            out.extend_from_slice(kept);
        }
        if root_dot {
            out.push(b'.');
        }
    }
}

/// The labels of a host name (without root dot) that masking keeps: the last two of three
/// or more, the last one of two, none of one.
pub fn kept_suffix(name: &[u8]) -> &[u8] {
    let mut dots = memchr::memrchr_iter(b'.', name);
    let last = dots.next();
    match (last, dots.next()) {
        (Some(_), Some(second)) => &name[second + 1..],
        (Some(last), None) => &name[last + 1..],
        _ => &[],
    }
}

/// Whether a client field looks like a host name rather than an address or garbage: 1 to
/// 253 bytes of letters, digits, `-`, `_` and `.` (an optional root dot at the end), at
/// least one letter, no empty label. Addresses never qualify (IPv4 has no letters, IPv6 has
/// colons).
pub fn is_host_name(field: &[u8]) -> bool {
    let bare = field.strip_suffix(b".").unwrap_or(field);
    !bare.is_empty()
        && bare.len() <= 253
        && bare
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bare.iter().any(u8::is_ascii_alphabetic)
        && bare.split(|b| *b == b'.').all(|label| !label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTOR_KEY: &[u8] = b"1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pseudo() -> Masker {
        Masker::new(&Mode::Pseudonymize(Key::from_hex(VECTOR_KEY).unwrap()))
    }

    fn host(m: &Masker, name: &str) -> String {
        let mut out = Vec::new();
        m.mask_host(name.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn mask_returns_canonical_text_and_caches_it() {
        let mut m = Masker::new(&Mode::Truncate(Prefixes::DEFAULT));
        assert_eq!(m.mask(ip("203.0.113.195")), b"203.0.113.0");
        assert_eq!(
            m.mask(ip("2001:0db8:85a3::8a2e:0370:7334")),
            b"2001:db8:85a3::"
        );
        assert_eq!(m.mask(ip("::ffff:203.0.113.195")), b"::ffff:203.0.113.0");
        assert_eq!(m.mask(ip("203.0.113.195")), b"203.0.113.0");
        // Truncated IPv4 addresses are written again, not cached.
        assert_eq!(m.cache.len(), 2);
        assert!(m.is_idempotent());

        let mut p = pseudo();
        assert_eq!(p.mask(ip("128.11.68.132")), b"135.242.180.132");
        assert_eq!(p.mask(ip("::1")), b"78ff:f001:9fc0:20df:8380:b1f1:704:ed");
        assert_eq!(
            p.masked(ip("::1")),
            ip("78ff:f001:9fc0:20df:8380:b1f1:704:ed")
        );
        assert!(!p.is_idempotent());
    }

    #[test]
    fn longest_texts_fit() {
        for v4 in ["0.0.0.0", "255.255.255.255", "10.100.9.0", "1.20.100.199"] {
            assert_eq!(Text::of_v4(v4.parse().unwrap()).as_bytes(), v4.as_bytes());
        }
        let t = Text::of(ip("::ffff:255.255.255.255"));
        assert_eq!(t.as_bytes(), b"::ffff:255.255.255.255");
        let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
        assert_eq!(Text::of(ip(full)).as_bytes(), full.as_bytes());
    }

    proptest! {
        #[test]
        fn ipv4_text_is_the_canonical_text(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            let (fast, formatted) = (Text::of_v4(v4), v4.to_string());
            prop_assert_eq!(fast.as_bytes(), formatted.as_bytes());
        }
    }

    #[test]
    fn cache_is_bounded() {
        let mut m = Masker::new(&Mode::Truncate(Prefixes::DEFAULT));
        for i in 0..(CACHE_LIMIT as u128 + 10) {
            m.mask(IpAddr::V6((i << 80).into()));
        }
        assert!(m.cache.len() <= CACHE_LIMIT);
        assert!(m.cache.len() > 1);
        assert_eq!(m.mask(ip("1.2.3.4")), b"1.2.3.0");
    }

    #[test]
    fn host_names_keep_the_provider_domain() {
        let t = Masker::new(&Mode::Truncate(Prefixes::DEFAULT));
        assert_eq!(host(&t, "dsl-81-2-69-142.example.net"), "x.example.net");
        assert_eq!(host(&t, "a.b.dsl.example.net"), "x.example.net");
        assert_eq!(host(&t, "x.example.net"), "x.example.net");
        assert_eq!(host(&t, "example.net"), "x.net");
        assert_eq!(host(&t, "localhost"), "x");
        assert_eq!(host(&t, "dsl-1.example.net."), "x.example.net.");

        let p = pseudo();
        let a = host(&p, "dsl-81-2-69-142.example.net");
        assert_eq!(a.len(), 1 + 16 + ".example.net".len());
        assert!(a.starts_with('h') && a.ends_with(".example.net"), "{a}");
        assert!(
            a[1..17]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(host(&p, "DSL-81-2-69-142.Example.NET")[..17], a[..17]);
        assert_ne!(host(&p, "dsl-81-2-69-143.example.net"), a);
        assert_eq!(host(&p, "localhost").len(), 17);
    }

    #[test]
    fn host_name_shape() {
        for yes in [
            "dsl-81-2-69-142.example.net",
            "localhost",
            "x",
            "a_b.example.",
            "unknown",
        ] {
            assert!(is_host_name(yes.as_bytes()), "{yes}");
        }
        for no in [
            "1.2.3.4",
            "::1",
            "-",
            "",
            "a..b",
            ".a",
            "a b",
            "bad\"name",
            "1234",
        ] {
            assert!(!is_host_name(no.as_bytes()), "{no}");
        }
        assert_eq!(kept_suffix(b"a.b.c.d"), b"c.d");
        assert_eq!(kept_suffix(b"a.b"), b"b");
        assert_eq!(kept_suffix(b"a"), b"");
    }
}
