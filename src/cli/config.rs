//! The optional TOML configuration file: found from `--config`, else `$LOGWARD_CONFIG`, else
//! `/etc/logward/logward.toml` when present. Every long option that is a setting has a key
//! of the same name (with `_` for `-`); options that describe one request (query filters,
//! erasure sources, `--now`) have none. The command line wins over the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The system-wide configuration file, read when present.
pub const SYSTEM_CONFIG: &str = "/etc/logward/logward.toml";

/// Keys of the configuration file. Unknown keys are an error, so a typo is never ignored.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Config {
    pub format: Option<String>,
    pub threads: Option<usize>,
    pub output: Option<String>,
    pub store: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    pub allow: Option<Vec<String>>,
    pub allow_file: Option<PathBuf>,
    /// Search engines' published ranges, `NAME=FILE` (`--crawler-ranges`).
    pub crawler_ranges: Option<Vec<String>>,
    /// Proxies whose X-Forwarded-For is trusted (`--trusted-proxy`).
    pub trusted_proxies: Option<Vec<String>>,
    /// The key of the audit log's hashes; kept apart from the state directory.
    pub audit_key: Option<PathBuf>,
    /// The longest line read whole (`--max-line`), such as "1MiB".
    pub max_line: Option<String>,
    /// `false` drops the built-in loopback allowlist (as `--no-default-allow`).
    pub default_allow: Option<bool>,
    pub geoip: Option<PathBuf>,
    pub asn: Option<PathBuf>,
    pub ban: Option<String>,
    pub max_ban: Option<String>,
    pub ban_window: Option<String>,
    pub older_than: Option<String>,
    pub mode: Option<String>,
    pub ipv4_prefix: Option<u8>,
    pub ipv6_prefix: Option<u8>,
    pub strict: Option<bool>,
    pub key_file: Option<PathBuf>,
    pub gzip_level: Option<u32>,
    pub include_active: Option<bool>,
    pub whole_line: Option<bool>,
    pub dry_run: Option<bool>,
    pub check: Option<bool>,
    pub verbose: Option<bool>,
    pub missing_ok: Option<bool>,
    pub no_progress: Option<bool>,
    pub no_detect: Option<bool>,
    pub fail_on_flag: Option<bool>,
    /// Truncate the addresses of the HTML report (`report --mask`, `scan --mask`).
    pub mask: Option<bool>,
    pub no_store: Option<bool>,
    pub rescan: Option<bool>,
    pub from_start: Option<bool>,
    pub count: Option<bool>,
    pub no_filename: Option<bool>,
    /// `logward flagged --prune`: how long entries are kept (`--keep`).
    pub keep: Option<String>,
    pub interval: Option<String>,
    pub on_flag: Option<String>,
    pub nft_set: Option<String>,
    pub status_every: Option<String>,
    /// The node_exporter textfile `scan`, `anonymize`, `search` and `flagged --prune`
    /// write their metrics into (`--metrics-file`).
    pub metrics_file: Option<PathBuf>,
    /// Where `watch` serves `/metrics` (`--metrics-listen`), such as "127.0.0.1:9321".
    pub metrics_listen: Option<String>,
    /// Inline rule changes: `[rule.NAME]` tables, as in a rules file.
    pub rule: Option<toml::Table>,
    /// The `[fleet]` table: the shared PostgreSQL store (`--fleet-*` options).
    pub fleet: Option<FleetTable>,
    /// Where the file was read from, for messages.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The file's text, so errors in its `[rule.NAME]` tables name their own lines.
    #[serde(skip)]
    pub text: Option<String>,
}

/// The `[fleet]` table; its keys are the `--fleet-*` options without the prefix, and
/// `keep_erasures` (`fleet erasures --keep`).
#[derive(Debug, Default, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FleetTable {
    /// `postgres://USER@HOST:PORT/DATABASE`, without a password.
    pub url: Option<String>,
    /// The login's password, first line of a file of mode 0600.
    pub password_file: Option<PathBuf>,
    /// The CA certificates (PEM) the server's certificate is checked against.
    pub ca_file: Option<PathBuf>,
    /// This server's name in the fleet (default: the host name).
    pub host: Option<String>,
    /// Servers that must flag a source for a fleet ban (fleet rule).
    pub min_hosts: Option<u32>,
    /// `logward fleet erasures --prune`: how long requests every server carried out are
    /// kept (`--keep`).
    pub keep_erasures: Option<String>,
}

