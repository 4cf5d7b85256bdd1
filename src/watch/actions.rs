//! What `watch` does with a new flag besides storing it, each in its own thread so reading
//! never waits: `--on-flag CMD` runs a command per flag from a bounded queue, with a time
//! limit; `--nft-set` adds flagged sources to nftables sets in batches fed to `nft -f -`,
//! at most once a second (the batches are `nft`'s). Failures are logged and never stop the
//! watch.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Log;
use super::nft::{self, Batcher, NftSet};
use crate::child::{spawn_child, wait_for};
use crate::format::time::rfc3339;
use crate::store::net;

/// Flags waiting for their `--on-flag` command; more are dropped with a warning.
pub const QUEUE: usize = 256;

/// One new flag, as the actions see it.
#[derive(Clone, Debug)]
pub struct FlagEvent {
    /// The flagged address or network.
    pub source: IpNet,
    /// The rules that flagged it.
    pub rules: Vec<String>,
    /// Unix seconds when the ban ends.
    pub expires: i64,
    /// Events counted against it.
    pub events: u64,
}

/// What to run for each new flag.
#[derive(Clone, Debug, Default)]
pub struct ActionSettings {
    /// A command for `sh -c`, run once per flag (`--on-flag`).
    pub on_flag: Option<String>,
    /// nftables sets to add flagged sources to (`--nft-set`).
    pub nft: Option<NftSet>,
    /// The longest a command or `nft` may run before it is killed.
    pub timeout: Duration,
    /// Counts the `nft` runs that failed, for the metrics; shared with whoever reads it.
    pub nft_failures: Arc<AtomicU64>,
}

/// The running action threads.
pub struct Actions {
    on_flag: Option<SyncSender<FlagEvent>>,
    nft: Option<(mpsc::Sender<(IpNet, i64)>, NftSet)>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    warned_v6: bool,
    log: Log,
}

