//! The fleet's PostgreSQL schema (version [`VERSION`], in schema `logward`), created or
//! upgraded by [`init`], and the roles and grants staff create by hand ([`ROLES`]). It owns
//! the rule that servers write only through SECURITY DEFINER functions which take the
//! reporting server from `session_user`, so one server cannot write as another. It does
//! not push, pull or query (see the other modules of [`crate::fleet`]).

use super::FleetError;
use super::connect::Fleet;

/// The schema version this build writes and understands.
pub const VERSION: i32 = 2;

/// Version 1. Every statement is idempotent, so a second `fleet init` changes nothing.
///
/// Commit order: every write takes the next number of `logward.clock` (a single row,
/// locked by the `UPDATE` until the writing transaction ends) and stamps its rows with it.
/// A second writer waits on the row lock, so numbers are handed out in commit order and a
/// reader that has seen every row up to N has missed none below it: `seq > N` is a safe
/// catch-up read even when transactions run concurrently. The lock is held for one
/// batch's upsert only (a few milliseconds), which bounds the fleet's write rate far above
/// what flags need; see docs/fleet.md, "Pulling".
pub const SCHEMA_V1: &str = r#"
CREATE SCHEMA IF NOT EXISTS logward;
REVOKE ALL ON SCHEMA logward FROM PUBLIC;

CREATE TABLE IF NOT EXISTS logward.schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- The commit-ordered sequence: one row, see above.
CREATE TABLE IF NOT EXISTS logward.clock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n   bigint NOT NULL
);
INSERT INTO logward.clock (one, n) VALUES (true, 0) ON CONFLICT DO NOTHING;

-- The servers that have reported, by login role.
CREATE TABLE IF NOT EXISTS logward.hosts (
    host          text PRIMARY KEY,
    first_report  timestamptz NOT NULL DEFAULT now(),
    last_report   timestamptz NOT NULL DEFAULT now()
);

-- What each server flagged: its own store's entry, with absolute counts.
CREATE TABLE IF NOT EXISTS logward.flags (
    host          text NOT NULL REFERENCES logward.hosts (host),
    source        cidr NOT NULL,
    rules         text[] NOT NULL,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    events        bigint NOT NULL,
    times_flagged integer NOT NULL,
    expires       timestamptz NOT NULL,
    samples       jsonb NOT NULL DEFAULT '[]',
    country       text,
    asn           bigint,
    as_org        text,
    seq           bigint NOT NULL,
    reported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, source)
);
-- Containment (source >>= address) and inclusion (source <<= network) queries.
CREATE INDEX IF NOT EXISTS flags_source ON logward.flags USING gist (source inet_ops);
CREATE INDEX IF NOT EXISTS flags_seq ON logward.flags (seq);
CREATE INDEX IF NOT EXISTS flags_last_seen ON logward.flags (last_seen);

