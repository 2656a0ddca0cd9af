//! Checks a crate's module layout: imports run one way (entry points ->
//! handlers -> services -> domain, by a rank per top-level module), no
//! module imports one that imports it back (a cycle of any length), one
//! handler never uses another, and no source file grows too long.
//! Shared by the daemons' `tests/layout.rs` (`#[path]`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's rules.
pub struct Layout {
    /// The crate's `src` directory.
    pub src: PathBuf,
    /// Where a top-level module stands: a module may use modules of its
    /// own rank or higher, never lower. Panics for a module with no rank.
    pub rank: fn(&str) -> u8,
    /// Top-level modules that are handlers (they may not use each other).
    pub handlers: &'static [&'static str],
    pub max_lines: usize,
}

/// Module path of a source file: `lib.rs` is `crate`, `a/mod.rs` is `a`,
/// `a/b.rs` is `a::b`. `main.rs` is the binary, a crate of its own.
pub fn module_of(rel: &Path) -> Option<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    match file.as_str() {
        "main.rs" if parts.is_empty() => return None,
        "lib.rs" if parts.is_empty() => return Some("crate".into()),
        "mod.rs" => {}
        f => parts.push(f.strip_suffix(".rs")?.to_owned()),
    }
    Some(parts.join("::"))
}

pub fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its unit tests and comments.
pub fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths that start with `crate::` or `super::`, resolved from `module`.
pub fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        // `crate::{a, b::c}`: one path per item of the group.
        let after = &code[i + rest.len()..];
        let items: Vec<String> = match after.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|item| format!("{rest}{}", item.trim()))
                .collect(),
            None => vec![rest],
        };
        for item in items {
            let mut segs: Vec<String> = item
                .split("::")
                .filter(|s| !s.is_empty())
                .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
                .collect();
            if segs.first().is_some_and(|s| s == "crate") {
                segs.remove(0);
            } else {
                // super:: from `a::b` is `a`; from a top-level module it is the crate.
                segs.remove(0);
                let mut base: Vec<String> = module.split("::").map(str::to_owned).collect();
                base.pop();
                base.extend(segs);
                segs = base;
            }
            out.push(segs);
        }
    }
    out
}

/// Every module and the modules it uses (`mod child;` counts as a use).
pub fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut texts = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        if let Some(m) = module_of(rel) {
            texts.insert(m, std::fs::read_to_string(f).unwrap());
        }
    }
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let resolve = |segs: &[String]| -> String {
        (1..=segs.len())
            .rev()
            .map(|n| segs[..n].join("::"))
            .find(|m| modules.contains(m))
            .unwrap_or_else(|| "crate".into())
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &texts {
        let code = code(text);
        let mut uses = BTreeSet::new();
        for segs in paths(m, &code) {
            uses.insert(resolve(&segs));
        }
        // Children declared here, and paths relative to this module.
        let prefix = if m == "crate" {
            String::new()
        } else {
            format!("{m}::")
        };
        for child in modules.iter().filter_map(|c| c.strip_prefix(&prefix)) {
            let child = child.to_owned();
            if !child.contains("::") && child != "crate" {
                let declared = code.contains(&format!("mod {child};"));
                let used = code.contains(&format!("{child}::"));
                if declared || used {
                    uses.insert(format!("{prefix}{child}"));
                }
            }
        }
        uses.remove(m);
        edges.insert(m.clone(), uses);
    }
    edges
}

pub fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

impl Layout {
    /// No import cycle of any length; prints every edge (`--nocapture`).
    pub fn check_no_cycles(&self) {
        let g = graph(&self.src);
        for (m, uses) in &g {
            println!(
                "{m} -> {}",
                uses.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        // Depth-first search with colours.
        fn visit<'a>(
            g: &'a BTreeMap<String, BTreeSet<String>>,
            m: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) {
            if let Some(i) = path.iter().position(|p| *p == m) {
                panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
            }
            if done.contains(m) {
                return;
            }
            path.push(m);
            for next in g.get(m).into_iter().flatten() {
                visit(g, next, path, done);
            }
            path.pop();
            done.insert(m);
        }
        let mut done = BTreeSet::new();
        for m in g.keys() {
            visit(&g, m, &mut Vec::new(), &mut done);
        }
    }

    /// Imports run from entry points down to the domain; handlers do not
    /// use each other.
    pub fn check_direction(&self) {
        let rank = self.rank;
        for (m, uses) in graph(&self.src) {
            for u in uses {
                let (from, to) = (top(&m), top(&u));
                if from == to {
                    continue;
                }
                assert!(
                    rank(from) <= rank(to),
                    "{m} uses {u}: {from} (rank {}) may not depend on {to} (rank {})",
                    rank(from),
                    rank(to)
                );
                assert!(
                    !(self.handlers.contains(&from) && self.handlers.contains(&to)),
                    "{m} uses {u}: one handler may not use another"
                );
            }
        }
    }

    pub fn check_file_lengths(&self) {
        let mut files = Vec::new();
        sources(&self.src, &mut files);
        for f in files {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            assert!(
                n <= self.max_lines,
                "{} has {n} lines (at most {}): split it by what it does",
                f.display(),
                self.max_lines
            );
        }
    }
}

/// The parsing the checks rest on catches what it is for.
pub fn check_the_checker() {
    assert_eq!(
        paths("admin::enroll", "use super::target::target;"),
        vec![vec!["admin", "target", "target"]]
    );
    assert_eq!(paths("login", "use super::run;"), vec![vec!["run"]]);
    assert_eq!(
        paths("api", "use crate::{wakeups, store::Store};"),
        vec![vec!["wakeups"], vec!["store", "Store"]]
    );
    assert_eq!(
        paths("proof", "x::crate::y; crate::push::delivery::Waited"),
        vec![vec!["push", "delivery", "Waited"]]
    );
    assert!(
        code("use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests {\n use crate::c;\n}")
            .contains("crate::a")
    );
    assert!(!code("// crate::b\n#[cfg(test)]\nmod tests {\n use crate::c;\n}").contains("crate::"));
}
