//! `canaryplan export TARGET`: the objects of an in-cluster controller that does what a plan
//! does, for teams that want one (or move between the two models). Each target is a module of
//! the plan kind it reads; what the target cannot express is returned as notes (printed as
//! header comments and on stderr; `--strict` refuses them), never dropped silently.

pub mod argo_rollouts;
pub mod facts;
pub mod kruise;

use serde_json::Value;

use crate::error::{Diagnostic, Result};
use crate::{AnyPlan, yaml};

/// A controller the plan can be handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Argo Rollouts, with subset-level (or `host`) Istio routing, or its Gateway API plugin.
    ArgoRollouts(argo_rollouts::Routing),
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

/// The objects of `target` for environment `env` of `plan`; `namespace`: where a LanePlan's
/// services without one in base run.
pub fn export(
    plan: &AnyPlan,
    env: Option<&str>,
    target: Target,
    namespace: Option<&str>,
) -> Result<Exported> {
    if namespace.is_some() && !matches!(plan, AnyPlan::Lanes(_)) {
        return Err(
            Diagnostic::new("--namespace goes with `export asm|kruise` of a LanePlan")
                .hint("a CanaryPlan's objects take the namespace of its base")
                .into(),
        );
    }
    match plan {
        AnyPlan::Lanes(p) => {
            let e = match env {
                Some(name) => match p.environments.iter().find(|e| e.name.value == name) {
                    Some(e) => Some(e),
                    None => {
                        return Err(Diagnostic::new(format!(
                            "the plan has no environment `{name}`"
                        ))
                        .in_file(&p.path)
                        .into());
                    }
                },
                None => None,
            };
            match target {
                Target::Asm => crate::kinds::lanes::export::asm(p, e, namespace),
                Target::Kruise => crate::kinds::lanes::export::kruise(p, namespace),
                Target::ArgoRollouts(_) => Err(Diagnostic::new(format!(
                    "`export argo-rollouts` reads a CanaryPlan, and {} is a LanePlan",
                    p.path.display()
                ))
                .in_file(&p.path)
                .hint("Argo Rollouts has no lanes: export a LanePlan for `asm` or `kruise`")
                .into()),
            }
        }
        AnyPlan::GatewayUpgrade(_) | AnyPlan::RevisionUpgrade(_) => Err(Diagnostic::new(format!(
            "`export {}` reads CanaryPlans and LanePlans; a mesh upgrade has no controller to hand it to",
            target.name()
        ))
        .hint("render it: its stages are the procedure")
        .into()),
        AnyPlan::Canary(p) => match target {
            Target::ArgoRollouts(routing) => argo_rollouts::export(p, env, routing),
            Target::Kruise => kruise::export(p, env),
            Target::Asm => Err(Diagnostic::new(format!(
                "`export asm` reads a LanePlan, and {} is a CanaryPlan",
                p.path.display()
            ))
            .in_file(&p.path)
            .hint("ASM lanes span a call chain: write a LanePlan (`kind: LanePlan`), or export this plan for `argo-rollouts` or `kruise`")
            .into()),
        },
    }
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