-- Erasure requests (anonymize --source --fleet) and each server's acknowledgement.
CREATE TABLE IF NOT EXISTS logward.erasures (
    id           bigserial PRIMARY KEY,
    source       cidr NOT NULL,
    ticket       text NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    seq          bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS erasures_source ON logward.erasures USING gist (source inet_ops);
CREATE INDEX IF NOT EXISTS erasures_seq ON logward.erasures (seq);
CREATE TABLE IF NOT EXISTS logward.erasure_acks (
    erasure  bigint NOT NULL REFERENCES logward.erasures (id) ON DELETE CASCADE,
    host     text NOT NULL,
    outcome  text NOT NULL CHECK (outcome IN ('complete', 'incomplete')),
    acked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (erasure, host)
);

-- The next number of the commit-ordered sequence; the row stays locked until commit.
CREATE OR REPLACE FUNCTION logward.tick() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
    UPDATE logward.clock SET n = n + 1 RETURNING n;
$$;

-- A server reports a batch of its flags (a JSON array of objects with source, rules,
-- first_seen, last_seen, expires as unix seconds, events, times_flagged, samples, country,
-- asn, as_org). The host is session_user, whatever the batch says. Counts are absolute,
-- so sending a batch twice changes nothing. A flag that began before an erasure request
-- covering it is dropped: erased data never comes back.
CREATE OR REPLACE FUNCTION logward.report_flags(batch jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
DECLARE
    me  text := session_user;
    s   bigint;
BEGIN
    INSERT INTO logward.hosts AS h (host) VALUES (me)
        ON CONFLICT (host) DO UPDATE SET last_report = now();
    s := logward.tick();
    INSERT INTO logward.flags AS f (host, source, rules, first_seen, last_seen, events,
                                    times_flagged, expires, samples, country, asn, as_org, seq)
    SELECT me, (x->>'source')::cidr,
           ARRAY(SELECT jsonb_array_elements_text(x->'rules') ORDER BY 1),
           to_timestamp((x->>'first_seen')::bigint), to_timestamp((x->>'last_seen')::bigint),
           (x->>'events')::bigint, (x->>'times_flagged')::integer,
           to_timestamp((x->>'expires')::bigint), coalesce(x->'samples', '[]'),
           x->>'country', (x->>'asn')::bigint, x->>'as_org', s
    FROM jsonb_array_elements(batch) AS x
    WHERE NOT EXISTS (
        SELECT 1 FROM logward.erasures e
        WHERE (e.source >>= (x->>'source')::cidr OR e.source <<= (x->>'source')::cidr)
          AND to_timestamp((x->>'first_seen')::bigint) <= e.requested_at)
    ON CONFLICT (host, source) DO UPDATE SET
        rules = excluded.rules, first_seen = excluded.first_seen,
        last_seen = excluded.last_seen, events = excluded.events,
        times_flagged = excluded.times_flagged, expires = excluded.expires,
        samples = excluded.samples, country = excluded.country, asn = excluded.asn,
        as_org = excluded.as_org, seq = excluded.seq, reported_at = now();
    PERFORM pg_notify('logward_fleet', s::text);
    RETURN s;
END;
$$;

-- Staff with logward_admin record an erasure request; every server carries it out.
CREATE OR REPLACE FUNCTION logward.request_erasure(src cidr, ticket text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
DECLARE
    s  bigint;
    id bigint;
BEGIN
    IF length(trim(ticket)) = 0 THEN
        RAISE EXCEPTION 'an erasure request needs a ticket reference';
    END IF;
    s := logward.tick();
    INSERT INTO logward.erasures (source, ticket, requested_by, seq)
        VALUES (src, ticket, session_user, s) RETURNING erasures.id INTO id;
    DELETE FROM logward.flags WHERE source >>= src OR source <<= src;
    PERFORM pg_notify('logward_fleet', s::text);
    RETURN id;
END;
$$;

-- A server says it carried out an erasure request (as session_user).
CREATE OR REPLACE FUNCTION logward.ack_erasure(req bigint, outcome text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
    INSERT INTO logward.erasure_acks (erasure, host, outcome)
        VALUES (req, session_user, outcome)
    ON CONFLICT (erasure, host) DO UPDATE SET outcome = excluded.outcome, acked_at = now();
$$;

-- Staff with logward_admin drop flags last seen before a time; returns how many.
CREATE OR REPLACE FUNCTION logward.prune(before timestamptz) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
    WITH gone AS (DELETE FROM logward.flags WHERE last_seen < before RETURNING 1)
    SELECT count(*) FROM gone;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA logward FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA logward FROM PUBLIC;
"#;

/// Version 2, run after [`SCHEMA_V1`] (which it amends), every statement idempotent:
/// - near misses (`partial`): a server reports a source that came near being flagged
///   there, so that `min_hosts` servers that each saw too little still make a fleet ban.
///   A near miss never replaces a server's active flag of the same source.
/// - `prune_erasures`: admins drop the requests every server has carried out.
pub const SCHEMA_V2: &str = r#"
ALTER TABLE logward.flags ADD COLUMN IF NOT EXISTS partial boolean NOT NULL DEFAULT false;

-- As in version 1, and each entry may say "partial": true (a near miss).
CREATE OR REPLACE FUNCTION logward.report_flags(batch jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
DECLARE
    me  text := session_user;
    s   bigint;
BEGIN
    INSERT INTO logward.hosts AS h (host) VALUES (me)
        ON CONFLICT (host) DO UPDATE SET last_report = now();
    s := logward.tick();
    INSERT INTO logward.flags AS f (host, source, rules, first_seen, last_seen, events,
                                    times_flagged, expires, samples, country, asn, as_org,
                                    seq, partial)
    SELECT me, (x->>'source')::cidr,
           ARRAY(SELECT jsonb_array_elements_text(x->'rules') ORDER BY 1),
           to_timestamp((x->>'first_seen')::bigint), to_timestamp((x->>'last_seen')::bigint),
           (x->>'events')::bigint, (x->>'times_flagged')::integer,
           to_timestamp((x->>'expires')::bigint), coalesce(x->'samples', '[]'),
           x->>'country', (x->>'asn')::bigint, x->>'as_org', s,
           coalesce((x->>'partial')::boolean, false)
    FROM jsonb_array_elements(batch) AS x
    WHERE NOT EXISTS (
        SELECT 1 FROM logward.erasures e
        WHERE (e.source >>= (x->>'source')::cidr OR e.source <<= (x->>'source')::cidr)
          AND to_timestamp((x->>'first_seen')::bigint) <= e.requested_at)
    ON CONFLICT (host, source) DO UPDATE SET
        rules = excluded.rules, first_seen = excluded.first_seen,
        last_seen = excluded.last_seen, events = excluded.events,
        times_flagged = excluded.times_flagged, expires = excluded.expires,
        samples = excluded.samples, country = excluded.country, asn = excluded.asn,
        as_org = excluded.as_org, seq = excluded.seq, reported_at = now(),
        partial = excluded.partial
    WHERE NOT excluded.partial OR f.partial OR f.expires <= now();
    PERFORM pg_notify('logward_fleet', s::text);
    RETURN s;
END;
$$;

-- Staff with logward_admin drop the erasure requests that every server known to the fleet
-- carried out completely, the last of them longer than `keep` ago; returns what went
-- (without the erased address), so the record can be kept elsewhere.
CREATE OR REPLACE FUNCTION logward.prune_erasures(keep interval)
RETURNS TABLE (id bigint, ticket text, requested_at timestamptz,
               done_at timestamptz, hosts text[])
LANGUAGE sql SECURITY DEFINER SET search_path = logward, pg_temp AS $$
    WITH finished AS (
        SELECT e.id, max(a.acked_at) AS done_at,
               array_agg(a.host ORDER BY a.host) AS hosts
        FROM logward.erasures e JOIN logward.erasure_acks a
             ON a.erasure = e.id AND a.outcome = 'complete'
        WHERE NOT EXISTS (
            SELECT 1 FROM logward.hosts h
            WHERE NOT EXISTS (SELECT 1 FROM logward.erasure_acks k
                              WHERE k.erasure = e.id AND k.host = h.host
                                AND k.outcome = 'complete'))
        GROUP BY e.id
        HAVING max(a.acked_at) < now() - keep
    ), gone AS (
        DELETE FROM logward.erasures e USING finished f WHERE e.id = f.id
        RETURNING e.id, e.ticket, e.requested_at
    )
    SELECT g.id, g.ticket, g.requested_at, f.done_at, f.hosts
    FROM gone g JOIN finished f ON f.id = g.id ORDER BY g.id;
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA logward FROM PUBLIC;
"#;

/// The roles and grants, printed by `fleet init` for staff to run as a superuser (or a
/// role with CREATEROLE) and to adapt: every statement can run twice.
pub const ROLES: &str = r#"-- Group roles: servers report and read; staff read; admins erase and prune.
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logward_host') THEN
        CREATE ROLE logward_host NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logward_reader') THEN
        CREATE ROLE logward_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logward_admin') THEN
        CREATE ROLE logward_admin NOLOGIN IN ROLE logward_reader;
    END IF;
END $$;
GRANT USAGE ON SCHEMA logward TO logward_host, logward_reader;
GRANT SELECT ON logward.flags, logward.hosts, logward.erasures, logward.erasure_acks,
    logward.schema_version TO logward_host, logward_reader;
GRANT EXECUTE ON FUNCTION logward.report_flags(jsonb), logward.ack_erasure(bigint, text)
    TO logward_host;
GRANT EXECUTE ON FUNCTION logward.request_erasure(cidr, text), logward.prune(timestamptz),
    logward.prune_erasures(interval) TO logward_admin;
-- One login role per server, named as its [fleet] host (its password in the server's
-- password_file, mode 0600), for example:
--   CREATE ROLE "web-01" LOGIN IN ROLE logward_host;  \password "web-01"
-- Staff: CREATE ROLE alice LOGIN IN ROLE logward_reader;  (or logward_admin)
"#;

/// What [`init`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// The schema was created at [`VERSION`].
    Created,
    /// It was at an older version and was upgraded.
    Upgraded {
        /// The version it was at.
        from: i32,
    },
    /// It was at [`VERSION`] already; nothing changed.
    Current,
}

/// Creates or upgrades the schema in one transaction, serialized against a concurrent
/// `fleet init` by an advisory lock.
pub fn init(fleet: &mut Fleet) -> Result<Init, FleetError> {
    let server = fleet.server.clone();
    let sql = |what| FleetError::sql(&server, what);
    let mut tx = fleet.client.transaction().map_err(sql("BEGIN"))?;
    tx.execute("SELECT pg_advisory_xact_lock(7210931)", &[])
        .map_err(sql("taking the init lock"))?;
    let found = version_in(&mut tx).map_err(sql("reading the schema version"))?;
    match found {
        Some(v) if v > VERSION => return Err(FleetError::NewerSchema { server, found: v }),
        Some(v) if v == VERSION => return Ok(Init::Current),
        _ => {}
    }
    tx.batch_execute(SCHEMA_V1)
        .map_err(sql("creating the schema"))?;
    tx.batch_execute(SCHEMA_V2)
        .map_err(sql("upgrading the schema to version 2"))?;
    tx.execute(
        "INSERT INTO logward.schema_version (version) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&VERSION],
    )
    .map_err(sql("recording the schema version"))?;
    tx.commit().map_err(sql("COMMIT"))?;
    Ok(match found {
        None => Init::Created,
        Some(from) => Init::Upgraded { from },
    })
}

/// The schema version in the database, `None` without a schema.
fn version_in(tx: &mut postgres::Transaction<'_>) -> Result<Option<i32>, postgres::Error> {
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass('logward.schema_version') IS NOT NULL",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(None);
    }
    tx.query_one("SELECT max(version) FROM logward.schema_version", &[])
        .map(|r| r.get(0))
}

/// Checks that the database holds the schema this build writes.
pub fn check(fleet: &mut Fleet) -> Result<(), FleetError> {
    let server = fleet.server.clone();
    let mut tx = fleet
        .client
        .transaction()
        .map_err(|source| FleetError::Sql {
            server: server.clone(),
            what: "BEGIN",
            source,
        })?;
    let found = version_in(&mut tx).map_err(|source| FleetError::Sql {
        server: server.clone(),
        what: "reading the schema version",
        source,
    })?;
    match found {
        None => Err(FleetError::NoSchema { server }),
        Some(v) if v > VERSION => Err(FleetError::NewerSchema { server, found: v }),
        Some(v) if v < VERSION => Err(FleetError::OlderSchema { server, found: v }),
        Some(_) => Ok(()),
    }
}
