//! Near misses: sources a rule's bucket came to hold more than half its capacity for,
//! without flagging them, kept in the store's `near_misses` table ([`NEAR_MISSES_SCHEMA`])
//! for fleet mode to report. They are never banned here: a fleet counts them with the other
//! servers' reports of the same source, so an attack spread thinly over many servers still
//! becomes a ban (`[fleet] min_hosts`).
//!
//! Like the flagged entries, they go with an erasure, with `flagged --prune` and when an
//! overlapping network is allowed. It does not detect them (`detect::NearMiss` does) and
//! does not push them (`fleet::outbox` reads this table).

use ipnet::IpNet;
use rusqlite::{OptionalExtension, params};

use super::{Recording, Store, StoreError, net};

/// The `near_misses` table, created in every store that lacks it (no schema version
/// change: older builds ignore it). `source`, `family`, `net_lo` and `net_hi` are as in
/// `flagged`.
pub const NEAR_MISSES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS near_misses (
    source     TEXT PRIMARY KEY,   -- canonical CIDR, as flagged.source
    family     INTEGER NOT NULL,
    net_lo     BLOB NOT NULL,
    net_hi     BLOB NOT NULL,
    rules      TEXT NOT NULL,      -- rule names, sorted, comma-separated
    first_seen INTEGER NOT NULL,   -- unix seconds, UTC (log time)
    last_seen  INTEGER NOT NULL,
    events     INTEGER NOT NULL,   -- lines of those rules, over the episode
    expires    INTEGER NOT NULL    -- when it stops counting: as a first ban would end
);
CREATE INDEX IF NOT EXISTS near_misses_last_seen ON near_misses (last_seen);
";

/// A near miss to record, as detection found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNearMiss {
    /// The address or the group it was counted as.
    pub source: IpNet,
    /// The rules whose bucket passed half its capacity.
    pub rules: Vec<String>,
    /// Unix seconds of the episode's first event of those rules.
    pub first_seen: i64,
    /// Unix seconds of its last.
    pub last_seen: i64,
    /// Lines of those rules.
    pub events: u64,
}

/// One near miss, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMissEntry {
    /// The address or the group it was counted as.
    pub source: IpNet,
    /// The rules whose bucket passed half its capacity, sorted.
    pub rules: Vec<String>,
    /// Unix seconds of the episode's first event of those rules.
    pub first_seen: i64,
    /// Unix seconds of its last.
    pub last_seen: i64,
    /// Lines of those rules.
    pub events: u64,
    /// Unix seconds when it stops counting toward a fleet ban.
    pub expires: i64,
}

impl Store {
    /// Records near misses found at `now` (unix seconds): each counts for as long as a
    /// first ban would last (see [`super::BanPolicy::expiry`]). One that continues a
    /// recorded near miss of its source (within [`super::EPISODE_GAP`]) adds its events to
    /// it (with [`Recording::Recount`], lines that may have been counted before, it keeps
    /// the larger count); a later one replaces it. Returns how many were written.
    pub fn record_near_misses(
        &mut self,
        found: &[NewNearMiss],
        now: i64,
        how: Recording,
    ) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let ban = self.ban;
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        for miss in found {
            let NewNearMiss {
                source,
                rules,
                first_seen,
                last_seen,
                events,
            } = miss;
            let source = net::canonical(*source);
            let key = source.to_string();
            let old: Option<(String, i64, i64, i64)> = tx
                .query_row(
                    "SELECT rules, first_seen, last_seen, events FROM near_misses WHERE source = ?1",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(sql)?;
            let mut names: Vec<&str> = rules.iter().map(String::as_str).collect();
            let (mut first, mut last, mut count) = (*first_seen, *last_seen, *events as i64);
            if let Some((old_rules, old_first, old_last, old_events)) = &old {
                let meets = *first_seen <= old_last.saturating_add(super::EPISODE_GAP)
                    && *old_first <= last_seen.saturating_add(super::EPISODE_GAP);
                if meets {
                    names.extend(old_rules.split(',').filter(|r| !r.is_empty()));
                    first = first.min(*old_first);
                    last = last.max(*old_last);
                    count = match how {
                        Recording::Add => count.saturating_add(*old_events),
                        Recording::Recount => count.max(*old_events),
                    };
                } else if old_last > last_seen {
                    // An older episode than the one recorded: nothing to add.
                    continue;
                }
            }
            names.sort_unstable();
            names.dedup();
            let (lo, hi) = net::bounds(source);
            tx.execute(
                "INSERT OR REPLACE INTO near_misses
                     (source, family, net_lo, net_hi, rules, first_seen, last_seen, events, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    key,
                    net::family(source),
                    &lo[..],
                    &hi[..],
                    names.join(","),
                    first,
                    last,
                    count,
                    ban.expiry(last, 1, now),
                ],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(found.len())
    }

    /// Every near miss recorded, by source.
    pub fn near_misses(&self) -> Result<Vec<NearMissEntry>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT source, rules, first_seen, last_seen, events, expires
                 FROM near_misses ORDER BY family, net_lo, net_hi",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (source, rules, first_seen, last_seen, events, expires) =
                row.map_err(|e| self.sql(e))?;
            let source = source
                .parse()
                .map_err(|_| self.bad(format!("near_misses: {source:?} is not a network")))?;
            out.push(NearMissEntry {
                source,
                rules: rules
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect(),
                first_seen,
                last_seen,
                events: events.max(0) as u64,
                expires,
            });
        }
        Ok(out)
    }
}

