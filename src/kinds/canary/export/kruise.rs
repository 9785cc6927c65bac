//! `export kruise` of a CanaryPlan: a Kruise `Rollout` (rollouts.kruise.io/v1beta1) with the
//! plan's weights as steps, its header test match on the first step, the canary as an extra
//! Deployment whose pods carry the version label, and the plan's VirtualService and
//! DestinationRule (or HTTPRoute) as the traffic routing.

use serde_json::{Value, json};

use super::facts::{self, Facts, metadata, seconds};
use crate::analysis::Pause;
use crate::base::BaseObject;
use crate::error::Result;
use crate::export::{Exported, Object};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};
use crate::kinds::canary::plan::{Method, Traffic};

/// Kruise's header matches (Gateway API shapes) for a plan match entry.
fn matches(plan: &CheckedPlan, m: &Value, notes: &mut Vec<String>) -> Value {
    let mut headers = Vec::new();
    for (k, _) in m
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "headers")
    {
        notes.push(format!(
            "the test match on `{k}` (Kruise's step matches are headers here)"
        ));
    }
    match plan.traffic {
        Traffic::Istio => {
            for (name, cond) in m
                .get("headers")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(v) = cond.get("exact") {
                    headers.push(json!({"name": name, "value": v, "type": "Exact"}));
                } else if let Some(v) = cond.get("regex") {
                    headers.push(json!({"name": name, "value": v, "type": "RegularExpression"}));
                } else {
                    notes.push(format!(
                        "the test match on header `{name}` (Kruise matches exact or regex)"
                    ));
                }
            }
        }
        Traffic::GatewayApi => {
            headers.extend(
                m.get("headers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    json!([{ "headers": headers }])
}

/// The Kruise Rollout of `env` (optional when the plan has one environment), with notes on
/// what it cannot express.
pub fn export(plan: &CheckedPlan, env: Option<&str>) -> Result<Exported> {
    let env = facts::environment(plan, env)?;
    let f = facts::gather(plan, env)?;
    let mut notes = Vec::new();
    let (Some(service), Some(workload)) = (f.service(plan), f.workload(plan)) else {
        return Ok(Exported::default());
    };
    let first_match = env
        .matches
        .first()
        .map(|m| matches(plan, &m.value, &mut notes));
    if env.matches.len() > 1 {
        notes.push(format!(
            "test matches after the first of {}",
            env.matches.len()
        ));
    }
    let steps = steps(plan, first_match.as_ref(), &mut notes);
    let routing = routing(plan, &f, service, &mut notes);
    notes_on_what_kruise_lacks(plan, env, &mut notes);
    let rollout = json!({
        "apiVersion": "rollouts.kruise.io/v1beta1",
        "kind": "Rollout",
        "metadata": metadata(&plan.name, &f.namespace),
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
            "strategy": {"canary": {
                "enableExtraWorkloadForCanary": true,
                "steps": steps,
                "trafficRoutings": routing,
                "patchPodTemplateMetadata": {"labels": {plan.version_label.clone(): plan.canary.version.value.clone()}},
            }},
        },
    });
    Ok(Exported {
        objects: vec![Object::new(
            format!("rollout-{}.yaml", plan.name),
            &format!(
                "Deployment {} rolled out by Kruise, steps {:?}",
                workload.name, plan.steps
            ),
            rollout,
        )],
        notes,
    })
}

/// The plan's weights as Kruise steps (from the first weight above 0), each with its pause;
/// the first step carries the test match.
fn steps(plan: &CheckedPlan, first_match: Option<&Value>, notes: &mut Vec<String>) -> Vec<Value> {
    let mut steps = Vec::new();
    for (i, w) in plan.steps.iter().enumerate() {
        // A first step of 0 holds before traffic moves; Kruise's steps start with traffic.
        if *w == 0 {
            if plan.step_pauses.get(i).is_some_and(Option::is_some) {
                notes.push(
                    "the pause at weight 0 (Kruise's first step already moves traffic)".into(),
                );
            }
            continue;
        }
        let first = steps.is_empty();
        let mut step = json!({"traffic": format!("{w}%"), "replicas": format!("{w}%")});
        if let Some(o) = step.as_object_mut() {
            if first && let Some(m) = first_match {
                o.insert("matches".into(), m.clone());
            }
            if *w < 100 {
                let pause = match plan
                    .step_pauses
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|p| &p.value)
                {
                    Some(Pause::For(d)) => {
                        let whole = seconds(d).unwrap_or_default();
                        if crate::analysis::go_duration_millis(d).is_some_and(|ms| ms % 1000 != 0) {
                            notes.push(format!(
                                "the pause {d} as {whole}s (Kruise pauses whole seconds)"
                            ));
                        }
                        json!({"duration": whole})
                    }
                    Some(Pause::Manual) | None => json!({}),
                };
                o.insert("pause".into(), pause);
            }
        }
        steps.push(step);
    }
    steps
}