impl Config {
    /// Loads the configuration: an explicit file must exist; the system file is optional.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let from_env = std::env::var_os("LOGWARD_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (path, required) = match (explicit, from_env) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (p, true),
            (None, None) => (PathBuf::from(SYSTEM_CONFIG), false),
        };
        if !required && !path.exists() {
            return Ok(Config::default());
        }
        Config::read(&path)
    }

    pub fn read(path: &Path) -> Result<Config> {
        let text = std::fs::read(path)
            .with_context(|| format!("{}: cannot read the config file", path.display()))?;
        let Ok(text) = String::from_utf8(text) else {
            bail!("{}: the config file is not UTF-8 text", path.display());
        };
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let value: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => anyhow::anyhow!("{}:{line}: {}", path.display(), e.message()),
                None => anyhow::anyhow!("{}: {}", path.display(), e.message()),
            }
        })?;
        if value.get("rules").is_some_and(toml::Value::is_table) {
            bail!(
                "{}:{}: key rules: names a rules file (rules = \"/etc/logward/rules.toml\"); \
                 rule tables are written [rule.NAME], in the config file as in rules files",
                path.display(),
                key_line(text, "rules").unwrap_or(1)
            );
        }
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let key = line.and_then(|l| key_on_line(text, l));
            let what = in_words(e.message().trim());
            match (line, key) {
                (Some(line), Some(key)) => {
                    anyhow::anyhow!("{}:{line}: key {key}: {what}", path.display())
                }
                (Some(line), None) => anyhow::anyhow!("{}:{line}: {what}", path.display()),
                _ => anyhow::anyhow!("{}: {what}", path.display()),
            }
        })?;
        config.check_values(text, path)?;
        config.path = Some(path.to_path_buf());
        config.text = Some(text.to_string());
        Ok(config)
    }

    /// Checks the values whose type alone does not make them valid, so a mistake is
    /// reported with the file, line and key rather than later as a command-line option.
    fn check_values(&self, text: &str, path: &Path) -> Result<()> {
        let at = |key: &str| {
            format!(
                "{}:{}: key {key}",
                path.display(),
                key_line(text, key).unwrap_or(1)
            )
        };
        self.check_durations(&at)?;
        self.check_choices(&at)?;
        self.check_prefixes(&at)?;
        self.check_line_reading(&at)?;
        if let Some(fleet) = &self.fleet {
            fleet.check(&at)?;
        }
        if let Some(addr) = &self.metrics_listen
            && addr.trim().parse::<std::net::SocketAddr>().is_err()
        {
            bail!(
                "{}: {addr:?} is not an address and port such as 127.0.0.1:9321 or [::1]:9321",
                at("metrics_listen")
            );
        }
        if let Some(level) = self.gzip_level
            && level > 9
        {
            bail!(
                "{}: {level} is not a gzip level from 0 to 9",
                at("gzip_level")
            );
        }
        Ok(())
    }

    /// Checks the durations (and watch's interval); `at` names a key's place in the file.
    fn check_durations(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        for (key, value) in [
            ("older_than", &self.older_than),
            ("ban", &self.ban),
            ("max_ban", &self.max_ban),
            ("ban_window", &self.ban_window),
            ("keep", &self.keep),
            ("status_every", &self.status_every),
        ] {
            if let Some(v) = value
                && logward::timefmt::parse_duration(v).is_none()
            {
                bail!(
                    "{}: {v:?} is not a duration; write a number and a unit, such as 90m, 36h, 7d or 2w",
                    at(key)
                );
            }
        }
        // watch's interval also takes milliseconds, as --interval does.
        if let Some(v) = &self.interval
            && logward::timefmt::parse_interval(v).is_none()
        {
            bail!(
                "{}: {v:?} is not an interval; write a number and a unit, such as 250ms, 1s or 1m",
                at("interval")
            );
        }
        Ok(())
    }

    /// Checks the keys that take one of a few words: mode and output.
    fn check_choices(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        for (key, value, allowed) in [
            ("mode", &self.mode, &["truncate", "pseudonymize"][..]),
            ("output", &self.output, &["text", "json"][..]),
        ] {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                bail!("{}: {v:?} is not one of {}", at(key), allowed.join(", "));
            }
        }
        Ok(())
    }

    /// Checks that the truncation prefixes fit in an address of their family.
    fn check_prefixes(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        if let Some(bits) = self.ipv4_prefix
            && bits > 32
        {
            bail!(
                "{}: {bits} is more than the 32 bits of an IPv4 address",
                at("ipv4_prefix")
            );
        }
        if let Some(bits) = self.ipv6_prefix
            && bits > 128
        {
            bail!(
                "{}: {bits} is more than the 128 bits of an IPv6 address",
                at("ipv6_prefix")
            );
        }
        Ok(())
    }

    /// Checks how lines are read: the log format and the longest line.
    fn check_line_reading(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        if let Some(f) = &self.format
            && let Err(e) = logward::format::FormatSpec::parse(f)
        {
            return Err(anyhow::Error::new(e).context(at("format")));
        }
        if let Some(size) = &self.max_line
            && crate::cli::parse_size(size).is_none()
        {
            bail!(
                "{}: {size:?} is not a size such as 1MiB or 262144",
                at("max_line")
            );
        }
        Ok(())
    }
}

