//! The objects of controllers that run lanes in the cluster, from the same LanePlan: Alibaba
//! Service Mesh's ASMSwimLaneGroup and ASMSwimLane (shapes as in ASM's lanes walkthrough), and
//! one Kruise Rollout per lane service (`enableExtraWorkloadForCanary`, the lane label patched
//! onto the canary pods).

use serde_json::{Value, json};

use super::plan::CheckedLanePlan;
use super::render::find;
use crate::error::Result;
use crate::export::{Exported, Object};

/// ASMSwimLaneGroup `<plan>` and an ASMSwimLane per lane and for the baseline.
pub fn asm(plan: &CheckedLanePlan, env: Option<&super::plan::LaneEnv>) -> Result<Exported> {
    let bases = super::bases(plan)?;
    let found = find(plan, &bases)?;
    let svc = |name: &str| {
        let f = found.iter().find(|f| f.service.name == name);
        let mut v = json!({"name": name});
        if let (Some(ns), Some(o)) = (f.and_then(|f| f.namespace.clone()), v.as_object_mut()) {
            o.insert("namespace".into(), json!(ns));
        }
        v
    };
    let all: Vec<Value> = plan
        .services
        .iter()
        .map(|m| svc(&m.service.value))
        .collect();
    let mut notes = vec![
        "ASM lists each service with the `cluster` (id, name) it runs in; canaryplan does not know them: ASM uses the mesh's cluster where they are absent, add them for several clusters".to_string(),
    ];
    let entry = plan
        .ingress
        .as_ref()
        .and_then(|i| found.iter().find(|f| f.service.name == i.service.value));
    let weight = |lane: &str| env.map_or(0, |e| if e.model.weighted { e.weight(lane) } else { 0 });
    let weighted = plan.lanes.iter().any(|l| weight(&l.name.value) > 0);
    let mut group = json!({
        "apiVersion": "istio.alibabacloud.com/v1",
        "kind": "ASMSwimLaneGroup",
        "metadata": {"name": plan.name},
        "spec": {
            "isPermissive": true,
            "permissiveModeConfiguration": {
                "fallbackTarget": plan.baseline.value,
                "routeHeader": plan.header.value,
            },
            "autoUpdate": true,
            "services": all,
        },
    });
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
    } else {
        notes.push("the plan has no `ingress`: the lane group has none, and requests enter the lanes only with the header set by their callers".to_string());
    }
    let mut objects = vec![Object::new(
        format!("asmswimlanegroup-{}.yaml", plan.name),
        "the lane group: its services, the header and the baseline to fall back to",
        group,
    )];
    let lanes: Vec<(String, Vec<Value>)> =
        std::iter::once((plan.baseline.value.clone(), all.clone()))
            .chain(plan.lanes.iter().map(|l| {
                (
                    l.name.value.clone(),
                    l.images.iter().map(|(s, _)| svc(s)).collect(),
                )
            }))
            .collect();
    for (lane, services) in lanes {
        let mut spec = serde_json::Map::new();
        if let (Some(ing), Some(entry)) = (&plan.ingress, entry) {
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
                    "route": {"destination": {"host": entry.host}},
                }]),
            );
            let w = weight(&lane);
            spec.insert(
                "ingressWeight".into(),
                if lane == plan.baseline.value || w == 0 {
                    json!({"destination": {}})
                } else {
                    json!({"destination": {"host": entry.host}, "weight": w})
                },
            );
            if ing.matches.len() > 1 {
                notes.push(format!("ASM lane `{lane}`: its ingress rule takes the first of the plan's {} ingress matches", ing.matches.len()));
            }
        }
        spec.insert(
            "labelSelector".into(),
            json!({plan.label.value.clone(): lane}),
        );
        spec.insert("services".into(), Value::Array(services));
        objects.push(Object::new(
            format!("asmswimlane-{lane}.yaml"),
            &format!("lane {lane}"),
            json!({
                "apiVersion": "istio.alibabacloud.com/v1",
                "kind": "ASMSwimLane",
                "metadata": {"name": lane, "labels": {"swimlane-group": plan.name}},
                "spec": spec,
            }),
        ));
    }
    Ok(Exported { objects, notes })
}

/// A Kruise Rollout per service of each lane: the lane's version runs as an extra Deployment
/// whose pods carry the lane label, beside the baseline's.
pub fn kruise(plan: &CheckedLanePlan) -> Result<Exported> {
    let bases = super::bases(plan)?;
    let found = find(plan, &bases)?;
    let mut objects = Vec::new();
    let mut notes = Vec::new();
    for lane in &plan.lanes {
        for (service, image) in &lane.images {
            let Some(f) = found.iter().find(|f| f.service.name == *service) else {
                continue;
            };
            let mut meta = json!({"name": format!("rollouts-{service}-{}", lane.name.value)});
            if let (Some(ns), Some(o)) = (&f.namespace, meta.as_object_mut()) {
                o.insert("namespace".into(), json!(ns));
            }
            objects.push(Object::new(
                format!("rollout-{service}-{}.yaml", lane.name.value),
                &format!("lane {} of {service}: Kruise starts it when Deployment {}'s image becomes {}", lane.name.value, f.workload.name, image.value),
                json!({
                    "apiVersion": "rollouts.kruise.io/v1beta1",
                    "kind": "Rollout",
                    "metadata": meta,
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
    notes.push(format!(
        "Kruise runs a lane's version when the baseline Deployment's image changes in the cluster: set the lane's image on each Deployment to start it (canaryplan pins it on a copy instead); routing by `{}` is left to the mesh (ASM lanes, or canaryplan's own routes)",
        plan.header.value
    ));
    Ok(Exported { objects, notes })
}
