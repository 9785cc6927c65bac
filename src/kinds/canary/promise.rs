//! What each CanaryPlan stage promises, in traffic terms (`kinds::promise`): prepare moves
//! nothing, route and shift split the Service's requests by the weight (test routes held on
//! the canary), cleanup keeps every request on the canary, done leaves the base alone.

use serde_json::json;

use super::check::{CheckedPlan, EnvironmentPlan};
use super::plan::Method;
use super::stage::Stage;
use crate::invariants::{Declared, Shift};
use crate::kinds::promise::{Promise, beside};

/// The promise of environment `e` of `plan`, with `base` the objects of its base.
pub fn of(plan: &CheckedPlan, e: &EnvironmentPlan, base: &crate::base::Base) -> Promise {
    let workload = match base
        .find("Deployment", &plan.workload.value)
        .and_then(|d| d.namespace())
    {
        Some(ns) => format!("{ns}/{}", plan.workload.value),
        None => plan.workload.value.clone(),
    };
    let (stable, canary) = match plan.method {
        Method::Versioned => (plan.workload.value.clone(), plan.versioned_canary_name()),
        _ => (plan.stable_copy_name(), plan.workload.value.clone()),
    };
    let held: Vec<String> = e
        .matches
        .iter()
        .map(|m| crate::explain::condition(&m.value))
        .collect();
    let shift = |to: f64| Shift {
        service: plan.service.value.clone(),
        ports: plan.ports.iter().map(|x| u32::from(x.value)).collect(),
        stable: vec![beside(&workload, &stable)],
        canary: vec![beside(&workload, &canary)],
        from: None,
        to,
        held: held.clone(),
        revisions: None,
        by_pods: false,
        hosts: e.hosts.iter().map(|h| h.value.clone()).collect(),
    };
    let declared = match e.stage.value {
        Stage::Prepare => Declared::Prepare,
        // `aborted: true` (what `abort` writes): no request class reaches the canary.
        Stage::Shift if e.aborted.is_some() => Declared::Abort {
            canary: vec![beside(&workload, &canary)],
        },
        Stage::Route | Stage::Shift => Declared::Shift(shift(f64::from(e.model.weights().canary))),
        Stage::Cleanup1 | Stage::Cleanup2 | Stage::Cleanup3 => Declared::Cleanup(shift(100.0)),
        Stage::Done => Declared::Done,
    };
    let mut entry = json!({
        "stage": e.stage.value.name(),
        "weight": e.weight.as_ref().map(|w| w.value),
        "hosts": e.hosts.iter().map(|h| h.value.clone()).collect::<Vec<_>>(),
        "matches": held,
    });
    if let (Some(m), Some(_)) = (entry.as_object_mut(), &e.aborted) {
        m.insert("aborted".into(), json!(true));
    }
    Promise { entry, declared }
}
