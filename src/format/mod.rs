//! Log formats: the [`Record`] a line becomes, named presets, nginx `log_format` and Apache
//! `LogFormat` compilation, JSON lines, the proxies' own logs (HAProxy, Envoy), timestamps,
//! and choosing a format from a file's first lines (`--format auto`).

pub mod addr;
mod clf;
pub mod compile;
pub mod envoy;
pub mod haproxy;
pub mod json;
pub mod parser;
pub mod record;
pub mod time;

#[cfg(test)]
pub(crate) mod reference;

pub use compile::CompileError;
pub use parser::{ErrorKind, LineFormat, ParseError};
pub use record::{AddrField, AddrFields, AddrKind, Record, Span};
pub use time::TimeCache;

use compile::{FieldKind, Step, compile_apache, compile_nginx};

/// The presets `--format` accepts by name, most specific first (the order `auto` prefers
/// when two parse equally well).
pub const PRESETS: &[(&str, &str)] = &[
    (
        "main",
        "nginx combined followed by \"$http_x_forwarded_for\"",
    ),
    (
        "vcombined",
        "Apache vhost_combined: %v:%p (or a bare vhost) before combined",
    ),
    ("combined", "nginx and Apache combined"),
    ("vcommon", "a vhost (and :port) before common"),
    ("common", "Common Log Format"),
    (
        "haproxy",
        "HAProxy option httplog, with or without its syslog tag",
    ),
    (
        "envoy",
        "Envoy's default text access log, and Istio's longer one",
    ),
    (
        "json",
        "one JSON object per line (nginx escape=json, Caddy, Traefik, Envoy)",
    ),
];

const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;

/// A usable format: a compiled text format, JSON, or a proxy's own log.
#[derive(Clone, Debug)]
pub enum Format {
    Text { name: String, format: LineFormat },
    Json,
    Proxy(Proxy),
}

/// A proxy's own log, read by a parser written for it, out of line: the compiled formats'
/// hot path only gains the check that the format is not one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// See [`haproxy`].
    Haproxy,
    /// See [`envoy`].
    Envoy,
}

impl Proxy {
    pub fn name(self) -> &'static str {
        match self {
            Proxy::Haproxy => "haproxy",
            Proxy::Envoy => "envoy",
        }
    }

    #[inline(never)]
    fn parse<'a>(self, line: &'a [u8], cache: &mut TimeCache) -> Result<Record<'a>, ParseError> {
        let mut rec = Record::default();
        self.parse_into(line, cache, &mut rec).map(|()| rec)
    }

    #[inline(never)]
    fn parse_into<'a>(
        self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        match self {
            Proxy::Haproxy => haproxy::parse_into(line, cache, rec),
            Proxy::Envoy => envoy::parse_into(line, rec),
        }
    }
}

impl Format {
    /// A preset by name.
    pub fn preset(name: &str) -> Option<Format> {
        let text = |apache: String, vhost: bool| {
            let mut steps = compile_apache(&apache).expect("presets compile");
            if vhost {
                if let Some(Step::Field { kind, .. }) = steps.first_mut() {
                    *kind = FieldKind::VhostPort;
                }
            }
            Format::Text {
                name: name.to_string(),
                format: LineFormat::new(steps, true),
            }
        };
        Some(match name {
            "combined" => text(COMBINED.into(), false),
            "common" => text(COMMON.into(), false),
            "vcombined" => text(format!("%v {COMBINED}"), true),
            "vcommon" => text(format!("%v {COMMON}"), true),
            "main" => text(format!("{COMBINED} \"%{{X-Forwarded-For}}i\""), false),
            "json" => Format::Json,
            "haproxy" => Format::Proxy(Proxy::Haproxy),
            "envoy" => Format::Proxy(Proxy::Envoy),
            _ => return None,
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Format::Text { name, .. } => name,
            Format::Json => "json",
            Format::Proxy(proxy) => proxy.name(),
        }
    }

    /// This format for a rewrite, which needs the client field but not its address
    /// parsed (see [`LineFormat::without_client_address`]).
    pub fn for_rewrite(&self) -> Format {
        match self {
            Format::Text { name, format } => Format::Text {
                name: name.clone(),
                format: format.without_client_address(),
            },
            Format::Json => Format::Json,
            Format::Proxy(proxy) => Format::Proxy(*proxy),
        }
    }

    /// Parses one line (without its `\n`).
    #[inline]
    pub fn parse<'a>(
        &self,
        line: &'a [u8],
        cache: &mut TimeCache,
    ) -> Result<Record<'a>, ParseError> {
        let mut rec = match self {
            Format::Text { format, .. } => format.parse(line, cache),
            Format::Json => json::parse(line, cache),
            Format::Proxy(proxy) => proxy.parse(line, cache),
        }?;
        resolve_proxies(&mut rec, line);
        Ok(rec)
    }

    /// [`parse`](Self::parse) into a record the caller owns (see
    /// [`LineFormat::parse_into`]); what `rec` holds after an error is unspecified.
    #[inline]
    pub fn parse_into<'a>(
        &self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        match self {
            Format::Text { format, .. } => format.parse_into(line, cache, rec),
            Format::Json => json::parse(line, cache).map(|r| *rec = r),
            Format::Proxy(proxy) => proxy.parse_into(line, cache, rec),
        }?;
        resolve_proxies(rec, line);
        Ok(())
    }
}

