//! What `watch` does with a new flag besides storing it, each in its own thread so reading
//! never waits: `--on-flag CMD` runs a command per flag from a bounded queue, with a time
//! limit; `--nft-set` adds flagged sources to nftables sets in batches fed to `nft -f -`,
//! at most once a second. Failures are logged and never stop the watch.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ipnet::IpNet;

use crate::format::time::rfc3339;
use crate::rewrite::spawn_child;
use crate::store::net;

/// Flags waiting for their `--on-flag` command; more are dropped with a warning.
pub const QUEUE: usize = 256;

/// The shortest time between two `nft` runs.
pub const NFT_EVERY: Duration = Duration::from_secs(1);

/// One new flag, as the actions see it.
#[derive(Clone, Debug)]
pub struct FlagEvent {
    pub source: IpNet,
    pub rules: Vec<String>,
    /// Unix seconds when the ban ends.
    pub expires: i64,
    pub events: u64,
}

/// Where `--nft-set` adds sources: `[FAMILY:]TABLE:SET4[,SET6]`, family `inet` by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftSet {
    pub family: String,
    pub table: String,
    pub set4: Option<String>,
    pub set6: Option<String>,
}

impl NftSet {
    /// `inet:logward:flagged_v4,flagged_v6`, `logward:flagged_v4,flagged_v6`,
    /// `ip:filter:bad` (IPv4 only) or `ip6:filter:,bad6` (IPv6 only).
    pub fn parse(text: &str) -> Result<NftSet> {
        let parts: Vec<&str> = text.split(':').collect();
        let (family, table, sets) = match parts.as_slice() {
            [table, sets] => ("inet", *table, *sets),
            [family, table, sets] => (*family, *table, *sets),
            _ => bail!("--nft-set: expected [FAMILY:]TABLE:SET4[,SET6], got {text:?}"),
        };
        if !["inet", "ip", "ip6", "bridge", "netdev"].contains(&family) {
            bail!("--nft-set: unknown nftables family {family:?}");
        }
        let (set4, set6) = sets.split_once(',').unwrap_or((sets, ""));
        let name_ok = |n: &str| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        for n in [table, set4, set6] {
            if !name_ok(n) {
                bail!("--nft-set: {n:?} is not an nftables name");
            }
        }
        if table.is_empty() || (set4.is_empty() && set6.is_empty()) {
            bail!("--nft-set: expected [FAMILY:]TABLE:SET4[,SET6], got {text:?}");
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
    fn set_for(&self, source: IpNet) -> Option<&str> {
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

/// The running action threads.
pub struct Actions {
    on_flag: Option<SyncSender<FlagEvent>>,
    nft: Option<(mpsc::Sender<(IpNet, i64)>, NftSet)>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    warned_v6: bool,
}

impl Actions {
    pub fn start(on_flag: Option<String>, timeout: Duration, nft: Option<NftSet>) -> Actions {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let on_flag = on_flag.map(|cmd| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                run_commands(&cmd, timeout, rx, &stop)
            }));
            tx
        });
        let nft = nft.map(|set| {
            let (tx, rx) = mpsc::channel();
            let worker = set.clone();
            threads.push(std::thread::spawn(move || run_nft(&worker, timeout, rx)));
            (tx, set)
        });
        Actions {
            on_flag,
            nft,
            threads,
            stop,
            warned_v6: false,
        }
    }

    /// Hands a flag to the actions; never blocks.
    pub fn flag(&mut self, event: &FlagEvent, now: i64) {
        if let Some(tx) = &self.on_flag {
            match tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => eprintln!(
                    "logward: warning: --on-flag queue full ({QUEUE}); not run for {}",
                    net::display(event.source)
                ),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        if let Some((tx, set)) = &self.nft {
            let left = event.expires - now;
            if set.set_for(event.source).is_none() {
                if !self.warned_v6 {
                    self.warned_v6 = true;
                    eprintln!(
                        "logward: warning: --nft-set names no set for {} sources; they are not added",
                        if event.source.addr().is_ipv4() {
                            "IPv4"
                        } else {
                            "IPv6"
                        }
                    );
                }
            } else if left > 0 {
                let _ = tx.send((event.source, left));
            }
        }
    }

    /// Removes a source from the nftables set (an erasure); never blocks.
    pub fn unban(&mut self, source: IpNet) {
        if let Some((tx, set)) = &self.nft
            && set.set_for(source).is_some()
        {
            let _ = tx.send((source, 0));
        }
    }

    /// Stops the threads: queued commands are dropped, pending nft elements are applied.
    pub fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.on_flag);
        drop(self.nft);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn run_commands(cmd: &str, timeout: Duration, rx: Receiver<FlagEvent>, stop: &AtomicBool) {
    let mut dropped = 0u64;
    for event in rx {
        if stop.load(Ordering::SeqCst) {
            dropped += 1;
            continue;
        }
        let source = net::display(event.source);
        let child = spawn_child(
            Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .env("LOGWARD_SOURCE", &source)
                .env("LOGWARD_RULES", event.rules.join(","))
                .env("LOGWARD_EXPIRES", rfc3339(event.expires))
                .env("LOGWARD_EVENTS", event.events.to_string())
                .stdin(Stdio::null()),
        );
        match child {
            Ok(child) => match wait_for(child, timeout) {
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => {
                    eprintln!("logward: --on-flag for {source}: command failed ({status})")
                }
                Ok(None) => eprintln!(
                    "logward: --on-flag for {source}: killed after {} s",
                    timeout.as_secs()
                ),
                Err(e) => eprintln!("logward: --on-flag for {source}: {e}"),
            },
            Err(e) => eprintln!("logward: --on-flag: cannot run sh: {e}"),
        }
    }
    if dropped > 0 {
        eprintln!("logward: --on-flag: {dropped} queued command(s) not run at exit");
    }
}

/// Waits for `child` at most `timeout`; kills it after. `None` when it was killed.
fn wait_for(
    mut child: Child,
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_nft(set: &NftSet, timeout: Duration, rx: Receiver<(IpNet, i64)>) {
    let mut pending: Vec<(IpNet, i64)> = Vec::new();
    let mut last = Instant::now() - NFT_EVERY;
    loop {
        let wait = if pending.is_empty() {
            Duration::from_secs(3600)
        } else {
            NFT_EVERY.saturating_sub(last.elapsed())
        };
        let open = match rx.recv_timeout(wait) {
            Ok(el) => {
                pending.push(el);
                pending.extend(rx.try_iter());
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        if !pending.is_empty() && (last.elapsed() >= NFT_EVERY || !open) {
            last = Instant::now();
            apply(set, &pending, timeout);
            pending.clear();
        }
        if !open {
            return;
        }
    }
}

/// Runs one batch; when it fails (one bad element fails a whole batch), tries each element
/// alone so the others still get in.
fn apply(set: &NftSet, elements: &[(IpNet, i64)], timeout: Duration) {
    match nft(&set.batch(elements), timeout) {
        Ok(()) => {}
        Err(e) if elements.len() > 1 => {
            eprintln!(
                "logward: nft: batch of {} failed ({e}); adding one by one",
                elements.len()
            );
            for el in elements {
                if let Err(e) = nft(&set.batch(std::slice::from_ref(el)), timeout) {
                    eprintln!("logward: nft: {}: {e}", net::display(el.0));
                }
            }
        }
        Err(e) => eprintln!("logward: nft: {e}"),
    }
}

fn nft(batch: &str, timeout: Duration) -> std::result::Result<(), String> {
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
}