impl Actions {
    /// Starts a thread per action asked for; none when `settings` asks for none.
    pub fn start(settings: ActionSettings, log: &Log) -> Actions {
        let ActionSettings {
            on_flag,
            nft,
            timeout,
            nft_failures,
        } = settings;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let on_flag = on_flag.map(|cmd| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let stop = Arc::clone(&stop);
            let log = Arc::clone(log);
            threads.push(std::thread::spawn(move || {
                run_commands(&cmd, timeout, rx, &stop, &log)
            }));
            tx
        });
        let nft = nft.map(|set| {
            let (tx, rx) = mpsc::channel();
            let worker = set.clone();
            let log = Arc::clone(log);
            threads.push(std::thread::spawn(move || {
                feed_nft(&worker, timeout, rx, &log, &nft_failures)
            }));
            (tx, set)
        });
        Actions {
            on_flag,
            nft,
            threads,
            stop,
            warned_v6: false,
            log: Arc::clone(log),
        }
    }

    /// Hands a flag to the actions; never blocks.
    pub fn flag(&mut self, event: &FlagEvent, now: i64) {
        if let Some(tx) = &self.on_flag {
            match tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => (self.log)(&format!(
                    "warning: --on-flag queue full ({QUEUE}); not run for {}",
                    net::display(event.source)
                )),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        if let Some((tx, set)) = &self.nft {
            let left = event.expires - now;
            if set.set_for(event.source).is_none() {
                if !self.warned_v6 {
                    self.warned_v6 = true;
                    (self.log)(&format!(
                        "warning: --nft-set names no set for {} sources; they are not added",
                        if event.source.addr().is_ipv4() {
                            "IPv4"
                        } else {
                            "IPv6"
                        }
                    ));
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

    /// Waits for every queued command to run (each within its timeout) and the pending nft
    /// elements to be applied, then stops the threads: for a one-shot run (`fleet sync`),
    /// whose actions are the point of the run.
    pub fn drain(self) {
        drop(self.on_flag);
        drop(self.nft);
        for t in self.threads {
            let _ = t.join();
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

fn run_commands(
    cmd: &str,
    timeout: Duration,
    rx: Receiver<FlagEvent>,
    stop: &AtomicBool,
    log: &Log,
) {
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
                Ok(Some(status)) => log(&format!(
                    "--on-flag for {source}: command failed ({status})"
                )),
                Ok(None) => log(&format!(
                    "--on-flag for {source}: killed after {} s",
                    timeout.as_secs()
                )),
                Err(e) => log(&format!("--on-flag for {source}: {e}")),
            },
            Err(e) => log(&format!("--on-flag: cannot run sh: {e}")),
        }
    }
    if dropped > 0 {
        log(&format!(
            "--on-flag: {dropped} queued command(s) not run at exit"
        ));
    }
}

/// The nft thread: collects elements into batches ([`Batcher`]) and runs each with `nft`;
/// what waits when the feed closes goes out before the thread ends.
fn feed_nft(
    set: &NftSet,
    timeout: Duration,
    rx: Receiver<(IpNet, i64)>,
    log: &Log,
    failures: &AtomicU64,
) {
    let mut batcher = Batcher::new(Instant::now());
    loop {
        let open = match rx.recv_timeout(batcher.wait(Instant::now())) {
            Ok(el) => {
                batcher.push(el);
                for el in rx.try_iter() {
                    batcher.push(el);
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        if let Some(batch) = batcher.take_due(Instant::now(), !open) {
            let failed = nft::apply(set, &batch, &mut |b| nft::run_nft(b, timeout), log);
            failures.fetch_add(failed, Ordering::Relaxed);
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn collecting() -> (Log, Arc<Mutex<Vec<String>>>) {
        let said = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&said);
        (
            Arc::new(move |m: &str| keep.lock().unwrap().push(m.to_string())),
            said,
        )
    }

    #[test]
    fn on_flag_runs_the_command_with_the_flag_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ran");
        let (log, said) = collecting();
        let mut actions = Actions::start(
            ActionSettings {
                on_flag: Some(format!(
                    "echo \"$LOGWARD_SOURCE $LOGWARD_RULES $LOGWARD_EXPIRES $LOGWARD_EVENTS\" \
                     >> '{}'; exit 3",
                    out.display()
                )),
                nft: None,
                timeout: Duration::from_secs(10),
                ..ActionSettings::default()
            },
            &log,
        );
        actions.flag(
            &FlagEvent {
                source: "2001:db8::/64".parse().unwrap(),
                rules: vec!["http-flood".into(), "http-probing".into()],
                expires: 1_800_000_000,
                events: 42,
            },
            1_799_990_000,
        );
        // finish() drops the commands still queued: wait for this one to have run.
        let deadline = Instant::now() + Duration::from_secs(20);
        while said.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        actions.finish();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "2001:db8::/64 http-flood,http-probing 2027-01-15T08:00:00Z 42\n"
        );
        assert_eq!(
            *said.lock().unwrap(),
            ["--on-flag for 2001:db8::/64: command failed (exit status: 3)"]
        );
    }

    #[test]
    fn drain_runs_every_queued_command_before_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ran");
        let (log, _) = collecting();
        let mut actions = Actions::start(
            ActionSettings {
                // Slow enough that the queue still holds most flags when drain is called.
                on_flag: Some(format!(
                    "sleep 0.05; echo \"$LOGWARD_SOURCE\" >> '{}'",
                    out.display()
                )),
                nft: None,
                timeout: Duration::from_secs(10),
                ..ActionSettings::default()
            },
            &log,
        );
        for i in 1..=5u8 {
            actions.flag(
                &FlagEvent {
                    source: format!("192.0.2.{i}/32").parse().unwrap(),
                    rules: vec!["http-flood".into()],
                    expires: 1_800_000_000,
                    events: 1,
                },
                1_799_990_000,
            );
        }
        actions.drain();
        let ran = std::fs::read_to_string(&out).unwrap();
        assert_eq!(ran.lines().count(), 5, "{ran}");
    }

    #[test]
    fn a_command_that_runs_too_long_is_killed() {
        let child = spawn_child(Command::new("sleep").arg("30")).unwrap();
        let started = Instant::now();
        let waited = wait_for(child, Duration::from_millis(100)).unwrap();
        assert!(waited.is_none(), "{waited:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
