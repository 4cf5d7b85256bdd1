//! The persistent allowlist: networks an operator declared never to flag (a customer's
//! office NAT flagged by mistake), each with a note saying why, who added it and when,
//! kept in the store's `allowlist` table ([`ALLOWLIST_SCHEMA`]).
//!
//! Adding a network also ends the active bans of every flagged entry that overlaps it, in
//! the same transaction, and bumps a generation counter in `meta` that a running `watch`
//! polls ([`Store::allowlist_generation`]). It does not decide what detection does with
//! the list: `detect::Allowlist` checks sources, and the command line merges this list
//! with `--allow` and `--allow-file`.

use ipnet::IpNet;
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, net};

/// The `allowlist` table, created in every store that lacks it (no schema version change:
/// older builds ignore it). `net` is the canonical CIDR; `net_lo`, `net_hi` and `family`
/// are as in `flagged`, so overlap queries compare the same bounds.
pub const ALLOWLIST_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS allowlist (
    net      TEXT PRIMARY KEY,   -- canonical CIDR: '192.0.2.7/32', '2001:db8:100::/48'
    family   INTEGER NOT NULL,   -- 4 or 6
    net_lo   BLOB NOT NULL,      -- first and last address, as in flagged
    net_hi   BLOB NOT NULL,
    note     TEXT NOT NULL,      -- why it is allowed
    added_by TEXT NOT NULL,      -- the login name of whoever added it
    added_at INTEGER NOT NULL    -- unix seconds, UTC (wall clock)
);
";

/// The `meta` key of the allowlist's generation.
const GENERATION_KEY: &str = "allowlist";

/// One row of `allowlist`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedNet {
    /// The allowed network.
    pub net: IpNet,
    /// Why it is allowed.
    pub note: String,
    /// The login name of whoever added it.
    pub added_by: String,
    /// Unix seconds, UTC.
    pub added_at: i64,
}

/// What [`Store::allow_add`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowAdded {
    /// The networks that were new entries, canonical.
    pub added: Vec<IpNet>,
    /// The networks that were entries already: their note, author and time were replaced.
    pub updated: Vec<IpNet>,
    /// The flagged entries whose active bans ended, sorted and without repeats.
    pub unbanned: Vec<IpNet>,
}

impl Store {
    /// Adds `nets` (canonicalized) to the allowlist with `note`, by `added_by` at `now`,
    /// and ends at `now` the active bans of every flagged entry overlapping one of them
    /// (inside it, or containing it), keeping their history. One write transaction; the
    /// allowlist generation is bumped so a running `watch` reloads the list.
    pub fn allow_add(
        &mut self,
        nets: &[IpNet],
        note: &str,
        added_by: &str,
        now: i64,
    ) -> Result<AllowAdded, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        let mut done = AllowAdded::default();
        for n in nets {
            let n = net::canonical(*n);
            let key = n.to_string();
            let (lo, hi) = net::bounds(n);
            let existed = tx
                .query_row("SELECT 1 FROM allowlist WHERE net = ?1", [&key], |_| Ok(()))
                .optional()
                .map_err(sql)?
                .is_some();
            tx.execute(
                "INSERT OR REPLACE INTO allowlist \
                 (net, family, net_lo, net_hi, note, added_by, added_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![key, net::family(n), &lo[..], &hi[..], note, added_by, now],
            )
            .map_err(sql)?;
            if existed {
                done.updated.push(n);
            } else {
                done.added.push(n);
            }
            // Entries containing the network (a /64 holding an allowed host would block it
            // too) or inside it, with a ban still running.
            let mut st = tx
                .prepare_cached(
                    "UPDATE flagged SET expires = ?4 WHERE family = ?1 AND expires > ?4 AND \
                     ((net_lo <= ?2 AND net_hi >= ?3) OR (net_lo >= ?2 AND net_hi <= ?3)) \
                     RETURNING source",
                )
                .map_err(sql)?;
            let rows = st
                .query_map(params![net::family(n), &lo[..], &hi[..], now], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(sql)?;
            for row in rows {
                let text = row.map_err(sql)?;
                let source = text.parse::<IpNet>().map_err(|_| StoreError::BadRow {
                    path: path.clone(),
                    what: format!("flagged.source {text:?} is not a CIDR"),
                })?;
                done.unbanned.push(source);
            }
            drop(st);
            super::near::remove_overlapping(&tx, n).map_err(sql)?;
        }
        bump_generation(&tx).map_err(sql)?;
        tx.commit().map_err(sql)?;
        done.unbanned
            .sort_by_key(|n| (net::family(*n), net::bounds(*n)));
        done.unbanned.dedup();
        Ok(done)
    }

