//! Plan kinds. Each kind is a folder owning its plan file, its checks, its stage model, what
//! each stage renders, its status, its edits and its exports; it implements `Plan`, the one
//! interface the commands use, and registers itself in `registry::KINDS` (one line). What kinds share —
//! located errors, the stage ladder and the one-step rule, environments, overlay and stream
//! output — lives outside them, and below: no kind imports another kind.

pub mod canary;
pub mod gateway_upgrade;
pub mod lanes;
pub mod promise;
pub mod registry;
pub mod revision_upgrade;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::base::Base;
use crate::error::{Diagnostic, Result};
use crate::export::{Exported, Target};
use crate::fsio::Root;
use crate::render::{EnvironmentRender, Mode};
use crate::status::EnvironmentStatus;
use crate::templates::Templates;
use crate::yaml::Source;

/// How a kind is found and loaded.
pub struct Registration {
    /// The `kind:` of its plan files.
    pub kind: &'static str,
    /// Parses and checks a plan file of this kind.
    pub load: fn(Arc<Source>, Root) -> Result<AnyPlan>,
    /// The JSON Schema of its plan file.
    pub schema: fn() -> schemars::Schema,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The next weight in `steps`, or `to`, once the current step's pause has passed (git
    /// history); `approve` moves on from `pause: manual`, `force` when git cannot tell.
    Promote {
        to: Option<u8>,
        approve: bool,
        force: bool,
    },
    /// A LanePlan: one lane's ingress weight (the next step, or `to`), or with `service` one
    /// service of the lane (its lane requests go to the baseline, which runs the lane's image).
    PromoteLane {
        lane: String,
        service: Option<String>,
        to: Option<u8>,
    },
    /// Weight 0: all traffic back on the stable copy.
    Abort,
    /// The next stage.
    Advance,
}

/// A checked edit, ready to be written.
#[derive(Debug)]
pub struct Edit {
    pub path: PathBuf,
    pub old_text: String,
    pub new_text: String,
    /// What changed, e.g. `production: weight 5 → 25`.
    pub change: String,
    pub commit_message: String,
    /// What the user should know about the step (warnings, how to go on).
    pub notes: Vec<String>,
    /// The plan as edited.
    pub plan: AnyPlan,
}

/// A checked plan of any kind.
pub type AnyPlan = Box<dyn Plan>;

/// What every command asks of a plan, whatever its kind.
pub trait Plan: std::fmt::Debug + Send + Sync {
    /// The plan file.
    fn path(&self) -> &Path;
    /// Its environments, in the order written.
    fn environments(&self) -> Vec<String>;
    /// Renders the environments `only` (all when empty), in memory, checked.
    fn render(
        &self,
        only: &[String],
        templates: &Templates,
        mode: Mode,
    ) -> Result<Vec<EnvironmentRender>>;
    /// Every environment of the plan rendered against `base` (given in memory) as final
    /// streams: for fuzzing and benchmarks.
    fn render_with(&self, base: &Base, templates: &Templates) -> Result<Vec<String>>;
    /// Where each environment stands.
    fn status(&self, templates: &Templates) -> Vec<EnvironmentStatus>;
    /// The edit of `action` on environment `env`, checked like `validate` would, not written.
    fn edit(&self, env: &str, action: Action, templates: &Templates) -> Result<Edit>;
    /// Where requests go in environment `env`, read from its final manifests.
    fn explain(&self, env: &str, templates: &Templates) -> Result<Explained>;
    /// The objects of an in-cluster controller that does what the plan does.
    /// `namespace`: where services whose base names none run (a LanePlan's `asm`, `kruise`).
    fn export(
        &self,
        env: Option<&str>,
        target: Target,
        namespace: Option<&str>,
    ) -> Result<Exported> {
        let _ = (env, namespace);
        Err(Diagnostic::new(format!(
            "`export {}` has no counterpart for this kind of plan",
            target.name()
        ))
        .in_file(self.path())
        .hint("render it: its stages are the procedure")
        .into())
    }
}

/// `explain`'s answer for one environment, in both of its formats.
#[derive(Debug)]
pub struct Explained {
    pub json: serde_json::Value,
    pub text: String,
    /// No route is broken.
    pub ok: bool,
}

/// The environment `explain` shows: the one asked for, or the plan's only one.
pub fn one_environment(plan: &dyn Plan, wanted: Option<&str>) -> Result<String> {
    match (wanted, plan.environments().as_slice()) {
        (Some(name), _) => Ok(name.to_string()),
        (None, [one]) => Ok(one.clone()),
        (None, _) => Err(Diagnostic::new(
            "explain shows one environment, and the plan has several",
        )
        .hint("choose one with --env E")
        .into()),
    }
}

