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
