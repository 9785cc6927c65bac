//! `kind: RevisionUpgrade`: Istio's canary upgrade of the control plane as stages. Each wave
//! moves its namespaces to the new revision (`istio.io/rev: <to>`, or with revision tags the
//! canary tag; `istio-injection` removed, since it takes precedence) and restarts their
//! workloads declaratively (a pod-template annotation, what `kubectl rollout restart` does);
//! with tags, `promote-tags` points the stable tag's webhook at the new revision and restarts
//! the namespaces still on it. `done` needs the end state in base. Going back is the rollback.

pub mod kind;
pub mod plan;

pub use kind::REGISTRATION;

use serde_json::{Map, Value, json};

use crate::base::{Base, BaseObject};
use crate::error::{Diagnostics, Result};
use crate::kinds::gateway_upgrade::plan::Env;
use crate::render::{EnvironmentRender, Mode};
use crate::rendered::{Patch, PatchBody, Rendered, Target};

pub use plan::CheckedRevisionUpgrade;

/// The pod-template annotation whose change re-creates the pods (and so re-injects them).
pub const RESTART_ANNOTATION: &str = "canaryplan.io/istio-revision";
const REV: &str = "istio.io/rev";
const INJECTION: &str = "istio-injection";
const WORKLOADS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

fn tag_webhook(tag: &str) -> String {
    format!("istio-revision-tag-{tag}")
}

