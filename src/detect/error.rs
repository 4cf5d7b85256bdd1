//! `RuleError`: everything that can be wrong with a rules file or a rule set, each variant
//! naming the file, and where it can, the line, the rule and the field. A file that cannot
//! be read gives the operating system's reason as the `source()`, not in the message.

use std::fmt;
use std::path::PathBuf;

/// A rules file or rule set that cannot be used.
#[derive(Debug)]
pub enum RuleError {
    /// The rules file could not be read.
    Io {
        /// The rules file.
        path: PathBuf,
        /// The error reading it.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type or an unknown key.
    Syntax {
        /// The rules or config file.
        path: PathBuf,
        /// The line (from 1) the TOML parser points at, when it does.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A value is well-typed but unusable (a bad regex, a zero leak, a prefix past 128...).
    Invalid {
        /// The rules or config file.
        path: PathBuf,
        /// The line (from 1) of the value or, when that is not known, of its rule's table.
        line: Option<usize>,
        /// The rule's name.
        rule: String,
        /// The key of the value (`leak`, `path_contains`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A rule built in code (not from a file) does not compile.
    Compile {
        /// The rule's name, or `(all)` when no single rule is to blame.
        rule: String,
        /// What failed to build (`path_regex`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// More enabled rules or filters than the engine's 64-bit masks hold.
    TooMany {
        /// What there are too many of: `rules` or `filters`.
        what: &'static str,
        /// How many are enabled.
        count: usize,
        /// The most the engine supports.
        max: usize,
    },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>, path: &PathBuf, line: &Option<usize>| match line {
            Some(line) => write!(f, "{}:{line}: ", path.display()),
            None => write!(f, "{}: ", path.display()),
        };
        match self {
            RuleError::Io { path, .. } => {
                write!(f, "{}: cannot read the rules file", path.display())
            }
            RuleError::Syntax {
                path,
                line,
                message,
            } => {
                at(f, path, line)?;
                write!(f, "{message}")
            }
            RuleError::Invalid {
                path,
                line,
                rule,
                field,
                message,
            } => {
                at(f, path, line)?;
                write!(f, "rule `{rule}`, field `{field}`: {message}")
            }
            RuleError::Compile {
                rule,
                field,
                message,
            } => write!(f, "rule `{rule}`, field `{field}`: {message}"),
            RuleError::TooMany { what, count, max } => {
                write!(f, "{count} enabled {what}, at most {max} are supported")
            }
        }
    }
}

impl std::error::Error for RuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuleError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_file_gives_its_reason_as_the_source() {
        let e = RuleError::Io {
            path: "rules.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let reason = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
        assert_eq!(e.to_string(), "rules.toml: cannot read the rules file");
        assert_eq!(
            std::error::Error::source(&e).map(ToString::to_string),
            Some(reason.clone())
        );
        assert_eq!(
            crate::error::chain(&e).to_string(),
            format!("rules.toml: cannot read the rules file: {reason}")
        );
    }
}
