//! `canaryplan finish`: the base edit that ends a release. At cleanup-3 the overlay holds the
//! release's end state (the canary Deployment, routes on it, its Service or subset); `done`
//! renders nothing beyond the base, so that state must first move into the base. This module
//! computes that edit from the cleanup-3 stream against the base, as text edits to the base's
//! own files (and the plan, where a plan field only served the release), for either backend.

use crate::pointer::Pointer as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::base::{self, Base, BaseObject};
use crate::error::{Diagnostic, Error, Result};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};
use crate::kinds::canary::objects;
use crate::kinds::canary::remaining::{
    Change, changes, mesh_route_moves_to_base, mesh_route_step, step, version_service_names,
};
use crate::kinds::canary::stage::{Stage, StageModel};
use crate::rendered::SYNC_WAVE;
use crate::templates::Templates;
use crate::yaml::{self, Kind, Node, Source};

/// The CanaryPlan at `path`: `finish` ends a CanaryPlan's release (the other kinds end at
/// `done` by their own stages).
pub fn load(path: &Path) -> Result<CheckedPlan> {
    // Read once, confined like every input; the kind is read before the file is parsed as one.
    let (source, root) = crate::plan_file::read(path)?;
    let kind = crate::kinds::kind_of(&source);
    if let Some(kind) = kind.filter(|k| k != crate::kinds::canary::plan::KIND) {
        return Err(Diagnostic::new(format!(
            "`finish` moves a CanaryPlan's end state into its base; this plan is a {kind}"
        ))
        .in_file(path)
        .hint("a mesh upgrade or a LanePlan ends with its own stages: advance it to done")
        .into());
    }
    crate::kinds::canary::check::check(crate::kinds::canary::plan::Plan::parse_in(source, root)?)
}

/// One file the edit changes: its text before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    pub path: PathBuf,
    pub old: String,
    pub new: String,
}

impl FileEdit {
    /// A unified diff with `a/`/`b/` headers, paths as given to the command.
    pub fn unified(&self) -> String {
        let shown = crate::output::diff::shown(&self.path);
        similar::TextDiff::from_lines(&self.old, &self.new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string()
    }
}

/// The whole edit: the files, and the same in words (one line per step).
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub files: Vec<FileEdit>,
    pub steps: Vec<String>,
}

/// The stream of `env` at cleanup-3 (weight 100), rendered and checked, with its base.
fn end_state(
    plan: &CheckedPlan,
    env: &EnvironmentPlan,
    templates: &Templates,
) -> Result<(Base, Vec<Value>)> {
    let base = base::load(&plan.dir.join(&env.base.value), &plan.root)?;
    let model = StageModel::new(plan.method, Stage::Cleanup3, Some(100));
    let cx = objects::Context::at(plan, env, model, &base, templates)?;
    let rendered = objects::render(&cx)?;
    let end = crate::output::stream::final_objects(&base, &rendered)?;
    crate::kinds::canary::safety::check(&cx, &end)?;
    Ok((base, end))
}

