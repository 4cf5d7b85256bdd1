//! The module layers: dependencies inside the library point one way. Helpers and `input` at
//! the bottom, then `format`, then the modules built on records (`detect`, `rewrite`,
//! `store`), `anonymize` on `rewrite`, then the jobs made of them (`scan`, `search`,
//! `watch`), and `cli` on top, which nothing imports. A module may import only modules on a
//! lower layer than its own: never one above, never one beside it. Inside a module, the
//! files (`format/clf.rs`, `format/parser.rs`...) do not import each other in a cycle:
//! what two of them share goes in a third that both import.
//!
//! The check reads the `crate::`, `super::` and `self::` paths of every file in `src/`
//! (comments and string literals left out; `use crate::{a, b}` counts both), so it needs
//! nothing but the files and also runs on an old tree:
//! `CARGO_MANIFEST_DIR=DIR rustc --edition 2024 --test tests/layers/mod.rs -o check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of `src/` and its layer; a module imports only lower layers.
const LAYERS: &[(&str, u32)] = &[
    // Helpers every module may use.
    ("bytes", 0),
    ("child", 0),
    ("error", 0),
    ("escape", 0),
    ("plural", 0),
    ("timefmt", 0),
    ("input", 1),
    ("format", 2),
    ("detect", 3),
    ("geo", 3),
    ("rewrite", 3),
    ("store", 3),
    ("anonymize", 4),
    // Prometheus exposition: counts from the store's flags, files through rewrite.
    ("metrics", 4),
    ("audit", 5),
    // The jobs, built from the modules below.
    ("generate", 10),
    ("scan", 10),
    ("search", 11),
    ("watch", 11),
    // The HTML page, drawn from a finished scan pass.
    ("report", 11),
    // Sharing with other servers: builds on the store and the erasure below it.
    ("fleet", 12),
    ("cli", 100),
];

/// Imports against the layers that are known and on their way out: file, module imported,
/// and why. An exception that no longer matches an import fails the check, so the list
/// only shrinks.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// One path in a file, resolved to the names it starts with from the crate root.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Use {
    line: usize,
    names: Vec<String>,
    /// In test code: a `#[cfg(test)]` module, inline or in a file of its own.
    test: bool,
}

