//! canaryplan renders canary-release manifests for GitOps. Data flows one way:
//!
//! plan file (`plan`) → checked plan (`check`) → stage model per environment (`stage`) →
//! objects (`objects`, checked by `safety`) → output (`output`: overlay, stream, diff).
//!
//! The library never prints and never exits; the binary owns the terminal.

// Input must never panic: no indexing that could go out of bounds (and, by Cargo.toml's
// lints, no unwrap/expect/panic).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod analysis;
pub mod argocd;
pub mod base;
pub mod check;
pub mod edit;
pub mod error;
pub mod explain;
pub mod export;
pub mod from_rollout;
pub mod fsio;
pub mod gate;
pub mod init;
pub mod kinds;
pub mod ladder;
pub mod names;
pub mod objects;
pub mod output;
pub mod plan;
pub mod safety;
pub mod selector;
pub mod stage;
pub mod status;
pub mod templates;
pub mod traffic;
pub mod transition;
pub mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use check::CheckedPlan;
use error::Diagnostics;
pub use error::{Diagnostic, Error, Result};
use output::overlay::{self, DiskState, File};
pub use stage::{Stage, StageModel};
pub use templates::Templates;

/// What a render is for: the overlay needs a base kustomize can build and is checked against
/// the overlay on disk; the stream (Argo CD, `--stdout`) needs neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Overlay,
    Stream,
}

/// One environment of one plan, rendered in memory and checked.
#[derive(Debug)]
pub struct EnvironmentRender {
    pub plan: PathBuf,
    pub environment: String,
    /// The stage rendered (its name in the plan kind's ladder).
    pub stage: String,
    /// Whether it is the ladder's first stage (where a release starts).
    pub first_stage: bool,
    /// Where traffic goes at that stage, in a few words (`stable 95% / canary 5%`).
    pub traffic: String,
    /// `<output>/<environment>`.
    pub dir: PathBuf,
    /// The overlay's files (empty in stream mode).
    pub files: Vec<File>,
    /// The final objects: base with every patch applied, plus the new resources.
    pub objects: Vec<Value>,
    /// What the overlay on disk renders, if there is one.
    pub on_disk: Option<DiskState>,
    /// The overlay's files on disk when rendering started.
    pub existing: Vec<File>,
    /// The Service selector as patched at this stage, for checks across plans.
    pub patched_selector: Option<PatchedSelector>,
    /// Where the plan sets this environment's stage (a diagnostic without a message yet).
    pub stage_at: Diagnostic,
}

/// A Service selector canaryplan patched: in one namespace it must select no pods of another
/// plan's apps.
#[derive(Debug, Clone)]
pub struct PatchedSelector {
    pub namespace: Option<String>,
    pub service: String,
    pub selector: plan::Labels,
    /// Where the plan sets it (a diagnostic without a message yet).
    pub at: Diagnostic,
}

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
        if let Some(r) = d.take(render_environment(plan, env, base, templates, mode)) {
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

pub(crate) fn render_environment(
    plan: &CheckedPlan,
    env: &check::EnvironmentPlan,
    base: &base::Base,
    templates: &Templates,
    mode: Mode,
) -> Result<EnvironmentRender> {
    let cx = objects::Context::new(plan, env, base, templates)?;
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
            .map(|o| selector::labels_of(o.pointer("/spec/selector")))
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
            let files = overlay::files(plan, env, &base.path, &rendered)?;
            // An unchanged kustomization records this very stage: no need to parse it.
            let on_disk = match existing.iter().find(|f| f.name == overlay::KUSTOMIZATION) {
                Some(k) if files.iter().any(|f| f == k) => Some(DiskState {
                    stage: env.model.stage.name().to_string(),
                    weight: env.model.weight,
                }),
                _ => overlay::state_of(&dir, &existing)?,
            };
            overlay::check_transition(plan, env, on_disk.as_ref())?;
            (files, on_disk, existing)
        }
    };
    let w = env.model.weights();
    Ok(EnvironmentRender {
        plan: plan.path.clone(),
        environment: env.name.value.clone(),
        stage: env.model.stage.name().to_string(),
        first_stage: env.model.stage == Stage::Prepare,
        traffic: format!("stable {}% / canary {}%", w.stable, w.canary),
        dir,
        files,
        objects,
        on_disk,
        existing,
        patched_selector,
        stage_at: plan.diag(env.stage.pos, String::new()),
    })
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

