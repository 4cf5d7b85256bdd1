//! Fleet mode: many servers share one PostgreSQL store. Every test here starts a real,
//! throwaway PostgreSQL server ([`server`]); none mocks it.

pub mod server;

/// The helper's server takes TLS logins checked against its CA, and nothing else.
#[test]
fn test_server_takes_tls_logins_only() {
    let Some(pg) = server::start("test_server_takes_tls_logins_only") else {
        return;
    };
    let mut su = pg.superuser();
    let row = su.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    );
    assert!(row.unwrap().get::<_, bool>(0), "the login is not over TLS");
    let version: i32 = su
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    assert!(version >= 150000, "PostgreSQL {version} is older than 15");
    // Plaintext: pg_hba.conf has hostssl lines only.
    let mut plain: postgres::Config = pg.url("postgres").parse().unwrap();
    plain
        .password(&pg.password)
        .ssl_mode(postgres::config::SslMode::Disable);
    let Err(err) = plain.connect(postgres::NoTls) else {
        panic!("a plaintext login was taken");
    };
    let err = format!("{err:?}");
    assert!(
        err.contains("pg_hba.conf") || err.contains("no encryption"),
        "{err}"
    );
    // A CA that did not sign the server's certificate.
    let Err(err) = pg.connect_as("postgres", &pg.password, &pg.wrong_ca) else {
        panic!("a server the CA did not sign was trusted");
    };
    assert!(
        format!("{err:?}").contains("certificate verify failed"),
        "{err:?}"
    );
}

