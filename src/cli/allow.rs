//! `logward allow add|list|remove`: the persistent allowlist kept in the store, for false
//! positives (a customer's office NAT). Parsing, printing and the audit entries only: the
//! table, the ending of bans and the generation `watch` polls are `store::allowlist`'s.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use logward::audit::Entry;
use logward::escape;
use logward::store::export::JSON_SCHEMA_VERSION;
use logward::store::{AllowedNet, net};
use logward::timefmt::{rfc3339, unix_now};
use serde_json::json;

use super::OutputKind;
use super::{Config, Outcome, count, state};

#[derive(Debug, Args)]
pub struct AllowArgs {
    #[command(subcommand)]
    pub command: AllowCommand,
}

#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Never flag these addresses or networks again; end their bans now.
    ///
    /// `scan` and `watch` never flag a source inside an allowed network, nor a wider
    /// source (an IPv6 /64) that holds one. The active bans of every flagged entry that
    /// lies inside one of the networks or contains one end at once, so no export
    /// (`flagged -o nftables|ipset|crowdsec`) lists them; their history is kept. A running
    /// `logward watch` on the same store reloads the allowlist within a second and takes
    /// the sources it banned out of its nftables set. Adding a network already listed
    /// replaces its note. The audit log records the networks (as keyed hashes), the note
    /// and the user ($SUDO_USER, else $USER or $LOGNAME, else the uid).
    Add {
        /// An address (its /32 or /128) or a network such as 192.0.2.0/24.
        #[arg(value_name = "IP|CIDR", required = true)]
        networks: Vec<String>,

        /// Why they are allowed (a ticket, a customer): kept with each entry and in the
        /// audit log. Required.
        #[arg(long, value_name = "TEXT", required = true)]
        note: String,

        /// The store (see `logward scan --help`).
        #[arg(long, value_name = "PATH")]
        store: Option<PathBuf>,
    },

    /// Print the allowlist: network, when and by whom it was added, and why.
    List {
        /// Output: a table (text), or one JSON object per line (json) with
        /// schema_version, network, note, added_by and added_at. [default: text]
        #[arg(long, short = 'o', value_enum)]
        output: Option<OutputKind>,

        /// The store (see `logward scan --help`).
        #[arg(long, value_name = "PATH")]
        store: Option<PathBuf>,
    },

    /// Delete allowlist entries; their sources can be flagged again.
    ///
    /// Give each entry as listed (an address stands for its /32 or /128; any spelling of
    /// the same network does): an address inside a listed network is not an entry. When
    /// one is not in the list, the error names it and nothing is removed. Bans that `allow
    /// add` ended are not restored. A running `logward watch` reloads the allowlist within
    /// a second. The audit log records the networks (as keyed hashes) and the user.
    Remove {
        /// The entries to delete.
        #[arg(value_name = "IP|CIDR", required = true)]
        networks: Vec<String>,

        /// The store (see `logward scan --help`).
        #[arg(long, value_name = "PATH")]
        store: Option<PathBuf>,
    },
}

pub fn run(args: AllowArgs, config: &Config) -> Result<Outcome> {
    match args.command {
        AllowCommand::Add {
            networks,
            note,
            store,
        } => add(&networks, &note, store, config),
        AllowCommand::List { output, store } => list(output, store, config),
        AllowCommand::Remove { networks, store } => remove(&networks, store, config),
    }
}

