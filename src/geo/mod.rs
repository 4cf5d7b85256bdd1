//! MaxMind DB lookups (<https://maxmind.github.io/MaxMind-DB/>): country from a GeoIP2 /
//! GeoLite2 Country or City database, AS number and organisation from an ASN database.
//!
//! It owns opening and checking the databases and turning one address into a [`GeoInfo`].
//! It does not download or update databases, and it never fails a lookup: an address a
//! database does not cover, or a record it cannot decode, gives empty fields.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, geoip2};

/// What the databases say about one address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 code, e.g. `GB`.
    pub country: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation, e.g. `Example Networks Ltd`.
    pub as_org: Option<String>,
}

/// Which kind of database a file must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// GeoIP2/GeoLite2 Country or City (or Enterprise, which has the same country record).
    Country,
    /// GeoLite2/GeoIP2 ASN.
    Asn,
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbKind::Country => "a Country or City database",
            DbKind::Asn => "an ASN database",
        })
    }
}

impl DbKind {
    /// The kind a `database_type` metadata value names, if logward can use it.
    fn of(database_type: &str) -> Option<DbKind> {
        if database_type.contains("ASN") {
            Some(DbKind::Asn)
        } else if ["Country", "City", "Enterprise"]
            .iter()
            .any(|k| database_type.contains(k))
        {
            Some(DbKind::Country)
        } else {
            None
        }
    }
}

/// A GeoIP failure; every variant names the database file. The reason a file could not be
/// read or used (the operating system's, the MaxMind reader's) is the `source()`.
#[derive(Debug)]
pub enum GeoError {
    /// Missing or unreadable.
    Read {
        /// The database file.
        path: PathBuf,
        /// The error opening or reading it.
        source: std::io::Error,
    },
    /// Not a MaxMind DB, or a corrupt one.
    Invalid {
        /// The database file.
        path: PathBuf,
        /// What the reader found wrong.
        source: maxminddb::MaxMindDbError,
    },
    /// A valid database of the wrong kind (e.g. an ASN file given as the country one).
    WrongKind {
        /// The database file.
        path: PathBuf,
        /// The kind it was given as.
        expected: DbKind,
        /// Its `database_type` metadata (`GeoLite2-ASN`).
        database_type: String,
    },
}

impl fmt::Display for GeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeoError::Read { path, .. } => {
                write!(f, "{}: cannot read the MaxMind database", path.display())
            }
            GeoError::Invalid { path, .. } => {
                write!(f, "{}: not a valid MaxMind database", path.display())
            }
            GeoError::WrongKind {
                path,
                expected,
                database_type,
            } => write!(
                f,
                "{}: is a {database_type} database, expected {expected}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for GeoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GeoError::Read { source, .. } => Some(source),
            GeoError::Invalid { source, .. } => Some(source),
            GeoError::WrongKind { .. } => None,
        }
    }
}

/// Addresses probed when a database is opened, so a corrupt tree or data section is
/// reported up front, naming the file, rather than silently emptying every lookup.
const PROBES: [&str; 4] = ["81.2.69.142", "216.160.83.56", "1.1.1.1", "2001:db8::1"];

