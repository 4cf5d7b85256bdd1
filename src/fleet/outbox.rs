//! The outbox: the store's entries this server still has to push to the fleet, kept in the
//! SQLite store itself (table `fleet_outbox`), so it survives restarts and a database that
//! is down for days. Triggers on `flagged` queue an entry whenever the store writes it, in
//! the same transaction as the write, whichever command wrote it; a removed entry (erasure,
//! `flagged --delete`, prune) leaves the outbox with it, so erased data is never pushed.
//! Near misses (the store's `near_misses`) are queued the same way and pushed as partial
//! reports, unless the source is flagged: then its entry goes. It reads the `flagged` and
//! `near_misses` columns the store documents; it does not talk to PostgreSQL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};

use super::FleetError;

/// The outbox table and the triggers that fill it, added to a store of any version.
pub const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fleet_outbox (
    source  TEXT PRIMARY KEY,         -- flagged.source
    version INTEGER NOT NULL          -- bumped by every write of the entry
);
CREATE TRIGGER IF NOT EXISTS fleet_outbox_insert AFTER INSERT ON flagged BEGIN
    INSERT OR REPLACE INTO fleet_outbox (source, version) VALUES (new.source,
        coalesce((SELECT version FROM fleet_outbox WHERE source = new.source), 0) + 1);
END;
CREATE TRIGGER IF NOT EXISTS fleet_outbox_update AFTER UPDATE ON flagged BEGIN
    INSERT OR REPLACE INTO fleet_outbox (source, version) VALUES (new.source,
        coalesce((SELECT version FROM fleet_outbox WHERE source = new.source), 0) + 1);
END;
CREATE TRIGGER IF NOT EXISTS fleet_outbox_delete AFTER DELETE ON flagged BEGIN
    DELETE FROM fleet_outbox WHERE source = old.source;
END;
CREATE TRIGGER IF NOT EXISTS fleet_outbox_near_insert AFTER INSERT ON near_misses BEGIN
    INSERT OR REPLACE INTO fleet_outbox (source, version) VALUES (new.source,
        coalesce((SELECT version FROM fleet_outbox WHERE source = new.source), 0) + 1);
END;
CREATE TRIGGER IF NOT EXISTS fleet_outbox_near_update AFTER UPDATE ON near_misses BEGIN
    INSERT OR REPLACE INTO fleet_outbox (source, version) VALUES (new.source,
        coalesce((SELECT version FROM fleet_outbox WHERE source = new.source), 0) + 1);
END;
CREATE TRIGGER IF NOT EXISTS fleet_outbox_near_delete AFTER DELETE ON near_misses BEGIN
    DELETE FROM fleet_outbox WHERE source = old.source
        AND NOT EXISTS (SELECT 1 FROM flagged WHERE source = old.source);
END;
";

/// One queued entry, as the store holds it now (absolute counts).
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    /// The source as the store writes it (`203.0.113.7/32`).
    pub source: String,
    /// The outbox version read: the entry leaves the outbox only if no write came since.
    pub version: i64,
    /// Names of the rules that flagged it.
    pub rules: Vec<String>,
    /// Unix seconds of its first event.
    pub first_seen: i64,
    /// Unix seconds of its last event.
    pub last_seen: i64,
    /// Events over all its episodes.
    pub events: i64,
    /// How many times it was flagged.
    pub times_flagged: i64,
    /// Unix seconds when its ban ends.
    pub expires: i64,
    /// The store's samples, JSON.
    pub samples: String,
    /// ISO 3166-1 alpha-2 country code, when a GeoIP database was loaded.
    pub country: Option<String>,
    /// AS number, when a GeoIP ASN database was loaded.
    pub asn: Option<i64>,
    /// AS organisation, when a GeoIP ASN database was loaded.
    pub as_org: Option<String>,
    /// A near miss, not a flag: the source is not flagged here.
    pub partial: bool,
}

/// The outbox of one store.
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
}

