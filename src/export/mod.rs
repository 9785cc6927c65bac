//! `canaryplan export TARGET`: the objects of an in-cluster controller that does what a plan
//! does, for teams that want one (or move between the two models). Each kind exports what it
//! can (`kinds::Plan::export`, in the kind's folder); this module holds what they share. What
//! the target cannot express is returned as notes (printed as header comments and on stderr;
//! `--strict` refuses them), never dropped silently.

use serde_json::Value;

use crate::error::{Diagnostic, Result};
use crate::yaml;

/// How Argo Rollouts weights traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// DestinationRule subsets (`canarySubsetName`/`stableSubsetName`).
    Subset,
    /// Two Services, `canaryService`/`stableService`.
    Host,
}

/// A controller the plan can be handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Argo Rollouts, with subset-level (or `host`) Istio routing, or its Gateway API plugin.
    ArgoRollouts(Routing),
    /// Alibaba Service Mesh lanes (LanePlan).
    Asm,
    /// Kruise Rollout.
    Kruise,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::ArgoRollouts(_) => "argo-rollouts",
            Target::Asm => "asm",
            Target::Kruise => "kruise",
        }
    }
}

/// One exported object, with the file it is written to and what it is for.
#[derive(Debug, Clone)]
pub struct Object {
    pub file: String,
    pub about: String,
    pub object: Value,
}

impl Object {
    pub fn new(file: String, about: &str, object: Value) -> Object {
        Object {
            file,
            about: about.to_string(),
            object,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Exported {
    pub objects: Vec<Object>,
    /// What the target cannot express of the plan.
    pub notes: Vec<String>,
}

/// The exported objects as one YAML stream, each headed by what it is and what the target
/// cannot express.
pub fn to_stream(e: &Exported, plan_file: &str, target: Target) -> String {
    let mut out = String::new();
    for (i, o) in e.objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&header(o, plan_file, target, &e.notes));
        out.push_str(&yaml::to_yaml(&o.object));
    }
    out
}

/// The comment heading one exported file.
pub fn header(o: &Object, plan_file: &str, target: Target, notes: &[String]) -> String {
    let mut h = format!(
        "# Exported by canaryplan from {plan_file} for {}: {}.\n",
        target.name(),
        o.about
    );
    for n in notes {
        h.push_str(&format!("# Not expressed: {n}.\n"));
    }
    h
}

/// Ends the header of each file `export --output` writes: the SHA-256 of the object below. A
/// file whose object still matches it is canaryplan's, unedited, and is replaced; anything else
/// (edited by hand, a user's file, a header copied onto one) is kept unless `--force`.
const DIGEST_LINE: &str = "# sha256 of the object below: ";

/// Writes each object to `<dir>/<file>`, `dir` inside the repository of the plan at
/// `plan_path`: never through a link, never over a file canaryplan did not export (or that was
/// edited since) unless `force`; each file replaced whole. Every file is checked before the
/// first is written.
pub fn write(
    plan_path: &std::path::Path,
    dir: &std::path::Path,
    e: &Exported,
    target: Target,
    force: bool,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::fsio::{Existing, Root};
    let plan_file = plan_path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = Root::discover(plan_path.parent().unwrap_or(std::path::Path::new("")))?;
    let out = root.open_dir(dir, true)?;
    let ours = |bytes: &[u8]| -> std::result::Result<(), Diagnostic> {
        if force || exported_unedited(bytes) {
            return Ok(());
        }
        Err(Diagnostic::new(
            "exists and was not exported by canaryplan, or was edited since (its sha256 line does not match); refusing to replace it",
        )
        .hint("move it away or export into another directory; `--force` replaces it"))
    };
    let files: Vec<(&Object, String)> = e
        .objects
        .iter()
        .map(|o| {
            let object = yaml::to_yaml(&o.object);
            let text = format!(
                "{}{DIGEST_LINE}{}\n{object}",
                header(o, &plan_file, target, &e.notes),
                sha256_hex(object.as_bytes())
            );
            (o, text)
        })
        .collect();
    // All checked before the first is written: a refusal leaves every file as it was.
    for (o, _) in &files {
        out.check(&o.file, &Existing::Replace { ours: &ours })?;
    }
    let mut written = Vec::new();
    for (o, text) in &files {
        out.write(&o.file, text.as_bytes(), Existing::Replace { ours: &ours })?;
        written.push(out.path(&o.file));
    }
    Ok(written)
}

/// Whether `bytes` are a file `export --output` wrote and no one edited since.
fn exported_unedited(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    if !text.starts_with("# Exported by canaryplan from ") {
        return false;
    }
    let Some((_, rest)) = text.split_once(&format!("\n{DIGEST_LINE}")) else {
        return false;
    };
    rest.split_once('\n')
        .is_some_and(|(digest, object)| digest == sha256_hex(object.as_bytes()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
