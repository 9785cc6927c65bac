//! What finishing a release changes in its base: the object changes between the base and the
//! cleanup-3 stream, and those changes in words. `finish` turns them into file edits; the
//! safety checks name them when `done` would drop what the base does not hold yet.

use crate::pointer::Pointer as _;
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::base::{Base, BaseObject};
use crate::kinds::canary::check::CheckedPlan;
use crate::kinds::canary::plan::Traffic;

/// What differs between the base and the cleanup-3 stream, object by object.
#[derive(Debug)]
pub enum Change<'a> {
    /// A base object the end state no longer has; `by` the object that takes its place in
    /// the same file (one of the same kind), if any.
    Remove(&'a BaseObject, Option<&'a Value>),
    /// A base object the end state has with other fields.
    Modify(&'a BaseObject, &'a Value),
    /// An object only the overlay has, added to the file `beside` (a base object of the same
    /// kind, else the plan's Service).
    Add(&'a Value, &'a BaseObject),
}

type Key = (String, String, Option<String>);

fn key_of(v: &Value) -> Key {
    let s = |p: &str| v.at(p).and_then(Value::as_str).map(str::to_string);
    (
        s("/kind").unwrap_or_default(),
        s("/metadata/name").unwrap_or_default(),
        s("/metadata/namespace"),
    )
}

fn describe(v: &Value) -> String {
    let (kind, name, _) = key_of(v);
    format!("{kind} {name}")
}

/// The changes that bring `base` to the `end` stream (cleanup-3's final objects).
pub fn changes<'a>(
    base: &'a Base,
    service: &'a BaseObject,
    end: &'a [Value],
    version_services: Option<(&str, &str)>,
) -> Vec<Change<'a>> {
    let in_end: BTreeMap<Key, &Value> = end.iter().map(|v| (key_of(v), v)).collect();
    let in_base: BTreeMap<Key, &BaseObject> =
        base.objects.iter().map(|o| (key_of(&o.value), o)).collect();
    let mut added: Vec<&Value> = end
        .iter()
        .filter(|v| !in_base.contains_key(&key_of(v)))
        .collect();
    let mut out = Vec::new();
    for o in &base.objects {
        match in_end.get(&key_of(&o.value)) {
            Some(v) if **v != o.value => out.push(Change::Modify(o, v)),
            Some(_) => {}
            None => {
                let by = added
                    .iter()
                    .position(|v| key_of(v).0 == o.kind)
                    .map(|i| added.remove(i));
                out.push(Change::Remove(o, by));
            }
        }
    }
    // Gateway API, one Service per version in base: the stable version's Service gives its
    // place to the canary's (no route names it at the end, and its pods are gone).
    if let Some((stable, canary)) = version_services {
        let canary_at = added
            .iter()
            .position(|v| key_of(v).0 == "Service" && key_of(v).1 == canary);
        if let (Some(i), Some(old)) = (canary_at, base.find("Service", stable)) {
            out.push(Change::Remove(old, Some(added.remove(i))));
        }
    }
    for v in added {
        let kind = key_of(v).0;
        let beside = base
            .objects
            .iter()
            .find(|o| o.kind == kind)
            .unwrap_or(service);
        out.push(Change::Add(v, beside));
    }
    out
}

/// Gateway API: the Services of the stable and the canary version.
pub fn version_service_names(plan: &CheckedPlan) -> Option<(String, String)> {
    (plan.traffic == Traffic::GatewayApi).then(|| {
        (
            format!("{}-{}", plan.service.value, plan.stable.version.value),
            format!("{}-{}", plan.service.value, plan.canary.version.value),
        )
    })
}

/// The remaining base edits in words, for `done`'s refusal (from cleanup-3's stream).
pub fn remaining_steps(plan: &CheckedPlan, base: &Base, end: &[Value]) -> Vec<String> {
    let Some(service) = base.find("Service", &plan.service.value) else {
        return Vec::new();
    };
    let names = version_service_names(plan);
    let mut steps: Vec<String> = changes(
        base,
        service,
        end,
        names.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    )
    .iter()
    .map(step)
    .collect();
    if mesh_route_moves_to_base(plan, base, end) {
        steps.push(mesh_route_step(plan));
    }
    steps
}

fn shown_in(path: &Path) -> String {
    crate::output::diff::shown(path)
}

/// A change in words: the file, and what to do in it.
pub fn step(c: &Change<'_>) -> String {
    match c {
        Change::Remove(o, Some(by)) => format!(
            "{}: replace {} {} with {} (as cleanup-3 renders it)",
            shown_in(&o.source.path),
            o.kind,
            o.name,
            describe(by)
        ),
        Change::Remove(o, None) => {
            format!("{}: remove {} {}", shown_in(&o.source.path), o.kind, o.name)
        }
        Change::Modify(o, v) => {
            let _ = v;
            let what = match o.kind.as_str() {
                "HTTPRoute" => "its rules name what cleanup-3's do",
                "VirtualService" => "its routes name what cleanup-3's do",
                "DestinationRule" => "its subsets as cleanup-3 has them",
                _ => "as cleanup-3 renders it",
            };
            format!(
                "{}: change {} {}: {what}",
                shown_in(&o.source.path),
                o.kind,
                o.name
            )
        }
        Change::Add(v, beside) => format!(
            "{}: add {} (as cleanup-3 renders it)",
            shown_in(&beside.source.path),
            describe(v)
        ),
    }
}

/// With `meshRoute: generate`, the generated GAMMA route becomes a base route: the plan
/// field goes with it (a base GAMMA route and a generated one would compete).
pub fn mesh_route_moves_to_base(plan: &CheckedPlan, base: &Base, end: &[Value]) -> bool {
    plan.mesh_route.is_some()
        && end.iter().any(|v| {
            let (kind, name, _) = key_of(v);
            kind == "HTTPRoute"
                && name.starts_with(&format!("{}-mesh", plan.service.value))
                && base.find("HTTPRoute", &name).is_none()
        })
}

/// The plan edit that goes with a generated mesh route moving into the base.
pub fn mesh_route_step(plan: &CheckedPlan) -> String {
    format!(
        "{}:{}: remove `meshRoute: generate` (the mesh route is in the base now)",
        crate::output::diff::shown(&plan.path),
        plan.mesh_route.map(|p| p.line).unwrap_or_default()
    )
}
