//! Where each environment of a CanaryPlan stands: stage, where requests go (read from the final manifests by
//! the traffic evaluator, not from the plan), whether the overlay on disk is current, and what
//! the next step really changes (the difference of the two stages' rendered output).

use crate::pointer::Pointer as _;
use serde_json::Value;

use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};
use crate::kinds::canary::plan::Method;
use crate::kinds::canary::stage::{Stage, StageModel};
use crate::output::diff;
use crate::render::Mode;
use crate::templates::Templates;
use crate::traffic::{Mesh, host_names};

pub use crate::status::{EnvironmentStatus, Overlay, VersionTraffic};

/// The status of every environment of `plan`.
pub fn of(plan: &CheckedPlan, templates: &Templates) -> Vec<EnvironmentStatus> {
    let all_done = plan
        .environments
        .iter()
        .all(|e| e.model.stage == Stage::Done);
    plan.environments
        .iter()
        .map(|e| environment(plan, e, templates, all_done))
        .collect()
}

fn environment(
    plan: &CheckedPlan,
    e: &EnvironmentPlan,
    templates: &Templates,
    all_done: bool,
) -> EnvironmentStatus {
    let name = e.name.value.clone();
    let renders =
        super::render::render_plan(plan, std::slice::from_ref(&name), templates, Mode::Overlay);
    let overlay = match &renders {
        Err(err) => Overlay::Refused {
            reason: err
                .diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default(),
        },
        Ok(renders) => match renders
            .first()
            .map(|r| (r.on_disk.is_some(), diff::changes(r)))
        {
            Some((false, _)) | None => Overlay::Missing,
            Some((true, Ok(changes))) if changes.is_empty() => Overlay::Current,
            Some((true, Ok(changes))) => Overlay::Stale {
                files: changes.len(),
            },
            Some((true, Err(err))) => Overlay::Refused {
                reason: err.to_string(),
            },
        },
    };
    // The objects of this stage, even where the overlay on disk makes `render` refuse.
    let objects = super::render::objects_at(plan, e, e.model.clone(), templates).ok();
    let (traffic, mirrored, notes) = match &objects {
        Some(o) => traffic(plan, o),
        None => (Vec::new(), None, Vec::new()),
    };
    EnvironmentStatus {
        environment: name.clone(),
        stage: e.model.stage.name().to_string(),
        weight: e.weight.as_ref().map(|w| w.value),
        traffic,
        mirrored,
        notes,
        overlay,
        output: diff::shown(&plan.output_dir(&name)),
        next: next_step(plan, e, templates, objects.as_deref(), all_done),
        pending: Vec::new(),
    }
}

/// Where requests to the plan's Service go, from the final objects.
/// Where requests go: per workload, the mirrored percent, and notes.
type Traffic = (Vec<VersionTraffic>, Option<f64>, Vec<String>);

