//! Compiles a log format (an nginx `log_format` body or an Apache `LogFormat` string) into
//! a flat list of [`Step`]s, once; the parser then walks the steps for every line and never
//! looks at the format text again.
//!
//! References: nginx `ngx_http_log_module` (log_format, variables) and Apache
//! `mod_log_config` (format directives, `%{...}t`, modifiers).

use super::time::{TimePart, compile_strftime};

/// What a field holds, which decides how its bytes become part of a [`super::Record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// The client: `$remote_addr`, `%h`, `%a`. May hold a host name or a list.
    Client,
    /// Another single address: `$realip_remote_addr`, `%{c}a`, `$http_x_real_ip`.
    OtherAddr,
    /// An address list: `$http_x_forwarded_for`, `%{X-Forwarded-For}i`.
    ForwardedFor,
    /// `$remote_user`, `%u`, `%l`: kept opaque.
    User,
    /// CLF time without brackets (`$time_local`; Apache `%t` adds the brackets as literals).
    TimeClf,
    /// `$time_iso8601`.
    TimeIso,
    /// Epoch seconds, optionally with a fraction; the number is divided by the scale.
    TimeEpoch(i64),
    /// Apache `%{pattern}t`. A boxed slice rather than a `Vec`: with no spare capacity
    /// values to encode the other variants in, the kind keeps a plain tag, which the parser
    /// dispatches on for every field of every line.
    TimeStrftime(Box<[TimePart]>),
    /// The request line: `$request`, `%r`.
    Request,
    /// The request method: `$request_method`, `%m`.
    Method,
    /// Path and query: `$request_uri`, or Apache `%U%q` written together.
    Target,
    /// Path only: `$uri`, `%U`.
    Path,
    /// The protocol: `$server_protocol`, `%H`.
    Protocol,
    /// The status code: `$status`, `%s`, `%>s`.
    Status,
    /// The response size: `$body_bytes_sent`, `$bytes_sent`, `%b`, `%B`, `%O`.
    Bytes,
    /// The `Referer` header: `$http_referer`, `%{Referer}i`.
    Referer,
    /// The `User-Agent` header: `$http_user_agent`, `%{User-Agent}i`.
    UserAgent,
    /// `$host`, `$server_name`, `%v`.
    Vhost,
    /// A vhost optionally followed by `:port` (Apache `vhost_combined` as logward reads it).
    VhostPort,
    /// Anything else (`$request_time`, `%D`, unknown variables): a span nobody reads.
    Opaque,
}

/// Where a field's text ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldEnd {
    /// At the next occurrence of the literal that follows (not consumed here).
    Literal(Box<[u8]>),
    /// Inside double quotes: at the first unescaped `"` where the following literal matches.
    Quoted(Box<[u8]>),
    /// At the end of the line.
    EndOfLine,
}

/// One compiled step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Text that must appear as it is.
    Literal(Box<[u8]>),
    /// A field, read up to where it ends.
    Field {
        /// What the field holds.
        kind: FieldKind,
        /// Where its text ends.
        end: FieldEnd,
        /// The variable or directive as written in the format (`$status`, `%>s`), for
        /// messages.
        name: Box<str>,
    },
}

/// A compile error, with the offending part of the format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError(pub String);

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

/// A parsed but not yet linked piece of a format string.
enum Piece {
    Lit(Vec<u8>),
    Field(FieldKind, String),
}

/// nginx variable names to field kinds.
fn nginx_kind(var: &str) -> FieldKind {
    match var {
        "remote_addr" => FieldKind::Client,
        "realip_remote_addr"
        | "http_x_real_ip"
        | "http_true_client_ip"
        | "http_cf_connecting_ip" => FieldKind::OtherAddr,
        "http_x_forwarded_for" | "proxy_add_x_forwarded_for" => FieldKind::ForwardedFor,
        "remote_user" => FieldKind::User,
        "time_local" => FieldKind::TimeClf,
        "time_iso8601" => FieldKind::TimeIso,
        "msec" => FieldKind::TimeEpoch(1),
        "request" => FieldKind::Request,
        "request_method" => FieldKind::Method,
        "request_uri" => FieldKind::Target,
        "uri" | "document_uri" => FieldKind::Path,
        "server_protocol" => FieldKind::Protocol,
        "status" => FieldKind::Status,
        "body_bytes_sent" | "bytes_sent" => FieldKind::Bytes,
        "http_referer" => FieldKind::Referer,
        "http_user_agent" => FieldKind::UserAgent,
        "host" | "server_name" | "http_host" => FieldKind::Vhost,
        _ => FieldKind::Opaque,
    }
}

