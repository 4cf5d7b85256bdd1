//! The `logward` binary: parses the command line and maps the outcome to an exit code.

fn main() {
    println!("logward");
}
