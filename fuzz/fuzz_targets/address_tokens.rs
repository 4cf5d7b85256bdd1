//! Fuzzes the address tokenizer and line masking: token spans, and that truncating changes only addresses, as both line checks see it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward::anonymize::{
    LineVerifier, Masker, Mode, Prefixes, Select, mask_line, only_addresses_changed,
};
use logward::format::addr::parse_ip;
use logward::format::tokens::tokens;
use logward::format::{Format, TimeCache};

fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|c| **c == b'\n').count()
}

fuzz_target!(|data: &[u8]| {
    let mut prev_end = 0usize;
    for token in tokens(data) {
        let (start, end) = (token.span.start as usize, token.span.end as usize);
        assert!(start >= prev_end, "token {start}..{end} before previous end {prev_end}");
        assert!(start < end && end <= data.len(), "token {start}..{end} outside input");
        assert_eq!(
            parse_ip(&data[start..end]),
            Some(token.addr),
            "token text {:?}",
            String::from_utf8_lossy(&data[start..end])
        );
        prev_end = end;
    }

    let mut masker = Masker::new(&Mode::Truncate(Prefixes::DEFAULT));

    // The whole input as an unparsed line.
    let mut out = Vec::new();
    mask_line(data, None, Select::All, &mut masker, &mut out);
    assert_eq!(newlines(&out), newlines(data));
    assert!(only_addresses_changed(data, &out), "masked: {:?}", String::from_utf8_lossy(&out));

    // Line by line, with the address fields of lines the `main` preset parses.
    let format = Format::preset("main").expect("preset exists");
    let mut cache = TimeCache::new();
    let mut whole = Vec::new();
    let mut verifier = LineVerifier::default();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let rec = format.parse(line, &mut cache).ok();
        let mut out = Vec::new();
        mask_line(
            line,
            rec.as_ref().map(|r| r.addr_fields.as_slice()),
            Select::All,
            &mut masker,
            &mut out,
        );
        assert!(
            only_addresses_changed(line, &out),
            "masked: {:?}",
            String::from_utf8_lossy(&out)
        );
        // The check a rewrite runs, told the masker's replacements, agrees.
        assert!(
            verifier.check(line, &out, &masker.edits),
            "edits rejected: {:?}",
            String::from_utf8_lossy(&out)
        );
        // A change the masker did not make (a letter no address holds, outside every
        // replacement, changed in case) is not accepted on the strength of the replacements:
        // the answer is the word check's.
        let outside = |pos: usize| {
            masker.edits.all().is_some_and(|edits| {
                edits
                    .iter()
                    .all(|e| pos < e.new.start as usize || pos >= e.new.end as usize)
            })
        };
        let tamperable = |&(pos, b): &(usize, &u8)| {
            b.is_ascii_alphabetic() && !b.is_ascii_hexdigit() && outside(pos)
        };
        if let Some((pos, _)) = out.iter().enumerate().find(tamperable) {
            let mut tampered = out.clone();
            tampered[pos] ^= 0x20;
            assert_eq!(
                verifier.check(line, &tampered, &masker.edits),
                only_addresses_changed(line, &tampered),
                "tampered line: {:?}",
                String::from_utf8_lossy(&tampered)
            );
        }
        if i > 0 {
            whole.push(b'\n');
        }
        whole.extend_from_slice(&out);
    }
    assert_eq!(newlines(&whole), newlines(data));
});