fn traffic(plan: &CheckedPlan, objects: &[Value]) -> Traffic {
    let mesh = Mesh::new(objects);
    let service_ns = objects
        .iter()
        .find(|o| {
            o.get("kind").and_then(Value::as_str) == Some("Service")
                && o.at("/metadata/name").and_then(Value::as_str) == Some(&plan.service.value)
        })
        .and_then(|o| o.at("/metadata/namespace").and_then(Value::as_str))
        .map(str::to_string);
    // Gateway API routes name the version Services `<service>-<version>`.
    let version_services: Vec<String> = match plan.traffic {
        crate::kinds::canary::plan::Traffic::GatewayApi => {
            [&plan.stable.version, &plan.canary.version]
                .iter()
                .map(|v| format!("{}-{}", plan.service.value, v.value))
                .collect()
        }
        crate::kinds::canary::plan::Traffic::Istio => Vec::new(),
    };
    let ours = |h: &str| {
        host_names(
            h,
            &plan.service.value,
            service_ns.as_deref(),
            service_ns.as_deref(),
        ) || version_services.iter().any(|v| v == h)
    };
    let routes: Vec<_> = mesh
        .routes()
        .iter()
        .filter(|r| r.destinations.iter().any(|d| ours(&d.host)))
        .collect();
    let images: Vec<(String, String)> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .filter_map(|o| {
            Some((
                o.at("/metadata/name")?.as_str()?.to_string(),
                o.at("/spec/template/spec/containers/0/image")?
                    .as_str()?
                    .to_string(),
            ))
        })
        .collect();
    let labels = mesh.workloads();
    let row = |workload: &str, percent: f64, by_pods: bool| {
        let version = labels
            .iter()
            .find(|(w, _)| w.name == workload)
            .and_then(|(_, l)| l.get(&plan.version_label).cloned())
            .unwrap_or_default();
        let mut role = if version == plan.stable.version.value {
            "stable".to_string()
        } else if version == plan.canary.version.value {
            "canary".to_string()
        } else {
            String::new()
        };
        let image = images.iter().find(|(n, _)| n == workload).map(|(_, i)| i);
        if role == "canary"
            && plan.method == Method::Succession
            && image.is_some_and(|i| plan.stable.image.as_ref().is_some_and(|s| s.value == *i))
        {
            role = "canary pods, still on the stable image".to_string();
        }
        if by_pods {
            role = format!("{role} (by pod count)").trim().to_string();
        }
        VersionTraffic {
            version,
            workload: workload.to_string(),
            role,
            percent: percent.round().clamp(0.0, 100.0) as u8,
        }
    };
    // The route most requests take: a test route (`match:`) catches a few requests for the
    // canary first; the main route splits between the most destinations, with the fewest
    // conditions.
    let conditions = |r: &crate::traffic::Route| -> usize {
        r.matches
            .iter()
            .map(|m| m.as_object().map_or(0, serde_json::Map::len))
            .sum()
    };
    let main = routes
        .iter()
        .min_by_key(|r| (std::cmp::Reverse(r.destinations.len()), conditions(r)))
        .copied();
    let mut rows: Vec<VersionTraffic> = Vec::new();
    match main {
        Some(r) => {
            for d in r.destinations.iter().filter(|d| ours(&d.host)) {
                let n = d.endpoints.len().max(1) as f64;
                for w in &d.endpoints {
                    rows.push(row(&w.name, d.percent / n, d.endpoints.len() > 1));
                }
            }
        }
        // No route: callers reach the Service directly.
        None => {
            if let Some(svc) = mesh.service_for_host(&plan.service.value, service_ns.as_deref()) {
                let endpoints = mesh.endpoints(&svc, None);
                let n = endpoints.len().max(1) as f64;
                for w in &endpoints {
                    rows.push(row(&w.name, 100.0 / n, endpoints.len() > 1));
                }
            }
        }
    }
    let (mirrored, notes) = notes(plan, &mesh, &routes, main, &ours, service_ns.as_deref());
    (rows, mirrored, notes)
}