/// Splits an nginx format into pieces. Accepts the body as written in nginx.conf, quoted
/// segments included (`'$remote_addr - ' '"$request"'`), or the bare text.
fn nginx_pieces(format: &str) -> Result<Vec<Piece>, CompileError> {
    let text = unquote_nginx(format)?;
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            lit.push(bytes[i]);
            i += 1;
            continue;
        }
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let close = text[i + 2..].find('}').ok_or_else(|| {
                CompileError(format!("unclosed '${{' at byte {} of the nginx format", i))
            })?;
            (&text[i + 2..i + 2 + close], i + 3 + close)
        } else {
            let len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (&text[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() {
            lit.push(b'$');
            i += 1;
            continue;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Field(nginx_kind(name), format!("${name}")));
        i = next;
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// `'a' 'b'` (as in nginx.conf) becomes `ab`; text without leading quote is kept as it is.
fn unquote_nginx(format: &str) -> Result<String, CompileError> {
    let trimmed = format.trim().trim_end_matches(';').trim_end();
    let Some(first) = trimmed.chars().next() else {
        return Ok(String::new());
    };
    if first != '\'' && first != '"' {
        return Ok(format.to_string());
    }
    let mut out = String::new();
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c != '\'' && c != '"' {
            return Err(CompileError(format!(
                "unexpected {c:?} between quoted parts of the nginx format"
            )));
        }
        let quote = c;
        loop {
            match chars.next() {
                None => {
                    return Err(CompileError(
                        "unterminated quote in the nginx format".into(),
                    ));
                }
                Some('\\') => match chars.next() {
                    Some(e) => out.push(e),
                    None => return Err(CompileError("format ends with '\\'".into())),
                },
                Some(e) if e == quote => break,
                Some(e) => out.push(e),
            }
        }
    }
    Ok(out)
}

/// Splits an Apache `LogFormat` string into pieces. `\"` and `\\` are unescaped as Apache
/// does when it reads the configuration; a string pasted with its outer quotes also works.
fn apache_pieces(format: &str) -> Result<Vec<Piece>, CompileError> {
    let unescaped = apache_unescape(format);
    let bytes = unescaped.as_bytes();
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    let mut seen_client = false;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            lit.push(bytes[i]);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if bytes.get(i) == Some(&b'%') {
            lit.push(b'%');
            i += 1;
            continue;
        }
        // Modifiers: `!`, a list of status codes, `<`, `>`.
        while i < bytes.len() && matches!(bytes[i], b'!' | b',' | b'<' | b'>' | b'0'..=b'9') {
            i += 1;
        }
        let mut arg = None;
        if bytes.get(i) == Some(&b'{') {
            let close = unescaped[i..].find('}').ok_or_else(|| {
                CompileError(format!(
                    "unclosed '%{{' at byte {start} of the Apache format"
                ))
            })?;
            arg = Some(&unescaped[i + 1..i + close]);
            i += close + 1;
        }
        let Some(&directive) = bytes.get(i) else {
            return Err(CompileError("Apache format ends with '%'".into()));
        };
        // Every directive is ASCII; slicing the name out of a multi-byte character would panic.
        if !directive.is_ascii() {
            return Err(CompileError(format!(
                "invalid directive at byte {start} of the Apache format"
            )));
        }
        // `%^ti` / `%^to` (trailers) are two letters after the caret.
        if directive == b'^' {
            i += 3;
            if !unescaped.is_char_boundary(i.min(bytes.len())) {
                return Err(CompileError(format!(
                    "invalid directive at byte {start} of the Apache format"
                )));
            }
            flush_lit(&mut lit, &mut pieces);
            pieces.push(Piece::Field(
                FieldKind::Opaque,
                unescaped[start..i.min(bytes.len())].into(),
            ));
            continue;
        }
        i += 1;
        let name = unescaped[start..i].to_string();
        if (directive, arg) == (b't', None) {
            lit.push(b'[');
            flush_lit(&mut lit, &mut pieces);
            pieces.push(Piece::Field(FieldKind::TimeClf, name));
            lit.push(b']');
            continue;
        }
        let kind = apache_kind(directive, arg, start)?;
        let kind = match kind {
            FieldKind::Client if seen_client => FieldKind::OtherAddr,
            FieldKind::Client => {
                seen_client = true;
                kind
            }
            _ => kind,
        };
        // `%U%q` written together is the request target (path and query).
        if directive == b'q' && lit.is_empty() {
            if let Some(Piece::Field(k @ FieldKind::Path, n)) = pieces.last_mut() {
                *k = FieldKind::Target;
                n.push_str(&name);
                continue;
            }
        }
        flush_lit(&mut lit, &mut pieces);
        pieces.push(Piece::Field(kind, name));
    }
    flush_lit(&mut lit, &mut pieces);
    Ok(pieces)
}

/// The format as Apache reads it from its configuration: the outer quotes of a pasted
/// string dropped, `\t` a tab, and `\x` the character `x`.
fn apache_unescape(format: &str) -> String {
    let mut text = format.trim();
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') && !text.ends_with("\\\"") {
        text = &text[1..text.len() - 1];
    }
    let mut unescaped = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => unescaped.push('\t'),
                Some(e) => unescaped.push(e),
                None => unescaped.push('\\'),
            }
        } else {
            unescaped.push(c);
        }
    }
    unescaped
}

