//! The shape of `src/`, checked: every file's `crate::` and `super::` imports, resolved to the
//! module they name, must point at its own layer or one below (never back up), no two files may
//! import each other through any chain (no cycle), and no kind may import another kind. The
//! layers are the architecture (docs/architecture.md): what every kind shares, then the kind
//! interface, then the kinds, then the commands over them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path prefixes by layer, lowest first. A module belongs to the layer of its longest
/// matching prefix; every module must match one (`""` is the library's face, `lib.rs` alone).
const LAYERS: &[&[&str]] = &[
    // What everything reads with: errors, YAML, files, plan-file basics, the ladder.
    &[
        "error",
        "names",
        "fsio",
        "yaml",
        "pointer",
        "plan_file",
        "ladder",
        "endpoint",
        "argocd",
        "selector",
        "templates",
    ],
    // Bases, rendered objects, the evaluator (which reads streams, never a renderer), and
    // what both mesh upgrade kinds share (the injection resolver, their plan files' parts).
    &[
        "base",
        "rendered",
        "traffic",
        "explain",
        "invariants",
        "analysis",
        "mesh_upgrade",
    ],
    // Output and what a render, a status and an export are, for every kind.
    &["output", "render", "status", "export"],
    // The one interface every kind implements.
    &["kinds"],
    // The text work every kind's verbs share.
    &["edit"],
    // The kinds: every folder under `src/kinds/` (a new kind needs no line here).
    &[KIND],
    // The registry of kinds.
    &["kinds::registry"],
    // Commands over plans of any kind.
    &[
        "plans",
        "monorepo",
        "step",
        "gate",
        "soak",
        "init",
        "from_rollout",
        "finish",
    ],
    // The library's face.
    &[""],
];

/// Stands for every kind in `LAYERS`: each folder under `src/kinds/` is one.
const KIND: &str = "kinds::<kind>";

/// The kinds: `kinds::<folder>` for each folder under `src/kinds/`.
fn kinds() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(src().join("kinds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| format!("kinds::{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `kinds::canary::check` for `src/kinds/canary/check.rs`; `kinds::canary` for its `mod.rs`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules a file's code names, resolved against the set of modules that exist: the
/// longest module prefix of each `crate::a::b::c` or `super::x` path. Test modules
/// (`#[cfg(test)]` to the end of the file) are left out.
fn imports(file: &Path, module: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let is_mod_rs = file
        .file_name()
        .is_some_and(|f| f == "mod.rs" || f == "lib.rs");
    let mut found = BTreeSet::new();
    let mut paths: Vec<String> = Vec::new();
    // Expand `use crate::{a, b::{c, d}}` groups into paths, then take every `crate::`/`super::`.
    let flat = expand_groups(&code);
    for token in flat.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if let Some(rest) = token.strip_prefix("crate::") {
            paths.push(rest.to_string());
        } else if token.starts_with("super::") {
            let mut base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            if !is_mod_rs {
                base.pop();
            }
            let mut rest = token;
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            let mut p = base.join("::");
            if !p.is_empty() {
                p.push_str("::");
            }
            p.push_str(rest);
            paths.push(p);
        }
    }
    for p in paths {
        let segs: Vec<&str> = p.split("::").collect();
        for n in (1..=segs.len()).rev() {
            let candidate = segs[..n].join("::");
            if modules.contains(&candidate) {
                if candidate != module {
                    found.insert(candidate);
                }
                break;
            }
        }
    }
    found
}

/// `crate::{a, b::{c, d}}` → `crate::a crate::b::c crate::b::d` (and likewise for `super::`).
fn expand_groups(code: &str) -> String {
    fn expand(prefix: &str, body: &str, out: &mut Vec<String>) {
        let mut depth = 0;
        let mut start = 0;
        let mut items = Vec::new();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&body[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&body[start..]);
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if let Some(open) = item.find('{') {
                let head = item[..open].trim_end_matches("::").trim();
                let inner = &item[open + 1..item.rfind('}').unwrap_or(item.len())];
                expand(&format!("{prefix}::{head}"), inner, out);
            } else {
                let name = item.split(" as ").next().unwrap_or(item).trim();
                if name == "self" {
                    out.push(prefix.to_string());
                } else {
                    out.push(format!("{prefix}::{name}"));
                }
            }
        }
    }
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        out.push_str(&rest[..i]);
        let stmt_end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        let stmt = &rest[i + 4..stmt_end];
        if let Some(open) = stmt.find("::{") {
            let mut v = Vec::new();
            let inner = &stmt[open + 3..stmt.rfind('}').unwrap_or(stmt.len())];
            expand(stmt[..open].trim(), inner, &mut v);
            out.push_str(&v.join(" "));
        } else {
            out.push_str(stmt);
        }
        out.push(' ');
        rest = &rest[stmt_end..];
    }
    out.push_str(rest);
    out
}

