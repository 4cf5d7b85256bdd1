//! Fuzzes line parsing: arbitrary bytes through every preset and through `detect`, checking the record invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward::format::{Format, Record, TimeCache, detect};

const PRESETS: &[&str] = &["combined", "common", "vcombined", "vcommon", "main", "json"];

/// What must hold for any record parsed from `input`.
fn check(input: &[u8], rec: &Record) {
    assert!(
        rec.line.len() <= input.len()
            && rec.line.as_ptr() == input.as_ptr()
            && input.starts_with(rec.line),
        "record line is not a prefix of the input"
    );
    let mut prev_end = 0u32;
    for field in rec.addr_fields.as_slice() {
        let span = field.span;
        assert!(span.start <= span.end, "inverted span {span:?}");
        assert!(
            span.end as usize <= rec.line.len(),
            "span {span:?} past the line ({} bytes)",
            rec.line.len()
        );
        assert!(
            span.start >= prev_end,
            "span {span:?} overlaps or precedes the previous one (ends at {prev_end})"
        );
        prev_end = span.end;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut cache = TimeCache::new();
    for name in PRESETS {
        let format = Format::preset(name).expect("preset exists");
        if let Ok(rec) = format.parse(data, &mut cache) {
            check(data, &rec);
        }
    }

    let lines = data.split(|b| *b == b'\n');
    if let Some(detected) = detect(lines.clone()) {
        assert!(detected.parsed > 0 && detected.parsed <= detected.sampled);
        let mut cache = TimeCache::new();
        for line in lines {
            if let Ok(rec) = detected.format.parse(line, &mut cache) {
                check(line, &rec);
            }
        }
    }
});
