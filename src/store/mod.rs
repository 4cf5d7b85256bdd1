//! The flagged-source store: a SQLite database (WAL mode, file mode 0600) holding the
//! sources detection flagged, the scan ledger, and the queries the commands need.
//!
//! It owns the schema ([`SCHEMA`]), merging of repeat flags and ban expiry, and erasure.
//! It does not detect anything (detection hands it [`NewFlag`]s) and does not print: the
//! export formats live in [`export`]. The persistent allowlist is [`allowlist`]'s.

pub mod allowlist;
pub mod export;
pub mod ledger;
pub mod near;
pub mod net;
pub mod path;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};

pub use allowlist::{AllowAdded, AllowedNet};
pub use ledger::{Counted, FileFingerprint, FileHead};
pub use near::{NearMissEntry, NewNearMiss};

/// The schema, version [`SCHEMA_VERSION`] (kept in `PRAGMA user_version`). Read it to use
/// the database with the `sqlite3` shell; all times are UTC unix seconds (log time).
pub const SCHEMA: &str = "
-- One row per flagged source: a single address (/32, /128) or a prefix (e.g. a /64), with
-- its ban and a summary of its episodes.
CREATE TABLE flagged (
    source        TEXT PRIMARY KEY,   -- canonical CIDR: '192.0.2.7/32', '2001:db8:85a3::/64'
    family        INTEGER NOT NULL,   -- 4 or 6
    -- First and last address of the network as 16-byte big-endian blobs, IPv4 mapped into
    -- ::ffff:0:0/96. Entries containing address X: net_lo <= X AND net_hi >= X.
    -- Entries inside network C: net_lo >= C_lo AND net_hi <= C_hi. Both with family = ?.
    net_lo        BLOB NOT NULL,
    net_hi        BLOB NOT NULL,
    rules         TEXT NOT NULL,      -- rule names, sorted, comma-separated
    first_seen    INTEGER NOT NULL,   -- earliest offending request (unix seconds, UTC)
    last_seen     INTEGER NOT NULL,   -- latest offending request (unix seconds, UTC)
    events        INTEGER NOT NULL,   -- offending lines over all episodes, each counted once
    -- JSON array of up to 3 sample lines: {\"at\": \"/var/log/x.log:12\" or null,
    -- \"line\": the raw line, control bytes and non-ASCII as \\xNN}
    samples       TEXT NOT NULL,
    vhost         TEXT,               -- the site with the most events
    country       TEXT,               -- ISO 3166-1 alpha-2, from GeoIP when configured
    asn           INTEGER,
    as_org        TEXT,
    times_flagged INTEGER NOT NULL,   -- how many episodes; each doubles the ban
    expires       INTEGER NOT NULL,   -- when the ban ends (unix seconds, UTC)
    rule_events   TEXT NOT NULL DEFAULT '{}',  -- JSON object: rule name -> events
    sites         TEXT NOT NULL DEFAULT '[]',  -- JSON [[site, events]...], most first
    files         TEXT NOT NULL DEFAULT '[]'   -- JSON [[log file, events]...], most first
);
CREATE INDEX flagged_lo ON flagged (family, net_lo);
CREATE INDEX flagged_hi ON flagged (family, net_hi);
CREATE INDEX flagged_last_seen ON flagged (last_seen);
CREATE INDEX flagged_expires ON flagged (expires);

-- Files already scanned, so a re-scan does not count their events twice, one row per
-- device and inode. size is the bytes counted (for a plain file, through the last line
-- read, so a live log that grew is counted from there). head_hash is FNV-1a 64 of the first
-- min(size, 4 KiB) bytes, stored as the signed 64-bit integer with the same bits.
CREATE TABLE scanned_files (
    device     INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    head_hash  INTEGER NOT NULL,
    path       TEXT NOT NULL,         -- where it was when scanned (informational)
    scanned_at INTEGER NOT NULL,      -- unix seconds, UTC
    PRIMARY KEY (device, inode, size, head_hash)
);
";

/// Episodes, added in version 2: one row per episode of a flagged source (its flagging
/// rules' events with no pause over six hours, in which a bucket overflowed).
pub const EPISODES: &str = "
CREATE TABLE episodes (
    source      TEXT NOT NULL,        -- flagged.source
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    rule_events TEXT NOT NULL,        -- JSON object: rule name -> events
    sites       TEXT NOT NULL,        -- JSON [[site, events]...], most first
    files       TEXT NOT NULL,        -- JSON [[log file, events]...], most first
    samples     TEXT NOT NULL,        -- JSON array of samples, as flagged.samples
    -- JSON array, per rule: {rule, capacity, leak_ms, at (first overflow), times,
    -- lines (the latest samples that filled the bucket then)}
    explain     TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX episodes_source ON episodes (source, first_seen);
";

/// Version 1 to 2: the per-rule, site and file columns, and one episode per entry.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE flagged ADD COLUMN rule_events TEXT NOT NULL DEFAULT '{}';
ALTER TABLE flagged ADD COLUMN sites TEXT NOT NULL DEFAULT '[]';
ALTER TABLE flagged ADD COLUMN files TEXT NOT NULL DEFAULT '[]';
UPDATE flagged SET sites = json_array(json_array(vhost, events)) WHERE vhost IS NOT NULL;
INSERT INTO episodes (source, first_seen, last_seen, events, rule_events, sites, files,
                      samples, explain, recorded_at)
    SELECT source, first_seen, last_seen, events, '{}', sites, '[]', samples, '[]', last_seen
    FROM flagged;
";

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 2;

/// Events of one source further apart than this are separate episodes (as the detection
/// engine splits them): recording an episode that comes within it of a recorded one
/// continues that one.
pub const EPISODE_GAP: i64 = 6 * 3600;

/// How many sites and files an entry or episode lists (the busiest).
pub const MAX_LISTED: usize = 20;

/// How many raw sample lines an entry keeps.
pub const MAX_SAMPLES: usize = 3;

/// A store failure; every variant names the database file (or the file beside it that
/// failed). The operating system's or SQLite's reason is the `source()`.
#[derive(Debug)]
pub enum StoreError {
    /// No path was given and there is no home directory to fall back on.
    NoPath,
    /// Creating the directory or the database file, or taking the recording lock, failed;
    /// `action` says which.
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What was being done, in words.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// SQLite refused an operation (not a database, locked, disk full...).
    Sql {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer logward.
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version it holds.
        found: i64,
    },
    /// A row holds a value this build cannot read (edited by hand?).
    BadRow {
        /// The database file.
        path: PathBuf,
        /// Which value, and what is wrong with it.
        what: String,
    },
}

/// The store's recording lock, released when dropped: see [`Store::lock_for_recording`].
pub struct RecordingLock {
    _file: std::fs::File,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoPath => write!(
                f,
                "no store path: pass one, set LOGWARD_STORE, or set HOME or XDG_STATE_HOME"
            ),
            StoreError::Io { path, action, .. } => {
                write!(f, "{}: cannot {action}", path.display())
            }
            StoreError::Sql { path, .. } => write!(f, "{}: cannot use the store", path.display()),
            StoreError::NewerSchema { path, found } => write!(
                f,
                "{}: schema version {found} is newer than this logward supports ({SCHEMA_VERSION})",
                path.display()
            ),
            StoreError::BadRow { path, what } => write!(f, "{}: {what}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Sql { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One episode of a source as detection reports it, before merging with what the store
/// holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFlag {
    /// A single address (/32, /128) or a prefix such as `2001:db8:85a3::/64`.
    pub source: IpNet,
    /// Names of the rules that flagged it, sorted.
    pub rules: Vec<String>,
    /// Per rule: its events.
    pub rule_events: Vec<(String, u64)>,
    /// UTC unix seconds of the first event, log time.
    pub first_seen: i64,
    /// UTC unix seconds of the last event, log time.
    pub last_seen: i64,
    /// Lines that matched a flagging rule, each counted once.
    pub events: u64,
    /// Up to [`MAX_SAMPLES`] lines, already escaped (see [`Sample::new`]).
    pub samples: Vec<Sample>,
    /// Events per site, most first.
    pub sites: Vec<(String, u64)>,
    /// Events per log file, most first.
    pub files: Vec<(String, u64)>,
    /// Per flagging rule, why it flagged the episode.
    pub explain: Vec<Explained>,
    /// ISO 3166-1 alpha-2 country code, from GeoIP when configured.
    pub country: Option<String>,
    /// AS number, from GeoIP when configured.
    pub asn: Option<u32>,
    /// AS organisation, from GeoIP when configured.
    pub as_org: Option<String>,
}

impl NewFlag {
    /// Its country and AS number as people read them (`DE AS3320`, `- AS3320`, `DE`), or
    /// `None` when neither is known.
    pub fn geo_label(&self) -> Option<String> {
        match (&self.country, self.asn) {
            (None, None) => None,
            (c, a) => Some(format!(
                "{}{}",
                c.as_deref().unwrap_or("-"),
                a.map(|a| format!(" AS{a}")).unwrap_or_default()
            )),
        }
    }
}

/// A sample line and where it was (`path:line`, or the path alone when its line number is
/// not known), when known.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Where the line was, already escaped.
    pub at: Option<String>,
    /// The raw line made printable ASCII ([`crate::escape::text`]).
    pub line: String,
}

impl Sample {
    /// A sample of the line `raw`, found at `at`, both made printable; an `at` escaped
    /// before is not escaped again.
    pub fn new(at: Option<String>, raw: &[u8]) -> Sample {
        Sample {
            at: at.map(|a| crate::escape::again(&a)),
            line: crate::escape::text(raw),
        }
    }
}

/// Samples as stored: version 1 kept bare strings.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredSample {
    Bare(String),
    Placed(Sample),
}

/// Why a rule flagged an episode: its bucket, its first overflow there (unix seconds), how
/// many times it overflowed, and the latest lines that filled it then.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Explained {
    /// Name of the rule.
    pub rule: String,
    /// Events its bucket holds before the next one overflows; 0 for a trigger.
    pub capacity: u32,
    /// Milliseconds of log time in which its bucket loses one event.
    pub leak_ms: i64,
    /// Unix seconds of its first overflow in the episode.
    pub at: i64,
    /// How many times it overflowed in the episode.
    pub times: u64,
    /// The latest lines that filled the bucket up to that first overflow.
    pub lines: Vec<Sample>,
}