/// The field an Apache directive writes (`%h` is a client; which address field is the
/// client is the caller's to decide); `start` is where it begins, for errors.
fn apache_kind(directive: u8, arg: Option<&str>, start: usize) -> Result<FieldKind, CompileError> {
    Ok(match (directive, arg) {
        (b'h' | b'a', None) => FieldKind::Client,
        (b'a', Some(_)) => FieldKind::OtherAddr,
        (b'l' | b'u', _) => FieldKind::User,
        (b't', None) => FieldKind::TimeClf,
        (b't', Some(spec)) => apache_time(spec)?,
        (b'r', _) => FieldKind::Request,
        (b'm', _) => FieldKind::Method,
        (b'U', _) => FieldKind::Path,
        (b'q', _) => FieldKind::Opaque,
        (b'H', _) => FieldKind::Protocol,
        (b's', _) => FieldKind::Status,
        (b'b' | b'B' | b'O', _) => FieldKind::Bytes,
        (b'v' | b'V', _) => FieldKind::Vhost,
        (b'i', Some(header)) => match header.to_ascii_lowercase().as_str() {
            "referer" => FieldKind::Referer,
            "user-agent" => FieldKind::UserAgent,
            "x-forwarded-for" => FieldKind::ForwardedFor,
            "x-real-ip" | "true-client-ip" | "cf-connecting-ip" => FieldKind::OtherAddr,
            "host" => FieldKind::Vhost,
            _ => FieldKind::Opaque,
        },
        (
            b'A' | b'C' | b'D' | b'e' | b'f' | b'I' | b'k' | b'L' | b'n' | b'o' | b'p' | b'P'
            | b'R' | b'S' | b'T' | b'X' | b'x' | b'i',
            _,
        ) => FieldKind::Opaque,
        (other, _) => {
            return Err(CompileError(format!(
                "unknown Apache format directive '%{}' at byte {start}",
                other as char
            )));
        }
    })
}

fn flush_lit(lit: &mut Vec<u8>, pieces: &mut Vec<Piece>) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(lit)));
    }
}

/// Apache `%{...}t`: `sec`, `msec`, `usec`, the `msec_frac`/`usec_frac` parts, or strftime,
/// each optionally prefixed by `begin:` or `end:`.
fn apache_time(spec: &str) -> Result<FieldKind, CompileError> {
    let spec = spec
        .strip_prefix("begin:")
        .or_else(|| spec.strip_prefix("end:"))
        .unwrap_or(spec);
    Ok(match spec {
        "sec" => FieldKind::TimeEpoch(1),
        "msec" => FieldKind::TimeEpoch(1000),
        "usec" => FieldKind::TimeEpoch(1_000_000),
        "msec_frac" | "usec_frac" => FieldKind::Opaque,
        pattern => FieldKind::TimeStrftime(
            compile_strftime(pattern)
                .map_err(|e| CompileError(format!("%{{{spec}}}t: {e}")))?
                .into_boxed_slice(),
        ),
    })
}