/// The edit that moves `env`'s end state into its base. `env` must be at cleanup-3, and so
/// must every environment sharing its base (the edit changes what they render).
pub fn finish(plan: &CheckedPlan, env_name: &str, templates: &Templates) -> Result<Finish> {
    let Some(env) = plan.environment(env_name) else {
        let names: Vec<&str> = plan
            .environments
            .iter()
            .map(|e| e.name.value.as_str())
            .collect();
        return Err(
            Diagnostic::new(format!("the plan has no environment `{env_name}`"))
                .in_file(&plan.path)
                .hint(format!("the plan has {}", names.join(", ")))
                .into(),
        );
    };
    for e in &plan.environments {
        let shares = plan.dir.join(&e.base.value) == plan.dir.join(&env.base.value);
        if shares && e.stage.value != Stage::Cleanup3 {
            let who = if e.name.value == env.name.value {
                format!(
                    "environment `{}` is at stage {}",
                    e.name.value, e.stage.value
                )
            } else {
                format!(
                    "environment `{}` shares the base `{}` with `{}` and is at stage {}",
                    e.name.value, env.base.value, env.name.value, e.stage.value
                )
            };
            return Err(plan
                .diag(e.stage.pos, format!("{who}; the base edit that finishes a release is made at cleanup-3"))
                .hint("advance every environment on this base to cleanup-3 (weight 100) first: before that, the edit would change what they route")
                .into());
        }
    }
    let (base, end) = end_state(plan, env, templates)?;
    let Some(service) = base.find("Service", &plan.service.value) else {
        return Ok(Finish::default());
    };
    let names = version_service_names(plan);
    let all = changes(
        &base,
        service,
        &end,
        names.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    let mut steps: Vec<String> = all.iter().map(step).collect();
    let mut per_file: BTreeMap<PathBuf, (Arc<Source>, Vec<DocEdit>)> = BTreeMap::new();
    let mut edits: Vec<(Arc<Source>, DocEdit)> = Vec::new();
    for c in &all {
        match c {
            Change::Remove(o, by) => edits.push((
                Arc::clone(&o.source),
                DocEdit::Replace(o.document, by.map(|v| as_in_file(v, o))),
            )),
            Change::Modify(o, v) => edits.push((
                Arc::clone(&o.source),
                DocEdit::Modify(o.document, as_in_file(v, o)),
            )),
            Change::Add(v, beside) => edits.push((
                Arc::clone(&beside.source),
                DocEdit::Append(as_in_file(v, beside)),
            )),
        }
    }
    for (source, e) in edits {
        per_file
            .entry(source.path.to_path_buf())
            .or_insert_with(|| (Arc::clone(&source), Vec::new()))
            .1
            .push(e);
    }
    let mut files = Vec::new();
    for (path, (source, doc_edits)) in per_file {
        let new = edit_file(&source, &doc_edits)?;
        if new != source.text {
            files.push(FileEdit {
                path,
                old: source.text.clone(),
                new,
            });
        }
    }
    if mesh_route_moves_to_base(plan, &base, &end) {
        steps.push(mesh_route_step(plan));
        let line = plan.mesh_route.map(|p| p.line).unwrap_or_default();
        files.push(FileEdit {
            path: plan.path.clone(),
            old: plan.source.text.clone(),
            new: without_line(&plan.source.text, line),
        });
    }
    Ok(Finish { files, steps })
}

/// `text` without line `line` (1-based) and the comment lines that continue it (indented
/// deeper, right after it).
fn without_line(text: &str, line: u64) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(idx) = usize::try_from(line).ok().and_then(|l| l.checked_sub(1)) else {
        return text.to_string();
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let key_indent = lines.get(idx).map(|l| indent(l)).unwrap_or_default();
    let mut out = String::new();
    let mut skipping = false;
    for (i, l) in lines.iter().enumerate() {
        if i == idx {
            skipping = true;
            continue;
        }
        if skipping && l.trim_start().starts_with('#') && indent(l) > key_indent {
            continue;
        }
        skipping = false;
        out.push_str(l);
    }
    out
}

/// An end-state object as the base file holding `beside` would write it: without the
/// namespace a kustomization sets, and without the sync wave the overlay gives new objects.
fn as_in_file(v: &Value, beside: &BaseObject) -> Value {
    let mut v = v.clone();
    let in_text = yaml::parse_values(&beside.source)
        .ok()
        .and_then(|docs| docs.into_iter().nth(beside.document))
        .unwrap_or(Value::Null);
    if in_text.at("/metadata/namespace").is_none()
        && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("namespace");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            if a.get(SYNC_WAVE.0).and_then(Value::as_str) == Some(SYNC_WAVE.1) {
                a.remove(SYNC_WAVE.0);
            }
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    } else if let Some(a) = v
        .at_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(SYNC_WAVE.0);
    }
    v
}

#[derive(Debug)]
enum DocEdit {
    /// Document `n` replaced by an object, or removed.
    Replace(usize, Option<Value>),
    /// Document `n` becomes this object (kept as text where only scalars change).
    Modify(usize, Value),
    /// A new document at the end.
    Append(Value),
}

/// The documents of a YAML file as text: each chunk from its `---` line (or the file's start)
/// to the next. Comments and blank lines before the first document belong to it.
fn split_documents(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            chunks.push(String::new());
        }
        if let Some(last) = chunks.last_mut() {
            last.push_str(line);
        }
    }
    // A file that starts with comments then `---`: one document, not an empty one first.
    let is_blank = |c: &str| {
        c.lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    };
    if chunks.len() > 1 && chunks.first().is_some_and(|c| is_blank(c)) {
        let first = chunks.remove(0);
        if let Some(c) = chunks.first_mut() {
            c.insert_str(0, &first);
        }
    }
    chunks
}

