//! Keeping nftables sets in sync with `watch`'s flags: where sources go
//! ([`NftSet`], `[FAMILY:]TABLE:SET4[,SET6]`), the `nft -f` batch that adds or removes them
//! ([`NftSet::batch`]), how elements wait so that `nft` runs at most once a second
//! ([`Batcher`]), and the fallback to one element at a time when a batch fails. The thread
//! that runs it is in `actions`; the file `logward flagged -f nftables` writes is
//! `store::export`'s.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Log;
use crate::child::{spawn_child, wait_for};
use crate::store::net;

/// The shortest time between two `nft` runs.
pub const NFT_EVERY: Duration = Duration::from_secs(1);

/// Where `--nft-set` adds sources: `[FAMILY:]TABLE:SET4[,SET6]`, family `inet` by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftSet {
    /// The table's family: `inet`, `ip`, `ip6`, `bridge` or `netdev`.
    pub family: String,
    /// The table's name.
    pub table: String,
    /// The set IPv4 sources go in, if any.
    pub set4: Option<String>,
    /// The set IPv6 sources go in, if any.
    pub set6: Option<String>,
}

/// Why a `[FAMILY:]TABLE:SET4[,SET6]` text is not an [`NftSet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NftSetError {
    /// Not of the form `[FAMILY:]TABLE:SET4[,SET6]` (the text given).
    Syntax(String),
    /// A family nftables does not have.
    Family(String),
    /// A table or set name with characters nftables names do not have.
    Name(String),
}

impl std::fmt::Display for NftSetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NftSetError::Syntax(text) => {
                write!(f, "expected [FAMILY:]TABLE:SET4[,SET6], got {text:?}")
            }
            NftSetError::Family(family) => write!(f, "unknown nftables family {family:?}"),
            NftSetError::Name(name) => write!(f, "{name:?} is not an nftables name"),
        }
    }
}

impl std::error::Error for NftSetError {}

impl NftSet {
    /// `inet:logward:flagged_v4,flagged_v6`, `logward:flagged_v4,flagged_v6`,
    /// `ip:filter:bad` (IPv4 only) or `ip6:filter:,bad6` (IPv6 only).
    pub fn parse(text: &str) -> Result<NftSet, NftSetError> {
        let syntax = || NftSetError::Syntax(text.to_string());
        let parts: Vec<&str> = text.split(':').collect();
        let (family, table, sets) = match parts.as_slice() {
            [table, sets] => ("inet", *table, *sets),
            [family, table, sets] => (*family, *table, *sets),
            _ => return Err(syntax()),
        };
        if !["inet", "ip", "ip6", "bridge", "netdev"].contains(&family) {
            return Err(NftSetError::Family(family.to_string()));
        }
        let (set4, set6) = sets.split_once(',').unwrap_or((sets, ""));
        let name_ok = |n: &str| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        for n in [table, set4, set6] {
            if !name_ok(n) {
                return Err(NftSetError::Name(n.to_string()));
            }
        }
        if table.is_empty() || (set4.is_empty() && set6.is_empty()) {
            return Err(syntax());
        }
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(NftSet {
            family: family.to_string(),
            table: table.to_string(),
            set4: some(set4),
            set6: some(set6),
        })
    }

    /// The set a source goes in, if its family has one.
    pub fn set_for(&self, source: IpNet) -> Option<&str> {
        match source {
            IpNet::V4(_) => self.set4.as_deref(),
            IpNet::V6(_) => self.set6.as_deref(),
        }
    }

    /// An `nft -f` batch adding `elements` (source, seconds left). The table and sets are
    /// declared as `logward flagged -f nftables` declares them; `add` leaves existing ones.
    pub fn batch(&self, elements: &[(IpNet, i64)]) -> String {
        let (f, t) = (&self.family, &self.table);
        let mut out = format!("add table {f} {t}\n");
        for (set, ty) in [(&self.set4, "ipv4_addr"), (&self.set6, "ipv6_addr")] {
            if let Some(set) = set {
                out.push_str(&format!(
                    "add set {f} {t} {set} {{ type {ty}; flags interval, timeout; }}\n"
                ));
            }
        }
        for (source, left) in elements {
            if let Some(set) = self.set_for(*source) {
                if *left > 0 {
                    out.push_str(&format!(
                        "add element {f} {t} {set} {{ {} timeout {left}s }}\n",
                        net::display(*source)
                    ));
                } else {
                    // No time left: an erased source leaves the set.
                    out.push_str(&format!(
                        "delete element {f} {t} {set} {{ {} }}\n",
                        net::display(*source)
                    ));
                }
            }
        }
        out
    }
}

