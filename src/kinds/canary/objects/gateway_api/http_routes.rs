//! HTTPRoute rules that send to the Service: each backendRef to the Service becomes two, to
//! the version Services, weighted `100 - weight` and `weight`. Other rules, other backendRefs,
//! filters, timeouts and matches stay as they are.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use super::{MAX_WEIGHT, mesh_route, mirror, names_service, test_rules, version_service};
use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::{Component, Context, Patch, PatchBody, Rendered, Target};
use crate::kinds::canary::stage::Routing;

pub struct HttpRoutes;

/// The most rules an HTTPRoute may have (the CRD's `maxItems`).
const MAX_RULES: usize = 16;

/// The rules of an HTTPRoute.
pub fn rules(hr: &BaseObject) -> &[Value] {
    hr.value
        .at("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The backendRefs of a rule.
pub fn refs(rule: &Value) -> &[Value] {
    rule.get("backendRefs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Whether a rule of `hr` sends to the Service.
pub fn rule_sends_to_service(cx: &Context<'_>, hr: &BaseObject, rule: &Value) -> bool {
    refs(rule)
        .iter()
        .any(|b| names_service(cx, b, hr.namespace()))
}

/// The HTTPRoutes of base the plan weights: those `httpRoutes` names, or every one with a
/// backendRef to the Service.
pub fn in_base<'a>(cx: &Context<'a>) -> Result<Vec<&'a BaseObject>> {
    let sends = |hr: &BaseObject| rules(hr).iter().any(|r| rule_sends_to_service(cx, hr, r));
    if cx.plan.http_routes.is_empty() {
        return Ok(cx
            .base
            .of_kind("HTTPRoute")
            .filter(|hr| sends(hr))
            .collect());
    }
    let mut d = crate::error::Diagnostics::default();
    let mut out = Vec::new();
    for name in &cx.plan.http_routes {
        match cx.base.find("HTTPRoute", &name.value) {
            Some(hr) if sends(hr) => out.push(hr),
            Some(hr) => d.push(
                cx.plan
                    .diag(name.pos, format!("HTTPRoute {} has no backendRef to Service {}", hr.name, cx.service.name))
                    .hint("name the HTTPRoutes that send to the Service, or remove `httpRoutes` to weight every one that does"),
            ),
            None => {
                let names: Vec<&str> = cx.base.of_kind("HTTPRoute").map(|h| h.name.as_str()).collect();
                let hint = match crate::names::did_you_mean(&name.value, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => "the base has no HTTPRoute; add one, or use `meshRoute: generate` for mesh callers".to_string(),
                    None => format!("the base has HTTPRoute {}", names.join(", ")),
                };
                d.push(
                    cx.plan
                        .diag(name.pos, format!("HTTPRoute `{}` is not in the base {}", name.value, cx.base.path.display()))
                        .hint(hint),
                );
            }
        }
    }
    d.into_result()?;
    Ok(out)
}

/// A backendRef to a version Service, from the Service's backendRef `b` (port, filters kept).
fn version_ref(cx: &Context<'_>, b: &Value, version: &str, weight: Option<u64>) -> Value {
    let mut r = b.clone();
    if let Some(o) = r.as_object_mut() {
        o.insert("name".into(), Value::String(version_service(cx, version)));
        if let Some(w) = weight {
            o.insert("weight".into(), json!(w));
        }
    }
    r
}

/// The backendRefs of a rule at this stage: each one to the Service replaced by the version
/// Services the routing names. Weights are percents; where the rule has other backends, every
/// weight is scaled by 100 so the others keep their share.
pub fn backends(
    cx: &Context<'_>,
    refs: &[Value],
    route_ns: Option<&str>,
    routing: Routing,
    at: Option<(&BaseObject, usize)>,
) -> Result<Vec<Value>> {
    let weight = |b: &Value| b.get("weight").and_then(Value::as_u64).unwrap_or(1);
    let scale = refs.len() > 1;
    let stable = cx.plan.stable.version.value.as_str();
    let canary = cx.plan.canary.version.value.as_str();
    let mut out = Vec::new();
    for b in refs {
        if !names_service(cx, b, route_ns) {
            match routing {
                Routing::Split(_) if scale => {
                    let mut r = b.clone();
                    if let Some(o) = r.as_object_mut() {
                        o.insert("weight".into(), json!(weight(b) * 100));
                    }
                    out.push(r);
                }
                _ => out.push(b.clone()),
            }
            continue;
        }
        match routing {
            Routing::Split(w) => {
                let (s, c) = if scale {
                    (
                        weight(b) * u64::from(w.stable),
                        weight(b) * u64::from(w.canary),
                    )
                } else {
                    (u64::from(w.stable), u64::from(w.canary))
                };
                out.push(version_ref(cx, b, stable, Some(s)));
                out.push(version_ref(cx, b, canary, Some(c)));
            }
            Routing::StableOnly => out.push(version_ref(cx, b, stable, None)),
            Routing::CanaryOnly => out.push(version_ref(cx, b, canary, None)),
        }
    }
    if let Some((hr, i)) = at
        && out.iter().any(|b| weight(b) > MAX_WEIGHT)
    {
        return Err(hr
            .error(&["spec", "rules", &i.to_string(), "backendRefs"], format!("the backend weights of HTTPRoute {}, rules[{i}], scaled by 100 to split Service {} by percent, exceed Gateway API's maximum of {MAX_WEIGHT}", hr.name, cx.service.name))
            .hint("write smaller relative weights on this rule's backendRefs in base (their ratio is what counts)")
            .into());
    }
    Ok(out)
}

/// A base VirtualService routing to the Service would send its callers past the HTTPRoutes
/// canaryplan weights (to whatever the Service selects, all of it the canary from `shift` on).
fn refuse_virtual_services(cx: &Context<'_>) -> Result<()> {
    for vs in cx.base.of_kind("VirtualService") {
        if let Some((kind, i)) =
            crate::kinds::canary::objects::routes_to(&vs.value, |h| cx.is_service_host(h))
                .into_iter()
                .next()
        {
            return Err(vs
                .error(&["spec", kind, &i.to_string()], format!("VirtualService {} routes to Service {} too, past the HTTPRoutes canaryplan weights", vs.name, cx.service.name))
                .hint("route this Service with one API: remove the VirtualService, or route only with VirtualServices and remove `traffic: gateway-api` from the plan")
                .into());
        }
    }
    Ok(())
}

/// A route with both a Gateway and a Service (GAMMA) parent: Gateway API leaves how mesh and
/// gateway routing combine undefined (GEP-1426 keeps it out of scope), and meshes ignore the
/// route's hostnames, so one route would mean different requests for its two kinds of caller.
fn refuse_gateway_and_service_parents(hr: &BaseObject) -> Result<()> {
    let parents = hr
        .value
        .at("/spec/parentRefs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    fn kind(p: &Value) -> &str {
        p.get("kind").and_then(Value::as_str).unwrap_or("Gateway")
    }
    let gateway = parents.iter().find(|p| kind(p) == "Gateway");
    let service = parents.iter().position(|p| kind(p) == "Service");
    if let (Some(g), Some(k)) = (gateway, service) {
        return Err(hr
            .error(&["spec", "parentRefs", &k.to_string()], format!("HTTPRoute {} has a Gateway parent ({}) and a Service parent: Gateway API does not define how one route serves both, and mesh implementations ignore its hostnames", hr.name, g.get("name").and_then(Value::as_str).unwrap_or_default()))
            .hint("split it in base: one HTTPRoute for the Gateway, one whose only parent is the Service (or `meshRoute: generate` for the latter)")
            .into());
    }
    Ok(())
}

/// Routes of base that name another version's Service (`reviews-v1` while stable.version
/// says v9): said as that, not as "no HTTPRoute sends to the Service". Where the stable
/// Deployment's pods do not carry stable.version either, the workload's error says it all.
fn routes_to_another_version(cx: &Context<'_>) -> Option<Result<()>> {
    let prefix = format!("{}-", cx.service.name);
    let named = cx.base.of_kind("HTTPRoute").find_map(|hr| {
        rules(hr).iter().flat_map(refs).find_map(|b| {
            let n = b.get("name").and_then(Value::as_str)?;
            (n.starts_with(&prefix) && cx.base.find("Service", n).is_some())
                .then(|| (hr.name.clone(), n.to_string()))
        })
    })?;
    let labelled =
        cx.original_pod_labels.get(&cx.plan.version_label) == Some(&cx.plan.stable.version.value);
    if !labelled {
        return Some(Ok(()));
    }
    let (route, svc) = named;
    Some(Err(cx
        .plan
        .diag(cx.plan.stable.version.pos, format!("HTTPRoute {route} names Service {svc}, a version's Service, but not {} (stable.version) or {} (canary.version)", version_service(cx, &cx.plan.stable.version.value), version_service(cx, &cx.plan.canary.version.value)))
        .hint(format!("set stable.version to the version whose Service the routes name (`{}`), or route to Service {}", svc.trim_start_matches(&prefix), cx.service.name))
        .into()))
}

impl Component for HttpRoutes {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        refuse_virtual_services(cx)?;
        let routes = in_base(cx)?;
        if routes.is_empty() && cx.plan.mesh_route.is_none() {
            if let Some(e) = routes_to_another_version(cx) {
                return e;
            }
            return Err(cx
                .plan
                .diag(cx.plan.service.pos, format!("no HTTPRoute in the base sends to Service {}", cx.service.name))
                .hint("add the HTTPRoute that routes to it to the base, or set `meshRoute: generate` to weight mesh callers with a GAMMA route")
                .into());
        }
        for hr in &routes {
            refuse_gateway_and_service_parents(hr)?;
        }
        mesh_route::refuse_a_second_mesh_route(cx)?;
        let Some(routing) = cx.model.routing else {
            return Ok(());
        };
        for hr in routes {
            let mut ops = Vec::new();
            let mut tests = Vec::new();
            let all = rules(hr);
            for (i, rule) in all.iter().enumerate() {
                if !rule_sends_to_service(cx, hr, rule) {
                    continue;
                }
                let mut new = backends(cx, refs(rule), hr.namespace(), routing, Some((hr, i)))?;
                let mirror = mirror::filter(cx, hr, i, rule)?;
                // A rule shared with other backends: a filter of the rule would copy their
                // requests too, so the mirror goes on the stable version's backendRef.
                let shared = refs(rule)
                    .iter()
                    .any(|b| !names_service(cx, b, hr.namespace()));
                if let (Some(f), true) = (&mirror, shared) {
                    mirror::refuse_where_unsupported(cx, hr, i)?;
                    let stable = version_service(cx, &cx.plan.stable.version.value);
                    for b in new.iter_mut() {
                        if b.get("name").and_then(Value::as_str) == Some(stable.as_str())
                            && let Some(o) = b.as_object_mut()
                        {
                            let filters = o.entry("filters").or_insert_with(|| json!([]));
                            if let Some(a) = filters.as_array_mut() {
                                a.push(f.clone());
                            }
                        }
                    }
                }
                // A rule that already is what the stage needs is left as it is.
                if rule.get("backendRefs") != Some(&Value::Array(new.clone())) {
                    ops.push(json!({"op": "replace", "path": format!("/spec/rules/{i}/backendRefs"), "value": new}));
                }
                if let (Some(f), false) = (mirror, shared) {
                    match rule.get("filters") {
                        Some(_) => ops.push(json!({"op": "add", "path": format!("/spec/rules/{i}/filters/-"), "value": f})),
                        None => ops.push(json!({"op": "add", "path": format!("/spec/rules/{i}/filters"), "value": [f]})),
                    }
                }
                if let Some(test) = test_rules::rule(cx, &hr.name, hr.namespace(), all, i)? {
                    tests.push(
                        json!({"op": "add", "path": format!("/spec/rules/{i}"), "value": test}),
                    );
                }
            }
            if !tests.is_empty() {
                test_rules::refuse_stolen_requests(cx, hr)?;
            }
            if all.len() + tests.len() > MAX_RULES {
                return Err(hr
                    .error(&["spec", "rules"], format!("HTTPRoute {} would have {} rules with the test rules, and Gateway API allows {MAX_RULES}", hr.name, all.len() + tests.len()))
                    .hint("split this HTTPRoute in base, or name fewer HTTPRoutes in `httpRoutes`")
                    .into());
            }
            // Test rules go in after every replacement (which name the base's indices), from
            // the last rule up: each insert shifts only rules after it.
            ops.extend(tests.into_iter().rev());
            if ops.is_empty() {
                continue;
            }
            let mut from = match routing {
                Routing::Split(_) => format!(
                    "rules to Service {} split between the version Services",
                    cx.service.name
                ),
                Routing::StableOnly => format!(
                    "rules to Service {} pinned to {}",
                    cx.service.name,
                    version_service(cx, &cx.plan.stable.version.value)
                ),
                Routing::CanaryOnly => format!(
                    "rules to Service {} on {} only",
                    cx.service.name,
                    version_service(cx, &cx.plan.canary.version.value)
                ),
            };
            if cx.tests_canary() {
                from.push_str(", test traffic to the canary first");
            }
            if let Some(p) = cx.mirror_percent() {
                from.push_str(&format!(", {p}% mirrored to the canary"));
            }
            out.patches.push(Patch {
                file: format!("patch-httproute-{}.yaml", cx.file_part(hr)?),
                from,
                target: Target::of(hr),
                body: PatchBody::Json(ops),
            });
        }
        mesh_route::render(cx, routing, out)
    }
}
