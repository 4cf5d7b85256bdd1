//! A slow, obviously correct reference parser for the combined format, built on a regex.
//! Tests compare the fast parser with it on generated lines.

use std::net::IpAddr;

use regex::bytes::Regex;

/// The fields the reference reads from a combined line.
#[derive(Debug, PartialEq, Eq)]
pub struct RefRecord {
    pub client: Option<IpAddr>,
    pub time: i64,
    pub method: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub protocol: Option<Vec<u8>>,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referer: Option<Vec<u8>>,
    pub user_agent: Option<Vec<u8>>,
}

fn month(m: &[u8]) -> u32 {
    let names: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    names
        .iter()
        .position(|n| *n == m)
        .map(|p| p as u32 + 1)
        .unwrap_or(0)
}

fn num(b: &[u8]) -> i64 {
    std::str::from_utf8(b).unwrap().parse().unwrap()
}

fn opt(b: &[u8]) -> Option<Vec<u8>> {
    if b == b"-" { None } else { Some(b.to_vec()) }
}

pub fn parse_combined(line: &[u8]) -> Option<RefRecord> {
    let re = Regex::new(
        r#"(?x)^(\S+)\ (\S+)\ (\S+)\ \[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})\ ([+-])(\d{2})(\d{2})\]
        \ "((?:[^"\\]|\\.)*)"\ (\d{3})\ (\d+|-)\ "((?:[^"\\]|\\.)*)"\ "((?:[^"\\]|\\.)*)"$"#,
    )
    .unwrap();
    let c = re.captures(line)?;
    let g = |i: usize| c.get(i).unwrap().as_bytes();
    let client = std::str::from_utf8(g(1))
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok());
    let days = super::time::days_from_civil(num(g(6)), month(g(5)), num(g(4)) as u32);
    let sign = if g(10) == b"+" { 1 } else { -1 };
    let off = sign * (num(g(11)) * 3600 + num(g(12)) * 60);
    let time = days * 86400 + num(g(7)) * 3600 + num(g(8)) * 60 + num(g(9)) - off;
    let request = g(13);
    let parts: Vec<&[u8]> = request.split(|b| *b == b' ').collect();
    let (method, target, protocol) = if parts.len() >= 3
        && parts[0].iter().all(u8::is_ascii_alphabetic)
        && !parts[0].is_empty()
        && parts[parts.len() - 1].starts_with(b"HTTP/")
    {
        (
            Some(parts[0].to_vec()),
            Some(parts[1..parts.len() - 1].join(&b' ')),
            Some(parts[parts.len() - 1].to_vec()),
        )
    } else {
        (None, None, None)
    };
    Some(RefRecord {
        client,
        time,
        method,
        target,
        protocol,
        status: num(g(14)) as u16,
        bytes: if g(15) == b"-" {
            None
        } else {
            Some(num(g(15)) as u64)
        },
        referer: opt(g(16)),
        user_agent: opt(g(17)),
    })
}