/// The mirrored percent of the main route, and notes on the traffic: shadow copies, test
/// routes, gateway-only routes, several routes to the Service.
fn notes(
    plan: &CheckedPlan,
    mesh: &Mesh<'_>,
    routes: &[&crate::traffic::Route],
    main: Option<&crate::traffic::Route>,
    ours: &dyn Fn(&str) -> bool,
    service_ns: Option<&str>,
) -> (Option<f64>, Vec<String>) {
    let mut notes = Vec::new();
    let mirrored: Option<f64> = main.and_then(|r| {
        let p: f64 = r
            .mirrors
            .iter()
            .filter(|m| ours(&m.host))
            .map(|m| m.percent)
            .sum();
        (p > 0.0).then_some(p)
    });
    if let (Some(r), Some(p)) = (main, mirrored) {
        let to: Vec<String> = r
            .mirrors
            .iter()
            .filter(|m| ours(&m.host))
            .flat_map(|m| m.endpoints.iter().map(ToString::to_string))
            .collect();
        notes.push(format!(
            "{p}% of these requests are also copied to {} (shadow traffic: its answers are dropped)",
            to.join(", ")
        ));
    }
    // Test routes: conditions whose requests all go to one place while the main route splits.
    let splits =
        main.is_some_and(|m| m.destinations.iter().filter(|d| d.percent > 0.0).count() > 1);
    let single =
        |r: &crate::traffic::Route| r.destinations.iter().filter(|d| d.percent > 0.0).count() == 1;
    for r in routes
        .iter()
        .filter(|r| splits && Some(**r) != main && !r.matches.is_empty() && single(r))
    {
        let to: Vec<String> = r
            .destinations
            .iter()
            .filter(|d| d.percent > 0.0)
            .flat_map(|d| d.endpoints.iter().map(ToString::to_string))
            .collect();
        let when: Vec<String> = r.matches.iter().map(crate::explain::condition).collect();
        notes.push(format!(
            "requests with {} go to {} ({})",
            when.join(", or "),
            if to.is_empty() {
                "no pods".to_string()
            } else {
                to.join(", ")
            },
            r.position()
        ));
    }
    if let (Some(r), Some(svc)) = (main, mesh.service_for_host(&plan.service.value, service_ns))
        && !mesh.mesh_routed(&svc)
    {
        notes.push(format!(
            "{} {} is bound to gateways only: mesh callers bypass the split and reach every pod Service {} selects, by pod count{}",
            r.object,
            r.virtual_service,
            plan.service.value,
            if plan.traffic == crate::kinds::canary::plan::Traffic::GatewayApi {
                " (`meshRoute: generate` weights them too)"
            } else {
                ""
            }
        ));
    }
    // Gateway API, versioned: callers no HTTPRoute weights reach what the Service selects.
    if plan.traffic == crate::kinds::canary::plan::Traffic::GatewayApi
        && plan.method == crate::kinds::canary::plan::Method::Versioned
        && let Some(svc) = mesh.service_for_host(&plan.service.value, service_ns)
    {
        let canary = plan.new_deployment_name();
        let selected: Vec<String> = mesh
            .endpoints(&svc, None)
            .iter()
            .map(|w| w.name.clone())
            .collect();
        if selected.contains(&plan.workload.value) && selected.contains(&canary) {
            notes.push(format!(
                "callers that no HTTPRoute weights (without a sidecar, or ambient without a waypoint) reach Deployment {canary} by pod count: Service {} selects {}",
                plan.service.value,
                selected.join(", ")
            ));
        }
    }
    if routes.len() > 1 {
        notes.push(format!(
            "{} routes reach the Service; the main one is shown (`canaryplan explain` shows all): {}",
            routes.len(),
            routes
                .iter()
                .map(|r| r.position())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    (mirrored, notes)
}

fn next_step(
    plan: &CheckedPlan,
    e: &EnvironmentPlan,
    templates: &Templates,
    now: Option<&[Value]>,
    all_done: bool,
) -> String {
    let stage = e.model.stage;
    let weight = e.weight.as_ref().map(|w| w.value);
    if stage == Stage::Shift {
        let current = weight.unwrap_or(0);
        let step = plan.steps.iter().find(|s| **s > current);
        let mut line = match step {
            Some(step) => format!(
                "promote to {step}: {} {}%, {} {step}%",
                plan.stable.version.value,
                100 - step,
                plan.canary.version.value
            ),
            None => String::new(),
        };
        if current == 0 && plan.method == Method::Succession {
            line.push_str(if line.is_empty() { "" } else { ". " });
            line.push_str(&format!(
                "All traffic is on {}. To end a failed release instead: put stable.image back into Deployment {} in the base `{}` and sync it, then promote to 100 and advance to done (both versions then run the stable code)",
                plan.stable.version.value, plan.workload.value, e.base.value
            ));
        }
        if !line.is_empty() {
            return line;
        }
    }
    let Some(next) = stage.next() else {
        return if all_done {
            "nothing: every environment is done; the plan (and its output directory) can be deleted"
                .to_string()
        } else {
            "nothing: this environment is done".to_string()
        };
    };
    let model = StageModel::new(plan.method, next, Some(100));
    match (now, super::render::objects_at(plan, e, model, templates)) {
        (Some(now), Ok(after)) => {
            let changes = crate::kinds::canary::transition::describe(now, &after);
            if changes.is_empty() {
                format!("{next}: changes nothing in the cluster")
            } else {
                format!("{next}: {}", changes.join("; "))
            }
        }
        (_, Err(err)) => format!(
            "{next}: refused now: {}",
            err.diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default()
        ),
        (None, Ok(_)) => format!("{next}: {}", next.summary_for(plan.traffic)),
    }
}
