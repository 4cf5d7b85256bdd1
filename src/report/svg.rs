//! The report's charts, drawn as inline SVG by hand: requests over time stacked by status
//! class with the flagged sources' requests as a line over them, and one strip per rule
//! showing when it fired. Every mark carries its numbers in a `<title>` (shown on hover);
//! the page puts the same numbers in a table under each chart.
//!
//! Colours are the Okabe-Ito palette, told apart by readers with any common colour-vision
//! deficiency; the stack order is fixed and the legend follows it. Labels given to these
//! functions must already be HTML-escaped; numbers and times are made here.

use std::fmt::Write as _;

use super::tally::CLASSES;
use crate::timefmt::rfc3339;

/// Fill colour per status class index (see [`CLASSES`]).
pub const CLASS_COLOURS: [&str; CLASSES] = [
    "#999999", // no status
    "#CC79A7", // 1xx reddish purple
    "#009E73", // 2xx bluish green
    "#56B4E9", // 3xx sky blue
    "#E69F00", // 4xx orange
    "#D55E00", // 5xx vermillion
];

/// Names of the status classes, per index.
pub const CLASS_NAMES: [&str; CLASSES] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Bottom-to-top stacking order: the usual classes first, then the rare ones.
pub const STACK: [usize; CLASSES] = [2, 3, 4, 5, 1, 0];

/// The flagged sources' line.
pub const FLAGGED_COLOUR: &str = "#000000";

const WIDTH: f64 = 960.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;

/// A time as the charts label it: `2026-11-15 13:00` (UTC).
pub fn short_time(t: i64) -> String {
    let s = rfc3339(t);
    // 2026-11-15T13:00:00Z
    format!("{} {}", &s[..10.min(s.len())], s.get(11..16).unwrap_or(""))
}

/// A round number at or above `max` for the top of an axis, and a tick step.
fn axis(max: u64) -> (u64, u64) {
    let max = max.max(1);
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = step * m;
            if s * 5 >= max {
                return (s * max.div_ceil(s), s);
            }
        }
        step *= 10;
    }
}

/// One bar of [`requests_chart`]: its start, requests per status class, and the flagged
/// sources' requests in it.
pub struct Bar {
    pub start: i64,
    pub classes: [u64; CLASSES],
    pub flagged: u64,
}

/// Requests over time: one stacked bar per bucket of `step` seconds, the flagged sources'
/// requests as a dashed line. `bars` are in time order and contiguous.
///
/// One function because it is the chart's SVG written in drawing order: axes, bars, the
/// flagged line, labels; each part uses the same scales.
pub fn requests_chart(bars: &[Bar], step: i64, with_flagged: bool) -> String {
    let height = 260.0;
    let (top, bottom) = (12.0, 40.0);
    let plot_h = height - top - bottom;
    let plot_w = WIDTH - LEFT - RIGHT;
    let max = bars
        .iter()
        .map(|b| b.classes.iter().sum::<u64>().max(b.flagged))
        .max()
        .unwrap_or(0);
    let (ymax, ystep) = axis(max);
    let y = |v: u64| top + plot_h - plot_h * v as f64 / ymax as f64;
    let n = bars.len().max(1) as f64;
    let bw = plot_w / n;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-labelledby=\"rq-t\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"rq-t\">Requests per {} by status class</title>",
        step_name(step)
    );
    // Grid and y labels.
    let mut v = 0;
    while v <= ymax {
        let yy = y(v);
        grid_line(&mut s, yy, v);
        v += ystep;
    }
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + bw * i as f64;
        let total: u64 = b.classes.iter().sum();
        let mut title = format!("{}: {} requests", short_time(b.start), number(total));
        for c in STACK {
            if b.classes[c] > 0 {
                let _ = write!(title, ", {} {}", CLASS_NAMES[c], number(b.classes[c]));
            }
        }
        if with_flagged {
            let _ = write!(title, "; flagged sources {}", number(b.flagged));
        }
        let _ = write!(s, "<g><title>{title}</title>");
        // A transparent column so the title shows anywhere above the bar too.
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{top}\" width=\"{bw:.2}\" height=\"{plot_h}\" fill=\"transparent\"/>"
        );
        let mut acc = 0u64;
        for c in STACK {
            let v = b.classes[c];
            if v == 0 {
                continue;
            }
            let (y0, y1) = (y(acc), y(acc + v));
            acc += v;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"/>",
                (bw - if bw > 3.0 { 1.0 } else { 0.0 }).max(0.5),
                (y0 - y1).max(0.5),
                CLASS_COLOURS[c]
            );
        }
        s.push_str("</g>");
    }
    if with_flagged && bars.iter().any(|b| b.flagged > 0) {
        s.push_str("<polyline class=\"flagged\" fill=\"none\" points=\"");
        for (i, b) in bars.iter().enumerate() {
            let x = LEFT + bw * (i as f64 + 0.5);
            let _ = write!(s, "{x:.1},{:.1} ", y(b.flagged));
        }
        let _ = write!(
            s,
            "\" stroke=\"{FLAGGED_COLOUR}\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>"
        );
    }
    x_labels(
        &mut s,
        bars.first().map(|b| b.start),
        bars.len(),
        step,
        height - bottom,
    );
    s.push_str("</svg>");
    s
}

