//! Reading a line again by its position in a plain file ([`At::order`]): detection copies
//! no line of such a file while it scans, and reads back the few sample lines that flagged
//! sources show. Lines of standard input and of compressed files are never read again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::At;
use crate::format::{Format, Record, TimeCache};
use crate::input::read::MAX_LINE;

/// The files of one pass whose lines can be read again, with the format each was read in.
pub struct ReadLines<'a> {
    /// Per input file: its path and format, when its lines can be read again.
    files: &'a [Option<(PathBuf, Format)>],
    open: HashMap<usize, File>,
    line: Vec<u8>,
}

impl<'a> ReadLines<'a> {
    pub(super) fn new(files: &'a [Option<(PathBuf, Format)>]) -> ReadLines<'a> {
        ReadLines {
            files,
            open: HashMap::new(),
            line: Vec::new(),
        }
    }

    /// The line at `order` (see [`At::order`]) if it can be read, parses in its file's
    /// format and `accept` accepts the record. The file may have changed since the pass:
    /// `accept` is where the caller checks that the line is still the one it saw.
    pub fn line(
        &mut self,
        order: u64,
        accept: impl FnOnce(&Record<'_>) -> bool,
    ) -> Option<Vec<u8>> {
        let (file, offset) = At::split_order(order);
        let (path, format) = self.files.get(file)?.as_ref()?;
        let handle = match self.open.entry(file) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(File::open(path).ok()?),
        };
        handle.seek(SeekFrom::Start(offset)).ok()?;
        self.line.clear();
        BufReader::new(handle.take(MAX_LINE as u64 + 1))
            .read_until(b'\n', &mut self.line)
            .ok()?;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        } else if self.line.len() > MAX_LINE {
            return None;
        }
        let rec = format.parse(&self.line, &mut TimeCache::new()).ok()?;
        accept(&rec).then(|| self.line.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str =
        r#"192.0.2.1 - - [01/Jan/2024:00:00:05 +0000] "GET /a HTTP/1.1" 200 10 "-" "x""#;

    fn order(file: usize, offset: u64) -> u64 {
        At {
            file,
            part: 0,
            line: 1,
            offset,
            readable: true,
        }
        .order()
    }

    #[test]
    fn reads_the_line_at_an_offset_and_checks_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let text = format!("{LINE}\n{}\n", LINE.replace("/a", "/b"));
        std::fs::write(&path, &text).expect("write");
        let combined = Format::preset("combined").expect("preset");
        let files = vec![None, Some((path.clone(), combined))];
        let mut lines = ReadLines::new(&files);
        let second = (LINE.len() + 1) as u64;
        let got = lines.line(order(1, second), |rec| rec.time == Some(1_704_067_205));
        assert_eq!(got.as_deref(), Some(LINE.replace("/a", "/b").as_bytes()));
        assert_eq!(
            lines.line(order(1, 0), |_| true).as_deref(),
            Some(LINE.as_bytes())
        );
        // Refused by the check, in a file that cannot be read again, past the end; mid-line, the
        // record is not the one observed there.
        assert_eq!(lines.line(order(1, 0), |_| false), None);
        assert_eq!(lines.line(order(0, 0), |_| true), None);
        assert_eq!(lines.line(order(1, 10_000), |_| true), None);
        let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(
            lines
                .line(order(1, 0), |rec| rec.source() == Some(ip))
                .is_some()
        );
        assert_eq!(
            lines.line(order(1, 3), |rec| rec.source() == Some(ip)),
            None
        );
        // A final line without a newline is read whole.
        std::fs::write(&path, LINE).expect("write");
        let mut lines = ReadLines::new(&files);
        assert_eq!(
            lines.line(order(1, 0), |_| true).as_deref(),
            Some(LINE.as_bytes())
        );
    }
}
