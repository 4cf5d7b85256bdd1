//! The report page: one HTML document with its CSS, SVG charts and a little script inline,
//! and a Content-Security-Policy that lets it fetch nothing at all (the script is allowed
//! by its hash). It owns the page's layout and what each section shows.
//!
//! Every string that came from a log (addresses, paths, user agents, hosts, sample lines,
//! file names) goes through [`crate::escape::html`] and, with a mask, through the
//! anonymizer's line masking first. No log text is ever put inside the `<script>`: the
//! script sorts and filters what the tables already hold (cells and `data-v` attributes).
//! The page states no time but those of the logs, so the same input makes the same bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use sha2::Digest as _;

use super::svg::{self, Bar, CLASS_NAMES, Mark, STACK, number, step_name};
use super::tally::{
    CLASSES, HOST_TOP, HostCounts, ShortKeys, Step, TOP, Tally, TopCounter, Weight,
};
use crate::anonymize::line::{Select, mask_line};
use crate::anonymize::{Masker, Mode, Prefixes, truncate};
use crate::escape;
use crate::geo::Geo;
use crate::input::Source;
use crate::scan::{FileReport, SourceCounts};
use crate::store::NewFlag;
use crate::timefmt::rfc3339;

// The page's source table is one of the lists the pass finds once.
const _: () = assert!(TOP <= crate::scan::TOP_SOURCES_KEPT);

/// What a page is made of: a finished pass and what was computed from it.
pub struct Page<'a> {
    /// What the pass learnt about each file.
    pub files: &'a [FileReport],
    /// Requests per source, as the pass counted them.
    pub sources: &'a SourceCounts,
    /// The busiest [`TOP`] sources of `sources`, by requests then address (as
    /// [`crate::scan::top_sources`] finds them).
    pub top_sources: &'a [(IpAddr, u64)],
    /// Requests per status code (0..1000), as the pass counted them.
    pub status: &'a [u64],
    /// What the report counted besides.
    pub tally: &'a Tally,
    /// The flagged episodes, or `None` when detection did not run.
    pub flagged: Option<&'a [NewFlag]>,
    /// The end of each flagged source's ban as the store recorded it (empty without one).
    pub bans: &'a HashMap<IpNet, i64>,
    /// GeoIP/ASN databases, for the countries and AS tables (`None` or empty: no tables).
    pub geo: Option<&'a Geo>,
    /// Truncate every address shown to these prefixes (`--mask`).
    pub mask: Option<Prefixes>,
}

/// The most bars the time chart draws; a longer range takes wider buckets.
const MAX_BARS: i64 = 1000;

/// The page's script: table sorting and filtering. It reads the tables, never log text of
/// its own, and the page works without it.
const SCRIPT: &str = r#"(function(){
function key(c){var v=c.getAttribute('data-v');if(v!==null){var n=Number(v);return isNaN(n)?v:n;}return c.textContent.toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(t){
var ths=t.tHead.rows[0].cells;
Array.prototype.forEach.call(ths,function(th,i){
th.tabIndex=0;th.title='Sort';
function sort(){var up=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(ths,function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',up?'ascending':'descending');
var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
rows.sort(function(x,y){var a=key(x.cells[i]),c=key(y.cells[i]);if(typeof a!==typeof c){a=String(a);c=String(c);}return (a<c?-1:a>c?1:0)*(up?1:-1);});
rows.forEach(function(r){b.appendChild(r);});}
th.addEventListener('click',sort);
th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sort();}});
});
if(t.hasAttribute('data-filter')){
var f=document.createElement('input');f.type='search';f.placeholder='Filter rows';f.className='filter';f.setAttribute('aria-label','Filter rows');
var n=document.createElement('span');n.className='shown';
f.addEventListener('input',function(){var q=f.value.toLowerCase(),k=0;
Array.prototype.forEach.call(t.tBodies[0].rows,function(r){var hit=q===''||r.textContent.toLowerCase().indexOf(q)>=0;r.hidden=!hit;if(hit)k++;});
n.textContent=q===''?'':k+' shown';});
t.parentNode.insertBefore(f,t);t.parentNode.insertBefore(n,t);}
});
})();"#;

