//! `kind: LanePlan`: an end-to-end canary across a call chain. `plan` reads and checks the
//! file, `stage` says what each stage renders, `render` builds it over the services' bases,
//! `checks` refuses what would break traffic, `explain` walks each request class through the
//! chain, `export` writes the objects of controllers that do the same in the cluster.

pub mod checks;
pub mod edit;
pub mod explain;
pub mod export;
pub mod kind;
pub mod plan;
pub mod promote;
pub mod render;
pub mod stage;

pub use kind::REGISTRATION;

use std::path::Path;

use crate::base::{self, Base};
use crate::error::{Diagnostics, Result};
use crate::output::stream;
use crate::render::{EnvironmentRender, Mode};

pub use plan::CheckedLanePlan;

/// The bases of the chain's services, in chain order (a base shared by several is read once).
pub fn bases(plan: &CheckedLanePlan) -> Result<Vec<Base>> {
    let mut d = Diagnostics::default();
    let mut out: Vec<Base> = Vec::new();
    for m in &plan.services {
        let path = plan.dir.join(&m.base.value);
        if let Some(b) = out.iter().find(|b| b.path == path) {
            out.push(Base {
                path: b.path.clone(),
                is_kustomization: b.is_kustomization,
                objects: b.objects.clone(),
            });
            continue;
        }
        if std::fs::symlink_metadata(&path).is_err() {
            d.push(
                plan.diag(
                    m.base.pos,
                    format!("the base `{}` does not exist", m.base.value),
                )
                .hint(format!(
                    "the path is relative to the plan file; looked for {}",
                    path.display()
                )),
            );
            continue;
        }
        if let Some(b) = d.take(base::load(&path, &plan.root)) {
            out.push(b);
        }
    }
    d.into_result()?;
    Ok(out)
}

/// Every object of the chain's bases, each once (services may share a base).
pub fn merged(bases: &[Base]) -> Base {
    let mut objects = Vec::new();
    let mut seen: Vec<&Path> = Vec::new();
    for b in bases {
        if seen.contains(&b.path.as_path()) {
            continue;
        }
        seen.push(&b.path);
        objects.extend(b.objects.iter().cloned());
    }
    Base {
        path: bases.first().map(|b| b.path.clone()).unwrap_or_default(),
        is_kustomization: bases.iter().all(|b| b.is_kustomization),
        objects,
    }
}

/// The final objects of one environment: every base with the stage's patches, plus its
/// resources, checked.
pub fn final_objects(
    plan: &CheckedLanePlan,
    env: &plan::LaneEnv,
    bases: &[Base],
) -> Result<(crate::rendered::Rendered, Vec<serde_json::Value>)> {
    let found = render::find(plan, bases)?;
    let rendered = render::render(plan, env, bases, &found)?;
    let all = merged(bases);
    let objects = stream::final_objects(&all, &rendered)?;
    checks::check(plan, env, &found, &objects)?;
    Ok((rendered, objects))
}

/// Renders the environments `only` (all when empty) of a LanePlan, in memory.
pub fn render_plan(
    plan: &CheckedLanePlan,
    only: &[String],
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    let bases = bases(plan)?;
    super::render_each(
        &plan.path,
        &plan.environments,
        |e| e.name.value.as_str(),
        only,
        |env| render_environment(plan, env, &bases, mode),
    )
}