/// Elements waiting for the next `nft` run, which comes at most once per [`NFT_EVERY`]:
/// a burst of flags makes one batch, not one `nft` per flag.
pub struct Batcher {
    pending: Vec<(IpNet, i64)>,
    last: Instant,
}

impl Batcher {
    /// A batcher whose first element may go out at once (`now` is long after a last run).
    pub fn new(now: Instant) -> Batcher {
        Batcher {
            pending: Vec::new(),
            last: now.checked_sub(NFT_EVERY).unwrap_or(now),
        }
    }

    /// Adds an element (source, seconds left; 0 takes it out of the set).
    pub fn push(&mut self, element: (IpNet, i64)) {
        self.pending.push(element);
    }

    /// How long to wait for more elements at `now`: until the next run is allowed when
    /// some wait, else a long time.
    pub fn wait(&self, now: Instant) -> Duration {
        if self.pending.is_empty() {
            Duration::from_secs(3600)
        } else {
            NFT_EVERY.saturating_sub(now.saturating_duration_since(self.last))
        }
    }

    /// The batch to run at `now`, if one is due: elements wait and a second has passed
    /// since the last run, or the feed is `closing` (what waits goes out before the end).
    pub fn take_due(&mut self, now: Instant, closing: bool) -> Option<Vec<(IpNet, i64)>> {
        let due = now.saturating_duration_since(self.last) >= NFT_EVERY || closing;
        if self.pending.is_empty() || !due {
            return None;
        }
        self.last = now;
        Some(std::mem::take(&mut self.pending))
    }
}

/// Runs one batch with `run` (which feeds a batch to nft); when it fails (one bad element
/// fails a whole batch), tries each element alone so the others still get in. Returns
/// how many `nft` runs failed (the batch and each element that failed alone).
pub fn apply(
    set: &NftSet,
    elements: &[(IpNet, i64)],
    run: &mut dyn FnMut(&str) -> Result<(), String>,
    log: &Log,
) -> u64 {
    match run(&set.batch(elements)) {
        Ok(()) => 0,
        Err(e) if elements.len() > 1 => {
            log(&format!(
                "nft: batch of {} failed ({e}); adding one by one",
                elements.len()
            ));
            let mut failed = 1;
            for el in elements {
                if let Err(e) = run(&set.batch(std::slice::from_ref(el))) {
                    log(&format!("nft: {}: {e}", net::display(el.0)));
                    failed += 1;
                }
            }
            failed
        }
        Err(e) => {
            log(&format!("nft: {e}"));
            1
        }
    }
}

