//! The new destinations of a selected route at a stage: the stable and canary subsets with
//! the stage's weights, or one of them alone.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::Context;
use crate::kinds::canary::stage::Routing;

/// The route's destination to the Service, as base writes it (host, port): the one every
/// new destination and the mirror are made from.
pub fn service_destination(
    cx: &Context<'_>,
    vs: &BaseObject,
    kind: &str,
    i: usize,
) -> Result<Value> {
    let dests = destinations(vs, kind, i);
    let stable = &cx.plan.stable.subset.value;
    let canary = &cx.plan.canary.subset.value;
    let ours = |d: &Value| {
        d.at("/destination/host")
            .and_then(Value::as_str)
            .is_some_and(|h| cx.is_service_host(h))
    };
    let is_pair = dests.len() == 2 && dests.iter().all(ours) && {
        let mut names: Vec<Option<String>> = dests.iter().map(subset_of).collect();
        names.sort();
        names == [Some(canary.clone()), Some(stable.clone())]
            || names == [Some(stable.clone()), Some(canary.clone())]
    };
    let at = |extra: &[&str]| {
        let index = i.to_string();
        let mut p: Vec<&str> = vec!["spec", kind, &index];
        p.extend_from_slice(extra);
        vs.error(&p, String::new())
    };
    let dest = match dests.as_slice() {
        [one] => one.clone(),
        [first, ..] if is_pair => first.clone(),
        _ => {
            let mut d = at(&["route"]);
            d.message = format!(
                "route {kind}[{i}] of VirtualService {} already splits traffic between {} destinations",
                vs.name,
                dests.len()
            );
            return Err(d
                .hint(format!(
                    "canaryplan splits routes with one destination, the Service (or its `{stable}` subset), or with exactly the subsets `{stable}` and `{canary}`; give this route one destination in base"
                ))
                .into());
        }
    };
    if let Some(subset) = subset_of(&dest)
        && dests.len() == 1
        && subset != *stable
        && subset != *canary
    {
        let mut d = at(&["route", "0", "destination", "subset"]);
        d.message = format!(
            "route {kind}[{i}] of VirtualService {} routes to subset `{subset}`, not the stable subset `{stable}`",
            vs.name
        );
        return Err(d
            .hint(format!(
                "the route's subset is the version serving today: set `stable.subset: {subset}` (and stable.version to that version) in the plan, or route to the bare host in base"
            ))
            .into());
    }
    Ok(dest)
}

fn destinations(vs: &BaseObject, kind: &str, i: usize) -> Vec<Value> {
    vs.value
        .at(&format!("/spec/{kind}/{i}/route"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn subset_of(d: &Value) -> Option<String> {
    d.at("/destination/subset")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `dest` (a route destination) sent to `subset`, with `weight` or none.
pub fn to_subset(dest: &Value, subset: &str, weight: Option<u8>) -> Value {
    let mut d = dest.clone();
    if let Some(dst) = d.get_mut("destination").and_then(Value::as_object_mut) {
        dst.insert("subset".into(), Value::String(subset.to_string()));
    }
    if let Some(o) = d.as_object_mut() {
        o.remove("weight");
        if let Some(w) = weight {
            o.insert("weight".into(), json!(w));
        }
    }
    d
}

/// The new destinations of one route. The route's destinations to the Service must be one
/// (the bare host, or the stable subset) or exactly the two version subsets.
pub fn split(
    cx: &Context<'_>,
    vs: &BaseObject,
    kind: &str,
    i: usize,
    routing: Routing,
) -> Result<Value> {
    let dest = service_destination(cx, vs, kind, i)?;
    let stable = &cx.plan.stable.subset.value;
    let canary = &cx.plan.canary.subset.value;
    Ok(match routing {
        Routing::Split(w) => json!([
            to_subset(&dest, stable, Some(w.stable)),
            to_subset(&dest, canary, Some(w.canary))
        ]),
        Routing::CanaryOnly => json!([to_subset(&dest, canary, None)]),
        Routing::StableOnly => json!([to_subset(&dest, stable, None)]),
    })
}
