//! Erasure requests across the fleet: staff with `logward_admin` record one (the central
//! rows of the source go at once, and no server can report them again); each server lists
//! the requests it has not carried out, erases locally (logs and store, as the local
//! erasure does) and acknowledges; the listing says which servers have and have not, so
//! the hoster can show that a request was honoured everywhere. It does not rewrite logs
//! itself: the command runs the local erasure.

use ipnet::IpNet;

use super::FleetError;
use super::connect::Fleet;

/// One erasure request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's number in the fleet database.
    pub id: i64,
    /// The address or network to erase.
    pub source: IpNet,
    /// The reference it was requested under (a ticket or case number); never empty.
    pub ticket: String,
    /// The login role that recorded it.
    pub requested_by: String,
    /// Unix seconds.
    pub requested_at: i64,
}

/// A request and the servers' acknowledgements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The request.
    pub request: Request,
    /// Servers that carried it out completely, with when.
    pub done: Vec<(String, i64)>,
    /// Servers that tried and could not finish (a live log), with when.
    pub incomplete: Vec<(String, i64)>,
    /// Servers known to the fleet that have not acknowledged it.
    pub waiting: Vec<String>,
}

const COLUMNS: &str = "e.id, e.source::text, e.ticket, e.requested_by, \
                       extract(epoch FROM e.requested_at)::bigint";

fn request(row: &postgres::Row) -> Option<Request> {
    Some(Request {
        id: row.get(0),
        source: row.get::<_, String>(1).parse().ok()?,
        ticket: row.get(2),
        requested_by: row.get(3),
        requested_at: row.get(4),
    })
}

/// Records a request for `source` under `ticket`; returns its id. Needs `logward_admin`.
pub fn request_erasure(fleet: &mut Fleet, source: IpNet, ticket: &str) -> Result<i64, FleetError> {
    let text = source.trunc().to_string();
    fleet
        .client
        .query_one(
            "SELECT logward.request_erasure($1::text::cidr, $2)",
            &[&text, &ticket],
        )
        .map(|r| r.get(0))
        .map_err(fleet.sql("recording the erasure request"))
}

/// The requests this server (its login role) has not carried out completely, oldest
/// first.
pub fn pending(fleet: &mut Fleet) -> Result<Vec<Request>, FleetError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM logward.erasures e WHERE NOT EXISTS (
             SELECT 1 FROM logward.erasure_acks a
             WHERE a.erasure = e.id AND a.host = session_user AND a.outcome = 'complete')
         ORDER BY e.id"
    );
    let rows = fleet
        .client
        .query(&sql, &[])
        .map_err(fleet.sql("reading erasure requests"))?;
    Ok(rows.iter().filter_map(request).collect())
}

/// Says this server carried out request `id`, completely or not.
pub fn acknowledge(fleet: &mut Fleet, id: i64, complete: bool) -> Result<(), FleetError> {
    let outcome = if complete { "complete" } else { "incomplete" };
    fleet
        .client
        .execute("SELECT logward.ack_erasure($1, $2)", &[&id, &outcome])
        .map(|_| ())
        .map_err(fleet.sql("acknowledging an erasure request"))
}

/// A request deleted by [`prune`], with what shows it was honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// The request's number.
    pub id: i64,
    /// Its reference (the erased address is not returned: it should linger nowhere).
    pub ticket: String,
    /// Unix seconds.
    pub requested_at: i64,
    /// When the last server acknowledged it, unix seconds.
    pub done_at: i64,
    /// The servers that carried it out, sorted.
    pub hosts: Vec<String>,
}

/// Deletes the requests every server known to the fleet carried out completely, the last
/// of them more than `keep` seconds ago, and returns them. Needs `logward_admin`. A server
/// that joins later never sees them: by then the data is gone from every server's logs.
pub fn prune(fleet: &mut Fleet, keep: i64) -> Result<Vec<Pruned>, FleetError> {
    let rows = fleet
        .client
        .query(
            "SELECT id, ticket, extract(epoch FROM requested_at)::bigint,
                    extract(epoch FROM done_at)::bigint, hosts
             FROM logward.prune_erasures(make_interval(secs => $1))",
            &[&(keep as f64)],
        )
        .map_err(fleet.sql("deleting erasure requests carried out"))?;
    Ok(rows
        .iter()
        .map(|r| Pruned {
            id: r.get(0),
            ticket: r.get(1),
            requested_at: r.get(2),
            done_at: r.get(3),
            hosts: r.get(4),
        })
        .collect())
}

/// Every request with its acknowledgements and the servers still to answer.
pub fn list(fleet: &mut Fleet) -> Result<Vec<Status>, FleetError> {
    let sql = format!(
        "SELECT {COLUMNS},
            coalesce((SELECT array_agg(a.host || ' ' || a.outcome || ' ' ||
                                       extract(epoch FROM a.acked_at)::bigint ORDER BY a.host)
                      FROM logward.erasure_acks a WHERE a.erasure = e.id), '{{}}'),
            coalesce((SELECT array_agg(h.host ORDER BY h.host) FROM logward.hosts h
                      WHERE NOT EXISTS (SELECT 1 FROM logward.erasure_acks a
                                        WHERE a.erasure = e.id AND a.host = h.host)), '{{}}')
         FROM logward.erasures e ORDER BY e.id"
    );
    let rows = fleet
        .client
        .query(&sql, &[])
        .map_err(fleet.sql("listing erasure requests"))?;
    let mut out = Vec::new();
    for row in &rows {
        let Some(request) = request(row) else {
            continue;
        };
        let (mut done, mut incomplete) = (Vec::new(), Vec::new());
        for ack in row.get::<_, Vec<String>>(5) {
            let mut parts = ack.rsplitn(3, ' ');
            let at = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let outcome = parts.next().unwrap_or("");
            let host = parts.next().unwrap_or("").to_string();
            if outcome == "complete" {
                done.push((host, at));
            } else {
                incomplete.push((host, at));
            }
        }
        out.push(Status {
            request,
            done,
            incomplete,
            waiting: row.get(6),
        });
    }
    Ok(out)
}
