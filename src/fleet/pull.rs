//! Pulling the fleet's bans: the sources other servers flagged that are still banned, read
//! by the commit-ordered sequence (`seq`, see [`super::schema`]) from a watermark kept in
//! the local store (table `fleet_state`), so a server that was stopped or cut off catches
//! up with everything it missed and nothing twice. A connection that `LISTEN`s on
//! `logward_fleet` wakes the reader when a server reports. With `min_hosts`, a source is a
//! fleet ban only once that many servers (this one included) flagged it; with 2 or more,
//! servers that came near flagging it (near misses, reported as partial) count too, so an
//! attack spread thinly over the fleet is banned although no server saw enough alone. It
//! does not act on the bans: the command hands them to its nftables set and `--on-flag`
//! actions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use postgres::fallible_iterator::FallibleIterator;
use rusqlite::Connection;

use super::FleetError;
use super::connect::{Fleet, Settings};

/// The local state the puller keeps in the store.
pub const STATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fleet_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// A ban learnt from the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetBan {
    /// The banned address or network.
    pub source: IpNet,
    /// The rules that flagged it, over all servers, sorted.
    pub rules: Vec<String>,
    /// The servers whose ban is active, sorted.
    pub hosts: Vec<String>,
    /// The latest end of their bans (unix seconds).
    pub expires: i64,
    /// The most events one server counted.
    pub events: i64,
    /// Whether near misses made it a ban: fewer than `min_hosts` servers flagged it.
    pub spread: bool,
}

/// Sources reported (or reported again) since `$1` by another server, or by this one as a
/// near miss (which may complete a spread ban), with every server's active report of them,
/// that meet the fleet rule (`$2`: servers needed): that many servers flagged it, or with
/// 2 or more, that many flagged it or came near. Runs in the snapshot where `$3` is the
/// newest `seq`, so no later row is half read.
const CHANGED: &str = "
WITH changed AS (
    SELECT DISTINCT source FROM logward.flags
    WHERE seq > $1 AND seq <= $3 AND (host <> session_user OR partial)
)
SELECT f.source::text,
       string_agg(DISTINCT array_to_string(f.rules, ','), ','),
       array_agg(DISTINCT f.host ORDER BY f.host),
       extract(epoch FROM max(f.expires))::bigint,
       max(f.events),
       count(DISTINCT f.host) FILTER (WHERE NOT f.partial) < $2
FROM logward.flags f JOIN changed c ON f.source = c.source
WHERE f.expires > now()
GROUP BY f.source
HAVING (count(DISTINCT f.host) FILTER (WHERE NOT f.partial) >= $2
        OR ($2 >= 2 AND count(DISTINCT f.host) >= $2))
   AND bool_or(f.host <> session_user)
ORDER BY f.source";

/// Reads the fleet's bans for one server.
pub struct Puller {
    settings: Settings,
    state: Connection,
    path: PathBuf,
    fleet: Option<Fleet>,
    watermark: i64,
    pause: Duration,
    next_try: Option<Instant>,
}

