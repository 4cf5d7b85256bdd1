//! An error printed with its causes: [`chain`] writes `what failed: cause: cause`, each
//! cause once. logward's error types say what failed and where in `Display` and give the
//! cause from `source()` only, so whoever prints one for a person (the binary, a per-file
//! report, a log line of `watch`) prints the chain, never `Display` alone. It does not
//! decide what an error says: each error type does.

use std::error::Error;
use std::fmt;

/// `error` and its causes, `: `-separated, as `anyhow`'s `{:#}` writes them.
///
/// A cause is left out when its text ends the previous one's, or the previous one's text
/// ends it: some dependencies put their cause in their own message as well as in
/// `source()` (the PostgreSQL client's "db error: ERROR: ..."), or a cause that only adds
/// a code to the same words (SQLite's "file is not a database", then "Error code 26: file
/// is not a database"), and a reader should see each reason once.
pub fn chain<'a>(error: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain(error)
}

/// See [`chain`].
#[derive(Clone, Copy)]
pub struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            let repeated = shown.ends_with(&text) || (!shown.is_empty() && text.ends_with(&shown));
            if !repeated {
                write!(f, ": {text}")?;
                shown = text;
            }
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// What failed and where, with the cause from `source()` only.
    #[derive(Debug)]
    struct Outer(io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a.log: cannot open")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    /// The other convention: the cause in `Display` and in `source()`.
    #[derive(Debug)]
    struct Both(Outer);

    impl fmt::Display for Both {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "db error: {}", self.0)
        }
    }

    impl Error for Both {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    fn denied() -> io::Error {
        io::Error::from(io::ErrorKind::PermissionDenied)
    }

    #[test]
    fn every_cause_follows_once() {
        let e = Outer(denied());
        assert_eq!(
            chain(&e).to_string(),
            format!("a.log: cannot open: {}", denied())
        );
        assert_eq!(chain(&denied()).to_string(), denied().to_string());
    }

    /// A cause that says what its parent said, with a code in front.
    #[derive(Debug)]
    struct Coded;

    impl fmt::Display for Coded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Error code 26: file is not a database")
        }
    }

    impl Error for Coded {}

    #[derive(Debug)]
    struct Sqlite(Coded);

    impl fmt::Display for Sqlite {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("file is not a database")
        }
    }

    impl Error for Sqlite {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_that_repeats_its_parent_with_a_code_is_left_out() {
        assert_eq!(chain(&Sqlite(Coded)).to_string(), "file is not a database");
    }

    #[test]
    fn a_cause_already_in_its_parents_message_is_not_repeated() {
        let e = Both(Outer(denied()));
        assert_eq!(
            chain(&e).to_string(),
            format!("db error: a.log: cannot open: {}", denied())
        );
    }
}
