//! The objects of controllers that run lanes in the cluster, from the same LanePlan: Alibaba
//! Service Mesh's ASMSwimLaneGroup and ASMSwimLane (shapes as in ASM's lanes walkthrough), and
//! one Kruise Rollout per lane service (`enableExtraWorkloadForCanary`, the lane label patched
//! onto the canary pods).

use serde_json::{Value, json};

use super::plan::{CheckedLanePlan, LaneEnv};
use super::render::{Found, find};
use crate::error::{Diagnostics, Result};
use crate::export::{Exported, Object};

/// The namespace a service runs in: its base's, else `--namespace`, else `default` (where
/// objects without one land). ASM reads names from `istio-system`, so it is always written.
fn namespace_of(f: &Found<'_>, namespace: Option<&str>) -> String {
    f.namespace
        .clone()
        .or_else(|| namespace.map(str::to_string))
        .unwrap_or_else(|| "default".to_string())
}

/// ASMSwimLaneGroup `<plan>` and an ASMSwimLane per lane and for the baseline. Every service
/// is named with its namespace and every host in full (`<svc>.<ns>.svc.cluster.local`): ASM
/// writes the ingress VirtualService into `istio-system`, where a short name means another
/// namespace.
pub fn asm(
    plan: &CheckedLanePlan,
    env: Option<&LaneEnv>,
    namespace: Option<&str>,
) -> Result<Exported> {
    let bases = super::bases(plan)?;
    let found = find(plan, &bases)?;
    let of = |name: &str| found.iter().find(|f| f.service.name == name);
    let svc = |name: &str| {
        let ns = of(name).map_or_else(
            || namespace.unwrap_or("default").to_string(),
            |f| namespace_of(f, namespace),
        );
        json!({"name": name, "namespace": ns})
    };
    let all: Vec<Value> = plan
        .services
        .iter()
        .map(|m| svc(&m.service.value))
        .collect();
    let mut notes = vec![
        "ASM lists each service with the `cluster` (id, name) it runs in; canaryplan does not know them: ASM uses the mesh's cluster where they are absent, add them for several clusters".to_string(),
    ];
    let entry = plan.ingress.as_ref().and_then(|i| of(&i.service.value));
    let entry_host = entry.map(|f| {
        format!(
            "{}.{}.svc.cluster.local",
            f.service.name,
            namespace_of(f, namespace)
        )
    });
    let shares: Vec<(String, u8)> = plan
        .lanes
        .iter()
        .map(|l| (l.name.value.clone(), lane_weight(env, &l.name.value)))
        .collect();
    let taken: u8 = shares.iter().map(|(_, w)| *w).sum();
    let weighted = taken > 0;
    let baseline = &plan.baseline.value;
    let why = strategy(plan, env, &shares, taken);
    let mut objects = vec![lane_group(plan, &all, weighted, &why, &mut notes)];
    let lanes: Vec<(String, Vec<Value>)> = std::iter::once((baseline.clone(), all.clone()))
        .chain(plan.lanes.iter().map(|l| {
            // A service promoted in this environment runs the lane's version as the baseline:
            // it has left the lane (as Kruise's approval takes its canary pods away).
            (
                l.name.value.clone(),
                l.images
                    .iter()
                    .filter(|(s, _)| env.is_none_or(|e| !e.promoted(&l.name.value, s)))
                    .map(|(s, _)| svc(s))
                    .collect(),
            )
        }))
        .collect();
    for (lane, services) in lanes {
        // Weighted: every lane's share is written, the baseline's too (what is left).
        let weight = weighted.then(|| {
            if lane == *baseline {
                100 - taken
            } else {
                lane_weight(env, &lane)
            }
        });
        let entry = entry_host.as_deref();
        objects.push(swim_lane(plan, &lane, services, entry, weight, &mut notes));
    }
    Ok(Exported { objects, notes })
}

