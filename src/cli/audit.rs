//! `logward audit verify --source IP`: tells an auditor which audit entries concern an
//! address, though the log holds only keyed hashes; `logward audit migrate` rewrites the
//! entries of earlier versions at once (any command that appends does it too).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{Config, Outcome, state};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the entries that concern an address or a network (exit 1 when none does).
    Verify {
        /// The address or network as given in the request (any spelling of it).
        #[arg(long = "source", value_name = "IP|CIDR", required = true)]
        sources: Vec<String>,

        /// The store; the audit log is in the state directory beside it.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
    },
    /// Rewrite entries of earlier versions (sources in clear, CBC-MAC values labelled
    /// `hmac:`) now, through an atomic replace.
    Migrate {
        /// The store; the audit log is in the state directory beside it.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
    },
}

pub fn run(args: AuditArgs, config: &Config) -> Result<Outcome> {
    let mut out = std::io::stdout().lock();
    match args.command {
        AuditCommand::Verify { sources, store } => {
            let log = state::audit_log(&state::state_dir(store.as_deref(), config)?, config)?;
            log.migrate()?;
            let mut found = 0;
            for source in &sources {
                for (line, entry) in log.verify(source)? {
                    found += 1;
                    // Who and why, where the entry records a decision (`allow add`),
                    // which reads no file.
                    let command = entry["command"].as_str().unwrap_or("-");
                    let read = if command.starts_with("allow") {
                        String::new()
                    } else {
                        format!(
                            ": {} files, {} lines",
                            entry["files"].as_array().map_or(0, Vec::len),
                            entry["lines"].as_u64().unwrap_or(0)
                        )
                    };
                    let mut who = String::new();
                    if let Some(user) = entry["user"].as_str() {
                        who.push_str(&format!(" by {}", logward::escape::text(user.as_bytes())));
                    }
                    if let Some(note) = entry["note"].as_str() {
                        who.push_str(&format!(": {}", logward::escape::text(note.as_bytes())));
                    }
                    writeln!(
                        out,
                        "{}:{line}: {} {} {}{read}{}{who}",
                        log.path().display(),
                        entry["time"].as_str().unwrap_or("-"),
                        logward::escape::text(command.as_bytes()),
                        logward::escape::text(source.as_bytes()),
                        entry["notes"]
                            .as_array()
                            .map(|n| {
                                let notes: Vec<String> = n
                                    .iter()
                                    .filter_map(|s| s.as_str())
                                    .map(|s| logward::escape::text(s.as_bytes()))
                                    .collect();
                                format!(" ({})", notes.join("; "))
                            })
                            .unwrap_or_default()
                    )?;
                }
            }
            if found == 0 {
                eprintln!("logward: no audit entry concerns {}", sources.join(", "));
                return Ok(Outcome::Found);
            }
            Ok(Outcome::Success)
        }
        AuditCommand::Migrate { store } => {
            let log = state::audit_log(&state::state_dir(store.as_deref(), config)?, config)?;
            let n = log.migrate()?;
            writeln!(
                out,
                "{}: {} rewritten",
                log.path().display(),
                super::count(n as u64, "entry", "entries")
            )?;
            Ok(Outcome::Success)
        }
    }
}
