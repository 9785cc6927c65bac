//! A CanaryPlan's environments rendered: the stage model of each environment → its objects
//! (per traffic backend) → the final stream, checked by `safety`, and the overlay files with
//! the state on disk they move from.

use crate::pointer::Pointer as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::check::{self, CheckedPlan};
use super::objects;
use super::safety;
use super::stage::{Stage, StageModel};
use crate::base;
use crate::error::{Diagnostic, Diagnostics, Error, Result};
use crate::output::{
    self,
    overlay::{self, DiskState},
};
use crate::render::{EnvironmentRender, Mode, PatchedSelector};
use crate::{Templates, explain, names, selector, traffic, yaml};

/// Renders the environments `only` (all when empty) of a checked plan, in memory.
pub fn render_plan(
    plan: &CheckedPlan,
    only: &[String],
    templates: &Templates,
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    let mut d = Diagnostics::default();
    for name in only {
        if plan.environment(name).is_none() {
            let names: Vec<&str> = plan
                .environments
                .iter()
                .map(|e| e.name.value.as_str())
                .collect();
            let hint = match names::did_you_mean(name, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? the plan has {}", names.join(", ")),
                None => format!("the plan has {}", names.join(", ")),
            };
            d.push(
                Diagnostic::new(format!("the plan has no environment `{name}`"))
                    .in_file(&plan.path)
                    .hint(hint),
            );
        }
    }
    d.into_result()?;
    let mut d = Diagnostics::default();
    let mut bases: HashMap<PathBuf, base::Base> = HashMap::new();
    // The base's traffic model, once per base (environments usually share one).
    let mut models: HashMap<PathBuf, crate::invariants::Model> = HashMap::new();
    let mut out = Vec::new();
    for env in plan
        .environments
        .iter()
        .filter(|e| only.is_empty() || only.contains(&e.name.value))
    {
        let base_path = plan.dir.join(&env.base.value);
        if !bases.contains_key(&base_path) {
            let loaded = base::load(&base_path, &plan.root)
                .map_err(|e| locate_missing_base(plan, env, &base_path, e));
            match d.take(loaded) {
                Some(b) => {
                    bases.insert(base_path.clone(), b);
                }
                None => continue,
            }
        }
        let Some(base) = bases.get(&base_path) else {
            continue;
        };
        let model = models.entry(base_path.clone()).or_insert_with(|| {
            let objects: Vec<serde_json::Value> =
                base.objects.iter().map(|o| o.value.clone()).collect();
            crate::invariants::model(&objects)
        });
        if let Some(r) = d.take(render_environment_in(
            plan, env, base, model, templates, mode,
        )) {
            out.push(r);
        }
    }
    d.into_result()?;
    Ok(out)
}

fn locate_missing_base(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    path: &Path,
    e: Error,
) -> Error {
    if std::fs::symlink_metadata(path).is_ok() {
        return e;
    }
    plan.diag(
        env.base.pos,
        format!("the base `{}` does not exist", env.base.value),
    )
    .hint(format!(
        "the path is relative to the plan file; looked for {}",
        path.display()
    ))
    .into()
}

pub fn render_environment(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    base: &base::Base,
    templates: &Templates,
    mode: Mode,
) -> Result<EnvironmentRender> {
    let objects: Vec<serde_json::Value> = base.objects.iter().map(|o| o.value.clone()).collect();
    let model = crate::invariants::model(&objects);
    render_environment_in(plan, env, base, &model, templates, mode)
}

/// `render_environment` with the base's traffic model already computed.
fn render_environment_in(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    base: &base::Base,
    base_model: &crate::invariants::Model,
    templates: &Templates,
    mode: Mode,
) -> Result<EnvironmentRender> {
    let cx = objects::Context::new(plan, env, base, templates)?;
    super::analysis::check_environment(plan, env, cx.service.namespace())?;
    let rendered = objects::render(&cx)?;
    let objects = output::stream::final_objects(base, &rendered)?;
    safety::check(&cx, &objects)?;
    let dir = plan.output_dir(&env.name.value);
    let patched_selector = cx.model.service_selector.then(|| PatchedSelector {
        namespace: cx.service.namespace().map(str::to_string),
        service: cx.service.name.clone(),
        selector: objects
            .iter()
            .find(|o| objects::Target::of(cx.service).matches(o))
            .map(|o| selector::labels_of(o.at("/spec/selector")))
            .unwrap_or_default(),
        at: plan.diag(plan.selector_pos, String::new()),
    });
    let (files, on_disk, existing) = match mode {
        Mode::Stream => (Vec::new(), None, Vec::new()),
        Mode::Overlay => {
            if !base.is_kustomization {
                return Err(plan
                    .diag(env.base.pos, format!("the base `{}` is not a kustomize directory, so an overlay cannot reference it", env.base.value))
                    .hint("add a kustomization.yaml listing the base's files under `resources:`, or use `render --stdout`")
                    .into());
            }
            overlay::check_target(&plan.dir, &dir, &plan.root)?;
            let existing = overlay::read_files(&dir)?;
            overlay::check_ours(&dir, &existing)?;
            let files = overlay_files(plan, env, &base.path, &rendered)?;
            // An unchanged kustomization records this very stage: no need to parse it.
            let on_disk = match existing.iter().find(|f| f.name == overlay::KUSTOMIZATION) {
                Some(k) if files.iter().any(|f| f == k) => Some(DiskState {
                    stage: env.model.stage.name().to_string(),
                    weight: env.model.weight,
                }),
                _ => overlay::state_of(&dir, &existing)?,
            };
            check_transition(plan, env, on_disk.as_ref())?;
            (files, on_disk, existing)
        }
    };
    let w = env.model.weights();
    let promise = super::promise::of(plan, env, base);
    let mut r = EnvironmentRender {
        plan: plan.path.clone(),
        environment: env.name.value.clone(),
        stage: env.model.stage.name().to_string(),
        first_stage: env.model.stage == Stage::Prepare,
        traffic: format!("stable {}% / canary {}%", w.stable, w.canary),
        dir,
        files,
        pods: crate::traffic::workloads_of(&objects),
        objects,
        on_disk,
        existing,
        patched_selector,
        stage_at: plan.diag(env.stage.pos, String::new()),
        model: None,
        accepted: Vec::new(),
        base_model: None,
        declared: None,
        traffic_before: None,
    };
    crate::kinds::promise::keep(&mut r, base_model, promise, mode, &plan.root)?;
    Ok(r)
}