/// Links pieces into steps: each field learns where it ends from the literal after it.
fn link(pieces: Vec<Piece>) -> Result<Vec<Step>, CompileError> {
    let mut steps = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Lit(l) => steps.push(Step::Literal(l.clone().into_boxed_slice())),
            Piece::Field(kind, name) => {
                let prev_quote = matches!(i.checked_sub(1).map(|p| &pieces[p]), Some(Piece::Lit(l)) if l.ends_with(b"\""));
                let end = match pieces.get(i + 1) {
                    None => FieldEnd::EndOfLine,
                    Some(Piece::Lit(next)) => {
                        if prev_quote && next.starts_with(b"\"") {
                            FieldEnd::Quoted(next.clone().into_boxed_slice())
                        } else {
                            FieldEnd::Literal(next.clone().into_boxed_slice())
                        }
                    }
                    Some(Piece::Field(_, next)) => {
                        return Err(CompileError(format!(
                            "{name} is directly followed by {next}: with nothing between them \
                             logward cannot tell where one ends"
                        )));
                    }
                };
                steps.push(Step::Field {
                    kind: kind.clone(),
                    end,
                    name: name.as_str().into(),
                });
            }
        }
    }
    let addr_fields = steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Field {
                    kind: FieldKind::Client | FieldKind::OtherAddr | FieldKind::ForwardedFor,
                    ..
                }
            )
        })
        .count();
    if addr_fields > super::record::MAX_ADDR_FIELDS {
        return Err(CompileError(format!(
            "the format has {addr_fields} address fields; logward handles at most {}",
            super::record::MAX_ADDR_FIELDS
        )));
    }
    if !steps.iter().any(|s| matches!(s, Step::Field { .. })) {
        return Err(CompileError("the format has no fields".into()));
    }
    Ok(steps)
}

/// Compiles an nginx `log_format` body.
pub fn compile_nginx(format: &str) -> Result<Vec<Step>, CompileError> {
    link(nginx_pieces(format)?)
}

/// Compiles an Apache `LogFormat` string.
pub fn compile_apache(format: &str) -> Result<Vec<Step>, CompileError> {
    link(apache_pieces(format)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apache_non_ascii_directive_is_an_error() {
        assert!(compile_apache("%h %\u{e9} %s").is_err());
        assert!(compile_apache("%{x}\u{fffd}").is_err());
        assert!(compile_apache("%^t\u{e9}").is_err());
        assert!(compile_apache("%h %^ti %s").is_ok());
    }

    fn kinds(steps: &[Step]) -> Vec<FieldKind> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Field { kind, .. } => Some(kind.clone()),
                Step::Literal(_) => None,
            })
            .collect()
    }

    #[test]
    fn nginx_combined_compiles_to_quoted_and_plain_fields() {
        let steps = compile_nginx(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
        )
        .unwrap();
        assert_eq!(
            kinds(&steps),
            vec![
                FieldKind::Client,
                FieldKind::User,
                FieldKind::TimeClf,
                FieldKind::Request,
                FieldKind::Status,
                FieldKind::Bytes,
                FieldKind::Referer,
                FieldKind::UserAgent
            ]
        );
        assert!(
            matches!(&steps[0], Step::Field { end: FieldEnd::Literal(l), .. } if &**l == b" - ")
        );
        assert!(
            matches!(&steps[12], Step::Field { end: FieldEnd::Quoted(l), .. } if &**l == b"\" \"")
        );
        assert!(
            matches!(&steps[14], Step::Field { end: FieldEnd::Quoted(l), .. } if &**l == b"\"")
        );
        assert_eq!(
            steps.last(),
            Some(&Step::Literal(b"\"".to_vec().into_boxed_slice()))
        );
    }

    #[test]
    fn nginx_conf_quoting_and_braces() {
        let a = compile_nginx("'$remote_addr - ${remote_user} ' '\"$request\"';").unwrap();
        let b = compile_nginx("$remote_addr - $remote_user \"$request\"").unwrap();
        assert_eq!(a, b);
        assert!(compile_nginx("'$remote_addr").is_err());
        assert!(compile_nginx("$remote_addr$remote_user").is_err());
    }

    #[test]
    fn apache_directives_and_modifiers() {
        let steps =
            compile_apache(r#"%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\" %400,501{X-Forwarded-For}i %D"#)
                .unwrap();
        assert_eq!(
            kinds(&steps),
            vec![
                FieldKind::Vhost,
                FieldKind::Opaque,
                FieldKind::Client,
                FieldKind::User,
                FieldKind::User,
                FieldKind::TimeClf,
                FieldKind::Request,
                FieldKind::Status,
                FieldKind::Bytes,
                FieldKind::Referer,
                FieldKind::UserAgent,
                FieldKind::ForwardedFor,
                FieldKind::Opaque
            ]
        );
        assert_eq!(
            kinds(&compile_apache("%h %m %U%q %H").unwrap())[2],
            FieldKind::Target
        );
        assert!(compile_apache("%h %Z").is_err());
        assert!(compile_apache("%h %{%Q}t").is_err());
        assert!(compile_apache("%h %").is_err());
    }
}