/// The leading lines of a chunk that are its separator or comments (a file header or a note
/// on the object), kept when the object is replaced.
fn leading_comments(chunk: &str) -> String {
    chunk
        .split_inclusive('\n')
        .take_while(|l| {
            let t = l.trim_start();
            t.starts_with('#') || t.starts_with("---") || t.trim().is_empty()
        })
        .collect()
}

fn edit_file(source: &Source, edits: &[DocEdit]) -> Result<String> {
    let mut chunks = split_documents(&source.text);
    let nodes = yaml::parse_documents(source)?;
    if chunks.len() != nodes.len() {
        return Err(cannot_edit(
            source,
            "its documents could not be told apart by their `---` lines",
        ));
    }
    let mut appended = String::new();
    for e in edits {
        match e {
            DocEdit::Replace(n, by) => {
                let Some(chunk) = chunks.get_mut(*n) else {
                    return Err(cannot_edit(source, "a document moved while it was read"));
                };
                let node = nodes.get(*n);
                *chunk = match (by, node) {
                    // Cloned from the object it replaces: edited in place where only scalars
                    // differ, so the file's comments and layout stay.
                    (Some(v), Some(node)) => {
                        modified(chunk, chunks_before(&source.text, *n), node, v)
                    }
                    (Some(v), None) => format!("{}{}", leading_comments(chunk), yaml::to_yaml(v)),
                    // The first document keeps the file's header comment.
                    (None, _) if *n == 0 => {
                        let head = leading_comments(chunk);
                        if head.trim().is_empty() {
                            String::new()
                        } else {
                            head
                        }
                    }
                    (None, _) => String::new(),
                };
            }
            DocEdit::Modify(n, v) => {
                let (Some(chunk), Some(node)) = (chunks.get_mut(*n), nodes.get(*n)) else {
                    return Err(cannot_edit(source, "a document moved while it was read"));
                };
                let start = chunks_before(&source.text, *n);
                *chunk = modified(chunk, start, node, v);
            }
            DocEdit::Append(v) => {
                appended.push_str("---\n");
                appended.push_str(&yaml::to_yaml(v));
            }
        }
    }
    let mut text: String = chunks.concat();
    // Removing the first document leaves its successor's `---` first: harmless, but the
    // remaining text must still start a document cleanly and end with a newline.
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&appended);
    if text.starts_with("---\n") && !source.text.starts_with("---") {
        text = text.split_off(4);
    }
    Ok(text)
}

/// The number of lines before document `n` (to turn node positions into chunk positions).
fn chunks_before(text: &str, n: usize) -> usize {
    split_documents(text)
        .iter()
        .take(n)
        .map(|c| c.matches('\n').count())
        .sum()
}

fn cannot_edit(source: &Source, why: &str) -> Error {
    Diagnostic::new(format!("canaryplan cannot edit this file: {why}"))
        .in_file(&source.path)
        .hint("make the base edit by hand: `canaryplan finish` without --write lists it, and `advance` to done checks it")
        .into()
}

/// A scalar whose value changes, at a path of the document.
struct ScalarChange {
    path: Vec<String>,
    new: Value,
}

/// The scalar changes from `a` to `b`, or None when their shapes differ (keys or items added
/// or removed, a scalar becoming a map).
fn scalar_changes(
    a: &Value,
    b: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<ScalarChange>,
) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() || x.keys().any(|k| !y.contains_key(k)) {
                return false;
            }
            for (k, va) in x {
                let Some(vb) = y.get(k) else { return false };
                path.push(k.clone());
                let ok = scalar_changes(va, vb, path, out);
                path.pop();
                if !ok {
                    return false;
                }
            }
            true
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return false;
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                path.push(i.to_string());
                let ok = scalar_changes(va, vb, path, out);
                path.pop();
                if !ok {
                    return false;
                }
            }
            true
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        _ if a == b => true,
        _ => {
            out.push(ScalarChange {
                path: path.clone(),
                new: b.clone(),
            });
            true
        }
    }
}

fn node_at<'n>(node: &'n Node, path: &[String]) -> Option<&'n Node> {
    let mut n = node;
    for part in path {
        n = match &n.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value == *part)
                .map(|(_, v)| v)?,
            Kind::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(n)
}

