//! Fuzzes nginx `log_format` and Apache `LogFormat` compilation, and parsing a line with whatever compiles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward::format::{FormatSpec, TimeCache};

fuzz_target!(|data: &[u8]| {
    let (spec, line) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let spec = String::from_utf8_lossy(spec);
    for prefix in ["nginx:", "apache:"] {
        let Ok(FormatSpec::Fixed(format)) = FormatSpec::parse(&format!("{prefix}{spec}")) else {
            continue;
        };
        let mut cache = TimeCache::new();
        if let Ok(rec) = format.parse(line, &mut cache) {
            assert!(line.starts_with(rec.line));
            for field in rec.addr_fields.as_slice() {
                assert!(field.span.start <= field.span.end);
                assert!(field.span.end as usize <= rec.line.len());
            }
        }
    }
});