/// One row of `flagged`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaggedEntry {
    /// The address (/32, /128) or prefix flagged.
    pub source: IpNet,
    /// Names of the rules that flagged it in any episode, sorted.
    pub rules: Vec<String>,
    /// Per rule, sorted by name: its events over all episodes.
    pub rule_events: Vec<(String, u64)>,
    /// Unix seconds of the earliest offending request, log time.
    pub first_seen: i64,
    /// Unix seconds of the latest offending request, log time.
    pub last_seen: i64,
    /// Offending lines over all episodes, each counted once.
    pub events: u64,
    /// Up to [`MAX_SAMPLES`] sample lines.
    pub samples: Vec<Sample>,
    /// The site with the most events.
    pub vhost: Option<String>,
    /// Events per site, most first.
    pub sites: Vec<(String, u64)>,
    /// Events per log file, most first.
    pub files: Vec<(String, u64)>,
    /// ISO 3166-1 alpha-2 country code, from GeoIP when configured.
    pub country: Option<String>,
    /// AS number, from GeoIP when configured.
    pub asn: Option<u32>,
    /// AS organisation, from GeoIP when configured.
    pub as_org: Option<String>,
    /// How many episodes were flagged; each doubles the ban.
    pub times_flagged: u32,
    /// Unix seconds when the ban ends.
    pub expires: i64,
}

impl FlaggedEntry {
    /// Seconds of ban left at `now`; zero or less once expired.
    pub fn remaining(&self, now: i64) -> i64 {
        self.expires.saturating_sub(now)
    }
}

/// One row of `episodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    /// Unix seconds of its first event, log time.
    pub first_seen: i64,
    /// Unix seconds of its last event, log time.
    pub last_seen: i64,
    /// Lines that matched a flagging rule, each counted once.
    pub events: u64,
    /// Per rule: its events.
    pub rule_events: Vec<(String, u64)>,
    /// Events per site, most first.
    pub sites: Vec<(String, u64)>,
    /// Events per log file, most first.
    pub files: Vec<(String, u64)>,
    /// Up to [`MAX_SAMPLES`] sample lines.
    pub samples: Vec<Sample>,
    /// Per flagging rule, why it flagged the episode.
    pub explain: Vec<Explained>,
    /// Unix seconds when the episode was recorded, by the clock (not log time).
    pub recorded_at: i64,
}

/// How [`Store::record_flags_at`] merges an episode into one it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recording {
    /// The lines are new (the scan ledger saw to it): counts add up, and a ban may grow.
    Add,
    /// The lines may have been counted before (`scan --rescan`): each count keeps the
    /// larger of the two, and a ban recorded for the episode is left as it is.
    Recount,
}

/// What [`Store::erase`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// The entries removed, in canonical CIDR form.
    pub removed: Vec<String>,
    /// Other entries whose samples or vhost held the address, masked in place.
    pub masked_entries: usize,
    /// False when the WAL could not be checkpointed and truncated (a reader held it past
    /// the busy timeout): copies of the old rows may remain in the WAL.
    pub wal_truncated: bool,
}

/// Sources recorded per write transaction by [`Store::record_flags_at`].
pub const RECORD_CHUNK: usize = 2000;

/// How long a flag bans: `base` the first time, doubled per repeat flag, at most `max`.
///
/// A ban is an action, and it starts when logward takes it: a flag whose last event is at
/// most `window` before the clock (a nightly scan of yesterday's log, `watch`) is banned
/// from the moment it is recorded. An older one (a replay of last month, forensics) is
/// recorded without an active ban: it expires when its ban would have, counted from its
/// last event, and never later than the moment it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanPolicy {
    /// Seconds of the first ban.
    pub base: i64,
    /// The longest ban, in seconds.
    pub max: i64,
    /// Seconds before the clock within which a flag's last event must fall for its ban to
    /// start when it is recorded.
    pub window: i64,
}

impl Default for BanPolicy {
    fn default() -> Self {
        BanPolicy {
            base: 4 * 3600,
            max: 7 * 86_400,
            window: 86_400,
        }
    }
}

impl BanPolicy {
    /// Ban length for a source flagged `times` times (1 for the first flag).
    pub fn ban(&self, times: u32) -> i64 {
        let doublings = times.saturating_sub(1).min(62);
        self.base
            .max(0)
            .saturating_mul(1i64 << doublings)
            .min(self.max.max(0))
    }

    /// When the ban of a source last seen at `last_seen` and flagged `times` times ends,
    /// recorded at `now` (see the type's docs).
    pub fn expiry(&self, last_seen: i64, times: u32, now: i64) -> i64 {
        let ban = self.ban(times);
        if now.saturating_sub(last_seen) <= self.window {
            now.max(last_seen).saturating_add(ban)
        } else {
            last_seen.saturating_add(ban).min(now)
        }
    }
}

/// What a query looks for: an address (entries containing it) or a network (entries
/// inside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Entries containing this address.
    Addr(std::net::IpAddr),
    /// Entries inside this network.
    Net(IpNet),
}

impl FromStr for Target {
    type Err = String;

    /// `192.0.2.7`, `2001:db8::1`, `::ffff:192.0.2.7` or a CIDR such as `10.0.0.0/8`.
    fn from_str(s: &str) -> Result<Target, String> {
        let s = s.trim();
        if s.contains('/') {
            s.parse::<IpNet>()
                .map(Target::Net)
                .map_err(|_| format!("not a network: {s:?}"))
        } else {
            s.parse()
                .map(Target::Addr)
                .map_err(|_| format!("not an address: {s:?}"))
        }
    }
}

/// A query over `flagged`. Empty fields do not filter; several targets match any of them.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Entries matching any of these.
    pub targets: Vec<Target>,
    /// `last_seen >= since`.
    pub since: Option<i64>,
    /// `last_seen < until`.
    pub until: Option<i64>,
    /// Entries flagged by any of these rules.
    pub rules: Vec<String>,
    /// Entries whose events targeted this site (case-insensitive).
    pub vhost: Option<String>,
    /// ISO code, compared case-insensitively.
    pub country: Option<String>,
    /// AS number.
    pub asn: Option<u32>,
    /// Only entries still banned at this time (`expires > now`).
    pub active_at: Option<i64>,
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    ban: BanPolicy,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

const COLUMNS: &str = "source, rules, first_seen, last_seen, events, samples, vhost, country, \
                       asn, as_org, times_flagged, expires, rule_events, sites, files";

const EPISODE_COLUMNS: &str = "first_seen, last_seen, events, rule_events, sites, files, \
                               samples, explain, recorded_at";

