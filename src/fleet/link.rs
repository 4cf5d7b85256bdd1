//! `watch`'s link to the fleet, on its own thread: pushes the outbox every interval and
//! pulls the fleet's bans when a server reports (`LISTEN` wakes it) and every 30 seconds as
//! a catch-up, each with its own pause after a failure, and says when to look for erasure
//! requests. Local work never waits for it. It
//! reports [`LinkEvent`]s to a callback and does not print or act on bans itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::FleetError;
use super::pull::{FleetBan, Puller};
use super::push::Pusher;

/// A pull at least this often, even without a notification (one lost while reconnecting).
pub const CATCH_UP: Duration = Duration::from_secs(30);

/// What the link reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// Entries went to the database; `recovered` after a failure.
    Pushed {
        /// Entries sent.
        sent: u64,
        /// How many of them were near misses, not flags.
        near_misses: u64,
        /// The push before this one failed.
        recovered: bool,
    },
    /// A push failed (reported once per outage); the outbox keeps `pending` entries.
    PushFailed {
        /// Why it failed.
        error: FleetError,
        /// Entries waiting in the outbox.
        pending: u64,
        /// How long until the next try.
        retry_in: Duration,
    },
    /// Other servers' active bans, new or extended since the last pull.
    Bans(Vec<FleetBan>),
    /// A pull failed (reported once per outage).
    PullFailed {
        /// Why it failed.
        error: FleetError,
        /// How long until the next try.
        retry_in: Duration,
    },
    /// Pulling works again after a failure.
    PullRecovered,
    /// Time to look for erasure requests: after a notification (a request notifies like
    /// a report), on the first pull and with every catch-up read.
    CheckErasures,
    /// The link stopped: the last event.
    Stopped,
}

/// The running link; stopped (after one last push) when dropped.
pub struct Link {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts the link's thread: it pushes with `pusher` at once and then about every
    /// `every`, pulls with `puller` when there is one, and hands every event to `report`.
    /// `now` gives the wall clock in Unix seconds.
    pub fn spawn(
        mut pusher: Pusher,
        mut puller: Option<Puller>,
        every: Duration,
        now: fn() -> i64,
        mut report: impl FnMut(LinkEvent) + Send + 'static,
    ) -> Link {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut push_failing, mut pull_failing) = (false, false);
            let mut notified = true;
            let mut last_pull: Option<Instant> = None;
            loop {
                let last = stopping.load(Ordering::Relaxed);
                let near_before = pusher.near_misses_pushed();
                match pusher.step(now()) {
                    Ok(Some(sent)) if sent > 0 || push_failing => {
                        report(LinkEvent::Pushed {
                            sent,
                            near_misses: pusher.near_misses_pushed() - near_before,
                            recovered: push_failing,
                        });
                        push_failing = false;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        if !push_failing {
                            report(LinkEvent::PushFailed {
                                error,
                                pending: pusher.pending().unwrap_or(0),
                                retry_in: pusher.retry_in().unwrap_or_default(),
                            });
                        }
                        push_failing = true;
                    }
                }
                if last {
                    report(LinkEvent::Stopped);
                    return;
                }
                if let Some(p) = puller.as_mut() {
                    let due = notified
                        || !p.connected()
                        || last_pull.is_none_or(|t| t.elapsed() >= CATCH_UP);
                    if due {
                        match p.step() {
                            Ok(Some(bans)) => {
                                last_pull = Some(Instant::now());
                                if pull_failing {
                                    report(LinkEvent::PullRecovered);
                                    pull_failing = false;
                                }
                                if !bans.is_empty() {
                                    report(LinkEvent::Bans(bans));
                                }
                                report(LinkEvent::CheckErasures);
                            }
                            Ok(None) => {}
                            Err(error) => {
                                if !pull_failing {
                                    report(LinkEvent::PullFailed {
                                        error,
                                        retry_in: Duration::from_secs(1),
                                    });
                                }
                                pull_failing = true;
                            }
                        }
                    }
                }
                notified = match puller.as_mut() {
                    Some(p) if p.connected() => p.wait(every),
                    _ => {
                        let until = Instant::now() + every;
                        while Instant::now() < until && !stopping.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(20).min(every));
                        }
                        false
                    }
                };
            }
        });
        Link {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
