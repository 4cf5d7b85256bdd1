//! Turning PATH arguments into the list of log files to read: files, directories walked
//! recursively for access logs and their rotated siblings, quoted glob patterns (as
//! logrotate passes them), and `-` for standard input.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One input to read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A file, by the path found or given.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Source {
    /// The path as text, or `<stdin>`; not escaped for a terminal.
    pub fn display(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".to_string(),
        }
    }

    /// [`Source::display`] made safe for a terminal (see [`crate::escape`]).
    pub fn display_escaped(&self) -> String {
        crate::escape::text(self.display().as_bytes())
    }
}

/// What discovery found, with what it left out and why.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Sorted by path, each file once (by device and inode), stdin last.
    pub sources: Vec<Source>,
    /// Files under given directories that do not look like access logs.
    pub skipped: Vec<PathBuf>,
    /// Arguments that could not be read: (argument, reason).
    pub errors: Vec<(String, String)>,
    /// Arguments that name nothing: a path that does not exist, or a pattern that matches
    /// no file: (argument, reason). An error unless the caller was told such paths are
    /// fine (`--missing-ok`, a host without one of the servers a shared unit lists).
    pub missing: Vec<(String, String)>,
    /// Entries a directory walk did not follow or read, with why: symbolic links leading
    /// out of the directory given, FIFOs and other files that are not regular.
    pub refused: Vec<(PathBuf, String)>,
}

impl Discovered {
    /// Moves the missing paths to the errors, unless `missing_ok`; returns the notes to
    /// show for missing paths that were let go.
    pub fn settle_missing(&mut self, missing_ok: bool) -> Vec<(String, String)> {
        if missing_ok {
            std::mem::take(&mut self.missing)
        } else {
            self.errors.append(&mut self.missing);
            Vec::new()
        }
    }
}

/// Orders paths as a person reads rotation sets: runs of digits compare as numbers, so
/// `access.log.2.gz` comes before `access.log.10.gz`. Ties (`01` and `1`) fall back to the
/// bytes, so the order is total.
pub fn natural_cmp(a: &Path, b: &Path) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    use std::os::unix::ffi::OsStrExt;
    let (x, y) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let (dx, dy) = (&x[si..i], &y[sj..j]);
            let strip = |d: &[u8]| {
                let k = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
                d.len() - k
            };
            let (lx, ly) = (strip(dx), strip(dy));
            let ord = lx
                .cmp(&ly)
                .then_with(|| dx[dx.len() - lx..].cmp(&dy[dy.len() - ly..]));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if x[i] != y[j] {
                return x[i].cmp(&y[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| x.cmp(y))
}

/// Where a file stands in its rotation set, as its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// `access.log.3`, `access.log.3.gz`: the higher the number, the older the file.
    Numbered(u64),
    /// `access.log-20261122`, `access.log-2026112204.gz` (logrotate `dateext`), as
    /// `YYYYMMDDHH`: the earlier the date, the older the file.
    Dated(u64),
    /// No rotation suffix: the live log (or a compressed copy of it), the newest.
    Live,
}

impl Rotation {
    /// A key that sorts the files of one set oldest first: numbered ones from the highest
    /// number down, then dated ones by date, then the live log. A set holding both numbered
    /// and dated names (the rotation scheme was changed once) has no order the names can
    /// tell; numbered ones come first, as they would after a switch to `dateext`.
    fn age_key(self) -> (u8, u64) {
        match self {
            Rotation::Numbered(n) => (0, u64::MAX - n),
            Rotation::Dated(d) => (1, d),
            Rotation::Live => (2, 0),
        }
    }
}