impl Store {
    /// Opens the database at `path`, creating it (mode 0600, directory 0700) and its schema
    /// when missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let io = |path: &Path, action| {
            let path = path.to_path_buf();
            move |source| StoreError::Io {
                path,
                action,
                source,
            }
        };
        let dir = path::state_dir(path);
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io(&dir, "create the state directory"))?;
        }
        // Create the file ourselves so SQLite never creates it with the umask's mode; the
        // -wal and -shm files SQLite adds copy the database file's permissions.
        // Without following a link: a dangling link at the store path made a root run
        // create a database wherever it pointed.
        OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(path)
            .map_err(io(path, "create or open the store"))?;
        let conn = Connection::open(path).map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            ban: BanPolicy::default(),
        };
        store.init()?;
        Ok(store)
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn bad(&self, what: String) -> StoreError {
        StoreError::BadRow {
            path: self.path.clone(),
            what,
        }
    }

    /// A write transaction that begins as one (BEGIN IMMEDIATE), so it waits for another
    /// writer under the busy timeout; a deferred one that reads first fails at once with
    /// "database is locked" when it tries to write (a regression: concurrent scans and
    /// watch lost their flags). Every write of the store goes through it.
    fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    fn init(&mut self) -> Result<(), StoreError> {
        // Several logward runs (cron scan, an operator's query) may share the file.
        self.conn
            .busy_timeout(std::time::Duration::from_secs(60))
            .map_err(|e| self.sql(e))?;
        // Deleted rows are overwritten, not left in free pages: an erasure must leave no copy
        // of an address in the file's bytes.
        self.conn
            .pragma_update(None, "secure_delete", "ON")
            .map_err(|e| self.sql(e))?;
        // WAL lets a query run while a scan writes. A filesystem without shared memory
        // support keeps the old mode; the store still works, only with more locking.
        let _mode: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        // Counters other processes poll (an erasure's generation, for `watch`); added to
        // stores of every version, so no schema change is needed.
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            )
            .map_err(|e| self.sql(e))?;
        // The persistent allowlist, likewise added to stores of every version.
        self.conn
            .execute_batch(allowlist::ALLOWLIST_SCHEMA)
            .map_err(|e| self.sql(e))?;
        // Near misses for fleet mode, likewise.
        self.conn
            .execute_batch(near::NEAR_MISSES_SCHEMA)
            .map_err(|e| self.sql(e))?;
        // IMMEDIATE takes the write lock first, so two first runs cannot both see version 0
        // and both create the tables.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Sql {
                path: self.path.clone(),
                source: e,
            })?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| StoreError::Sql {
                path: self.path.clone(),
                source: e,
            })?;
        // The statements that bring this version to SCHEMA_VERSION, in one transaction.
        let steps: &[&str] = match version {
            0 => &[SCHEMA, EPISODES],
            1 => &[EPISODES, MIGRATE_1_TO_2],
            _ => &[],
        };
        match version {
            0 | 1 => {
                steps
                    .iter()
                    .try_for_each(|sql| tx.execute_batch(sql))
                    .and_then(|_| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
                    .and_then(|_| tx.commit())
                    .map_err(|e| StoreError::Sql {
                        path: self.path.clone(),
                        source: e,
                    })?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StoreError::NewerSchema {
                    path: self.path.clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// logward's state directory: the directory holding the database.
    pub fn state_dir(&self) -> PathBuf {
        path::state_dir(&self.path)
    }

    /// Waits for and takes the store's recording lock (`scan-record.lock` in the state
    /// directory), held until the returned guard drops. A scan holds it while it decides
    /// how its episodes go in (see `scan::AlreadyCounted::recording`), records them and
    /// marks its files scanned: two scans of the same files at once then record one after
    /// the other, and the second finds the files counted and recounts instead of adding
    /// its episodes again.
    pub fn lock_for_recording(&self) -> Result<RecordingLock, StoreError> {
        let path = self.state_dir().join("scan-record.lock");
        let io = |source| StoreError::Io {
            path: path.clone(),
            action: "take the recording lock",
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io)?;
        // `File::lock` is newer than the supported Rust; flock(2) is what it calls.
        loop {
            // SAFETY: the descriptor belongs to `file`, which is open for the whole call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io(e));
            }
        }
        Ok(RecordingLock { _file: file })
    }

    /// How long recorded flags ban: [`BanPolicy::default`] unless set.
    pub fn ban_policy(&self) -> BanPolicy {
        self.ban
    }

    /// Sets how long flags recorded from now on ban.
    pub fn set_ban_policy(&mut self, ban: BanPolicy) {
        self.ban = ban;
    }

    /// Merges `flags` into the store (see [`Store::record_flags_at`]) with the clock as now.
    /// Returns how many sources were recorded.
    pub fn record_flags(&mut self, flags: &[NewFlag]) -> Result<usize, StoreError> {
        Ok(self
            .record_flags_at(flags, crate::timefmt::unix_now(), Recording::Add)?
            .len())
    }

    /// Records `flags`, each one episode of its source, with `now` as the clock.
    ///
    /// An episode that comes within [`EPISODE_GAP`] of one recorded for its source continues
    /// it (merged as `how` says); any other is a new episode, counted in `times_flagged`,
    /// whose ban starts now when it is recent (see [`BanPolicy`]). A ban already recorded
    /// is never shortened, and a recount never changes it.
    ///
    /// Returns each source recorded with the expiry of its ban as stored, so a caller that
    /// reports bans needs no query whose size grows with the batch. Large batches commit in
    /// transactions of [`RECORD_CHUNK`] sources, so other writers wait briefly.
    pub fn record_flags_at(
        &mut self,
        flags: &[NewFlag],
        now: i64,
        how: Recording,
    ) -> Result<Vec<(IpNet, i64)>, StoreError> {
        let by_source = group_by_source(flags, now);
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let mut recorded = Vec::with_capacity(by_source.len());
        for chunk in by_source.chunks(RECORD_CHUNK) {
            let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
            for incoming in chunk {
                let expires = record_source(&tx, &self.path, self.ban, incoming, now, how)?;
                recorded.push((incoming.source, expires));
            }
            tx.commit().map_err(sql)?;
        }
        Ok(recorded)
    }

    /// The episodes recorded for `source` (its canonical form), oldest first.
    pub fn episodes(&self, source: IpNet) -> Result<Vec<Episode>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EPISODE_COLUMNS} FROM episodes WHERE source = ?1 ORDER BY first_seen"
            ))
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([net::canonical(source).to_string()], |r| read_episode(r, 0))
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.sql(e))?;
            out.push(row.into_episode().map_err(|w| self.bad(w))?);
        }
        Ok(out)
    }

    /// Entries matching `filter`, ordered by family then address.
    pub fn query(&self, filter: &Filter) -> Result<Vec<FlaggedEntry>, StoreError> {
        let mut wheres: Vec<String> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        if !filter.targets.is_empty() {
            let mut ors = Vec::new();
            for t in &filter.targets {
                match *t {
                    Target::Addr(a) => {
                        let h = net::host(a);
                        ors.push("(family = ? AND net_lo <= ? AND net_hi >= ?)".to_string());
                        let k = net::key(h.addr()).to_vec();
                        args.extend([Value::Integer(net::family(h)), k.clone().into(), k.into()]);
                    }
                    Target::Net(n) => {
                        let n = net::canonical(n);
                        let (lo, hi) = net::bounds(n);
                        ors.push("(family = ? AND net_lo >= ? AND net_hi <= ?)".to_string());
                        args.extend([
                            Value::Integer(net::family(n)),
                            lo.to_vec().into(),
                            hi.to_vec().into(),
                        ]);
                    }
                }
            }
            wheres.push(format!("({})", ors.join(" OR ")));
        }
        if let Some(s) = filter.since {
            wheres.push("last_seen >= ?".into());
            args.push(s.into());
        }
        if let Some(u) = filter.until {
            wheres.push("last_seen < ?".into());
            args.push(u.into());
        }
        if !filter.rules.is_empty() {
            // Rules are stored comma-joined; instr avoids LIKE's `_` and `%` wildcards.
            let any: Vec<&str> = filter
                .rules
                .iter()
                .map(|_| "instr(',' || rules || ',', ',' || ? || ',') > 0")
                .collect();
            wheres.push(format!("({})", any.join(" OR ")));
            args.extend(filter.rules.iter().map(|r| Value::from(r.clone())));
        }
        if let Some(v) = &filter.vhost {
            wheres.push(
                "EXISTS (SELECT 1 FROM json_each(flagged.sites) AS s \
                 WHERE json_extract(s.value, '$[0]') = ? COLLATE NOCASE)"
                    .into(),
            );
            args.push(v.clone().into());
        }
        if let Some(c) = &filter.country {
            wheres.push("country = ? COLLATE NOCASE".into());
            args.push(c.clone().into());
        }
        if let Some(a) = filter.asn {
            wheres.push("asn = ?".into());
            args.push(i64::from(a).into());
        }
        if let Some(now) = filter.active_at {
            wheres.push("expires > ?".into());
            args.push(now.into());
        }
        let mut sql = format!("SELECT {COLUMNS} FROM flagged");
        if !wheres.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&wheres.join(" AND "));
        }
        sql.push_str(" ORDER BY family, net_lo, net_hi DESC");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(params_from_iter(args), read_row)
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.sql(e))?;
            out.push(row.into_entry().map_err(|w| self.bad(w))?);
        }
        Ok(out)
    }

    /// Ends the bans of `sources` at `now`, keeping their entries and history (a false
    /// positive: the next export leaves them out).
    pub fn end_bans(&mut self, sources: &[IpNet], now: i64) -> Result<(), StoreError> {
        self.for_each_source(
            sources,
            "UPDATE flagged SET expires = min(expires, ?2) WHERE source = ?1",
            |st, key| st.execute(params![key, now]),
        )
    }

    /// Deletes the entries of `sources`, their episodes and near misses.
    pub fn delete_sources(&mut self, sources: &[IpNet]) -> Result<(), StoreError> {
        self.for_each_source(
            sources,
            "DELETE FROM flagged WHERE source = ?1",
            |st, key| st.execute([key]),
        )?;
        self.for_each_source(
            sources,
            "DELETE FROM near_misses WHERE source = ?1",
            |st, key| st.execute([key]),
        )?;
        self.for_each_source(
            sources,
            "DELETE FROM episodes WHERE source = ?1",
            |st, key| st.execute([key]),
        )
    }

    /// Runs `sql` once per source, bound by `run` with the source's key (its canonical
    /// CIDR text), in one write transaction.
    fn for_each_source(
        &mut self,
        sources: &[IpNet],
        sql: &str,
        run: impl Fn(&mut rusqlite::Statement<'_>, &str) -> rusqlite::Result<usize>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = Self::write_tx(&mut self.conn).map_err(err)?;
        {
            let mut st = tx.prepare(sql).map_err(err)?;
            for source in sources {
                run(&mut st, &net::canonical(*source).to_string()).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Deletes entries last seen before `last_seen_before`, and every episode and near miss
    /// that ended before it; returns how many entries went.
    pub fn prune(&mut self, last_seen_before: i64) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        let removed = tx
            .execute(
                "DELETE FROM flagged WHERE last_seen < ?1",
                [last_seen_before],
            )
            .map_err(sql)?;
        tx.execute(
            "DELETE FROM episodes WHERE last_seen < ?1",
            [last_seen_before],
        )
        .map_err(sql)?;
        tx.execute(
            "DELETE FROM near_misses WHERE last_seen < ?1",
            [last_seen_before],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(removed)
    }

    /// For erasure requests: deletes every entry that contains or lies inside one of
    /// `nets` (an IPv4-mapped address matches its IPv4 form), and such near misses, and
    /// returns the removed entries' sources in canonical CIDR form, sorted.
    pub fn remove_sources(&mut self, nets: &[IpNet]) -> Result<Vec<String>, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        let mut removed = Vec::new();
        for n in nets {
            let n = net::canonical(*n);
            let (lo, hi) = net::bounds(n);
            let mut st = tx
                .prepare_cached(
                    "DELETE FROM flagged WHERE family = ?1 AND \
                     ((net_lo <= ?2 AND net_hi >= ?3) OR (net_lo >= ?2 AND net_hi <= ?3)) \
                     RETURNING source",
                )
                .map_err(sql)?;
            let rows = st
                .query_map(params![net::family(n), &lo[..], &hi[..]], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(sql)?;
            for r in rows {
                removed.push(r.map_err(sql)?);
            }
            drop(st);
            near::remove_overlapping(&tx, n).map_err(sql)?;
        }
        for source in &removed {
            tx.prepare_cached("DELETE FROM episodes WHERE source = ?1")
                .and_then(|mut st| st.execute([source]))
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        removed.sort();
        removed.dedup();
        Ok(removed)
    }

    /// An erasure request in the store: removes the entries of `nets` (see
    /// [`Store::remove_sources`]), replaces with `mask` every address of `nets` in what the
    /// other entries keep (their sample lines, which quote referers, requests and
    /// X-Forwarded-For lists, and their vhost), then checkpoints the WAL and truncates it,
    /// so with `secure_delete` on no byte of the file or its WAL holds the old text. The
    /// checkpoint waits for readers (a running `watch`) under the busy timeout; when it
    /// cannot finish, the error says so and the caller must not claim success.
    pub fn erase(
        &mut self,
        nets: &[IpNet],
        mask: &mut dyn FnMut(IpAddr) -> String,
    ) -> Result<Erased, StoreError> {
        let removed = self.remove_sources(nets)?;
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let inside = |a: IpAddr| {
            let a = a.to_canonical();
            nets.iter().any(|n| n.contains(&a))
        };
        let mask_text = |text: &str, mask: &mut dyn FnMut(IpAddr) -> String| -> Option<String> {
            let bytes = text.as_bytes();
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for t in crate::format::tokens::tokens(bytes) {
                if inside(t.addr) {
                    out.push_str(&text[last..t.span.start as usize]);
                    out.push_str(&mask(t.addr));
                    last = t.span.end as usize;
                }
            }
            (last > 0).then(|| {
                out.push_str(&text[last..]);
                out
            })
        };
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        // A running `watch` polls this and drops what it holds (see `erasure_generation`).
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('erasures', 1) \
             ON CONFLICT(key) DO UPDATE SET value = value + 1",
            [],
        )
        .map_err(sql)?;
        // Every text column that quotes log lines or Host headers, per table.
        let mut masked_entries = 0;
        for (table, key, columns) in [
            ("flagged", "source", ["samples", "vhost", "sites"]),
            ("episodes", "rowid", ["samples", "explain", "sites"]),
        ] {
            let texts = &columns;
            let mut st = tx
                .prepare(&format!("SELECT {key}, {} FROM {table}", texts.join(", ")))
                .map_err(sql)?;
            let rows: Vec<(Value, [Option<String>; 3])> = st
                .query_map([], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?])))
                .map_err(sql)?
                .collect::<Result<_, _>>()
                .map_err(sql)?;
            let mut update = tx
                .prepare(&format!(
                    "UPDATE {table} SET {} = ?2, {} = ?3, {} = ?4 WHERE {key} = ?1",
                    texts[0], texts[1], texts[2]
                ))
                .map_err(sql)?;
            for (id, values) in rows {
                let masked: Vec<Option<String>> = values
                    .iter()
                    .map(|v| v.as_deref().and_then(|t| mask_text(t, mask)))
                    .collect();
                if masked.iter().all(Option::is_none) {
                    continue;
                }
                let [a, b, c] = values;
                let mut new = masked.into_iter();
                let mut pick = |old: Option<String>| new.next().flatten().or(old);
                update
                    .execute(params![id, pick(a), pick(b), pick(c)])
                    .map_err(sql)?;
                if table == "flagged" {
                    masked_entries += 1;
                }
            }
        }
        tx.commit().map_err(sql)?;
        let (busy, _, _): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql)?;
        Ok(Erased {
            removed,
            masked_entries,
            wal_truncated: busy == 0,
        })
    }

    /// How many erasures this store has recorded: a process that holds addresses (a running
    /// `watch`) polls it and forgets what it holds when it changes. The erased addresses
    /// themselves are kept nowhere.
    pub fn erasure_generation(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'erasures'", [], |r| {
                r.get(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.sql(e))
    }

    /// True when a file with this fingerprint was already scanned.
    pub fn is_scanned(&self, fp: &FileFingerprint) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM scanned_files WHERE device = ?1 AND inode = ?2 AND size = ?3 \
                 AND head_hash = ?4",
                fp_params(fp),
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.sql(e))
    }

    /// How much of the file whose head is `head` earlier scans counted: all of it when
    /// the ledger holds its fingerprint; for a plain file that grew since (same device and
    /// inode, and its first bytes hash as they did at the smaller size), the bytes it had
    /// then; otherwise nothing.
    pub fn counted(&self, head: &FileHead) -> Result<Counted, StoreError> {
        let fp = &head.fingerprint;
        if self.is_scanned(fp)? {
            return Ok(if head.compressed {
                Counted::All
            } else {
                Counted::Before(fp.size)
            });
        }
        if head.compressed {
            return Ok(Counted::Nothing);
        }
        let [d, i, s, _] = fp_params(fp);
        let sql = |e| self.sql(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT size, head_hash FROM scanned_files \
                 WHERE device = ?1 AND inode = ?2 AND size < ?3 ORDER BY size DESC",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![d, i, s], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sql)?;
        for row in rows {
            let (size, hash) = row.map_err(sql)?;
            let size = size as u64;
            if size > 0 && head.head_hash_at(size) == hash as u64 {
                return Ok(Counted::Grown(size));
            }
        }
        Ok(Counted::Nothing)
    }

    /// Records that the file `fp` (found at `file`) was scanned at `now`. Entries for the
    /// same device and inode at other sizes are dropped: the file is the same one, grown,
    /// or its inode was reused by a file that replaced it.
    pub fn mark_scanned(
        &mut self,
        fp: &FileFingerprint,
        file: &Path,
        now: i64,
    ) -> Result<(), StoreError> {
        let [d, i, s, h] = fp_params(fp);
        let path = self.path.clone();
        let sql = |e| StoreError::Sql {
            path: path.clone(),
            source: e,
        };
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        tx.execute(
            "DELETE FROM scanned_files WHERE device = ?1 AND inode = ?2",
            params![d, i],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT OR REPLACE INTO scanned_files \
             (device, inode, size, head_hash, path, scanned_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![d, i, s, h, file.to_string_lossy(), now],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }
}

/// SQLite integers are signed 64-bit: store the same bits.
fn fp_params(fp: &FileFingerprint) -> [i64; 4] {
    [
        fp.device as i64,
        fp.inode as i64,
        fp.size as i64,
        fp.head_hash as i64,
    ]
}

/// A row as read, before the text fields are checked.
struct Row {
    source: String,
    rules: String,
    first_seen: i64,
    last_seen: i64,
    events: i64,
    samples: String,
    vhost: Option<String>,
    country: Option<String>,
    asn: Option<i64>,
    as_org: Option<String>,
    times_flagged: i64,
    expires: i64,
    rule_events: String,
    sites: String,
    files: String,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        source: r.get(0)?,
        rules: r.get(1)?,
        first_seen: r.get(2)?,
        last_seen: r.get(3)?,
        events: r.get(4)?,
        samples: r.get(5)?,
        vhost: r.get(6)?,
        country: r.get(7)?,
        asn: r.get(8)?,
        as_org: r.get(9)?,
        times_flagged: r.get(10)?,
        expires: r.get(11)?,
        rule_events: r.get(12)?,
        sites: r.get(13)?,
        files: r.get(14)?,
    })
}