/// The networks given, canonical (an address is its /32 or /128, host bits cleared), each
/// once, in the order given.
fn parse_networks(texts: &[String]) -> Result<Vec<IpNet>> {
    let mut nets: Vec<IpNet> = Vec::with_capacity(texts.len());
    for text in texts {
        let net = super::detection::parse_net(text).ok_or_else(|| {
            anyhow!(
                "\"{}\" is not an address or a network such as 192.0.2.0/24",
                escape::text(text.as_bytes())
            )
        })?;
        let net = net::canonical(net);
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// The keyed hashes of `nets` for the audit log, made before anything changes, so a key
/// that cannot be used stops the command first.
fn audit_sources(audit: &logward::audit::AuditLog, nets: &[IpNet]) -> Result<Vec<String>> {
    nets.iter()
        .map(|n| {
            audit
                .hash_source(&n.to_string())
                .context("the change cannot be recorded in the audit log; nothing was changed")
        })
        .collect()
}

fn add(texts: &[String], note: &str, store: Option<PathBuf>, config: &Config) -> Result<Outcome> {
    let note = note.trim();
    if note.is_empty() {
        bail!("--note: say why these sources are allowed (a ticket, a customer)");
    }
    let nets = parse_networks(texts)?;
    let user = logward::audit::current_user();
    let path = state::store_path(store.as_deref(), config)?;
    let state_dir = state::state_dir(store.as_deref(), config)?;
    let audit = state::audit_log(&state_dir, config)?;
    let sources = audit_sources(&audit, &nets)?;
    let mut store = state::open_store(&path)?;
    let now = unix_now();
    let done = store.allow_add(&nets, note, &user, now)?;
    let mut out = std::io::stdout().lock();
    for n in &done.added {
        writeln!(out, "allowed {}", net::display(*n))?;
    }
    for n in &done.updated {
        writeln!(
            out,
            "allowed {} (already listed: note replaced)",
            net::display(*n)
        )?;
    }
    for n in &done.unbanned {
        writeln!(out, "unbanned {}", net::display(*n))?;
    }
    let summary = format!(
        "allowed {}, unbanned {}",
        count(nets.len() as u64, "network", "networks"),
        count(done.unbanned.len() as u64, "entry", "entries")
    );
    writeln!(out, "{summary}")?;
    out.flush()?;
    let mut notes = vec![summary];
    if !done.updated.is_empty() {
        notes.push(format!(
            "{} already listed: note replaced",
            count(done.updated.len() as u64, "network was", "networks were")
        ));
    }
    audit
        .append(&Entry {
            time: rfc3339(now),
            command: "allow add",
            sources,
            files: vec![],
            lines: 0,
            notes,
            user: Some(user),
            note: Some(note.to_string()),
        })
        .context("the allowlist was changed, but the change is not in the audit log")?;
    Ok(Outcome::Success)
}

fn list(output: Option<OutputKind>, store: Option<PathBuf>, config: &Config) -> Result<Outcome> {
    let output = super::output_setting(output, config)?;
    let path = state::store_path(store.as_deref(), config)?;
    // No store yet: nothing is allowed, and listing creates nothing.
    let entries = if path.exists() {
        state::open_store(&path)?.allowlist()?
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout().lock();
    match output {
        // One object per line either way.
        OutputKind::Json | OutputKind::Ndjson => {
            for e in &entries {
                serde_json::to_writer(&mut out, &entry_json(e))?;
                writeln!(out)?;
            }
        }
        OutputKind::Text => table(&mut out, &entries)?,
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn entry_json(e: &AllowedNet) -> serde_json::Value {
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "network": e.net.to_string(),
        "note": e.note,
        "added_by": e.added_by,
        "added_at": rfc3339(e.added_at),
    })
}

/// Aligned columns; the note comes last and is not padded. Notes and user names are
/// typed by people, so they are escaped for the terminal.
fn table(out: &mut dyn Write, entries: &[AllowedNet]) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            [
                net::display(e.net),
                rfc3339(e.added_at),
                escape::text(e.added_by.as_bytes()),
                escape::text(e.note.as_bytes()),
            ]
        })
        .collect();
    let header = ["NETWORK", "ADDED", "BY", "NOTE"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: [&str; 4]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 3 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(header)?;
    for r in &rows {
        line(r.each_ref().map(String::as_str))?;
    }
    Ok(())
}

fn remove(texts: &[String], store: Option<PathBuf>, config: &Config) -> Result<Outcome> {
    let nets = parse_networks(texts)?;
    let user = logward::audit::current_user();
    let path = state::store_path(store.as_deref(), config)?;
    let absent = if path.exists() {
        let state_dir = state::state_dir(store.as_deref(), config)?;
        let audit = state::audit_log(&state_dir, config)?;
        let sources = audit_sources(&audit, &nets)?;
        let mut store = state::open_store(&path)?;
        let absent = store.allow_remove(&nets)?;
        if absent.is_empty() {
            let summary = format!(
                "removed {} from the allowlist",
                count(nets.len() as u64, "network", "networks")
            );
            let mut out = std::io::stdout().lock();
            for n in &nets {
                writeln!(out, "removed {}", net::display(*n))?;
            }
            writeln!(out, "{summary}")?;
            out.flush()?;
            audit
                .append(&Entry {
                    time: rfc3339(unix_now()),
                    command: "allow remove",
                    sources,
                    files: vec![],
                    lines: 0,
                    notes: vec![summary],
                    user: Some(user),
                    note: None,
                })
                .context("the allowlist was changed, but the change is not in the audit log")?;
            return Ok(Outcome::Success);
        }
        absent
    } else {
        nets
    };
    let names: Vec<String> = absent.iter().map(|n| net::display(*n)).collect();
    bail!(
        "{}: {} not in the allowlist (`logward allow list` shows the entries, given exactly); \
         nothing was removed",
        path.display(),
        if names.len() == 1 {
            format!("{} is", names[0])
        } else {
            format!("{} are", names.join(", "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_canonical_and_given_once() {
        let got = parse_networks(&[
            "192.0.2.7".into(),
            "::ffff:192.0.2.7".into(),
            "10.1.2.3/8".into(),
            " 2001:db8::1 ".into(),
        ])
        .unwrap();
        let want: Vec<IpNet> = ["192.0.2.7/32", "10.0.0.0/8", "2001:db8::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        let err = parse_networks(&["example.org".into()]).unwrap_err();
        assert!(err.to_string().contains("example.org"), "{err}");
    }

    #[test]
    fn table_escapes_notes_and_aligns() {
        let entries = vec![
            AllowedNet {
                net: "192.0.2.7/32".parse().unwrap(),
                note: "office \x1b[31mNAT".into(),
                added_by: "alice".into(),
                added_at: 1_795_322_356,
            },
            AllowedNet {
                net: "2001:db8:100::/48".parse().unwrap(),
                note: "monitoring".into(),
                added_by: "bob".into(),
                added_at: 1_795_322_356,
            },
        ];
        let mut buf = Vec::new();
        table(&mut buf, &entries).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NETWORK            ADDED"), "{text}");
        assert!(lines[1].starts_with("192.0.2.7          2026-"), "{text}");
        assert!(lines[1].ends_with("alice  office \\x1b[31mNAT"), "{text}");
        assert!(!text.contains('\x1b'));
        let col = lines[0].find("NOTE").unwrap();
        assert_eq!(&lines[2][col..], "monitoring");
    }
}
