//! The plan `init --from-rollout` would write, checked before anything is written: it reads
//! back as the data it was built from, and each environment renders at `prepare` and `route`
//! (every check `validate` runs) against the base as it will be once the printed objects
//! replace the Rollout and its routes.

use crate::pointer::Pointer as _;
use std::path::Path;

use serde_json::Value;

use crate::base::{self, Base};
use crate::error::{Diagnostic, Error, Result};
use crate::fsio::Root;
use crate::yaml::{self, Source};

/// What the printed objects replace in base.
pub struct Replacements {
    /// The Rollout's name.
    pub rollout: String,
    /// The Deployment in its place (or, with a workloadRef, the one it points to, changed).
    pub deployment: Value,
    pub workload_ref: bool,
    /// Routing objects that change (found by kind and name).
    pub changed: Vec<Value>,
}

fn id(v: &Value) -> (Option<&str>, Option<&str>) {
    (
        v.get("kind").and_then(Value::as_str),
        v.at("/metadata/name").and_then(Value::as_str),
    )
}

/// The base of the Rollout's folder with the replacements made.
fn changed_base(dir: &Path, root: &Root, file: &Path, r: &Replacements) -> Result<Base> {
    let mut base = base::load(dir, root)?;
    if !base.is_kustomization {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("list", dir, &e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && !n.starts_with('.'))
            .collect();
        files.sort();
        return Err(Diagnostic::new(format!(
            "the Rollout's folder {} is not a kustomize directory, and a plan's overlays build on their base with kustomize",
            dir.display()
        ))
        .in_file(file)
        .hint(format!(
            "add {} with `resources: [{}]` (the files Argo CD applies today), then run init again",
            dir.join("kustomization.yaml").display(),
            files.join(", ")
        ))
        .into());
    }
    base.objects
        .retain(|o| !(r.workload_ref && o.is("Rollout", &r.rollout)));
    for o in &mut base.objects {
        let replacement = if o.is("Rollout", &r.rollout) {
            Some(&r.deployment)
        } else {
            r.changed
                .iter()
                .chain(std::iter::once(&r.deployment))
                .find(|c| id(c) == (Some(o.kind.as_str()), Some(o.name.as_str())))
        };
        if let Some(v) = replacement {
            o.value = v.clone();
            o.kind = id(v).0.unwrap_or_default().to_string();
            o.api_version = v
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        }
    }
    Ok(base)
}

/// Why the plan cannot be written, said about the Rollout (the plan is not on disk).
fn not_valid(file: &Path, stage: &str, e: Error) -> Error {
    let mut out: Vec<Diagnostic> = e
        .diagnostics
        .into_iter()
        .map(|d| {
            let mut n = Diagnostic::new(format!(
                "the plan init would write fails `validate` at stage {stage}: {}",
                d.message
            ))
            .in_file(file);
            n.hint = d.hint;
            n
        })
        .collect();
    out.push(
        Diagnostic::new("init wrote nothing: a plan must validate against the base with the printed objects in place")
            .in_file(file)
            .hint("change the Rollout's folder as the errors above say, then run init again"),
    );
    out.into()
}

pub fn plan_validates(
    text: &str,
    plan: &Value,
    plan_path: &Path,
    root: &Root,
    dir: &Path,
    file: &Path,
    r: &Replacements,
) -> Result<()> {
    let source = Source::from_text(plan_path, text.to_string());
    let back = yaml::parse_values(&source)?;
    if back.first() != Some(plan) || back.len() != 1 {
        return Err(Diagnostic::new(
            "the plan init built does not read back as written (a canaryplan bug: please report it with the Rollout)",
        )
        .in_file(file)
        .into());
    }
    let base = changed_base(
        if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        },
        root,
        file,
        r,
    )?;
    let templates = crate::Templates::builtin();
    for stage in ["prepare", "route"] {
        let mut staged = plan.clone();
        if let Some(envs) = staged
            .at_mut("/spec/environments")
            .and_then(Value::as_object_mut)
        {
            for (_, e) in envs.iter_mut() {
                *e = serde_json::json!({"stage": stage});
            }
        }
        let source = Source::from_text(plan_path, yaml::to_yaml(&staged));
        let checked = crate::kinds::canary::plan::Plan::parse_in(source, root.clone())
            .and_then(crate::kinds::canary::check::check)
            .map_err(|e| not_valid(file, stage, e))?;
        for env in &checked.environments {
            crate::kinds::canary::render::render_environment(
                &checked,
                env,
                &base,
                &templates,
                crate::Mode::Stream,
            )
            .map_err(|e| not_valid(file, stage, e))?;
        }
    }
    Ok(())
}
