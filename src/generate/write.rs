//! Byte-level output for the generator: one reusable buffer flushed to the caller's writer
//! in large blocks, hand-written number and timestamp formatting, and the field escaping
//! that Apache and nginx apply. Nothing here allocates per line.

use std::io::{self, Write};

const FLUSH_AT: usize = 60 * 1024;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// How a quoted field escapes a `"` inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Apache mod_log_config: `\"`.
    Apache,
    /// nginx `escape=default`: `\x22`.
    Nginx,
    /// nginx `escape=json`: `\"`, and control bytes as `\u00XX`.
    Json,
}

/// The output buffer. `buf` is public so callers can push bytes directly.
pub struct Out<'w> {
    pub buf: Vec<u8>,
    inner: &'w mut dyn Write,
    day_cache: (i64, [u8; 11], [u8; 10]),
}

impl<'w> Out<'w> {
    pub fn new(inner: &'w mut dyn Write) -> Out<'w> {
        Out {
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            inner,
            day_cache: (i64::MIN, [0; 11], [0; 10]),
        }
    }

    /// Ends the current line and flushes when the buffer is large enough.
    pub fn end_line(&mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn num(&mut self, mut n: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&tmp[i..]);
    }

    /// `n` with at least two digits.
    fn num2(&mut self, n: u64) {
        self.buf.push(b'0' + (n / 10 % 10) as u8);
        self.buf.push(b'0' + (n % 10) as u8);
    }

    /// Milliseconds as seconds with three decimals, like nginx's `$request_time`.
    pub fn millis(&mut self, ms: u64) {
        self.num(ms / 1000);
        self.buf.push(b'.');
        let frac = ms % 1000;
        self.buf.push(b'0' + (frac / 100) as u8);
        self.num2(frac % 100);
    }

    /// A quoted-field value with `"` escaped the way `esc` says. Apache and nginx both write
    /// a backslash as `\\`, so it is doubled too.
    pub fn escaped(&mut self, s: &[u8], esc: Escape) {
        for &b in s {
            match (b, esc) {
                (b'"', Escape::Nginx) => self.buf.extend_from_slice(b"\\x22"),
                (b'"', _) => self.buf.extend_from_slice(b"\\\""),
                (b'\\', Escape::Nginx) => self.buf.extend_from_slice(b"\\x5C"),
                (b'\\', _) => self.buf.extend_from_slice(b"\\\\"),
                (c, Escape::Json) if c < 0x20 => {
                    self.buf.extend_from_slice(b"\\u00");
                    self.hex_byte(c);
                }
                (c, _) => self.buf.push(c),
            }
        }
    }

    /// Two upper-case hex digits.
    pub fn hex_byte(&mut self, b: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.buf.push(HEX[usize::from(b >> 4)]);
        self.buf.push(HEX[usize::from(b & 15)]);
    }

    fn day(&mut self, days: i64) {
        if self.day_cache.0 == days {
            return;
        }
        let (y, m, d) = civil_from_days(days);
        let mut clf = [0u8; 11];
        let mut iso = [0u8; 10];
        let y = y.clamp(0, 9999) as u64;
        let ys = [
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
        ];
        let ds = [b'0' + (d / 10) as u8, b'0' + (d % 10) as u8];
        let ms = [b'0' + (m / 10) as u8, b'0' + (m % 10) as u8];
        clf[..2].copy_from_slice(&ds);
        clf[2] = b'/';
        clf[3..6].copy_from_slice(MONTHS[(m - 1) as usize]);
        clf[6] = b'/';
        clf[7..].copy_from_slice(&ys);
        iso[..4].copy_from_slice(&ys);
        iso[4] = b'-';
        iso[5..7].copy_from_slice(&ms);
        iso[7] = b'-';
        iso[8..].copy_from_slice(&ds);
        self.day_cache = (days, clf, iso);
    }

    /// `$time_local` / `%t` without brackets: `22/Nov/2026:04:39:16 +0100`.
    pub fn time_local(&mut self, unix: i64, offset_min: i32) {
        let local = unix + i64::from(offset_min) * 60;
        self.day(local.div_euclid(86_400));
        let clf = self.day_cache.1;
        self.buf.extend_from_slice(&clf);
        self.buf.push(b':');
        self.clock(local.rem_euclid(86_400) as u64, b':');
        self.buf.push(b' ');
        self.offset(offset_min, false);
    }

    /// `$time_iso8601`: `2026-11-22T04:39:16+01:00`.
    pub fn time_iso(&mut self, unix: i64, offset_min: i32) {
        let local = unix + i64::from(offset_min) * 60;
        self.day(local.div_euclid(86_400));
        let iso = self.day_cache.2;
        self.buf.extend_from_slice(&iso);
        self.buf.push(b'T');
        self.clock(local.rem_euclid(86_400) as u64, b':');
        self.offset(offset_min, true);
    }

    fn clock(&mut self, secs: u64, sep: u8) {
        self.num2(secs / 3600);
        self.buf.push(sep);
        self.num2(secs / 60 % 60);
        self.buf.push(sep);
        self.num2(secs % 60);
    }

    fn offset(&mut self, offset_min: i32, colon: bool) {
        self.buf.push(if offset_min < 0 { b'-' } else { b'+' });
        let a = u64::from(offset_min.unsigned_abs());
        self.num2(a / 60);
        if colon {
            self.buf.push(b':');
        }
        self.num2(a % 60);
    }
}

pub use crate::timefmt::{civil_from_days, days_from_civil};

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut Out)) -> String {
        let mut sink = Vec::new();
        let mut out = Out::new(&mut sink);
        f(&mut out);
        String::from_utf8(out.buf.clone()).unwrap()
    }

    #[test]
    fn timestamps_match_nginx() {
        // 2026-11-22T03:39:16Z
        let t = days_from_civil(2026, 11, 22) * 86_400 + 3 * 3600 + 39 * 60 + 16;
        assert_eq!(
            render(|o| o.time_local(t, 60)),
            "22/Nov/2026:04:39:16 +0100"
        );
        assert_eq!(render(|o| o.time_iso(t, 60)), "2026-11-22T04:39:16+01:00");
        assert_eq!(
            render(|o| o.time_local(t, -330)),
            "21/Nov/2026:22:09:16 -0530"
        );
        assert_eq!(render(|o| o.time_local(0, 0)), "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(render(|o| o.num(0)), "0");
        assert_eq!(
            render(|o| o.num(18_446_744_073_709_551_615)),
            u64::MAX.to_string()
        );
        assert_eq!(render(|o| o.millis(5)), "0.005");
        assert_eq!(render(|o| o.millis(12_340)), "12.340");
        assert_eq!(
            render(|o| o.escaped(br#"a"b\"#, Escape::Apache)),
            r#"a\"b\\"#
        );
        assert_eq!(
            render(|o| o.escaped(br#"a"b\"#, Escape::Nginx)),
            r"a\x22b\x5C"
        );
        assert_eq!(
            render(|o| o.escaped(b"a\"\x01", Escape::Json)),
            r#"a\"\u0001"#
        );
    }
}