/// One virtual host's requests over time: a bar per bucket of `step` seconds, each with
/// its numbers in a `<title>`. `bars` are (start, requests), in time order and contiguous;
/// `host` is the host's name, HTML-escaped.
pub fn host_chart(host: &str, bars: &[(i64, u64)], step: i64) -> String {
    let height = 120.0;
    let (top, bottom) = (8.0, 28.0);
    let plot_h = height - top - bottom;
    let plot_w = WIDTH - LEFT - RIGHT;
    let (ymax, _) = axis(bars.iter().map(|b| b.1).max().unwrap_or(0));
    let y = |v: u64| top + plot_h - plot_h * v as f64 / ymax as f64;
    let bw = plot_w / bars.len().max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>Requests to {host} per {}</title>",
        step_name(step)
    );
    for v in [0, ymax] {
        let yy = y(v);
        grid_line(&mut s, yy, v);
    }
    for (i, &(start, n)) in bars.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let x = LEFT + bw * i as f64;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#0072B2\">\
             <title>{}: {} requests</title></rect>",
            y(n),
            (bw - if bw > 3.0 { 1.0 } else { 0.0 }).max(0.5),
            (y(0) - y(n)).max(0.5),
            short_time(start),
            number(n)
        );
    }
    x_labels(
        &mut s,
        bars.first().map(|b| b.0),
        bars.len(),
        step,
        height - bottom,
    );
    s.push_str("</svg>");
    s
}

/// Thousands separated by commas: `1,234,567`.
pub(crate) fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A bucket's width in words: `minute`, `3 hours`, `2 days`.
pub(crate) fn step_name(step: i64) -> String {
    match step {
        60 => "minute".into(),
        3600 => "hour".into(),
        86400 => "day".into(),
        s if s % 86400 == 0 => format!("{} days", s / 86400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{} minutes", s / 60),
    }
}

/// About six time labels under a plot of `n` buckets from `start`.
fn x_labels(s: &mut String, start: Option<i64>, n: usize, step: i64, y: f64) {
    let Some(start) = start else { return };
    let plot_w = WIDTH - LEFT - RIGHT;
    let every = n.div_ceil(6).max(1);
    let mut i = 0;
    while i < n {
        let x = LEFT + plot_w * i as f64 / n.max(1) as f64;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y}\" y2=\"{:.1}\" class=\"axis\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" class=\"xl\">{}</text>",
            y + 4.0,
            y + 16.0,
            short_time(start + step * i as i64)
        );
        i += every;
    }
}

/// One episode on a rule's strip: the source as shown (HTML-escaped), its first and last
/// event, and when the rule first overflowed in it.
pub struct Mark<'a> {
    pub label: &'a str,
    pub first: i64,
    pub last: i64,
    pub fired: i64,
}

