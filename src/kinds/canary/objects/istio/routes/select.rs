//! Which VirtualServices and which of their routes a plan changes: the VirtualServices the
//! plan names (a root that delegates stands for its delegates) or every one routing to the
//! Service; in each, the http routes the plan names (default all) and the tcp/tls routes of
//! the plan's ports (default all).

use crate::pointer::Pointer as _;
use serde_json::Value;

use crate::base::BaseObject;
use crate::error::{Diagnostic, Result};
use crate::kinds::canary::objects::Context;
use crate::rendered::routes_to;
use crate::traffic::ROUTE_KINDS;

/// Routes of a VirtualService, as `(kind, index)`.
pub use crate::rendered::RouteRefs;

/// The VirtualServices of base to patch: the ones the plan names, else every one routing to
/// the Service (a gateway's and the mesh's must agree). A named root whose routes delegate
/// is replaced by its delegates that route to the Service: Istio merges a delegate's routes
/// into the root's, and the delegate is the object its team owns. Empty: one is generated.
pub fn in_base<'a>(cx: &Context<'a>) -> Result<Vec<&'a BaseObject>> {
    if cx.plan.virtual_services.is_empty() {
        return Ok(cx
            .base
            .of_kind("VirtualService")
            .filter(|vs| !routes_to_service(cx, vs).is_empty())
            .collect());
    }
    let mut out: Vec<&BaseObject> = Vec::new();
    let mut errors: Vec<Diagnostic> = Vec::new();
    for name in &cx.plan.virtual_services {
        let Some(vs) = cx.base.find("VirtualService", &name.value) else {
            let names: Vec<&str> = cx
                .base
                .of_kind("VirtualService")
                .map(|v| v.name.as_str())
                .collect();
            let hint = match crate::names::did_you_mean(&name.value, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if names.is_empty() => {
                    "the base has no VirtualService: remove `virtualService` to have one generated"
                        .to_string()
                }
                None => format!("the base has VirtualService {}", names.join(", ")),
            };
            errors.push(
                cx.plan
                    .diag(
                        name.pos,
                        format!("VirtualService `{}` is not in the base", name.value),
                    )
                    .hint(hint),
            );
            continue;
        };
        let delegates = delegates_of(cx, vs);
        if routes_to_service(cx, vs).is_empty() && !delegates.is_empty() {
            let ours: Vec<&BaseObject> = delegates
                .into_iter()
                .filter(|d| !routes_to_service(cx, d).is_empty())
                .collect();
            if ours.is_empty() {
                errors.push(
                    cx.plan
                        .diag(name.pos, format!("VirtualService `{}` delegates its routes, and none of its delegates in base routes to {}", name.value, cx.host))
                        .hint("name the delegate VirtualService that routes to the Service, and add it to the base"),
                );
            }
            for d in ours {
                if !out.iter().any(|o| std::ptr::eq(*o, d)) {
                    out.push(d);
                }
            }
            continue;
        }
        if !out.iter().any(|o| std::ptr::eq(*o, vs)) {
            out.push(vs);
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Ok(out)
}

/// The delegate VirtualServices a root's http routes name, as found in base.
fn delegates_of<'a>(cx: &Context<'a>, root: &BaseObject) -> Vec<&'a BaseObject> {
    root.value
        .at("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.at("/delegate/name").and_then(Value::as_str))
        .filter_map(|name| cx.base.find("VirtualService", name))
        .collect()
}

