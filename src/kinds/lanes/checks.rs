//! What a LanePlan's stage would break, checked on the final objects (every base with the
//! stage's patches): each a small named check, as for CanaryPlans.

use crate::pointer::Pointer as _;
use serde_json::Value;

use super::plan::{CheckedLanePlan, End, LaneEnv};
use super::render::Found;
use crate::error::{Diagnostic, Diagnostics, Result};
use crate::ladder::Stage;
use crate::selector;
use crate::traffic::Mesh;

type Check = fn(&CheckedLanePlan, &LaneEnv, &[Found<'_>], &[Value]) -> Vec<Diagnostic>;

/// Every check, in the order their findings are reported.
pub const CHECKS: &[(&str, Check)] = &[
    ("selectors match pod templates", selectors_match_templates),
    ("lane copies kept apart", copies_disjoint),
    (
        "a Service reaches lane pods only through routes",
        service_selection,
    ),
    ("every destination has pods of one lane", destinations),
    (
        "a lane copy is reached only through its subset",
        copies_only_through_their_subset,
    ),
    ("a promoted lane's versions are in base", promoted_in_base),
    (
        "a service promoted in a lane runs its version in base",
        promoted_services_in_base,
    ),
    ("a subset selects one image", subsets_select_one_image),
];

pub fn check(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    objects: &[Value],
) -> Result<()> {
    let mut d = Diagnostics::default();
    for (_, c) in CHECKS {
        for diag in c(plan, env, found, objects) {
            d.push(diag);
        }
    }
    d.into_result()
}

fn deployments(objects: &[Value]) -> impl Iterator<Item = (&str, Option<&str>, &Value)> {
    objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .map(|o| {
            (
                o.at("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                o.at("/metadata/namespace").and_then(Value::as_str),
                o,
            )
        })
}

fn pods(o: &Value) -> crate::plan_file::Labels {
    selector::labels_of(o.at("/spec/template/metadata/labels"))
}

fn show(l: &crate::plan_file::Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Kubernetes' own rule: a Deployment's selector matches its pod template.
fn selectors_match_templates(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    objects: &[Value],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, _, o) in deployments(objects) {
        let Some(sel) = o.at("/spec/selector") else {
            continue;
        };
        if selector::label_selector_matches(sel, &pods(o)) {
            continue;
        }
        let message = format!(
            "the selector of Deployment {name} does not match its pod template's labels ({}): the API server rejects it",
            show(&pods(o))
        );
        match found.iter().find(|f| f.workload.name == name) {
            Some(f) => out.push(f.workload.error(&["spec", "selector"], message).hint(format!("keep every selector key on the pod template; `{}` must not be a selector key", plan.label.value))),
            None => out.push(plan.diag(env.stage.pos, message).hint("check the lane label")),
        }
    }
    out
}

/// A lane copy and the baseline (or two copies) never select each other's pods.
fn copies_disjoint(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    objects: &[Value],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for f in found {
        let family: Vec<&Value> = deployments(objects)
            .filter(|(n, _, _)| {
                *n == f.workload.name
                    || f.lanes
                        .iter()
                        .any(|l| *n == CheckedLanePlan::copy_name(&f.workload.name, l))
            })
            .map(|(_, _, o)| o)
            .collect();
        for a in &family {
            for b in &family {
                if std::ptr::eq(*a, *b) {
                    continue;
                }
                let sel = a.at("/spec/selector").cloned().unwrap_or(Value::Null);
                if selector::label_selector_matches(&sel, &pods(b)) {
                    let n = |o: &Value| {
                        o.at("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    out.push(
                        plan.diag(env.stage.pos, format!("the selector of Deployment {} also matches the pods of Deployment {} ({})", n(a), n(b), show(&pods(b))))
                            .hint("two Deployments selecting each other's pods fight over them: give the base Deployment a selector the lane label can tell apart"),
                    );
                }
            }
        }
    }
    out
}

/// Before routes name the lane subsets (and after), a Service must not reach lane copies by
/// pod count: the copies' labels differ from the Service's selector until its patch.
fn service_selection(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    objects: &[Value],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if env.model.service_selector {
        return out;
    }
    for f in found {
        let Some(svc) = objects
            .iter()
            .find(|o| crate::rendered::Target::of(f.service).matches(o))
        else {
            continue;
        };
        let sel = selector::labels_of(svc.at("/spec/selector"));
        for (name, _, o) in deployments(objects) {
            if f.lanes
                .iter()
                .any(|l| name == CheckedLanePlan::copy_name(&f.workload.name, l))
                && selector::map_matches(&sel, &pods(o))
            {
                out.push(
                    plan.diag(env.stage.pos, format!("Service {} ({}) selects the pods of lane copy {name} at stage {}, when no route sends lane traffic", f.service.name, show(&sel), env.stage.value))
                        .hint("the copy's labels must differ from the Service's selector; check the base Service's selector keys"),
                );
            }
        }
    }
    out
}

/// The traffic evaluator over the final objects: every route destination has pods, of one
/// workload when it names a subset.
fn destinations(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    _found: &[Found<'_>],
    objects: &[Value],
) -> Vec<Diagnostic> {
    Mesh::new(objects)
        .problems()
        .into_iter()
        .map(|p| {
            plan.diag(env.stage.pos, p.to_string())
                .hint(format!("a lane subset selects `{}: <lane>` behind its Service; at stage {} check the lane copies and the Service selector", plan.label.value, env.stage.value))
        })
        .collect()
}

/// `end: promote`: the lane goes at cleanup-1, so the baseline must already run its versions.
fn promoted_in_base(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    _objects: &[Value],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if env.stage.value < Stage::Cleanup1 {
        return out;
    }
    for (lane, _, end) in &env.lanes {
        if *end != End::Promote {
            continue;
        }
        let Some(l) = plan.lanes.iter().find(|x| x.name.value == *lane) else {
            continue;
        };
        for (service, image) in &l.images {
            let Some(f) = found.iter().find(|f| f.service.name == *service) else {
                continue;
            };
            let base_image = f
                .workload
                .value
                .at("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if base_image != image.value {
                out.push(
                    plan.diag(env.stage.pos, format!("lane `{lane}` ends by promotion at {}, but Deployment {} in base still runs {base_image}, not the lane's {}", env.stage.value, f.workload.name, image.value))
                        .hint(format!("put {} into Deployment {}'s base while at shift, then clean up; or end the lane with `end: remove` at weight 0", image.value, f.workload.name)),
                );
            }
        }
    }
    out
}

/// A route that reaches a lane copy other than through that lane's subset (the bare host once
/// the Service selects the copies, or another subset) sends it requests that did not ask for
/// the lane, by pod count.
fn copies_only_through_their_subset(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    objects: &[Value],
) -> Vec<Diagnostic> {
    let mesh = Mesh::new(objects);
    let mut out = Vec::new();
    for r in mesh.routes() {
        for (i, d) in r
            .destinations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.percent > 0.0)
        {
            for w in &d.endpoints {
                let lane = found.iter().find_map(|f| {
                    f.lanes
                        .iter()
                        .find(|l| CheckedLanePlan::copy_name(&f.workload.name, l) == w.name)
                });
                if let Some(lane) = lane
                    && d.subset.as_deref() != Some(lane.as_str())
                {
                    out.push(
                        plan.diag(env.stage.pos, format!("{}, destination {}: {} reaches the pods of lane copy {} by pod count, not through subset `{lane}`", r.position(), i + 1, d.host, w.name))
                            .hint("canaryplan splits every VirtualService of the services' bases by header; a route from elsewhere (another base, another namespace) must name the baseline subset"),
                    );
                }
            }
        }
    }
    out
}

/// The images of a workload's pod template, in container order.
fn images(objects: &[Value], w: &crate::traffic::Workload) -> Vec<String> {
    objects
        .iter()
        .find(|o| {
            o.get("kind").and_then(Value::as_str) == Some(w.kind.as_str())
                && o.at("/metadata/name").and_then(Value::as_str) == Some(w.name.as_str())
                && o.at("/metadata/namespace").and_then(Value::as_str) == w.namespace.as_deref()
        })
        .and_then(|o| o.at("/spec/template/spec/containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A subset is one version: the pods it selects behind the Service all run the same images.
/// (A lane copy that kept the baseline's `version` label would put two images in `v1`.)
fn subsets_select_one_image(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    objects: &[Value],
) -> Vec<Diagnostic> {
    let mesh = Mesh::new(objects);
    let mut out = Vec::new();
    for f in found {
        let Some(svc) = mesh.service_for_host(&f.service.name, f.namespace.as_deref()) else {
            continue;
        };
        for (subset, labels) in mesh.subsets(&svc) {
            let mut seen: Vec<(Vec<String>, String)> = Vec::new();
            for w in mesh.endpoints(&svc, Some(&labels)) {
                let imgs = images(objects, &w);
                if !seen.iter().any(|(i, _)| *i == imgs) {
                    seen.push((imgs, w.name.clone()));
                }
            }
            if let [(a, wa), (b, wb), ..] = seen.as_slice() {
                out.push(
                    plan.diag(env.stage.pos, format!("subset `{subset}` of {} ({}) selects the pods of {wa} ({}) and of {wb} ({}): a subset must be one version", f.host, show(&labels), a.join(", "), b.join(", ")))
                        .hint(format!("lane copies carry `{}: <lane version>`; give the subset labels that only one version's pods have", plan.version_label)),
                );
            }
        }
    }
    out
}

/// `promoted: [service]`: the lane's requests to that service go to its baseline, which must
/// therefore run the lane's image already.
fn promoted_services_in_base(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    found: &[Found<'_>],
    _objects: &[Value],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in &env.promoted {
        let Some(l) = plan.lanes.iter().find(|x| x.name.value == p.lane) else {
            continue;
        };
        for svc in &p.services {
            let (Some(f), Some(image)) = (
                found.iter().find(|f| f.service.name == svc.value),
                l.image_of(&svc.value),
            ) else {
                continue;
            };
            let base_image = f
                .workload
                .value
                .at("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if base_image != image.value {
                out.push(
                    plan.diag(svc.pos, format!("`{}` is promoted in lane `{}`, but Deployment {} in base still runs {base_image}, not the lane's {}", svc.value, p.lane, f.workload.name, image.value))
                        .hint(format!("put {} into Deployment {}'s base in the same commit (the lane's requests then reach it there), or take `{}` out of `promoted`", image.value, f.workload.name, svc.value)),
                );
            }
        }
    }
    out
}