    /// Removes the entries of exactly `nets` (canonicalized), all or none: returns the
    /// networks that are not entries, and when there is one, nothing was removed.
    pub fn allow_remove(&mut self, nets: &[IpNet]) -> Result<Vec<IpNet>, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = Self::write_tx(&mut self.conn).map_err(sql)?;
        let mut absent = Vec::new();
        for n in nets {
            let n = net::canonical(*n);
            let removed = tx
                .execute("DELETE FROM allowlist WHERE net = ?1", [n.to_string()])
                .map_err(sql)?;
            if removed == 0 && !absent.contains(&n) {
                absent.push(n);
            }
        }
        if absent.is_empty() {
            bump_generation(&tx).map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        // Otherwise dropping the transaction rolls it back.
        Ok(absent)
    }

    /// The allowlist, IPv4 first, each family by address, wider networks first.
    pub fn allowlist(&self) -> Result<Vec<AllowedNet>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT net, note, added_by, added_at FROM allowlist \
                 ORDER BY family, net_lo, net_hi DESC",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (text, note, added_by, added_at) = row.map_err(|e| self.sql(e))?;
            let net = text
                .parse::<IpNet>()
                .map_err(|_| self.bad(format!("allowlist.net {text:?} is not a CIDR")))?;
            out.push(AllowedNet {
                net,
                note,
                added_by,
                added_at,
            });
        }
        Ok(out)
    }

    /// How many times the allowlist changed: a running `watch` polls it and reloads the
    /// list when it moves.
    pub fn allowlist_generation(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [GENERATION_KEY],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.sql(e))
    }

    /// The allowlist's networks when its generation differs from `*seen`, which is then
    /// updated; `None` when it has not changed since.
    pub fn allowlist_if_changed(&self, seen: &mut i64) -> Result<Option<Vec<IpNet>>, StoreError> {
        let generation = self.allowlist_generation()?;
        if generation == *seen {
            return Ok(None);
        }
        let nets = self.allowlist()?.into_iter().map(|a| a.net).collect();
        *seen = generation;
        Ok(Some(nets))
    }
}