/// Stopping and starting again keeps the data: the outbox tests rely on it.
#[test]
fn test_server_stops_and_starts_again() {
    let Some(mut pg) = server::start("test_server_stops_and_starts_again") else {
        return;
    };
    pg.superuser()
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .unwrap();
    pg.stop();
    assert!(pg.connect_as("postgres", &pg.password, &pg.ca).is_err());
    pg.start_again().unwrap();
    let n: i32 = pg
        .superuser()
        .query_one("SELECT n FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
}

/// Settings for logging in as `user` with `password` (written to a 0600 file in `dir`).
pub fn settings(
    pg: &server::Server,
    dir: &std::path::Path,
    user: &str,
    password: &str,
) -> logward::fleet::Settings {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join(format!("{user}.pw"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    logward::fleet::Settings {
        url: pg.url(user),
        password_file: Some(pw),
        ca_file: pg.ca.clone(),
        host: user.to_string(),
        min_hosts: None,
    }
}

/// logward's own connection: TLS checked against the configured CA only; a wrong CA, a
/// password file others can read, a wrong password are refused with the file or server.
#[test]
fn fleet_connection_checks_the_server_and_the_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(pg) = server::start("fleet_connection_checks_the_server_and_the_password_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = settings(&pg, dir.path(), "postgres", &pg.password);
    let mut fleet = logward::fleet::connect(&good).unwrap();
    let tls: bool = fleet
        .client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(tls);
    assert_eq!(
        fleet.server,
        format!("localhost:{}/postgres as postgres", pg.port)
    );

    let wrong_ca = logward::fleet::Settings {
        ca_file: pg.wrong_ca.clone(),
        ..good.clone()
    };
    let Err(err) = logward::fleet::connect(&wrong_ca) else {
        panic!("a server the CA did not sign was trusted");
    };
    let msg = format!("{:#}", anyhow::Error::from(err));
    assert!(msg.contains(&format!("localhost:{}", pg.port)), "{msg}");
    assert!(msg.contains("certificate verify failed"), "{msg}");

    let pw = good.password_file.clone().unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Err(err) = logward::fleet::connect(&good) else {
        panic!("a password file others can read was used");
    };
    assert!(err.to_string().contains("mode 0644"), "{err}");

    let wrong_pw = settings(&pg, dir.path(), "postgres", "not-the-password");
    let Err(err) = logward::fleet::connect(&wrong_pw) else {
        panic!("a wrong password was taken");
    };
    let msg = format!("{:#}", anyhow::Error::from(err));
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(
        !msg.contains("not-the-password") && !msg.contains(&pg.password),
        "{msg}"
    );
}

/// Writes a config file in `dir` for logging in to `pg` as `user` with `password`, as the
/// fleet server `user`; returns its path.
pub fn config_file(
    pg: &server::Server,
    dir: &crate::util::Dir,
    user: &str,
    password: &str,
) -> std::path::PathBuf {
    let s = settings(pg, dir.path(), user, password);
    dir.write(
        &format!("{user}.toml"),
        format!(
            "[fleet]\nurl = \"{}\"\npassword_file = \"{}\"\nca_file = \"{}\"\nhost = \"{user}\"\n",
            s.url,
            s.password_file.unwrap().display(),
            s.ca_file.display()
        )
        .as_bytes(),
    )
}

/// A server with the fleet schema (`logward fleet init` as the superuser) and the roles
/// it prints.
pub fn initialized(test: &str, dir: &crate::util::Dir) -> Option<server::Server> {
    let pg = server::start(test)?;
    let admin = config_file(&pg, dir, "postgres", &pg.password);
    let run = dir.run(&["fleet", "init", "--config", admin.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, pg.log());
    pg.superuser().batch_execute(&run.stdout).unwrap();
    Some(pg)
}

#[test]
fn fleet_init_twice_is_harmless() {
    let dir = crate::util::Dir::new();
    let Some(pg) = server::start("fleet_init_twice_is_harmless") else {
        return;
    };
    let admin = config_file(&pg, &dir, "postgres", &pg.password);
    let first = dir.run(&["fleet", "init", "--config", admin.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("fleet schema created (version 2)"),
        "{}",
        first.stderr
    );
    assert!(
        first.stdout.contains("CREATE ROLE logward_host NOLOGIN"),
        "{}",
        first.stdout
    );
    let mut su = pg.superuser();
    su.batch_execute(&first.stdout).unwrap();
    su.batch_execute(
        "INSERT INTO logward.hosts (host) VALUES ('web-a');
         INSERT INTO logward.flags (host, source, rules, first_seen, last_seen, events,
             times_flagged, expires, seq)
         VALUES ('web-a', '192.0.2.7/32', '{sqli}', now(), now(), 5, 1, now(), 1)",
    )
    .unwrap();
    let second = dir.run(&["fleet", "init", "--config", admin.to_str().unwrap()]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("already at version 2; nothing changed"),
        "{}",
        second.stderr
    );
    // The printed roles run twice too, and the data is still there.
    su.batch_execute(&second.stdout).unwrap();
    let n: i64 = su
        .query_one("SELECT count(*) FROM logward.flags", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let versions: i64 = su
        .query_one("SELECT count(*) FROM logward.schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
}

/// A database at schema version 1 is upgraded in place: its rows stay, they are flags (not
/// near misses), and servers can report near misses afterwards.
#[test]
fn fleet_init_upgrades_a_version_1_schema() {
    let dir = crate::util::Dir::new();
    let Some(pg) = server::start("fleet_init_upgrades_a_version_1_schema") else {
        return;
    };
    let mut su = pg.superuser();
    su.batch_execute(logward::fleet::schema::SCHEMA_V1).unwrap();
    su.batch_execute(
        "INSERT INTO logward.schema_version (version) VALUES (1);
         INSERT INTO logward.hosts (host) VALUES ('web-a');
         INSERT INTO logward.flags (host, source, rules, first_seen, last_seen, events,
             times_flagged, expires, seq)
         VALUES ('web-a', '192.0.2.7/32', '{sqli}', now(), now(), 5, 1, now(), 1)",
    )
    .unwrap();
    let admin = config_file(&pg, &dir, "postgres", &pg.password);
    let run = dir.run(&["fleet", "init", "--config", admin.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("fleet schema upgraded from version 1 to 2"),
        "{}",
        run.stderr
    );
    su.batch_execute(&run.stdout).unwrap();
    let row = su
        .query_one("SELECT events, partial FROM logward.flags", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (5, false));
    let pw = pg.create_login("web-b", &["logward_host"]);
    let mut host = pg.connect_as("web-b", &pw, &pg.ca).unwrap();
    let near = serde_json::json!([{
        "source": "198.51.100.4/32", "rules": ["http-probing"], "partial": true,
        "first_seen": 1_700_000_000, "last_seen": 1_700_000_000, "expires": 4_000_000_000i64,
        "events": 9, "times_flagged": 0
    }]);
    host.query_one(
        "SELECT logward.report_flags($1::text::jsonb)",
        &[&near.to_string()],
    )
    .unwrap();
    let partial: bool = su
        .query_one(
            "SELECT partial FROM logward.flags WHERE host = 'web-b'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(partial);
    let again = dir.run(&["fleet", "init", "--config", admin.to_str().unwrap()]);
    assert!(
        again.stderr.contains("already at version 2"),
        "{}",
        again.stderr
    );
}

/// The fleet queries by address and by network are answered with the GiST index.
#[test]
fn fleet_containment_query_uses_the_gist_index() {
    let dir = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_containment_query_uses_the_gist_index", &dir) else {
        return;
    };
    let mut su = pg.superuser();
    // 40000 flags from 20 servers, so the planner prefers the index on its own.
    su.batch_execute(
        "INSERT INTO logward.hosts (host) SELECT 'web-' || h FROM generate_series(1, 20) h;
         INSERT INTO logward.flags (host, source, rules, first_seen, last_seen, events,
             times_flagged, expires, seq)
         SELECT 'web-' || (i % 20 + 1), ('10.0.0.0'::inet + i * 7)::cidr, '{sqli}',
                now(), now(), 5, 1, now(), i
         FROM generate_series(1, 40000) i;
         ANALYZE logward.flags;",
    )
    .unwrap();
    let bytes: i64 = su
        .query_one(
            "SELECT pg_total_relation_size('logward.flags') / 40000",
            &[],
        )
        .unwrap()
        .get(0);
    println!("logward.flags: {bytes} bytes per row with its indexes (no samples)");
    // The query `flagged --fleet` runs, for an address and for a network.
    for target in ["10.0.1.13", "10.0.1.0/24"] {
        let filter = logward::fleet::query::FleetFilter {
            targets: vec![target.parse().unwrap()],
            ..Default::default()
        };
        let query = logward::fleet::query::sql(&filter);
        let plan: Vec<String> = su
            .query(&format!("EXPLAIN {query}"), &[&target])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("flags_source"), "{query}\n{plan}");
    }
}

/// A server's role reports only as itself, cannot write the tables, cannot erase or prune,
/// and cannot read the passwords of other roles.
#[test]
fn fleet_host_cannot_write_as_another_or_erase() {
    let dir = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_host_cannot_write_as_another_or_erase", &dir) else {
        return;
    };
    let pw_a = pg.create_login("web-a", &["logward_host"]);
    let pw_b = pg.create_login("web-b", &["logward_host"]);
    let pw_admin = pg.create_login("alice", &["logward_admin"]);
    let mut a = pg.connect_as("web-a", &pw_a, &pg.ca).unwrap();
    let mut b = pg.connect_as("web-b", &pw_b, &pg.ca).unwrap();
    let batch = serde_json::json!([{
        "host": "web-a", "source": "198.51.100.9/32", "rules": ["sqli"],
        "first_seen": 1_700_000_000, "last_seen": 1_700_000_100, "expires": 1_700_014_500,
        "events": 7, "times_flagged": 1, "samples": []
    }]);
    a.query_one(
        "SELECT logward.report_flags($1::text::jsonb)",
        &[&batch.to_string()],
    )
    .unwrap();
    // B names A in the batch: the row is B's all the same.
    b.query_one(
        "SELECT logward.report_flags($1::text::jsonb)",
        &[&batch.to_string()],
    )
    .unwrap();
    let hosts: Vec<String> = b
        .query("SELECT host FROM logward.flags ORDER BY host", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hosts, ["web-a", "web-b"]);
    let denied = |client: &mut postgres::Client, sql: &str| {
        let err = client.batch_execute(sql).unwrap_err();
        let code = err.code().cloned();
        assert_eq!(
            code,
            Some(postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
    };
    denied(
        &mut b,
        "UPDATE logward.flags SET events = 1 WHERE host = 'web-a'",
    );
    denied(&mut b, "DELETE FROM logward.flags WHERE host = 'web-a'");
    denied(&mut b, "INSERT INTO logward.hosts (host) VALUES ('web-c')");
    denied(
        &mut b,
        "SELECT logward.request_erasure('198.51.100.9/32', 'T-1')",
    );
    denied(&mut b, "SELECT logward.prune(now())");
    denied(&mut b, "SELECT logward.tick()");
    denied(&mut b, "SELECT rolpassword FROM pg_authid");
    let shadow = b.query("SELECT passwd FROM pg_shadow", &[]);
    assert!(shadow.is_err(), "pg_shadow was readable");
    // Staff with logward_admin erase across the fleet; the central rows go.
    let mut admin = pg.connect_as("alice", &pw_admin, &pg.ca).unwrap();
    admin
        .query_one(
            "SELECT logward.request_erasure('198.51.100.0/24', 'T-1')",
            &[],
        )
        .unwrap();
    let left: i64 = admin
        .query_one("SELECT count(*) FROM logward.flags", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    denied(&mut admin, "SELECT logward.report_flags('[]')");
}

/// Waits up to `secs` for `done`.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A burst that `sensitive-files` flags: 20 requests for secrets in one second, now.
pub fn attack(ip: &str) -> String {
    let t = crate::util::clf(crate::util::unix_now());
    (0..20)
        .map(|i| format!("{ip} - - [{t}] \"GET /.env?{i} HTTP/1.1\" 404 0 \"-\" \"curl/8\"\n"))
        .collect()
}

pub fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// One column of a local store's table, sorted.
pub fn local(store: &std::path::Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    let mut v: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    v.sort();
    v
}

/// `host:source:events` of every central flag, sorted; empty while the server is down.
pub fn central(pg: &server::Server) -> Vec<String> {
    let Ok(mut su) = pg.connect_as("postgres", &pg.password, &pg.ca) else {
        return Vec::new();
    };
    let mut v: Vec<String> = su
        .query(
            "SELECT host || ':' || source::text || ':' || events FROM logward.flags",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    v.sort();
    v
}

/// A running `logward watch`, killed when dropped.
pub struct Watch {
    pub child: std::process::Child,
    pub stderr: std::path::PathBuf,
}

impl Watch {
    pub fn start(dir: &crate::util::Dir, name: &str, args: &[&str]) -> Watch {
        let stderr = dir.join(&format!("{name}.stderr"));
        let mut cmd = dir.command();
        cmd.arg("watch")
            .args([
                "--interval",
                "100ms",
                "--no-default-allow",
                "--status-every",
                "0",
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let w = Watch {
            child: cmd.spawn().unwrap(),
            stderr,
        };
        assert!(
            wait_until(10, || w.log().contains("following from")),
            "{}",
            w.log()
        );
        w
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM; the exit code and stderr.
    pub fn stop(mut self) -> (i32, String) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), self.log());
            }
            assert!(std::time::Instant::now() < deadline, "watch did not stop");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scan` pushes what it recorded, with the store's absolute counts: a rescan of the same
/// log sends the same numbers again and the central row does not change.
#[test]
fn fleet_scan_pushes_its_flags_idempotently() {
    let dir = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_scan_pushes_its_flags_idempotently", &dir) else {
        return;
    };
    let pw = pg.create_login("web-a", &["logward_host"]);
    let cfg = config_file(&pg, &dir, "web-a", &pw);
    let log = dir.write("logs/access.log", attack("203.0.113.7").as_bytes());
    append(&log, &attack("2001:db8::7"));
    let args = [
        "scan",
        "--config",
        cfg.to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    let run = dir.run(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("fleet: pushed 2 flagged sources"),
        "{}",
        run.stderr
    );
    let want = ["web-a:2001:db8::/64:20", "web-a:203.0.113.7/32:20"];
    assert_eq!(central(&pg), want);
    let store = dir.join("state/logward.db");
    assert!(local(&store, "SELECT source FROM fleet_outbox").is_empty());
    let run = dir.run(&[&args[..], &["--rescan"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(central(&pg), want);
    // A server whose login role is not its host is told so, and its flags wait.
    let other = dir.write(
        "other.toml",
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("host = \"web-a\"", "host = \"web-b\"")
            .as_bytes(),
    );
    append(&log, &attack("198.51.100.1"));
    let run = dir.run(&[
        "scan",
        "--config",
        other.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("logged in as web-a, but this server's fleet host is web-b")
            && run.stderr.contains("1 source waits"),
        "{}",
        run.stderr
    );
    // The outbox outlived that run: the next one, rightly configured, pushes it.
    assert_eq!(
        local(&store, "SELECT source FROM fleet_outbox"),
        ["198.51.100.1/32"]
    );
    let run = dir.run(&[
        "scan",
        "--config",
        cfg.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(
        run.stderr.contains("fleet: pushed 1 flagged source"),
        "{}",
        run.stderr
    );
    assert_eq!(central(&pg).len(), 3);
}

/// PostgreSQL stopped while `watch` runs: flagging and the on-flag actions go on, the
/// outbox keeps what could not be pushed, and drains once the database is back.
#[test]
fn fleet_database_down_outbox_drains_after_restart() {
    let dir = crate::util::Dir::new();
    let Some(mut pg) = initialized("fleet_database_down_outbox_drains_after_restart", &dir) else {
        return;
    };
    let pw = pg.create_login("web-a", &["logward_host"]);
    let cfg = config_file(&pg, &dir, "web-a", &pw);
    let log = dir.write("logs/access.log", b"");
    let banned = dir.join("banned.txt");
    let on_flag = format!("echo $LOGWARD_SOURCE >> {}", banned.display());
    let watch = Watch::start(
        &dir,
        "watch",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--on-flag",
            &on_flag,
            log.to_str().unwrap(),
        ],
    );
    append(&log, &attack("203.0.113.7"));
    assert!(
        wait_until(10, || central(&pg).len() == 1),
        "{:?}\n{}",
        central(&pg),
        watch.log()
    );
    pg.stop();
    for ip in ["203.0.113.8", "203.0.113.9"] {
        append(&log, &attack(ip));
    }
    let store = dir.join("state/logward.db");
    let banned_now = || std::fs::read_to_string(&banned).unwrap_or_default();
    assert!(
        wait_until(10, || banned_now().lines().count() == 3),
        "local banning stopped: {}\n{}",
        banned_now(),
        watch.log()
    );
    assert_eq!(local(&store, "SELECT source FROM flagged").len(), 3);
    assert!(
        wait_until(10, || watch.log().contains("fleet: warning")),
        "{}",
        watch.log()
    );
    assert_eq!(local(&store, "SELECT source FROM fleet_outbox").len(), 2);
    pg.start_again().unwrap();
    assert!(
        wait_until(30, || central(&pg).len() == 3),
        "{:?}\n{}",
        central(&pg),
        watch.log()
    );
    assert!(wait_until(5, || local(
        &store,
        "SELECT source FROM fleet_outbox"
    )
    .is_empty()));
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("fleet: reconnected; pushed 2 flagged sources"),
        "{stderr}"
    );
    // Each outage is told once, for pushing and for pulling.
    assert_eq!(
        stderr.matches("banning go on locally").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("not learning other servers' bans").count(),
        1,
        "{stderr}"
    );
    // Nothing lost: the central rows are the local entries, with the same counts.
    let local_rows = local(
        &store,
        "SELECT 'web-a:' || source || ':' || events FROM flagged",
    );
    assert_eq!(local_rows.len(), 3);
    assert_eq!(central(&pg), local_rows);
}

/// An `nft` first on PATH that appends the batches it is given (`nft -f -`) to
/// `$NFT_RECORD`; returns that PATH and the record's path.
pub fn fake_nft(dir: &crate::util::Dir) -> (String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("nft");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$*\" = \"-f -\" ] || exit 3\ncat >> \"$NFT_RECORD\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, dir.join("nft.batches"))
}

/// Server B's `watch` with its fleet config and a fake nft.
fn watch_b(dir: &crate::util::Dir, cfg: &std::path::Path, name: &str) -> Watch {
    let (path, record) = fake_nft(dir);
    let log = dir.write("logs/access.log", b"");
    let stderr = dir.join(&format!("{name}.stderr"));
    let mut cmd = dir.command();
    cmd.env("PATH", path)
        .env("NFT_RECORD", record)
        .arg("watch")
        .args([
            "--interval",
            "100ms",
            "--no-default-allow",
            "--status-every",
            "0",
        ])
        .args(["--config", cfg.to_str().unwrap()])
        .args(["--nft-set", "inet:logward:flagged_v4,flagged_v6"])
        .arg(log)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let w = Watch {
        child: cmd.spawn().unwrap(),
        stderr,
    };
    let opened = wait_until(10, || {
        let e = w.log();
        e.contains("following from") || e.contains("resuming at")
    });
    assert!(opened, "{}", w.log());
    w
}

/// A flag on server A reaches server B's nftables batch within 2 s; B, stopped while A
/// flags another source, learns it when it starts again.
#[test]
fn fleet_flag_on_a_reaches_b_within_two_seconds() {
    let a_dir = crate::util::Dir::new();
    let b_dir = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_flag_on_a_reaches_b_within_two_seconds", &a_dir) else {
        return;
    };
    let pw_a = pg.create_login("web-a", &["logward_host"]);
    let pw_b = pg.create_login("web-b", &["logward_host"]);
    let cfg_a = config_file(&pg, &a_dir, "web-a", &pw_a);
    let cfg_b = config_file(&pg, &b_dir, "web-b", &pw_b);
    let a_log = a_dir.write("logs/access.log", b"");
    let a = Watch::start(
        &a_dir,
        "a",
        &["--config", cfg_a.to_str().unwrap(), a_log.to_str().unwrap()],
    );
    let b = watch_b(&b_dir, &cfg_b, "b1");
    let batches = || std::fs::read_to_string(b_dir.join("nft.batches")).unwrap_or_default();
    let written = std::time::Instant::now();
    append(&a_log, &attack("203.0.113.7"));
    let reached = wait_until(2, || batches().contains("203.0.113.7"));
    let took = written.elapsed();
    assert!(
        reached,
        "not in B's nft batch within 2 s:\n{}\n{}",
        a.log(),
        b.log()
    );
    println!(
        "ban propagated from A to B's nft batch in {} ms",
        took.as_millis()
    );
    assert!(
        b.log()
            .contains("fleet: 203.0.113.7 flagged by sensitive-files on web-a"),
        "{}",
        b.log()
    );
    // B is not flagged by anything of its own: its store stays empty, its outbox too.
    let (code, stderr) = b.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        local(
            &b_dir.join("state/logward.db"),
            "SELECT source FROM flagged"
        )
        .is_empty()
    );
    // B is down while A flags another source; on restart it catches up.
    append(&a_log, &attack("2001:db8:5::1"));
    assert!(wait_until(10, || central(&pg).len() == 2), "{}", a.log());
    let b = watch_b(&b_dir, &cfg_b, "b2");
    assert!(
        wait_until(5, || batches().contains("2001:db8:5::/64")),
        "{}",
        b.log()
    );
    // What it had learnt before is not learnt again.
    assert!(!b.log().contains("203.0.113.7"), "{}", b.log());
    let (code, stderr) = b.stop();
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = a.stop();
    assert_eq!(code, 0, "{stderr}");
}

/// Writers that hold their transaction open while others report: a reader pulling all
/// along by the sequence sees every row, none skipped.
#[test]
fn fleet_concurrent_writers_skip_no_row_for_a_reader() {
    let dir = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_concurrent_writers_skip_no_row_for_a_reader", &dir) else {
        return;
    };
    let hosts = ["web-1", "web-2", "web-3", "web-4"];
    let passwords: Vec<String> = hosts
        .iter()
        .map(|h| pg.create_login(h, &["logward_host"]))
        .collect();
    let pw_r = pg.create_login("web-reader", &["logward_host"]);
    // The first writer takes its number and holds it: the second must wait for its commit.
    let mut first = pg.connect_as(hosts[0], &passwords[0], &pg.ca).unwrap();
    let row = |ip: String| {
        serde_json::json!([{
            "source": format!("{ip}/32"), "rules": ["sqli"], "first_seen": 1_700_000_000,
            "last_seen": 1_700_000_000, "expires": 4_000_000_000i64, "events": 5,
            "times_flagged": 1
        }])
        .to_string()
    };
    let mut tx = first.transaction().unwrap();
    tx.query_one(
        "SELECT logward.report_flags($1::text::jsonb)",
        &[&row("10.9.0.1".into())],
    )
    .unwrap();
    let second = {
        let (ca, port) = (pg.ca.clone(), pg.port);
        let pw = passwords[1].clone();
        let json = row("10.9.0.2".into());
        std::thread::spawn(move || {
            let mut c: postgres::Config = format!("postgres://web-2@localhost:{port}/postgres")
                .parse()
                .unwrap();
            c.password(pw).ssl_mode(postgres::config::SslMode::Require);
            let mut b =
                openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
            b.set_ca_file(ca).unwrap();
            let mut client = c
                .connect(postgres_openssl::MakeTlsConnector::new(b.build()))
                .unwrap();
            client
                .query_one("SELECT logward.report_flags($1::text::jsonb)", &[&json])
                .unwrap();
            std::time::Instant::now()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !second.is_finished(),
        "the second writer did not wait for the first"
    );
    let reader_store = dir.join("reader/logward.db");
    std::fs::create_dir_all(reader_store.parent().unwrap()).unwrap();
    logward::store::Store::open(&reader_store).unwrap();
    let mut reader = logward::fleet::pull::Puller::open(
        settings(&pg, dir.path(), "web-reader", &pw_r),
        &reader_store,
    )
    .unwrap();
    assert!(reader.pull().unwrap().is_empty());
    let committed = std::time::Instant::now();
    tx.commit().unwrap();
    assert!(second.join().unwrap() >= committed);
    let mut seen: Vec<String> = reader
        .pull()
        .unwrap()
        .iter()
        .map(|b| b.source.to_string())
        .collect();
    // Many writers with random pauses inside their transactions, a reader pulling along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = hosts
        .iter()
        .zip(&passwords)
        .enumerate()
        .map(|(w, (host, pw))| {
            let mut client = pg.connect_as(host, pw, &pg.ca).unwrap();
            std::thread::spawn(move || {
                for i in 0..40u32 {
                    let mut tx = client.transaction().unwrap();
                    let json = serde_json::json!([{
                        "source": format!("10.{w}.{}.{}/32", i / 200, i % 200 + 1),
                        "rules": ["sqli"], "first_seen": 1_700_000_000,
                        "last_seen": 1_700_000_000, "expires": 4_000_000_000i64,
                        "events": 5, "times_flagged": 1
                    }])
                    .to_string();
                    tx.query_one("SELECT logward.report_flags($1::text::jsonb)", &[&json])
                        .unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(
                        (i * 7 + w as u32 * 13) % 9,
                    )));
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    let reading = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let last = stop.load(std::sync::atomic::Ordering::SeqCst);
                got.extend(reader.pull().unwrap().iter().map(|b| b.source.to_string()));
                if last {
                    return got;
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    seen.extend(reading.join().unwrap());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2 + 4 * 40, "the reader missed rows");
}

/// `fleet sync` for servers that only scan: one pull into the nftables sets. With
/// `min_hosts = 2`, a source one server flagged is no fleet ban; a second server makes it
/// one, listing both.
#[test]
fn fleet_sync_learns_bans_and_min_hosts_needs_that_many_servers() {
    let dirs: Vec<crate::util::Dir> = (0..3).map(|_| crate::util::Dir::new()).collect();
    let Some(pg) = initialized(
        "fleet_sync_learns_bans_and_min_hosts_needs_that_many_servers",
        &dirs[0],
    ) else {
        return;
    };
    let names = ["web-a", "web-b", "web-c"];
    let cfgs: Vec<std::path::PathBuf> = names
        .iter()
        .zip(&dirs)
        .map(|(n, d)| config_file(&pg, d, n, &pg.create_login(n, &["logward_host"])))
        .collect();
    let scan = |i: usize, ip: &str| {
        let log = dirs[i].write(&format!("logs/{ip}.log"), attack(ip).as_bytes());
        let run = dirs[i].run(&[
            "scan",
            "--config",
            cfgs[i].to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert!(
            run.stderr.contains("fleet: pushed 1 flagged source"),
            "{}",
            run.stderr
        );
    };
    let (path, record) = fake_nft(&dirs[1]);
    let sync = |min_hosts: &str| sync_into_nft(&dirs[1], &cfgs[1], (&path, &record), min_hosts);
    scan(0, "203.0.113.7");
    let first = sync("2");
    assert!(
        first.contains("learnt 0 bans from other servers"),
        "{first}"
    );
    assert!(!record.exists(), "nft ran with nothing to add");
    scan(2, "203.0.113.7");
    let second = sync("2");
    assert!(
        second.contains("fleet: 203.0.113.7 flagged by sensitive-files on web-a,web-c"),
        "{second}"
    );
    assert!(
        second.contains("learnt 1 ban from other servers"),
        "{second}"
    );
    let batches = std::fs::read_to_string(&record).unwrap();
    assert!(batches.contains("203.0.113.7"), "{batches}");
    // Nothing new: nothing learnt twice.
    let third = sync("2");
    assert!(third.contains("learnt 0 bans"), "{third}");
}

/// Three requests for secrets in a second, now: `sensitive-files` (capacity 4) flags five,
/// so three pass half its bucket without flagging: a near miss.
pub fn weak_attack(ip: &str) -> String {
    let t = crate::util::clf(crate::util::unix_now());
    (0..3)
        .map(|i| {
            format!("{ip} - - [{t}] \"GET /.git/config?{i} HTTP/1.1\" 404 0 \"-\" \"curl/8\"\n")
        })
        .collect()
}

/// An attack spread over three servers, each seeing too little to flag it: with
/// `min_hosts = 3` each reports a near miss, and once the third does, the source is a
/// fleet ban for all three (the last one included, whose own report completed it). With
/// fewer servers, or without `min_hosts`, nothing is banned, and `flagged --fleet` lists
/// near misses only once they make a ban.
#[test]
fn fleet_spread_attack_of_near_misses_becomes_a_fleet_ban() {
    let dirs: Vec<crate::util::Dir> = (0..3).map(|_| crate::util::Dir::new()).collect();
    let Some(pg) = initialized(
        "fleet_spread_attack_of_near_misses_becomes_a_fleet_ban",
        &dirs[0],
    ) else {
        return;
    };
    let names = ["web-a", "web-b", "web-c"];
    let passwords: Vec<String> = names
        .iter()
        .map(|n| pg.create_login(n, &["logward_host"]))
        .collect();
    let cfgs: Vec<std::path::PathBuf> = (0..3)
        .map(|i| config_file(&pg, &dirs[i], names[i], &passwords[i]))
        .collect();
    let ip = "203.0.113.9";
    let scan = |i: usize, min_hosts: &[&str]| {
        let log = dirs[i].write(
            &format!("logs/{i}-{}.log", min_hosts.len()),
            weak_attack(ip).as_bytes(),
        );
        let run = dirs[i].run(
            &[
                &["scan", "--config", cfgs[i].to_str().unwrap()],
                min_hosts,
                &[log.to_str().unwrap()],
            ]
            .concat(),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stderr
    };
    // Without min_hosts, a near miss is neither recorded nor pushed.
    let plain = scan(0, &[]);
    assert!(!plain.contains("near miss"), "{plain}");
    let store_a = dirs[0].join("state/logward.db");
    assert!(local(&store_a, "SELECT source FROM near_misses").is_empty());
    let three = ["--fleet-min-hosts", "3"];
    let first = scan(0, &three);
    assert!(
        first.contains("fleet: pushed 0 flagged sources and 1 near miss"),
        "{first}"
    );
    assert!(local(&store_a, "SELECT source FROM flagged").is_empty());
    assert_eq!(
        local(&store_a, "SELECT source FROM near_misses"),
        [format!("{ip}/32")]
    );
    let (path, record) = fake_nft(&dirs[1]);
    let sync = |i: usize| sync_into_nft(&dirs[i], &cfgs[i], (&path, &record), "3");
    let staff = |extra: &[&str]| {
        let run = dirs[1].run(
            &[
                &[
                    "flagged",
                    "--fleet",
                    "-o",
                    "plain",
                    "--config",
                    cfgs[1].to_str().unwrap(),
                ],
                extra,
            ]
            .concat(),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
    };
    scan(2, &three);
    let two = sync(1);
    assert!(two.contains("learnt 0 bans"), "{two}");
    assert!(!record.exists(), "nft ran with two near misses of three");
    assert_eq!(staff(&three), "", "near misses are not flags");
    // The third server's own near miss completes the spread ban.
    let last = scan(1, &three);
    assert!(last.contains("and 1 near miss"), "{last}");
    let third = sync(1);
    assert!(
        third.contains(&format!(
            "fleet: {ip} flagged or nearly flagged (a spread attack) by sensitive-files on \
             web-a,web-b,web-c"
        )),
        "{third}"
    );
    assert!(third.contains("learnt 1 ban"), "{third}");
    let batches = std::fs::read_to_string(&record).unwrap();
    assert!(batches.contains(ip), "{batches}");
    // The others learn it too.
    assert!(sync(0).contains("learnt 1 ban"));
    // Staff see the spread ban with the fleet's min_hosts; with a higher one, nothing.
    assert_eq!(staff(&three).trim(), ip);
    assert_eq!(staff(&["--fleet-min-hosts", "4"]), "");
    // A flag of the same source by one server replaces its near miss, and a later near
    // miss never overwrites that flag.
    let log = dirs[2].write("logs/full.log", attack(ip).as_bytes());
    let run = dirs[2].run(&[
        "scan",
        "--config",
        cfgs[2].to_str().unwrap(),
        "--fleet-min-hosts",
        "3",
        log.to_str().unwrap(),
    ]);
    assert!(
        run.stderr.contains("pushed 1 flagged source"),
        "{}",
        run.stderr
    );
    scan(2, &three);
    let mut host = pg.connect_as("web-c", &passwords[2], &pg.ca).unwrap();
    let near = serde_json::json!([{
        "source": format!("{ip}/32"), "rules": ["sensitive-files"], "partial": true,
        "first_seen": crate::util::unix_now(), "last_seen": crate::util::unix_now(),
        "expires": crate::util::unix_now() + 3600, "events": 3, "times_flagged": 0
    }]);
    host.query_one(
        "SELECT logward.report_flags($1::text::jsonb)",
        &[&near.to_string()],
    )
    .unwrap();
    let mut su = pg.superuser();
    let partial: bool = su
        .query_one(
            "SELECT partial FROM logward.flags WHERE host = 'web-c' AND source = $1::text::cidr",
            &[&format!("{ip}/32")],
        )
        .unwrap()
        .get(0);
    assert!(!partial, "a near miss replaced web-c's flag");
}

/// `watch` reports near misses as they happen: the same weak attack on A and on B, each
/// watched with `min_hosts = 2`, is a spread ban in B's nftables set and in A's log.
#[test]
fn fleet_watch_reports_near_misses_that_make_a_spread_ban() {
    let a_dir = crate::util::Dir::new();
    let b_dir = crate::util::Dir::new();
    let Some(pg) = initialized(
        "fleet_watch_reports_near_misses_that_make_a_spread_ban",
        &a_dir,
    ) else {
        return;
    };
    let with_min_hosts = |dir: &crate::util::Dir, name: &str| {
        let cfg = config_file(&pg, dir, name, &pg.create_login(name, &["logward_host"]));
        append(&cfg, "min_hosts = 2\n");
        cfg
    };
    let cfg_a = with_min_hosts(&a_dir, "web-a");
    let cfg_b = with_min_hosts(&b_dir, "web-b");
    let a_log = a_dir.write("logs/access.log", b"");
    let a = Watch::start(
        &a_dir,
        "a",
        &["--config", cfg_a.to_str().unwrap(), a_log.to_str().unwrap()],
    );
    let b = watch_b(&b_dir, &cfg_b, "b");
    let ip = "203.0.113.9";
    append(&a_log, &weak_attack(ip));
    let pushed = wait_until(10, || {
        central(&pg)
            .iter()
            .any(|row| row.starts_with(&format!("web-a:{ip}/32:")))
    });
    assert!(pushed, "{}", a.log());
    append(&b_dir.join("logs/access.log"), &weak_attack(ip));
    let batches = || std::fs::read_to_string(b_dir.join("nft.batches")).unwrap_or_default();
    assert!(wait_until(10, || batches().contains(ip)), "{}", b.log());
    assert!(
        wait_until(10, || a.log().contains("(a spread attack)")),
        "{}",
        a.log()
    );
    // Neither server flagged it alone.
    for dir in [&a_dir, &b_dir] {
        let store = dir.join("state/logward.db");
        assert!(local(&store, "SELECT source FROM flagged").is_empty());
        assert_eq!(
            local(&store, "SELECT source FROM near_misses"),
            [format!("{ip}/32")]
        );
    }
    let (code, stderr) = b.stop();
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = a.stop();
    assert_eq!(code, 0, "{stderr}");
}

/// `logward fleet sync` in `dir` with `cfg` and `--fleet-min-hosts`, its nftables sets
/// handed to the fake `nft` of `fake` (its PATH and record file, see [`fake_nft`]);
/// returns its stderr.
fn sync_into_nft(
    dir: &crate::util::Dir,
    cfg: &std::path::Path,
    fake: (&str, &std::path::Path),
    min_hosts: &str,
) -> String {
    let mut cmd = dir.command();
    cmd.env("PATH", fake.0)
        .env("NFT_RECORD", fake.1)
        .args(["fleet", "sync", "--config", cfg.to_str().unwrap()])
        .args(["--fleet-min-hosts", min_hosts])
        .args(["--nft-set", "inet:logward:flagged_v4,flagged_v6"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let run = crate::util::run_with_deadline(cmd, 60);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stderr
}

/// `fleet sync` hands learnt bans to `--on-flag` as `watch` does, and never bans what this
/// server allows: the config's `allow` (a monitoring network, an office) and loopback.
#[test]
fn fleet_sync_runs_on_flag_and_keeps_this_servers_allowlist() {
    let dirs: Vec<crate::util::Dir> = (0..2).map(|_| crate::util::Dir::new()).collect();
    let Some(pg) = initialized(
        "fleet_sync_runs_on_flag_and_keeps_this_servers_allowlist",
        &dirs[0],
    ) else {
        return;
    };
    let names = ["web-a", "web-b"];
    let cfgs: Vec<std::path::PathBuf> = names
        .iter()
        .zip(&dirs)
        .map(|(n, d)| config_file(&pg, d, n, &pg.create_login(n, &["logward_host"])))
        .collect();
    // Server B allows the network its monitoring probes come from.
    let b_config = std::fs::read_to_string(&cfgs[1]).unwrap();
    std::fs::write(
        &cfgs[1],
        format!("allow = [\"198.51.100.0/24\"]\n{b_config}"),
    )
    .unwrap();
    for ip in ["203.0.113.8", "198.51.100.9", "127.0.0.5"] {
        let log = dirs[0].write(&format!("logs/{ip}.log"), attack(ip).as_bytes());
        let run = dirs[0].run(&[
            "scan",
            "--no-default-allow",
            "--config",
            cfgs[0].to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert!(
            run.stderr.contains("fleet: pushed 1 flagged source"),
            "{}",
            run.stderr
        );
    }
    let (path, record) = fake_nft(&dirs[1]);
    let said = dirs[1].path().join("on-flag.txt");
    let mut cmd = dirs[1].command();
    cmd.env("PATH", &path)
        .env("NFT_RECORD", &record)
        .args(["fleet", "sync", "--config", cfgs[1].to_str().unwrap()])
        .args(["--nft-set", "inet:logward:flagged_v4,flagged_v6"])
        .arg("--on-flag")
        .arg(format!(
            "echo \"$LOGWARD_SOURCE $LOGWARD_RULES\" >> {}",
            said.display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let run = crate::util::run_with_deadline(cmd, 60);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("learnt 1 ban from other servers"),
        "{}",
        run.stderr
    );
    let actions = std::fs::read_to_string(&said).unwrap();
    assert_eq!(
        actions.trim(),
        "203.0.113.8 sensitive-files",
        "{}",
        run.stderr
    );
    let batches = std::fs::read_to_string(&record).unwrap();
    assert!(batches.contains("203.0.113.8"), "{batches}");
    for allowed in ["198.51.100.9", "127.0.0.5"] {
        assert!(!batches.contains(allowed), "{allowed} banned: {batches}");
    }
}

/// `flagged --fleet`: every server's entries merged per source, with the servers, in the
/// formats of `flagged`; filters by address, network and rule.
#[test]
fn fleet_flagged_lists_the_servers_that_saw_each_source() {
    let a = crate::util::Dir::new();
    let b = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_flagged_lists_the_servers_that_saw_each_source", &a) else {
        return;
    };
    let cfg_a = config_file(
        &pg,
        &a,
        "web-a",
        &pg.create_login("web-a", &["logward_host"]),
    );
    let cfg_b = config_file(
        &pg,
        &b,
        "web-b",
        &pg.create_login("web-b", &["logward_host"]),
    );
    let log_a = a.write("logs/access.log", attack("203.0.113.7").as_bytes());
    append(&log_a, &attack("2001:db8::7"));
    let log_b = b.write("logs/access.log", attack("203.0.113.7").as_bytes());
    for (dir, cfg, log) in [(&a, &cfg_a, &log_a), (&b, &cfg_b, &log_b)] {
        let run = dir.run(&[
            "scan",
            "--config",
            cfg.to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let q = |args: &[&str]| {
        let run = b.run(
            &[
                &["flagged", "--fleet", "--config", cfg_b.to_str().unwrap()],
                args,
            ]
            .concat(),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run
    };
    let json = q(&["203.0.113.7", "-o", "json"]).json();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["source"], "203.0.113.7/32");
    assert_eq!(entries[0]["hosts"], serde_json::json!(["web-a", "web-b"]));
    assert_eq!(entries[0]["events"], 40);
    let table = q(&["203.0.113.0/24"]).stdout;
    assert!(table.starts_with("SOURCE"), "{table}");
    assert!(table.contains("web-a,web-b"), "{table}");
    let all = q(&["-o", "csv"]).stdout;
    assert_eq!(all.lines().count(), 3, "{all}");
    assert!(all.lines().next().unwrap().ends_with(",hosts"), "{all}");
    assert!(
        all.contains(",web-a\n") && all.contains(",web-a web-b\n"),
        "{all}"
    );
    assert!(q(&["--rule", "sqli", "-o", "plain"]).stdout.is_empty());
    let nft = q(&["-o", "nftables"]).stdout;
    assert!(
        nft.contains("203.0.113.7") && nft.contains("2001:db8::/64"),
        "{nft}"
    );
    let refused = b.run(&[
        "flagged",
        "--fleet",
        "--config",
        cfg_b.to_str().unwrap(),
        "--vhost",
        "x",
    ]);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("--vhost works on this server's store only"),
        "{}",
        refused.stderr
    );
}

/// An erasure request across the fleet: the central rows go at once, each server's
/// `fleet sync` erases its logs and store and acknowledges, `fleet erasures` shows who
/// did, and nothing erased is pushed back.
#[test]
fn fleet_erasure_reaches_every_server_and_is_acknowledged() {
    let a = crate::util::Dir::new();
    let b = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_erasure_reaches_every_server_and_is_acknowledged", &a) else {
        return;
    };
    let pw_a = pg.create_login("web-a", &["logward_host"]);
    let cfg_a = config_file(&pg, &a, "web-a", &pw_a);
    let cfg_b = config_file(
        &pg,
        &b,
        "web-b",
        &pg.create_login("web-b", &["logward_host"]),
    );
    let cfg_admin = config_file(
        &pg,
        &a,
        "alice",
        &pg.create_login("alice", &["logward_admin"]),
    );
    let log_a = a.write("logs/access.log.1", attack("203.0.113.7").as_bytes());
    append(&log_a, &attack("198.51.100.1"));
    let log_b = b.write("logs/access.log.1", attack("203.0.113.7").as_bytes());
    for (dir, cfg, log) in [(&a, &cfg_a, &log_a), (&b, &cfg_b, &log_b)] {
        let run = dir.run(&[
            "scan",
            "--config",
            cfg.to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(central(&pg).len(), 3);
    // A server's role may not request an erasure.
    let denied = a.run(&[
        "anonymize",
        "--config",
        cfg_a.to_str().unwrap(),
        "--fleet",
        "--source",
        "203.0.113.7",
        "--ticket",
        "T-42",
    ]);
    assert_eq!(denied.code, 2, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );
    let admin = |args: &[&str]| {
        let run = a.run(&[args, &["--config", cfg_admin.to_str().unwrap()]].concat());
        assert_eq!(run.code, 0, "{}", run.stderr);
        run
    };
    let asked = admin(&[
        "anonymize",
        "--fleet",
        "--source",
        "203.0.113.7",
        "--ticket",
        "T-42",
    ]);
    assert!(
        asked.stderr.contains("erasure request 1 recorded (T-42)"),
        "{}",
        asked.stderr
    );
    assert!(!asked.stderr.contains("203.0.113.7"), "{}", asked.stderr);
    assert_eq!(central(&pg), ["web-a:198.51.100.1/32:20"]);
    let listed = admin(&["fleet", "erasures"]).stdout;
    assert!(
        listed
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("\t-\t-\tweb-a,web-b"),
        "{listed}"
    );
    for (dir, cfg, log) in [(&a, &cfg_a, &log_a), (&b, &cfg_b, &log_b)] {
        let logs = dir.join("logs");
        let run = dir.run(&[
            "fleet",
            "sync",
            "--config",
            cfg.to_str().unwrap(),
            logs.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr.contains("1 erasure request carried out"),
            "{}",
            run.stderr
        );
        let text = String::from_utf8(crate::util::read_plain(log)).unwrap();
        assert!(!text.contains("203.0.113.7"), "{text}");
        assert!(text.lines().count() >= 20);
        let kept = local(&dir.join("state/logward.db"), "SELECT source FROM flagged");
        assert!(!kept.contains(&"203.0.113.7/32".to_string()), "{kept:?}");
    }
    let listed = admin(&["fleet", "erasures"]).stdout;
    let row = listed.lines().nth(1).unwrap();
    assert!(
        row.starts_with("1\tT-42\t") && row.contains("\tweb-a,web-b\t-\t-"),
        "{listed}"
    );
    // Nothing erased comes back: a second sync finds nothing to do, and even a report of
    // the old flag is dropped by the database.
    let run = a.run(&[
        "fleet",
        "sync",
        "--config",
        cfg_a.to_str().unwrap(),
        a.join("logs").to_str().unwrap(),
    ]);
    assert!(
        run.stderr.contains("0 erasure requests carried out"),
        "{}",
        run.stderr
    );
    let mut host = pg.connect_as("web-a", &pw_a, &pg.ca).unwrap();
    let old = serde_json::json!([{
        "source": "203.0.113.7/32", "rules": ["sensitive-files"], "first_seen": 1_700_000_000,
        "last_seen": 1_700_000_000, "expires": 4_000_000_000i64, "events": 20, "times_flagged": 1
    }]);
    host.query_one(
        "SELECT logward.report_flags($1::text::jsonb)",
        &[&old.to_string()],
    )
    .unwrap();
    assert_eq!(central(&pg), ["web-a:198.51.100.1/32:20"]);
    // Pruning: a server may not; within --keep nothing goes; a request not yet carried out
    // by every server stays; the one every server did goes, and is printed.
    let denied = a.run(&[
        "fleet",
        "erasures",
        "--prune",
        "--config",
        cfg_a.to_str().unwrap(),
    ]);
    assert_eq!(denied.code, 2, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );
    admin(&[
        "anonymize",
        "--fleet",
        "--source",
        "198.51.100.1",
        "--ticket",
        "T-43",
    ]);
    let kept = admin(&["fleet", "erasures", "--prune", "--keep", "1h"]);
    assert_eq!(kept.stdout.lines().count(), 1, "{}", kept.stdout);
    assert!(
        kept.stderr.contains("0 erasure requests"),
        "{}",
        kept.stderr
    );
    let pruned = admin(&["fleet", "erasures", "--prune", "--keep", "0s"]);
    let lines: Vec<&str> = pruned.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", pruned.stdout);
    assert!(
        lines[1].starts_with("1\tT-42\t") && lines[1].ends_with("\tweb-a,web-b"),
        "{}",
        pruned.stdout
    );
    assert!(!pruned.stdout.contains("203.0.113.7"), "{}", pruned.stdout);
    let listed = admin(&["fleet", "erasures"]).stdout;
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(rows[0].starts_with("2\tT-43\t"), "{listed}");
}

/// A running `watch` carries out an erasure request in the logs it follows (their rotated
/// files) and its store, and acknowledges it.
#[test]
fn fleet_watch_carries_out_erasure_requests() {
    let dir = crate::util::Dir::new();
    let Some(pg) = initialized("fleet_watch_carries_out_erasure_requests", &dir) else {
        return;
    };
    let cfg = config_file(
        &pg,
        &dir,
        "web-a",
        &pg.create_login("web-a", &["logward_host"]),
    );
    let cfg_admin = config_file(
        &pg,
        &dir,
        "alice",
        &pg.create_login("alice", &["logward_admin"]),
    );
    let rotated = dir.write("logs/access.log.1", attack("203.0.113.7").as_bytes());
    dir.write("logs/access.log", b"");
    let run = dir.run(&[
        "scan",
        "--config",
        cfg.to_str().unwrap(),
        rotated.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let logs = dir.join("logs");
    let watch = Watch::start(
        &dir,
        "watch",
        &["--config", cfg.to_str().unwrap(), logs.to_str().unwrap()],
    );
    // Past the link's first look, so the request's notification is looked at at once.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let run = dir.run(&[
        "anonymize",
        "--config",
        cfg_admin.to_str().unwrap(),
        "--fleet",
        "--source",
        "203.0.113.7",
        "--ticket",
        "T-7",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = || {
        dir.run(&["fleet", "erasures", "--config", cfg_admin.to_str().unwrap()])
            .stdout
    };
    assert!(
        wait_until(40, || listed().contains("\tweb-a\t-\t-")),
        "{}\n{}",
        listed(),
        watch.log()
    );
    let text = String::from_utf8(crate::util::read_plain(&rotated)).unwrap();
    assert!(!text.contains("203.0.113.7"), "{text}");
    assert!(local(&dir.join("state/logward.db"), "SELECT source FROM flagged").is_empty());
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("carrying out erasure request 1"),
        "{stderr}"
    );
}
