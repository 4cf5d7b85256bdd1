//! Fuzzes line parsing: arbitrary bytes through every preset and through `detect`, checking the record invariants,
//! and that the parser written out for the CLF-shaped presets reads every line as the step interpreter does, also
//! when the lines before it filled the time cache.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward::format::{Format, PRESETS, Record, TimeCache, detect};

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

/// The format as given and the step interpreter alone give the same answer for `data`.
fn same_as_interpreter(format: &Format, data: &[u8]) {
    let Format::Text { format, .. } = format else {
        return;
    };
    for f in [format.clone(), format.without_client_address()] {
        let slow = f.interpreted();
        let (fast, want) = (
            f.parse(data, &mut TimeCache::new()),
            slow.parse(data, &mut TimeCache::new()),
        );
        match (&fast, &want) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "fast and interpreted records differ"),
            (Err(a), Err(b)) => assert_eq!(a, b, "fast and interpreted errors differ"),
            _ => panic!("fast {fast:?}, interpreted {want:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut cache = TimeCache::new();
    // Every preset `--format` names, the proxies' included, so a new one is fuzzed as well.
    for (name, _) in PRESETS {
        let format = Format::preset(name).expect("preset exists");
        if let Ok(rec) = format.parse(data, &mut cache) {
            check(data, &rec);
        }
        same_as_interpreter(&format, data);
    }

    let lines = data.split(|b| *b == b'\n');
    if let Some(detected) = detect(lines.clone()) {
        assert!(detected.parsed > 0 && detected.parsed <= detected.sampled);
        let mut cache = TimeCache::new();
        let slow = match &detected.format {
            Format::Text { format, .. } => Some(format.interpreted()),
            _ => None,
        };
        for line in lines {
            let got = detected.format.parse(line, &mut cache);
            if let Ok(rec) = &got {
                check(line, rec);
            }
            // Lines read one after another share the time cache; each must still read as
            // the interpreter reads it alone, with a fresh cache.
            if let Some(slow) = &slow {
                let want = slow.parse(line, &mut TimeCache::new());
                match (&got, &want) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "a line read after others differs"),
                    (Err(a), Err(b)) => assert_eq!(a, b, "a line read after others fails differently"),
                    _ => panic!("after others {got:?}, alone {want:?}"),
                }
            }
        }
    }
});
