//! Reading a line again by its position ([`At::order`]) in a plain or gzip file, with its
//! line number: detection copies no line of such a file while it scans, and reads back the
//! few sample lines that flagged sources show. A file is read again from its start (a gzip
//! file inflated again), once for lines asked for in increasing order, counting lines on
//! the way. Lines of standard input are never read again.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::At;
use crate::format::{Format, Record, TimeCache};
use crate::input::read::{self, Compression, max_line};

/// A file of the pass whose lines can be read again: its path, the format it was read in,
/// and its compression (none or gzip).
pub type Readable = (PathBuf, Format, Compression);

/// The buffer of the inflated bytes of a gzip file read again: skipping to a line inflates
/// in steps of this size.
const INFLATE_BUF: usize = 256 << 10;

/// An open file, positioned where the last line read from it ended: the (inflated) offset
/// there, and the number of the line that starts there.
struct Opened {
    reader: BufReader<Box<dyn Read>>,
    at: u64,
    line: u64,
}

/// The files of one pass whose lines can be read again, with the format each was read in.
pub struct ReadLines<'a> {
    /// Per input file: its path, format and compression, when its lines can be read again.
    files: &'a [Option<Readable>],
    /// Per input file: (offset, line number) of some of its lines, sorted by offset: a
    /// plain file is read from the mark before the line asked for.
    marks: &'a [Vec<(u64, u64)>],
    /// The file read last and its state. One at a time: asked in order, a file is done
    /// with when the next one is asked for, and the buffers of a gzip file are half a
    /// megabyte.
    open: Option<(usize, Opened)>,
    line: Vec<u8>,
    /// The order and number of the line in `line`, when it was read whole: asked again
    /// (for another key of the same line), it is parsed again, not read again.
    last: Option<(u64, u64)>,
}

impl<'a> ReadLines<'a> {
    pub(super) fn new(
        files: &'a [Option<Readable>],
        marks: &'a [Vec<(u64, u64)>],
    ) -> ReadLines<'a> {
        ReadLines {
            files,
            marks,
            open: None,
            line: Vec::new(),
            last: None,
        }
    }

    /// The line at `order` (see [`At::order`]) and its line number, if it can be read,
    /// parses in its file's format and `accept` accepts the record. The file may have
    /// changed since the pass: `accept` is where the caller checks that the line is still
    /// the one it saw. A line before the last one read starts the reading over: ask in
    /// `order`.
    pub fn line(
        &mut self,
        order: u64,
        accept: impl FnOnce(&Record<'_>) -> bool,
    ) -> Option<(Vec<u8>, u64)> {
        let (file, offset) = At::split_order(order);
        let (path, format, compression) = self.files.get(file)?.as_ref()?;
        if let Some((_, number)) = self.last.filter(|&(last, _)| last == order) {
            return accepted(format, &self.line, accept).then(|| (self.line.clone(), number));
        }
        self.last = None;
        // The mark at or before the line, for a plain file: reading from there is shorter
        // than from where the last line ended, when that is before the mark.
        let mark = match compression {
            Compression::Gzip => None,
            _ => self.marks.get(file).and_then(|m| {
                let i = m.partition_point(|&(at, _)| at <= offset);
                i.checked_sub(1).map(|i| m[i])
            }),
        };
        let reusable = matches!(&self.open, Some((open, o))
            if *open == file && o.at <= offset && mark.is_none_or(|(at, _)| at <= o.at));
        if !reusable {
            self.open = None;
            let (at, line) = mark.unwrap_or((0, 1));
            let reader: Box<dyn Read> = match compression {
                Compression::Gzip => Box::new(read::open(path).ok()?.0),
                _ => {
                    let mut f = crate::input::read::open_regular(path).ok()?;
                    f.seek(SeekFrom::Start(at)).ok()?;
                    Box::new(f)
                }
            };
            let opened = Opened {
                reader: BufReader::with_capacity(INFLATE_BUF, reader),
                at,
                line,
            };
            self.open = Some((file, opened));
        }
        let (_, opened) = self.open.as_mut()?;
        self.line.clear();
        let limit = max_line() as u64 + 1;
        let (skipped, newlines) = skip(&mut opened.reader, offset - opened.at);
        opened.at += skipped;
        opened.line += newlines;
        if opened.at != offset {
            return None;
        }
        let number = opened.line;
        let read = opened
            .reader
            .by_ref()
            .take(limit)
            .read_until(b'\n', &mut self.line);
        opened.at += self.line.len() as u64;
        read.ok()?;
        if self.line.last() == Some(&b'\n') {
            opened.line += 1;
            self.line.pop();
        } else if self.line.len() > max_line() {
            // The rest of an over-long line is not where a line starts: read again.
            self.open = None;
            return None;
        }
        self.last = Some((order, number));
        accepted(format, &self.line, accept).then(|| (self.line.clone(), number))
    }
}

