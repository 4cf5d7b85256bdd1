//! Log formats: the [`Record`] a line becomes, named presets, nginx `log_format` and Apache
//! `LogFormat` compilation, JSON lines, the proxies' own logs (HAProxy, Envoy), timestamps,
//! wrappers (syslog, journal, container logs; see [`wrap`]), addresses found in free text
//! ([`tokens`]), and choosing a format from a file's first lines (`--format auto`).

pub mod addr;
mod choose;
mod clf;
pub mod compile;
pub mod envoy;
mod fields;
pub mod haproxy;
pub mod json;
pub mod parser;
pub mod record;
pub mod time;
pub mod tokens;
pub mod wrap;

#[cfg(test)]
pub(crate) mod reference;

pub use choose::{Chosen, choose_format};
pub use compile::CompileError;
pub use parser::{ErrorKind, LineFormat, ParseError};
pub use record::{AddrField, AddrFields, AddrKind, Record, Span};
pub use time::TimeCache;
pub use wrap::{Unwrapper, Wrapped, Wrapper};

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

/// A usable format: a compiled text format, JSON, a proxy's own log, or one of them inside
/// a wrapper.
#[derive(Clone, Debug)]
pub enum Format {
    /// A text format compiled from a preset, an nginx `log_format` or an Apache
    /// `LogFormat`.
    Text {
        /// The preset's name, or `nginx` or `apache` for a format given in full.
        name: String,
        /// The compiled steps.
        format: LineFormat,
    },
    /// One JSON object per line (see [`json`]).
    Json,
    /// A proxy's own log.
    Proxy(Proxy),
    /// Kept apart so the unwrapped formats' path has nothing of wrappers but this arm. The
    /// lines of a wrapper that joins or decodes them need an [`Unwrapper`] (see
    /// [`Format::unwrapper`]).
    Wrapped(Box<Wrapped>),
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
    /// The preset name that selects it.
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

    /// The name reports give it: the preset's, `nginx` or `apache` for a format given in
    /// full, or `wrapper:inner`.
    pub fn name(&self) -> &str {
        match self {
            Format::Text { name, .. } => name,
            Format::Json => "json",
            Format::Proxy(proxy) => proxy.name(),
            Format::Wrapped(w) => &w.name,
        }
    }

    /// The state a reader of this format keeps from line to line, for a wrapped format
    /// (`None` for the others, whose lines stand alone).
    pub fn unwrapper(&self) -> Option<Unwrapper> {
        match self {
            Format::Wrapped(w) => Some(Unwrapper::new(w)),
            _ => None,
        }
    }

    /// The format of the inner lines and the wrapper around them (`None` when unwrapped).
    pub fn split_wrapper(&self) -> (Option<Wrapper>, &Format) {
        match self {
            Format::Wrapped(w) => (Some(w.wrapper), &w.inner),
            f => (None, f),
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
            Format::Wrapped(w) => {
                Format::Wrapped(Box::new(Wrapped::new(w.wrapper, w.inner.for_rewrite())))
            }
        }
    }

    /// Parses one line (without its `\n`). A wrapped format parses here only the lines that
    /// stand alone (see [`Wrapped::parse_into`]); a reader uses an [`Unwrapper`].
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
            Format::Wrapped(w) => {
                let mut rec = Record::default();
                return w.parse_into(line, cache, &mut rec).map(|()| rec);
            }
        }?;
        resolve_proxies(&mut rec, line);
        Ok(rec)
    }

    /// [`parse`](Self::parse) into a record the caller owns (see
    /// [`LineFormat::parse_into`]); what `rec` holds after an error is unspecified.
    #[inline(always)]
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
            Format::Wrapped(w) => return w.parse_into(line, cache, rec),
        }?;
        resolve_proxies(rec, line);
        Ok(())
    }
}

/// Parses the lines of one reader in order: a format whose lines stand alone (`&Format`),
/// or an [`Unwrapper`] for a wrapped one. A reader generic over it is compiled once for
/// each, so the unwrapped formats' loop carries nothing of wrappers.
pub trait LineParser {
    /// Whether a record may be a copy of its line rather than a view of it (see
    /// [`Unwrapper`]), and lines may be parts of one: false for `&Format`.
    const WRAPPED: bool;

    /// Parses the next line into `rec` (see [`Format::parse_into`] and
    /// [`Unwrapper::parse_into`]).
    fn parse_line<'a>(
        &'a mut self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError>;
}

impl LineParser for &Format {
    const WRAPPED: bool = false;

    #[inline(always)]
    fn parse_line<'a>(
        &'a mut self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        self.parse_into(line, cache, rec)
    }
}

