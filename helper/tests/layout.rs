//! The daemon's module layout, checked: imports run one way (start-up ->
//! server -> handlers -> services -> domain), no module imports one that
//! imports it back, and no source file grows past 500 lines.
//!
//! `cargo test -p pushmfa-helper --test layout -- --nocapture` prints every
//! edge between modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where a top-level module stands: a module may use modules of its own
/// rank or higher, never lower. Every top-level module must be listed.
fn rank(top: &str) -> u8 {
    match top {
        "crate" => 0,
        "server" => 1,
        // Handlers: one login, one admin request.
        "login" | "admin" => 2,
        // Services the handlers share.
        "proof" => 3,
        "push" | "user_state" => 4,
        "ctx" => 5,
        // Domain modules: no knowledge of connections or handlers.
        "push_book" | "recovery" | "hashing" | "hostkey" | "relay_client" | "conn" | "peer"
        | "clock" | "log" | "args" => 6,
        "codes" | "tls_pin" => 7,
        other => panic!("module {other} has no rank in tests/layout.rs: give it one"),
    }
}

const HANDLERS: [&str; 2] = ["login", "admin"];
const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path of a source file: `lib.rs` is `crate`, `a/mod.rs` is `a`,
/// `a/b.rs` is `a::b`. `main.rs` is the binary, a crate of its own.
fn module_of(rel: &Path) -> Option<String> {
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

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
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
fn code(text: &str) -> String {
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
fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
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
        let mut segs: Vec<String> = rest
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
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
    out
}

/// Every module and the modules it uses (`mod child;` counts as a use).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut texts = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap();
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

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    for (m, uses) in &g {
        println!(
            "{m} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    // A cycle of any length: depth-first search with colours.
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

#[test]
fn imports_run_from_entry_points_down_to_the_domain() {
    for (m, uses) in graph() {
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
                !(HANDLERS.contains(&from) && HANDLERS.contains(&to)),
                "{m} uses {u}: one handler may not use another"
            );
        }
    }
}

#[test]
fn no_source_file_is_too_long() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    for f in files {
        let n = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(
            n <= MAX_LINES,
            "{} has {n} lines (at most {MAX_LINES}): split it by what it does",
            f.display()
        );
    }
}

/// The checks themselves catch what they are for.
#[test]
fn a_cycle_and_a_wrong_way_import_are_seen() {
    assert_eq!(
        paths("admin::enroll", "use super::target::target;"),
        vec![vec!["admin", "target", "target"]]
    );
    assert_eq!(paths("login", "use super::run;"), vec![vec!["run"]]);
    assert_eq!(
        paths("proof", "x::crate::y; crate::push::delivery::Waited"),
        vec![vec!["push", "delivery", "Waited"]]
    );
    assert!(
        code("use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests {\n use crate::c;\n}")
            .contains("crate::a")
    );
    assert!(!code("// crate::b\n#[cfg(test)]\nmod tests {\n use crate::c;\n}").contains("crate::"));
    assert!(rank("login") > rank("server") && rank("codes") > rank("recovery"));
}
