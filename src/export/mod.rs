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

/// Writes each object to `<dir>/<file>`: never over a file canaryplan did not export, never
/// through a link; each file replaced whole (a sibling written, then renamed over it).
pub fn write(
    dir: &std::path::Path,
    e: &Exported,
    plan_file: &str,
    target: Target,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::error::Error;
    std::fs::create_dir_all(dir).map_err(|err| Error::io("create", dir, &err))?;
    let mut written = Vec::new();
    for o in &e.objects {
        let path = dir.join(&o.file);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            let ours = meta.is_file()
                && std::fs::read_to_string(&path)
                    .is_ok_and(|t| t.starts_with("# Exported by canaryplan"));
            if !ours {
                return Err(Diagnostic::new(format!(
                    "{} exists and was not exported by canaryplan",
                    path.display()
                ))
                .hint("move it away, or export into another directory")
                .into());
            }
        }
        let text = format!(
            "{}{}",
            header(o, plan_file, target, &e.notes),
            yaml::to_yaml(&o.object)
        );
        let tmp = dir.join(format!(".{}.canaryplan-tmp", o.file));
        std::fs::write(&tmp, text).map_err(|err| Error::io("write", &tmp, &err))?;
        std::fs::rename(&tmp, &path).map_err(|err| Error::io("write", &path, &err))?;
        written.push(path);
    }
    Ok(written)
}