/// The chunk of a document edited to hold `v`: only the scalars that change are rewritten in
/// place (comments and layout stay); where more changes, the document is written anew.
fn modified(chunk: &str, first_line: usize, node: &Node, v: &Value) -> String {
    let old = node.to_json();
    let anew = || format!("{}{}", leading_comments(chunk), yaml::to_yaml(v));
    let mut changes = Vec::new();
    if !scalar_changes(&old, v, &mut Vec::new(), &mut changes) {
        return anew();
    }
    let mut lines: Vec<String> = chunk.split_inclusive('\n').map(str::to_string).collect();
    for c in &changes {
        let Some(n) = node_at(node, &c.path) else {
            return anew();
        };
        let line = usize::try_from(n.pos.line).unwrap_or_default();
        let col = usize::try_from(n.pos.column).unwrap_or_default();
        let Some(text) = line
            .checked_sub(first_line + 1)
            .and_then(|i| lines.get_mut(i))
        else {
            return anew();
        };
        match replace_scalar(text, col, &n.to_json(), &c.new) {
            Some(t) => *text = t,
            None => return anew(),
        }
    }
    lines.concat()
}

/// `line` with the scalar at `col` (1-based, characters) holding `old` replaced by `new`, or
/// None when the token cannot be found safely.
fn replace_scalar(line: &str, col: usize, old: &Value, new: &Value) -> Option<String> {
    let start = line.char_indices().nth(col.checked_sub(1)?)?.0;
    let (before, rest) = line.split_at(start);
    let flow = before.contains('{') || before.contains('[');
    let len = match rest.chars().next()? {
        '"' => rest.get(1..)?.find('"').map(|i| i + 2)?,
        '\'' => rest.get(1..)?.find('\'').map(|i| i + 2)?,
        _ => {
            let stops: &[char] = if flow {
                &[',', '}', ']', '\n']
            } else {
                &['\n']
            };
            let mut end = rest.find(stops).unwrap_or(rest.len());
            if let Some(c) = rest.find(" #")
                && c < end
            {
                end = c;
            }
            rest.get(..end)?.trim_end().len()
        }
    };
    let token = rest.get(..len)?;
    let parsed: Value = serde_saphyr::from_str(token).ok()?;
    if parsed != *old {
        return None;
    }
    let written = yaml::to_yaml(new);
    let written = written.trim_end();
    if written.contains('\n') || (flow && written.contains([',', '{', '}', '[', ']'])) {
        return None;
    }
    Some(format!("{before}{written}{}", rest.get(len..)?))
}

/// Writes the edit: each file replaced atomically (a sibling renamed over it, a symbolic link
/// edited where it points inside the repository); if one fails, those already written are put
/// back.
pub fn write(plan: &CheckedPlan, f: &Finish) -> Result<()> {
    let mut done: Vec<(&FileEdit, PathBuf)> = Vec::new();
    for e in &f.files {
        let target = plan.root.resolve(&e.path)?;
        if let Err(err) = replace(&target, &e.new) {
            for (prev, t) in &done {
                let _ = replace(t, &prev.old);
            }
            return Err(err);
        }
        done.push((e, target));
    }
    Ok(())
}

fn replace(target: &Path, text: &str) -> Result<()> {
    crate::edit::replace_file(target, text)
}

/// Writes the edit, then checks it: with the new base (and plan), `done` must render exactly
/// what cleanup-3 did. If not, every file is put back and the check's findings returned.
pub fn write_checked(
    plan: &CheckedPlan,
    env: &str,
    f: &Finish,
    templates: &Templates,
) -> Result<()> {
    write(plan, f)?;
    let checked = crate::kinds::canary::check::load(&plan.path).and_then(|p| {
        let Some(e) = p.environment(env) else {
            return Err(
                Diagnostic::new(format!("the plan has no environment `{env}` any more")).into(),
            );
        };
        let model = StageModel::new(p.method, Stage::Done, Some(100));
        crate::kinds::canary::render::objects_at(&p, e, model, templates).map(|_| ())
    });
    if let Err(mut e) = checked {
        let mut restored = true;
        for fe in &f.files {
            let back = plan
                .root
                .resolve(&fe.path)
                .and_then(|t| replace(&t, &fe.old));
            restored &= back.is_ok();
        }
        e.diagnostics.push(if restored {
            Diagnostic::new("the base edit did not make `done` equal cleanup-3, so it was undone: no file changed")
                .hint("make the remaining edit by hand; `advance` to done checks it")
        } else {
            Diagnostic::new("the base edit did not make `done` equal cleanup-3, and putting the files back failed")
                .hint("undo the edit with git")
        });
        return Err(e);
    }
    Ok(())
}