/// The traffic table of one environment of a mesh upgrade plan (its final manifests against
/// its base), for `explain`.
pub fn explain_any(plan: &AnyPlan, env: Option<&str>) -> Result<explain::Explanation> {
    let (names, base_path, root): (Vec<String>, PathBuf, &fsio::Root) = match plan {
        AnyPlan::GatewayUpgrade(p) => (
            p.environments
                .iter()
                .map(|e| e.name.value.clone())
                .collect(),
            p.dir.join(&p.base.value),
            &p.root,
        ),
        AnyPlan::RevisionUpgrade(p) => (
            p.environments
                .iter()
                .map(|e| e.name.value.clone())
                .collect(),
            p.dir.join(&p.base.value),
            &p.root,
        ),
        _ => {
            return Err(
                Diagnostic::new("explain reads this kind with its own command")
                    .hint("use `canaryplan explain` on the plan file")
                    .into(),
            );
        }
    };
    let only = match (env, names.as_slice()) {
        (Some(e), _) => e.to_string(),
        (None, [one]) => one.clone(),
        (None, _) => {
            return Err(
                Diagnostic::new("explain shows one environment, and the plan has several")
                    .hint("choose one with --env E")
                    .into(),
            );
        }
    };
    let renders = render_any(
        plan,
        std::slice::from_ref(&only),
        &Templates::builtin(),
        Mode::Stream,
    )?;
    let base = base::load(&base_path, root)?;
    let objects = renders
        .into_iter()
        .next()
        .map(|r| r.objects)
        .unwrap_or_default();
    Ok(explain::explain_meshes(
        &traffic::Mesh::new(&objects),
        &traffic::Mesh::of(base.objects.iter().map(|o| &o.value)),
    ))
}

/// Renders every environment of a plan given as text against a base given as text, all in
/// memory, and returns each environment's final stream. For fuzzing and benchmarks: the same
/// path through parse, check, render and safety checks as `render --stdout`.
pub fn render_text(plan_text: &str, base_text: &str, templates: &Templates) -> Result<Vec<String>> {
    let source = yaml::Source::from_text(Path::new(plan::DEFAULT_PLAN), plan_text.to_string());
    let base = base::from_text(Path::new("base.yaml"), base_text.to_string())?;
    let root = || {
        fsio::Root::discover(Path::new("")).unwrap_or(fsio::Root {
            dir: PathBuf::new(),
        })
    };
    match kinds::kind_of(&source).as_deref() {
        // Every service of the chain reads the one base.
        Some(kinds::lanes::plan::KIND) => {
            let plan = kinds::lanes::plan::load_in(source, root())?;
            return kinds::lanes::render_text(&plan, &base);
        }
        Some(kinds::gateway_upgrade::plan::KIND) => {
            let plan = kinds::gateway_upgrade::plan::load_in(source, root())?;
            return kinds::gateway_upgrade::render_text(&plan, &base);
        }
        Some(kinds::revision_upgrade::plan::KIND) => {
            let plan = kinds::revision_upgrade::plan::load_in(source, root())?;
            return kinds::revision_upgrade::render_text(&plan, &base);
        }
        _ => {}
    }
    let plan = check::check(plan::Plan::parse(source)?)?;
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for env in &plan.environments {
        if let Some(r) = d.take(render_environment(
            &plan,
            env,
            &base,
            templates,
            Mode::Stream,
        )) {
            out.push(yaml::to_stream(&r.objects));
        }
    }
    d.into_result()?;
    Ok(out)
}

/// A checked plan of any kind.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per command: its size does not matter
pub enum AnyPlan {
    Canary(CheckedPlan),
    Lanes(kinds::lanes::CheckedLanePlan),
    GatewayUpgrade(kinds::gateway_upgrade::CheckedGatewayUpgrade),
    RevisionUpgrade(kinds::revision_upgrade::CheckedRevisionUpgrade),
}

/// Reads and checks a plan file of any kind (`kind:` picks the module).
pub fn load_any(path: &Path) -> Result<AnyPlan> {
    let (source, root) = plan::Plan::read(path)?;
    match kinds::kind_of(&source).as_deref() {
        Some(kinds::lanes::plan::KIND) => {
            Ok(AnyPlan::Lanes(kinds::lanes::plan::load_in(source, root)?))
        }
        Some(kinds::gateway_upgrade::plan::KIND) => Ok(AnyPlan::GatewayUpgrade(
            kinds::gateway_upgrade::plan::load_in(source, root)?,
        )),
        Some(kinds::revision_upgrade::plan::KIND) => Ok(AnyPlan::RevisionUpgrade(
            kinds::revision_upgrade::plan::load_in(source, root)?,
        )),
        _ => Ok(AnyPlan::Canary(check::check(plan::Plan::parse_in(
            source, root,
        )?)?)),
    }
}

