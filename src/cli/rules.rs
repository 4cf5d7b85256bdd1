//! `logward rules`: prints the rule set a run would use (built-ins, the config's rule
//! tables, `--rules FILE`) with thresholds, so a rules file can be checked before use.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::{Config, Outcome, detection};

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// A TOML rules file to apply on top of the built-ins.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

pub fn run(args: RulesArgs, config: &Config) -> Result<Outcome> {
    let set = detection::rule_set(args.rules.as_deref(), config)?;
    // Compiling checks every pattern and regex as a real run would.
    logward::detect::CompiledRules::new(&set)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{set}")?;
    out.flush()?;
    Ok(Outcome::Success)
}