impl Row {
    fn into_entry(self) -> Result<FlaggedEntry, String> {
        let source: IpNet = self
            .source
            .parse()
            .map_err(|_| format!("flagged.source {:?} is not a CIDR", self.source))?;
        let what = |column: &str| format!("flagged.{column} of {}", self.source);
        Ok(FlaggedEntry {
            source,
            rules: split_rules(&self.rules),
            rule_events: rule_counts(&self.rule_events).ok_or_else(|| what("rule_events"))?,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            events: u64::try_from(self.events).unwrap_or(0),
            samples: samples(&self.samples).ok_or_else(|| what("samples"))?,
            vhost: self.vhost.as_deref().map(crate::escape::again),
            sites: counts(&self.sites).ok_or_else(|| what("sites"))?,
            files: counts(&self.files).ok_or_else(|| what("files"))?,
            country: self.country,
            asn: self.asn.and_then(|a| u32::try_from(a).ok()),
            as_org: self.as_org,
            times_flagged: u32::try_from(self.times_flagged).unwrap_or(u32::MAX),
            expires: self.expires,
        })
    }
}

/// An episode as read, from column `at` on (see `EPISODE_COLUMNS`).
struct EpisodeRow {
    first_seen: i64,
    last_seen: i64,
    events: i64,
    rule_events: String,
    sites: String,
    files: String,
    samples: String,
    explain: String,
    recorded_at: i64,
}