/// `source` with comments and the contents of string and character literals replaced by
/// spaces, newlines kept, so what is left is code and line numbers still hold.
fn code_only(source: &str) -> Vec<char> {
    let c: Vec<char> = source.chars().collect();
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut out: Vec<char> = Vec::with_capacity(c.len());
    let mut i = 0;
    while i < c.len() {
        let raw_prefix = at(i) == 'r'
            && (i == 0
                || !ident(c[i - 1])
                || (matches!(c[i - 1], 'b' | 'c') && (i < 2 || !ident(c[i - 2]))));
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.extend([' ', ' ']);
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.extend([' ', ' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if raw_prefix && c[i + 1..].iter().find(|&&ch| ch != '#') == Some(&'"') {
            // A raw string, r"..." or r#"..."#: it ends at a quote and as many hashes.
            let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
            out.extend(std::iter::repeat_n(' ', hashes + 2));
            i += hashes + 2;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    out.extend(std::iter::repeat_n(' ', hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if at(i) == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                let len = if c[i] == '\\' { 2 } else { 1 };
                out.extend(c[i..(i + len).min(c.len())].iter().map(|&ch| blank(ch)));
                i += len;
            }
            out.push(' ');
            i += 1;
        } else if at(i) == '\'' && (at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'')) {
            // A character literal ('x', '\n', '\u{1f600}'); a lifetime has no closing quote.
            out.push(' ');
            i += 1;
            if at(i) == '\\' {
                out.extend([' ', ' ']);
                i += 2;
            }
            while i < c.len() && c[i] != '\'' {
                out.push(blank(c[i]));
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Reads paths in code: `crate::a::{b, c::d}` and the like, resolved from a module.
struct Reader<'a> {
    code: &'a [char],
    found: Vec<Use>,
}

impl Reader<'_> {
    fn ident_at(&self, k: usize) -> String {
        self.code[k.min(self.code.len())..]
            .iter()
            .take_while(|&&ch| ch.is_alphanumeric() || ch == '_')
            .collect()
    }

    fn skip_space(&self, mut k: usize) -> usize {
        while self.code.get(k).is_some_and(|ch| ch.is_whitespace()) {
            k += 1;
        }
        k
    }

    /// Whether `::` follows at `k` (after spaces), and where the text after it starts.
    fn colons(&self, k: usize) -> Option<usize> {
        let k = self.skip_space(k);
        (self.code.get(k) == Some(&':') && self.code.get(k + 1) == Some(&':'))
            .then(|| self.skip_space(k + 2))
    }

    fn line_of(&self, k: usize) -> usize {
        1 + self.code[..k.min(self.code.len())]
            .iter()
            .filter(|&&ch| ch == '\n')
            .count()
    }

    /// Reads the rest of a path whose names so far resolve to `names`, from `k` (just
    /// after a `::`); records every path it names and returns where it ends.
    fn rest(&mut self, mut k: usize, mut names: Vec<String>, test: bool) -> usize {
        let line = self.line_of(k);
        loop {
            match self.code.get(k) {
                Some('{') => {
                    // A group: each item is a path from here.
                    k += 1;
                    loop {
                        k = self.skip_space(k);
                        match self.code.get(k) {
                            Some('}') => return k + 1,
                            Some(',') => k += 1,
                            None => return k,
                            Some(_) => {
                                let before = k;
                                k = self.rest(k, names.clone(), test);
                                if k == before {
                                    k += 1;
                                }
                            }
                        }
                    }
                }
                Some('*') => {
                    self.found.push(Use { line, names, test });
                    return k + 1;
                }
                _ => {}
            }
            let name = self.ident_at(k);
            if name.is_empty() {
                self.found.push(Use { line, names, test });
                return k;
            }
            k += name.len();
            match name.as_str() {
                "super" => {
                    names.pop();
                }
                "self" => {}
                _ => names.push(name),
            }
            match self.colons(k) {
                Some(next) => k = next,
                None => {
                    self.found.push(Use { line, names, test });
                    // `path as name`: the name is not a path.
                    let next = self.skip_space(k);
                    if self.ident_at(next) == "as" {
                        let name = self.skip_space(next + 2);
                        return name + self.ident_at(name).len();
                    }
                    return k;
                }
            }
        }
    }
}

/// Every path in a file's code that starts at `crate`, `super` or `self`, resolved from the
/// file's module, and the names of the file modules it declares for tests only
/// (`#[cfg(test)] mod tests;`).
fn uses(code: &[char], module: &[String], test_file: bool) -> (Vec<Use>, Vec<String>) {
    let mut reader = Reader {
        code,
        found: Vec::new(),
    };
    let cfg_test: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut test_children = Vec::new();
    // Inline modules open here: (brace depth inside it, name, test only).
    let mut inline: Vec<(usize, String, bool)> = Vec::new();
    let mut depth = 0;
    let mut pending_test = false;
    let mut k = 0;
    while k < code.len() {
        let ch = code[k];
        let after_ident = k > 0 && (code[k - 1].is_alphanumeric() || code[k - 1] == '_');
        if code[k..].starts_with(&cfg_test) {
            pending_test = true;
            k += cfg_test.len();
            continue;
        }
        match ch {
            '{' => {
                depth += 1;
                pending_test = false;
            }
            '}' => {
                if inline.last().is_some_and(|(d, _, _)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            ';' => pending_test = false,
            _ => {}
        }
        if after_ident || !(ch.is_alphabetic() || ch == '_') {
            k += 1;
            continue;
        }
        let word = reader.ident_at(k);
        let end = k + word.len();
        let in_test = test_file || pending_test || inline.iter().any(|(_, _, t)| *t);
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(_, n, _)| n.clone()))
            .collect();
        match word.as_str() {
            "mod" => {
                let at = reader.skip_space(end);
                let name = reader.ident_at(at);
                let next = reader.skip_space(at + name.len());
                match code.get(next) {
                    Some('{') if !name.is_empty() => {
                        depth += 1;
                        inline.push((depth, name, pending_test || in_test));
                        pending_test = false;
                        k = next + 1;
                    }
                    Some(';') if !name.is_empty() => {
                        if pending_test && inline.is_empty() {
                            test_children.push(name);
                        }
                        pending_test = false;
                        k = next + 1;
                    }
                    _ => k = end,
                }
            }
            "crate" | "super" | "self" => match reader.colons(end) {
                Some(next) => {
                    let base = match word.as_str() {
                        "crate" => Vec::new(),
                        "super" => here[..here.len().saturating_sub(1)].to_vec(),
                        _ => here,
                    };
                    k = reader.rest(next, base, in_test);
                }
                None => k = end,
            },
            _ => k = end,
        }
    }
    (reader.found, test_children)
}

/// The module path of a file under `src/` (`format/clf.rs` is `format::clf`,
/// `format/mod.rs` is `format`); `None` for the crate root, `lib.rs` and `main.rs`.
fn module_of(relative: &str) -> Option<Vec<String>> {
    let path = relative.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut names: Vec<String> = path.split('/').map(str::to_string).collect();
    if names.last().is_some_and(|n| n == "mod") {
        names.pop();
    }
    if names.len() == 1 && matches!(names[0].as_str(), "lib" | "main") {
        return None;
    }
    Some(names)
}

/// Every finding of the check on `files` (path relative to the crate, source), one line
/// each: imports against the layers, import cycles between the files of a module, and
/// exceptions that matched nothing.
fn check(
    files: &[(String, String)],
    layers: &[(&str, u32)],
    exceptions: &[(&str, &str, &str)],
) -> Vec<String> {
    let layer: BTreeMap<&str, u32> = layers.iter().copied().collect();
    let modules: Vec<(&str, Vec<String>)> = files
        .iter()
        .filter_map(|(p, _)| module_of(p).map(|m| (p.as_str(), m)))
        .collect();
    // Files declared for tests only, and everything under them.
    let mut test_only: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut read = Vec::new();
    for (path, module) in &modules {
        let source = &files.iter().find(|(p, _)| p == path).expect("listed").1;
        let code = code_only(source);
        let (_, children) = uses(&code, module, false);
        for child in children {
            test_only.insert(module.iter().cloned().chain([child]).collect());
        }
        read.push((*path, module.clone(), code));
    }
    let mut used = vec![false; exceptions.len()];
    let mut findings = Vec::new();
    // (top module, from file module, to file module) -> first place seen.
    let mut edges: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for (path, module, code) in &read {
        let is_test = (1..=module.len()).any(|n| test_only.contains(&module[..n]));
        let (found, _) = uses(code, module, is_test);
        let top = module[0].as_str();
        let Some(&own) = layer.get(top) else {
            findings.push(format!(
                "{path}: module `{top}` has no layer: add it to LAYERS"
            ));
            continue;
        };
        for u in found {
            let Some(target) = u.names.first() else {
                continue;
            };
            if target == top {
                // Inside the module: an edge between two of its files, in code that ships.
                let (Some(from), Some(to)) = (module.get(1), u.names.get(1)) else {
                    continue;
                };
                let is_file = modules
                    .iter()
                    .any(|(_, m)| m.len() > 1 && m[0] == top && &m[1] == to);
                if !u.test && from != to && is_file {
                    edges
                        .entry((top.to_string(), from.clone(), to.clone()))
                        .or_insert_with(|| format!("{path}:{}", u.line));
                }
                continue;
            }
            let Some(&theirs) = layer.get(target.as_str()) else {
                findings.push(format!(
                    "{path}:{}: imports `{target}`, which has no layer: add it to LAYERS",
                    u.line
                ));
                continue;
            };
            if theirs < own {
                continue;
            }
            if let Some(e) = exceptions
                .iter()
                .position(|(file, t, _)| file == path && t == target)
            {
                used[e] = true;
                continue;
            }
            let how = if theirs == own { "beside" } else { "above" };
            findings.push(format!(
                "{path}:{}: `{top}` (layer {own}) imports `{target}` (layer {theirs}), {how} it",
                u.line
            ));
        }
    }
    findings.extend(cycles(&edges));
    for ((file, target, why), used) in exceptions.iter().zip(used) {
        if !used {
            findings.push(format!(
                "exception {file} -> {target} ({why}) matches no import any more: remove it"
            ));
        }
    }
    findings
}

/// The files of a module that import each other, directly or through others: for each
/// such group, one finding naming where each import is.
fn cycles(edges: &BTreeMap<(String, String, String), String>) -> Vec<String> {
    let reaches = |top: &str, from: &str, to: &str| {
        let mut seen = BTreeSet::from([from.to_string()]);
        let mut todo = vec![from.to_string()];
        while let Some(at) = todo.pop() {
            for (t, a, b) in edges.keys() {
                if t == top && *a == at && seen.insert(b.clone()) {
                    todo.push(b.clone());
                }
            }
        }
        seen.contains(to)
    };
    let mut groups: BTreeMap<(String, BTreeSet<String>), Vec<String>> = BTreeMap::new();
    for ((top, from, to), at) in edges {
        if reaches(top, to, from) {
            let members: BTreeSet<String> = edges
                .keys()
                .filter(|(t, a, _)| t == top && reaches(top, from, a) && reaches(top, a, from))
                .map(|(_, a, _)| a.clone())
                .collect();
            groups
                .entry((top.clone(), members))
                .or_default()
                .push(format!("{at} -> {to}"));
        }
    }
    groups
        .into_iter()
        .map(|((top, members), at)| {
            let names: Vec<String> = members.into_iter().collect();
            format!(
                "`{top}`: {} import each other ({}): move what they share to a file both import",
                names.join(", "),
                at.join(", ")
            )
        })
        .collect()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_lower_layers_and_files_do_not_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    rust_files(&root.join("src"), &mut paths);
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            let relative = p.strip_prefix(root).expect("under the crate");
            let source = std::fs::read_to_string(p).expect("a source file");
            (relative.to_string_lossy().into_owned(), source)
        })
        .collect();
    assert!(files.len() > 50, "only {} files under src/", files.len());
    let findings = check(&files, LAYERS, EXCEPTIONS);
    assert!(
        findings.is_empty(),
        "imports against the module layers:\n{}",
        findings.join("\n")
    );
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

const SMALL: &[(&str, u32)] = &[
    ("input", 1),
    ("format", 2),
    ("store", 3),
    ("anonymize", 3),
    ("scan", 10),
    ("cli", 100),
];

/// The check itself, on small made-up trees: imports however they are written, and only
/// those, in comments and strings and tests included.
#[test]
fn the_check_sees_imports_however_written() {
    let ok = tree(&[
        ("src/lib.rs", "pub mod cli;"),
        (
            "src/format/mod.rs",
            "mod clf;\nmod parser;\n#[cfg(test)]\nmod tests;\nuse crate::input::read;\nfn f() { crate::format::x(); }",
        ),
        (
            "src/format/clf.rs",
            "use super::Record;\nuse super::super::input::Source;",
        ),
        (
            "src/format/parser.rs",
            "use super::clf::Layout;\n#[cfg(test)]\nmod tests {\n    use super::super::clf::x;\n    use super::*;\n}",
        ),
        (
            "src/format/tests.rs",
            "use super::parser::y;\nuse super::clf::z;",
        ),
        (
            "src/scan/mod.rs",
            "use crate::{format::Record as R, input::{self, Source}};\nuse crate::store as s;",
        ),
        (
            "src/cli/mod.rs",
            "use crate::scan;\nuse crate::{anonymize, store};",
        ),
        (
            "src/input/read.rs",
            concat!(
                "//! Not `crate::scan`: see [`crate::cli`].\n",
                "/* crate::scan /* nested crate::cli */ */\n",
                "const S: &str = \"crate::scan\"; const R: &str = r#\"\"crate::cli\"#;\n",
                "const Q: char = '\"'; fn f<'a>(x: &'a str) -> &'a str { x }\n",
                "const B: &[u8] = br\"crate::scan\"; const E: char = '\\'';\n",
                "fn mycrate() { notcrate::scan(); self.x(); Self::new(); }",
            ),
        ),
    ]);
    assert_eq!(check(&ok, SMALL, &[]), Vec::<String>::new());

    let bad = tree(&[
        (
            "src/input/follow.rs",
            "\n\nuse crate::store::ledger::fnv1a64;",
        ),
        (
            "src/store/mod.rs",
            "fn f() {\n    crate::anonymize::tokens(b\"\");\n}",
        ),
        (
            "src/format/clf.rs",
            "use crate::{\n    input::read,\n    cli::Args,\n};\nuse super::parser::{word, number};",
        ),
        ("src/format/parser.rs", "use crate::format::clf::Layout;"),
        ("src/anonymize/mod.rs", "pub use crate::fleet::push;"),
        (
            "src/input/mod.rs",
            "#[cfg(test)]\nmod tests {\n    use super::super::scan::At;\n}",
        ),
        ("src/report.rs", "use crate::input;"),
    ]);
    assert_eq!(
        check(&bad, SMALL, &[("src/input/follow.rs", "scan", "gone")]),
        [
            "src/input/follow.rs:3: `input` (layer 1) imports `store` (layer 3), above it",
            "src/store/mod.rs:2: `store` (layer 3) imports `anonymize` (layer 3), beside it",
            "src/format/clf.rs:3: `format` (layer 2) imports `cli` (layer 100), above it",
            "src/anonymize/mod.rs:1: imports `fleet`, which has no layer: add it to LAYERS",
            "src/input/mod.rs:3: `input` (layer 1) imports `scan` (layer 10), above it",
            "src/report.rs: module `report` has no layer: add it to LAYERS",
            "`format`: clf, parser import each other (src/format/clf.rs:5 -> parser, \
             src/format/parser.rs:1 -> clf): move what they share to a file both import",
            "exception src/input/follow.rs -> scan (gone) matches no import any more: remove it",
        ]
    );
}