/// The `kind:` of a plan file, read before the file is parsed as that kind (`None` when the
/// file has none, or is not a mapping: the CanaryPlan parser then says what is wrong). A
/// top-level key is at column 0 of a block mapping, and no scalar's content can be (it would
/// be indented): that line is read without a second parse of the file; a flow-style file is
/// parsed for it.
pub fn kind_of(source: &Source) -> Option<String> {
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    let line = source.text.lines().find_map(|l| {
        let v = l.strip_prefix("kind:")?;
        let v = v.split(" #").next().unwrap_or_default().trim();
        Some(v.trim_matches(['"', '\'']).to_string())
    });
    if let Some(k) = line.filter(|k| !k.is_empty()) {
        return Some(k);
    }
    serde_saphyr::from_str_with_options::<KindOnly>(&source.text, crate::yaml::options())
        .ok()
        .and_then(|k| k.kind)
}

/// What a kind's environment render needs besides its objects, to be written as an overlay and
/// checked against the one on disk.
pub struct Written<'a> {
    pub plan_name: &'a str,
    pub plan_path: &'a std::path::Path,
    pub plan_dir: &'a std::path::Path,
    pub root: &'a crate::fsio::Root,
    pub output_dir: std::path::PathBuf,
    pub environment: &'a str,
    pub stage: &'a str,
    /// The kind's stages, in order.
    pub ladder: &'a [&'a str],
    /// Where the plan sets the stage (a diagnostic without a message yet).
    pub stage_at: crate::Diagnostic,
    /// Each base, with where the plan names it (a diagnostic without a message yet).
    pub bases: Vec<(&'a crate::base::Base, crate::Diagnostic)>,
    /// Where requests go, in a few words, for summaries.
    pub traffic: String,
    /// What the stage promises, checked on the final objects (`promise::keep`).
    pub promise: promise::Promise,
}

/// One environment's render of any kind: its overlay files (referencing every base) and the
/// state on disk, with the one-step rule of the kind's ladder.
pub fn environment_render(
    w: Written<'_>,
    rendered: &crate::rendered::Rendered,
    objects: Vec<serde_json::Value>,
    mode: crate::Mode,
) -> crate::Result<crate::EnvironmentRender> {
    use crate::output::overlay::{self, OverlayOf};
    let (files, on_disk, existing) = match mode {
        crate::Mode::Stream => (Vec::new(), None, Vec::new()),
        crate::Mode::Overlay => {
            let mut refs = Vec::new();
            let mut d = crate::error::Diagnostics::default();
            for (b, at) in &w.bases {
                if !b.is_kustomization {
                    let mut e = at.clone();
                    e.message = format!(
                        "the base {} is not a kustomize directory, so an overlay cannot reference it",
                        b.path.display()
                    );
                    d.push(e.hint("add a kustomization.yaml listing the base's files under `resources:`, or use `render --stdout`"));
                    continue;
                }
                match overlay::relative(&w.output_dir, &b.path) {
                    Some(r) if !refs.contains(&r) => refs.push(r),
                    Some(_) => {}
                    None => {
                        let mut e = at.clone();
                        e.message = format!(
                            "cannot reach the base {} from the overlay {}",
                            b.path.display(),
                            w.output_dir.display()
                        );
                        d.push(
                            e.hint("keep the plan, its bases and its output under one directory"),
                        );
                    }
                }
            }
            d.into_result()?;
            overlay::check_target(w.plan_dir, &w.output_dir, w.root)?;
            let existing = overlay::read_files(&w.output_dir)?;
            overlay::check_ours(&w.output_dir, &existing)?;
            let of = OverlayOf {
                plan_name: w.plan_name,
                plan_path: w.plan_path,
                environment: w.environment,
                stage: w.stage,
                weight: None,
            };
            let files = overlay::files_of(&of, refs, rendered);
            let on_disk = overlay::state_of(&w.output_dir, &existing)?;
            if let Some(disk) = &on_disk {
                crate::ladder::check_step(
                    w.ladder,
                    w.environment,
                    &disk.stage,
                    w.stage,
                    w.stage_at.clone(),
                )?;
            }
            (files, on_disk, existing)
        }
    };
    let base: Vec<serde_json::Value> = w
        .bases
        .iter()
        .flat_map(|(b, _)| b.objects.iter().map(|o| o.value.clone()))
        .collect();
    let mut r = crate::EnvironmentRender {
        plan: w.plan_path.to_path_buf(),
        environment: w.environment.to_string(),
        stage: w.stage.to_string(),
        first_stage: w.ladder.first() == Some(&w.stage),
        traffic: w.traffic,
        dir: w.output_dir,
        files,
        pods: crate::traffic::workloads_of(&objects),
        objects,
        on_disk,
        existing,
        patched_selector: None,
        stage_at: w.stage_at,
        model: None,
        accepted: Vec::new(),
        base_model: None,
        declared: None,
        traffic_before: None,
    };
    promise::keep(&mut r, &promise::model_of(&base), w.promise, mode, w.root)?;
    Ok(r)
}

