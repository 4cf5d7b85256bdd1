//! Criterion benchmarks of the hot path: parsing generated combined lines, and the whole
//! single-threaded scan pass over a plain and a gzip file. Each measured loop asserts the
//! expected counts, so a fast wrong answer cannot look like a win.

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logward::format::{Format, TimeCache};
use logward::generate::{GenConfig, generate};
use logward::input::Source;
use logward::scan::{self, Options, Progress};

const LINES: u64 = 200_000;

fn generated() -> (Vec<u8>, u64) {
    let cfg = GenConfig {
        seed: 7,
        lines: LINES,
        attacks: true,
        ..GenConfig::default()
    };
    let mut out = Vec::new();
    let truth = generate(&cfg, &mut out).expect("generate");
    // What the parser must find, from the generator's ground truth rather than from the
    // parser being measured.
    (out, truth.lines - truth.unreadable)
}

fn parse_lines(c: &mut Criterion) {
    let (data, parsed) = generated();
    let format = Format::preset("combined").unwrap();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("combined", |b| {
        b.iter(|| {
            let mut cache = TimeCache::new();
            let mut ok = 0u64;
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &data).chain(std::iter::once(data.len())) {
                let line = &data[start..end];
                start = end + 1;
                if let Ok(rec) = format.parse(line, &mut cache) {
                    ok += u64::from(rec.client.is_some() || rec.client_text.is_some());
                }
            }
            assert_eq!(ok, parsed);
        })
    });
    group.finish();
}

fn scan_files(c: &mut Criterion) {
    let (data, parsed) = generated();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("access.log");
    std::fs::write(&plain, &data).unwrap();
    let gz = dir.path().join("access.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&data).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("scan-1-thread");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    for (name, path) in [("plain", plain), ("gzip", gz)] {
        let sources = vec![Source::File(path)];
        group.bench_function(name, |b| {
            b.iter(|| {
                let report = pool.install(|| {
                    scan::run(&sources, &Options::default(), || (), &Progress::default())
                });
                assert_eq!(report.parsed(), parsed);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_lines, scan_files);
criterion_main!(benches);
