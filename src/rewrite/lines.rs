//! `LineReader`: splits any byte stream into lines with one reusable buffer.
//!
//! It owns only the splitting: a line is the bytes before `\n` (a `\r` stays part of the
//! line) plus whether that `\n` was there, so the last line of a file without a final
//! newline is reproduced exactly. It does not know about files, gzip or errors' paths.
//! Modelled on ripgrep's line buffer: move the unread tail to the front, read more, find
//! the newline with memchr, grow only when one line does not fit, up to a limit.

use std::io::{self, Read};

/// Bytes requested per read; large reads keep syscalls off the profile.
pub(crate) const READ_SIZE: usize = 1 << 20;

/// One line borrowed from the reader's buffer, or a piece of a line over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The line without its `\n` (a piece of it for an over-long line).
    pub bytes: &'a [u8],
    /// Whether a `\n` ended it (false only for a last line without one, and for every
    /// piece of an over-long line but its last).
    pub newline: bool,
    /// Whole, or which piece of a line longer than the limit.
    pub piece: Piece,
}

/// A line longer than the limit comes in pieces of at most the limit, never held whole:
/// callers that must keep it (a rewrite) copy the pieces through as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Whole,
    /// A piece of an over-long line; more of it follows.
    More,
    /// The last piece of an over-long line.
    Last,
}

#[derive(Debug)]
pub(crate) enum LineError {
    Io(io::Error),
    /// A line longer than the limit.
    TooLong,
}

pub(crate) struct LineReader<R> {
    rdr: R,
    buf: Vec<u8>,
    /// Unread data is `buf[start..end]`.
    start: usize,
    end: usize,
    /// `buf[start..searched]` is known to hold no `\n`.
    searched: usize,
    eof: bool,
    limit: usize,
    /// Inside a line longer than the limit (its earlier pieces were handed out).
    in_long: bool,
    /// Hand out over-long lines in pieces instead of failing with `TooLong`.
    pieces: bool,
}

impl<R: Read> LineReader<R> {
    /// `limit` is the longest line accepted, in bytes, newline excluded.
    pub(crate) fn new(rdr: R, limit: usize) -> Self {
        LineReader {
            rdr,
            buf: vec![0; READ_SIZE.min(limit.saturating_add(1)).max(64)],
            start: 0,
            end: 0,
            searched: 0,
            eof: false,
            limit,
            in_long: false,
            pieces: false,
        }
    }

    /// Hands out a line longer than the limit in [`Piece`]s instead of failing.
    pub(crate) fn with_pieces(mut self) -> Self {
        self.pieces = true;
        self
    }

    fn piece_end(&mut self) -> Piece {
        if std::mem::take(&mut self.in_long) {
            Piece::Last
        } else {
            Piece::Whole
        }
    }

