//! The built-in rule set and the pattern lists it is made of. The lists live as data files
//! in `src/detect/patterns/` so they can be reviewed and extended without reading code.

use super::rule::{Field, FieldMatch, Filter, Rule, RuleSet, pattern_lines};

/// User agents of vulnerability scanners and attack tools (`bad-user-agent`).
pub(crate) const BAD_USER_AGENTS: &str = include_str!("patterns/bad-user-agents.txt");
/// Files that hold secrets or source history (`sensitive-files`).
pub(crate) const SENSITIVE_FILES: &str = include_str!("patterns/sensitive-files.txt");
/// Directory traversal and local-file inclusion (`path-traversal`).
pub(crate) const PATH_TRAVERSAL: &str = include_str!("patterns/path-traversal.txt");
/// SQL injection probes in the query string (`sqli-probing`).
pub(crate) const SQLI: &str = include_str!("patterns/sqli.txt");
/// Cross-site scripting probes in the query string (`xss-probing`).
pub(crate) const XSS: &str = include_str!("patterns/xss.txt");
/// File names of PHP web shells and backdoors (`backdoor-probing`).
pub(crate) const BACKDOORS: &str = include_str!("patterns/backdoors.txt");
/// Administration interfaces scanners look for (`admin-probing`).
pub(crate) const ADMIN_INTERFACES: &str = include_str!("patterns/admin-interfaces.txt");
/// Login endpoints password-guessing bots post to (`login-bruteforce`,
/// `login-bruteforce-slow`).
pub(crate) const LOGIN_PATHS: &str = include_str!("patterns/login-paths.txt");
/// Extensions of static assets, which the page-counting rules skip.
pub(crate) const STATIC_EXTENSIONS: &str = include_str!("patterns/static-extensions.txt");
/// Exploit payloads in the target (`exploit-slow`).
pub(crate) const EXPLOIT_PAYLOADS: &str = include_str!("patterns/exploit-payloads.txt");
/// Exploit payloads in the user agent (`exploit-slow`).
pub(crate) const EXPLOIT_USER_AGENTS: &str = include_str!("patterns/exploit-user-agents.txt");
/// Log4j lookups, in the target or the user agent (`cve-probing`, `exploit-slow`).
pub(crate) const JNDI_LOOKUPS: &str = include_str!("patterns/jndi-lookups.txt");
/// Paths and requests of well-known exploits (`cve-probing`).
pub(crate) const CVE_PATHS: &str = include_str!("patterns/cve-paths.txt");
/// WordPress author enumeration in the query string (`wordpress-user-enum`).
pub(crate) const USER_ENUMERATION: &str = include_str!("patterns/user-enumeration.txt");

fn methods(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| m.to_string()).collect()
}

fn path(list: &str) -> FieldMatch {
    FieldMatch::contains(&pattern_lines(list))
}

/// The patterns of several lists as one.
fn lists(lists: &[&str]) -> FieldMatch {
    let all: Vec<String> = lists.iter().flat_map(|l| pattern_lines(l)).collect();
    FieldMatch::contains(&all)
}