/// Whether `line`, read again on its own, parses and `accept` accepts its record. A
/// wrapped format's line goes through a fresh [`crate::format::Unwrapper`]: the last part of a container
/// line that was joined from several is read alone, and is not the record seen in the pass.
fn accepted(format: &Format, line: &[u8], accept: impl FnOnce(&Record<'_>) -> bool) -> bool {
    let mut cache = TimeCache::new();
    let mut rec = Record::default();
    let parsed = match format.unwrapper() {
        None => format.parse_into(line, &mut cache, &mut rec),
        Some(mut unwrapper) => {
            let parsed = unwrapper.parse_into(line, &mut cache, &mut rec);
            return parsed.is_ok() && accept(&rec);
        }
    };
    parsed.is_ok() && accept(&rec)
}

/// Skips up to `n` bytes of `reader` without copying them; returns how many it skipped,
/// fewer at the end of the stream or at an error, and the newlines among them.
fn skip(reader: &mut impl BufRead, mut n: u64) -> (u64, u64) {
    let wanted = n;
    let mut newlines = 0u64;
    while n > 0 {
        let step = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => {
                let step = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                newlines += memchr::memchr_iter(b'\n', &buf[..step]).count() as u64;
                step
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        reader.consume(step);
        n -= step as u64;
    }
    (wanted - n, newlines)
}

/// Detection reads its sample lines back through this, with their line numbers.
impl crate::detect::ReadBack for ReadLines<'_> {
    fn read_back(
        &mut self,
        order: u64,
        same: &dyn Fn(&Record<'_>) -> bool,
    ) -> Option<(Vec<u8>, Option<u64>)> {
        self.line(order, same)
            .map(|(text, line)| (text, Some(line)))
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
        let files = vec![None, Some((path.clone(), combined, Compression::None))];
        let mut lines = ReadLines::new(&files, &[]);
        let second = (LINE.len() + 1) as u64;
        let got = lines.line(order(1, second), |rec| rec.time == Some(1_704_067_205));
        assert_eq!(
            got.as_ref().map(|(l, n)| (&l[..], *n)),
            Some((LINE.replace("/a", "/b").as_bytes(), 2))
        );
        assert_eq!(
            lines.line(order(1, 0), |_| true),
            Some((LINE.as_bytes().to_vec(), 1))
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
        let mut lines = ReadLines::new(&files, &[]);
        assert_eq!(
            lines.line(order(1, 0), |_| true),
            Some((LINE.as_bytes().to_vec(), 1))
        );
    }

    /// `count` lines, each another path, and the offset where each starts.
    fn numbered(count: usize) -> (String, Vec<u64>) {
        let mut text = String::new();
        let mut starts = Vec::new();
        for i in 0..count {
            starts.push(text.len() as u64);
            text.push_str(&LINE.replace("/a", &format!("/{i}")));
            text.push('\n');
        }
        (text, starts)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, bytes).expect("compress");
        enc.finish().expect("compress")
    }

    fn path_of(rec: &Record<'_>) -> String {
        String::from_utf8_lossy(rec.path().unwrap_or_default()).into_owned()
    }

    #[test]
    fn reads_lines_of_a_gzip_file_again_in_any_order() {
        // Two gzip members, as nginx and pigz write, so lines cross a member boundary.
        let (text, starts) = numbered(2000);
        let half = starts[1000] as usize;
        let mut gz = gzip(&text.as_bytes()[..half]);
        gz.extend(gzip(&text.as_bytes()[half..]));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log.1.gz");
        std::fs::write(&path, &gz).expect("write");
        let combined = Format::preset("combined").expect("preset");
        let files = vec![Some((path.clone(), combined, Compression::Gzip))];
        let mut lines = ReadLines::new(&files, &[]);
        // Forward, across the members, then back to earlier lines (inflated again).
        for i in [0usize, 1, 999, 1000, 1500, 1999, 3, 1000, 0] {
            let want = LINE.replace("/a", &format!("/{i}"));
            let got = lines.line(order(0, starts[i]), |rec| path_of(rec) == format!("/{i}"));
            assert_eq!(got, Some((want.into_bytes(), i as u64 + 1)), "line {i}");
        }
        // An offset inside a line gives no record that the check accepts, and the next line
        // is still found; past the end there is nothing.
        let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(
            lines.line(order(0, starts[10] + 5), |rec| rec.source() == Some(ip)),
            None
        );
        assert!(lines.line(order(0, starts[11]), |_| true).is_some());
        assert_eq!(lines.line(order(0, text.len() as u64 + 10), |_| true), None);
    }

    #[test]
    fn lines_asked_from_two_files_in_turn_are_all_read() {
        // One file is open at a time: going back to the other opens it again.
        let (text, starts) = numbered(50);
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("access.log");
        let packed = dir.path().join("access.log.1.gz");
        std::fs::write(&plain, &text).expect("write");
        std::fs::write(&packed, gzip(text.as_bytes())).expect("write");
        let combined = Format::preset("combined").expect("preset");
        let files = vec![
            Some((packed, combined.clone(), Compression::Gzip)),
            Some((plain, combined, Compression::None)),
        ];
        let mut lines = ReadLines::new(&files, &[]);
        for i in [3usize, 40, 7, 49, 0] {
            for file in [0, 1] {
                let got = lines.line(order(file, starts[i]), |rec| {
                    path_of(rec) == format!("/{i}")
                });
                assert!(got.is_some(), "line {i} of file {file}");
            }
        }
    }

    #[test]
    fn a_plain_file_is_read_from_the_mark_before_the_line() {
        let (text, starts) = numbered(3000);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        std::fs::write(&path, &text).expect("write");
        let combined = Format::preset("combined").expect("preset");
        let files = vec![Some((path.clone(), combined, Compression::None))];
        // True marks every 500 lines: every line gets its true number, in any order.
        let marks = vec![
            (0..3000)
                .step_by(500)
                .map(|i| (starts[i], i as u64 + 1))
                .collect(),
        ];
        let mut lines = ReadLines::new(&files, &marks);
        for i in [2999usize, 10, 1499, 1500, 1501, 2000, 0] {
            let got = lines.line(order(0, starts[i]), |rec| path_of(rec) == format!("/{i}"));
            assert_eq!(got.map(|(_, n)| n), Some(i as u64 + 1), "line {i}");
        }
        // Numbers are counted from the mark, not from the start: a mark that says line 1000
        // where line 501 is shows in the number of a line after it.
        let shifted = vec![vec![(starts[500], 1000)]];
        let mut lines = ReadLines::new(&files, &shifted);
        let got = lines.line(order(0, starts[600]), |_| true);
        assert_eq!(got.map(|(_, n)| n), Some(1100));
    }

    #[test]
    fn a_truncated_gzip_file_gives_the_lines_before_the_cut() {
        let (text, starts) = numbered(3000);
        let gz = gzip(text.as_bytes());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log.2.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).expect("write");
        let combined = Format::preset("combined").expect("preset");
        let files = vec![Some((path.clone(), combined, Compression::Gzip))];
        let mut lines = ReadLines::new(&files, &[]);
        assert!(lines.line(order(0, starts[5]), |_| true).is_some());
        assert_eq!(lines.line(order(0, starts[2999]), |_| true), None);
        // The error does not stick: an earlier line is read again from the start.
        assert!(lines.line(order(0, starts[6]), |_| true).is_some());
    }
}