impl FleetTable {
    /// Checks the `[fleet]` keys whose type alone does not make them valid; `at` names a
    /// key's place in the file.
    fn check(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        if let Some(url) = &self.url
            && let Err(e) = logward::fleet::connect::parse_url(url)
        {
            return Err(anyhow::Error::new(e).context(at("url")));
        }
        if self.min_hosts == Some(0) {
            bail!("{}: 0 servers; write 1 or more", at("min_hosts"));
        }
        if let Some(keep) = &self.keep_erasures
            && logward::timefmt::parse_duration(keep).is_none()
        {
            bail!(
                "{}: {keep:?} is not a duration such as 30d or 12h",
                at("keep_erasures")
            );
        }
        if self
            .host
            .as_deref()
            .is_some_and(|h| !logward::fleet::valid_host(h))
        {
            bail!(
                "{}: a host name is 1 to 63 letters, digits and . _ -",
                at("host")
            );
        }
        Ok(())
    }
}

/// The 1-based line where `key = ...` is set (at the top level), if it is.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The key set on a 1-based line (`key = value`), or the table a `[header]` names.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim();
    if let Some(header) = l.strip_prefix('[') {
        return Some(
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let (key, _) = l.split_once('=')?;
    Some(key.trim().trim_matches('"').to_string()).filter(|k| !k.is_empty())
}

/// Turns serde's type names into words: "expected usize" becomes "expected a whole number".
fn in_words(message: &str) -> String {
    let mut out = message.replace("invalid type: ", "");
    for (rust, words) in [
        ("expected usize", "expected a whole number such as 4"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected a string", "expected text in quotes"),
        (
            "expected a sequence",
            "expected a list such as [\"a\", \"b\"]",
        ),
        ("expected a path", "expected a file path in quotes"),
    ] {
        out = out.replace(rust, words);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package's commented /etc/logward/logward.toml: as shipped it sets nothing, and
    /// with every `#key = value` line uncommented each key exists and each value is valid.
    #[test]
    fn the_packaged_config_is_valid_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/logward.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let shipped = Config::parse(&text, &path).unwrap();
        assert!(shipped.store.is_none() && shipped.older_than.is_none());
        let mut keys = 0;
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.split(" = ").count() == 2 && !rest.starts_with(' ') => {
                    keys += 1;
                    format!("{rest}\n")
                }
                // A table's header.
                Some(rest) if rest.starts_with('[') => format!("{rest}\n"),
                _ => format!("{line}\n"),
            })
            .collect();
        assert!(keys >= 20, "{keys} keys");
        let all = Config::parse(&uncommented, &path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(all.older_than.as_deref(), Some("7d"));
        assert_eq!(all.interval.as_deref(), Some("250ms"));
        let fleet = all.fleet.expect("the [fleet] table");
        assert_eq!(fleet.min_hosts, Some(1));
        assert_eq!(fleet.keep_erasures.as_deref(), Some("30d"));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = Config::parse(
            "format = \"combined\"\nthreds = 2\n",
            Path::new("/etc/x.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/x.toml:2: "), "{msg}");
        assert!(msg.contains("threds"), "{msg}");
        let err = Config::parse("threads = \"two\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().starts_with("c.toml:1: "), "{err}");
    }

    /// Regression: value errors spoke Rust ("expected usize"), and a bad older_than was
    /// reported later as --older-than without file or line.
    #[test]
    fn value_errors_name_file_line_and_key_in_words() {
        let err = Config::parse(
            "format = \"combined\"\nthreads = \"many\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.toml:2: key threads: "), "{err}");
        assert!(
            err.contains("whole number") && !err.contains("usize"),
            "{err}"
        );
        let err = Config::parse("\nolder_than = \"7x\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:2: key older_than: \"7x\" is not a duration"),
            "{err}"
        );
        let err = Config::parse("mode = \"hash\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml:1: key mode:") && err.contains("pseudonymize"),
            "{err}"
        );
    }

    #[test]
    fn metrics_keys_are_read_and_checked() {
        let c = Config::parse(
            "metrics_file = \"/var/lib/prometheus/node-exporter/logward.prom\"\nmetrics_listen = \"[::1]:9321\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(c.metrics_file.is_some() && c.metrics_listen.is_some());
        let err = Config::parse("\nmetrics_listen = \"localhost\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "c.toml:2: key metrics_listen: \"localhost\" is not an address and port"
            ),
            "{err}"
        );
    }

    /// Regression: the config file took `[rule.NAME]` and rules files `[rules.NAME]`; one
    /// name now serves both, and the other spelling in a config file says which to use.
    #[test]
    fn rule_tables_have_one_name() {
        let text = "threads = 2\n\n[rule.http-flood]\ncapacity = 5\nleak = \"fast\"\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        let err = crate::cli::detection::rule_set(None, &c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains(":5"), "{err}");
        let err = Config::parse("[rules.http-flood]\ncapacity = 5\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml:1: key rules") && err.contains("[rule.NAME]"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.toml");
        std::fs::write(&file, "[rule.http-flood]\ncapacity = 5\nleak = \"1s\"\n").unwrap();
        let set = crate::cli::detection::rule_set(Some(&file), &Config::default()).unwrap();
        assert_eq!(set.get("http-flood").unwrap().capacity, 5);
    }

    #[test]
    fn keys_are_read() {
        let c = Config::parse(
            "format = \"json\"\nthreads = 3\nallow = [\"10.0.0.0/8\"]\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(c.format.as_deref(), Some("json"));
        assert_eq!(c.threads, Some(3));
        assert_eq!(c.allow.unwrap().len(), 1);
    }

    /// Options that describe one request, not a setting (README, "Configuration file").
    const NO_KEY: &[(&str, &str)] = &[
        ("*", "config"),
        ("*", "help"),
        ("search", "source"),
        ("search", "since"),
        ("search", "until"),
        ("search", "vhost"),
        ("search", "evidence"),
        ("flagged", "since"),
        ("flagged", "until"),
        ("flagged", "rule"),
        ("flagged", "country"),
        ("flagged", "asn"),
        ("flagged", "active"),
        ("flagged", "prune"),
        ("flagged", "dry-run"),
        ("flagged", "delete"),
        ("flagged", "unban"),
        ("flagged", "vhost"),
        ("flagged", "sort"),
        ("flagged", "limit"),
        ("flagged", "summary"),
        ("flagged", "explain"),
        ("flagged", "fleet"),
        ("unban", "*"),
        ("audit", "*"),
        ("allow add", "note"),
        ("flagged", "format"),
        ("anonymize", "source"),
        ("anonymize", "now"),
        ("anonymize", "fleet"),
        ("anonymize", "ticket"),
        ("fleet erasures", "prune"),
        ("generate", "*"),
        ("report", "output"),
        ("scan", "report"),
    ];

    /// Calls `f` with every command (nested ones such as `allow add` too, named by their
    /// path), each of its options shown in help, that option's long name, and whether it
    /// describes a request (in `NO_KEY`) rather than a setting.
    fn for_each_visible_option(mut f: impl FnMut(&str, &clap::Command, &clap::Arg, &str, bool)) {
        use clap::CommandFactory;
        fn visit(
            path: &str,
            cmd: &clap::Command,
            f: &mut dyn FnMut(&str, &clap::Command, &clap::Arg, &str, bool),
        ) {
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long().filter(|_| !arg.is_hide_set()) else {
                    continue;
                };
                let exempt = NO_KEY.iter().any(|(c, o)| {
                    let command = *c == "*" || *c == path || path.starts_with(&format!("{c} "));
                    command && (*o == "*" || *o == long)
                });
                f(path, cmd, arg, long, exempt);
            }
            for sub in cmd.get_subcommands() {
                visit(&format!("{path} {}", sub.get_name()), sub, f);
            }
        }
        let cli = crate::cli::Cli::command();
        for sub in cli.get_subcommands() {
            visit(sub.get_name(), sub, &mut f);
        }
    }

    #[test]
    fn every_setting_has_a_config_key() {
        let mut checked = 0;
        let mut nested = 0;
        for_each_visible_option(|command, _, _, long, exempt| {
            nested += usize::from(command.contains(' '));
            let key = match (command, long) {
                (_, "no-default-allow") => "default_allow".to_string(),
                (_, "trusted-proxy") => "trusted_proxies".to_string(),
                ("fleet erasures", "keep") => "[fleet]\nkeep_erasures".to_string(),
                // The [fleet] table's keys.
                (_, other) => match other.strip_prefix("fleet-") {
                    Some(key) => format!("[fleet]\n{}", key.replace('-', "_")),
                    None => other.replace('-', "_"),
                },
            };
            // Any value: a key of another type fails on its type, an unknown key on its
            // name.
            let known = match Config::parse(&format!("{key} = true\n"), Path::new("c")) {
                Ok(_) => true,
                Err(e) => !e.to_string().contains("unknown field"),
            };
            assert!(
                known || exempt,
                "logward {command} --{long} has no config key {key}"
            );
            checked += 1;
        });
        assert!(checked > 40, "only {checked} options seen");
        assert!(nested >= 5, "only {nested} options of nested commands seen");
    }

    /// The hidden negation of a switch that has a config key.
    fn negation(long: &str) -> String {
        match long {
            "no-store" => "use-store".to_string(),
            "no-detect" => "detect".to_string(),
            "no-filename" => "with-filename".to_string(),
            other => match other.strip_prefix("no-") {
                Some(rest) => rest.to_string(),
                None => format!("no-{other}"),
            },
        }
    }

    #[test]
    fn every_config_switch_can_be_undone_on_the_command_line() {
        use clap::{ArgAction, CommandFactory};
        let mut checked = 0;
        for_each_visible_option(|command, sub, arg, long, exempt| {
            if exempt || !matches!(arg.get_action(), ArgAction::SetTrue) {
                return;
            }
            let neg = negation(long);
            let undo = sub
                .get_arguments()
                .find(|a| a.get_long() == Some(neg.as_str()))
                .unwrap_or_else(|| panic!("logward {command} --{long} has no --{neg}"));
            assert!(undo.is_hide_set(), "--{neg} is listed in help");
            // The last word wins, whichever it is.
            let id = arg.get_id().as_str();
            let parse = |words: &[&str]| {
                let mut argv = vec!["logward"];
                argv.extend(command.split(' '));
                argv.extend_from_slice(words);
                let mut m = crate::cli::Cli::command()
                    .ignore_errors(true)
                    .try_get_matches_from(&argv)
                    .unwrap();
                for name in command.split(' ') {
                    m = m.subcommand_matches(name).unwrap().clone();
                }
                m.get_flag(id)
            };
            let on = format!("--{long}");
            let off = format!("--{neg}");
            assert!(parse(&[&off, &on]), "{command} {off} {on}");
            assert!(!parse(&[&on, &off]), "{command} {on} {off}");
            checked += 1;
        });
        assert!(checked >= 15, "only {checked} switches seen");
    }

    #[test]
    fn a_switch_follows_the_command_line_then_the_config() {
        use crate::cli::switch;
        assert!(switch(true, false, Some(false)));
        assert!(!switch(false, true, Some(true)));
        assert!(switch(false, false, Some(true)));
        assert!(!switch(false, false, None));
    }

    #[test]
    fn the_fleet_table_is_read_and_checked() {
        let c = Config::parse(
            "threads = 2\n[fleet]\nurl = \"postgres://web1@db/fleet\"\nca_file = \"/etc/ca.pem\"\n\
             password_file = \"/etc/logward/fleet.pw\"\nmin_hosts = 3\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let fleet = c.fleet.unwrap();
        assert_eq!(fleet.url.as_deref(), Some("postgres://web1@db/fleet"));
        assert_eq!(fleet.min_hosts, Some(3));
        for (text, line, what) in [
            (
                "[fleet]\nurl = \"postgres://web1:pw@db/fleet\"\n",
                2,
                "password_file",
            ),
            ("[fleet]\n\nmin_hosts = 0\n", 3, "1 or more"),
            ("[fleet]\nhost = \"a b\"\n", 2, "host name"),
            ("[fleet]\nport = 5432\n", 2, "port"),
        ] {
            // The whole chain, as the binary prints it: the cause says what is wrong.
            let err = format!(
                "{:#}",
                Config::parse(text, Path::new("c.toml")).unwrap_err()
            );
            assert!(err.starts_with(&format!("c.toml:{line}: ")), "{err}");
            assert!(err.contains(what) && !err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/logward.toml"))).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/logward.toml"));
    }
}