/// What a stage promises (`kinds::promise`): the untagged ingress requests split by lane
/// weight, the lane header's requests held in their lane; from cleanup every lane route goes.
fn promise(
    plan: &CheckedLanePlan,
    e: &plan::LaneEnv,
    bases: &[Base],
) -> crate::kinds::promise::Promise {
    use crate::invariants::{Declared, LaneShare, LaneWeight};
    use crate::kinds::promise::{beside, named};
    use crate::ladder::Stage;
    let objects: Vec<serde_json::Value> = bases
        .iter()
        .flat_map(|b| b.objects.iter().map(|o| o.value.clone()))
        .collect();
    let with_lanes: Vec<_> = plan
        .services
        .iter()
        .filter(|m| {
            plan.lanes
                .iter()
                .any(|l| l.image_of(&m.service.value).is_some())
        })
        .collect();
    let baseline = with_lanes
        .iter()
        .map(|m| named(&objects, "Deployment", &m.workload.value))
        .collect();
    let lanes: Vec<LaneShare> = plan
        .lanes
        .iter()
        .map(|l| LaneShare {
            lane: l.name.value.clone(),
            copies: with_lanes
                .iter()
                .filter(|m| l.image_of(&m.service.value).is_some())
                .map(|m| {
                    let copy = CheckedLanePlan::copy_name(&m.workload.value, &l.name.value);
                    beside(&named(&objects, "Deployment", &m.workload.value), &copy)
                })
                .collect(),
            to: if e.stage.value == Stage::Shift && e.model.weighted {
                f64::from(e.weight(&l.name.value))
            } else {
                0.0
            },
        })
        .collect();
    let header = &plan.header.value;
    let held = plan
        .lanes
        .iter()
        .filter(|_| e.lanes_open())
        .map(|l| l.name.value.clone())
        .chain(std::iter::once(plan.baseline.value.clone()))
        .map(|l| format!("header {header}={l}"))
        .collect();
    let copies: Vec<String> = lanes
        .iter()
        .flat_map(|l: &LaneShare| l.copies.clone())
        .collect();
    let aborted = e.aborted.is_some();
    let lane_weight = |held| {
        Declared::LaneWeight(LaneWeight {
            ingress: plan.ingress.as_ref().map(|i| i.gateway.value.clone()),
            baseline,
            lanes,
            held,
        })
    };
    let declared = match e.stage.value {
        Stage::Prepare => Declared::Prepare,
        // Every lane at weight 0 at shift is the abort: no request reaches a copy.
        Stage::Shift if aborted => Declared::Abort { canary: copies },
        Stage::Route | Stage::Shift => lane_weight(held),
        Stage::Cleanup1 | Stage::Cleanup2 | Stage::Cleanup3 => lane_weight(Vec::new()),
        Stage::Done => Declared::Done,
    };
    let settings: Vec<serde_json::Value> = e
        .lanes
        .iter()
        .map(|(l, _, end)| {
            serde_json::json!({
                "lane": l,
                "weight": e.weight(l),
                "end": format!("{end:?}"),
                "promoted": e.promoted.iter().filter(|p| p.lane == *l)
                    .flat_map(|p| p.services.iter().map(|s| s.value.clone())).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut entry = serde_json::json!({"stage": e.stage.value.name(), "lanes": settings});
    if let (Some(m), Some(_)) = (entry.as_object_mut(), &e.aborted) {
        m.insert("aborted".into(), serde_json::json!(true));
    }
    crate::kinds::promise::Promise { entry, declared }
}

fn render_environment(
    plan: &CheckedLanePlan,
    env: &plan::LaneEnv,
    bases: &[Base],
    mode: Mode,
) -> Result<EnvironmentRender> {
    let (rendered, objects) = final_objects(plan, env, bases)?;
    let shares: Vec<String> = env
        .lanes
        .iter()
        .filter(|(l, _, _)| env.model.weighted && env.weight(l) > 0)
        .map(|(l, _, _)| format!("{l} {}%", env.weight(l)))
        .collect();
    let traffic = if shares.is_empty() {
        format!("no header: {} 100%", plan.baseline.value)
    } else {
        format!("no header: {}", shares.join(", "))
    };
    let ladder = crate::ladder::Stage::ALL.map(crate::ladder::Stage::name);
    super::environment_render(
        super::Written {
            plan_name: &plan.name,
            plan_path: &plan.path,
            plan_dir: &plan.dir,
            root: &plan.root,
            output_dir: plan.output_dir(&env.name.value),
            environment: &env.name.value,
            stage: env.stage.value.name(),
            ladder: &ladder,
            stage_at: plan.diag(env.stage.pos, String::new()),
            bases: plan
                .services
                .iter()
                .zip(bases)
                .map(|(m, b)| (b, plan.diag(m.base.pos, String::new())))
                .collect(),
            traffic,
            promise: promise(plan, env, bases),
        },
        &rendered,
        objects,
        mode,
    )
}

/// Where each environment stands: stage, the share of ingress requests without the header per
/// lane, each request class's path through the chain, and the next step.
pub fn status(plan: &CheckedLanePlan) -> Vec<crate::status::EnvironmentStatus> {
    use crate::status::{EnvironmentStatus, VersionTraffic};
    let bases = bases(plan);
    plan.environments
        .iter()
        .map(|e| {
            let name = e.name.value.clone();
            let overlay = super::overlay_state(render_plan(
                plan,
                std::slice::from_ref(&name),
                Mode::Overlay,
            ));
            let objects = bases
                .as_ref()
                .ok()
                .and_then(|b| final_objects(plan, e, b).ok())
                .map(|(_, o)| o);
            let paths = objects
                .as_deref()
                .map(|o| explain::paths(plan, o))
                .unwrap_or_default();
            // The ingress share of each lane, read from the no-header path's first hop.
            let traffic = paths
                .iter()
                .find(|p| p.request == "no header")
                .and_then(|p| p.hops.first())
                .map(|(svc, lanes)| {
                    lanes
                        .iter()
                        .map(|(l, p)| VersionTraffic {
                            version: l.clone(),
                            workload: svc.clone(),
                            role: if *l == plan.baseline.value {
                                "baseline".into()
                            } else {
                                "lane".into()
                            },
                            percent: p.round().clamp(0.0, 100.0) as u8,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut notes: Vec<String> = paths
                .iter()
                .filter(|p| p.request != "no header")
                .map(ToString::to_string)
                .collect();
            notes.push(format!(
                "every service must pass `{}` on to the services it calls",
                plan.header.value
            ));
            let next = match e.stage.value.next() {
                Some(n) => format!("{n}: {}", stage::LaneModel::summary(n)),
                None if plan
                    .environments
                    .iter()
                    .all(|x| x.stage.value == crate::ladder::Stage::Done) =>
                {
                    "every environment is done: delete the plan".to_string()
                }
                None => "done here; other environments are still on the way".to_string(),
            };
            EnvironmentStatus {
                environment: name.clone(),
                stage: e.stage.value.name().to_string(),
                weight: None,
                traffic,
                mirrored: None,
                notes,
                overlay,
                output: crate::output::diff::shown(&plan.output_dir(&name)),
                next,
                pending: Vec::new(),
            }
        })
        .collect()
}

/// What `explain` shows for one environment: each request class's path through the chain,
/// and what the traffic evaluator finds broken (it does not refuse: a broken chain is shown).
#[derive(Debug, serde::Serialize)]
pub struct Explanation {
    pub paths: Vec<explain::Path>,
    pub problems: Vec<String>,
}

/// The path of every request class through the chain in one environment.
pub fn explain_environment(plan: &CheckedLanePlan, env: &str) -> Result<Explanation> {
    let Some(e) = plan.environments.iter().find(|e| e.name.value == env) else {
        return Err(render_plan(plan, &[env.to_string()], Mode::Stream)
            .err()
            .unwrap_or_else(|| crate::Diagnostic::new(format!("no environment `{env}`")).into()));
    };
    let bases = bases(plan)?;
    let rendered = render::render(plan, e, &bases, &render::find(plan, &bases)?)?;
    let objects = stream::final_objects(&merged(&bases), &rendered)?;
    Ok(Explanation {
        paths: explain::paths(plan, &objects),
        problems: crate::traffic::Mesh::new(&objects)
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect(),
    })
}

/// Every environment's final stream, with `base` as the base of every service (fuzzing and
/// benchmarks: the same path through check, render and the checks as `render --stdout`).
pub fn render_text(plan: &CheckedLanePlan, base: &Base) -> Result<Vec<String>> {
    let bases: Vec<Base> = plan
        .services
        .iter()
        .map(|_| Base {
            path: base.path.clone(),
            is_kustomization: false,
            objects: base.objects.clone(),
        })
        .collect();
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for env in &plan.environments {
        if let Some((_, objects)) = d.take(final_objects(plan, env, &bases)) {
            out.push(crate::yaml::to_stream(&objects));
        }
    }
    d.into_result()?;
    Ok(out)
}