/// A file name split into its rotation set's base name and its place in the set: a
/// compression extension is dropped, then `.N` or `-YYYYMMDD[HH]`.
pub fn split_rotation(name: &str) -> (&str, Rotation) {
    let mut base = name;
    for ext in [".gz", ".bz2", ".xz", ".zst"] {
        if let Some(b) = base.strip_suffix(ext) {
            base = b;
            break;
        }
    }
    let number = |digits: &str| digits.parse::<u64>().unwrap_or(u64::MAX);
    if let Some(dot) = base.rfind('.') {
        let tail = &base[dot + 1..];
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            return (&base[..dot], Rotation::Numbered(number(tail)));
        }
    }
    if let Some(dash) = base.rfind('-') {
        let tail = &base[dash + 1..];
        if (tail.len() == 8 || tail.len() == 10) && tail.bytes().all(|b| b.is_ascii_digit()) {
            let hours = if tail.len() == 8 { 100 } else { 1 };
            return (&base[..dash], Rotation::Dated(number(tail) * hours));
        }
    }
    (base, Rotation::Live)
}

/// Strips a rotation suffix: a compression extension, then `.N` or `-YYYYMMDD[HH]`.
pub fn strip_rotation(name: &str) -> &str {
    split_rotation(name).0
}

/// Puts sources in time order as far as their names tell it: rotation sets (the files of
/// one directory with one base name) sorted by path as [`natural_cmp`] sorts them, and
/// the files of each set oldest first (`access.log.12.gz` ... `access.log.2.gz`,
/// `access.log.1`, `access.log`), so reading them in turn reads each set's lines in the
/// order they were written. Standard input stays last.
pub fn sort_oldest_first(sources: &mut [Source]) {
    use std::cmp::Ordering;
    let key = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let (base, rotation) = split_rotation(&name);
        (
            p.parent().unwrap_or(Path::new("")).join(base),
            rotation.age_key(),
        )
    };
    sources.sort_by(|a, b| match (a, b) {
        (Source::File(x), Source::File(y)) => {
            let ((set_x, age_x), (set_y, age_y)) = (key(x), key(y));
            natural_cmp(&set_x, &set_y)
                .then(age_x.cmp(&age_y))
                .then_with(|| natural_cmp(x, y))
        }
        (Source::Stdin, Source::Stdin) => Ordering::Equal,
        (Source::Stdin, _) => Ordering::Greater,
        (_, Source::Stdin) => Ordering::Less,
    });
}