const STYLE: &str = "\
:root{color-scheme:light}\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1120px;padding:1rem 1.5rem;color:#1a1a1a;background:#fff}\
h1{font-size:1.6rem;margin:.2rem 0}\
h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #bbb;padding-bottom:.2rem}\
h3{font-size:1rem;margin:1.2rem 0 .3rem}\
.notice{border-left:4px solid #D55E00;background:#fff3ea;padding:.5rem .8rem}\
.notice.masked{border-left-color:#009E73;background:#eaf8f2}\
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem}\
dt{color:#555}dd{margin:0;font-variant-numeric:tabular-nums}\
table{border-collapse:collapse;width:100%;margin:.4rem 0}\
th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #e2e2e2;vertical-align:top}\
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
th{background:#f3f3f3;font-weight:600}\
table.sortable th{cursor:pointer}\
th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}\
.k{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}\
td.t,td.src{white-space:nowrap}td.f{min-width:12em}\
pre{white-space:pre-wrap;word-break:break-all;font-size:12px;margin:.3rem 0;background:#f6f6f6;padding:.3rem .4rem}\
td.bar{width:22%}td.bar span{display:block;height:.75em;margin-top:.35em;background:#0072B2}\
svg.chart,svg.strip{width:100%;height:auto;display:block}\
svg .grid{stroke:#e4e4e4}svg .axis{stroke:#888}svg text{font-size:11px;fill:#333}\
svg .yl{text-anchor:end}svg .xl{text-anchor:middle}\
.legend span{margin-right:1rem;white-space:nowrap}\
.cols{display:grid;grid-template-columns:1fr 1fr;gap:0 2rem}.cols>section{min-width:0}\
.note{color:#555;font-size:.9em}\
input.filter{font:inherit;padding:.2rem .4rem;margin:.3rem .5rem .3rem 0;width:18rem}\
.shown{color:#555}\
summary{cursor:pointer;color:#0a4f80}\
@media (max-width:800px){.cols{grid-template-columns:1fr}}\
@media print{body{max-width:none;font-size:11px;padding:0}input.filter,.shown{display:none}h2{break-after:avoid}tr,svg{break-inside:avoid}}";

/// The page for `page`.
pub fn render(page: &Page<'_>) -> String {
    let mut w = Writer {
        out: String::with_capacity(256 << 10),
        masker: page.mask.map(|p| Masker::new(&Mode::Truncate(p))),
        mask: page.mask,
        buf: Vec::new(),
    };
    w.page(page);
    w.out
}

fn percent(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * n as f64 / total as f64
    }
}

/// Standard base64 with padding, for the script's CSP hash.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Content-Security-Policy of the page: nothing may be fetched or sent; inline styles
/// and the one script (by its hash) may run; images only from `data:` (none are used).
pub fn content_security_policy() -> String {
    let hash = base64(&sha2::Sha256::digest(SCRIPT.as_bytes()));
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         img-src data:; base-uri 'none'; form-action 'none'"
    )
}

struct Writer {
    out: String,
    masker: Option<Masker>,
    mask: Option<Prefixes>,
    buf: Vec<u8>,
}

/// A log-derived value a table shows: text to escape, or an address to mask.
#[derive(Clone, Copy)]
enum Key<'a> {
    Bytes(&'a [u8]),
    Net(IpNet),
    Plain(&'a str),
}

impl Writer {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// Log text, masked when asked, escaped.
    fn text(&mut self, bytes: &[u8]) {
        match &mut self.masker {
            Some(m) => {
                self.buf.clear();
                mask_line(bytes, None, Select::All, m, &mut self.buf);
                escape::html(&self.buf, &mut self.out);
            }
            None => escape::html(bytes, &mut self.out),
        }
    }

    /// Text already made printable by [`escape::text`] (stored samples), masked, escaped.
    fn escaped(&mut self, text: &str) {
        match &mut self.masker {
            Some(m) => {
                self.buf.clear();
                mask_line(text.as_bytes(), None, Select::All, m, &mut self.buf);
                let masked = String::from_utf8_lossy(&self.buf).into_owned();
                escape::html_escaped(&masked, &mut self.out);
            }
            None => escape::html_escaped(text, &mut self.out),
        }
    }

    /// A network as shown: truncated to the mask's prefix when there is one.
    fn shown_net(&self, net: IpNet) -> IpNet {
        match self.mask {
            Some(p) => masked_net(net, p),
            None => net,
        }
    }

    fn net(&mut self, net: IpNet) {
        let shown = crate::store::net::display(self.shown_net(net));
        escape::html(shown.as_bytes(), &mut self.out);
    }

    fn key(&mut self, k: Key<'_>) {
        match k {
            Key::Bytes(b) => self.text(b),
            Key::Net(n) => self.net(n),
            Key::Plain(s) => escape::html(s.as_bytes(), &mut self.out),
        }
    }

    fn page(&mut self, p: &Page<'_>) {
        let sum = |f: fn(&FileReport) -> u64| p.files.iter().map(f).sum::<u64>();
        let (lines, parsed, malformed, empty) = (
            sum(|f| f.lines),
            sum(|f| f.parsed),
            sum(|f| f.malformed),
            sum(|f| f.empty),
        );
        let first = p.files.iter().filter_map(|f| f.first_time).min();
        let last = p.files.iter().filter_map(|f| f.last_time).max();
        let range = match (first, last) {
            (Some(a), Some(b)) => format!("{} to {} (UTC)", svg::short_time(a), svg::short_time(b)),
            _ => "no times".to_string(),
        };
        let _ = write!(
            self.out,
            "<!DOCTYPE html>\n<!-- logward report: one self-contained page; it fetches nothing. -->\n\
             <html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"referrer\" content=\"no-referrer\">\
             <meta name=\"generator\" content=\"logward {}\">\
             <title>Access log report: {range}</title><style>{STYLE}</style></head><body>\n",
            content_security_policy(),
            env!("CARGO_PKG_VERSION"),
        );
        let _ = write!(
            self.out,
            "<header><h1>Access log report</h1><p>{range}, {} in {}.</p>",
            plural(lines, "line", "lines"),
            plural(p.files.len() as u64, "file", "files")
        );
        match p.mask {
            Some(m) => {
                let _ = write!(
                    self.out,
                    "<p class=\"notice masked\" id=\"masked\">Every address on this page is \
                     truncated to /{} (IPv4) and /{} (IPv6), as <code>logward anonymize</code> \
                     masks them. Paths, user agents and sample lines may still hold other \
                     personal data.</p>",
                    m.ipv4, m.ipv6
                );
            }
            None => self.push(
                "<p class=\"notice\" id=\"personal-data\"><strong>This page holds personal \
                 data:</strong> client addresses, and request lines that can identify people. \
                 Share it only with those who need it; <code>logward report --mask</code> makes \
                 a page with every address truncated.</p>",
            ),
        }
        self.push("</header>\n");
        self.summary(p, lines, parsed, malformed, empty, first, last);
        self.files(p);
        let flagged = p.flagged.unwrap_or(&[]);
        self.timeline(p, flagged, first, last);
        if let Some(flags) = p.flagged {
            self.flagged(p, flags, first, last);
        }
        self.tops(p);
        self.push(
            "<footer><p class=\"note\">Made by logward from the logs alone: times are the \
             logs' own, in UTC. Lists marked \u{2248} kept only their heaviest entries in \
             memory; their counts may fall short by the amount given.</p></footer>\n",
        );
        let _ = write!(self.out, "<script>{SCRIPT}</script>\n</body></html>\n");
    }

    #[allow(clippy::too_many_arguments)]
    fn summary(
        &mut self,
        p: &Page<'_>,
        lines: u64,
        parsed: u64,
        malformed: u64,
        empty: u64,
        first: Option<i64>,
        last: Option<i64>,
    ) {
        let mut formats: Vec<&str> = p.files.iter().filter_map(|f| f.format.as_deref()).collect();
        formats.sort_unstable();
        formats.dedup();
        let t = |t: Option<i64>| t.map_or("-".to_string(), rfc3339);
        self.push("<section id=\"summary\"><h2>Summary</h2><dl class=\"summary\">");
        let _ = write!(
            self.out,
            "<dt>Files</dt><dd id=\"n-files\">{}</dd><dt>Formats</dt><dd>",
            number(p.files.len() as u64)
        );
        self.text(formats.join(", ").as_bytes());
        let _ = write!(
            self.out,
            "</dd><dt>Lines</dt><dd><span id=\"n-lines\">{}</span> (<span id=\"n-parsed\">{}</span> \
             parsed, <span id=\"n-malformed\">{}</span> malformed, <span id=\"n-empty\">{}</span> \
             empty)</dd><dt>Time range</dt><dd><span id=\"t-first\">{}</span> .. \
             <span id=\"t-last\">{}</span></dd><dt>Distinct sources</dt>\
             <dd id=\"n-sources\">{}</dd>",
            number(lines),
            number(parsed),
            number(malformed),
            number(empty),
            t(first),
            t(last),
            number(p.sources.len() as u64),
        );
        if let Some(flags) = p.flagged {
            let distinct: HashSet<IpNet> = flags.iter().map(|f| f.source).collect();
            let _ = write!(
                self.out,
                "<dt>Flagged sources</dt><dd><span id=\"n-flagged\">{}</span> \
                 (<span id=\"n-episodes\">{}</span> episodes)</dd>",
                number(distinct.len() as u64),
                number(flags.len() as u64)
            );
        } else {
            self.push("<dt>Flagged sources</dt><dd>detection did not run</dd>");
        }
        self.push("</dl></section>\n");
    }

    fn files(&mut self, p: &Page<'_>) {
        self.push(
            "<section id=\"files\"><h2>Files</h2><table class=\"sortable\"><thead><tr>\
             <th>file</th><th>format</th><th>compression</th><th class=\"n\">lines</th>\
             <th class=\"n\">malformed</th><th>first</th><th>last</th><th>note</th>\
             </tr></thead><tbody>",
        );
        for f in p.files {
            self.push("<tr><td class=\"k f\">");
            if let Some(s) = &f.source {
                match s {
                    Source::File(path) => {
                        use std::os::unix::ffi::OsStrExt;
                        self.text(path.as_os_str().as_bytes());
                    }
                    other => self.text(other.display().as_bytes()),
                }
            }
            self.push("</td><td>");
            self.text(f.format.as_deref().unwrap_or("-").as_bytes());
            let _ = write!(
                self.out,
                "</td><td>{}</td><td class=\"n\" data-v=\"{}\">{}</td><td class=\"n\" data-v=\"{}\">{}</td>\
                 <td class=\"t\" data-v=\"{}\">{}</td><td class=\"t\" data-v=\"{}\">{}</td><td>",
                f.compression.unwrap_or("-"),
                f.lines,
                number(f.lines),
                f.malformed,
                number(f.malformed),
                f.first_time.unwrap_or(0),
                f.first_time.map_or("-".into(), svg::short_time),
                f.last_time.unwrap_or(0),
                f.last_time.map_or("-".into(), svg::short_time),
            );
            let mut notes = Vec::new();
            if let Some(e) = &f.error {
                notes.push(crate::error::chain(e).to_string());
            }
            if let Some(w) = f.few_clients() {
                notes.push(w);
            }
            for ex in f.examples.iter().take(3) {
                notes.push(format!("line {}: {}", ex.line, ex.error));
            }
            self.text(notes.join("; ").as_bytes());
            self.push("</td></tr>");
        }
        self.push("</tbody></table></section>\n");
    }

    /// The chart of requests over time, with its table.
    fn timeline(&mut self, p: &Page<'_>, flags: &[NewFlag], first: Option<i64>, last: Option<i64>) {
        self.push("<section id=\"time\"><h2>Requests over time</h2>");
        let (Some(first), Some(last)) = (first, last) else {
            self.push("<p>No line had a time.</p></section>\n");
            return;
        };
        let (step, base, n) = chart_buckets(first, last, page_step(p.tally, first, last), MAX_BARS);
        let mut bars: Vec<Bar> = (0..n)
            .map(|i| Bar {
                start: (base + i as i64) * step,
                classes: [0; CLASSES],
                flagged: 0,
            })
            .collect();
        let index = |t: i64| (t.div_euclid(step) - base).clamp(0, n as i64 - 1) as usize;
        for (t, c) in p.tally.timeline.buckets() {
            bars[index(t)].classes.add(&c);
        }
        let detection = p.flagged.is_some();
        for (_, points) in flagged_series(p.tally, flags) {
            for (t, k) in points {
                bars[index(t)].flagged += k;
            }
        }
        let _ = write!(
            self.out,
            "<p class=\"note\">One bar per {}{}.</p>",
            step_name(step),
            if detection {
                "; the dashed line is the requests of the flagged sources (all their requests, \
                 not only those that matched a rule)"
            } else {
                ""
            }
        );
        self.push(&svg::requests_chart(&bars, step, detection));
        self.push(&svg::legend(detection));
        let untimed: u64 = p.tally.untimed.iter().sum();
        if untimed > 0 {
            let _ = write!(
                self.out,
                "<p class=\"note\">{} parsed requests had no time and are not drawn.</p>",
                number(untimed)
            );
        }
        self.push(
            "<details><summary>Table of the chart</summary><table class=\"sortable\"><thead><tr><th>from</th>",
        );
        for c in STACK {
            let _ = write!(self.out, "<th class=\"n\">{}</th>", CLASS_NAMES[c]);
        }
        self.push("<th class=\"n\">total</th>");
        if detection {
            self.push("<th class=\"n\">flagged</th>");
        }
        self.push("</tr></thead><tbody>");
        for b in bars
            .iter()
            .filter(|b| b.classes.weight() > 0 || b.flagged > 0)
        {
            let _ = write!(
                self.out,
                "<tr><td data-v=\"{}\">{}</td>",
                b.start,
                svg::short_time(b.start)
            );
            for c in STACK {
                let _ = write!(self.out, "<td class=\"n\">{}</td>", number(b.classes[c]));
            }
            let _ = write!(
                self.out,
                "<td class=\"n\">{}</td>",
                number(b.classes.weight())
            );
            if detection {
                let _ = write!(self.out, "<td class=\"n\">{}</td>", number(b.flagged));
            }
            self.push("</tr>");
        }
        self.push("</tbody></table></details></section>\n");
    }

    /// The flagged sources' section: the filter box, the sortable table with each episode's
    /// sample lines, and the rule strips. One function because it is the section's markup
    /// written top to bottom.
    fn flagged(&mut self, p: &Page<'_>, flags: &[NewFlag], first: Option<i64>, last: Option<i64>) {
        self.push("<section id=\"flagged\"><h2>Flagged sources</h2>");
        if flags.is_empty() {
            self.push("<p id=\"flagged-none\">No source was flagged.</p></section>\n");
            return;
        }
        self.push(
            "<p class=\"note\">One row per episode (a source that attacked twice, apart, has two). \
             Click a column to sort; sample lines under each source.</p>\
             <table class=\"sortable\" id=\"flagged-table\" data-filter><thead><tr>\
             <th>source</th><th>rules</th><th>first seen</th><th>last seen</th>\
             <th class=\"n\">events</th><th>site</th><th>country</th><th>AS</th>",
        );
        // A page made without a store, or whose store bans none of its sources, has no
        // ban column.
        let bans = !p.bans.is_empty();
        if bans {
            self.push("<th>ban</th>");
        }
        self.push("<th>sample lines</th></tr></thead><tbody>");
        for f in flags {
            let shown = self.shown_net(f.source);
            let (lo, _) = crate::store::net::bounds(shown);
            let sort: String = lo.iter().map(|b| format!("{b:02x}")).collect();
            let _ = write!(
                self.out,
                "<tr><td class=\"k src\" data-v=\"{}{sort}/{:03}\">",
                if shown.addr().is_ipv4() { 4 } else { 6 },
                shown.prefix_len()
            );
            self.net(f.source);
            self.push("</td><td>");
            for (i, (rule, n)) in f.rule_events.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.text(rule.as_bytes());
                let _ = write!(self.out, " ({})", number(*n));
            }
            if f.rule_events.is_empty() {
                self.text(f.rules.join(", ").as_bytes());
            }
            let _ = write!(
                self.out,
                "</td><td class=\"t\" data-v=\"{}\">{}</td><td class=\"t\" data-v=\"{}\">{}</td>\
                 <td class=\"n\" data-v=\"{}\">{}</td><td>",
                f.first_seen,
                seconds_time(f.first_seen),
                f.last_seen,
                seconds_time(f.last_seen),
                f.events,
                number(f.events)
            );
            if let Some((site, _)) = f.sites.first() {
                self.text(site.as_bytes());
            }
            self.push("</td><td>");
            if let Some(c) = &f.country {
                self.text(c.as_bytes());
            }
            let _ = write!(self.out, "</td><td data-v=\"{}\">", f.asn.unwrap_or(0));
            if let Some(a) = f.asn {
                let _ = write!(self.out, "AS{a} ");
            }
            if let Some(o) = &f.as_org {
                self.text(o.as_bytes());
            }
            match p.bans.get(&f.source) {
                Some(&until) => {
                    let _ = write!(
                        self.out,
                        "</td><td class=\"t\" data-v=\"{until}\">until {}</td><td>",
                        seconds_time(until)
                    );
                }
                None if bans => self.push("</td><td data-v=\"0\">none</td><td>"),
                None => self.push("</td><td>"),
            }
            if !f.samples.is_empty() {
                let _ = write!(
                    self.out,
                    "<details><summary>{}</summary><pre>",
                    plural(f.samples.len() as u64, "line", "lines")
                );
                for (i, s) in f.samples.iter().enumerate() {
                    if i > 0 {
                        self.push("\n");
                    }
                    if let Some(at) = &s.at {
                        self.push("<span class=\"note\">");
                        self.escaped(at);
                        self.push("</span>\n");
                    }
                    self.escaped(&s.line);
                }
                self.push("</pre></details>");
            }
            self.push("</td></tr>");
        }
        self.push("</tbody></table>");
        self.rules(flags, first, last);
        self.push("</section>\n");
    }

    /// Per rule: when it fired, as a strip, and a table of the same.
    fn rules(&mut self, flags: &[NewFlag], first: Option<i64>, last: Option<i64>) {
        let mut by_rule: BTreeMap<&str, Vec<&NewFlag>> = BTreeMap::new();
        for f in flags {
            for r in &f.rules {
                by_rule.entry(r.as_str()).or_default().push(f);
            }
        }
        let from = first.unwrap_or(0);
        let to = last.unwrap_or(from);
        self.push("<h3 id=\"rules\">When each rule fired</h3><p class=\"note\">A band per episode from its first to its last event; a tick where the rule first overflowed.</p>");
        let mut rows = Vec::new();
        for (rule, eps) in &by_rule {
            let labels: Vec<String> = eps
                .iter()
                .map(|f| {
                    let mut s = String::new();
                    escape::html(
                        crate::store::net::display(self.shown_net(f.source)).as_bytes(),
                        &mut s,
                    );
                    s
                })
                .collect();
            let fired = |f: &NewFlag| {
                f.explain
                    .iter()
                    .find(|x| x.rule == *rule)
                    .map_or(f.first_seen, |x| x.at)
            };
            let marks: Vec<Mark<'_>> = eps
                .iter()
                .zip(&labels)
                .map(|(f, label)| Mark {
                    label,
                    first: f.first_seen,
                    last: f.last_seen,
                    fired: fired(f),
                })
                .collect();
            let mut name = String::new();
            escape::html(rule.as_bytes(), &mut name);
            let _ = write!(self.out, "<h4 class=\"k\">{name}</h4>");
            self.push(&svg::rule_strip(&name, &marks, from, to));
            let sources: HashSet<IpNet> = eps.iter().map(|f| f.source).collect();
            let events: u64 = eps
                .iter()
                .flat_map(|f| f.rule_events.iter().filter(|(r, _)| r == rule))
                .map(|(_, n)| n)
                .sum();
            let times: Vec<i64> = eps.iter().map(|f| fired(f)).collect();
            rows.push((
                name,
                eps.len(),
                sources.len(),
                events,
                times.iter().min().copied().unwrap_or(0),
                times.iter().max().copied().unwrap_or(0),
            ));
        }
        self.push(
            "<details><summary>Table of the rules</summary><table class=\"sortable\"><thead><tr>\
             <th>rule</th><th class=\"n\">episodes</th><th class=\"n\">sources</th>\
             <th class=\"n\">events</th><th>first fired</th><th>last fired</th></tr></thead><tbody>",
        );
        for (name, eps, sources, events, lo, hi) in rows {
            let _ = write!(
                self.out,
                "<tr><td class=\"k\">{name}</td><td class=\"n\">{eps}</td><td class=\"n\">{sources}</td>\
                 <td class=\"n\" data-v=\"{events}\">{}</td><td data-v=\"{lo}\">{}</td><td data-v=\"{hi}\">{}</td></tr>",
                number(events),
                rfc3339(lo),
                rfc3339(hi)
            );
        }
        self.push("</tbody></table></details>");
    }

    /// A table of (key, requests) rows with a share bar, under a third-level heading.
    fn top_table(
        &mut self,
        id: &str,
        title: &str,
        what: &str,
        rows: &[(Key<'_>, u64)],
        total: u64,
        short_by: u64,
    ) {
        self.top_table_under("h3", id, title, what, rows, total, short_by);
    }

    /// [`Writer::top_table`] under a heading of the element `h`.
    #[allow(clippy::too_many_arguments)]
    fn top_table_under(
        &mut self,
        h: &str,
        id: &str,
        title: &str,
        what: &str,
        rows: &[(Key<'_>, u64)],
        total: u64,
        short_by: u64,
    ) {
        let _ = write!(self.out, "<section id=\"{id}\"><{h}>{title}");
        if short_by > 0 {
            let _ = write!(
                self.out,
                " <span class=\"note\">(\u{2248} counts may fall short by up to {})</span>",
                number(short_by)
            );
        }
        let _ = write!(self.out, "</{h}>");
        if rows.is_empty() {
            self.push("<p class=\"note\">None.</p></section>");
            return;
        }
        let _ = write!(
            self.out,
            "<table class=\"sortable\"><thead><tr><th>{what}</th><th class=\"n\">requests</th>\
             <th class=\"n\">share</th><th aria-label=\"bar\"></th></tr></thead><tbody>"
        );
        let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
        for &(k, n) in rows {
            self.push("<tr><td class=\"k\">");
            self.key(k);
            let _ = write!(
                self.out,
                "</td><td class=\"n\" data-v=\"{n}\">{}</td><td class=\"n\" data-v=\"{n}\">{:.1}%</td>\
                 <td class=\"bar\"><span style=\"width:{:.1}%\"></span></td></tr>",
                number(n),
                percent(n, total),
                percent(n, max)
            );
        }
        self.push("</tbody></table></section>");
    }

    fn counter_rows<'c>(c: &'c TopCounter<u64>, n: usize) -> Vec<(Key<'c>, u64)> {
        c.top(n)
            .into_iter()
            .map(|(k, v)| (Key::Bytes(k), *v))
            .collect()
    }

    fn short_rows(c: &ShortKeys, n: usize) -> Vec<(Key<'_>, u64)> {
        c.top(n)
            .into_iter()
            .map(|(k, v)| (Key::Bytes(k), v))
            .collect()
    }

    /// The "What the logs hold" section: every top list, in the order the page shows them.
    /// One function because it is the section's markup written top to bottom.
    fn tops(&mut self, p: &Page<'_>) {
        let total = p.tally.requests();
        self.push("<section id=\"tops\"><h2>What the logs hold</h2><div class=\"cols\">");
        // Sources, merged by masked network when masking.
        let sources: Vec<(IpNet, u64)> = match self.mask {
            Some(m) => {
                let mut by: HashMap<IpNet, u64> = HashMap::new();
                for (a, n) in p.sources {
                    *by.entry(masked_net(IpNet::from(*a), m)).or_default() += n;
                }
                let mut v: Vec<(IpNet, u64)> = by.into_iter().collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                v.truncate(TOP);
                v
            }
            None => p
                .top_sources
                .iter()
                .take(TOP)
                .map(|&(a, n)| (IpNet::from(a), n))
                .collect(),
        };
        let rows: Vec<(Key<'_>, u64)> = sources.iter().map(|(a, n)| (Key::Net(*a), *n)).collect();
        let title = if self.mask.is_some() {
            "Top source networks"
        } else {
            "Top sources"
        };
        self.top_table("top-sources", title, "source", &rows, total, 0);
        // Status codes.
        let mut codes: Vec<(String, u64)> = p
            .status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (c.to_string(), *n))
            .collect();
        codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rows: Vec<(Key<'_>, u64)> = codes.iter().map(|(c, n)| (Key::Plain(c), *n)).collect();
        self.top_table("status", "Status codes", "status", &rows, total, 0);
        let t = p.tally;
        let rows = Self::counter_rows(&t.not_found, TOP);
        let not_found = p.status.get(404).copied().unwrap_or(0);
        self.top_table(
            "not-found",
            "Top 404 paths",
            "path",
            &rows,
            not_found,
            t.not_found.short_by(),
        );
        let rows = Self::counter_rows(&t.agents, TOP);
        self.top_table(
            "agents",
            "Top user agents",
            "user agent",
            &rows,
            total,
            t.agents.short_by(),
        );
        let rows = Self::short_rows(&t.methods, TOP);
        self.top_table(
            "methods",
            "Methods",
            "method",
            &rows,
            total,
            t.methods.short_by(),
        );
        let rows = Self::short_rows(&t.protocols, TOP);
        self.top_table(
            "protocols",
            "HTTP versions",
            "version",
            &rows,
            total,
            t.protocols.short_by(),
        );
        if let Some(geo) = p.geo.filter(|g| !g.is_empty()) {
            let mut countries: HashMap<String, u64> = HashMap::new();
            let mut ases: HashMap<(u32, String), u64> = HashMap::new();
            for (a, n) in p.sources {
                let info = geo.lookup(*a);
                if let Some(c) = info.country {
                    *countries.entry(c).or_default() += n;
                }
                if let Some(asn) = info.asn {
                    *ases
                        .entry((asn, info.as_org.unwrap_or_default()))
                        .or_default() += n;
                }
            }
            let mut c: Vec<(String, u64)> = countries.into_iter().collect();
            c.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            c.truncate(TOP);
            let rows: Vec<(Key<'_>, u64)> = c
                .iter()
                .map(|(k, n)| (Key::Bytes(k.as_bytes()), *n))
                .collect();
            self.top_table("countries", "Countries", "country", &rows, total, 0);
            let mut a: Vec<(String, u64)> = ases
                .into_iter()
                .map(|((asn, org), n)| (format!("AS{asn} {org}"), n))
                .collect();
            a.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            a.truncate(TOP);
            let rows: Vec<(Key<'_>, u64)> = a
                .iter()
                .map(|(k, n)| (Key::Bytes(k.as_bytes()), *n))
                .collect();
            self.top_table("ases", "Autonomous systems", "AS", &rows, total, 0);
        }
        self.push("</div></section>\n");
        self.vhosts(p);
    }

    /// A section per virtual host, when the logs name them.
    fn vhosts(&mut self, p: &Page<'_>) {
        let t = &p.tally.vhosts;
        if t.is_empty() {
            return;
        }
        let flags = p.flagged.unwrap_or(&[]);
        self.push("<section id=\"vhosts\"><h2>Virtual hosts</h2>");
        if t.short_by() > 0 {
            let _ = write!(
                self.out,
                "<p class=\"note\">\u{2248} counts may fall short by up to {}.</p>",
                number(t.short_by())
            );
        }
        self.push(
            "<table class=\"sortable\" data-filter><thead><tr><th>host</th><th class=\"n\">requests</th>",
        );
        for c in STACK {
            let _ = write!(self.out, "<th class=\"n\">{}</th>", CLASS_NAMES[c]);
        }
        self.push(
            "<th class=\"n\">flagged sources</th><th>flagged (top 5)</th></tr></thead><tbody>",
        );
        for (host, counts) in t.top(4 * TOP) {
            let on: Vec<&NewFlag> = flags
                .iter()
                .filter(|f| f.sites.iter().any(|(s, _)| s.as_bytes() == host))
                .collect();
            let distinct: HashSet<IpNet> = on.iter().map(|f| f.source).collect();
            let counts = &counts.classes;
            self.push("<tr><td class=\"k\">");
            self.text(host);
            let total = counts.weight();
            let _ = write!(
                self.out,
                "</td><td class=\"n\" data-v=\"{total}\">{}</td>",
                number(total)
            );
            for c in STACK {
                let _ = write!(
                    self.out,
                    "<td class=\"n\" data-v=\"{}\">{}</td>",
                    counts[c],
                    number(counts[c])
                );
            }
            let _ = write!(
                self.out,
                "<td class=\"n\">{}</td><td class=\"k\">",
                distinct.len()
            );
            let mut shown: Vec<IpNet> = distinct.into_iter().collect();
            shown.sort();
            for (i, n) in shown.iter().take(5).enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.net(*n);
            }
            self.push("</td></tr>");
        }
        self.push("</tbody></table>");
        self.busiest_hosts(p);
        self.push("</section>\n");
    }

    /// A part per virtual host for the [`HOSTS_SHOWN`] busiest: its requests by status
    /// class, a small chart of its requests over time with the chart's table, and its top
    /// 404 paths; then what the other hosts add up to.
    fn busiest_hosts(&mut self, p: &Page<'_>) {
        let t = &p.tally.vhosts;
        let hosts = t.top(usize::MAX);
        let first = p.files.iter().filter_map(|f| f.first_time).min();
        let last = p.files.iter().filter_map(|f| f.last_time).max();
        let _ = write!(
            self.out,
            "<h3 id=\"busiest-hosts\">By host</h3><p class=\"note\">{}, with its requests \
             over time and its top 404 paths.</p>",
            if hosts.len() <= HOSTS_SHOWN {
                "Each virtual host".to_string()
            } else {
                format!("Each of the {HOSTS_SHOWN} busiest virtual hosts")
            }
        );
        for (i, (host, counts)) in hosts.iter().take(HOSTS_SHOWN).enumerate() {
            self.host_part(i, host, counts, p.tally, first.zip(last));
        }
        let rest: u64 = hosts
            .iter()
            .skip(HOSTS_SHOWN)
            .map(|(_, c)| c.weight())
            .sum::<u64>()
            + t.dropped();
        if rest > 0 {
            let others = hosts.len().saturating_sub(HOSTS_SHOWN);
            let all: u64 = hosts.iter().map(|(_, c)| c.weight()).sum::<u64>() + t.dropped();
            let _ = write!(
                self.out,
                "<p id=\"hosts-rest\">{}{} other hosts: <span id=\"hosts-rest-n\">{}</span> \
                 requests ({:.1}%).</p>",
                if t.dropped() > 0 { "more than " } else { "" },
                number(others as u64),
                number(rest),
                percent(rest, all)
            );
        }
    }

    /// The part of the page for the `i`th busiest host.
    fn host_part(
        &mut self,
        i: usize,
        host: &[u8],
        counts: &HostCounts,
        tally: &Tally,
        range: Option<(i64, i64)>,
    ) {
        let total = counts.weight();
        let _ = write!(
            self.out,
            "<section class=\"host\" id=\"host-{i}\"><h4 class=\"k\">"
        );
        self.text(host);
        let _ = write!(
            self.out,
            "</h4><p><span class=\"host-n\" data-v=\"{total}\">{}</span> requests",
            number(total)
        );
        for c in STACK {
            if counts.classes[c] > 0 {
                let _ = write!(
                    self.out,
                    ", {} <span data-v=\"{}\">{}</span>",
                    CLASS_NAMES[c],
                    counts.classes[c],
                    number(counts.classes[c])
                );
            }
        }
        self.push(".</p>");
        let points = counts.points();
        if let (Some((first, last)), false) = (range, points.is_empty()) {
            let narrowest = page_step(tally, first, last).max(counts.step().seconds());
            let (step, base, n) = chart_buckets(first, last, narrowest, HOST_BARS);
            let mut bars: Vec<(i64, u64)> = (0..n).map(|b| ((base + b as i64) * step, 0)).collect();
            for (t, k) in points {
                let at = (t.div_euclid(step) - base).clamp(0, n as i64 - 1) as usize;
                bars[at].1 += k;
            }
            let mut label = String::new();
            self.buf.clear();
            match &mut self.masker {
                Some(m) => {
                    mask_line(host, None, Select::All, m, &mut self.buf);
                    escape::html(&self.buf, &mut label);
                }
                None => escape::html(host, &mut label),
            }
            self.push(&svg::host_chart(&label, &bars, step));
            self.push(
                "<details><summary>Table of the chart</summary><table class=\"sortable\">\
                 <thead><tr><th>from</th><th class=\"n\">requests</th></tr></thead><tbody>",
            );
            for (start, k) in bars.iter().filter(|b| b.1 > 0) {
                let _ = write!(
                    self.out,
                    "<tr><td data-v=\"{start}\">{}</td><td class=\"n\" data-v=\"{k}\">{}</td></tr>",
                    svg::short_time(*start),
                    number(*k)
                );
            }
            self.push("</tbody></table></details>");
        }
        let rows = Self::counter_rows(&counts.not_found, HOST_TOP);
        let not_found = counts.not_found.total();
        let id = format!("host-{i}-not-found");
        self.top_table_under(
            "h5",
            &id,
            "Top 404 paths",
            "path",
            &rows,
            not_found,
            counts.not_found.short_by(),
        );
        self.push("</section>");
    }
}

/// Virtual hosts the page gives a part of their own (see `Writer::busiest_hosts`).
pub const HOSTS_SHOWN: usize = 6;

/// The most bars a host's chart draws.
const HOST_BARS: i64 = 240;

/// The narrowest bucket the page's charts draw for `first..=last`: the span's usual width
/// (see [`Step::for_span`]), or the timeline's if it had to count in wider ones.
fn page_step(tally: &Tally, first: i64, last: i64) -> i64 {
    Step::for_span(last - first)
        .max(tally.timeline.step())
        .seconds()
}

/// The buckets of a chart of `first..=last`: (width in seconds, index of the first bucket,
/// how many), at least `step` wide and widened by a whole factor to at most `max_bars`.
fn chart_buckets(first: i64, last: i64, mut step: i64, max_bars: i64) -> (i64, i64, usize) {
    let count = |step: i64| last.div_euclid(step) - first.div_euclid(step) + 1;
    if count(step) > max_bars {
        step *= (count(step) + max_bars - 1) / max_bars;
    }
    (step, first.div_euclid(step), count(step) as usize)
}

/// A time to the second, as tables show it: `2026-11-15 13:00:05`.
fn seconds_time(t: i64) -> String {
    rfc3339(t).trim_end_matches('Z').replacen('T', " ", 1)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", number(n), if n == 1 { one } else { many })
}

/// `net` truncated to at most the mask's prefix for its family.
pub fn masked_net(net: IpNet, m: Prefixes) -> IpNet {
    let addr = net.addr();
    let canonical = addr.to_canonical();
    let (keep, a) = match canonical {
        IpAddr::V4(_) if addr.is_ipv6() => (m.ipv4, canonical),
        IpAddr::V4(_) => (m.ipv4.min(net.prefix_len()), addr),
        IpAddr::V6(_) => (m.ipv6.min(net.prefix_len()), addr),
    };
    let masked = truncate(a, m);
    IpNet::new(masked, keep).map_or(net, |n| n.trunc())
}

/// The requests over time of the sources inside the flagged networks.
fn flagged_series(tally: &Tally, flags: &[NewFlag]) -> Vec<(IpAddr, Vec<(i64, u64)>)> {
    if flags.is_empty() {
        return Vec::new();
    }
    // Flagged single addresses (the usual case) are looked up, not matched against every
    // source of the logs.
    if flags
        .iter()
        .all(|f| f.source.prefix_len() == f.source.max_prefix_len())
    {
        return tally.series_of_each(flags.iter().map(|f| f.source.addr()));
    }
    // Else every source is matched against the flagged networks, merged into disjoint
    // spans of addresses in order: a binary search per source.
    let mut spans: Vec<(u8, u128, u128)> = flags
        .iter()
        .map(|f| {
            let (family, start) = address_key(f.source.network());
            (family, start, address_key(f.source.broadcast()).1)
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u8, u128, u128)> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if last.0 == span.0 && span.1 <= last.2 => last.2 = last.2.max(span.2),
            _ => merged.push(span),
        }
    }
    tally.series_of(|a| {
        let (family, x) = address_key(a);
        let i = merged.partition_point(|s| (s.0, s.1) <= (family, x));
        i > 0 && merged[i - 1].0 == family && x <= merged[i - 1].2
    })
}

/// An address as its family (4 or 6) and its bits, which order it within the family.
fn address_key(a: IpAddr) -> (u8, u128) {
    match a {
        IpAddr::V4(v4) => (4, u128::from(v4.to_bits())),
        IpAddr::V6(v6) => (6, v6.to_bits()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Record;
    use crate::scan::Visitor;
    use crate::store::Sample;

    const UA: &[u8] = b"Mozilla/5.0 <script>alert('x')</script> \"q\" 'a' onload=x";
    const PATH: &[u8] = b"/a</table><b>bold</b>&amp;\"x\"";

    /// A page of `n` requests from `client` with a hostile user agent and path, and one
    /// flagged episode with a sample line.
    fn page_of(clients: &[&str], mask: Option<Prefixes>) -> String {
        let mut tally = Tally::new();
        let mut sources = SourceCounts::default();
        let mut status = vec![0u64; 1000];
        for (i, c) in clients.iter().enumerate() {
            let addr: IpAddr = c.parse().unwrap();
            let rec = Record {
                client: Some(addr),
                time: Some(1_800_000_000 + i as i64),
                method: Some(b"GET"),
                target: Some(PATH),
                protocol: Some(b"HTTP/1.1"),
                status: Some(404),
                user_agent: Some(UA),
                vhost: Some(b"<i>host</i>"),
                ..Record::default()
            };
            tally.count_source(addr, &rec);
            tally.record(0, &rec);
            *sources.entry(addr).or_default() += 1;
            status[404] += 1;
        }
        let files = [FileReport {
            lines: clients.len() as u64,
            parsed: clients.len() as u64,
            first_time: Some(1_800_000_000),
            last_time: Some(1_800_000_000 + clients.len() as i64),
            ..FileReport::default()
        }];
        let flag = NewFlag {
            source: IpNet::from(clients[0].parse::<IpAddr>().unwrap()),
            rules: vec!["http-probing".into()],
            rule_events: vec![("http-probing".into(), 3)],
            first_seen: 1_800_000_000,
            last_seen: 1_800_000_002,
            events: 3,
            samples: clients
                .iter()
                .map(|c| {
                    let line =
                        format!("{c} - - \"GET /x?ip={c} HTTP/1.1\" 404 1 \"-\" \"<script>\"");
                    Sample::new(Some("access.log:1".into()), line.as_bytes())
                })
                .collect(),
            sites: vec![("<i>host</i>".into(), 3)],
            files: Vec::new(),
            explain: Vec::new(),
            country: None,
            asn: None,
            as_org: None,
        };
        render(&Page {
            files: &files,
            sources: &sources,
            top_sources: &crate::scan::top_sources(&sources, TOP),
            status: &status,
            tally: &tally,
            flagged: Some(&[flag]),
            bans: &HashMap::new(),
            geo: None,
            mask,
        })
    }

    /// A page of the requests (host, status, minute) from one client each.
    fn page_of_hosts(requests: &[(&str, u16, i64)], mask: Option<Prefixes>) -> String {
        let mut tally = Tally::new();
        let mut sources = SourceCounts::default();
        let mut status = vec![0u64; 1000];
        for (i, &(host, code, minute)) in requests.iter().enumerate() {
            let addr = IpAddr::from([198, 51, 100, (i % 200) as u8]);
            let target = format!("/missing/{}?q=1", i % 7);
            let rec = Record {
                client: Some(addr),
                time: Some(1_800_000_000 + 60 * minute),
                method: Some(b"GET"),
                target: Some(target.as_bytes()),
                protocol: Some(b"HTTP/1.1"),
                status: Some(code),
                vhost: Some(host.as_bytes()),
                ..Record::default()
            };
            tally.count_source(addr, &rec);
            tally.record(0, &rec);
            *sources.entry(addr).or_default() += 1;
            status[usize::from(code)] += 1;
        }
        let last = requests.iter().map(|r| r.2).max().unwrap_or(0);
        let files = [FileReport {
            lines: requests.len() as u64,
            parsed: requests.len() as u64,
            first_time: Some(1_800_000_000),
            last_time: Some(1_800_000_000 + 60 * last),
            ..FileReport::default()
        }];
        render(&Page {
            files: &files,
            sources: &sources,
            top_sources: &crate::scan::top_sources(&sources, TOP),
            status: &status,
            tally: &tally,
            flagged: Some(&[]),
            bans: &HashMap::new(),
            geo: None,
            mask,
        })
    }

    /// The text of the element with `id` in `page`, up to the next tag.
    fn text_of<'p>(page: &'p str, id: &str) -> &'p str {
        let at = page.find(&format!("id=\"{id}\"")).unwrap();
        let start = at + page[at..].find('>').unwrap() + 1;
        &page[start..start + page[start..].find('<').unwrap()]
    }

    #[test]
    fn the_busiest_hosts_have_a_part_each_and_the_rest_is_summed() {
        // Host k gets 10 * (9 - k) requests over an hour, a tenth of them 404s; an
        // address for a host and a hostile name among them.
        let names = [
            "shop.example",
            "192.0.2.55",
            "<b>x</b>.example",
            "d.example",
            "e.example",
            "f.example",
            "g.example",
            "h.example",
        ];
        let mut requests = Vec::new();
        for (k, host) in names.iter().enumerate() {
            for j in 0..10 * (9 - k as i64) {
                let code = if j % 10 == 0 { 404 } else { 200 };
                requests.push((*host, code, j % 60));
            }
        }
        let page = page_of_hosts(&requests, None);
        assert_eq!(page.matches("<section class=\"host\"").count(), HOSTS_SHOWN);
        assert!(page.contains("id=\"host-0\"><h4 class=\"k\">shop.example</h4>"));
        assert!(page.contains("<h4 class=\"k\">&lt;b&gt;x&lt;/b&gt;.example</h4>"));
        assert!(!page.contains("<b>x</b>"));
        // The busiest host: 90 requests, 9 of them 404s, each drawn and tabled once.
        let part = &page[page.find("id=\"host-0\"").unwrap()..page.find("id=\"host-1\"").unwrap()];
        assert!(part.contains("data-v=\"90\">90</span> requests, 2xx <span data-v=\"81\">81</span>, 4xx <span data-v=\"9\">9</span>"), "{part}");
        let drawn: u64 = part
            .match_indices(" requests</title></rect>")
            .map(|(i, _)| {
                let head = &part[..i];
                number_before(head)
            })
            .sum();
        assert_eq!(drawn, 90, "every request is in a bar");
        assert!(part.contains("id=\"host-0-not-found\""));
        assert_eq!(part.matches("/missing/").count(), HOST_TOP.min(7), "{part}");
        // The two least busy hosts (30 and 20 requests) are summed.
        assert_eq!(text_of(&page, "hosts-rest-n"), "50");
        assert!(page.contains("2 other hosts:"));
        assert!(!page.contains("id=\"host-6\""));

        // Masked, the host that is an address is truncated wherever it shows.
        let masked = page_of_hosts(&requests, Some(Prefixes::DEFAULT));
        assert!(!masked.contains("192.0.2.55"));
        assert!(
            masked.contains("<h4 class=\"k\">192.0.2.0</h4>"),
            "{masked}"
        );
        // Fewer hosts than the parts shown: each has its part and nothing is summed.
        let few = page_of_hosts(&requests[..90], None);
        assert_eq!(few.matches("<section class=\"host\"").count(), 1);
        assert!(!few.contains("hosts-rest") && few.contains("Each virtual host"));
    }

    /// The number (with thousands commas) that `s` ends with.
    fn number_before(s: &str) -> u64 {
        let digits: String = s
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        digits.chars().rev().collect::<String>().parse().unwrap()
    }

    #[test]
    fn hostile_fields_are_inert_text() {
        let page = page_of(&["192.0.2.10", "2001:db8:5:6::7"], None);
        assert_eq!(
            page.matches("<script").count(),
            1,
            "only the page's own script"
        );
        assert_eq!(page.matches("</script>").count(), 1);
        assert!(!page.contains("</table><b>"));
        assert!(!page.contains("<i>host"));
        assert!(!page.contains("'a'") && !page.contains("\"q\""));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &quot;q&quot;"));
        assert!(page.contains("/a&lt;/table&gt;&lt;b&gt;bold&lt;/b&gt;&amp;amp;"));
        // The script holds no log text; the page states the policy before any script.
        let script = &page[page.find("<script>").unwrap()..];
        assert!(!script.contains("192.0.2.10") && !script.contains("Mozilla"));
        assert!(page.find("Content-Security-Policy").unwrap() < page.find("<script>").unwrap());
        assert!(page.contains("id=\"personal-data\""));
        assert!(page.contains("192.0.2.10") && page.contains("2001:db8:5:6::7"));
    }

    #[test]
    fn a_masked_page_shows_no_full_address() {
        let clients = [
            "192.0.2.10",
            "198.51.100.77",
            "2001:db8:5:6::7",
            "::ffff:203.0.113.9",
        ];
        let page = page_of(&clients, Some(Prefixes::DEFAULT));
        for c in clients {
            assert!(!page.contains(c), "{c} is on the masked page");
        }
        assert!(!page.contains("203.0.113.9"));
        assert!(page.contains("192.0.2.0/24") && page.contains("2001:db8:5::/48"));
        assert!(page.contains("id=\"masked\"") && !page.contains("id=\"personal-data\""));
    }

    #[test]
    fn the_script_hash_in_the_policy_is_the_scripts() {
        let page = page_of(&["192.0.2.10"], None);
        let start = page.find("<script>").unwrap() + "<script>".len();
        let end = page.find("</script>").unwrap();
        let hash = base64(&sha2::Sha256::digest(&page.as_bytes()[start..end]));
        assert!(page.contains(&format!("script-src 'sha256-{hash}'")));
        assert_eq!(
            page,
            page_of(&["192.0.2.10"], None),
            "the same input, the same page"
        );
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn flagged_networks_overlay_exactly_the_sources_inside_them() {
        // Sources on both sides of every edge of the flagged networks, interleaved in runs.
        let sources: Vec<IpAddr> = [
            "192.0.2.255",
            "192.0.3.0",
            "192.0.3.77",
            "192.0.3.255",
            "192.0.4.0",
            "198.51.100.7",
            "198.51.100.8",
            "2001:db8:1::1",
            "2001:db8:1:0:ffff:ffff:ffff:ffff",
            "2001:db8:1:1::",
            "2001:db8::1",
            "10.0.0.1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut tally = Tally::new();
        for (i, &addr) in sources.iter().cycle().take(5 * sources.len()).enumerate() {
            let rec = Record {
                client: Some(addr),
                time: Some(1_800_000_000 + 61 * i as i64),
                status: Some(200),
                ..Record::default()
            };
            tally.count_source(addr, &rec);
            tally.record(0, &rec);
        }
        let flag = |net: &str| NewFlag {
            source: net.parse().unwrap(),
            rules: vec!["http-probing".into()],
            rule_events: Vec::new(),
            first_seen: 1_800_000_000,
            last_seen: 1_800_000_001,
            events: 1,
            samples: Vec::new(),
            sites: Vec::new(),
            files: Vec::new(),
            explain: Vec::new(),
            country: None,
            asn: None,
            as_org: None,
        };
        // Overlapping and nested networks, and a single address.
        let flags: Vec<NewFlag> = [
            "192.0.3.0/24",
            "192.0.3.64/26",
            "198.51.100.8/32",
            "2001:db8:1::/64",
            "2001:db8:1::/80",
        ]
        .iter()
        .map(|n| flag(n))
        .collect();
        let got: Vec<IpAddr> = flagged_series(&tally, &flags)
            .into_iter()
            .map(|(a, points)| {
                assert_eq!(points.iter().map(|p| p.1).sum::<u64>(), 5, "{a}");
                a
            })
            .collect();
        let mut expected: Vec<IpAddr> = sources
            .iter()
            .copied()
            .filter(|a| flags.iter().any(|f| f.source.contains(a)))
            .collect();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(expected.len(), 6);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1,000");
        assert_eq!(number(1_234_567), "1,234,567");
    }

    #[test]
    fn masked_networks_keep_at_most_the_prefix() {
        let m = Prefixes::DEFAULT;
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(masked_net(n("192.0.2.77/32"), m), n("192.0.2.0/24"));
        assert_eq!(masked_net(n("10.0.0.0/8"), m), n("10.0.0.0/8"));
        assert_eq!(
            masked_net(n("2001:db8:1:2::5/128"), m),
            n("2001:db8:1::/48")
        );
        assert_eq!(masked_net(n("2001:db8:1:2::/64"), m), n("2001:db8:1::/48"));
        assert_eq!(masked_net(n("::ffff:192.0.2.9/128"), m), n("192.0.2.0/24"));
    }
}
