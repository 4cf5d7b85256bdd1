//! `logward man DIR` and `logward completions SHELL`: manual pages (one per command,
//! `logward-scan(1)`...) and shell completions, made from the same clap definitions as
//! `--help`, so they list every option the binary takes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing): logward.1 and one
    /// logward-COMMAND.1 per command, for /usr/share/man/man1.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell. The script goes to standard output: for
    /// bash, into /usr/share/bash-completion/completions/logward.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the manual pages into `args.dir`.
pub fn man(args: ManArgs) -> Result<Outcome> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.dir)
        .with_context(|| format!("writing manual pages into {}", args.dir.display()))?;
    Ok(Outcome::Success)
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: CompletionsArgs) -> Result<Outcome> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "logward", &mut out);
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's long options, by the page name clap_mangen gives it.
    fn pages(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<String>)>) {
        let longs = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        out.push((name.to_owned(), longs));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            pages(sub, &format!("{name}-{}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_has_a_page_that_lists_each_of_its_options() {
        let dir = tempfile::tempdir().unwrap();
        man(ManArgs {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let mut want = Vec::new();
        pages(&cmd, "logward", &mut want);
        assert!(want.len() > 10, "{want:?}");
        for (page, longs) in want {
            let path = dir.path().join(format!("{page}.1"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // roff writes a dash as `\-`.
            for long in longs {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(text.contains(&roff), "{page}.1 lacks --{long}");
            }
        }
    }
}