/// The rules logward runs unless a rules file changes them. Thresholds follow the spirit of
/// CrowdSec's HTTP scenarios: probing and scanning is cheap to flag, floods need volume.
///
/// Long because it is the rule table itself: one literal per rule, in the order
/// `logward rules` prints them.
pub fn builtin_rules() -> RuleSet {
    let mut set = RuleSet::new();
    set.insert(
        Rule::new(
            "http-probing",
            "many distinct pages answered 404/403/400",
            Filter {
                status: vec![404, 403, 400],
                not_static: true,
                ..Filter::default()
            },
            10,
            10_000,
        )
        .distinct(Field::Path),
    );
    set.insert(
        Rule::new(
            "http-crawl",
            "many distinct pages fetched quickly",
            Filter {
                methods: methods(&["GET", "HEAD"]),
                not_static: true,
                ..Filter::default()
            },
            40,
            500,
        )
        .distinct(Field::Path),
    );
    set.insert(Rule::new(
        "http-flood",
        "request volume",
        Filter::default(),
        300,
        200,
    ));
    set.insert(Rule::new(
        "bad-user-agent",
        "user agent of a known scanner",
        Filter {
            user_agent: path(BAD_USER_AGENTS),
            ..Filter::default()
        },
        1,
        60_000,
    ));
    set.insert(Rule::new(
        "sensitive-files",
        "secrets, dumps, backups, VCS metadata",
        Filter {
            path: path(SENSITIVE_FILES),
            ..Filter::default()
        },
        4,
        5_000,
    ));
    set.insert(Rule::new(
        "path-traversal",
        "directory traversal and local file inclusion",
        Filter {
            target: path(PATH_TRAVERSAL),
            ..Filter::default()
        },
        3,
        10_000,
    ));
    set.insert(Rule::new(
        "sqli-probing",
        "SQL injection in the query string",
        Filter {
            query: path(SQLI),
            ..Filter::default()
        },
        10,
        1_000,
    ));
    set.insert(Rule::new(
        "xss-probing",
        "cross-site scripting in the query string",
        Filter {
            query: path(XSS),
            ..Filter::default()
        },
        5,
        1_000,
    ));
    set.insert(Rule::new(
        "backdoor-probing",
        "known web-shell file names",
        Filter {
            path: path(BACKDOORS),
            ..Filter::default()
        },
        1,
        5_000,
    ));
    set.insert(Rule::new(
        "admin-probing",
        "admin interfaces answered 404/403",
        Filter {
            status: vec![404, 403],
            path: path(ADMIN_INTERFACES),
            ..Filter::default()
        },
        2,
        10_000,
    ));
    let mut login = Rule::new(
        "login-bruteforce",
        "POSTs to login endpoints or refused POSTs",
        Filter {
            methods: methods(&["POST"]),
            path: path(LOGIN_PATHS),
            ..Filter::default()
        },
        5,
        10_000,
    );
    login.filters.push(Filter {
        methods: methods(&["POST"]),
        status: vec![401, 403],
        ..Filter::default()
    });
    set.insert(login);
    // Credential stuffing paced under login-bruteforce's leak (one guess every 30 s is 40 in
    // 20 minutes): refused logins, and login forms answered 200 again (WordPress answers a
    // failed login with the form, a good one with a redirect), over a window of hours.
    let mut slow = Rule::new(
        "login-bruteforce-slow",
        "refused logins, slowly, over hours",
        Filter {
            methods: methods(&["POST"]),
            status: vec![401, 403],
            ..Filter::default()
        },
        20,
        300_000,
    );
    slow.filters.push(Filter {
        methods: methods(&["POST"]),
        path: path(LOGIN_PATHS),
        status: vec![200],
        ..Filter::default()
    });
    set.insert(slow);
    let mut proxy = Rule::new(
        "open-proxy",
        "CONNECT or absolute-URI requests refused",
        Filter {
            methods: methods(&["CONNECT"]),
            status: vec![400, 405],
            ..Filter::default()
        },
        0,
        1_000,
    );
    proxy.filters.push(Filter {
        absolute_uri: true,
        status: vec![400, 405],
        ..Filter::default()
    });
    set.insert(proxy);
    set.insert(Rule::new(
        "bad-http-version",
        "protocol that is not a real HTTP version",
        Filter {
            bad_protocol: true,
            ..Filter::default()
        },
        0,
        1_000,
    ));
    // Exploitation paced under the fast pattern rules: path-traversal forgets a payload in
    // 10 s and sqli-probing in 1 s, so one payload every 0.5 to 40 s is never seen by
    // them. These shapes never come from a browser, a search box or an API client, so a
    // few are enough, whatever the answer (an exploit that works gets 200): three within
    // 20 minutes, four within 40, five within an hour. One alone (a pasted link, a curious
    // user) is not.
    let mut exploit = Rule::new(
        "exploit-slow",
        "exploit payloads, a few over an hour",
        Filter {
            target: lists(&[EXPLOIT_PAYLOADS, JNDI_LOOKUPS]),
            ..Filter::default()
        },
        2,
        20 * 60_000,
    );
    exploit.filters.push(Filter {
        user_agent: lists(&[EXPLOIT_USER_AGENTS, JNDI_LOOKUPS]),
        ..Filter::default()
    });
    set.insert(exploit);
    // The path of a known exploit, or a Log4j lookup, says what the request is on its own,
    // as CrowdSec's http-cve-probing does with its list of trendy CVE URIs.
    let mut cve = Rule::new(
        "cve-probing",
        "known exploit and CVE paths, Log4j lookups",
        Filter {
            target: lists(&[CVE_PATHS, JNDI_LOOKUPS]),
            ..Filter::default()
        },
        0,
        1_000,
    );
    cve.filters.push(Filter {
        user_agent: path(JNDI_LOOKUPS),
        ..Filter::default()
    });
    set.insert(cve);
    // One login name per author id: a visitor opens an author's page or two, a scanner asks
    // for ids 1, 2, 3... in a row. The thresholds are CrowdSec's http-wordpress_user-enum.
    set.insert(
        Rule::new(
            "wordpress-user-enum",
            "WordPress author ids enumerated",
            Filter {
                query: path(USER_ENUMERATION),
                ..Filter::default()
            },
            5,
            10_000,
        )
        .distinct(Field::Query),
    );
    // Cache busting: a DoS tool appends a fresh number to every request so that no cache
    // answers it and each one reaches the application. CrowdSec's http-dos-bypass-cache
    // thresholds: more than 30 distinct numbers, leaking one a second.
    set.insert(
        Rule::new(
            "cache-bypass-flood",
            "distinct bare-number queries, quickly",
            Filter {
                numeric_query: true,
                not_static: true,
                ..Filter::default()
            },
            30,
            1_000,
        )
        .distinct(Field::Query),
    );
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_is_non_empty_and_lower_case() {
        for (name, list) in [
            ("bad-user-agents", BAD_USER_AGENTS),
            ("sensitive-files", SENSITIVE_FILES),
            ("path-traversal", PATH_TRAVERSAL),
            ("sqli", SQLI),
            ("xss", XSS),
            ("backdoors", BACKDOORS),
            ("admin-interfaces", ADMIN_INTERFACES),
            ("login-paths", LOGIN_PATHS),
            ("static-extensions", STATIC_EXTENSIONS),
            ("exploit-payloads", EXPLOIT_PAYLOADS),
            ("exploit-user-agents", EXPLOIT_USER_AGENTS),
            ("jndi-lookups", JNDI_LOOKUPS),
            ("cve-paths", CVE_PATHS),
            ("user-enumeration", USER_ENUMERATION),
        ] {
            let lines = pattern_lines(list);
            assert!(!lines.is_empty(), "{name} is empty");
            for line in lines {
                assert_eq!(
                    line,
                    line.to_ascii_lowercase(),
                    "{name}: {line} not lower case"
                );
            }
        }
    }

    #[test]
    fn builtin_set_has_the_documented_rules() {
        let set = builtin_rules();
        let flood = set.get("http-flood").expect("http-flood");
        assert_eq!((flood.capacity, flood.leak_ms), (300, 200));
        assert!(set.get("open-proxy").is_some_and(Rule::is_trigger));
        assert!(set.get("bad-http-version").is_some_and(Rule::is_trigger));
        assert!(set.get("cve-probing").is_some_and(Rule::is_trigger));
        let slow = set.get("exploit-slow").expect("exploit-slow");
        assert_eq!((slow.capacity, slow.leak_ms), (2, 1_200_000));
    }
}
