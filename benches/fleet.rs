//! Fleet figures against a throwaway PostgreSQL server (the fleet tests' helper): push
//! throughput from one server's outbox, ban propagation between two servers through the
//! database (push, NOTIFY, catch-up read; median and worst of 100), and `flagged --fleet`
//! over 1M flags from 100 simulated servers. Each figure's answer is checked, so a fast
//! wrong result cannot pass. Run with `cargo bench --bench fleet --profile dev` (the work is
//! in PostgreSQL; an optimized build changes nothing measurable); results go in
//! benches/RESULTS-fleet.md.

#[allow(dead_code)]
#[path = "../tests/fleet/server.rs"]
mod server;

use std::time::{Duration, Instant};

use logward::fleet::pull::Puller;
use logward::fleet::push::Pusher;
use logward::fleet::query::{FleetFilter, query};
use logward::fleet::{Settings, connect, schema};
use logward::store::{NewFlag, Store};

fn settings(pg: &server::Server, dir: &std::path::Path, user: &str, pw: &str) -> Settings {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join(format!("{user}.pw"));
    std::fs::write(&file, format!("{pw}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    Settings {
        url: pg.url(user),
        password_file: Some(file),
        ca_file: pg.ca.clone(),
        host: user.to_string(),
        min_hosts: None,
    }
}

fn flag(i: u32, now: i64) -> NewFlag {
    NewFlag {
        source: format!("10.{}.{}.{}/32", i >> 16 & 255, i >> 8 & 255, i & 255)
            .parse()
            .unwrap(),
        rules: vec!["sensitive-files".into()],
        rule_events: vec![("sensitive-files".into(), 20)],
        first_seen: now - 60,
        last_seen: now - 30,
        events: 20,
        samples: Vec::new(),
        sites: Vec::new(),
        files: Vec::new(),
        explain: Vec::new(),
        country: None,
        asn: None,
        as_org: None,
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let pg = server::start("fleet bench").expect("PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let mut admin = connect(&settings(&pg, dir.path(), "postgres", &pg.password)).unwrap();
    schema::init(&mut admin).unwrap();
    admin.client.batch_execute(schema::ROLES).unwrap();
    let pw_a = pg.create_login("web-a", &["logward_host"]);
    let pw_b = pg.create_login("web-b", &["logward_host"]);
    let now = logward::timefmt::unix_now();

    // Push throughput: 20000 flags recorded, then the outbox drained.
    let store_a = dir.path().join("a/logward.db");
    std::fs::create_dir_all(store_a.parent().unwrap()).unwrap();
    let mut store = Store::open(&store_a).unwrap();
    let mut pusher = Pusher::new(
        settings(&pg, dir.path(), "web-a", &pw_a),
        &store_a,
        7 * 86_400,
    )
    .unwrap();
    let n = 20_000u32;
    let flags: Vec<NewFlag> = (0..n).map(|i| flag(i, now)).collect();
    store.record_flags(&flags).unwrap();
    assert_eq!(pusher.pending().unwrap(), u64::from(n));
    let t = Instant::now();
    let sent = pusher.drain(now).unwrap();
    let took = t.elapsed();
    assert_eq!(sent, u64::from(n));
    let central: i64 = admin
        .client
        .query_one("SELECT count(*) FROM logward.flags", &[])
        .unwrap()
        .get(0);
    assert_eq!(central, i64::from(n));
    println!(
        "push: {n} flags in {:.2} s, {:.0} flags/s (batches of {})",
        took.as_secs_f64(),
        f64::from(n) / took.as_secs_f64(),
        logward::fleet::push::BATCH
    );

    // Propagation: one flag on A, until B's pull returns it, 100 times.
    let store_b = dir.path().join("b/logward.db");
    std::fs::create_dir_all(store_b.parent().unwrap()).unwrap();
    Store::open(&store_b).unwrap();
    let mut puller = Puller::open(settings(&pg, dir.path(), "web-b", &pw_b), &store_b).unwrap();
    puller.pull().unwrap();
    let mut times = Vec::new();
    for i in 0..100u32 {
        let f = flag(1_000_000 + i, now);
        let want = f.source;
        store.record_flags(&[f]).unwrap();
        let t = Instant::now();
        pusher.drain(now).unwrap();
        loop {
            puller.wait(Duration::from_secs(2));
            if puller.pull().unwrap().iter().any(|b| b.source == want) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "flag {i} never arrived"
            );
        }
        times.push(t.elapsed());
    }
    let worst = *times.iter().max().unwrap();
    println!(
        "propagation A -> B (push, NOTIFY, pull): median {:.1} ms, worst {:.1} ms of 100",
        median(&mut times).as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );

    // 1M flags from 100 servers, then the fleet query by address and by /24.
    admin
        .client
        .batch_execute(
            "INSERT INTO logward.hosts (host) SELECT 'sim-' || h FROM generate_series(1, 100) h;
             INSERT INTO logward.flags (host, source, rules, first_seen, last_seen, events,
                 times_flagged, expires, seq)
             SELECT 'sim-' || (i % 100 + 1),
                    ('100.64.0.0'::inet + (i * 2654435761 % 4194304))::cidr,
                    '{sensitive-files}', now(), now(), 5, 1, now() + interval '4 hours', 0
             FROM generate_series(1, 1000000) i
             ON CONFLICT DO NOTHING;
             ANALYZE logward.flags;",
        )
        .unwrap();
    let rows: i64 = admin
        .client
        .query_one("SELECT count(*) FROM logward.flags", &[])
        .unwrap()
        .get(0);
    println!("fleet table: {rows} flags");
    let one: String = admin
        .client
        .query_one(
            "SELECT host(source) FROM logward.flags WHERE host = 'sim-7' ORDER BY source LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let net24 = format!("{}.0/24", one.rsplit_once('.').unwrap().0);
    for (target, index) in [
        (one.as_str(), true),
        (net24.as_str(), true),
        (one.as_str(), false),
        (net24.as_str(), false),
    ] {
        // Without the index: the planner may not use it (a sequential scan instead).
        let switch = if index { "on" } else { "off" };
        admin
            .client
            .batch_execute(&format!(
                "SET enable_indexscan = {switch}; SET enable_bitmapscan = {switch}"
            ))
            .unwrap();
        let filter = FleetFilter {
            targets: vec![target.parse().unwrap()],
            ..FleetFilter::default()
        };
        let expected: i64 = admin
            .client
            .query_one(
                if target.contains('/') {
                    "SELECT count(DISTINCT source) FROM logward.flags WHERE source <<= $1::text::cidr"
                } else {
                    "SELECT count(DISTINCT source) FROM logward.flags WHERE source >>= $1::text::inet"
                },
                &[&target],
            )
            .unwrap()
            .get(0);
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let found = query(&mut admin, &filter).unwrap();
            times.push(t.elapsed());
            assert_eq!(found.len() as i64, expected);
        }
        assert!(expected > 0);
        println!(
            "flagged --fleet {target} ({} index): {expected} entries, median {:.2} ms of 21",
            if index { "with the" } else { "without the" },
            median(&mut times).as_secs_f64() * 1e3
        );
    }
}
