//! A throwaway PostgreSQL server for the fleet tests: `initdb` in a temporary directory (as
//! the `postgres` user through `runuser` when the tests run as root), TLS with a server
//! certificate signed by a throwaway CA made with the `openssl` command, `pg_hba.conf` that
//! takes password logins over TLS only, on a free local port; stopped on drop. It does not
//! know logward's schema: the tests run `logward fleet init` for that.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running PostgreSQL server, stopped (and its directory removed) when dropped.
pub struct Server {
    /// Holds the data directory, the certificates and the log.
    pub dir: tempfile::TempDir,
    pub bindir: PathBuf,
    pub port: u16,
    /// The superuser's password (the superuser is `postgres`).
    pub password: String,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server shows.
    pub wrong_ca: PathBuf,
    as_postgres: bool,
    running: bool,
}

/// Starts a server for a fleet test. Under `CI=true` a server that cannot start fails the
/// test; elsewhere the test is skipped with a message on stderr (no PostgreSQL installed).
pub fn start(test: &str) -> Option<Server> {
    match Server::start() {
        Ok(s) => Some(s),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: PostgreSQL could not start, and CI=true: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: PostgreSQL could not start: {why}");
            None
        }
    }
}

/// Runs `cmd`, returning its stdout, or what failed with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir`, else the
/// newest /usr/lib/postgresql/N/bin.
fn bindir() -> Result<PathBuf, String> {
    if let Ok(out) = run(Command::new("pg_config").arg("--bindir")) {
        let dir = PathBuf::from(out.trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no pg_config and /usr/lib/postgresql: {e}"))?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no initdb under /usr/lib/postgresql".into())
}

/// A port nobody listens on now.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Random letters and digits for a password, from the kernel.
pub fn random_word(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"),
        &mut bytes,
    )
    .expect("random bytes");
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A CA (key and self-signed certificate) named `name` in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt))?;
    Ok(crt)
}

/// A server key and certificate for localhost and 127.0.0.1, signed by the CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) -> Result<(PathBuf, PathBuf), String> {
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let crt = dir.join("server.crt");
    let ext = dir.join("server.ext");
    std::fs::write(&ext, "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
        .map_err(|e| e.to_string())?;
    run(Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(dir.join(format!("{ca}.crt")))
        .arg("-CAkey")
        .arg(dir.join(format!("{ca}.key")))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&crt))?;
    Ok((key, crt))
}

impl Server {
    fn start() -> Result<Server, String> {
        let bindir = bindir()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let ca = make_ca(dir.path(), "ca")?;
        let wrong_ca = make_ca(dir.path(), "wrong-ca")?;
        let (key, crt) = make_server_cert(dir.path(), "ca")?;
        let password = random_word(24);
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if as_postgres {
            // The server runs as postgres: it must reach the directory, own its key (a
            // key readable by others is refused) and read the password file.
            let pg = run(Command::new("id").args(["-u", "postgres"]))
                .map_err(|e| format!("no postgres user to run the server as: {e}"))?;
            let uid: u32 = pg.trim().parse().map_err(|_| format!("id -u: {pg}"))?;
            for p in [dir.path(), &key, &crt, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), None)
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
        let data = dir.path().join("data");
        let mut s = Server {
            dir,
            bindir,
            port: 0,
            password,
            ca,
            wrong_ca,
            as_postgres,
            running: false,
        };
        s.pg("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output_checked()?;
        std::fs::remove_file(&pwfile).map_err(|e| e.to_string())?;
        // TLS only, passwords only; no local socket logins, no plaintext.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n",
        )
        .map_err(|e| e.to_string())?;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| e.to_string())?;
        std::io::Write::write_all(
            &mut conf,
            format!(
                "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
                 fsync = off\nmax_connections = 60\nshared_buffers = 16MB\n",
                s.dir.path().display(),
                crt.display(),
                key.display()
            )
            .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        // Another test may take the port between our look and the server's bind: try again.
        let mut last = String::new();
        for _ in 0..5 {
            s.port = free_port()?;
            match s.start_again() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A command for one of the server's programs, run as postgres when we are root.
    fn pg(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again, after [`Server::stop`]) and waits until it takes logins.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.pg("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .args(["-w", "-t", "30", "start"])
            .output_checked()
            .map_err(|e| format!("{e}\nserver log:\n{}", self.log()))?;
        self.running = true;
        Ok(())
    }

    /// Stops the server at once (connections are cut, as when the machine goes away).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self
                .pg("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output_checked();
            self.running = false;
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A connection string for `user` (without its password) to the `postgres` database.
    pub fn url(&self, user: &str) -> String {
        format!("postgres://{user}@localhost:{}/postgres", self.port)
    }

    /// Connects as `user` with `password` over TLS, checking the server against `ca`.
    pub fn connect_as(
        &self,
        user: &str,
        password: &str,
        ca: &Path,
    ) -> Result<postgres::Client, postgres::Error> {
        let mut tls = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())
            .expect("TLS context");
        tls.set_ca_file(ca).expect("CA file");
        let tls = postgres_openssl::MakeTlsConnector::new(tls.build());
        let mut config: postgres::Config = self.url(user).parse().expect("URL");
        config
            .password(password)
            .ssl_mode(postgres::config::SslMode::Require)
            .connect_timeout(std::time::Duration::from_secs(10));
        config.connect(tls)
    }

    /// The superuser's connection.
    pub fn superuser(&self) -> postgres::Client {
        self.connect_as("postgres", &self.password, &self.ca)
            .unwrap_or_else(|e| panic!("superuser login: {e}\n{}", self.log()))
    }

    /// Creates a login role `name` with a random password, in the roles `member_of`;
    /// returns the password.
    pub fn create_login(&self, name: &str, member_of: &[&str]) -> String {
        let password = random_word(20);
        let mut su = self.superuser();
        su.batch_execute(&format!(
            "CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"
        ))
        .expect("CREATE ROLE");
        for group in member_of {
            su.batch_execute(&format!("GRANT \"{group}\" TO \"{name}\""))
                .expect("GRANT");
        }
        password
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `output()` that turns a failed run into its message.
trait Checked {
    fn output_checked(&mut self) -> Result<String, String>;
}

impl Checked for Command {
    fn output_checked(&mut self) -> Result<String, String> {
        run(self)
    }
}