impl Outbox {
    /// Opens the store's outbox, adding the table and its triggers when missing; a store
    /// that had none yet queues every entry it holds, so flags recorded before fleet mode
    /// was turned on reach the fleet too.
    pub fn open(store: &Path) -> Result<Outbox, FleetError> {
        let sql = |source| FleetError::Store {
            path: store.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(store).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(sql)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(sql)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let existed: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'fleet_outbox'",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        // The store makes near_misses too; a store written by an older build may lack it.
        tx.execute_batch(crate::store::near::NEAR_MISSES_SCHEMA)
            .map_err(sql)?;
        tx.execute_batch(OUTBOX_SCHEMA).map_err(sql)?;
        if !existed {
            tx.execute_batch(
                "INSERT OR IGNORE INTO fleet_outbox (source, version) SELECT source, 1 FROM flagged;
                 INSERT OR IGNORE INTO fleet_outbox (source, version)
                     SELECT source, 1 FROM near_misses;",
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(Outbox {
            conn,
            path: store.to_path_buf(),
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> FleetError + '_ {
        |source| FleetError::Store {
            path: self.path.clone(),
            source,
        }
    }

    /// How many entries wait.
    pub fn pending(&self) -> Result<u64, FleetError> {
        self.conn
            .query_row("SELECT count(*) FROM fleet_outbox", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(self.sql())
    }

    /// Up to `max` queued entries, oldest first: the flagged entry of a source, else its
    /// near miss (partial).
    pub fn batch(&self, max: usize) -> Result<Vec<Queued>, FleetError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.source, o.version, coalesce(f.rules, n.rules),
                        coalesce(f.first_seen, n.first_seen), coalesce(f.last_seen, n.last_seen),
                        coalesce(f.events, n.events), coalesce(f.times_flagged, 0),
                        coalesce(f.expires, n.expires), coalesce(f.samples, '[]'),
                        f.country, f.asn, f.as_org, f.source IS NULL
                 FROM fleet_outbox o LEFT JOIN flagged f ON f.source = o.source
                      LEFT JOIN near_misses n ON n.source = o.source
                 WHERE f.source IS NOT NULL OR n.source IS NOT NULL
                 ORDER BY o.rowid LIMIT ?1",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![max as i64], |r| {
                let rules: String = r.get(2)?;
                Ok(Queued {
                    source: r.get(0)?,
                    version: r.get(1)?,
                    rules: rules
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    first_seen: r.get(3)?,
                    last_seen: r.get(4)?,
                    events: r.get(5)?,
                    times_flagged: r.get(6)?,
                    expires: r.get(7)?,
                    samples: r.get(8)?,
                    country: r.get(9)?,
                    asn: r.get(10)?,
                    as_org: r.get(11)?,
                    partial: r.get(12)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Takes pushed entries out of the outbox, unless the store wrote them again since they
    /// were read (then the newer counts are pushed next time).
    pub fn done(&mut self, pushed: &[Queued]) -> Result<(), FleetError> {
        let path = self.path.clone();
        let sql = |source| FleetError::Store {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM fleet_outbox WHERE source = ?1 AND version = ?2")
                .map_err(sql)?;
            for q in pushed {
                stmt.execute(params![q.source, q.version]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewFlag, Store};

    fn flag(source: &str, events: u64) -> NewFlag {
        NewFlag {
            source: source.parse().unwrap(),
            rules: vec!["sqli".into()],
            first_seen: 1_700_000_000,
            last_seen: 1_700_000_100,
            events,
            rule_events: vec![("sqli".into(), events)],
            samples: Vec::new(),
            sites: Vec::new(),
            files: Vec::new(),
            explain: Vec::new(),
            country: None,
            asn: None,
            as_org: None,
        }
    }

    #[test]
    fn near_misses_go_as_partial_until_the_source_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logward.db");
        let mut store = Store::open(&path).unwrap();
        let outbox = Outbox::open(&path).unwrap();
        let near = crate::store::NewNearMiss {
            source: "192.0.2.9/32".parse().unwrap(),
            rules: vec!["sqli".into()],
            first_seen: 1_700_000_000,
            last_seen: 1_700_000_010,
            events: 3,
        };
        store
            .record_near_misses(&[near], 1_700_000_010, crate::store::Recording::Add)
            .unwrap();
        let batch = outbox.batch(10).unwrap();
        assert_eq!(batch.len(), 1);
        assert!(batch[0].partial);
        assert_eq!((batch[0].events, batch[0].times_flagged), (3, 0));
        assert_eq!(batch[0].samples, "[]");
        // Flagged later: the flag goes, not the near miss.
        store.record_flags(&[flag("192.0.2.9/32", 8)]).unwrap();
        let batch = outbox.batch(10).unwrap();
        assert_eq!(batch.len(), 1);
        assert!(!batch[0].partial);
        assert_eq!(batch[0].events, 8);
        // Pruning the near miss leaves the flag queued; removing the flag too, nothing.
        store.prune(1_700_000_050).unwrap();
        assert!(store.near_misses().unwrap().is_empty());
        assert_eq!(outbox.pending().unwrap(), 1);
        store
            .delete_sources(&["192.0.2.9/32".parse().unwrap()])
            .unwrap();
        assert_eq!(outbox.pending().unwrap(), 0);
    }

    #[test]
    fn writes_queue_entries_and_removals_unqueue_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logward.db");
        let mut store = Store::open(&path).unwrap();
        // Recorded before fleet mode: queued when the outbox is added.
        store.record_flags(&[flag("192.0.2.1/32", 5)]).unwrap();
        let mut outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.pending().unwrap(), 1);
        store.record_flags(&[flag("192.0.2.2/32", 7)]).unwrap();
        let batch = outbox.batch(10).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].source, "192.0.2.2/32");
        assert_eq!(batch[1].events, 7);
        // Written again after it was read: stays queued, with the new counts.
        store.record_flags(&[flag("192.0.2.2/32", 3)]).unwrap();
        outbox.done(&batch).unwrap();
        let again = outbox.batch(10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].events, 10);
        // Opening again adds nothing twice.
        drop(outbox);
        let mut outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.pending().unwrap(), 1);
        // A removed entry leaves the outbox.
        store
            .delete_sources(&["192.0.2.2/32".parse().unwrap()])
            .unwrap();
        assert_eq!(outbox.pending().unwrap(), 0);
        outbox.done(&again).unwrap();
    }
}