    pub(crate) fn next_line(&mut self) -> Result<Option<Line<'_>>, LineError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.searched..self.end]) {
                let (s, e) = (self.start, self.searched + i);
                self.start = e + 1;
                self.searched = self.start;
                if e - s > self.limit && !self.pieces {
                    return Err(LineError::TooLong);
                }
                let piece = self.piece_end();
                return Ok(Some(Line {
                    bytes: &self.buf[s..e],
                    newline: true,
                    piece,
                }));
            }
            self.searched = self.end;
            if self.end - self.start > self.limit {
                if !self.pieces {
                    return Err(LineError::TooLong);
                }
                // Hand out what is buffered as a piece and go on with the rest.
                let (s, e) = (self.start, self.end);
                self.start = e;
                self.searched = e;
                self.in_long = true;
                return Ok(Some(Line {
                    bytes: &self.buf[s..e],
                    newline: false,
                    piece: Piece::More,
                }));
            }
            if self.eof {
                if self.start == self.end {
                    if std::mem::take(&mut self.in_long) {
                        return Ok(Some(Line {
                            bytes: &[],
                            newline: false,
                            piece: Piece::Last,
                        }));
                    }
                    return Ok(None);
                }
                let s = self.start;
                self.start = self.end;
                let piece = self.piece_end();
                return Ok(Some(Line {
                    bytes: &self.buf[s..self.end],
                    newline: false,
                    piece,
                }));
            }
            self.fill()?;
        }
    }

    /// Makes room after the unread tail and reads once.
    fn fill(&mut self) -> Result<(), LineError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.searched -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_SIZE.min(self.buf.len() / 2).max(1) {
            // One line does not fit: grow, but never much past the limit (+1 so a line of
            // exactly `limit` bytes and its newline fit).
            let cap = self.limit.saturating_add(1).max(self.buf.len());
            let want = (self.buf.len() * 2).min(cap);
            if want > self.buf.len() {
                self.buf.resize(want, 0);
            }
        }
        if self.end == self.buf.len() {
            // Full at the cap without a newline: the next call reports TooLong.
            return Ok(());
        }
        loop {
            match self.rdr.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LineError::Io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader handing out at most `n` bytes per call, to cut lines at every position.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn collect(data: &[u8], step: usize, limit: usize) -> Result<Vec<(Vec<u8>, bool)>, ()> {
        let mut r = LineReader::new(Trickle(data, step), limit);
        let mut v = Vec::new();
        loop {
            match r.next_line() {
                Ok(Some(l)) => v.push((l.bytes.to_vec(), l.newline)),
                Ok(None) => return Ok(v),
                Err(_) => return Err(()),
            }
        }
    }

    /// Obviously correct reference: split on `\n`, the last piece only if non-empty.
    fn reference(data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut v: Vec<(Vec<u8>, bool)> = data
            .split(|&b| b == b'\n')
            .map(|s| (s.to_vec(), true))
            .collect();
        let last = v.pop().unwrap();
        if !last.0.is_empty() {
            v.push((last.0, false));
        }
        v
    }

    #[test]
    fn keeps_cr_and_missing_final_newline() {
        let got = collect(b"a\r\n\nb", 1000, 100).unwrap();
        assert_eq!(
            got,
            vec![
                (b"a\r".to_vec(), true),
                (b"".to_vec(), true),
                (b"b".to_vec(), false)
            ]
        );
        assert!(collect(b"", 10, 10).unwrap().is_empty());
    }

    #[test]
    fn line_limit_is_exact() {
        assert!(collect(b"12345\n", 2, 5).is_ok());
        assert!(collect(b"12345", 2, 5).is_ok());
        assert!(collect(b"123456\n", 2, 5).is_err());
        assert!(collect(b"ok\n123456", 3, 5).is_err());
    }

    /// Over-long lines in pieces: concatenated, the pieces are the line, and the lines
    /// around it are whole.
    #[test]
    fn over_long_lines_come_in_pieces() {
        for (data, step) in [
            (&b"ok\n0123456789abcdef\nnext\n"[..], 3),
            (b"0123456789abcdef", 4),
            (b"0123456789abcdef\n", 16),
            (b"a\n0123456789ab\n", 1),
        ] {
            let mut r = LineReader::new(Trickle(data, step), 5).with_pieces();
            let mut lines: Vec<(Vec<u8>, bool)> = Vec::new();
            let mut current = Vec::new();
            while let Some(l) = r.next_line().unwrap() {
                current.extend_from_slice(l.bytes);
                assert!(
                    l.bytes.len() <= 5 + READ_SIZE,
                    "a piece holds the whole line"
                );
                if l.piece != Piece::More {
                    lines.push((std::mem::take(&mut current), l.newline));
                }
            }
            assert_eq!(
                lines,
                reference(data),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn long_lines_grow_the_buffer() {
        let mut data = vec![b'x'; 3 * READ_SIZE];
        data.push(b'\n');
        data.extend_from_slice(b"tail");
        let got = collect(&data, READ_SIZE, 4 * READ_SIZE).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 3 * READ_SIZE);
        assert_eq!(got[1], (b"tail".to_vec(), false));
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), any::<u8>()], 0..600),
            step in 1usize..50) {
            prop_assert_eq!(collect(&data, step, 1000).unwrap(), reference(&data));
        }
    }
}