/// With trusted proxies configured, a record whose peer is one of them takes its client
/// from its X-Forwarded-For field (see [`addr::resolve_forwarded`]). Without any, one
/// check of an empty list per line.
#[inline]
fn resolve_proxies(rec: &mut Record<'_>, line: &[u8]) {
    if addr::trusted_proxies().is_empty() {
        return;
    }
    resolve_proxies_slow(rec, line);
}

/// Out of line, so the check above is all the common case (no trusted proxy) inlines.
#[cold]
fn resolve_proxies_slow(rec: &mut Record<'_>, line: &[u8]) {
    let forwarded = rec
        .addr_fields
        .as_slice()
        .iter()
        .find(|f| f.kind == record::AddrKind::ForwardedFor)
        .map(|f| f.span.of(line));
    rec.client = addr::resolve_forwarded(rec.client, forwarded);
}

/// What `--format` asked for.
#[derive(Clone, Debug)]
pub enum FormatSpec {
    /// Choose per file from its first lines.
    Auto,
    Fixed(Format),
}

impl FormatSpec {
    /// `auto`, a preset name, `nginx:<log_format>` or `apache:<LogFormat>`.
    pub fn parse(spec: &str) -> Result<FormatSpec, CompileError> {
        if spec == "auto" {
            return Ok(FormatSpec::Auto);
        }
        if let Some(f) = Format::preset(spec) {
            return Ok(FormatSpec::Fixed(f));
        }
        let (kind, steps) = if let Some(body) = spec.strip_prefix("nginx:") {
            ("nginx", compile_nginx(body)?)
        } else if let Some(body) = spec.strip_prefix("apache:") {
            ("apache", compile_apache(body)?)
        } else {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            return Err(CompileError(format!(
                "unknown format {spec:?}: use auto, {}, nginx:<log_format> or apache:<LogFormat>",
                names.join(", ")
            )));
        };
        Ok(FormatSpec::Fixed(Format::Text {
            name: kind.to_string(),
            format: LineFormat::new(steps, false),
        }))
    }
}

/// How many of a file's first lines `auto` tries each candidate on.
pub const DETECT_LINES: usize = 200;

/// The result of choosing a format from sample lines.
#[derive(Clone, Debug)]
pub struct Detected {
    pub format: Format,
    /// Sample lines the chosen format parsed, out of `sampled` non-empty lines.
    pub parsed: usize,
    pub sampled: usize,
}

/// Chooses the preset that parses the most of `sample`; ties go to the more specific preset.
/// `None` when no preset parses any line (or the sample is empty).
pub fn detect<'a>(sample: impl IntoIterator<Item = &'a [u8]> + Clone) -> Option<Detected> {
    let mut best: Option<Detected> = None;
    let looks_json = sample
        .clone()
        .into_iter()
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.first() == Some(&b'{'));
    for (name, _) in PRESETS {
        if (*name == "json") != looks_json {
            continue;
        }
        let format = Format::preset(name).expect("listed presets exist");
        let mut cache = TimeCache::new();
        let (mut parsed, mut sampled) = (0, 0);
        for line in sample.clone() {
            if line.is_empty() || line == b"\r" {
                continue;
            }
            sampled += 1;
            parsed += usize::from(format.parse(line, &mut cache).is_ok());
        }
        if parsed > 0 && best.as_ref().is_none_or(|b| parsed > b.parsed) {
            best = Some(Detected {
                format,
                parsed,
                sampled,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests;