impl Puller {
    /// Opens the store's pull state (the watermark; 0 the first time).
    pub fn open(settings: Settings, store: &Path) -> Result<Puller, FleetError> {
        let sql = |source| FleetError::Store {
            path: store.to_path_buf(),
            source,
        };
        let state = Connection::open(store).map_err(sql)?;
        state.busy_timeout(Duration::from_secs(60)).map_err(sql)?;
        state.execute_batch(STATE_SCHEMA).map_err(sql)?;
        let watermark = state
            .query_row(
                "SELECT coalesce((SELECT value FROM fleet_state WHERE key = 'pulled_seq'), 0)",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        Ok(Puller {
            settings,
            state,
            path: store.to_path_buf(),
            fleet: None,
            watermark,
            pause: super::push::FIRST_PAUSE,
            next_try: None,
        })
    }

    /// The newest `seq` read.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Whether the listening connection is up.
    pub fn connected(&self) -> bool {
        self.fleet.is_some()
    }

    /// Connects and listens, when not connected.
    fn ensure(&mut self) -> Result<&mut Fleet, FleetError> {
        let fleet = match self.fleet.take() {
            Some(f) => f,
            None => {
                let mut fleet = super::push::connect_as_host(&self.settings)?;
                fleet
                    .client
                    .batch_execute("LISTEN logward_fleet")
                    .map_err(fleet.sql("LISTEN"))?;
                fleet
            }
        };
        Ok(self.fleet.insert(fleet))
    }

    /// The bans other servers reported since the last pull that are still active, and
    /// moves the watermark past them (saved in the store). On a failure the connection is
    /// dropped and the watermark stays, so the next pull reads the same rows again.
    pub fn pull(&mut self) -> Result<Vec<FleetBan>, FleetError> {
        let from = self.watermark;
        let min_hosts = i64::from(self.settings.min_hosts.unwrap_or(1));
        let result = (|| {
            let fleet = self.ensure()?;
            let server = fleet.server.clone();
            let sql = |what| FleetError::sql(&server, what);
            let mut tx = fleet
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(sql("BEGIN"))?;
            let upto: i64 = tx
                .query_one(
                    "SELECT coalesce(max(seq), $1) FROM logward.flags WHERE seq > $1",
                    &[&from],
                )
                .map_err(sql("reading the fleet's sequence"))?
                .get(0);
            if upto == from {
                return Ok((upto, Vec::new()));
            }
            let rows = tx
                .query(CHANGED, &[&from, &min_hosts, &upto])
                .map_err(sql("reading the fleet's bans"))?;
            tx.commit().map_err(sql("COMMIT"))?;
            let mut bans = Vec::with_capacity(rows.len());
            for row in rows {
                let text: String = row.get(0);
                let Ok(source) = text.parse::<IpNet>() else {
                    continue;
                };
                let rules = super::rule_list(row.get::<_, Option<&str>>(1));
                bans.push(FleetBan {
                    source,
                    rules,
                    hosts: row.get(2),
                    expires: row.get(3),
                    events: row.get(4),
                    spread: row.get(5),
                });
            }
            Ok((upto, bans))
        })();
        match result {
            Ok((upto, bans)) => {
                if upto != from {
                    self.state
                        .execute(
                            "INSERT OR REPLACE INTO fleet_state (key, value) VALUES ('pulled_seq', ?1)",
                            [upto],
                        )
                        .map_err(|source| FleetError::Store {
                            path: self.path.clone(),
                            source,
                        })?;
                    self.watermark = upto;
                }
                Ok(bans)
            }
            Err(e) => {
                self.fleet = None;
                Err(e)
            }
        }
    }

    /// [`Puller::pull`], unless the pause after a failure has not passed (then `Ok(None)`).
    pub fn step(&mut self) -> Result<Option<Vec<FleetBan>>, FleetError> {
        if self.next_try.is_some_and(|t| Instant::now() < t) {
            return Ok(None);
        }
        match self.pull() {
            Ok(bans) => {
                self.pause = super::push::FIRST_PAUSE;
                self.next_try = None;
                Ok(Some(bans))
            }
            Err(e) => {
                self.next_try = Some(Instant::now() + self.pause);
                self.pause = (self.pause * 2).min(super::push::MAX_PAUSE);
                Err(e)
            }
        }
    }

    /// Waits up to `limit` for a server's report (`NOTIFY`); false when none came or the
    /// connection is down (then it just sleeps).
    pub fn wait(&mut self, limit: Duration) -> bool {
        let Some(fleet) = self.fleet.as_mut() else {
            std::thread::sleep(limit);
            return false;
        };
        let got = {
            let mut notes = fleet.client.notifications();
            let first = notes.timeout_iter(limit).next();
            match first {
                Ok(Some(_)) => {
                    // Drain the others that came with it: one read serves them all.
                    while let Ok(Some(_)) = notes.iter().next() {}
                    Some(true)
                }
                Ok(None) => Some(false),
                Err(_) => None,
            }
        };
        match got {
            Some(notified) => notified,
            None => {
                self.fleet = None;
                false
            }
        }
    }
}
