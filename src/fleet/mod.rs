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
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A file of the settings cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The error reading it.
        source: std::io::Error,
    },
    /// The `url` setting is not a usable `postgres://` URL.
    Url {
        /// What is wrong with it.
        problem: String,
    },
    /// The `url` setting is not a connection string the PostgreSQL client reads.
    UrlSyntax {
        /// The client's reason.
        source: postgres::Error,
    },
    /// The CA file holds no certificate OpenSSL can use.
    Tls {
        /// The CA file.
        path: PathBuf,
        /// What OpenSSL reported.
        source: openssl::error::ErrorStack,
    },
    /// The connection to the server failed (refused, TLS, login).
    Connect {
        /// The server, as `HOST:PORT/DB as USER`.
        server: String,
        /// The error connecting.
        source: postgres::Error,
    },
    /// The local store's outbox failed (locked past the busy timeout, disk full...).
    Store {
        /// The store file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The login role is not the server's configured fleet host.
    NotHost {
        /// The server, as `HOST:PORT/DB as USER`.
        server: String,
        /// The role logged in as.
        role: String,
        /// The `host` setting.
        host: String,
    },
    /// A statement failed on the server.
    Sql {
        /// The server, as `HOST:PORT/DB as USER`.
        server: String,
        /// What the statement was doing (`reading erasure requests`).
        what: &'static str,
        /// The error the server returned.
        source: postgres::Error,
    },
    /// The database holds a newer fleet schema than this build knows.
    NewerSchema {
        /// The server, as `HOST:PORT/DB as USER`.
        server: String,
        /// The version found.
        found: i32,
    },
    /// The database holds an older fleet schema: `logward fleet init` upgrades it.
    OlderSchema {
        /// The server, as `HOST:PORT/DB as USER`.
        server: String,
        /// The version found.
        found: i32,
    },
    /// The database has no fleet schema: `logward fleet init` was not run.
    NoSchema {
        /// The server, as `HOST:PORT/DB as USER`.
        server: String,
    },
}

/// The rule names of a comma-separated column, sorted, each once.
pub(crate) fn rule_list(text: Option<&str>) -> Vec<String> {
    let mut rules: Vec<String> = text
        .unwrap_or_default()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

impl FleetError {
    /// Turns the client's error of a statement on `server` into one that says what was
    /// being done where: `.map_err(FleetError::sql(server, "reading bans"))`.
    pub(crate) fn sql(
        server: &str,
        what: &'static str,
    ) -> impl FnOnce(postgres::Error) -> FleetError + use<> {
        let server = server.to_string();
        move |source| FleetError::Sql {
            server,
            what,
            source,
        }
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::File { path, problem } => write!(f, "{}: {problem}", path.display()),
            FleetError::Read { path, .. } => write!(f, "{}: cannot read", path.display()),
            FleetError::Url { problem } => write!(f, "fleet url: {problem}"),
            FleetError::UrlSyntax { .. } => f.write_str("fleet url: cannot be read"),
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
            FleetError::Connect { source, .. }
            | FleetError::Sql { source, .. }
            | FleetError::UrlSyntax { source } => Some(source),
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
