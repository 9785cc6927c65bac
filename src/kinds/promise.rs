//! The stage invariants, kept at every render of every kind: the kind says what its step
//! declares (`Declared`, in traffic terms) and which plan entry the environment was rendered
//! from; this module builds the traffic models of the base, of the record committed in the
//! overlay ("on disk") and of this render, runs `invariants::check`, and refuses a render that
//! breaks a promise with a located error at the environment's stage. In overlay mode it adds
//! the new record to the overlay's files, so the record is committed with what it describes.

use crate::pointer::Pointer as _;
use std::path::Path;

use serde_json::Value;

use crate::error::{Diagnostic, Diagnostics, Result};
use crate::invariants::{self, Declared, Model, Record, Violation, record};
use crate::output::overlay::{self, File, OverlayOf};
use crate::render::{EnvironmentRender, Mode};

/// What a kind promises for one environment's render.
#[derive(Debug, Clone)]
pub struct Promise {
    /// The plan's entry for the environment (stage, weight, lanes...): when it equals the
    /// record's, nothing may move (rule 2).
    pub entry: Value,
    /// What the stage does, in traffic terms.
    pub declared: Declared,
}

/// Environments whose change outside the plan a person accepted (`--accept-change E`; `*`:
/// every one, `--from-scratch`), for this process.
static ACCEPTED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Accepts, for this process, that environments `envs` change although their plan entries did
/// not: invariant 2 is skipped for them, and their render is held to their stage's promise
/// against the base instead. Only the first call counts.
pub fn accept(envs: &[String]) {
    let _ = ACCEPTED.set(envs.to_vec());
}

fn accepted(env: &str) -> bool {
    ACCEPTED
        .get()
        .is_some_and(|a| a.iter().any(|e| e == env || e == "*"))
}

/// The text of the record committed in the overlay directory `dir`, if there is one: read like
/// every input, confined to the repository, a regular file of bounded size (a link planted in
/// its place to a FIFO or outside the repository is refused).
fn record_text_on_disk(dir: &Path, root: &crate::fsio::Root) -> Result<Option<String>> {
    let path = dir.join(record::FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let bytes = root.read(&path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Diagnostic::new("the traffic record is not UTF-8 text")
            .in_file(&path)
            .hint("render the environment again to rewrite it")
    })?;
    Ok(Some(text))
}

/// Whether a record's text on disk is `body` (the YAML of a record) under comment lines only
/// (its header names the plan as the render that wrote it spelt the plan's path): then it
/// reads as that very record, and need not be parsed.
fn reads_as(text: &str, body: &str) -> bool {
    text.strip_suffix(body).is_some_and(|header| {
        header.is_empty() || (header.ends_with('\n') && header.lines().all(|l| l.starts_with('#')))
    })
}

/// Checks `r` (one environment's render, its final objects in `r.objects`) against the
/// invariants, with `base` the objects of the base as the environment sees it. In overlay mode
/// the record file joins the overlay's files.
pub fn keep(
    r: &mut EnvironmentRender,
    base_model: &Model,
    promise: Promise,
    mode: Mode,
    root: &crate::fsio::Root,
) -> Result<()> {
    let new = invariants::model(&r.objects);
    // The new record, and the one on disk: in overlay mode it is among the overlay's files
    // already read; when it reads as the new one (the steady state) it need not be parsed.
    let record = Record::new(promise.entry.clone(), new.clone());
    let body = record.to_yaml();
    let read;
    let on_disk = match mode {
        Mode::Overlay => r
            .existing
            .iter()
            .find(|f| f.name == record::FILE)
            .map(|f| f.text.as_str()),
        Mode::Stream => {
            read = record_text_on_disk(&r.dir, root)?;
            read.as_deref()
        }
    };
    let disk = match on_disk {
        Some(text) if reads_as(text, &body) => Some(record),
        Some(text) => Some(record::parse(&r.dir.join(record::FILE), text)?),
        None => None,
    };
    let file = (mode == Mode::Overlay).then(|| record_file(r, &body));
    let unchanged = disk.as_ref().is_some_and(|d| d.entry == promise.entry);
    let step = if unchanged && !accepted(&r.environment) {
        Declared::Unchanged
    } else {
        promise.declared.clone()
    };
    if unchanged && accepted(&r.environment) {
        // What invariant 2 would have refused, said where the change is accepted.
        r.accepted = invariants::check(
            &r.environment,
            base_model,
            disk.as_ref(),
            &new,
            &Declared::Unchanged,
        )
        .into_iter()
        .map(|v| v.message)
        .collect();
    }
    let violations = invariants::check(&r.environment, base_model, disk.as_ref(), &new, &step);
    if !violations.is_empty() {
        let mut d = Diagnostics::default();
        for v in &violations {
            d.push(refusal(r, v));
        }
        d.into_result()?;
    }
    if let Some(file) = file {
        r.files.push(file);
        r.files.sort_by(|a, b| a.name.cmp(&b.name));
    }
    r.traffic_before = disk.map(|d| d.model);
    r.model = Some(new);
    // The base's model is kept where something compares with it: a stream (`explain
    // --against base`), or an environment with no overlay on disk yet (`diff`).
    r.base_model = (mode == Mode::Stream || r.on_disk.is_none()).then(|| base_model.clone());
    r.declared = Some(step);
    Ok(())
}

fn record_file(r: &EnvironmentRender, body: &str) -> File {
    let of = OverlayOf {
        plan_name: "",
        plan_path: &r.plan,
        environment: &r.environment,
        stage: &r.stage,
        weight: None,
    };
    File {
        name: record::FILE.to_string(),
        text: format!(
            "{}{}",
            overlay::header(
                &of,
                "the traffic this overlay renders, checked at every render"
            ),
            body
        ),
    }
}

fn refusal(r: &EnvironmentRender, v: &Violation) -> Diagnostic {
    let mut d = r.stage_at.clone();
    d.message = format!("{} [{}]", v.message, v.rule);
    let hint = if v.rule == "unchanged-environment-does-not-change" {
        format!(
            "{}; to accept a reviewed change of this environment: `--accept-change {}`",
            v.hint, r.environment
        )
    } else {
        v.hint.clone()
    };
    d.hint(hint)
}

/// The traffic a render moves against what its overlay on disk renders: `None` when there is
/// no record to compare with.
pub fn delta(r: &EnvironmentRender) -> Option<invariants::Delta> {
    Some(invariants::delta(
        r.traffic_before.as_ref()?,
        r.model.as_ref()?,
    ))
}

/// A model, for callers that hold none yet.
pub fn model_of(objects: &[Value]) -> Model {
    invariants::model(objects)
}

/// How the traffic model names a workload of the base: `ns/name`, or `name` without a
/// namespace.
pub fn named(base: &[Value], kind: &str, name: &str) -> String {
    base.iter()
        .find(|o| o["kind"] == kind && o.at("/metadata/name").and_then(Value::as_str) == Some(name))
        .and_then(|o| o.at("/metadata/namespace").and_then(Value::as_str))
        .map_or(name.to_string(), |ns| format!("{ns}/{name}"))
}

/// `name` in the namespace of `beside` (`ns/other` → `ns/name`).
pub fn beside(beside: &str, name: &str) -> String {
    beside
        .rsplit_once('/')
        .map_or(name.to_string(), |(ns, _)| format!("{ns}/{name}"))
}
