//! Fleet queries (`logward flagged --fleet`): the entries of every server, merged per
//! source, with the servers that flagged it, answered with the GiST index on `source` for
//! addresses (entries containing them) and networks (entries inside them). Near misses
//! (partial reports) are left out, but those of a spread ban (see [`FleetFilter::min_hosts`]).
//! It does not print: the command writes the entries in its formats.

use ipnet::IpNet;
use postgres::types::ToSql;

use super::FleetError;
use super::connect::Fleet;
use crate::store::{FlaggedEntry, Sample, Target};

/// What a fleet query selects; empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct FleetFilter {
    /// Entries containing any of these addresses or inside any of these networks.
    pub targets: Vec<Target>,
    /// `last_seen >= since` (unix seconds).
    pub since: Option<i64>,
    /// `last_seen < until` (unix seconds).
    pub until: Option<i64>,
    /// Entries flagged by any of these rules.
    pub rules: Vec<String>,
    /// Only bans still active at this time.
    pub active_at: Option<i64>,
    /// The fleet's `min_hosts`: when 2 or more, the near misses of a source that many
    /// servers reported (a spread ban) are listed with its flags; other near misses never.
    pub min_hosts: Option<u32>,
}

/// One source over the fleet: its entries merged (rules united, times widened, events
/// added up over the servers, the latest ban), and the servers that flagged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetEntry {
    /// The merged entry.
    pub entry: FlaggedEntry,
    /// The servers that flagged it, sorted.
    pub hosts: Vec<String>,
}

/// The query's text and parameters.
fn build(filter: &FleetFilter) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut wheres: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for t in &filter.targets {
        match t {
            Target::Addr(a) => {
                params.push(Box::new(a.to_string()));
                targets.push(format!("source >>= ${}::text::inet", params.len()));
            }
            Target::Net(n) => {
                params.push(Box::new(n.trunc().to_string()));
                targets.push(format!("source <<= ${}::text::cidr", params.len()));
            }
        }
    }
    if !targets.is_empty() {
        wheres.push(format!("({})", targets.join(" OR ")));
    }
    for (value, cmp) in [(filter.since, ">="), (filter.until, "<")] {
        if let Some(t) = value {
            params.push(Box::new(t as f64));
            wheres.push(format!("last_seen {cmp} to_timestamp(${})", params.len()));
        }
    }
    if !filter.rules.is_empty() {
        params.push(Box::new(filter.rules.clone()));
        wheres.push(format!("rules && ${}::text[]", params.len()));
    }
    match filter.min_hosts.filter(|&n| n >= 2) {
        Some(n) => {
            params.push(Box::new(i64::from(n)));
            wheres.push(format!(
                "(NOT partial OR source IN (SELECT source FROM logward.flags \
                 WHERE expires > now() GROUP BY source HAVING count(DISTINCT host) >= ${}))",
                params.len()
            ));
        }
        None => wheres.push("NOT partial".into()),
    }
    if let Some(t) = filter.active_at {
        params.push(Box::new(t as f64));
        wheres.push(format!("expires > to_timestamp(${})", params.len()));
    }
    let where_ = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    let sql = format!(
        "SELECT source::text, array_agg(host ORDER BY host),
                string_agg(array_to_string(rules, ','), ','),
                extract(epoch FROM min(first_seen))::bigint,
                extract(epoch FROM max(last_seen))::bigint,
                sum(events)::bigint, max(times_flagged),
                extract(epoch FROM max(expires))::bigint,
                (array_agg(country) FILTER (WHERE country IS NOT NULL))[1],
                max(asn),
                (array_agg(as_org) FILTER (WHERE as_org IS NOT NULL))[1],
                (array_agg(samples::text ORDER BY first_seen))[1]
         FROM logward.flags {where_}
         GROUP BY source ORDER BY source"
    );
    (sql, params)
}

/// The query's text, for `EXPLAIN` in tests.
pub fn sql(filter: &FleetFilter) -> String {
    build(filter).0
}

/// Runs the query.
pub fn query(fleet: &mut Fleet, filter: &FleetFilter) -> Result<Vec<FleetEntry>, FleetError> {
    let (sql, params) = build(filter);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    let rows = fleet
        .client
        .query(&sql, &refs)
        .map_err(fleet.sql("querying the fleet's flags"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let source: String = row.get(0);
        let Ok(source) = source.parse::<IpNet>() else {
            continue;
        };
        let rules = super::rule_list(row.get::<_, Option<&str>>(2));
        let samples: Vec<Sample> = row
            .get::<_, Option<String>>(11)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let events = u64::try_from(row.get::<_, i64>(5)).unwrap_or(0);
        out.push(FleetEntry {
            entry: FlaggedEntry {
                source,
                rule_events: Vec::new(),
                rules,
                first_seen: row.get(3),
                last_seen: row.get(4),
                events,
                samples,
                vhost: None,
                sites: Vec::new(),
                files: Vec::new(),
                country: row.get(8),
                asn: row
                    .get::<_, Option<i64>>(9)
                    .and_then(|a| u32::try_from(a).ok()),
                as_org: row.get(10),
                times_flagged: u32::try_from(row.get::<_, i32>(6)).unwrap_or(0),
                expires: row.get(7),
            },
            hosts: row.get(1),
        });
    }
    Ok(out)
}
