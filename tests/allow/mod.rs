//! `logward allow` end to end: a source flagged from a generated attack log is allowed with
//! a note; its ban ends in every export while its history stays, later scans do not flag it
//! again, the audit log says who allowed it and why, and `allow remove` undoes it.

use logward::generate::{GenConfig, generate};

use crate::util::{Dir, Run, clf, combined, unix_now};

/// A day of generated traffic with its labelled attacks, ending ten minutes ago (so the
/// bans a scan records are active), in `logs/access.log.1`.
fn attack_log(d: &Dir) -> std::path::PathBuf {
    let cfg = GenConfig {
        seed: 7,
        lines: 20_000,
        start: unix_now() - 86_400 + 600,
        span_secs: 86_400 - 1200,
        attacks: true,
        ..GenConfig::default()
    };
    let mut data = Vec::new();
    let truth = generate(&cfg, &mut data).expect("the generator runs");
    assert!(truth.attackers.len() >= 2);
    d.write("logs/access.log.1", &data)
}

/// The flagged entries as `flagged -o json` prints them.
fn flagged(d: &Dir, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["flagged", "-o", "json"];
    all.extend_from_slice(args);
    let r = d.run(&all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json().as_array().expect("an array").clone()
}

/// Whether an nftables export adds `addr` as an element of its own.
fn in_nftables(export: &str, addr: &str) -> bool {
    export.contains(&format!(" {addr} timeout "))
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
}

/// The entries of `allow list -o json`.
fn allow_list(d: &Dir) -> Vec<serde_json::Value> {
    let r = d.run(&["allow", "list", "-o", "json"]);
    ok(&r);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Runs logward as `user` would under sudo.
fn run_as(d: &Dir, user: &str, args: &[&str]) -> Run {
    let out = d
        .command()
        .env("SUDO_USER", user)
        .args(args)
        .output()
        .expect("logward runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn an_allowed_source_is_unbanned_keeps_its_history_and_is_not_flagged_again() {
    let d = Dir::new();
    let log = attack_log(&d);
    let log = log.to_str().unwrap();
    ok(&d.run(&["scan", log]));
    // Two single addresses the scan banned: one to allow, one to keep as a witness.
    let active = flagged(&d, &["--active"]);
    let hosts: Vec<String> = active
        .iter()
        .filter_map(|e| e["source"].as_str()?.strip_suffix("/32").map(String::from))
        .collect();
    assert!(hosts.len() >= 2, "{active:?}");
    let (allowed, witness) = (&hosts[0], &hosts[1]);
    let export = d.run(&["flagged", "-o", "nftables"]).stdout;
    assert!(in_nftables(&export, allowed), "{export}");
    let in_ipset = |d: &Dir| {
        let ipset = d.run(&["flagged", "-o", "ipset"]).stdout;
        ipset.contains(&format!(" {allowed}/32 timeout "))
    };
    let in_crowdsec = |d: &Dir| {
        let crowdsec = d.run(&["flagged", "-o", "crowdsec"]).stdout;
        crowdsec.contains(&format!("\"value\": \"{allowed}\""))
    };
    assert!(in_ipset(&d) && in_crowdsec(&d));
    let before = flagged(&d, &[allowed])[0].clone();

    let r = run_as(
        &d,
        "alice",
        &[
            "allow",
            "add",
            allowed,
            "--note",
            "customer office NAT, ticket 4711",
        ],
    );
    ok(&r);
    assert!(
        r.stdout.contains(&format!("allowed {allowed}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("unbanned {allowed}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("allowed 1 network, unbanned 1 entry"),
        "{}",
        r.stdout
    );

    // No export bans it any more; the witness stays.
    let export = d.run(&["flagged", "-o", "nftables"]).stdout;
    assert!(!in_nftables(&export, allowed), "{export}");
    assert!(in_nftables(&export, witness), "{export}");
    assert!(!in_ipset(&d) && !in_crowdsec(&d));
    // Its history is kept.
    let after = flagged(&d, &[allowed]);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["events"], before["events"]);
    assert_eq!(after[0]["times_flagged"], before["times_flagged"]);
    assert_eq!(after[0]["remaining"], 0);

    // Reading the log again finds the witness again (the same episode, recounted, not
    // added), never the allowed source; nor does a scan that writes no store.
    let witness_before = flagged(&d, &[witness])[0].clone();
    let rescan = d.run(&["scan", "--rescan", "-o", "json", log]);
    ok(&rescan);
    let again = &flagged(&d, &[allowed])[0];
    assert_eq!(again["times_flagged"], before["times_flagged"]);
    assert_eq!(again["remaining"], 0);
    let rescan = rescan.json();
    let rescanned: Vec<&str> = rescan["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    assert!(
        rescanned.contains(&witness.as_str()),
        "the rescan read the log: {rescanned:?}"
    );
    assert!(!rescanned.contains(&allowed.as_str()), "{rescanned:?}");
    // `remaining` counts down with the wall clock between the two reads: a second may
    // pass while the log is read again.
    let mut witness_after = flagged(&d, &[witness])[0].clone();
    let left = |v: &serde_json::Value| v["remaining"].as_i64().unwrap();
    let elapsed = left(&witness_before) - left(&witness_after);
    assert!(
        (0..=5).contains(&elapsed),
        "{witness_before} {witness_after}"
    );
    witness_after["remaining"] = witness_before["remaining"].clone();
    assert_eq!(witness_after, witness_before);
    let r = d.run(&["scan", "--no-store", "-o", "json", log]);
    ok(&r);
    let listed: Vec<String> = r.json()["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["source"].as_str().map(String::from))
        .collect();
    assert!(listed.contains(witness), "{listed:?}");
    assert!(!listed.contains(allowed), "{listed:?}");

    // The list says what, who, when and why.
    let list = allow_list(&d);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["schema_version"], 1);
    assert_eq!(list[0]["network"], format!("{allowed}/32"));
    assert_eq!(list[0]["note"], "customer office NAT, ticket 4711");
    assert_eq!(list[0]["added_by"], "alice");
    let added_at = logward::timefmt::parse_rfc3339(list[0]["added_at"].as_str().unwrap()).unwrap();
    assert!((unix_now() - added_at).abs() < 300, "{added_at}");
    let table = d.run(&["allow", "list"]);
    ok(&table);
    assert!(table.stdout.starts_with("NETWORK"), "{}", table.stdout);
    let row = table.stdout.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with(allowed.as_str()), "{}", table.stdout);
    assert!(row.contains(" alice "), "{row}");
    assert!(row.ends_with("customer office NAT, ticket 4711"), "{row}");

    // The audit log records who and why, and the network only as its keyed hash.
    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert!(!audit.contains(allowed.as_str()), "{audit}");
    let entry: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(entry["command"], "allow add");
    assert_eq!(entry["user"], "alice");
    assert_eq!(entry["note"], "customer office NAT, ticket 4711");
    let verify = d.run(&["audit", "verify", "--source", allowed]);
    ok(&verify);
    assert!(
        verify.stdout.contains("allow add")
            && verify
                .stdout
                .contains("by alice: customer office NAT, ticket 4711"),
        "{}",
        verify.stdout
    );

    // Removing it: gone from the list, in the audit log, and it can be flagged again.
    let r = run_as(&d, "bob", &["allow", "remove", allowed]);
    ok(&r);
    assert!(
        r.stdout.contains(&format!("removed {allowed}\n")),
        "{}",
        r.stdout
    );
    assert!(allow_list(&d).is_empty());
    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&entry["command"], &entry["user"]),
        (&"allow remove".into(), &"bob".into())
    );
    // Reading the old lines again recounts their episode and leaves its ended ban alone;
    // a new attack flags and bans it again.
    let rescan = d.run(&["scan", "--rescan", "-o", "json", log]);
    ok(&rescan);
    assert!(
        rescan.json()["flagged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["source"] == allowed.as_str()),
        "{}",
        rescan.stdout
    );
    let recounted = &flagged(&d, &[allowed])[0];
    assert_eq!(recounted["times_flagged"], before["times_flagged"]);
    assert_eq!(recounted["remaining"], 0);
    let t = unix_now() - 60;
    let probes: String = (0..20)
        .map(|i| {
            combined(
                allowed,
                &clf(t + i / 2),
                &format!("GET /missing-{i} HTTP/1.1"),
                404,
                "curl/8",
            )
        })
        .collect();
    let fresh = d.write("logs/access.log", probes.as_bytes());
    ok(&d.run(&["scan", fresh.to_str().unwrap()]));
    let flagged_again = &flagged(&d, &[allowed])[0];
    assert!(
        flagged_again["remaining"].as_i64().unwrap() > 0,
        "{flagged_again}"
    );
    assert!(
        flagged_again["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "http-probing"),
        "{flagged_again}"
    );
}

#[test]
fn allow_remove_names_an_entry_that_is_not_listed_and_removes_nothing() {
    let d = Dir::new();
    ok(&d.run(&[
        "allow",
        "add",
        "192.0.2.0/24",
        "2001:db8:100::/48",
        "--note",
        "lab",
    ]));
    let r = d.run(&["allow", "remove", "192.0.2.0/24", "192.0.2.7"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("192.0.2.7 is not in the allowlist") && r.stderr.contains("logward.db"),
        "{}",
        r.stderr
    );
    assert_eq!(allow_list(&d).len(), 2, "nothing was removed");
    // Given in another spelling, an entry is still found.
    ok(&d.run(&["allow", "remove", "2001:db8:100:0::1/48"]));
    let list = allow_list(&d);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["network"], "192.0.2.0/24");
    // Without a store, nothing is listed, and nothing can be removed.
    let empty = Dir::new();
    let r = empty.run(&["allow", "list"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "NETWORK  ADDED  BY  NOTE"));
    let r = empty.run(&["allow", "remove", "10.0.0.0/8"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("10.0.0.0/8 is not in the allowlist"),
        "{}",
        r.stderr
    );
    assert!(!empty.join("state/logward.db").exists());
}

#[test]
fn allow_add_needs_a_note_and_networks_it_can_read() {
    let d = Dir::new();
    let r = d.run(&["allow", "add", "192.0.2.7"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--note"), "{}", r.stderr);
    let r = d.run(&["allow", "add", "192.0.2.7", "--note", "  "]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--note: say why"), "{}", r.stderr);
    let r = d.run(&["allow", "add", "192.0.2.7", "example.org", "--note", "x"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("\"example.org\" is not an address"),
        "{}",
        r.stderr
    );
    assert!(allow_list(&d).is_empty(), "a bad network adds none");
    // The store of the config file, and an address for its /128.
    let cfg = d.write(
        "logward.toml",
        format!("store = \"{}\"\n", d.join("elsewhere/l.db").display()).as_bytes(),
    );
    let cfg = cfg.to_str().unwrap();
    let mut cmd = d.command();
    cmd.env_remove("LOGWARD_STORE").args([
        "--config",
        cfg,
        "allow",
        "add",
        "2001:db8::7",
        "--note",
        "x",
    ]);
    assert!(cmd.output().unwrap().status.success());
    let mut cmd = d.command();
    cmd.env_remove("LOGWARD_STORE")
        .args(["--config", cfg, "allow", "list", "-o", "json"]);
    let out = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    assert!(out.contains("\"network\":\"2001:db8::7/128\""), "{out}");
    assert!(allow_list(&d).is_empty(), "the default store is untouched");
}

/// A network added covers entries inside it and entries that contain it: an IPv6 /64
/// flagged for one host's attack stops being banned when that host is allowed.
#[test]
fn allowing_a_host_ends_the_ban_of_the_64_that_holds_it() {
    let d = Dir::new();
    let t = unix_now() - 120;
    let stamp = logward::timefmt::rfc3339(t);
    // dd/Mon/yyyy:HH:MM:SS +0000 from the RFC 3339 stamp.
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let clf = format!(
        "{}/{}/{}:{} +0000",
        &stamp[8..10],
        months[stamp[5..7].parse::<usize>().unwrap() - 1],
        &stamp[0..4],
        &stamp[11..19]
    );
    let probe = |ip: &str| {
        format!("{ip} - - [{clf}] \"GET /.git/config HTTP/1.1\" 404 1 \"-\" \"x\"\n").repeat(12)
    };
    d.write(
        "access.log",
        (probe("2001:db8:85a3::7") + &probe("198.51.100.8")).as_bytes(),
    );
    ok(&d.run(&["scan", "access.log"]));
    let active = d.run(&["flagged", "--active", "-o", "plain"]).stdout;
    assert_eq!(active, "198.51.100.8\n2001:db8:85a3::/64\n");
    let r = d.run(&["allow", "add", "2001:db8:85a3::7", "--note", "monitoring"]);
    ok(&r);
    assert!(
        r.stdout.contains("unbanned 2001:db8:85a3::/64\n"),
        "{}",
        r.stdout
    );
    let active = d.run(&["flagged", "--active", "-o", "plain"]).stdout;
    assert_eq!(active, "198.51.100.8\n");
}