fn read_episode(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<EpisodeRow> {
    Ok(EpisodeRow {
        first_seen: r.get(at)?,
        last_seen: r.get(at + 1)?,
        events: r.get(at + 2)?,
        rule_events: r.get(at + 3)?,
        sites: r.get(at + 4)?,
        files: r.get(at + 5)?,
        samples: r.get(at + 6)?,
        explain: r.get(at + 7)?,
        recorded_at: r.get(at + 8)?,
    })
}

impl EpisodeRow {
    fn into_episode(self) -> Result<Episode, String> {
        let what = |column: &str| format!("episodes.{column} is not the JSON it should be");
        let mut explain: Vec<Explained> =
            serde_json::from_str(&self.explain).map_err(|_| what("explain"))?;
        for x in &mut explain {
            x.rule = crate::escape::again(&x.rule);
            x.lines = x.lines.drain(..).map(Sample::printable).collect();
        }
        Ok(Episode {
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            events: u64::try_from(self.events).unwrap_or(0),
            rule_events: rule_counts(&self.rule_events).ok_or_else(|| what("rule_events"))?,
            sites: counts(&self.sites).ok_or_else(|| what("sites"))?,
            files: counts(&self.files).ok_or_else(|| what("files"))?,
            samples: samples(&self.samples).ok_or_else(|| what("samples"))?,
            explain,
            recorded_at: self.recorded_at,
        })
    }
}

impl Sample {
    /// Made printable again when read: the file may have been edited by hand.
    fn printable(self) -> Sample {
        Sample {
            at: self.at.as_deref().map(crate::escape::again),
            line: crate::escape::again(&self.line),
        }
    }
}

/// Samples as stored, bare strings (version 1) or placed.
fn samples(json: &str) -> Option<Vec<Sample>> {
    let stored: Vec<StoredSample> = serde_json::from_str(json).ok()?;
    Some(
        stored
            .into_iter()
            .map(|s| match s {
                StoredSample::Bare(line) => Sample {
                    at: None,
                    line: crate::escape::again(&line),
                },
                StoredSample::Placed(s) => s.printable(),
            })
            .collect(),
    )
}

/// `[[name, count]...]` as stored.
fn counts(json: &str) -> Option<Vec<(String, u64)>> {
    let v: Vec<(Option<String>, u64)> = serde_json::from_str(json).ok()?;
    Some(
        v.into_iter()
            .filter_map(|(name, n)| Some((crate::escape::again(&name?), n)))
            .collect(),
    )
}

/// `{"rule": count...}` as stored, sorted by name.
fn rule_counts(json: &str) -> Option<Vec<(String, u64)>> {
    let v: BTreeMap<String, u64> = serde_json::from_str(json).ok()?;
    Some(
        v.into_iter()
            .map(|(k, n)| (crate::escape::again(&k), n))
            .collect(),
    )
}

/// Counts as stored: an object by name (`by_name`) or `[[name, count]...]`.
fn counts_json(counts: &[(String, u64)], by_name: bool) -> String {
    if by_name {
        let map: BTreeMap<&str, u64> = counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        serde_json::to_string(&map)
    } else {
        serde_json::to_string(counts)
    }
    .unwrap_or_else(|_| if by_name { "{}" } else { "[]" }.into())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn split_rules(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// A rule name as stored: a comma would split it when read back.
fn rule_name(r: &str) -> String {
    r.replace(',', "_")
}

fn episode_from_flag(f: &NewFlag, now: i64) -> Episode {
    let mut rule_events: Vec<(String, u64)> = f
        .rule_events
        .iter()
        .map(|(r, n)| (rule_name(r), *n))
        .collect();
    // Flags that name rules without counts (older callers) still record the rule.
    for r in &f.rules {
        let r = rule_name(r);
        if !r.is_empty() && !rule_events.iter().any(|(k, _)| *k == r) {
            rule_events.push((r, 0));
        }
    }
    rule_events.retain(|(r, _)| !r.is_empty());
    rule_events.sort();
    let mut explain = f.explain.clone();
    for x in &mut explain {
        x.rule = rule_name(&x.rule);
        x.lines.truncate(MAX_EXPLAIN_LINES);
    }
    Episode {
        first_seen: f.first_seen.min(f.last_seen),
        last_seen: f.last_seen.max(f.first_seen),
        events: f.events,
        rule_events,
        sites: top(f.sites.clone()),
        files: top(f.files.clone()),
        samples: f.samples.iter().take(MAX_SAMPLES).cloned().collect(),
        explain,
        recorded_at: now,
    }
}

/// How many lines an explained overflow keeps.
pub const MAX_EXPLAIN_LINES: usize = 5;

/// The busiest [`MAX_LISTED`], most first.
fn top(mut counts: Vec<(String, u64)>) -> Vec<(String, u64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(MAX_LISTED);
    counts
}

/// Adds (or, for a recount, takes the larger of) `new`'s counts into `into`.
fn join_counts(into: &mut Vec<(String, u64)>, new: Vec<(String, u64)>, how: Recording) {
    for (k, n) in new {
        match into.iter_mut().find(|(j, _)| *j == k) {
            Some((_, m)) => {
                *m = match how {
                    Recording::Add => m.saturating_add(n),
                    Recording::Recount => (*m).max(n),
                }
            }
            None => into.push((k, n)),
        }
    }
}

/// Folds `new` into the recorded episode `e` it meets.
fn merge_episode(e: &mut Episode, new: Episode, how: Recording) {
    e.first_seen = e.first_seen.min(new.first_seen);
    e.last_seen = e.last_seen.max(new.last_seen);
    e.events = match how {
        Recording::Add => e.events.saturating_add(new.events),
        Recording::Recount => e.events.max(new.events),
    };
    join_counts(&mut e.rule_events, new.rule_events, how);
    e.rule_events.sort();
    join_counts(&mut e.sites, new.sites, how);
    e.sites = top(std::mem::take(&mut e.sites));
    join_counts(&mut e.files, new.files, how);
    e.files = top(std::mem::take(&mut e.files));
    for s in new.samples {
        if e.samples.len() < MAX_SAMPLES && !e.samples.iter().any(|k| k.line == s.line) {
            e.samples.push(s);
        }
    }
    // A rule's first overflow explains it; a later one of a rule already explained adds
    // its count (a recount finds the same one again).
    for x in new.explain {
        match e.explain.iter_mut().find(|k| k.rule == x.rule) {
            Some(k) if how == Recording::Add && x.at != k.at => k.times += x.times,
            Some(_) => {}
            None => e.explain.push(x),
        }
    }
}

/// The entry of `source` summing up its `episodes`, keeping what `old` had that episodes
/// do not hold (its samples first, rules of pruned episodes, GeoIP, the ban).
fn summarize(source: IpNet, old: Option<FlaggedEntry>, episodes: &[StoredEpisode]) -> FlaggedEntry {
    let mut e = old.unwrap_or(FlaggedEntry {
        source,
        rules: Vec::new(),
        rule_events: Vec::new(),
        first_seen: i64::MAX,
        last_seen: i64::MIN,
        events: 0,
        samples: Vec::new(),
        vhost: None,
        sites: Vec::new(),
        files: Vec::new(),
        country: None,
        asn: None,
        as_org: None,
        times_flagged: 0,
        expires: 0,
    });
    // Counts are the episodes' sums; pruned episodes no longer count.
    e.events = 0;
    e.rule_events.clear();
    e.sites.clear();
    e.files.clear();
    for (_, ep, _) in episodes {
        e.first_seen = e.first_seen.min(ep.first_seen);
        e.last_seen = e.last_seen.max(ep.last_seen);
        e.events = e.events.saturating_add(ep.events);
        join_counts(&mut e.rule_events, ep.rule_events.clone(), Recording::Add);
        join_counts(&mut e.sites, ep.sites.clone(), Recording::Add);
        join_counts(&mut e.files, ep.files.clone(), Recording::Add);
        for s in &ep.samples {
            if e.samples.len() < MAX_SAMPLES && !e.samples.iter().any(|k| k.line == s.line) {
                e.samples.push(s.clone());
            }
        }
    }
    e.rule_events.sort();
    e.rules.extend(e.rule_events.iter().map(|(r, _)| r.clone()));
    e.rules.sort();
    e.rules.dedup();
    e.sites = top(std::mem::take(&mut e.sites));
    e.files = top(std::mem::take(&mut e.files));
    e.vhost = e.sites.first().map(|(s, _)| s.clone()).or(e.vhost);
    e
}

/// One source's part of a batch given to [`Store::record_flags_at`]: its episodes, and the
/// newest country, AS number and AS name given for it.
struct IncomingSource {
    source: IpNet,
    episodes: Vec<Episode>,
    country: Option<String>,
    asn: Option<u32>,
    as_org: Option<String>,
}

/// The flags of a batch grouped by canonical source, in source order.
fn group_by_source(flags: &[NewFlag], now: i64) -> Vec<IncomingSource> {
    let mut by_source: BTreeMap<IpNet, IncomingSource> = BTreeMap::new();
    for f in flags {
        let source = net::canonical(f.source);
        let s = by_source.entry(source).or_insert_with(|| IncomingSource {
            source,
            episodes: Vec::new(),
            country: None,
            asn: None,
            as_org: None,
        });
        s.episodes.push(episode_from_flag(f, now));
        if f.country.is_some() {
            s.country = f.country.as_ref().map(|c| c.to_ascii_uppercase());
        }
        if f.asn.is_some() {
            s.asn = f.asn;
        }
        if f.as_org.is_some() {
            s.as_org.clone_from(&f.as_org);
        }
    }
    by_source.into_values().collect()
}

/// A recorded episode: its row id (`None` until inserted), the episode, and whether it
/// changed since it was read.
type StoredEpisode = (Option<i64>, Episode, bool);

/// Records one source's episodes inside the batch's transaction: reads what is stored,
/// merges, and writes the source's row and its changed episodes. Returns the ban's expiry.
fn record_source(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    ban: BanPolicy,
    incoming: &IncomingSource,
    now: i64,
    how: Recording,
) -> Result<i64, StoreError> {
    let sql = |source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    };
    let bad = |what| StoreError::BadRow {
        path: path.to_path_buf(),
        what,
    };
    let key = incoming.source.to_string();
    let old = {
        let mut st = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM flagged WHERE source = ?1"))
            .map_err(sql)?;
        st.query_row([&key], read_row).optional().map_err(sql)?
    };
    let old = old.map(Row::into_entry).transpose().map_err(bad)?;
    let mut episodes = read_episodes(tx, &key).map_err(sql)?;
    let mut stored = Vec::with_capacity(episodes.len());
    for (id, ep) in episodes.drain(..) {
        stored.push((Some(id), ep.into_episode().map_err(bad)?, false));
    }
    // A source that comes back after its ban ended offends again: that is a new
    // episode, whose ban doubles, however soon it came.
    let ban_ended = old.as_ref().map_or(i64::MAX, |e| e.expires);
    let (new_episodes, grew) = merge_incoming(&mut stored, &incoming.episodes, ban_ended, how);
    let recorded_expiry = old.as_ref().map(|e| e.expires);
    let mut e = summarize(incoming.source, old, &stored);
    if incoming.country.is_some() {
        e.country.clone_from(&incoming.country);
    }
    if incoming.asn.is_some() {
        e.asn = incoming.asn;
    }
    if incoming.as_org.is_some() {
        e.as_org.clone_from(&incoming.as_org);
    }
    e.times_flagged = e.times_flagged.saturating_add(new_episodes).max(1);
    e.expires = match recorded_expiry {
        Some(recorded) if new_episodes == 0 && (how == Recording::Recount || !grew) => recorded,
        Some(recorded) => ban.expiry(e.last_seen, e.times_flagged, now).max(recorded),
        None => ban.expiry(e.last_seen, e.times_flagged, now),
    };
    write_entry(tx, &key, incoming.source, &e).map_err(sql)?;
    write_episodes(tx, &key, &stored).map_err(sql)?;
    Ok(e.expires)
}

/// The episodes stored for `key`, oldest first, with their row ids.
fn read_episodes(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
) -> rusqlite::Result<Vec<(i64, EpisodeRow)>> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT rowid, {EPISODE_COLUMNS} FROM episodes WHERE source = ?1 ORDER BY first_seen"
    ))?;
    let rows = st.query_map([key], |r| Ok((r.get::<_, i64>(0)?, read_episode(r, 1)?)))?;
    rows.collect()
}