/// When one rule fired, over the whole time range `from..=to`: a bar per episode from its
/// first to its last event, a tick where the rule overflowed.
pub fn rule_strip(rule: &str, marks: &[Mark<'_>], from: i64, to: i64) -> String {
    let height = 34.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let span = (to - from).max(1) as f64;
    let x = |t: i64| LEFT + plot_w * ((t - from).clamp(0, to - from) as f64 / span);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"strip\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>When {rule} fired</title>\
         <line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"17\" y2=\"17\" class=\"axis\"/>",
        WIDTH - RIGHT
    );
    for m in marks {
        let (x0, x1) = (x(m.first), x(m.last));
        let _ = write!(
            s,
            "<g><title>{}: {} .. {}, fired {}</title>\
             <rect x=\"{x0:.1}\" y=\"9\" width=\"{:.1}\" height=\"16\" fill=\"#0072B2\" fill-opacity=\"0.35\"/>\
             <rect x=\"{:.1}\" y=\"5\" width=\"2\" height=\"24\" fill=\"#0072B2\"/></g>",
            m.label,
            short_time(m.first),
            short_time(m.last),
            short_time(m.fired),
            (x1 - x0).max(2.0),
            x(m.fired) - 1.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// The legend of [`requests_chart`], as HTML.
pub fn legend(with_flagged: bool) -> String {
    let mut s = String::from("<p class=\"legend\">");
    for c in STACK {
        let _ = write!(
            s,
            "<span><svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" fill=\"{}\"/></svg> {}</span> ",
            CLASS_COLOURS[c], CLASS_NAMES[c]
        );
    }
    if with_flagged {
        let _ = write!(
            s,
            "<span><svg width=\"24\" height=\"12\" aria-hidden=\"true\"><line x1=\"0\" x2=\"24\" y1=\"6\" y2=\"6\" stroke=\"{FLAGGED_COLOUR}\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/></svg> flagged sources</span>"
        );
    }
    s.push_str("</p>");
    s
}

/// A chart's horizontal grid line at `yy` with its y label, the value `v`.
fn grid_line(s: &mut String, yy: f64, v: u64) {
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"yl\">{}</text>",
        WIDTH - RIGHT,
        LEFT - 4.0,
        yy + 4.0,
        number(v)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round_and_cover_the_maximum() {
        assert_eq!(axis(0), (1, 1));
        assert_eq!(axis(7), (8, 2));
        assert_eq!(axis(100), (100, 20));
        let (top, step) = axis(1234);
        assert!(
            top >= 1234 && top % step == 0 && top / step <= 6,
            "{top} {step}"
        );
    }

    #[test]
    fn every_bar_has_a_title_with_its_numbers() {
        let bars = [
            Bar {
                start: 1_800_000_000,
                classes: [0, 0, 10, 0, 3, 0],
                flagged: 2,
            },
            Bar {
                start: 1_800_003_600,
                classes: [1, 0, 0, 0, 0, 0],
                flagged: 0,
            },
        ];
        let svg = requests_chart(&bars, 3600, true);
        assert_eq!(svg.matches("<g><title>").count(), 2);
        assert!(
            svg.contains("13 requests, 2xx 10, 4xx 3; flagged sources 2"),
            "{svg}"
        );
        assert!(svg.contains("<polyline class=\"flagged\""));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn a_host_chart_draws_a_titled_bar_per_busy_bucket() {
        let bars = [
            (1_800_000_000, 1234),
            (1_800_003_600, 0),
            (1_800_007_200, 5),
        ];
        let svg = host_chart("shop.example", &bars, 3600);
        assert_eq!(
            svg.matches("<rect ").count(),
            2,
            "no bar for an empty bucket"
        );
        assert!(svg.contains("<title>Requests to shop.example per hour</title>"));
        assert!(svg.contains("2027-01-15 08:00: 1,234 requests"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