fn bump_generation(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, 1) \
         ON CONFLICT(key) DO UPDATE SET value = value + 1",
        [GENERATION_KEY],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Filter, NewFlag};

    const T0: i64 = 1_795_322_356;
    const H: i64 = 3600;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state/logward.db")).unwrap();
        (dir, store)
    }

    fn flag(source: &str, last_seen: i64) -> NewFlag {
        NewFlag {
            source: n(source),
            rules: vec!["scanner".into()],
            first_seen: last_seen - 60,
            last_seen,
            rule_events: vec![("scanner".into(), 10)],
            events: 10,
            samples: vec![],
            sites: vec![],
            files: vec![],
            explain: vec![],
            country: None,
            asn: None,
            as_org: None,
        }
    }

    /// Sources still banned at `now`.
    fn active(s: &Store, now: i64) -> Vec<String> {
        s.query(&Filter {
            active_at: Some(now),
            ..Filter::default()
        })
        .unwrap()
        .iter()
        .map(|e| net::display(e.source))
        .collect()
    }

    #[test]
    fn add_list_update_and_remove() {
        let (_d, mut s) = open();
        assert!(s.allowlist().unwrap().is_empty());
        assert_eq!(s.allowlist_generation().unwrap(), 0);
        let done = s
            .allow_add(
                &[n("2001:db8:1::5/48"), n("::ffff:192.0.2.9/128")],
                "office NAT",
                "alice",
                T0,
            )
            .unwrap();
        assert_eq!(done.added, [n("2001:db8:1::/48"), n("192.0.2.9/32")]);
        assert!(done.updated.is_empty());
        let list = s.allowlist().unwrap();
        assert_eq!(
            list,
            [
                AllowedNet {
                    net: n("192.0.2.9/32"),
                    note: "office NAT".into(),
                    added_by: "alice".into(),
                    added_at: T0,
                },
                AllowedNet {
                    net: n("2001:db8:1::/48"),
                    note: "office NAT".into(),
                    added_by: "alice".into(),
                    added_at: T0,
                },
            ]
        );
        assert_eq!(s.allowlist_generation().unwrap(), 1);

        let done = s
            .allow_add(&[n("192.0.2.9/32")], "monitoring", "bob", T0 + 5)
            .unwrap();
        assert_eq!(
            (done.added.len(), done.updated),
            (0, vec![n("192.0.2.9/32")])
        );
        let first = &s.allowlist().unwrap()[0];
        assert_eq!(
            (first.note.as_str(), first.added_by.as_str(), first.added_at),
            ("monitoring", "bob", T0 + 5)
        );

        // All or none: one absent network leaves every entry in place.
        let absent = s
            .allow_remove(&[n("192.0.2.9/32"), n("192.0.2.0/24")])
            .unwrap();
        assert_eq!(absent, [n("192.0.2.0/24")]);
        assert_eq!(s.allowlist().unwrap().len(), 2);
        assert_eq!(s.allowlist_generation().unwrap(), 2);
        // Exact entries only: an address inside the /48 is not its entry.
        assert_eq!(
            s.allow_remove(&[n("2001:db8:1::5/128")]).unwrap(),
            [n("2001:db8:1::5/128")]
        );
        assert!(
            s.allow_remove(&[n("::ffff:192.0.2.9/128"), n("2001:db8:1::/48")])
                .unwrap()
                .is_empty()
        );
        assert!(s.allowlist().unwrap().is_empty());
        assert_eq!(s.allowlist_generation().unwrap(), 3);
    }

    #[test]
    fn add_ends_the_bans_of_entries_inside_and_containing_it() {
        let (_d, mut s) = open();
        s.record_flags_at(
            &[
                flag("192.0.2.7/32", T0),
                flag("192.0.2.200/32", T0),
                flag("198.51.100.1/32", T0),
                flag("2001:db8:85a3::/64", T0),
                flag("2001:db8:ffff::1/128", T0),
                // Expired long ago: its expiry stays as it is.
                flag("192.0.2.50/32", T0 - 30 * 86_400),
            ],
            T0,
            crate::store::Recording::Add,
        )
        .unwrap();
        let before = s.query(&Filter::default()).unwrap();
        let now = T0 + H;
        let done = s
            .allow_add(
                &[n("192.0.2.0/25"), n("2001:db8:85a3::7/128")],
                "customer",
                "alice",
                now,
            )
            .unwrap();
        assert_eq!(
            done.unbanned,
            [n("192.0.2.7/32"), n("2001:db8:85a3::/64")],
            "inside the /25, and the /64 containing the allowed host"
        );
        assert_eq!(
            active(&s, now),
            ["192.0.2.200", "198.51.100.1", "2001:db8:ffff::1"]
        );
        // History is kept: every entry is still there, with its events and first flag.
        let after = s.query(&Filter::default()).unwrap();
        assert_eq!(after.len(), before.len());
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(
                (a.source, a.events, a.times_flagged),
                (b.source, b.events, b.times_flagged)
            );
        }
        let old = after
            .iter()
            .find(|e| e.source == n("192.0.2.50/32"))
            .unwrap();
        let old_before = before
            .iter()
            .find(|e| e.source == n("192.0.2.50/32"))
            .unwrap();
        assert_eq!(old.expires, old_before.expires);
        // IPv4 bounds are mapped into ::ffff:0:0/96: ::/0 holds no IPv4 entry.
        let done = s.allow_add(&[n("::/0")], "all v6", "alice", now).unwrap();
        assert_eq!(done.unbanned, [n("2001:db8:ffff::1/128")]);
        assert_eq!(active(&s, now), ["192.0.2.200", "198.51.100.1"]);
    }

    #[test]
    fn generation_tells_a_poller_when_to_reload() {
        let (_d, mut s) = open();
        let mut seen = s.allowlist_generation().unwrap();
        assert_eq!(s.allowlist_if_changed(&mut seen).unwrap(), None);
        s.allow_add(&[n("10.0.0.0/8")], "lan", "alice", T0).unwrap();
        assert_eq!(
            s.allowlist_if_changed(&mut seen).unwrap(),
            Some(vec![n("10.0.0.0/8")])
        );
        assert_eq!(s.allowlist_if_changed(&mut seen).unwrap(), None);
        // A failed removal changes nothing, so nobody needs to reload.
        s.allow_remove(&[n("10.0.0.0/16")]).unwrap();
        assert_eq!(s.allowlist_if_changed(&mut seen).unwrap(), None);
        s.allow_remove(&[n("10.0.0.0/8")]).unwrap();
        assert_eq!(s.allowlist_if_changed(&mut seen).unwrap(), Some(vec![]));
    }

    #[test]
    fn a_store_without_the_table_gets_it_on_open() {
        let (_d, s) = open();
        let p = s.path().to_path_buf();
        s.conn.execute_batch("DROP TABLE allowlist").unwrap();
        drop(s);
        let mut s = Store::open(&p).unwrap();
        s.allow_add(&[n("10.0.0.0/8")], "lan", "alice", T0).unwrap();
        assert_eq!(s.allowlist().unwrap().len(), 1);
    }
}
