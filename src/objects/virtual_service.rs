//! VirtualService routes: the routes whose destination is the Service (or the plan's named
//! routes) are split between the two subsets; every other field and route is left alone. When
//! the base has no VirtualService for the Service, one is generated for the mesh host.

use serde_json::{Value, json};

use super::{Component, Context, Patch, PatchBody, Rendered, Target};
use crate::base::BaseObject;
use crate::error::{Diagnostic, Error, Result};
use crate::stage::Routing;

pub struct Routes;

use crate::traffic::ROUTE_KINDS;

/// The VirtualServices of base to patch: the one the plan names, else every one routing to
/// the Service (a gateway's and the mesh's must agree). Empty: one is generated.
pub fn in_base<'a>(cx: &Context<'a>) -> Result<Vec<&'a BaseObject>> {
    if let Some(name) = &cx.plan.virtual_service {
        return cx.base.find("VirtualService", &name.value).map(|v| vec![v]).ok_or_else(|| {
            let names: Vec<&str> = cx.base.of_kind("VirtualService").map(|v| v.name.as_str()).collect();
            let hint = match crate::names::did_you_mean(&name.value, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if names.is_empty() => "the base has no VirtualService: remove `virtualService` to have one generated".to_string(),
                None => format!("the base has VirtualService {}", names.join(", ")),
            };
            cx.plan
                .diag(name.pos, format!("VirtualService `{}` is not in the base", name.value))
                .hint(hint)
                .into()
        });
    }
    Ok(cx
        .base
        .of_kind("VirtualService")
        .filter(|vs| !routes_to_service(cx, vs).is_empty())
        .collect())
}

/// `(kind, index)` of every route with a destination that is the Service.
pub fn routes_to_service(cx: &Context<'_>, vs: &BaseObject) -> Vec<(&'static str, usize)> {
    routes_to(&vs.value, |h| cx.is_service_host(h))
}

/// `(kind, index)` of every http/tcp/tls route of a VirtualService with a destination whose
/// host satisfies `is_host`.
pub fn routes_to(vs: &Value, is_host: impl Fn(&str) -> bool) -> Vec<(&'static str, usize)> {
    let mut found = Vec::new();
    for kind in ROUTE_KINDS {
        let routes = vs
            .pointer(&format!("/spec/{kind}"))
            .and_then(Value::as_array);
        for (i, r) in routes.into_iter().flatten().enumerate() {
            let destinations = r
                .get("route")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            if destinations
                .filter_map(|d| d.pointer("/destination/host").and_then(Value::as_str))
                .any(&is_host)
            {
                found.push((kind, i));
            }
        }
    }
    found
}

