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