fn labels(o: &BaseObject) -> Map<String, Value> {
    o.value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The label value a moved namespace gets: the new revision, or the canary tag.
fn new_label(plan: &CheckedRevisionUpgrade) -> String {
    match &plan.tags {
        Some((_, canary)) => canary.value.clone(),
        None => plan.to.value.clone(),
    }
}

/// Checks what the plan names against the base: every namespace there, the tag webhooks.
fn check_base(plan: &CheckedRevisionUpgrade, base: &Base, stage: &str) -> Result<()> {
    let mut d = Diagnostics::default();
    for ns in plan.waves.iter().flatten() {
        if base.find("Namespace", &ns.value).is_none() {
            let known: Vec<&str> = base.of_kind("Namespace").map(|n| n.name.as_str()).collect();
            let hint = match crate::names::did_you_mean(&ns.value, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("add its Namespace to the base {}", base.path.display()),
            };
            d.push(
                plan.diag(
                    ns.pos,
                    format!("namespace `{}` is not in the base", ns.value),
                )
                .hint(hint),
            );
        }
    }
    if let Some((stable, canary)) = &plan.tags {
        for (tag, want, role) in [(stable, &plan.from, "stable"), (canary, &plan.to, "canary")] {
            match base.find("MutatingWebhookConfiguration", &tag_webhook(&tag.value)) {
                None => d.push(
                    plan.diag(tag.pos, format!("the base has no MutatingWebhookConfiguration `{}` for the {role} tag", tag_webhook(&tag.value)))
                        .hint("add the tag webhooks as the istiod chart's revision-tags template renders them (`istioctl tag generate`)"),
                ),
                Some(w) => {
                    let rev = labels(w).get(REV).and_then(Value::as_str).map(str::to_string);
                    // At done the base holds the end state: the stable tag is on the new revision.
                    if rev.as_deref() != Some(want.value.as_str()) && stage != "done" {
                        d.push(
                            w.error(&["metadata", "labels"], format!("tag {} points at revision {}, not {}", tag.value, rev.unwrap_or_else(|| "none".into()), want.value))
                                .hint(format!("the {role} tag must point at `{}` when the upgrade starts", want.value)),
                        );
                    }
                }
            }
        }
    }
    d.into_result()
}

/// The patches of one namespace moved to the new revision: its labels, and a restart of each
/// workload in it.
fn move_namespace(
    plan: &CheckedRevisionUpgrade,
    base: &Base,
    ns: &str,
    to_label: &str,
    out: &mut Rendered,
) {
    if let Some(n) = base.find("Namespace", ns) {
        let mut l = Map::new();
        if labels(n).contains_key(INJECTION) {
            l.insert(INJECTION.into(), Value::Null);
        }
        l.insert(REV.into(), json!(to_label));
        out.patches.push(Patch::merge(
            format!("patch-namespace-{ns}.yaml"),
            format!("namespace {ns} on {to_label}"),
            Target::of(n),
            json!({"metadata": {"labels": l}}),
        ));
    }
    restart(plan, base, ns, out);
}

fn restart(plan: &CheckedRevisionUpgrade, base: &Base, ns: &str, out: &mut Rendered) {
    for kind in WORKLOADS {
        for w in base.of_kind(kind).filter(|w| w.namespace() == Some(ns)) {
            out.patches.push(Patch::merge(
                format!("patch-{}-{}-{}.yaml", kind.to_ascii_lowercase(), ns, w.name),
                format!("{kind} {} restarted onto revision {}", w.name, plan.to.value),
                Target::of(w),
                json!({"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: plan.to.value}}}}}),
            ));
        }
    }
}

/// Whether the base already holds the end state `done` needs.
fn end_state_in_base(plan: &CheckedRevisionUpgrade, base: &Base) -> Vec<String> {
    let mut missing = Vec::new();
    let want = new_label(plan);
    for ns in plan.waves.iter().flatten() {
        if let Some(n) = base.find("Namespace", &ns.value) {
            let l = labels(n);
            if l.get(REV).and_then(Value::as_str) != Some(want.as_str())
                || l.contains_key(INJECTION)
            {
                missing.push(format!(
                    "namespace {} labelled `{REV}: {want}` without `{INJECTION}`",
                    ns.value
                ));
            }
        }
    }
    if let Some((stable, _)) = &plan.tags
        && let Some(w) = base.find("MutatingWebhookConfiguration", &tag_webhook(&stable.value))
        && labels(w).get(REV).and_then(Value::as_str) != Some(plan.to.value.as_str())
    {
        missing.push(format!(
            "the {} webhook on revision {} (istiod-{})",
            stable.value, plan.to.value, plan.to.value
        ));
    }
    missing
}

pub fn render(plan: &CheckedRevisionUpgrade, env: &Env, base: &Base) -> Result<Rendered> {
    check_base(plan, base, &env.stage.value)?;
    let mut out = Rendered::default();
    let stage = env.stage.value.as_str();
    if stage == "done" {
        let missing = end_state_in_base(plan, base);
        if !missing.is_empty() {
            return Err(plan
                .diag(
                    env.stage.pos,
                    format!(
                        "at done the base alone would move namespaces back to revision {}",
                        plan.from.value
                    ),
                )
                .hint(format!(
                    "commit the end state to the base `{}` first: {}",
                    plan.base.value,
                    missing.join("; ")
                ))
                .into());
        }
        return Ok(out);
    }
    let label = new_label(plan);
    for ns in plan.waves.iter().take(plan.waves_at(stage)).flatten() {
        move_namespace(plan, base, &ns.value, &label, &mut out);
    }
    if stage == "promote-tags"
        && let Some((stable, _)) = &plan.tags
        && let Some(w) = base.find("MutatingWebhookConfiguration", &tag_webhook(&stable.value))
    {
        let mut ops = vec![
            json!({"op": "replace", "path": "/metadata/labels/istio.io~1rev", "value": plan.to.value}),
        ];
        for (i, hook) in w
            .value
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if hook.pointer("/clientConfig/service/name").is_some() {
                ops.push(json!({"op": "replace", "path": format!("/webhooks/{i}/clientConfig/service/name"), "value": format!("istiod-{}", plan.to.value)}));
            }
        }
        out.patches.push(Patch {
            file: format!("patch-mutatingwebhookconfiguration-{}.yaml", w.name),
            from: format!("tag {} moved to revision {}", stable.value, plan.to.value),
            target: Target::of(w),
            body: PatchBody::Json(ops),
        });
        // Namespaces still on the stable tag are re-injected by the new revision on restart.
        let moved: Vec<&str> = plan
            .waves
            .iter()
            .flatten()
            .map(|n| n.value.as_str())
            .collect();
        for n in base.of_kind("Namespace") {
            if !moved.contains(&n.name.as_str())
                && labels(n).get(REV).and_then(Value::as_str) == Some(stable.value.as_str())
            {
                restart(plan, base, &n.name, &mut out);
            }
        }
    }
    Ok(out)
}

/// A namespace labelled both ways: `istio-injection` wins, the revision label is ignored.
fn check(plan: &CheckedRevisionUpgrade, env: &Env, base: &Base, objects: &[Value]) -> Result<()> {
    let mut d = Diagnostics::default();
    for o in objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
    {
        let l = o.pointer("/metadata/labels").and_then(Value::as_object);
        if l.is_some_and(|l| l.contains_key(INJECTION) && l.contains_key(REV)) {
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let diag = match base.find("Namespace", name) {
                Some(n) => n.error(&["metadata", "labels"], format!("namespace {name} has both `{INJECTION}` and `{REV}`: `{INJECTION}` takes precedence, so its revision label is ignored")),
                None => plan.diag(env.stage.pos, format!("namespace {name} has both `{INJECTION}` and `{REV}`")),
            };
            d.push(diag.hint(format!("remove `{INJECTION}` from it in base (a wave removes it from the namespaces it moves)")));
        }
    }
    d.into_result()
}

/// The revision each namespace's pods get on their next injection, read from the final objects.
pub fn revisions(plan: &CheckedRevisionUpgrade, objects: &[Value]) -> Vec<(String, String)> {
    let tag_rev = |tag: &str| {
        objects
            .iter()
            .find(|o| {
                o.get("kind").and_then(Value::as_str) == Some("MutatingWebhookConfiguration")
                    && o.pointer("/metadata/name").and_then(Value::as_str)
                        == Some(&tag_webhook(tag))
            })
            .and_then(|w| {
                w.pointer("/metadata/labels/istio.io~1rev")
                    .and_then(Value::as_str)
            })
            .map(str::to_string)
    };
    objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
        .filter_map(|n| {
            let name = n
                .pointer("/metadata/name")
                .and_then(Value::as_str)?
                .to_string();
            let l = n.pointer("/metadata/labels").and_then(Value::as_object);
            let rev = match (
                l.and_then(|l| l.get(INJECTION)).and_then(Value::as_str),
                l.and_then(|l| l.get(REV)).and_then(Value::as_str),
            ) {
                (Some("enabled"), _) => {
                    format!("{} (the default revision, `{INJECTION}`)", plan.from.value)
                }
                (_, Some(r)) => match tag_rev(r) {
                    Some(t) => format!("{t} (tag {r})"),
                    None => r.to_string(),
                },
                _ => return None,
            };
            Some((name, rev))
        })
        .collect()
}

pub fn render_plan(
    plan: &CheckedRevisionUpgrade,
    only: &[String],
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    let base = super::load_base(
        &plan.dir,
        &plan.base,
        &plan.root,
        plan.diag(plan.base.pos, String::new()),
    )?;
    super::render_each(
        &plan.path,
        &plan.environments,
        |e| e.name.value.as_str(),
        only,
        |env| render_environment(plan, env, &base, mode),
    )
}

fn render_environment(
    plan: &CheckedRevisionUpgrade,
    env: &Env,
    base: &Base,
    mode: Mode,
) -> Result<EnvironmentRender> {
    let rendered = render(plan, env, base)?;
    let objects = crate::output::stream::final_objects(base, &rendered)?;
    check(plan, env, base, &objects)?;
    let moved = plan.waves_at(&env.stage.value);
    let traffic = format!(
        "{} of {} waves on {}",
        moved,
        plan.waves.len(),
        plan.to.value
    );
    let ladder = plan.ladder();
    super::environment_render(
        super::Written {
            plan_name: &plan.name,
            plan_path: &plan.path,
            plan_dir: &plan.dir,
            root: &plan.root,
            output_dir: plan.output.join(&env.name.value),
            environment: &env.name.value,
            stage: &env.stage.value,
            ladder: &ladder,
            stage_at: plan.diag(env.stage.pos, String::new()),
            bases: vec![(base, plan.diag(plan.base.pos, String::new()))],
            traffic,
        },
        &rendered,
        objects,
        mode,
    )
}

/// What moving to a stage changes.
pub fn summary(stage: &str) -> &'static str {
    match stage {
        s if s.starts_with("wave-") => {
            "this wave's namespaces move to the new revision and their workloads restart"
        }
        "promote-tags" => {
            "the stable tag points at the new revision; namespaces still on it restart"
        }
        "done" => {
            "nothing beyond the base (which must hold the end state); the old revision can be uninstalled"
        }
        _ => "checks only",
    }
}

/// `status`: per namespace, the revision its workloads run after the sync.
pub fn status(plan: &CheckedRevisionUpgrade) -> Vec<crate::status::EnvironmentStatus> {
    plan.environments
        .iter()
        .map(|e| {
            let name = e.name.value.clone();
            let renders = render_plan(plan, std::slice::from_ref(&name), Mode::Overlay);
            let objects = render_plan(plan, std::slice::from_ref(&name), Mode::Stream)
                .ok()
                .and_then(|r| r.into_iter().next())
                .map(|r| r.objects)
                .unwrap_or_default();
            let mut notes: Vec<String> = revisions(plan, &objects)
                .into_iter()
                .map(|(ns, rev)| format!("namespace {ns}: revision {rev}"))
                .collect();
            if e.stage.value == "done" {
                let on_old = revisions(plan, &objects)
                    .iter()
                    .any(|(_, r)| r.starts_with(&plan.from.value));
                notes.push(if on_old {
                    format!(
                        "some namespaces still use revision {}: keep it installed until they move",
                        plan.from.value
                    )
                } else {
                    format!(
                        "no namespace uses revision {} any more: it can be uninstalled",
                        plan.from.value
                    )
                });
            }
            let ladder = plan.ladder();
            let next = match super::next_stage(&ladder, &e.stage.value) {
                Some(n) => format!("{n}: {}", summary(n)),
                None => "done: the plan can be deleted".into(),
            };
            crate::status::EnvironmentStatus {
                environment: name.clone(),
                stage: e.stage.value.clone(),
                weight: None,
                traffic: Vec::new(),
                mirrored: None,
                notes,
                overlay: super::overlay_state(renders),
                output: crate::output::diff::shown(&plan.output.join(&name)),
                next,
            }
        })
        .collect()
}

/// Every environment's final stream over `base` (fuzzing and benchmarks: the same path as
/// `render --stdout`).
pub fn render_text(plan: &CheckedRevisionUpgrade, base: &Base) -> Result<Vec<String>> {
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for env in &plan.environments {
        let one = render(plan, env, base).and_then(|rendered| {
            let objects = crate::output::stream::final_objects(base, &rendered)?;
            check(plan, env, base, &objects)?;
            Ok(crate::yaml::to_stream(&objects))
        });
        if let Some(s) = d.take(one) {
            out.push(s);
        }
    }
    d.into_result()?;
    Ok(out)
}
