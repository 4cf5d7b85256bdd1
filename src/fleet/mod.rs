//! The PostgreSQL side of the store, for a fleet of servers sharing one database: the
//! settings and the TLS connection ([`connect`](mod@connect)), the schema and its roles
//! ([`schema`]). It does not detect, ban or print: each server's SQLite store and nftables
//! set stay the source of truth for enforcement on that server, and the fleet only adds to
//! them.

pub mod connect;
pub mod erasure;
pub mod link;
pub mod outbox;
pub mod pull;
pub mod push;
pub mod query;
pub mod schema;

use std::fmt;
use std::path::PathBuf;

pub use connect::{Settings, connect};

/// A fleet failure; every variant names the file, the server or the host it concerns.
#[derive(Debug)]
pub enum FleetError {
    /// A file of the settings (`password_file`, `ca_file`) cannot be used as it is.
    File { path: PathBuf, problem: String },
    /// A file of the settings cannot be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `url` setting is not a usable `postgres://` URL.
    Url { problem: String },
    /// The CA file holds no certificate OpenSSL can use.
    Tls {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
    /// The connection to the server failed (refused, TLS, login).
    Connect {
        server: String,
        source: postgres::Error,
    },
    /// The local store's outbox failed (locked past the busy timeout, disk full...).
    Store {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The login role is not the server's configured fleet host.
    NotHost {
        server: String,
        role: String,
        host: String,
    },
    /// A statement failed on the server.
    Sql {
        server: String,
        what: &'static str,
        source: postgres::Error,
    },
    /// The database holds a newer fleet schema than this build knows.
    NewerSchema { server: String, found: i32 },
    /// The database holds an older fleet schema: `logward fleet init` upgrades it.
    OlderSchema { server: String, found: i32 },
    /// The database has no fleet schema: `logward fleet init` was not run.
    NoSchema { server: String },
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::File { path, problem } => write!(f, "{}: {problem}", path.display()),
            FleetError::Read { path, .. } => write!(f, "{}: cannot read", path.display()),
            FleetError::Url { problem } => write!(f, "fleet url: {problem}"),
            FleetError::Tls { path, .. } => {
                write!(f, "{}: not a CA certificate file (PEM)", path.display())
            }
            FleetError::Connect { server, .. } => write!(f, "{server}: cannot connect"),
            FleetError::Sql { server, what, .. } => write!(f, "{server}: {what} failed"),
            FleetError::Store { path, .. } => write!(f, "{}: the fleet outbox", path.display()),
            FleetError::NotHost { server, role, host } => write!(
                f,
                "{server}: logged in as {role}, but this server's fleet host is {host}: a \
                 server reports as its login role, so name the role after the host or set \
                 host in the config's [fleet] table"
            ),
            FleetError::NewerSchema { server, found } => write!(
                f,
                "{server}: fleet schema version {found} is newer than this logward supports ({})",
                schema::VERSION
            ),
            FleetError::OlderSchema { server, found } => write!(
                f,
                "{server}: fleet schema version {found} is older than this logward's ({}); \
                 run `logward fleet init` to upgrade it",
                schema::VERSION
            ),
            FleetError::NoSchema { server } => write!(
                f,
                "{server}: no fleet schema in this database; run `logward fleet init` first"
            ),
        }
    }
}

impl std::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FleetError::Read { source, .. } => Some(source),
            FleetError::Tls { source, .. } => Some(source),
            FleetError::Store { source, .. } => Some(source),
            FleetError::Connect { source, .. } | FleetError::Sql { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// This machine's host name, the default name of a server in the fleet.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// A server's name in the fleet: 1 to 63 ASCII letters, digits, `.`, `_` and `-`, as a
/// host name and a PostgreSQL role name both allow.
pub fn valid_host(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