impl LineParser for Unwrapper {
    const WRAPPED: bool = true;

    fn parse_line<'a>(
        &'a mut self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        self.parse_into(line, cache, rec)
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
    /// This format for every file.
    Fixed(Format),
}

impl FormatSpec {
    /// `auto`, a preset name, `nginx:<log_format>` or `apache:<LogFormat>`, or one of
    /// these but `auto` after a wrapper's name (`syslog:combined`, `cri:nginx:...`).
    pub fn parse(spec: &str) -> Result<FormatSpec, CompileError> {
        if spec == "auto" {
            return Ok(FormatSpec::Auto);
        }
        if let Some((wrapper, inner)) = spec
            .split_once(':')
            .and_then(|(name, inner)| Some((Wrapper::by_name(name)?, inner)))
        {
            return match FormatSpec::parse(inner)? {
                FormatSpec::Fixed(Format::Wrapped(_)) => Err(CompileError(format!(
                    "{spec:?}: a wrapper holds a format, not another wrapper"
                ))),
                FormatSpec::Fixed(f) => Ok(FormatSpec::Fixed(Format::Wrapped(Box::new(
                    Wrapped::new(wrapper, f),
                )))),
                FormatSpec::Auto => Err(CompileError(format!(
                    "{spec:?}: name the format inside the wrapper ({}:combined), or use auto \
                     for both",
                    wrapper.name()
                ))),
            };
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
            let wrappers: Vec<String> = wrap::WRAPPERS
                .iter()
                .map(|(_, n, _)| format!("{n}:"))
                .collect();
            return Err(CompileError(format!(
                "unknown format {spec:?}: use auto, {}, nginx:<log_format> or \
                 apache:<LogFormat>, each of them (but auto) after a wrapper: {}",
                names.join(", "),
                wrappers.join(", ")
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
    /// The format chosen.
    pub format: Format,
    /// Sample lines the chosen format parsed, out of `sampled` non-empty lines.
    pub parsed: usize,
    /// Non-empty sample lines.
    pub sampled: usize,
    /// Of the parsed lines, those that gave a client address.
    pub clients: usize,
}

/// Chooses the format that reads a client address from the most of `sample`, then the one
/// that parses the most: a preset, or when most lines are in a wrapper, that wrapper around
/// the preset that does best on their inner lines (see [`wrap`]). A format that matches the
/// lines' shape but finds no client in them (a syslog prefix read as a vhost and a client)
/// loses to one that reads the clients. Ties go to the wrapper (Docker's lines are JSON
/// objects too), then to the more specific preset. `None` when nothing parses any line (or
/// the sample is empty).
pub fn detect<'a>(sample: impl IntoIterator<Item = &'a [u8]> + Clone) -> Option<Detected> {
    let wrapped = wrap::detect(sample.clone());
    let plain = detect_unwrapped(sample);
    match (wrapped, plain) {
        (Some(w), Some(p)) if (p.clients, p.parsed) > (w.clients, w.parsed) => Some(p),
        (Some(w), _) => Some(w),
        (None, p) => p,
    }
}

/// [`detect`] among the presets alone.
fn detect_unwrapped<'a>(sample: impl IntoIterator<Item = &'a [u8]> + Clone) -> Option<Detected> {
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
        let (mut parsed, mut sampled, mut clients) = (0, 0, 0);
        for line in sample.clone() {
            if line.is_empty() || line == b"\r" {
                continue;
            }
            sampled += 1;
            if let Ok(rec) = format.parse(line, &mut cache) {
                parsed += 1;
                clients += usize::from(rec.client.is_some());
            }
        }
        if parsed > 0
            && best
                .as_ref()
                .is_none_or(|b| (clients, parsed) > (b.clients, b.parsed))
        {
            best = Some(Detected {
                format,
                parsed,
                sampled,
                clients,
            });
        }
    }
    best
}

/// The warning for a file read as `format` of whose `parsed` lines `with_client` gave a
/// client address, when fewer than half did: a format that matches the lines' shape but
/// not their fields (a syslog prefix read as a vhost) would make the file look clean.
pub fn few_clients(parsed: u64, with_client: u64, format: Option<&str>) -> Option<String> {
    (parsed > 0 && with_client.saturating_mul(2) < parsed).then(|| {
        format!(
            "the format {} gives a client address for {with_client} of {parsed} parsed lines: \
             it is probably not this file's format, so detection sees no one here (check \
             with `logward scan --check`, give one with --format)",
            format.unwrap_or("chosen")
        )
    })
}

#[cfg(test)]
mod tests;