/// Whether an environment's overlay on disk is what `render` writes, from a render of it.
pub fn overlay_state(r: crate::Result<Vec<crate::EnvironmentRender>>) -> crate::status::Overlay {
    use crate::status::Overlay;
    match r {
        Err(err) => Overlay::Refused {
            reason: err
                .diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default(),
        },
        Ok(r) => match r
            .first()
            .map(|r| (r.on_disk.is_some(), crate::output::diff::changes(r)))
        {
            Some((false, _)) | None => Overlay::Missing,
            Some((true, Ok(c))) if c.is_empty() => Overlay::Current,
            Some((true, Ok(c))) => Overlay::Stale { files: c.len() },
            Some((true, Err(err))) => Overlay::Refused {
                reason: err.to_string(),
            },
        },
    }
}

/// The stage after `stage` in a kind's ladder.
pub fn next_stage<'a>(ladder: &[&'a str], stage: &str) -> Option<&'a str> {
    crate::ladder::next(ladder, stage)
}

/// Renders the environments `only` (all when empty) of a plan whose environments are named by
/// `name`: an unknown name is refused with the plan's names; every environment's problems are
/// reported together.
pub fn render_each<E>(
    plan_path: &std::path::Path,
    environments: &[E],
    name: impl Fn(&E) -> &str,
    only: &[String],
    mut render: impl FnMut(&E) -> crate::Result<crate::EnvironmentRender>,
) -> crate::Result<Vec<crate::EnvironmentRender>> {
    let mut d = crate::error::Diagnostics::default();
    let names: Vec<&str> = environments.iter().map(&name).collect();
    for wanted in only {
        if !names.contains(&wanted.as_str()) {
            let hint = match crate::names::did_you_mean(wanted, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? the plan has {}", names.join(", ")),
                None => format!("the plan has {}", names.join(", ")),
            };
            d.push(
                crate::Diagnostic::new(format!("the plan has no environment `{wanted}`"))
                    .in_file(plan_path)
                    .hint(hint),
            );
        }
    }
    d.into_result()?;
    let mut d = crate::error::Diagnostics::default();
    let mut out = Vec::new();
    for e in environments
        .iter()
        .filter(|e| only.is_empty() || only.iter().any(|o| o == name(e)))
    {
        if let Some(r) = d.take(render(e)) {
            out.push(r);
        }
    }
    d.into_result()?;
    Ok(out)
}

/// A kind's base, relative to its plan, or where the plan names one that does not exist.
pub fn load_base(
    dir: &std::path::Path,
    base: &crate::yaml::At<String>,
    root: &crate::fsio::Root,
    at: crate::Diagnostic,
) -> crate::Result<crate::base::Base> {
    let path = dir.join(&base.value);
    if std::fs::symlink_metadata(&path).is_err() {
        let mut e = at;
        e.message = format!("the base `{}` does not exist", base.value);
        return Err(e
            .hint(format!(
                "the path is relative to the plan file; looked for {}",
                path.display()
            ))
            .into());
    }
    crate::base::load(&path, root)
}

/// `explain` for a kind whose final manifests are read like a CanaryPlan's: the routes of the
/// environment's final stream, against its base.
pub fn explain_routes(renders: Vec<EnvironmentRender>, base: &Base) -> Explained {
    let objects = renders
        .into_iter()
        .next()
        .map(|r| r.objects)
        .unwrap_or_default();
    let e = crate::explain::explain_meshes(
        &crate::traffic::Mesh::new(&objects),
        &crate::traffic::Mesh::of(base.objects.iter().map(|o| &o.value)),
    );
    Explained {
        json: serde_json::to_value(&e).unwrap_or_default(),
        text: crate::explain::to_text(&e),
        ok: e.problems.is_empty(),
    }
}
