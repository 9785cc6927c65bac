//! `export kruise` of a CanaryPlan: a Kruise `Rollout` (rollouts.kruise.io/v1beta1) with the
//! plan's weights as steps, its header test match on the first step, the canary as an extra
//! Deployment whose pods carry the version label, and the plan's VirtualService and
//! DestinationRule (or HTTPRoute) as the traffic routing.

use serde_json::{Value, json};

use super::facts::{self, metadata, seconds};
use crate::analysis::Pause;
use crate::error::Result;
use crate::export::{Exported, Object};
use crate::kinds::canary::check::CheckedPlan;
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
    let mut steps = Vec::new();
    for (i, w) in plan.steps.iter().enumerate() {
        let mut step = json!({"traffic": format!("{w}%"), "replicas": format!("{w}%")});
        if let Some(o) = step.as_object_mut() {
            if i == 0
                && let Some(m) = &first_match
            {
                o.insert("matches".into(), m.clone());
            }
            if *w < 100 {
                let pause = match plan
                    .step_pauses
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|p| &p.value)
                {
                    Some(Pause::For(d)) => json!({"duration": seconds(d).unwrap_or_default()}),
                    Some(Pause::Manual) | None => json!({}),
                };
                o.insert("pause".into(), pause);
            }
        }
        steps.push(step);
    }
    let routing = match plan.traffic {
        Traffic::Istio => {
            let mut refs: Vec<Value> = f
                .routes
                .iter()
                .map(|(vs, _)| json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": vs}))
                .collect();
            refs.push(json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "name": f.destination_rule.clone().unwrap_or_else(|| service.name.clone()),
            }));
            json!([{"service": service.name, "customNetworkRefs": refs}])
        }
        Traffic::GatewayApi => Value::Array(
            f.routes
                .iter()
                .map(|(hr, _)| json!({"service": service.name, "gateway": {"httpRouteName": hr}}))
                .collect(),
        ),
    };
    if plan.analysis.is_some() {
        notes.push("analysis (Kruise Rollout has none: run `canaryplan gate`, or Kruise's own metrics checks)".into());
    }
    if env.mirror.is_some() {
        notes.push("the mirror (Kruise Rollout does not mirror)".into());
    }
    match plan.method {
        Method::Succession => notes.push("stable.image (Kruise's stable version is the Deployment's pods before its image changes)".into()),
        Method::Coexistence => notes.push("stable.env and canary.env (Kruise runs one pod template; the version is the image)".into()),
        Method::Versioned => notes.push(format!("the versioned layout (Kruise rolls {} itself instead of adding {})", plan.workload.value, plan.new_deployment_name())),
    }
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