/// True for a name a directory walk yields: an access log (`access.log`, `access_log`,
/// `site.access.log`, `ssl_access_log`, `access.json`...) or one of its rotations.
pub fn is_access_log_name(name: &str) -> bool {
    let base = strip_rotation(name).to_ascii_lowercase();
    base.contains("access")
        && (base.ends_with(".log") || base.ends_with("_log") || base.ends_with(".json"))
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let (mut star_p, mut star_n) = (usize::MAX, 0usize);
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = p;
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = class_match(&pattern[p..], name[n]) {
                        if matched {
                            p += len;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == b'[' {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p == usize::MAX {
            return false;
        }
        p = star_p + 1;
        star_n += 1;
        n = star_n;
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a bracket class at the start of `pat`; returns (matched, class length).
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(1), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            matched |= pat[i] <= c && c <= pat[i + 2];
            i += 3;
        } else {
            matched |= pat[i] == c;
            i += 1;
        }
    }
    None
}

/// Expands a glob pattern component by component.
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let mut current = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        let mut next = Vec::new();
        for base in &current {
            if has_glob_chars(part) {
                let Ok(entries) = fs::read_dir(base) else {
                    continue;
                };
                let mut names: Vec<_> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .filter(|n| {
                        let b = n.as_encoded_bytes();
                        // Hidden files match only a pattern that names the dot.
                        (!b.starts_with(b".") || part.starts_with('.'))
                            && glob_match(part.as_bytes(), b)
                    })
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            } else {
                let p = base.join(part);
                if p.exists() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .map(|p| {
            if absolute {
                p
            } else {
                p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p)
            }
        })
        .collect()
}

/// The walk's bounds: the directories given (canonical), and the directories already
/// entered (device, inode), so a symlink loop or a second path to one directory is
/// entered once.
struct Walk {
    roots: Vec<PathBuf>,
    entered: HashSet<(u64, u64)>,
}

impl Walk {
    fn inside(&self, target: &Path) -> bool {
        self.roots.iter().any(|r| target.starts_with(r))
    }
}

fn walk(
    dir: &Path,
    bounds: &mut Walk,
    out: &mut Discovered,
    files: &mut Vec<PathBuf>,
    depth: usize,
) {
    // Deep trees are almost always a mistake; entered directories already stop loops.
    if depth > 32 {
        out.errors.push((
            crate::escape::path(dir),
            "directory tree too deep (more than 32 levels)".into(),
        ));
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push((crate::escape::path(dir), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort_by(|a, b| natural_cmp(a, b));
    for path in paths {
        let Ok(own) = fs::symlink_metadata(&path) else {
            continue;
        };
        let meta = if own.file_type().is_symlink() {
            // A link is followed only to a place inside the directories given: anyone
            // who can write a log directory could otherwise point logward, running as
            // root, at any file or at `/`.
            let Ok(target) = fs::canonicalize(&path) else {
                continue; // dangling
            };
            if !bounds.inside(&target) {
                out.refused.push((
                    path,
                    format!(
                        "a symbolic link to {}, outside the directories given; not followed",
                        crate::escape::path(&target)
                    ),
                ));
                continue;
            }
            match fs::metadata(&target) {
                Ok(m) => m,
                Err(_) => continue,
            }
        } else {
            own
        };
        if meta.is_dir() {
            if bounds.entered.insert((meta.dev(), meta.ino())) {
                walk(&path, bounds, out, files, depth + 1);
            }
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            if !is_access_log_name(&name) {
                out.skipped.push(path);
            } else if meta.is_file() {
                files.push(path);
            } else {
                out.refused.push((
                    path,
                    "not a regular file (a FIFO, socket or device); not read".into(),
                ));
            }
        }
    }
}

/// Expands PATH arguments. Files named directly are always read, whatever their name.
pub fn discover<S: AsRef<str>>(args: &[S]) -> Discovered {
    let mut out = Discovered::default();
    let mut files = Vec::new();
    let mut stdin = false;
    for arg in args {
        let arg = arg.as_ref();
        if arg == "-" {
            stdin = true;
            continue;
        }
        let path = Path::new(arg);
        let targets = if !path.exists() && has_glob_chars(arg) {
            let found = expand_glob(arg);
            if found.is_empty() {
                out.missing
                    .push((arg.to_string(), "no file matches this pattern".into()));
            }
            found
        } else {
            vec![path.to_path_buf()]
        };
        for target in targets {
            match fs::metadata(&target) {
                Ok(m) if m.is_dir() => {
                    let mut bounds = Walk {
                        roots: fs::canonicalize(&target).into_iter().collect(),
                        entered: HashSet::from([(m.dev(), m.ino())]),
                    };
                    walk(&target, &mut bounds, &mut out, &mut files, 0);
                }
                Ok(_) => files.push(target),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => out
                    .missing
                    .push((crate::escape::path(&target), e.to_string())),
                Err(e) => out
                    .errors
                    .push((crate::escape::path(&target), e.to_string())),
            }
        }
    }
    files.sort_by(|a, b| natural_cmp(a, b));
    let mut seen = HashSet::new();
    files.retain(|p| match fs::metadata(p) {
        Ok(m) => seen.insert((m.dev(), m.ino())),
        Err(_) => true,
    });
    out.sources = files.into_iter().map(Source::File).collect();
    if stdin {
        out.sources.push(Source::Stdin);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_are_access_logs() {
        for yes in [
            "access.log",
            "access.log.1",
            "access.log.2.gz",
            "access.log-20261122",
            "access.log-20261122.gz",
            "site.access.log",
            "access_log",
            "ssl_access_log.3",
            "access.json",
        ] {
            assert!(is_access_log_name(yes), "{yes}");
        }
        for no in [
            "error.log",
            "error.log.1.gz",
            "access.log.tmp",
            "notes.txt",
            "access",
        ] {
            assert!(!is_access_log_name(no), "{no}");
        }
        assert_eq!(strip_rotation("access.log.2.gz"), "access.log");
        assert_eq!(strip_rotation("access.log-2026112204"), "access.log");
    }

    #[test]
    fn rotation_numbers_sort_as_numbers() {
        let mut names: Vec<PathBuf> = [
            "logs/access.log.10.gz",
            "logs/access.log",
            "logs/access.log.2.gz",
            "logs/access.log.1",
            "logs/access.log.9.gz",
            "logs/access.log.02.gz",
            "logs/a.log",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        let got: Vec<_> = names.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "logs/a.log",
                "logs/access.log",
                "logs/access.log.1",
                "logs/access.log.02.gz",
                "logs/access.log.2.gz",
                "logs/access.log.9.gz",
                "logs/access.log.10.gz",
            ]
        );
    }

    #[test]
    fn rotation_sets_sort_oldest_first() {
        let mut sources: Vec<Source> = [
            "logs/access.log",
            "logs/access.log.1",
            "logs/access.log.2.gz",
            "logs/access.log.10.gz",
            "logs/access.log.9.gz",
            "logs/api.access.log-2026112204.gz",
            "logs/api.access.log",
            "logs/api.access.log-20261122.gz",
            "logs/api.access.log-20261121",
            "a/access.log.1",
            "a/access.log",
        ]
        .iter()
        .map(|p| Source::File(PathBuf::from(p)))
        .collect();
        sources.insert(3, Source::Stdin);
        sort_oldest_first(&mut sources);
        let got: Vec<String> = sources.iter().map(Source::display).collect();
        assert_eq!(
            got,
            [
                "a/access.log.1",
                "a/access.log",
                "logs/access.log.10.gz",
                "logs/access.log.9.gz",
                "logs/access.log.2.gz",
                "logs/access.log.1",
                "logs/access.log",
                "logs/api.access.log-20261121",
                "logs/api.access.log-20261122.gz",
                "logs/api.access.log-2026112204.gz",
                "logs/api.access.log",
                "<stdin>",
            ]
        );
        assert_eq!(
            split_rotation("access.log.3.gz"),
            ("access.log", Rotation::Numbered(3))
        );
        assert_eq!(
            split_rotation("access.log.gz"),
            ("access.log", Rotation::Live)
        );
    }

    #[test]
    fn glob_components() {
        assert!(glob_match(b"*.log", b"access.log"));
        assert!(glob_match(b"access.log*", b"access.log.2.gz"));
        assert!(glob_match(b"a?c.[0-9]", b"abc.7"));
        assert!(!glob_match(b"a?c.[!0-9]", b"abc.7"));
        assert!(!glob_match(b"*.log", b"access.log.1"));
        assert!(glob_match(b"*", b""));
    }

    #[test]
    fn discovery_walks_globs_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("nginx")).unwrap();
        for name in [
            "nginx/access.log",
            "nginx/access.log.1",
            "nginx/error.log",
            "other.access.log",
        ] {
            fs::write(d.join(name), b"x\n").unwrap();
        }
        let got = discover(&[d.to_str().unwrap()]);
        let names: Vec<String> = got.sources.iter().map(Source::display).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(got.skipped.len(), 1);
        let pattern = format!("{}/nginx/*.log", d.display());
        let got = discover(&[pattern.as_str(), pattern.as_str()]);
        assert_eq!(
            got.sources.len(),
            2,
            "error.log is named by the pattern, so it is read"
        );
        let mut got = discover(&[format!("{}/nope/*.log", d.display())]);
        assert_eq!((got.errors.len(), got.missing.len()), (0, 1));
        assert!(got.settle_missing(true).len() == 1 && got.errors.is_empty());
        let mut got = discover(&[format!("{}/nope.log", d.display())]);
        assert!(got.settle_missing(false).is_empty());
        assert_eq!(
            got.errors.len(),
            1,
            "a missing file is an error without --missing-ok"
        );
    }
}