/// The traffic routing: the VirtualServices and the DestinationRule in base (Istio), or the
/// HTTPRoutes (Gateway API).
fn routing(plan: &CheckedPlan, f: &Facts, service: &BaseObject, notes: &mut Vec<String>) -> Value {
    match plan.traffic {
        Traffic::Istio => {
            // Each reference names the object in base with the apiVersion base gives it
            // (v1beta1 where the base is written so).
            let api_version = |kind: &str, name: &str| {
                f.base
                    .find(kind, name)
                    .map(|o| o.api_version.clone())
                    .unwrap_or_else(|| "networking.istio.io/v1".to_string())
            };
            let mut refs: Vec<Value> = f
            .routes
            .iter()
            .map(|(vs, _)| json!({"apiVersion": api_version("VirtualService", vs), "kind": "VirtualService", "name": vs}))
            .collect();
            let dr = f
                .destination_rule
                .clone()
                .unwrap_or_else(|| service.name.clone());
            if f.destination_rule.is_none() {
                notes.push(format!("the DestinationRule {dr} (canaryplan renders it during a release; Kruise Rollout needs it in base, with the host {})", service.name));
            }
            let dr_version = match &f.destination_rule {
                Some(name) => api_version("DestinationRule", name),
                None => f
                    .routes
                    .first()
                    .map(|(vs, _)| api_version("VirtualService", vs))
                    .unwrap_or_else(|| "networking.istio.io/v1".to_string()),
            };
            refs.push(json!({
                "apiVersion": dr_version,
                "kind": "DestinationRule",
                "name": dr,
            }));
            json!([{"service": service.name, "customNetworkRefs": refs}])
        }
        Traffic::GatewayApi => Value::Array(
            f.routes
                .iter()
                .map(|(hr, _)| json!({"service": service.name, "gateway": {"httpRouteName": hr}}))
                .collect(),
        ),
    }
}

/// Notes on what of the plan a Kruise Rollout cannot express: analysis, the mirror, and the
/// copy methods other than succession.
fn notes_on_what_kruise_lacks(plan: &CheckedPlan, env: &EnvironmentPlan, notes: &mut Vec<String>) {
    if plan.analysis.is_some() {
        notes.push("analysis (Kruise Rollout has none: run `canaryplan gate`, or Kruise's own metrics checks)".into());
    }
    if env.mirror.is_some() {
        notes.push("the mirror (Kruise Rollout does not mirror)".into());
    }
    match plan.method {
        // Kruise's stable version is the Deployment's pods before its image changes: what
        // `stable.image` pins.
        Method::Succession => {}
        Method::Coexistence => notes.push(
            "stable.env and canary.env (Kruise runs one pod template; the version is the image)"
                .into(),
        ),
        Method::Versioned => notes.push(format!(
            "the versioned layout (Kruise rolls {} itself instead of adding {})",
            plan.workload.value,
            plan.new_deployment_name()
        )),
    }
}
