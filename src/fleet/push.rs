//! Pushing the outbox to the fleet: batches of the store's entries as they are now
//! (absolute counts, so a batch sent twice changes nothing), through
//! `logward.report_flags`, with a reconnect and a growing pause after a failure. The
//! outbox keeps everything until the database confirms it, so a server whose database is
//! down goes on flagging and banning locally and catches up later. It does not decide
//! when to push (the commands and [`super::link`] do) and does not print.

use std::path::Path;
use std::time::{Duration, Instant};

use super::FleetError;
use super::connect::{Fleet, Settings, connect};
use super::outbox::{Outbox, Queued};

/// Entries per `report_flags` call.
pub const BATCH: usize = 500;

/// The first pause after a failure; it doubles up to [`MAX_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause after failures.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Connects and checks what a reporting server needs: the schema this build writes, and a
/// login role that is this server's fleet host (the database takes the reporter from it).
pub fn connect_as_host(settings: &Settings) -> Result<Fleet, FleetError> {
    let mut fleet = connect(settings)?;
    super::schema::check(&mut fleet)?;
    let role: String = fleet
        .client
        .query_one("SELECT session_user::text", &[])
        .map_err(fleet.sql("reading the login role"))?
        .get(0);
    if role != settings.host {
        return Err(FleetError::NotHost {
            server: fleet.server.clone(),
            role,
            host: settings.host.clone(),
        });
    }
    Ok(fleet)
}

/// Pushes one store's outbox.
pub struct Pusher {
    settings: Settings,
    outbox: Outbox,
    fleet: Option<Fleet>,
    pause: Duration,
    next_try: Option<Instant>,
    /// Sample lines of entries first seen longer ago than this (seconds) are not pushed:
    /// past the retention window they would have been masked in the logs.
    sample_max_age: i64,
    /// Near misses pushed so far (they are among the counts `drain` returns).
    near_misses_pushed: u64,
}

impl Pusher {
    /// A pusher for the outbox of the store file `store`; it connects at its first push.
    /// Entries first seen more than `sample_max_age` seconds before a push go without their
    /// samples.
    pub fn new(
        settings: Settings,
        store: &Path,
        sample_max_age: i64,
    ) -> Result<Pusher, FleetError> {
        Ok(Pusher {
            settings,
            outbox: Outbox::open(store)?,
            fleet: None,
            pause: FIRST_PAUSE,
            next_try: None,
            sample_max_age,
            near_misses_pushed: 0,
        })
    }

    /// How many of the entries pushed so far were near misses, not flags.
    pub fn near_misses_pushed(&self) -> u64 {
        self.near_misses_pushed
    }

    /// Entries waiting in the outbox.
    pub fn pending(&self) -> Result<u64, FleetError> {
        self.outbox.pending()
    }

    /// Pushes everything queued, connecting first when needed; returns how many entries
    /// went. On a failure the connection is dropped, the outbox keeps what was not
    /// confirmed, and the error is returned.
    pub fn drain(&mut self, now: i64) -> Result<u64, FleetError> {
        let mut sent = 0u64;
        loop {
            let batch = self.outbox.batch(BATCH)?;
            if batch.is_empty() {
                return Ok(sent);
            }
            if self.fleet.is_none() {
                self.fleet = Some(connect_as_host(&self.settings)?);
            }
            let json = batch_json(&batch, now, self.sample_max_age);
            let Some(fleet) = self.fleet.as_mut() else {
                return Ok(sent);
            };
            let server = fleet.server.clone();
            if let Err(source) = fleet
                .client
                .query_one("SELECT logward.report_flags($1::text::jsonb)", &[&json])
            {
                self.fleet = None;
                return Err(FleetError::Sql {
                    server,
                    what: "reporting flags",
                    source,
                });
            }
            self.outbox.done(&batch)?;
            sent += batch.len() as u64;
            self.near_misses_pushed += batch.iter().filter(|q| q.partial).count() as u64;
        }
    }

    /// [`Pusher::drain`], unless the pause after a failure has not passed yet (then
    /// `Ok(None)`). A failure doubles the pause, up to [`MAX_PAUSE`]; a success resets it.
    pub fn step(&mut self, now: i64) -> Result<Option<u64>, FleetError> {
        if self.next_try.is_some_and(|t| Instant::now() < t) {
            return Ok(None);
        }
        match self.drain(now) {
            Ok(n) => {
                self.pause = FIRST_PAUSE;
                self.next_try = None;
                Ok(Some(n))
            }
            Err(e) => {
                self.next_try = Some(Instant::now() + self.pause);
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                Err(e)
            }
        }
    }

    /// The pause before the next try, after a failure.
    pub fn retry_in(&self) -> Option<Duration> {
        self.next_try
            .map(|t| t.saturating_duration_since(Instant::now()))
    }
}

/// The JSON array `logward.report_flags` takes.
fn batch_json(batch: &[Queued], now: i64, sample_max_age: i64) -> String {
    let rows: Vec<serde_json::Value> = batch
        .iter()
        .map(|q| {
            let samples = if now.saturating_sub(q.first_seen) <= sample_max_age {
                serde_json::from_str(&q.samples).unwrap_or(serde_json::Value::Array(Vec::new()))
            } else {
                serde_json::Value::Array(Vec::new())
            };
            serde_json::json!({
                "source": q.source,
                "rules": q.rules,
                "first_seen": q.first_seen,
                "last_seen": q.last_seen,
                "events": q.events,
                "times_flagged": q.times_flagged,
                "expires": q.expires,
                "samples": samples,
                "country": q.country,
                "asn": q.asn,
                "as_org": q.as_org,
                "partial": q.partial,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}