/// Routes of a VirtualService, as `(kind, index)`.
type RouteRefs = Vec<(&'static str, usize)>;

/// The routes to change in each VirtualService: the plan's named http routes (each found in
/// one of them), or every route to the Service.
fn selected_routes<'a>(
    cx: &Context<'_>,
    vss: &[&'a BaseObject],
) -> Result<Vec<(&'a BaseObject, RouteRefs)>> {
    let Some(named) = &cx.plan.routes else {
        let mut out = Vec::new();
        for vs in vss {
            let all = routes_to_service(cx, vs);
            if all.is_empty() {
                return Err(vs
                    .error(
                        &["spec"],
                        format!("VirtualService {} has no route to {}", vs.name, cx.host),
                    )
                    .hint(
                        "route to the Service in base, or name another VirtualService in the plan",
                    )
                    .into());
            }
            out.push((*vs, all));
        }
        return Ok(out);
    };
    let http = |vs: &BaseObject| -> Vec<Value> {
        vs.value
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut out: Vec<(&BaseObject, RouteRefs)> = vss.iter().map(|vs| (*vs, Vec::new())).collect();
    let mut errors: Vec<Diagnostic> = Vec::new();
    for n in named {
        let mut found = false;
        for (vs, picked) in &mut out {
            let all = routes_to_service(cx, vs);
            let Some(i) = http(vs)
                .iter()
                .position(|r| r.get("name").and_then(Value::as_str) == Some(&n.value))
            else {
                continue;
            };
            found = true;
            if all.contains(&("http", i)) {
                picked.push(("http", i));
            } else {
                errors.push(
                    cx.plan
                        .diag(
                            n.pos,
                            format!(
                                "route `{}` of VirtualService {} does not go to {}",
                                n.value, vs.name, cx.host
                            ),
                        )
                        .hint("name only routes whose destination is the Service"),
                );
            }
        }
        if !found {
            let names: Vec<String> = vss
                .iter()
                .flat_map(|vs| http(vs))
                .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            let which: Vec<&str> = vss.iter().map(|v| v.name.as_str()).collect();
            errors.push(
                cx.plan
                    .diag(
                        n.pos,
                        format!(
                            "VirtualService {} has no http route named `{}`",
                            which.join(", "),
                            n.value
                        ),
                    )
                    .hint(if names.is_empty() {
                        "its http routes have no names; add `name:` to them in base".to_string()
                    } else {
                        format!("its routes are {}", names.join(", "))
                    }),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Ok(out.into_iter().filter(|(_, r)| !r.is_empty()).collect())
}

/// Whether base routes to the Service already name version subsets (bookinfo's
/// `subset: v1`, or an Argo Rollouts layout with `stable`/`canary` subsets).
pub fn base_routes_name_subsets(cx: &Context<'_>) -> bool {
    cx.base.of_kind("VirtualService").any(|vs| {
        routes_to_service(cx, vs).into_iter().any(|(kind, i)| {
            vs.value
                .pointer(&format!("/spec/{kind}/{i}/route"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|d| d.pointer("/destination/subset").is_some())
        })
    })
}

/// The new destinations of one route. The route's destinations to the Service must be one
/// (the bare host, or the stable subset) or exactly the two version subsets.
fn split(
    cx: &Context<'_>,
    vs: &BaseObject,
    kind: &str,
    i: usize,
    routing: Routing,
) -> Result<Value> {
    let path = [kind.to_string(), i.to_string()];
    let at = |extra: &[&str]| {
        let mut p: Vec<&str> = vec!["spec", &path[0], &path[1]];
        p.extend_from_slice(extra);
        vs.error(&p, String::new())
    };
    let dests = vs
        .value
        .pointer(&format!("/spec/{kind}/{i}/route"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let stable = &cx.plan.stable.subset.value;
    let canary = &cx.plan.canary.subset.value;
    let subset_of = |d: &Value| {
        d.pointer("/destination/subset")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let ours = |d: &Value| {
        d.pointer("/destination/host")
            .and_then(Value::as_str)
            .is_some_and(|h| cx.is_service_host(h))
    };
    let is_pair = dests.len() == 2 && dests.iter().all(ours) && {
        let mut names: Vec<Option<String>> = dests.iter().map(subset_of).collect();
        names.sort();
        names == [Some(canary.clone()), Some(stable.clone())]
            || names == [Some(stable.clone()), Some(canary.clone())]
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
    let with = |subset: &str, weight: Option<u8>| {
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
    };
    Ok(match routing {
        Routing::Split(w) => json!([with(stable, Some(w.stable)), with(canary, Some(w.canary))]),
        Routing::CanaryOnly => json!([with(canary, None)]),
        Routing::StableOnly => json!([with(stable, None)]),
    })
}

/// Whether the stage renders test routes (`match:`): while the canary subset is routed to.
fn tests_canary(cx: &Context<'_>) -> bool {
    !cx.env.matches.is_empty()
        && matches!(
            (cx.model.routing, cx.model.stage),
            (Some(Routing::Split(_)), _)
                | (Some(Routing::CanaryOnly), crate::stage::Stage::Cleanup1)
        )
}

/// The test route inserted before route `i`: the plan's `match` crossed with the route's own
/// conditions, the canary subset as its only destination, and the route's retries, timeout,
/// CORS, header changes, fault and rewrite (not its mirror). It must come first: Istio takes
/// the first route whose conditions match, so after `i` it would never see a request.
fn test_route(cx: &Context<'_>, vs: &BaseObject, kind: &str, i: usize) -> Result<Option<Value>> {
    if !tests_canary(cx) {
        return Ok(None);
    }
    let at = |what: String| -> Error {
        vs.error(&["spec", kind, &i.to_string()], what)
            .hint("`match` and `mirror` need http routes: Istio matches headers only there")
            .into()
    };
    if kind != "http" {
        return Err(at(format!(
            "route {kind}[{i}] of VirtualService {} is a {kind} route, and the plan has `match`",
            vs.name
        )));
    }
    let Some(route) = vs.value.pointer(&format!("/spec/http/{i}")) else {
        return Ok(None);
    };
    let own: Vec<Value> = route
        .get("match")
        .and_then(Value::as_array)
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})]);
    let mut matches = Vec::new();
    for theirs in &own {
        for ours in &cx.env.matches {
            let mut merged = theirs.as_object().cloned().unwrap_or_default();
            for (k, v) in ours.value.as_object().into_iter().flatten() {
                match merged.get(k) {
                    Some(existing) if existing != v && k != "headers" => {
                        return Err(cx
                            .plan
                            .diag(ours.pos, format!("`{k}` is set here and, differently, on route http[{i}] of VirtualService {}", vs.name))
                            .hint("a test route matches the route's own conditions AND the plan's: leave this field to the route, or give it the route's value")
                            .into());
                    }
                    Some(existing) if k == "headers" => {
                        let mut headers = existing.as_object().cloned().unwrap_or_default();
                        for (h, m) in v.as_object().into_iter().flatten() {
                            if headers.get(h).is_some_and(|x| x != m) {
                                return Err(cx
                                    .plan
                                    .diag(ours.pos, format!("header `{h}` is matched here and, differently, on route http[{i}] of VirtualService {}", vs.name))
                                    .hint("leave this header to the route, or match it the same way")
                                    .into());
                            }
                            headers.insert(h.clone(), m.clone());
                        }
                        merged.insert(k.clone(), Value::Object(headers));
                    }
                    _ => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            matches.push(Value::Object(merged));
        }
    }
    let name = match route.get("name").and_then(Value::as_str) {
        Some(n) => format!("{n}-canary"),
        None => format!("canary-{i}"),
    };
    let taken = vs
        .value
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| r.get("name").and_then(Value::as_str) == Some(&name));
    if taken {
        return Err(vs
            .error(&["spec", "http", &i.to_string()], format!("VirtualService {} already has a route named `{name}`, the name of this route's test route", vs.name))
            .hint("rename that route in base")
            .into());
    }
    let mut test = serde_json::Map::new();
    test.insert("name".into(), Value::String(name));
    test.insert("match".into(), Value::Array(matches));
    let destination = split(cx, vs, "http", i, Routing::CanaryOnly)?;
    test.insert("route".into(), destination);
    for keep in [
        "rewrite",
        "timeout",
        "retries",
        "fault",
        "corsPolicy",
        "headers",
    ] {
        if let Some(v) = route.get(keep) {
            test.insert(keep.into(), v.clone());
        }
    }
    Ok(Some(Value::Object(test)))
}

/// A base HTTPRoute sending traffic to the Service would bypass every subset canaryplan
/// weights: the Service's share through it would reach both versions by pod count.
fn refuse_http_routes(cx: &Context<'_>) -> Result<()> {
    for route in cx.base.of_kind("HTTPRoute") {
        let route_ns = route.namespace();
        let names_service = route
            .value
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|r| {
                r.get("backendRefs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|b| {
                b.get("name").and_then(Value::as_str) == Some(cx.service.name.as_str())
                    && b.get("kind")
                        .and_then(Value::as_str)
                        .is_none_or(|k| k == "Service")
                    && b.get("namespace").and_then(Value::as_str).or(route_ns)
                        == cx.service.namespace()
            });
        if names_service {
            return Err(route
                .error(&["spec", "rules"], format!("HTTPRoute {} sends traffic to Service {} too, past the VirtualService canaryplan weights", route.name, cx.service.name))
                .hint("route this Service with one API: remove the HTTPRoute, or keep it and wait for canaryplan's Gateway API mode (`traffic: gateway-api`)")
                .into());
        }
    }
    Ok(())
}

impl Component for Routes {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        refuse_http_routes(cx)?;
        let vss = in_base(cx)?;
        let hosts: Vec<&str> = cx.env.hosts.iter().map(|h| h.value.as_str()).collect();
        if vss.len() > 1
            && let Some(h) = cx.env.hosts.first()
        {
            let names: Vec<&str> = vss.iter().map(|v| v.name.as_str()).collect();
            return Err(cx
                .plan
                .diag(
                    h.pos,
                    format!(
                        "`hosts` would replace the hosts of every VirtualService routing to {}: {}",
                        cx.host,
                        names.join(", ")
                    ),
                )
                .hint("name the one whose hosts change with `virtualService:`, or remove `hosts`")
                .into());
        }
        let Some(routing) = cx.model.routing else {
            return Ok(());
        };
        match vss.as_slice() {
            [_, ..] => {
                for (vs, routes) in selected_routes(cx, &vss)? {
                    let mut ops = Vec::new();
                    let mut tests = Vec::new();
                    for (kind, i) in routes {
                        let route = split(cx, vs, kind, i, routing)?;
                        // A route that already is what the stage needs is left as it is.
                        if vs.value.pointer(&format!("/spec/{kind}/{i}/route")) != Some(&route) {
                            ops.push(json!({"op": "replace", "path": format!("/spec/{kind}/{i}/route"), "value": route}));
                        }
                        if let Some(test) = test_route(cx, vs, kind, i)? {
                            tests.push(json!({"op": "add", "path": format!("/spec/{kind}/{i}"), "value": test}));
                        }
                    }
                    // Test routes go in after every replacement (which name the base's
                    // indices), from the last route up: each insert shifts only routes after it.
                    ops.extend(tests.into_iter().rev());
                    if !hosts.is_empty() {
                        ops.push(json!({"op": "replace", "path": "/spec/hosts", "value": hosts}));
                    }
                    if ops.is_empty() {
                        continue;
                    }
                    out.patches.push(Patch {
                        file: format!("patch-virtualservice-{}.yaml", cx.file_part(vs)?),
                        from: match routing {
                            Routing::Split(_) => format!("routes to {} split by version", cx.host),
                            Routing::StableOnly => format!(
                                "routes to {} pinned to subset {}",
                                cx.host, cx.plan.stable.subset.value
                            ),
                            Routing::CanaryOnly => format!(
                                "routes to {} on subset {} only",
                                cx.host, cx.plan.canary.subset.value
                            ),
                        },
                        target: Target::of(vs),
                        body: PatchBody::Json(ops),
                    });
                }
            }
            [] => {
                let name = cx.service.name.clone();
                let ports = cx
                    .service
                    .value
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if ports > 1 {
                    return Err(cx
                        .plan
                        .diag(cx.plan.service.pos, format!("Service {name} has {ports} ports and the base has no VirtualService for it"))
                        .hint("add a VirtualService with a route per port to base; canaryplan then splits its routes")
                        .into());
                }
                let mut all_hosts = vec![cx.host.as_str()];
                all_hosts.extend(hosts.iter().filter(|h| **h != cx.host));
                let only =
                    |subset: &str| json!([{"destination": {"host": cx.host, "subset": subset}}]);
                let route = match routing {
                    Routing::Split(w) => {
                        let d = |v: &str, w: u8| json!({"destination": {"host": cx.host, "subset": v}, "weight": w});
                        json!([
                            d(&cx.plan.stable.subset.value, w.stable),
                            d(&cx.plan.canary.subset.value, w.canary)
                        ])
                    }
                    Routing::CanaryOnly => only(&cx.plan.canary.subset.value),
                    Routing::StableOnly => only(&cx.plan.stable.subset.value),
                };
                if cx.base.find("VirtualService", &name).is_some() {
                    return Err(cx
                        .plan
                        .diag(
                            cx.plan.service.pos,
                            format!(
                                "the base has a VirtualService `{name}` that does not route to {}",
                                cx.host
                            ),
                        )
                        .hint("name it with `virtualService:` in the plan, or rename it")
                        .into());
                }
                let mut generated = cx.new_resource(
                    "virtual-service.yaml.j2",
                    ("networking.istio.io/v1", "VirtualService"),
                    &name,
                    json!({"hosts": all_hosts, "route": route}),
                    Vec::new(),
                    format!("the mesh route to Service {name}, split by version"),
                )?;
                // Test traffic first (added here, so a custom template cannot drop it).
                if tests_canary(cx)
                    && let Some(http) = generated
                        .object
                        .pointer_mut("/spec/http")
                        .and_then(Value::as_array_mut)
                {
                    let matches: Vec<Value> =
                        cx.env.matches.iter().map(|m| m.value.clone()).collect();
                    http.insert(
                        0,
                        json!({"name": "canary-0", "match": matches, "route": only(&cx.plan.canary.subset.value)}),
                    );
                }
                out.resources.push(generated);
            }
        }
        Ok(())
    }
}
