//! The fleet settings as the code uses them, and the one way logward connects to the
//! fleet's PostgreSQL server: TLS always, the server's certificate checked against the
//! configured CA only (not the system's), the password read from a file only its owner can
//! read. It does not know the command line or the configuration file (the cli turns them
//! into [`Settings`]), nor the schema.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use postgres::config::SslMode;

use super::FleetError;

/// Where and how this server reports to the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `postgres://USER@HOST:PORT/DB`, without a password.
    pub url: String,
    /// The login's password, in a file of mode 0600 (or stricter).
    pub password_file: Option<PathBuf>,
    /// The CA certificates (PEM) that the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// This server's name in the fleet.
    pub host: String,
    /// A source flagged by at least this many servers is a fleet ban (fleet rule).
    pub min_hosts: Option<u32>,
}

/// An open connection to the fleet's database.
pub struct Fleet {
    /// The open connection.
    pub client: postgres::Client,
    /// `HOST:PORT/DB as USER`, for messages (never the password).
    pub server: String,
    /// This server's name in the fleet.
    pub host: String,
}

impl Fleet {
    /// The error for a failed statement, naming the server.
    pub fn sql(&self, what: &'static str) -> impl FnOnce(postgres::Error) -> FleetError + '_ {
        move |source| FleetError::Sql {
            server: self.server.clone(),
            what,
            source,
        }
    }
}

/// Connects over TLS, checking the server against `settings.ca_file`.
pub fn connect(settings: &Settings) -> Result<Fleet, FleetError> {
    let mut config = parse_url(&settings.url)?;
    let server = describe(&config);
    if let Some(path) = &settings.password_file {
        config.password(read_password(path)?);
    }
    config.ssl_mode(SslMode::Require);
    config.application_name("logward");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.keepalives_idle(Duration::from_secs(60));
    let tls = tls_connector(&settings.ca_file)?;
    let client = config.connect(tls).map_err(|source| FleetError::Connect {
        server: server.clone(),
        source,
    })?;
    Ok(Fleet {
        client,
        server,
        host: settings.host.clone(),
    })
}

/// Parses the URL, refusing one that holds a password or turns TLS off.
pub fn parse_url(url: &str) -> Result<postgres::Config, FleetError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(FleetError::Url {
            problem: "not a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)".into(),
        });
    }
    let config: postgres::Config = url
        .parse()
        .map_err(|source| FleetError::UrlSyntax { source })?;
    if config.get_password().is_some() {
        // Without echoing it: the message goes to logs.
        return Err(FleetError::Url {
            problem: "holds a password; put it in password_file (mode 0600) instead".into(),
        });
    }
    if config.get_user().is_none() {
        return Err(FleetError::Url {
            problem: "names no user (postgres://USER@HOST/DATABASE)".into(),
        });
    }
    if config.get_ssl_mode() == SslMode::Disable {
        return Err(FleetError::Url {
            problem: "sslmode=disable: the fleet connection always uses TLS".into(),
        });
    }
    Ok(config)
}

/// `HOST:PORT/DB as USER`.
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("?");
    let db = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{db} as {user}")
}

/// The password: the file's first line. The file must be a regular file that only its
/// owner can read or write (mode 0600 or 0400).
pub fn read_password(path: &Path) -> Result<String, FleetError> {
    let meta = std::fs::metadata(path).map_err(|source| FleetError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(FleetError::File {
            path: path.to_path_buf(),
            problem: "the password file is not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FleetError::File {
            path: path.to_path_buf(),
            problem: format!(
                "the password file has mode {mode:04o}, so others may read it; \
                 make it 0600 (chmod 600 {})",
                path.display()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| FleetError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(FleetError::File {
            path: path.to_path_buf(),
            problem: "the password file's first line is empty".into(),
        });
    }
    Ok(password)
}

/// A TLS connector that trusts the certificates of `ca_file` and nothing else, checks the
/// server's name against its certificate, and speaks TLS 1.2 or later.
fn tls_connector(ca_file: &Path) -> Result<postgres_openssl::MakeTlsConnector, FleetError> {
    let pem = std::fs::read(ca_file).map_err(|source| FleetError::Read {
        path: ca_file.to_path_buf(),
        source,
    })?;
    let tls = |source| FleetError::Tls {
        path: ca_file.to_path_buf(),
        source,
    };
    let certs = X509::stack_from_pem(&pem).map_err(tls)?;
    if certs.is_empty() {
        return Err(FleetError::File {
            path: ca_file.to_path_buf(),
            problem: "holds no PEM certificate".into(),
        });
    }
    let mut store = X509StoreBuilder::new().map_err(tls)?;
    for cert in certs {
        store.add_cert(cert).map_err(tls)?;
    }
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls)?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(tls)?;
    // Replaces the system's trust store: only the fleet's CA vouches for its server.
    builder.set_cert_store(store.build());
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_password(&p).unwrap_err().to_string();
        assert!(
            err.contains("mode 0640") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(err.starts_with(&p.display().to_string()), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_password(&p).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn a_url_with_a_password_or_without_tls_is_refused() {
        let err = parse_url("postgres://a:hunter2@db/fleet")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("password_file") && !err.contains("hunter2"),
            "{err}"
        );
        let err = parse_url("postgres://a@db/fleet?sslmode=disable").unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
        assert!(parse_url("mysql://a@db/fleet").is_err());
        assert!(parse_url("postgres://db/fleet").is_err());
        let err = parse_url("postgres://a@db/fleet?sslmode=sometimes").unwrap_err();
        assert_eq!(err.to_string(), "fleet url: cannot be read");
        let source = std::error::Error::source(&err).expect("the client's error");
        assert!(
            source.downcast_ref::<postgres::Error>().is_some(),
            "{source}"
        );
        let c = parse_url("postgres://web1@db.example:6432/fleet").unwrap();
        assert_eq!(describe(&c), "db.example:6432/fleet as web1");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let Err(err) = tls_connector(&p) else {
            panic!("a CA file without certificates was taken");
        };
        assert!(
            err.to_string().starts_with(&p.display().to_string()),
            "{err}"
        );
    }
}