/// Deletes, in `tx`, the near misses that contain or lie inside `n` (canonical).
pub(super) fn remove_overlapping(
    tx: &rusqlite::Transaction<'_>,
    n: IpNet,
) -> rusqlite::Result<usize> {
    let (lo, hi) = net::bounds(n);
    tx.prepare_cached(
        "DELETE FROM near_misses WHERE family = ?1 AND \
         ((net_lo <= ?2 AND net_hi >= ?3) OR (net_lo >= ?2 AND net_hi <= ?3))",
    )?
    .execute(params![net::family(n), &lo[..], &hi[..]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    fn miss(s: &str, rule: &str, first: i64, last: i64, events: u64) -> NewNearMiss {
        NewNearMiss {
            source: net(s),
            rules: vec![rule.to_string()],
            first_seen: first,
            last_seen: last,
            events,
        }
    }

    #[test]
    fn near_misses_add_up_within_an_episode_and_a_later_one_replaces_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("logward.db")).expect("store");
        let t = 1_700_000_000;
        store
            .record_near_misses(
                &[miss("192.0.2.7/32", "a", t, t + 60, 6)],
                t + 60,
                Recording::Add,
            )
            .expect("record");
        store
            .record_near_misses(
                &[miss("192.0.2.7/32", "b", t + 3600, t + 3700, 4)],
                t + 3700,
                Recording::Add,
            )
            .expect("record");
        let got = store.near_misses().expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rules, ["a", "b"]);
        assert_eq!(
            (got[0].first_seen, got[0].last_seen, got[0].events),
            (t, t + 3700, 10)
        );
        // As long as a first ban (4 hours by default) from the last event.
        assert_eq!(got[0].expires, t + 3700 + 4 * 3600);
        // A day later: a new episode replaces it; an older one changes nothing.
        let day = t + 86_400;
        store
            .record_near_misses(
                &[miss("192.0.2.7/32", "c", day, day + 5, 3)],
                day + 5,
                Recording::Add,
            )
            .expect("record");
        store
            .record_near_misses(
                &[miss("192.0.2.7/32", "d", t - 86_400, t - 86_000, 9)],
                day + 5,
                Recording::Add,
            )
            .expect("record");
        let got = store.near_misses().expect("read");
        assert_eq!(
            (got[0].rules.as_slice(), got[0].events),
            (&["c".to_string()][..], 3)
        );
        // The same lines again (a rescan, or two scans at once): the larger count stays.
        let again = miss("192.0.2.7/32", "c", day, day + 5, 3);
        store
            .record_near_misses(&[again], day + 5, Recording::Recount)
            .expect("record");
        assert_eq!(store.near_misses().expect("read")[0].events, 3);
    }

    #[test]
    fn erasure_prune_and_allowing_remove_near_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("logward.db")).expect("store");
        let t = 1_700_000_000;
        store
            .record_near_misses(
                &[
                    miss("192.0.2.7/32", "a", t, t, 6),
                    miss("198.51.100.9/32", "a", t, t, 6),
                    miss("203.0.113.5/32", "a", t - 90 * 86_400, t - 90 * 86_400, 6),
                    miss("2001:db8::/64", "a", t, t, 6),
                ],
                t,
                Recording::Add,
            )
            .expect("record");
        let sources = |store: &Store| -> Vec<String> {
            store
                .near_misses()
                .expect("read")
                .iter()
                .map(|n| n.source.to_string())
                .collect()
        };
        store
            .erase(&[net("192.0.2.0/24")], &mut |_| "x".into())
            .expect("erase");
        assert_eq!(
            sources(&store),
            ["198.51.100.9/32", "203.0.113.5/32", "2001:db8::/64"]
        );
        store.prune(t - 86_400).expect("prune");
        assert_eq!(sources(&store), ["198.51.100.9/32", "2001:db8::/64"]);
        store
            .allow_add(&[net("2001:db8::1/128")], "office", "staff", t)
            .expect("allow");
        assert_eq!(sources(&store), ["198.51.100.9/32"]);
        store
            .delete_sources(&[net("198.51.100.9/32")])
            .expect("delete");
        assert!(sources(&store).is_empty());
    }
}