fn layer_of(module: &str) -> usize {
    let mut best = (0usize, 0usize);
    let kind = kind_of(module);
    for (layer, prefixes) in LAYERS.iter().enumerate() {
        for p in *prefixes {
            let p = if *p == KIND {
                match &kind {
                    Some(k) => k.as_str(),
                    None => continue,
                }
            } else {
                p
            };
            let matches = module == p || p.is_empty() || module.starts_with(&format!("{p}::"));
            if matches && (p.len() >= best.1 || (p.is_empty() && best.1 == 0)) {
                best = (layer, p.len());
            }
        }
    }
    best.0
}

/// Whether a prefix other than the library's face (`""`, `lib.rs` alone) names `module`.
fn is_listed(module: &str) -> bool {
    LAYERS.iter().flat_map(|l| l.iter()).any(|p| {
        (*p == KIND && kind_of(module).is_some())
            || (!p.is_empty() && (module == *p || module.starts_with(&format!("{p}::"))))
    })
}

fn kind_of(module: &str) -> Option<String> {
    kinds()
        .into_iter()
        .find(|k| module == k || module.starts_with(&format!("{k}::")))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    all.retain(|f| {
        !f.ends_with("main.rs") && !f.starts_with(src().join("cli")) && !f.ends_with("cli.rs")
    });
    let modules: BTreeSet<String> = all.iter().map(|f| module_of(f)).collect();
    all.iter()
        .map(|f| {
            let m = module_of(f);
            let deps = imports(f, &m, &modules);
            (m, deps)
        })
        .collect()
}

#[test]
fn no_import_runs_from_a_lower_layer_back_up() {
    let g = graph();
    let mut wrong = Vec::new();
    for (m, deps) in &g {
        for d in deps {
            // A module's own parent is its face (`mod.rs` declares it), not an import upward.
            if m.starts_with(&format!("{d}::"))
                && layer_of(d) >= layer_of(m)
                && kind_of(d).is_some()
            {
                continue;
            }
            if layer_of(d) > layer_of(m) {
                wrong.push(format!(
                    "{m} (layer {}) imports {d} (layer {})",
                    layer_of(m),
                    layer_of(d)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports from a lower layer back up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_is_in_a_layer() {
    // Without this, a new module would fall into the top layer silently, and nothing could
    // import it without the import running back up.
    let unlisted: Vec<String> = graph()
        .keys()
        .filter(|m| !m.is_empty() && !is_listed(m))
        .cloned()
        .collect();
    assert!(
        unlisted.is_empty(),
        "modules in no layer (add them to LAYERS where their imports put them):\n{}",
        unlisted.join("\n")
    );
}

#[test]
fn no_kind_imports_another_kind() {
    let g = graph();
    let mut wrong = Vec::new();
    for (m, deps) in &g {
        let Some(k) = kind_of(m) else { continue };
        for d in deps {
            if let Some(other) = kind_of(d)
                && other != k
            {
                wrong.push(format!("{m} imports {d}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "kinds importing other kinds:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_cycle() {
    let g = graph();
    // Tarjan's strongly connected components; any component of two or more is a cycle.
    struct State<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        cycles: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.g.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.cycles.push(comp);
            }
        }
    }
    let mut s = State {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        cycles: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    let cycles: Vec<String> = s.cycles.iter().map(|c| c.join(" ↔ ")).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_function_is_longer_than_a_screenful() {
    // Table-like data (consts, statics) is exempt; the limit is for logic.
    const LIMIT: usize = 120;
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut long = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim_start();
            let is_fn = (t.starts_with("fn ")
                || t.starts_with("pub fn ")
                || t.starts_with("pub(crate) fn "))
                && !t.ends_with(';');
            if is_fn {
                let indent = l.len() - t.len();
                let close = format!("{}}}", " ".repeat(indent));
                let end = (i + 1..lines.len())
                    .find(|&j| lines[j] == close)
                    .unwrap_or(i);
                let len = end.saturating_sub(i) + 1;
                if len > LIMIT {
                    long.push(format!(
                        "{}:{} {} lines",
                        f.strip_prefix(src()).unwrap().display(),
                        i + 1,
                        len
                    ));
                }
                i = end.max(i) + 1;
            } else {
                i += 1;
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LIMIT} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_command_line_stays_thin() {
    let n = std::fs::read_to_string(src().join("cli.rs"))
        .unwrap()
        .lines()
        .count();
    assert!(
        n <= 400,
        "src/cli.rs has {n} lines: move output formatting next to what it prints"
    );
}