/// Merges incoming episodes into the stored ones: an episode that comes within
/// [`EPISODE_GAP`] of a stored one continues it, any other is new. Returns how many were
/// new and whether a stored one grew later.
fn merge_incoming(
    stored: &mut Vec<StoredEpisode>,
    incoming: &[Episode],
    ban_ended: i64,
    how: Recording,
) -> (u32, bool) {
    let mut new_episodes = 0u32;
    let mut grew = false;
    for ep in incoming.iter().cloned() {
        let meets = stored.iter_mut().find(|(_, e, _)| {
            ep.first_seen <= e.last_seen.saturating_add(EPISODE_GAP)
                && ep.last_seen.saturating_add(EPISODE_GAP) >= e.first_seen
                && (how == Recording::Recount
                    || ep.first_seen <= e.last_seen
                    || ep.first_seen < ban_ended)
        });
        match meets {
            Some((_, e, dirty)) => {
                grew |= ep.last_seen > e.last_seen;
                merge_episode(e, ep, how);
                *dirty = true;
            }
            None => {
                new_episodes += 1;
                stored.push((None, ep, true));
            }
        }
    }
    (new_episodes, grew)
}

/// Writes a source's summary row.
fn write_entry(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    src: IpNet,
    e: &FlaggedEntry,
) -> rusqlite::Result<()> {
    let (lo, hi) = net::bounds(src);
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO flagged (source, family, net_lo, net_hi, rules, \
         first_seen, last_seen, events, samples, vhost, country, asn, as_org, \
         times_flagged, expires, rule_events, sites, files) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17, ?18)",
    )?;
    st.execute(params![
        key,
        net::family(src),
        &lo[..],
        &hi[..],
        e.rules.join(","),
        e.first_seen,
        e.last_seen,
        i64::try_from(e.events).unwrap_or(i64::MAX),
        to_json(&e.samples),
        e.vhost,
        e.country,
        e.asn,
        e.as_org,
        e.times_flagged,
        e.expires,
        counts_json(&e.rule_events, true),
        counts_json(&e.sites, false),
        counts_json(&e.files, false),
    ])?;
    Ok(())
}

