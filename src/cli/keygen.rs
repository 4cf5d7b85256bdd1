//! `logward keygen FILE`: writes a new random pseudonymization key (mode 0600) for
//! `anonymize --mode pseudonymize`, refusing to overwrite an existing file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use logward::anonymize::generate_key_file;

use super::Outcome;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key. An existing file is never replaced: every pseudonym made
    /// with the old key would stop matching the new ones.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(args: KeygenArgs) -> Result<Outcome> {
    generate_key_file(&args.file)?;
    eprintln!(
        "logward: wrote a new key to {} (mode 0600); keep a copy somewhere safe",
        args.file.display()
    );
    Ok(Outcome::Success)
}
