//! Export formats for flagged entries: a human table, JSON, CSV, a plain list, and files
//! for nftables, ipset and CrowdSec. Each writes to any `Write`; none queries the store.
//!
//! Firewall formats only carry entries still banned at `now`, each with its remaining
//! time, and are safe to apply again: they declare what they use, then replace its content.

use std::io::{self, Write};

use ipnet::IpNet;
use serde_json::json;

use super::FlaggedEntry;
use super::net;
use crate::timefmt::{format_duration, rfc3339};

/// Aligned columns for a terminal. Text fields are already printable ASCII or come from
/// GeoIP; `-` marks an absent value.
pub fn table(out: &mut dyn Write, entries: &[FlaggedEntry], now: i64) -> io::Result<()> {
    let header = [
        "SOURCE",
        "RULES",
        "EVENTS",
        "FIRST SEEN",
        "LAST SEEN",
        "EXPIRES",
        "SITE",
        "COUNTRY",
        "ASN",
    ];
    let rows: Vec<[String; 9]> = entries
        .iter()
        .map(|e| {
            let left = e.remaining(now);
            [
                net::display(e.source),
                e.rules.join(","),
                e.events.to_string(),
                rfc3339(e.first_seen),
                rfc3339(e.last_seen),
                if left > 0 {
                    format!("in {}", format_duration(left))
                } else {
                    "expired".to_string()
                },
                crate::escape::text(e.vhost.as_deref().unwrap_or("-").as_bytes()),
                // GeoIP text is not attacker-controlled, but a corrupt database could
                // still hold control characters.
                crate::escape::text(e.country.as_deref().unwrap_or("-").as_bytes()),
                e.asn.map_or("-".to_string(), |a| a.to_string()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    for r in &rows {
        line(out, &r.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// The `schema_version` of every JSON object logward prints: it changes when a field
/// changes meaning or goes away, not when one is added.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// One entry as a JSON object; times are RFC 3339 UTC, `remaining` is seconds at `now`.
/// docs/flagged.md, "JSON fields", documents every field.
pub fn entry_json(e: &FlaggedEntry, now: i64) -> serde_json::Value {
    let counts = |c: &[(String, u64)], key: &str| -> Vec<serde_json::Value> {
        c.iter()
            .map(|(name, n)| json!({ key: name, "events": n }))
            .collect()
    };
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "source": e.source.to_string(),
        "rules": e.rules,
        "rule_events": e.rule_events.iter().map(|(r, n)| (r.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "events": e.events,
        "first_seen": rfc3339(e.first_seen),
        "last_seen": rfc3339(e.last_seen),
        "expires": rfc3339(e.expires),
        "remaining": e.remaining(now).max(0),
        "times_flagged": e.times_flagged,
        "vhost": e.vhost,
        "sites": counts(&e.sites, "site"),
        "files": counts(&e.files, "file"),
        "country": e.country,
        "asn": e.asn,
        "as_org": e.as_org,
        "samples": e.samples,
    })
}

/// A JSON array of [`entry_json`] objects.
pub fn json(out: &mut dyn Write, entries: &[FlaggedEntry], now: i64) -> io::Result<()> {
    let v: Vec<_> = entries.iter().map(|e| entry_json(e, now)).collect();
    serde_json::to_writer_pretty(&mut *out, &v)?;
    writeln!(out)
}

/// One [`entry_json`] object per line, for Elasticsearch, Splunk or `jq -c`.
pub fn ndjson(out: &mut dyn Write, entries: &[FlaggedEntry], now: i64) -> io::Result<()> {
    for e in entries {
        serde_json::to_writer(&mut *out, &entry_json(e, now))?;
        writeln!(out)?;
    }
    Ok(())
}

/// CSV with a header (RFC 4180 quoting: fields with `,`, `"` or line breaks are quoted).
pub fn csv(out: &mut dyn Write, entries: &[FlaggedEntry], _now: i64) -> io::Result<()> {
    writeln!(
        out,
        "source,rules,events,first_seen,last_seen,expires,times_flagged,vhost,country,asn,as_org"
    )?;
    for e in entries {
        csv_record(out, &csv_fields(e, true))?;
    }
    Ok(())
}

/// An entry's CSV fields, in the order of [`csv`]'s header; without `vhost`, the site
/// column is left out (the fleet's export has none: it adds the servers instead).
pub fn csv_fields(e: &FlaggedEntry, vhost: bool) -> Vec<String> {
    let mut fields = vec![
        e.source.to_string(),
        e.rules.join(" "),
        e.events.to_string(),
        rfc3339(e.first_seen),
        rfc3339(e.last_seen),
        rfc3339(e.expires),
        e.times_flagged.to_string(),
    ];
    if vhost {
        fields.push(e.vhost.clone().unwrap_or_default());
    }
    fields.extend([
        e.country.clone().unwrap_or_default(),
        e.asn.map(|a| a.to_string()).unwrap_or_default(),
        e.as_org.clone().unwrap_or_default(),
    ]);
    fields
}

/// Writes one CSV record: `fields`, each quoted by [`csv_field`], then a line break.
pub fn csv_record(out: &mut dyn Write, fields: &[String]) -> io::Result<()> {
    let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    writeln!(out, "{}", quoted.join(","))
}

/// One CSV field, quoted as RFC 4180 says, and defused for spreadsheets.
pub fn csv_field(f: &str) -> String {
    // A leading = + - @ would make a spreadsheet run a formula from attacker text.
    let formula = f.starts_with(['=', '+', '-', '@']);
    if formula || f.contains([',', '"', '\n', '\r']) {
        let body = f.replace('"', "\"\"");
        if formula {
            format!("\"'{body}\"")
        } else {
            format!("\"{body}\"")
        }
    } else {
        f.to_string()
    }
}

/// One source per line: the address alone for a single host, CIDR for a prefix.
pub fn plain(out: &mut dyn Write, entries: &[FlaggedEntry], _now: i64) -> io::Result<()> {
    for e in entries {
        writeln!(out, "{}", net::display(e.source))?;
    }
    Ok(())
}

/// Entries still banned at `now`, as (source, seconds left).
fn active(entries: &[FlaggedEntry], now: i64) -> impl Iterator<Item = (IpNet, i64)> + '_ {
    entries
        .iter()
        .map(move |e| (e.source, e.remaining(now)))
        .filter(|&(_, left)| left > 0)
}

/// A file for `nft -f` (<https://wiki.nftables.org/wiki-nftables/index.php/Sets>).
/// Declaring the table and sets is a no-op when they exist, and `flush set` drops what a
/// previous export added, so applying it again replaces the content. Interval sets refuse
/// overlapping elements, so an entry inside another exported entry is left out.
pub fn nftables(out: &mut dyn Write, entries: &[FlaggedEntry], now: i64) -> io::Result<()> {
    writeln!(out, "#!/usr/sbin/nft -f")?;
    writeln!(out, "# logward flagged sources at {}", rfc3339(now))?;
    writeln!(out, "table inet logward {{")?;
    for (name, ty) in [("flagged_v4", "ipv4_addr"), ("flagged_v6", "ipv6_addr")] {
        writeln!(out, "\tset {name} {{")?;
        writeln!(out, "\t\ttype {ty}")?;
        writeln!(out, "\t\tflags interval, timeout")?;
        writeln!(out, "\t}}")?;
    }
    writeln!(out, "}}")?;
    writeln!(out, "flush set inet logward flagged_v4")?;
    writeln!(out, "flush set inet logward flagged_v6")?;
    let mut list: Vec<(IpNet, i64)> = active(entries, now).collect();
    // Widest first at each start address, so a covering entry precedes what it covers.
    list.sort_by(|a, b| {
        let (alo, ahi) = net::bounds(a.0);
        let (blo, bhi) = net::bounds(b.0);
        (net::family(a.0), alo, std::cmp::Reverse(ahi)).cmp(&(
            net::family(b.0),
            blo,
            std::cmp::Reverse(bhi),
        ))
    });
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut cover: Option<(i64, [u8; 16])> = None;
    for (src, left) in list {
        let fam = net::family(src);
        let (_, hi) = net::bounds(src);
        if matches!(cover, Some((f, chi)) if f == fam && hi <= chi) {
            continue;
        }
        cover = Some((fam, hi));
        let el = format!("{} timeout {}", net::display(src), format_duration(left));
        if fam == 4 { &mut v4 } else { &mut v6 }.push(el);
    }
    for (name, els) in [("flagged_v4", v4), ("flagged_v6", v6)] {
        if !els.is_empty() {
            writeln!(
                out,
                "add element inet logward {name} {{ {} }}",
                els.join(", ")
            )?;
        }
    }
    Ok(())
}

/// A file for `ipset restore` (<https://ipset.netfilter.org/ipset.man.html>): creates the
/// sets if missing (`timeout 0` enables per-entry timeouts), flushes them so entries
/// removed from the store (erasure, prune) disappear, then adds each active entry with its
/// remaining seconds. `hash:net` cannot hold a /0, so such an entry is left out.
pub fn ipset(out: &mut dyn Write, entries: &[FlaggedEntry], now: i64) -> io::Result<()> {
    writeln!(
        out,
        "create logward-v4 hash:net family inet timeout 0 -exist"
    )?;
    writeln!(
        out,
        "create logward-v6 hash:net family inet6 timeout 0 -exist"
    )?;
    writeln!(out, "flush logward-v4")?;
    writeln!(out, "flush logward-v6")?;
    for (src, left) in active(entries, now) {
        if src.prefix_len() == 0 {
            continue;
        }
        let set = if net::family(src) == 4 {
            "logward-v4"
        } else {
            "logward-v6"
        };
        writeln!(out, "add {set} {src} timeout {left} -exist")?;
    }
    Ok(())
}

/// A duration as Go's `time.ParseDuration` reads it, which some `cscli` versions use:
/// hours, minutes and seconds only, never days (`25h10m`, not `1d1h10m`).
fn go_duration(secs: i64) -> String {
    crate::timefmt::format_units(secs, &[("h", 3600), ("m", 60), ("s", 1)])
}

/// A JSON array for `cscli decisions import -i FILE.json`
/// (<https://docs.crowdsec.net/docs/cscli/cscli_decisions_import/>): one ban decision per
/// active entry, `Ip` scope for a single address and `Range` for a prefix.
pub fn crowdsec(out: &mut dyn Write, entries: &[FlaggedEntry], now: i64) -> io::Result<()> {
    let v: Vec<_> = entries
        .iter()
        .filter(|e| e.remaining(now) > 0)
        .map(|e| {
            let single = e.source.prefix_len() == e.source.max_prefix_len();
            json!({
                "value": net::display(e.source),
                "duration": go_duration(e.remaining(now)),
                "reason": format!("logward: {}", e.rules.join(",")),
                "scope": if single { "Ip" } else { "Range" },
                "type": "ban",
                "origin": "logward",
            })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &v)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_322_356;

    fn entry(src: &str, rules: &[&str], expires: i64) -> FlaggedEntry {
        FlaggedEntry {
            source: src.parse().unwrap(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            first_seen: NOW - 7200,
            last_seen: NOW - 3600,
            events: 42,
            rule_events: rules.iter().map(|r| (r.to_string(), 42)).collect(),
            sites: vec![("shop,example".into(), 42)],
            files: Vec::new(),
            samples: vec![crate::store::Sample::new(None, b"GET /.env")],
            vhost: Some("shop,example".into()),
            country: Some("GB".into()),
            asn: Some(64500),
            as_org: Some("Example \"Net\"".into()),
            times_flagged: 1,
            expires,
        }
    }

    fn sample() -> Vec<FlaggedEntry> {
        vec![
            entry("192.0.2.7/32", &["scanner"], NOW + 14_352),
            entry("198.51.100.0/24", &["bruteforce", "scanner"], NOW + 3600),
            entry("203.0.113.5/32", &["scanner"], NOW - 1),
            entry("2001:db8:85a3::/64", &["bad_agent"], NOW + 86_400),
            entry("2001:db8:85a3::7/128", &["scanner"], NOW + 60),
        ]
    }

    fn render(f: fn(&mut dyn Write, &[FlaggedEntry], i64) -> io::Result<()>) -> String {
        let mut v = Vec::new();
        f(&mut v, &sample(), NOW).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn ipset_exact() {
        assert_eq!(
            render(ipset),
            "create logward-v4 hash:net family inet timeout 0 -exist\n\
             create logward-v6 hash:net family inet6 timeout 0 -exist\n\
             flush logward-v4\n\
             flush logward-v6\n\
             add logward-v4 192.0.2.7/32 timeout 14352 -exist\n\
             add logward-v4 198.51.100.0/24 timeout 3600 -exist\n\
             add logward-v6 2001:db8:85a3::/64 timeout 86400 -exist\n\
             add logward-v6 2001:db8:85a3::7/128 timeout 60 -exist\n"
        );
    }

    /// Regression: `1d1h10m23s` fails in cscli versions that parse durations with Go's
    /// `time.ParseDuration`, which knows no days.
    #[test]
    fn crowdsec_durations_have_no_days() {
        assert_eq!(go_duration(90_623), "25h10m23s");
        assert_eq!(go_duration(90_600), "25h10m");
        assert_eq!(go_duration(7 * 86_400), "168h");
        assert_eq!(go_duration(59), "59s");
        assert_eq!(go_duration(0), "0s");
    }

    #[test]
    fn crowdsec_exact() {
        let got: serde_json::Value = serde_json::from_str(&render(crowdsec)).unwrap();
        let want = json!([
            {"value": "192.0.2.7", "duration": "3h59m12s", "reason": "logward: scanner",
             "scope": "Ip", "type": "ban", "origin": "logward"},
            {"value": "198.51.100.0/24", "duration": "1h", "reason": "logward: bruteforce,scanner",
             "scope": "Range", "type": "ban", "origin": "logward"},
            {"value": "2001:db8:85a3::/64", "duration": "24h", "reason": "logward: bad_agent",
             "scope": "Range", "type": "ban", "origin": "logward"},
            {"value": "2001:db8:85a3::7", "duration": "1m", "reason": "logward: scanner",
             "scope": "Ip", "type": "ban", "origin": "logward"},
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn nftables_content() {
        let s = render(nftables);
        assert!(s.contains("table inet logward {\n\tset flagged_v4 {\n\t\ttype ipv4_addr\n"));
        assert!(s.contains("flush set inet logward flagged_v6\n"));
        assert!(s.ends_with(
            "add element inet logward flagged_v4 { 192.0.2.7 timeout 3h59m12s, \
             198.51.100.0/24 timeout 1h }\n\
             add element inet logward flagged_v6 { 2001:db8:85a3::/64 timeout 1d }\n"
        ));
        assert!(!s.contains("203.0.113.5"), "expired entries are left out");
        assert!(!s.contains("::7"), "covered entries are left out");
    }

    /// Checks the nftables file with `nft -c -f` where nft exists and may run.
    #[test]
    fn nftables_accepted_by_nft() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("logward.nft");
        std::fs::write(&file, render(nftables)).unwrap();
        let nft = crate::child::spawn_child(
            std::process::Command::new("nft")
                .arg("-c")
                .arg("-f")
                .arg(&file)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
        .and_then(|child| child.wait_with_output());
        let out = match nft {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipping: nft not runnable: {e}");
                return;
            }
        };
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success()
            && (err.contains("Operation not permitted") || err.contains("Permission denied"))
        {
            eprintln!("skipping: nft -c needs privileges here: {err}");
            return;
        }
        assert!(out.status.success(), "nft -c rejected the file: {err}");
    }

    #[test]
    fn table_aligned() {
        let s = render(table);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 6);
        // The widest source, 2001:db8:85a3::/64, sets the first column: 18 + 2 spaces.
        assert!(lines[0].starts_with("SOURCE              RULES"), "{s}");
        assert!(lines[4].starts_with("2001:db8:85a3::/64  bad_agent"), "{s}");
        let col = lines[0].find("EVENTS").unwrap();
        assert!(lines.iter().skip(1).all(|l| l[col..].starts_with("42")));
        assert!(lines[1].contains("in 3h59m12s"));
        assert!(lines[3].contains("expired"));
    }

    #[test]
    fn csv_quoting() {
        let s = render(csv);
        let mut lines = s.lines();
        assert_eq!(
            lines.next().unwrap(),
            "source,rules,events,first_seen,last_seen,expires,times_flagged,vhost,country,asn,as_org"
        );
        assert_eq!(
            lines.next().unwrap(),
            "192.0.2.7/32,scanner,42,2026-11-22T02:39:16Z,2026-11-22T03:39:16Z,\
             2026-11-22T08:38:28Z,1,\"shop,example\",GB,64500,\"Example \"\"Net\"\"\""
        );
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }

    #[test]
    fn json_and_plain() {
        let v: serde_json::Value = serde_json::from_str(&render(json)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 5);
        assert_eq!(v[0]["source"], "192.0.2.7/32");
        assert_eq!(v[0]["last_seen"], "2026-11-22T03:39:16Z");
        assert_eq!(v[0]["remaining"], 14_352);
        assert_eq!(v[2]["remaining"], 0);
        assert_eq!(
            render(plain),
            "192.0.2.7\n198.51.100.0/24\n203.0.113.5\n2001:db8:85a3::/64\n2001:db8:85a3::7\n"
        );
    }
}