/// Whether a VirtualService is a delegate: it has no hosts, its root names it.
pub fn is_delegate(vs: &BaseObject) -> bool {
    vs.value
        .at("/spec/hosts")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

/// `(kind, index)` of every route with a destination that is the Service.
pub fn routes_to_service(cx: &Context<'_>, vs: &BaseObject) -> RouteRefs {
    routes_to(&vs.value, |h| cx.is_service_host(h))
}

/// The ports a tcp/tls route serves (`match[].port`); empty: every port.
fn route_ports(vs: &BaseObject, kind: &str, i: usize) -> Vec<u64> {
    vs.value
        .at(&format!("/spec/{kind}/{i}/match"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("port").and_then(Value::as_u64))
        .collect()
}

/// The routes to change in each VirtualService: the plan's named http routes (each found in
/// one of them) or every http route to the Service, and the tcp/tls routes to the Service
/// that serve one of the plan's ports (or every one).
pub fn selected_routes<'a>(
    cx: &Context<'_>,
    vss: &[&'a BaseObject],
) -> Result<Vec<(&'a BaseObject, RouteRefs)>> {
    let mut out: Vec<(&BaseObject, RouteRefs)> = Vec::new();
    let mut errors: Vec<Diagnostic> = Vec::new();
    let ports = &cx.plan.ports;
    let mut port_used = vec![false; ports.len()];
    for vs in vss {
        let all = routes_to_service(cx, vs);
        if all.is_empty() {
            return Err(vs
                .error(
                    &["spec"],
                    format!("VirtualService {} has no route to {}", vs.name, cx.host),
                )
                .hint("route to the Service in base, or name another VirtualService in the plan")
                .into());
        }
        let mut picked: RouteRefs = Vec::new();
        for (kind, i) in all {
            if kind == "http" {
                if cx.plan.routes.is_none() {
                    picked.push((kind, i));
                }
                continue;
            }
            let serves = route_ports(vs, kind, i);
            let mut keep = ports.is_empty() || serves.is_empty();
            for (p, used) in ports.iter().zip(port_used.iter_mut()) {
                if serves.is_empty() || serves.contains(&u64::from(p.value)) {
                    *used = true;
                    keep = true;
                }
            }
            if keep {
                picked.push((kind, i));
            }
        }
        out.push((*vs, picked));
    }
    for (p, used) in ports.iter().zip(&port_used) {
        if !used {
            let which: Vec<&str> = vss.iter().map(|v| v.name.as_str()).collect();
            errors.push(
                cx.plan
                    .diag(p.pos, format!("no tcp or tls route to {} serves port {}", cx.host, p.value))
                    .hint(format!("VirtualService {} has none for this port: list the ports of its tcp/tls routes (`match: [{{port: N}}]`), or remove `ports`", which.join(", "))),
            );
        }
    }
    if let Some(named) = &cx.plan.routes {
        named_http_routes(cx, named, &mut out, &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    for (_, picked) in &mut out {
        picked.sort_by_key(|(kind, i)| (ROUTE_KINDS.iter().position(|k| k == kind), *i));
    }
    Ok(out.into_iter().filter(|(_, r)| !r.is_empty()).collect())
}

/// Adds the plan's named http routes to `out`, each found in one of the VirtualServices.
fn named_http_routes(
    cx: &Context<'_>,
    named: &[crate::yaml::At<String>],
    out: &mut [(&BaseObject, RouteRefs)],
    errors: &mut Vec<Diagnostic>,
) {
    let http = |vs: &BaseObject| -> Vec<Value> {
        vs.value
            .at("/spec/http")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for n in named {
        let mut found = false;
        for (vs, picked) in out.iter_mut() {
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
            let names: Vec<String> = out
                .iter()
                .flat_map(|(vs, _)| http(vs))
                .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            let which: Vec<&str> = out.iter().map(|(v, _)| v.name.as_str()).collect();
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
}

/// Whether base routes to the Service already name version subsets (bookinfo's
/// `subset: v1`, or an Argo Rollouts layout with `stable`/`canary` subsets).
pub fn base_routes_name_subsets(cx: &Context<'_>) -> bool {
    cx.base.of_kind("VirtualService").any(|vs| {
        routes_to_service(cx, vs).into_iter().any(|(kind, i)| {
            vs.value
                .at(&format!("/spec/{kind}/{i}/route"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|d| d.at("/destination/subset").is_some())
        })
    })
}
