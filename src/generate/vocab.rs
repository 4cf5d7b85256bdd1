//! Word lists for generated traffic: browser user agents, site paths, static assets,
//! referers and virtual hosts. Normal user agents name no scanner or script library, so
//! no detection rule can mistake a normal client for a tool.

/// Browser and well-behaved crawler user agents. Two contain a literal `"`, which the
/// writer escapes the way each format does (`\"` for Apache, `\x22` for nginx).
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; SAMSUNG SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/476.0.0.37.108;FBBV/632468245]",
    "Mozilla/5.0 (Linux; Android 11; SM-A515F Build/RP1A.200720.012; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.107 Mobile Safari/537.36 \"ShopApp/4.2.1\"",
    "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0; \"SLCC2\") like Gecko",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0",
];

/// Cumulative weights for [`USER_AGENTS`] (desktop Chrome and iPhone Safari dominate).
pub const UA_CUM: &[u32] = &[
    20, 32, 40, 48, 56, 64, 68, 74, 77, 89, 94, 97, 104, 108, 112, 115, 117, 118, 120, 121, 122,
    124,
];

/// Site pages (non-static paths). `{}`-free: an id or slug is appended by the caller where
/// the entry ends in `/`.
pub const PAGES: &[&str] = &[
    "/",
    "/",
    "/",
    "/about",
    "/contact",
    "/pricing",
    "/blog/",
    "/blog/",
    "/blog/",
    "/products/",
    "/products/",
    "/products/",
    "/category/",
    "/docs/",
    "/docs/",
    "/search?q=",
    "/cart",
    "/account/orders",
    "/news/2026/",
    "/faq.html",
    "/terms.html",
];

/// Slugs for pages ending in `/` and search terms.
pub const SLUGS: &[&str] = &[
    "getting-started",
    "winter-sale",
    "release-notes-4-2",
    "shipping",
    "returns",
    "how-to-choose-a-tent",
    "install",
    "configuration",
    "faq",
    "gift-cards",
    "wool-socks",
    "trail-shoes",
    "rain-jacket",
    "camping",
    "running",
    "api-reference",
    "security",
    "changelog",
    "team",
    "careers",
];

/// Static assets pulled by a page view; some carry a cache-busting query string.
pub const ASSETS: &[&str] = &[
    "/static/css/main.css?v=3f2a1c9",
    "/static/css/vendor.min.css",
    "/static/js/app.js?v=1.14.2",
    "/static/js/vendor.bundle.js?v=1.14.2",
    "/static/js/analytics.js",
    "/static/img/logo.svg",
    "/static/img/hero-1600.webp",
    "/static/img/banner.jpg",
    "/static/img/icons/cart.png",
    "/static/img/icons/search.png",
    "/static/fonts/inter-var.woff2",
    "/static/fonts/inter-italic.woff2",
    "/images/products/4411-thumb.jpg",
    "/images/products/5120-thumb.jpg",
    "/images/products/9032-thumb.jpg",
    "/favicon.ico",
    "/apple-touch-icon.png",
];

/// API endpoints; the caller appends an id to those ending in `/`.
pub const API: &[&str] = &[
    "/api/v1/products/",
    "/api/v1/products?page=",
    "/api/v1/cart",
    "/api/v1/session",
    "/api/v2/recommendations?item=",
    "/graphql",
];

/// Pages a normal client rarely asks for that do not exist (old links): the source of rare
/// normal 404s. None looks like a probe.
pub const STALE: &[&str] = &[
    "/blog/old-post-2019",
    "/products/discontinued-item",
    "/summer-sale",
    "/docs/v1/intro",
    "/static/img/old-banner.png",
];

/// External referers for landing page views.
pub const EXTERNAL_REFERERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://www.facebook.com/",
    "https://t.co/xYz12AbC",
    "https://news.ycombinator.com/",
    "android-app://com.google.android.gm/",
];

/// Virtual hosts served by the machine.
pub const HOSTS: &[&str] = &[
    "www.example.com",
    "shop.example.net",
    "blog.example.org",
    "docs.example.com",
];

/// Basic-auth user names used by a few clients.
pub const USERS: &[&str] = &["alice", "bob", "deploy", "editor"];