/// Feeds `batch` to `nft -f -`, killing it after `timeout`; the error says why it failed
/// (its exit status and the first line it wrote on stderr).
pub fn run_nft(batch: &str, timeout: Duration) -> Result<(), String> {
    let child = spawn_child(
        Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut child = child.map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let mut stderr = child.stderr.take();
    match wait_for(child, timeout) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => {
            let mut text = String::new();
            if let Some(s) = stderr.as_mut() {
                let _ = std::io::Read::read_to_string(s, &mut text);
            }
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            Err(format!("{status}: {}", first.trim()))
        }
        Ok(None) => Err(format!("killed after {} s", timeout.as_secs())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn nft_set_syntax() {
        let s = NftSet::parse("inet:logward:flagged_v4,flagged_v6").unwrap();
        assert_eq!(s.family, "inet");
        assert_eq!(s.set6.as_deref(), Some("flagged_v6"));
        let s = NftSet::parse("logward:v4only").unwrap();
        assert_eq!((s.family.as_str(), s.set6), ("inet", None));
        let s = NftSet::parse("ip6:f:,bad6").unwrap();
        assert_eq!((s.set4, s.set6.as_deref()), (None, Some("bad6")));
        for bad in ["logward", "x:t:s", "inet:t:s;drop", "inet:t:", "a:b:c:d"] {
            assert!(NftSet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            NftSet::parse("x:t:s").unwrap_err().to_string(),
            "unknown nftables family \"x\""
        );
        assert_eq!(
            NftSet::parse("inet:t:s;drop").unwrap_err().to_string(),
            "\"s;drop\" is not an nftables name"
        );
        assert_eq!(
            NftSet::parse("inet:t:").unwrap_err().to_string(),
            "expected [FAMILY:]TABLE:SET4[,SET6], got \"inet:t:\""
        );
    }

    #[test]
    fn batch_declares_then_adds() {
        let s = NftSet::parse("logward:flagged_v4,flagged_v6").unwrap();
        let b = s.batch(&[
            ("192.0.2.1/32".parse().unwrap(), 14_400),
            ("2001:db8::/64".parse().unwrap(), 60),
        ]);
        assert_eq!(
            b,
            "add table inet logward\n\
             add set inet logward flagged_v4 { type ipv4_addr; flags interval, timeout; }\n\
             add set inet logward flagged_v6 { type ipv6_addr; flags interval, timeout; }\n\
             add element inet logward flagged_v4 { 192.0.2.1 timeout 14400s }\n\
             add element inet logward flagged_v6 { 2001:db8::/64 timeout 60s }\n"
        );
    }

    #[test]
    fn batch_deletes_what_has_no_time_left_and_skips_families_without_a_set() {
        let s = NftSet::parse("ip:filter:bad").unwrap();
        let b = s.batch(&[
            ("192.0.2.1/32".parse().unwrap(), 0),
            ("2001:db8::/64".parse().unwrap(), 60),
        ]);
        assert_eq!(
            b,
            "add table ip filter\n\
             add set ip filter bad { type ipv4_addr; flags interval, timeout; }\n\
             delete element ip filter bad { 192.0.2.1 }\n"
        );
    }

    #[test]
    fn batcher_runs_at_most_once_a_second_and_flushes_at_the_end() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let a: IpNet = "192.0.2.1/32".parse().unwrap();
        let b: IpNet = "192.0.2.2/32".parse().unwrap();
        let mut batcher = Batcher::new(t0);
        assert_eq!(batcher.take_due(t0, false), None, "nothing waits");
        assert_eq!(batcher.wait(t0), Duration::from_secs(3600));
        batcher.push((a, 60));
        // The first element goes out at once.
        assert_eq!(batcher.wait(t0), Duration::ZERO);
        assert_eq!(batcher.take_due(t0, false), Some(vec![(a, 60)]));
        // The next ones wait for the second to pass, then go out together.
        batcher.push((b, 60));
        batcher.push((a, 0));
        assert_eq!(batcher.wait(at(300)), Duration::from_millis(700));
        assert_eq!(batcher.take_due(at(300), false), None);
        assert_eq!(
            batcher.take_due(at(1000), false),
            Some(vec![(b, 60), (a, 0)])
        );
        // Closing does not wait.
        batcher.push((b, 30));
        assert_eq!(batcher.take_due(at(1001), true), Some(vec![(b, 30)]));
        assert_eq!(batcher.take_due(at(5000), true), None);
    }

    #[test]
    fn a_failed_batch_is_retried_one_element_at_a_time() {
        let set = NftSet::parse("logward:v4,v6").unwrap();
        let good: IpNet = "192.0.2.1/32".parse().unwrap();
        let bad: IpNet = "192.0.2.66/32".parse().unwrap();
        let said = Arc::new(Mutex::new(Vec::new()));
        let log: Log = {
            let said = Arc::clone(&said);
            Arc::new(move |m: &str| said.lock().unwrap().push(m.to_string()))
        };
        let runs = std::cell::RefCell::new(Vec::new());
        let mut run = |batch: &str| {
            runs.borrow_mut().push(batch.to_string());
            if batch.contains("192.0.2.66 ") {
                Err("exit status: 1: bad element".to_string())
            } else {
                Ok(())
            }
        };
        // The batch and the bad element alone failed.
        assert_eq!(apply(&set, &[(good, 60), (bad, 60)], &mut run, &log), 2);
        {
            let runs = runs.borrow();
            assert_eq!(runs.len(), 3, "{runs:?}");
            assert!(runs[1].contains("192.0.2.1 timeout 60s") && !runs[1].contains("192.0.2.66"));
            assert!(runs[2].contains("192.0.2.66 timeout 60s") && !runs[2].contains("192.0.2.1 "));
        }
        assert_eq!(
            *said.lock().unwrap(),
            [
                "nft: batch of 2 failed (exit status: 1: bad element); adding one by one",
                "nft: 192.0.2.66: exit status: 1: bad element",
            ]
        );
        // One element alone is not tried twice.
        runs.borrow_mut().clear();
        assert_eq!(apply(&set, &[(bad, 60)], &mut run, &log), 1);
        assert_eq!(runs.borrow().len(), 1);
        assert_eq!(
            said.lock().unwrap().last().unwrap(),
            "nft: exit status: 1: bad element"
        );
    }
}
