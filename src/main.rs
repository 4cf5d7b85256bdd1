//! The `logward` binary: runs the command line and maps the outcome to an exit code. A
//! closed pipe (`logward ... | head`) ends the run quietly with success. An error is
//! printed with its causes, each once (`logward::error::chain`).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(err) => {
            if cli::broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("logward: {}", logward::error::chain(err.as_ref()));
            ExitCode::from(cli::Outcome::Error as u8)
        }
    }
}