/// Renders the environments `only` of a plan of any kind.
pub fn render_any(
    plan: &AnyPlan,
    only: &[String],
    templates: &Templates,
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    match plan {
        AnyPlan::Canary(p) => render_plan(p, only, templates, mode),
        AnyPlan::Lanes(p) => kinds::lanes::render_plan(p, only, mode),
        AnyPlan::GatewayUpgrade(p) => kinds::gateway_upgrade::render_plan(p, only, mode),
        AnyPlan::RevisionUpgrade(p) => kinds::revision_upgrade::render_plan(p, only, mode),
    }
}

/// Loads, checks and renders several plans, in parallel on the machine's cores; every
/// problem in every plan is reported together, in the order the plans were given.
pub fn render_plans(
    paths: &[PathBuf],
    only: &[String],
    templates: &Templates,
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    let render_one = |p: &PathBuf| render_any(&load_any(p)?, only, templates, mode);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(paths.len());
    let results: Vec<Result<Vec<EnvironmentRender>>> = if workers <= 1 {
        paths.iter().map(render_one).collect()
    } else {
        let chunk = paths.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(render_one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Diagnostic::new(
                            "internal error: a render thread panicked",
                        )
                        .into())]
                    })
                })
                .collect()
        })
    };
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for r in results {
        if let Some(r) = d.take(r) {
            out.extend(r);
        }
    }
    d.into_result()?;
    one_plan_per_overlay(&out)?;
    selectors_apart(&out)?;
    Ok(out)
}