/// A lane's share of the requests without the header: its weight at a weighted stage, else 0.
fn lane_weight(env: Option<&LaneEnv>, lane: &str) -> u8 {
    env.map_or(0, |e| if e.model.weighted { e.weight(lane) } else { 0 })
}

/// Why the ingress routing strategy is what it is: computed from the environment's stage and
/// weights (`taken`: the lanes' shares together).
fn strategy(
    plan: &CheckedLanePlan,
    env: Option<&LaneEnv>,
    shares: &[(String, u8)],
    taken: u8,
) -> String {
    let baseline = &plan.baseline.value;
    match env {
        None => {
            "rule_based: no --env given, so no lane has a share of the requests without the header"
                .to_string()
        }
        Some(e) if !e.model.weighted => format!(
            "rule_based: environment `{}` is at {}, where only requests naming a lane by `{}` enter it",
            e.name.value, e.stage.value, plan.header.value
        ),
        Some(e) if taken == 0 => format!(
            "rule_based: environment `{}` is at shift with every lane at weight 0",
            e.name.value
        ),
        Some(e) => format!(
            "weighted: environment `{}` is at shift, splitting requests {}",
            e.name.value,
            std::iter::once(format!("{baseline} {}%", 100 - taken))
                .chain(
                    shares
                        .iter()
                        .filter(|(_, w)| *w > 0)
                        .map(|(l, w)| format!("{l} {w}%"))
                )
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The ASMSwimLaneGroup: the services (`all`), the header, the baseline to fall back to, and
/// the ingress routing (`why` its strategy), if the plan has an ingress.
fn lane_group(
    plan: &CheckedLanePlan,
    all: &[Value],
    weighted: bool,
    why: &str,
    notes: &mut Vec<String>,
) -> Object {
    let mut group = json!({
        "apiVersion": "istio.alibabacloud.com/v1",
        "kind": "ASMSwimLaneGroup",
        "metadata": {"name": plan.name},
        "spec": {
            "isPermissive": true,
            "permissiveModeConfiguration": {
                "fallbackTarget": plan.baseline.value,
                "routeHeader": plan.header.value,
                "traceHeader": plan.trace_header,
            },
            "autoUpdate": true,
            "services": all,
        },
    });
    let mut about =
        "the lane group: its services, the header and the baseline to fall back to".to_string();
    if let (Some(ing), Some(spec)) = (
        &plan.ingress,
        group.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        let (ns, name) = ing
            .gateway
            .value
            .split_once('/')
            .unwrap_or(("", &ing.gateway.value));
        spec.insert(
            "ingress".into(),
            json!({
                "gateway": {"name": name, "namespace": ns, "type": "ASM"},
                "ingressRouting": {
                    "ingressRoutingStrategy": if weighted { "weighted" } else { "rule_based" },
                    "weightedRoutingRule": {"hosts": ing.hosts, "requestMatches": ing.matches},
                },
            }),
        );
        about.push_str(&format!("; ingress routing {why}"));
    } else {
        notes.push("the plan has no `ingress`: the lane group has none, and requests enter the lanes only with the header set by their callers".to_string());
    }
    Object::new(
        format!("asmswimlanegroup-{}.yaml", plan.name),
        &about,
        group,
    )
}

/// One ASMSwimLane (a lane, or the baseline): its services, its pods' label and, with an
/// ingress entering at `entry_host`, its ingress rule and `weight` (`None`: rule-based).
fn swim_lane(
    plan: &CheckedLanePlan,
    lane: &str,
    services: Vec<Value>,
    entry_host: Option<&str>,
    weight: Option<u8>,
    notes: &mut Vec<String>,
) -> Object {
    let baseline = &plan.baseline.value;
    let mut spec = serde_json::Map::new();
    if let (Some(ing), Some(host)) = (&plan.ingress, entry_host) {
        let base_match = ing.matches.first().cloned().unwrap_or_else(|| json!({}));
        let mut m = base_match.as_object().cloned().unwrap_or_default();
        m.insert(
            "headers".into(),
            json!({plan.header.value.clone(): {"exact": lane}}),
        );
        spec.insert(
            "ingressRules".into(),
            json!([{
                "hosts": ing.hosts,
                "match": m,
                "name": lane,
                "online": true,
                "route": {"destination": {"host": host}},
            }]),
        );
        // Rule-based: as ASM writes it, the baseline with an empty weight, lanes with none.
        if let Some(w) = weight {
            spec.insert(
                "ingressWeight".into(),
                json!({"destination": {"host": host}, "weight": w}),
            );
        } else if lane == *baseline {
            spec.insert("ingressWeight".into(), json!({"destination": {}}));
        }
        if ing.matches.len() > 1 {
            notes.push(format!("ASM lane `{lane}`: its ingress rule takes the first of the plan's {} ingress matches", ing.matches.len()));
        }
    }
    spec.insert(
        "labelSelector".into(),
        json!({plan.label.value.clone(): lane}),
    );
    spec.insert("services".into(), Value::Array(services));
    Object::new(
        format!("asmswimlane-{lane}.yaml"),
        &format!("lane {lane}"),
        json!({
            "apiVersion": "istio.alibabacloud.com/v1",
            "kind": "ASMSwimLane",
            "metadata": {"name": lane, "labels": {"swimlane-group": plan.name}},
            "spec": spec,
        }),
    )
}

/// A Kruise Rollout per lane service: the lane's version runs as an extra Deployment whose
/// pods carry the lane label, beside the baseline's. Kruise takes one Rollout per workload,
/// which has one canary: a service in two lanes is refused (merging them would run one
/// version for both). Named `rollouts-<service>`, as `kubectl kruise rollout approve
/// rollout/rollouts-<service>` expects, in the workload's namespace.
pub fn kruise(plan: &CheckedLanePlan, namespace: Option<&str>) -> Result<Exported> {
    let bases = super::bases(plan)?;
    let found = find(plan, &bases)?;
    let mut d = Diagnostics::default();
    let mut owner: Vec<(&str, &str)> = Vec::new();
    for lane in &plan.lanes {
        for (service, image) in &lane.images {
            match owner.iter().find(|(s, _)| s == service) {
                Some((_, first)) => d.push(
                    plan.diag(image.pos, format!("`{service}` runs a version in lanes `{first}` and `{}`: Kruise allows one Rollout per Deployment, with one canary", lane.name.value))
                        .hint(format!("export one lane at a time (keep `{service}` in one lane), or route the lanes with canaryplan's own render, which runs a copy per lane")),
                ),
                None => owner.push((service, &lane.name.value)),
            }
        }
    }
    d.into_result()?;
    let mut objects = Vec::new();
    for lane in &plan.lanes {
        for (service, image) in &lane.images {
            let Some(f) = found.iter().find(|f| f.service.name == *service) else {
                continue;
            };
            let ns = namespace_of(f, namespace);
            let name = format!("rollouts-{service}");
            objects.push(Object::new(
                format!("rollout-{service}.yaml"),
                &format!("lane {} of {service}: Kruise starts it when Deployment {}'s image becomes {}; `kubectl kruise rollout approve rollout/{name} -n {ns}` promotes it", lane.name.value, f.workload.name, image.value),
                json!({
                    "apiVersion": "rollouts.kruise.io/v1beta1",
                    "kind": "Rollout",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f.workload.name},
                        "strategy": {"canary": {
                            "enableExtraWorkloadForCanary": true,
                            "steps": [{"replicas": 1}],
                            "patchPodTemplateMetadata": {"labels": {plan.label.value.clone(): lane.name.value.clone()}},
                        }},
                    },
                }),
            ));
        }
    }
    let notes = vec![format!(
        "Kruise runs a lane's version when the baseline Deployment's image changes in the cluster: set the lane's image on each Deployment to start it (canaryplan pins it on a copy instead); routing by `{}` is left to the mesh (ASM lanes, or canaryplan's own routes)",
        plan.header.value
    )];
    Ok(Exported { objects, notes })
}