/// Writes the episodes that changed: an update of a stored row, or an insert of a new one.
fn write_episodes(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    episodes: &[StoredEpisode],
) -> rusqlite::Result<()> {
    for (id, ep, dirty) in episodes {
        if !dirty {
            continue;
        }
        let values = params![
            key,
            ep.first_seen,
            ep.last_seen,
            i64::try_from(ep.events).unwrap_or(i64::MAX),
            counts_json(&ep.rule_events, true),
            counts_json(&ep.sites, false),
            counts_json(&ep.files, false),
            to_json(&ep.samples),
            to_json(&ep.explain),
            ep.recorded_at,
            id,
        ];
        let sql_text = if id.is_some() {
            "UPDATE episodes SET source = ?1, first_seen = ?2, last_seen = ?3, \
             events = ?4, rule_events = ?5, sites = ?6, files = ?7, samples = ?8, \
             explain = ?9, recorded_at = ?10 WHERE rowid = ?11"
        } else {
            "INSERT INTO episodes (source, first_seen, last_seen, events, \
             rule_events, sites, files, samples, explain, recorded_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE ?11 IS NULL"
        };
        tx.prepare_cached(sql_text)?.execute(values)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const H: i64 = 3600;
    const T0: i64 = 1_795_322_356;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn flag(src: &str, rule: &str, first: i64, last: i64) -> NewFlag {
        NewFlag {
            source: n(src),
            rules: vec![rule.to_string()],
            first_seen: first,
            last_seen: last,
            rule_events: vec![(rule.to_string(), 10)],
            events: 10,
            samples: vec![Sample::new(None, b"GET /wp-login.php")],
            sites: vec![("example.org".into(), 10)],
            files: Vec::new(),
            explain: Vec::new(),
            country: None,
            asn: None,
            as_org: None,
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state/logward.db")).unwrap();
        (dir, store)
    }

    fn sources(v: &[FlaggedEntry]) -> Vec<String> {
        v.iter().map(|e| e.source.to_string()).collect()
    }

    #[test]
    fn a_second_recording_waits_for_the_first() {
        let (dir, store) = open();
        let db = dir.path().join("state/logward.db");
        let held = store.lock_for_recording().unwrap();
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let second = {
            let taken = taken.clone();
            std::thread::spawn(move || {
                let other = Store::open(&db).unwrap();
                let _lock = other.lock_for_recording().unwrap();
                taken.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !taken.load(std::sync::atomic::Ordering::SeqCst),
            "the lock was taken twice"
        );
        drop(held);
        second.join().unwrap();
        assert!(taken.load(std::sync::atomic::Ordering::SeqCst));
        let mode = std::fs::metadata(dir.path().join("state/scan-record.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A populated store: two v4 hosts, a v4 /24, a v6 host and its /64, and a far v6 host.
    fn populated() -> (tempfile::TempDir, Store) {
        let (d, mut s) = open();
        let mut a = flag("192.0.2.7/32", "scanner", T0 - 5 * H, T0 - 4 * H);
        a.country = Some("gb".into());
        a.asn = Some(64500);
        let mut b = flag("198.51.100.9/32", "bruteforce", T0 - 30 * H, T0 - 20 * H);
        b.country = Some("US".into());
        b.asn = Some(209);
        let c = flag("203.0.113.0/24", "scanner", T0 - 2 * H, T0 - H);
        let d6 = flag("2001:db8:85a3::7/128", "bad_agent", T0 - H, T0);
        let p6 = flag("2001:db8:85a3::/64", "scanner", T0 - H, T0);
        let far = flag("2001:db8:ffff::1/128", "scanner", T0 - H, T0);
        s.record_flags(&[a, b, c, d6, p6, far]).unwrap();
        (d, s)
    }

    #[test]
    fn open_creates_schema_wal_and_mode_0600() {
        let (_d, s) = open();
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let jm: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        let v: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert!(s.state_dir().ends_with("state"));
        // Reopening an existing store keeps it.
        let p = s.path().to_path_buf();
        drop(s);
        Store::open(&p).unwrap();
    }

    #[test]
    fn not_a_database_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.db");
        std::fs::write(&p, vec![b'x'; 4096]).unwrap();
        let err = Store::open(&p).unwrap_err();
        assert!(err.to_string().contains("junk.db"), "{err}");
        // SQLite's reason is the source, not part of the message.
        let source = std::error::Error::source(&err).expect("SQLite's error");
        assert!(
            source.downcast_ref::<rusqlite::Error>().is_some(),
            "{source}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: cannot use the store", p.display())
        );
        let text = crate::error::chain(&err).to_string();
        assert_eq!(text.matches(&source.to_string()).count(), 1, "{text}");
    }

    #[test]
    fn a_state_directory_that_cannot_be_made_is_named_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let state = file.join("state");
        let err = Store::open(&state.join("logward.db")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { path, .. } if *path == state),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: cannot create the state directory", state.display())
        );
        let reason = std::io::Error::from_raw_os_error(libc::ENOTDIR).to_string();
        assert_eq!(
            crate::error::chain(&err).to_string(),
            format!(
                "{}: cannot create the state directory: {reason}",
                state.display()
            )
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let (_d, s) = open();
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        let p = s.path().to_path_buf();
        drop(s);
        assert!(matches!(
            Store::open(&p),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }

    #[test]
    fn a_version_1_store_is_migrated_with_one_episode_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/logward.db");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&p).unwrap();
            // Version 1: no rule_events, sites or files; samples are bare strings.
            let v1 = SCHEMA
                .replace(
                    "    expires       INTEGER NOT NULL,   -- when the ban ends (unix seconds, UTC)\n",
                    "    expires       INTEGER NOT NULL\n",
                )
                .lines()
                .filter(|l| {
                    !l.contains("rule_events   TEXT")
                        && !l.contains("sites         TEXT")
                        && !l.contains("files         TEXT")
                })
                .collect::<Vec<_>>()
                .join("\n");
            c.execute_batch(&v1).unwrap();
            let (lo, hi) = net::bounds(n("192.0.2.7/32"));
            c.execute(
                "INSERT INTO flagged VALUES ('192.0.2.7/32', 4, ?1, ?2, 'scanner', ?3, ?4, 12, \
                 '[\"GET /.env\"]', 'shop.example', NULL, NULL, NULL, 1, ?5)",
                params![&lo[..], &hi[..], T0 - H, T0, T0 + 4 * H],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let s = Store::open(&p).unwrap();
        let e = &s.query(&Filter::default()).unwrap()[0];
        assert_eq!(e.samples, [Sample::new(None, b"GET /.env")]);
        assert_eq!(e.sites, [("shop.example".to_string(), 12)]);
        let filtered = s
            .query(&Filter {
                vhost: Some("SHOP.example".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(filtered.len(), 1);
        let episodes = s.episodes(e.source).unwrap();
        assert_eq!(episodes.len(), 1);
        assert_eq!(
            (
                episodes[0].first_seen,
                episodes[0].last_seen,
                episodes[0].events
            ),
            (T0 - H, T0, 12)
        );
    }

    #[test]
    fn insert_and_merge() {
        let (_d, mut s) = open();
        let mut f = flag("::ffff:192.0.2.7/128", "scanner", T0 - H, T0);
        f.samples = vec![Sample::new(Some("/var/log/a.log:7".into()), b"a\x1b[31m\\")];
        s.record_flags(&[f]).unwrap();
        // A day before: another episode.
        let mut g = flag("192.0.2.7/32", "bruteforce", T0 - 30 * H, T0 - 29 * H);
        g.samples = [b"b", b"c", b"d"]
            .iter()
            .map(|l| Sample::new(None, &l[..]))
            .collect();
        g.country = Some("de".into());
        s.record_flags(&[g]).unwrap();
        let all = s.query(&Filter::default()).unwrap();
        assert_eq!(all.len(), 1);
        let e = &all[0];
        assert_eq!(e.source, n("192.0.2.7/32"));
        assert_eq!(e.rules, ["bruteforce", "scanner"]);
        assert_eq!((e.first_seen, e.last_seen), (T0 - 30 * H, T0));
        assert_eq!(e.events, 20);
        let lines: Vec<&str> = e.samples.iter().map(|s| s.line.as_str()).collect();
        assert_eq!(lines, ["a\\x1b[31m\\\\", "b", "c"]);
        assert_eq!(e.samples[0].at.as_deref(), Some("/var/log/a.log:7"));
        assert_eq!(e.country.as_deref(), Some("DE"));
        assert_eq!(e.vhost.as_deref(), Some("example.org"));
        assert_eq!(e.times_flagged, 2);
        let episodes = s.episodes(e.source).unwrap();
        let spans: Vec<(i64, i64)> = episodes
            .iter()
            .map(|ep| (ep.first_seen, ep.last_seen))
            .collect();
        assert_eq!(spans, [(T0 - 30 * H, T0 - 29 * H), (T0 - H, T0)]);
        assert_eq!(
            episodes[1].samples[0].at.as_deref(),
            Some("/var/log/a.log:7")
        );
    }

    #[test]
    fn same_source_twice_in_one_call_is_one_flagging() {
        let (_d, mut s) = open();
        let a = flag("192.0.2.7/32", "scanner", T0 - H, T0);
        let b = flag("192.0.2.7/32", "bruteforce", T0 - H, T0);
        assert_eq!(s.record_flags(&[a, b]).unwrap(), 1);
        let e = &s.query(&Filter::default()).unwrap()[0];
        assert_eq!(e.times_flagged, 1);
        assert_eq!(e.events, 20);
        assert_eq!(e.expires, T0 + 4 * H);
    }

    #[test]
    fn expiry_doubles_and_caps() {
        let (_d, mut s) = open();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        // Episodes a week and a day apart: each after the last ban ended.
        for i in 0..8 {
            let t = T0 - 80 * 86_400 + i * 8 * 86_400;
            s.record_flags(&[flag("192.0.2.7/32", "scanner", t, t)])
                .unwrap();
            let e = &s.query(&Filter::default()).unwrap()[0];
            got.push(e.expires - t);
            expected.push(((4 * H) << i).min(7 * 86_400));
        }
        assert_eq!(got, expected);
        assert_eq!(got[7], 7 * 86_400);
        assert_eq!(got[5], 128 * H);

        s.set_ban_policy(BanPolicy {
            base: 60,
            max: 100,
            ..BanPolicy::default()
        });
        s.record_flags(&[flag("192.0.2.8/32", "scanner", T0 - 86_400, T0 - 86_400)])
            .unwrap();
        s.record_flags(&[flag("192.0.2.8/32", "scanner", T0, T0)])
            .unwrap();
        let e = s
            .query(&Filter {
                targets: vec!["192.0.2.8".parse().unwrap()],
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(e[0].expires - T0, 100);
        assert_eq!(BanPolicy::default().ban(u32::MAX), 7 * 86_400);
    }

    #[test]
    fn query_by_address_finds_own_entry_and_containing_prefix() {
        let (_d, s) = populated();
        let q = |t: &str| {
            sources(
                &s.query(&Filter {
                    targets: vec![t.parse().unwrap()],
                    ..Filter::default()
                })
                .unwrap(),
            )
        };
        assert_eq!(
            q("2001:db8:85a3::7"),
            ["2001:db8:85a3::/64", "2001:db8:85a3::7/128"]
        );
        assert_eq!(q("2001:db8:85a3::8"), ["2001:db8:85a3::/64"]);
        assert_eq!(q("203.0.113.200"), ["203.0.113.0/24"]);
        assert_eq!(q("::ffff:192.0.2.7"), ["192.0.2.7/32"]);
        assert!(q("192.0.2.8").is_empty());
    }

    #[test]
    fn query_by_cidr_v4_and_v6() {
        let (_d, s) = populated();
        let q = |ts: &[&str]| {
            sources(
                &s.query(&Filter {
                    targets: ts.iter().map(|t| t.parse().unwrap()).collect(),
                    ..Filter::default()
                })
                .unwrap(),
            )
        };
        assert_eq!(
            q(&["192.0.0.0/8"]),
            ["192.0.2.7/32"],
            "the /24 in 203/8 is not inside 192/8"
        );
        assert_eq!(
            q(&["0.0.0.0/0"]),
            ["192.0.2.7/32", "198.51.100.9/32", "203.0.113.0/24"]
        );
        assert_eq!(
            q(&["2001:db8:85a3::/48"]),
            ["2001:db8:85a3::/64", "2001:db8:85a3::7/128"]
        );
        assert_eq!(
            q(&["203.0.113.0/25"]),
            Vec::<String>::new(),
            "a /24 is not inside a /25"
        );
        assert_eq!(
            q(&["::/0"]).len(),
            3,
            "IPv4 rows are not inside ::/0 despite the mapping"
        );
        assert_eq!(
            q(&["198.51.100.0/24", "2001:db8:ffff::/48"]),
            ["198.51.100.9/32", "2001:db8:ffff::1/128"]
        );
    }

    #[test]
    fn query_by_time_rule_country_asn_active() {
        let (_d, s) = populated();
        let q = |f: Filter| sources(&s.query(&f).unwrap());
        assert_eq!(
            q(Filter {
                until: Some(T0 - 10 * H),
                ..Filter::default()
            }),
            ["198.51.100.9/32"]
        );
        assert_eq!(
            q(Filter {
                since: Some(T0 - H),
                ..Filter::default()
            }),
            [
                "203.0.113.0/24",
                "2001:db8:85a3::/64",
                "2001:db8:85a3::7/128",
                "2001:db8:ffff::1/128"
            ]
        );
        assert_eq!(
            q(Filter {
                rules: vec!["bad_agent".into()],
                ..Filter::default()
            }),
            ["2001:db8:85a3::7/128"]
        );
        assert!(
            q(Filter {
                rules: vec!["bad".into()],
                ..Filter::default()
            })
            .is_empty(),
            "rule match is on whole names"
        );
        assert_eq!(
            q(Filter {
                country: Some("gb".into()),
                ..Filter::default()
            }),
            ["192.0.2.7/32"]
        );
        assert_eq!(
            q(Filter {
                asn: Some(209),
                ..Filter::default()
            }),
            ["198.51.100.9/32"]
        );
        // 198.51.100.9 was last seen 20h before T0, so its 4h ban is over; 192.0.2.7's
        // ends exactly at T0, which no longer counts as active.
        let active = q(Filter {
            active_at: Some(T0),
            ..Filter::default()
        });
        assert_eq!(active.len(), 4);
        assert!(!active.contains(&"198.51.100.9/32".to_string()));
        assert!(!active.contains(&"192.0.2.7/32".to_string()));
        assert_eq!(
            q(Filter {
                active_at: Some(T0 - 1),
                ..Filter::default()
            })
            .len(),
            5
        );
        assert_eq!(
            q(Filter {
                rules: vec!["scanner".into()],
                targets: vec!["2001:db8::/32".parse().unwrap()],
                active_at: Some(T0),
                ..Filter::default()
            }),
            ["2001:db8:85a3::/64", "2001:db8:ffff::1/128"]
        );
    }

    #[test]
    fn prune_removes_old_entries() {
        let (_d, mut s) = populated();
        assert_eq!(s.prune(T0 - 10 * H).unwrap(), 1);
        assert_eq!(s.query(&Filter::default()).unwrap().len(), 5);
        assert_eq!(s.prune(T0 - 10 * H).unwrap(), 0);
        assert_eq!(s.prune(T0 + 1).unwrap(), 5);
    }

    #[test]
    fn remove_sources_for_erasure() {
        let (_d, mut s) = populated();
        let removed = s
            .remove_sources(&[n("2001:db8:85a3::7/128"), n("::ffff:192.0.2.7/128")])
            .unwrap();
        assert_eq!(
            removed,
            ["192.0.2.7/32", "2001:db8:85a3::/64", "2001:db8:85a3::7/128"]
        );
        let removed = s.remove_sources(&[n("203.0.0.0/8")]).unwrap();
        assert_eq!(removed, ["203.0.113.0/24"]);
        assert!(s.remove_sources(&[n("10.0.0.1/32")]).unwrap().is_empty());
        assert_eq!(
            sources(&s.query(&Filter::default()).unwrap()),
            ["198.51.100.9/32", "2001:db8:ffff::1/128"]
        );
    }

    #[test]
    fn scan_ledger_prevents_double_counting() {
        let (d, mut s) = open();
        let log = d.path().join("access.log.1");
        std::fs::write(
            &log,
            b"1.2.3.4 - - [22/Nov/2026:04:39:16 +0000] \"GET / HTTP/1.1\"\n",
        )
        .unwrap();
        // What a scan does: skip files already in the ledger, else record and mark.
        let scan = |s: &mut Store| {
            let fp = FileFingerprint::of(&log).unwrap();
            if s.is_scanned(&fp).unwrap() {
                return;
            }
            s.record_flags(&[flag("1.2.3.4/32", "scanner", T0, T0)])
                .unwrap();
            s.mark_scanned(&fp, &log, T0).unwrap();
        };
        scan(&mut s);
        scan(&mut s);
        let rotated = d.path().join("access.log.2");
        std::fs::rename(&log, &rotated).unwrap();
        let fp = FileFingerprint::of(&rotated).unwrap();
        assert!(s.is_scanned(&fp).unwrap(), "rotation keeps the fingerprint");
        let e = &s.query(&Filter::default()).unwrap()[0];
        assert_eq!((e.events, e.times_flagged), (10, 1));
        let mut grown = fp;
        grown.size += 1;
        assert!(!s.is_scanned(&grown).unwrap());
        let mut high = fp;
        high.head_hash = u64::MAX;
        s.mark_scanned(&high, &rotated, T0).unwrap();
        assert!(
            s.is_scanned(&high).unwrap(),
            "u64 above i64::MAX round-trips"
        );
    }

    #[test]
    fn scan_ledger_knows_how_much_of_a_grown_file_it_counted() {
        let (d, mut s) = open();
        let log = d.path().join("access.log");
        let first = b"1.2.3.4 - - [22/Nov/2026:04:39:16 +0000] \"GET / HTTP/1.1\" 200 1\n";
        std::fs::write(&log, first).unwrap();
        let head = FileHead::read(&log).unwrap();
        assert_eq!(s.counted(&head).unwrap(), Counted::Nothing);
        s.mark_scanned(&head.fingerprint, &log, T0).unwrap();
        let same = FileHead::read(&log).unwrap();
        assert_eq!(
            s.counted(&same).unwrap(),
            Counted::Before(first.len() as u64)
        );
        // Grown past the head hash's reach: the old head still matches.
        let mut grown = first.to_vec();
        while grown.len() < 3 * ledger::HEAD_LEN {
            grown.extend_from_slice(first);
        }
        std::fs::write(&log, &grown).unwrap();
        let head = FileHead::read(&log).unwrap();
        assert_eq!(
            s.counted(&head).unwrap(),
            Counted::Grown(first.len() as u64)
        );
        s.mark_scanned(&head.fingerprint, &log, T0).unwrap();
        let n: i64 = s
            .conn
            .query_row("SELECT count(*) FROM scanned_files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the grown file's entry replaces the old one");
        // Different first bytes under the same inode: new content.
        let mut other = grown.clone();
        other[0] = b'9';
        other.push(b'\n');
        std::fs::write(&log, &other).unwrap();
        assert_eq!(
            s.counted(&FileHead::read(&log).unwrap()).unwrap(),
            Counted::Nothing
        );
        // A compressed file counts whole or not at all.
        let gz = d.path().join("access.log.2.gz");
        let mut bytes = vec![0x1f, 0x8b, 8, 0];
        std::fs::write(&gz, &bytes).unwrap();
        let head = FileHead::read(&gz).unwrap();
        s.mark_scanned(&head.fingerprint, &gz, T0).unwrap();
        assert_eq!(s.counted(&head).unwrap(), Counted::All);
        bytes.extend_from_slice(&[0; 16]);
        std::fs::write(&gz, &bytes).unwrap();
        assert_eq!(
            s.counted(&FileHead::read(&gz).unwrap()).unwrap(),
            Counted::Nothing
        );
    }

    #[test]
    fn target_parse() {
        assert_eq!(
            "10.0.0.0/8".parse::<Target>().unwrap(),
            Target::Net(n("10.0.0.0/8"))
        );
        assert!(matches!(
            " 2001:db8::1 ".parse::<Target>().unwrap(),
            Target::Addr(_)
        ));
        assert!("example.org".parse::<Target>().is_err());
        assert!("10.0.0.0/33".parse::<Target>().is_err());
    }

    /// Regression: a ban was last_seen + 4h in log time, so a nightly scan of yesterday's
    /// log recorded every attacker as already expired and exports banned nobody.
    #[test]
    fn recent_flags_are_banned_from_when_they_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        // Last seen 20 h before the scan: inside the 24 h window.
        let now = T0 + 20 * H;
        s.record_flags_at(
            &[flag("192.0.2.1/32", "scanner", T0 - H, T0)],
            now,
            Recording::Add,
        )
        .unwrap();
        // Last seen 30 days before: a replay, recorded without an active ban.
        s.record_flags_at(
            &[flag(
                "192.0.2.2/32",
                "scanner",
                T0 - 30 * 86_400,
                T0 - 30 * 86_400,
            )],
            now,
            Recording::Add,
        )
        .unwrap();
        let all = s.query(&Filter::default()).unwrap();
        assert_eq!(all[0].expires, now + 4 * H, "{:?}", all[0]);
        assert!(all[1].remaining(now) <= 0, "{:?}", all[1]);
        let active = s
            .query(&Filter {
                active_at: Some(now),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(active.len(), 1);

        // A later flag of an old episode never shortens the ban already recorded.
        s.set_ban_policy(BanPolicy {
            base: 60,
            ..BanPolicy::default()
        });
        s.record_flags_at(
            &[flag("192.0.2.1/32", "scanner", T0 - H, T0)],
            now + 60,
            Recording::Add,
        )
        .unwrap();
        let e = &s.query(&Filter::default()).unwrap()[0];
        assert_eq!(e.expires, now + 4 * H);
        // The same episode seen again is not a new flagging.
        assert_eq!(e.times_flagged, 1);
    }

    #[test]
    fn ban_expiry_follows_the_window() {
        let p = BanPolicy::default();
        assert_eq!(p.expiry(T0, 1, T0), T0 + 4 * H);
        assert_eq!(p.expiry(T0, 1, T0 + 24 * H), T0 + 28 * H);
        assert_eq!(p.expiry(T0, 1, T0 + 24 * H + 1), T0 + 4 * H);
        assert_eq!(p.expiry(T0, 8, T0 + 2 * 86_400), T0 + 2 * 86_400);
        // An event stamped after the clock (a skewed server) bans from that event.
        assert_eq!(p.expiry(T0 + H, 1, T0), T0 + 5 * H);
    }
}