/// Two plans writing their overlays to one directory would overwrite each other.
fn one_plan_per_overlay(renders: &[EnvironmentRender]) -> Result<()> {
    let mut d = Diagnostics::default();
    // The same directory however each plan spells it (`a/out` and `b/../a/out`).
    let key = |p: &Path| {
        let mut out = PathBuf::new();
        for c in std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .components()
        {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let keys: Vec<PathBuf> = renders.iter().map(|r| key(&r.dir)).collect();
    for (i, a) in renders.iter().enumerate() {
        for (j, b) in renders.iter().enumerate().skip(i + 1) {
            if a.plan != b.plan && keys.get(i) == keys.get(j) {
                let mut diag = b.stage_at.clone();
                diag.message = format!(
                    "environment `{}` of this plan and environment `{}` of {} write their overlays to the same directory {}",
                    b.environment,
                    a.environment,
                    a.plan.display(),
                    b.dir.display()
                );
                d.push(diag.hint("give each plan its own `spec.output` directory"));
            }
        }
    }
    d.into_result()
}

/// Without an overlay on disk nothing says which stage the cluster is at, so the "one stage at
/// a time" rule cannot hold: a render starting past `prepare` must be asked for
/// (`--from-scratch`), since it may skip stages in a cluster that was synced from elsewhere.
pub fn refuse_jumps_from_nothing(renders: &[EnvironmentRender], from_scratch: bool) -> Result<()> {
    if from_scratch {
        return Ok(());
    }
    let mut d = Diagnostics::default();
    for r in renders {
        if r.on_disk.is_none() && !r.first_stage {
            let mut diag = r.stage_at.clone();
            diag.message = format!(
                "environment `{}` has no overlay on disk at {}, and the plan starts it at stage {}",
                r.environment,
                r.dir.display(),
                r.stage
            );
            d.push(diag.hint("a release starts at prepare, one stage per commit; if the cluster really is at this stage (a deleted overlay, a new checkout of rendered output), render with --from-scratch"));
        }
    }
    d.into_result()
}

/// Plans rendered together (a monorepo) deploy to the same clusters per environment name: a
/// Service selector one plan patches must not select the pods of another plan's workloads in
/// the same namespace, or that Service would send its traffic to the other app.
fn selectors_apart(renders: &[EnvironmentRender]) -> Result<()> {
    let mut d = Diagnostics::default();
    if !renders.iter().any(|r| r.patched_selector.is_some()) {
        return Ok(());
    }
    let workloads: Vec<_> = renders
        .iter()
        .map(|r| traffic::Mesh::new(&r.objects).workloads())
        .collect();
    // Every pod label, per environment: a selector only needs the workloads that carry its
    // rarest label (a monorepo of hundreds of plans stays linear).
    // (environment, label key, label value) → (render, workload) indices.
    type Index<'a> = HashMap<(&'a str, &'a str, &'a str), Vec<(usize, usize)>>;
    let mut by_label: Index<'_> = HashMap::new();
    for (ri, (r, ws)) in renders.iter().zip(&workloads).enumerate() {
        for (wi, (_, labels)) in ws.iter().enumerate() {
            for (k, v) in labels {
                by_label
                    .entry((r.environment.as_str(), k.as_str(), v.as_str()))
                    .or_default()
                    .push((ri, wi));
            }
        }
    }
    for a in renders {
        let Some(p) = &a.patched_selector else {
            continue;
        };
        let candidates = p
            .selector
            .iter()
            .map(|(k, v)| {
                by_label
                    .get(&(a.environment.as_str(), k.as_str(), v.as_str()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|c| c.len())
            .unwrap_or_default();
        for &(ri, wi) in candidates {
            let (Some(b), Some((w, labels))) =
                (renders.get(ri), workloads.get(ri).and_then(|ws| ws.get(wi)))
            else {
                continue;
            };
            if b.plan == a.plan {
                continue;
            }
            let same_ns =
                w.namespace == p.namespace || w.namespace.is_none() || p.namespace.is_none();
            if same_ns && selector::map_matches(&p.selector, labels) {
                let mut diag = p.at.clone();
                diag.message = format!(
                    "in environment `{}` the patched selector of Service {} ({}) also selects the pods of {w} of {}",
                    a.environment,
                    p.service,
                    p.selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    b.plan.display()
                );
                d.push(diag.hint("give each app's selector a label only its pods carry (e.g. `applicationName: <app>` in `podLabels` and `selector.add`)"));
            }
        }
    }
    d.into_result()
}

/// What writing the overlays did: each overlay with what happened to it, and directories that
/// could not be removed afterwards.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub written: Vec<(PathBuf, overlay::Written)>,
    pub left_behind: Vec<PathBuf>,
}

/// Writes rendered overlays. Call only once everything rendered without error, so that a
/// refused render writes nothing. Each overlay is replaced whole; when one cannot be written,
/// the error says which overlays are new and which are as they were.
pub fn write_overlays(renders: &[EnvironmentRender]) -> Result<WriteReport> {
    let mut report = WriteReport::default();
    for (i, r) in renders.iter().enumerate() {
        match overlay::write(&r.dir, &r.files, &r.existing) {
            Ok((w, leftover)) => {
                report.written.push((r.dir.clone(), w));
                report.left_behind.extend(leftover);
            }
            Err(mut e) => {
                if renders.len() > 1 {
                    let list = |rs: &mut dyn Iterator<Item = &PathBuf>| {
                        let v: Vec<String> = rs.map(|p| p.display().to_string()).collect();
                        if v.is_empty() {
                            "none".to_string()
                        } else {
                            v.join(", ")
                        }
                    };
                    let new = list(
                        &mut report
                            .written
                            .iter()
                            .filter(|(_, w)| *w != overlay::Written::Unchanged)
                            .map(|(p, _)| p),
                    );
                    let old = list(&mut renders.iter().skip(i).map(|r| &r.dir));
                    e.diagnostics.push(
                        Diagnostic::new(format!(
                            "overlays written: {new}; left as they were: {old}"
                        ))
                        .hint(
                            "fix the problem and render again: each overlay is whole, old or new",
                        ),
                    );
                }
                return Err(e);
            }
        }
    }
    Ok(report)
}

/// Every `canaryplan.yaml` below `root`, sorted; hidden directories, `target` and
/// `node_modules` are skipped. For monorepos and the pre-commit hook.
pub fn find_plans(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, &e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "node_modules" {
                    stack.push(entry.path());
                }
            } else if name == plan::DEFAULT_PLAN {
                let p = entry.path();
                found.push(p.strip_prefix("./").map(Path::to_path_buf).unwrap_or(p));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(
            Diagnostic::new(format!("no {} below this directory", plan::DEFAULT_PLAN))
                .in_file(root)
                .hint("create one with `canaryplan init`, or name the plans to render")
                .into(),
        );
    }
    Ok(found)
}
