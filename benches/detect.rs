//! Detection cost per line: all built-in rules over a synthetic day of mostly ordinary
//! traffic with five attackers mixed in, and over a log from the generator with its labelled
//! attackers. The flagged sources are asserted inside the measured loop, so a fast wrong
//! answer cannot pass for a win.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::IpNet;
use logward::detect::{Allowlist, Collector, CompiledRules, builtin_rules};
use logward::format::{Format, Record, TimeCache};
use logward::generate::{GenConfig, GroundTruth, generate};

const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

struct Line {
    line: String,
    client: IpAddr,
    time: i64,
    method: &'static str,
    target: String,
    status: u16,
    ua: &'static str,
}

fn line(
    client: IpAddr,
    time: i64,
    method: &'static str,
    target: String,
    status: u16,
    ua: &'static str,
) -> Line {
    Line {
        line: format!(
            "{client} - - [t] \"{method} {target} HTTP/1.1\" {status} 512 \"-\" \"{ua}\""
        ),
        client,
        time,
        method,
        target,
        status,
        ua,
    }
}

/// 200k ordinary requests from 2000 clients, each client at most once every 10 s (no rule
/// can flag them), and five attackers, one per kind of rule.
fn synthetic() -> (Vec<Line>, usize) {
    let start = 1_700_000_000i64;
    let mut lines = Vec::new();
    let pages = [
        "/",
        "/index.html",
        "/blog/post-1",
        "/shop?item=42&color=blue",
        "/assets/app.css",
        "/assets/app.js",
        "/img/logo.png",
        "/about",
        "/contact",
        "/api/v1/items?page=3",
    ];
    for i in 0..200_000u32 {
        let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i % 2000));
        let time = start + i64::from(i / 200);
        let target = pages[(i as usize / 7) % pages.len()].to_string();
        let status = if i % 97 == 0 { 404 } else { 200 };
        let method = if i % 13 == 0 { "POST" } else { "GET" };
        lines.push(line(client, time, method, target, status, BROWSER));
    }
    let t = start + 100;
    let at = |n: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n));
    for k in 0..5 {
        lines.push(line(
            at(1),
            t + k,
            "GET",
            "/".into(),
            200,
            "sqlmap/1.7.2#stable (https://sqlmap.org)",
        ));
        lines.push(line(
            at(2),
            t,
            "GET",
            format!("/backup{k}.sql"),
            404,
            "curl/8.0",
        ));
    }
    for k in 0..12 {
        lines.push(line(
            at(3),
            t,
            "GET",
            format!("/item?id=1+union+select+{k}"),
            200,
            BROWSER,
        ));
    }
    for _ in 0..400 {
        lines.push(line(at(4), t + 1, "GET", "/".into(), 200, BROWSER));
    }
    let v6: IpAddr = "2001:db8:4:5::77".parse().expect("bench address");
    for k in 0..15 {
        lines.push(line(v6, t + 2, "GET", format!("/probe/{k}"), 404, BROWSER));
    }
    // Keep attackers interleaved in time with ordinary traffic.
    lines.sort_by_key(|l| l.time);
    (lines, 5)
}

fn records(lines: &[Line]) -> Vec<Record<'_>> {
    lines
        .iter()
        .map(|l| Record {
            line: l.line.as_bytes(),
            client: Some(l.client),
            time: Some(l.time),
            method: Some(l.method.as_bytes()),
            target: Some(l.target.as_bytes()),
            protocol: Some(b"HTTP/1.1"),
            status: Some(l.status),
            user_agent: Some(l.ua.as_bytes()),
            ..Record::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (lines, expected) = synthetic();
    let recs = records(&lines);
    let rules = Arc::new(CompiledRules::new(&builtin_rules()).expect("built-in rules compile"));
    let allow = Allowlist::new(vec![]);
    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Elements(recs.len() as u64));
    group.bench_function("builtin-rules", |b| {
        b.iter(|| {
            let mut collector = Collector::new(Arc::clone(&rules));
            for (i, rec) in recs.iter().enumerate() {
                collector.observe(black_box(rec), i as u64);
            }
            let flagged = collector.finish(&allow).expect("finish");
            assert_eq!(flagged.len(), expected, "{flagged:?}");
            flagged
        })
    });
    group.finish();
}

/// The net a ground-truth source is flagged as: an address as itself (IPv4) or its /64
/// (IPv6, the built-in grouping); a prefix as written.
fn truth_net(source: &str) -> IpNet {
    match source.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => {
            let addr: IpAddr = source.parse().expect("ground-truth address");
            let prefix = if addr.is_ipv4() { 32 } else { 64 };
            IpNet::new(addr, prefix).expect("prefix fits").trunc()
        }
    }
}

/// The sources a run over the generated log must flag, and those it must not.
fn expected(truth: &GroundTruth) -> BTreeSet<IpNet> {
    truth
        .attackers
        .iter()
        .map(|a| truth_net(&a.source))
        .collect()
}

/// 200k generated combined lines with the generator's labelled attackers, parsed by
/// logward's parser: the realistic mix of pages, assets, user agents and clients.
fn generated(c: &mut Criterion) {
    let cfg = GenConfig {
        seed: 1,
        lines: 200_000,
        attacks: true,
        ..GenConfig::default()
    };
    let mut data = Vec::new();
    let truth = generate(&cfg, &mut data).expect("generate");
    let format = Format::preset("combined").expect("preset");
    let mut cache = TimeCache::new();
    let recs: Vec<Record<'_>> = data
        .split(|b| *b == b'\n')
        .filter_map(|l| format.parse(l, &mut cache).ok())
        .collect();
    let want = expected(&truth);
    let rules = Arc::new(CompiledRules::new(&builtin_rules()).expect("built-in rules compile"));
    let allow = Allowlist::new(vec![]);
    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Elements(recs.len() as u64));
    group.bench_function("generated-200k", |b| {
        b.iter(|| {
            let mut collector = Collector::new(Arc::clone(&rules));
            for (i, rec) in recs.iter().enumerate() {
                collector.observe(black_box(rec), i as u64);
            }
            let flagged = collector.finish(&allow).expect("finish");
            let got: BTreeSet<IpNet> = flagged.iter().map(|f| f.source).collect();
            assert_eq!(got, want, "{flagged:?}");
            flagged
        })
    });
    group.finish();
}

criterion_group!(benches, bench, generated);
criterion_main!(benches);