/// The final objects of `env` rendered at the stage `model` describes (another stage than the
/// plan's, for `status` and `advance`), checked like a render.
pub fn objects_at(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    model: StageModel,
    templates: &Templates,
) -> Result<Vec<serde_json::Value>> {
    let base_path = plan.dir.join(&env.base.value);
    let base = base::load(&base_path, &plan.root)
        .map_err(|e| locate_missing_base(plan, env, &base_path, e))?;
    let cx = objects::Context::at(plan, env, model, &base, templates)?;
    let rendered = objects::render(&cx)?;
    let objects = output::stream::final_objects(&base, &rendered)?;
    safety::check(&cx, &objects)?;
    Ok(objects)
}

/// The traffic table of one environment: its final objects as `render --stdout` would print
/// them (without refusing: `explain` shows a broken table too), read against its base.
pub fn explain_environment(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    templates: &Templates,
) -> Result<explain::Explanation> {
    let base_path = plan.dir.join(&env.base.value);
    let base = base::load(&base_path, &plan.root)
        .map_err(|e| locate_missing_base(plan, env, &base_path, e))?;
    let cx = objects::Context::new(plan, env, &base, templates)?;
    let rendered = objects::render(&cx)?;
    let objects = output::stream::final_objects(&base, &rendered)?;
    Ok(explain::explain_meshes(
        &traffic::Mesh::new(&objects),
        &traffic::Mesh::of(base.objects.iter().map(|o| &o.value)),
    ))
}

/// Every environment of `plan` rendered against `base` (given in memory), as final streams:
/// the same path through checks, render and safety checks as `render --stdout`.
pub fn render_text(
    plan: &CheckedPlan,
    base: &base::Base,
    templates: &Templates,
) -> Result<Vec<String>> {
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for env in &plan.environments {
        if let Some(r) = d.take(render_environment(plan, env, base, templates, Mode::Stream)) {
            out.push(yaml::to_stream(&r.objects));
        }
    }
    d.into_result()?;
    Ok(out)
}

/// The overlay's files, sorted by name.
fn overlay_files(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    base_dir: &Path,
    rendered: &crate::rendered::Rendered,
) -> Result<Vec<overlay::File>> {
    let overlay = plan.output_dir(&env.name.value);
    let base_ref = overlay::relative(&overlay, base_dir).ok_or_else(|| {
        plan.diag(
            env.base.pos,
            format!(
                "cannot reach the base {} from the overlay {}",
                base_dir.display(),
                overlay.display()
            ),
        )
        .hint("keep the plan, its base and its output under one directory")
    })?;
    let of = overlay::OverlayOf {
        plan_name: &plan.name,
        plan_path: &plan.path,
        environment: &env.name.value,
        stage: env.model.stage.name(),
        weight: env.model.weight,
    };
    Ok(overlay::files_of(&of, vec![base_ref], rendered))
}

/// Refuses a stage that jumps more than one step ahead of the overlay on disk, and cleanup
/// before the traffic is all on the canary. Going back (a rollback) is always allowed.
fn check_transition(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    disk: Option<&DiskState>,
) -> Result<()> {
    let Some(disk) = disk else {
        return Ok(());
    };
    let to = env.model.stage;
    let names = Stage::ALL.map(Stage::name);
    crate::ladder::check_step(
        &names,
        &env.name.value,
        &disk.stage,
        to.name(),
        plan.diag(env.stage.pos, String::new()),
    )?;
    if to == Stage::Cleanup1 && disk.stage == Stage::Shift.name() && disk.weight != Some(100) {
        let w = disk.weight.map_or("unknown".to_string(), |w| w.to_string());
        return Err(plan
            .diag(env.stage.pos, format!("cleanup-1 removes the stable copy, but the overlay on disk still sends it traffic (weight {w})"))
            .hint("promote to weight 100 first, render and sync that, then advance to cleanup-1")
            .into());
    }
    Ok(())
}