/// The opened databases; either may be absent.
#[derive(Default)]
pub struct Geo {
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl fmt::Debug for Geo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Geo")
            .field("country", &self.country.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl Geo {
    /// Opens a Country or City database and an ASN database; pass `None` for one not
    /// configured. Each file is loaded into memory and checked for its kind.
    pub fn open(country_or_city: Option<&Path>, asn: Option<&Path>) -> Result<Geo, GeoError> {
        Ok(Geo {
            country: country_or_city
                .map(|p| open_db(p, DbKind::Country))
                .transpose()?,
            asn: asn.map(|p| open_db(p, DbKind::Asn)).transpose()?,
        })
    }

    /// True when no database is open, so lookups would always be empty.
    pub fn is_empty(&self) -> bool {
        self.country.is_none() && self.asn.is_none()
    }

    /// What the databases know about `addr`; IPv4-mapped addresses are looked up as IPv4.
    pub fn lookup(&self, addr: IpAddr) -> GeoInfo {
        let addr = addr.to_canonical();
        let mut info = GeoInfo::default();
        if let Some(r) = &self.country {
            info.country = country_of(r, addr).ok().flatten();
        }
        if let Some(r) = &self.asn {
            if let Ok(Some(a)) = r.lookup(addr).and_then(|l| l.decode::<geoip2::Asn>()) {
                info.asn = a.autonomous_system_number;
                info.as_org = a.autonomous_system_organization.map(str::to_string);
            }
        }
        info
    }
}

fn country_of(
    r: &Reader<Vec<u8>>,
    addr: IpAddr,
) -> Result<Option<String>, maxminddb::MaxMindDbError> {
    let l = r.lookup(addr)?;
    let c: Option<String> = l.decode_path(&maxminddb::path!["country", "iso_code"])?;
    // Some networks (anycast, satellite) only carry the registered country.
    match c {
        Some(c) => Ok(Some(c)),
        None => l.decode_path(&maxminddb::path!["registered_country", "iso_code"]),
    }
}

fn open_db(path: &Path, expected: DbKind) -> Result<Reader<Vec<u8>>, GeoError> {
    let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |source| GeoError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    let reader = Reader::from_source(bytes).map_err(invalid)?;
    let database_type = reader.metadata().database_type.clone();
    if DbKind::of(&database_type) != Some(expected) {
        return Err(GeoError::WrongKind {
            path: path.to_path_buf(),
            expected,
            database_type,
        });
    }
    for probe in PROBES {
        let Ok(addr) = probe.parse::<IpAddr>() else {
            continue;
        };
        // An IPv6 probe in an IPv4-only database is an input error, not corruption.
        if addr.is_ipv6() && reader.metadata().ip_version == 4 {
            continue;
        }
        match expected {
            DbKind::Country => country_of(&reader, addr).map(drop),
            DbKind::Asn => reader
                .lookup(addr)
                .and_then(|l| l.decode::<geoip2::Asn>())
                .map(drop),
        }
        .map_err(invalid)?;
    }
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MMDB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/mmdb");

    /// The corpus's MaxMind test databases; the tests that read them are ignored by
    /// default and fail here, saying why, when run without the corpus.
    fn corpus() -> PathBuf {
        let p = PathBuf::from(MMDB);
        assert!(
            p.is_dir(),
            "{MMDB} is absent: these tests need the shared corpus"
        );
        p
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    #[ignore = "needs ../shared/corpus"]
    fn maxmind_test_databases() {
        let dir = corpus();
        for db in ["GeoIP2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb"] {
            let geo = Geo::open(
                Some(&dir.join(db)),
                Some(&dir.join("GeoLite2-ASN-Test.mmdb")),
            )
            .unwrap();
            assert_eq!(geo.lookup(ip("81.2.69.142")).country.as_deref(), Some("GB"));
            assert_eq!(
                geo.lookup(ip("::ffff:81.2.69.142")).country.as_deref(),
                Some("GB")
            );
            let us = geo.lookup(ip("216.160.83.56"));
            assert_eq!(us.country.as_deref(), Some("US"), "{db}");
            assert_eq!(us.asn, Some(209));
            // The test database has no organisation for AS209; 1.128.0.0/11 has one.
            assert_eq!(us.as_org, None);
            let telstra = geo.lookup(ip("1.128.0.1"));
            assert_eq!(telstra.asn, Some(1221));
            assert_eq!(telstra.as_org.as_deref(), Some("Telstra Pty Ltd"));
            assert_eq!(geo.lookup(ip("10.0.0.1")), GeoInfo::default());
        }
    }

    #[test]
    #[ignore = "needs ../shared/corpus"]
    fn wrong_kind_is_detected() {
        let dir = corpus();
        let asn = dir.join("GeoLite2-ASN-Test.mmdb");
        let country = dir.join("GeoIP2-Country-Test.mmdb");
        let e = Geo::open(Some(&asn), None).unwrap_err();
        assert!(matches!(
            e,
            GeoError::WrongKind {
                expected: DbKind::Country,
                ..
            }
        ));
        assert!(e.to_string().contains("GeoLite2-ASN-Test.mmdb"), "{e}");
        let e = Geo::open(None, Some(&country)).unwrap_err();
        assert!(
            matches!(
                e,
                GeoError::WrongKind {
                    expected: DbKind::Asn,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    #[ignore = "needs ../shared/corpus"]
    fn broken_databases_are_errors() {
        let dir = corpus();
        for db in [
            "GeoIP2-City-Test-Broken-Double-Format.mmdb",
            "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        ] {
            let p = dir.join(db);
            match Geo::open(Some(&p), None) {
                Err(e) => assert!(e.to_string().contains(db), "{e}"),
                // If the damage is outside what the probes touch, lookups must still not
                // panic.
                Ok(g) => {
                    eprintln!("{db} opened; probing lookups");
                    for a in ["81.2.69.142", "2001:218::1", "216.160.83.56", "::"] {
                        let _ = g.lookup(ip(a));
                    }
                }
            }
        }
    }

    #[test]
    fn missing_and_garbage_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.mmdb");
        let e = Geo::open(Some(&missing), None).unwrap_err();
        assert!(matches!(e, GeoError::Read { .. }));
        assert!(e.to_string().contains("nope.mmdb"));
        let reason = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
        assert!(!e.to_string().contains(&reason), "{e}");
        assert!(
            crate::error::chain(&e).to_string().ends_with(&format!(
                "nope.mmdb: cannot read the MaxMind database: {reason}"
            )),
            "{e}"
        );
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"not a database at all").unwrap();
        let e = Geo::open(None, Some(&junk)).unwrap_err();
        assert!(matches!(e, GeoError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("junk.mmdb"));
        let source = std::error::Error::source(&e).expect("the reader's error");
        assert!(
            source.downcast_ref::<maxminddb::MaxMindDbError>().is_some(),
            "{source}"
        );
        assert!(!e.to_string().contains(&source.to_string()), "{e}");
        assert!(Geo::open(None, None).unwrap().is_empty());
    }

    /// A value in the MaxMind DB data format, enough for the test writer.
    enum V {
        S(&'static str),
        U16(u16),
        U32(u32),
        U64(u64),
        M(Vec<(&'static str, V)>),
        A(Vec<V>),
    }

    /// Encodes `v` per the spec's data section format; strings up to 284 bytes, other
    /// sizes below 29.
    fn enc(v: &V, out: &mut Vec<u8>) {
        fn uint(out: &mut Vec<u8>, ty: u8, n: u64) {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            let body = &bytes[skip..];
            if ty < 8 {
                out.push(ty << 5 | body.len() as u8);
            } else {
                out.push(body.len() as u8);
                out.push(ty - 7);
            }
            out.extend_from_slice(body);
        }
        match v {
            V::S(s) => {
                // Sizes 29..=284 take the value 29 plus one extra byte holding size - 29.
                if s.len() < 29 {
                    out.push(2 << 5 | s.len() as u8);
                } else {
                    out.push(2 << 5 | 29);
                    out.push((s.len() - 29) as u8);
                }
                out.extend_from_slice(s.as_bytes());
            }
            V::U16(n) => uint(out, 5, u64::from(*n)),
            V::U32(n) => uint(out, 6, u64::from(*n)),
            V::U64(n) => uint(out, 9, *n),
            V::M(kv) => {
                out.push(7 << 5 | kv.len() as u8);
                for (k, v) in kv {
                    enc(&V::S(k), out);
                    enc(v, out);
                }
            }
            V::A(items) => {
                out.push(items.len() as u8);
                out.push(11 - 7);
                for i in items {
                    enc(i, out);
                }
            }
        }
    }

    /// A minimal IPv4 MaxMind DB with one network mapped to `record`: a chain of 24-bit
    /// nodes following the prefix bits, the 16-byte separator, the data section, then the
    /// metadata marker and map.
    fn write_mmdb(net: &str, database_type: &'static str, record: V) -> Vec<u8> {
        let net: ipnet::Ipv4Net = net.parse().unwrap();
        let bits = u32::from(net.network());
        let node_count = u32::from(net.prefix_len());
        let data_ptr = node_count + 16; // data offset 0
        let mut out = Vec::new();
        for i in 0..node_count {
            let bit = (bits >> (31 - i)) & 1;
            let next = if i + 1 == node_count { data_ptr } else { i + 1 };
            let (l, r) = if bit == 0 {
                (next, node_count)
            } else {
                (node_count, next)
            };
            out.extend_from_slice(&l.to_be_bytes()[1..]);
            out.extend_from_slice(&r.to_be_bytes()[1..]);
        }
        out.extend_from_slice(&[0; 16]);
        enc(&record, &mut out);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let meta = V::M(vec![
            ("binary_format_major_version", V::U16(2)),
            ("binary_format_minor_version", V::U16(0)),
            ("build_epoch", V::U64(1_795_322_356)),
            ("database_type", V::S(database_type)),
            ("description", V::M(vec![("en", V::S("logward test"))])),
            ("ip_version", V::U16(4)),
            ("languages", V::A(vec![V::S("en")])),
            ("node_count", V::U32(node_count)),
            ("record_size", V::U16(24)),
        ]);
        enc(&meta, &mut out);
        out
    }

    #[test]
    fn self_built_databases() {
        let dir = tempfile::tempdir().unwrap();
        let country = dir.path().join("country.mmdb");
        let asn = dir.path().join("asn.mmdb");
        std::fs::write(
            &country,
            write_mmdb(
                "192.0.2.0/24",
                "GeoLite2-Country",
                V::M(vec![("country", V::M(vec![("iso_code", V::S("NL"))]))]),
            ),
        )
        .unwrap();
        std::fs::write(
            &asn,
            write_mmdb(
                "198.51.100.0/24",
                "GeoLite2-ASN",
                V::M(vec![
                    ("autonomous_system_number", V::U32(64_500)),
                    ("autonomous_system_organization", V::S("Example Net")),
                ]),
            ),
        )
        .unwrap();
        let geo = Geo::open(Some(&country), Some(&asn)).unwrap();
        assert_eq!(
            geo.lookup(ip("192.0.2.77")),
            GeoInfo {
                country: Some("NL".into()),
                ..GeoInfo::default()
            }
        );
        assert_eq!(
            geo.lookup(ip("198.51.100.1")),
            GeoInfo {
                country: None,
                asn: Some(64_500),
                as_org: Some("Example Net".into()),
            }
        );
        assert_eq!(geo.lookup(ip("192.0.3.1")), GeoInfo::default());
        // IPv6 in an IPv4-only database: empty, not a panic or error.
        assert_eq!(geo.lookup(ip("2001:db8::1")), GeoInfo::default());
        assert!(matches!(
            Geo::open(Some(&asn), None),
            Err(GeoError::WrongKind { .. })
        ));
        // Truncating the file anywhere gives an error or an empty lookup, never a panic.
        let bytes = std::fs::read(&country).unwrap();
        for cut in 0..bytes.len() {
            let p = dir.path().join("cut.mmdb");
            std::fs::write(&p, &bytes[..cut]).unwrap();
            if let Ok(g) = Geo::open(Some(&p), None) {
                let _ = g.lookup(ip("192.0.2.77"));
            }
        }
    }
}
