//! VirtualService routes: the routes whose destination is the Service (or the plan's named
//! routes and ports) are split between the two subsets, in every VirtualService the plan names
//! or that routes to the Service; every other field and route is left alone. Each routing
//! feature is a module: `split` (weights), `test_routes` (`match:`), `mirror` (`mirror:`), and
//! `generated` (the mesh VirtualService made when base has none). `select` picks what changes.

mod generated;
mod mirror;
mod select;
mod split;
mod test_routes;

use crate::pointer::Pointer as _;
use serde_json::json;

pub use select::base_routes_name_subsets;

use crate::error::Result;
use crate::kinds::canary::objects::{Component, Context, Patch, PatchBody, Rendered, Target};
use crate::kinds::canary::stage::Routing;

pub struct Routes;

/// A base HTTPRoute sending traffic to the Service would bypass every subset canaryplan
/// weights: the Service's share through it would reach both versions by pod count.
fn refuse_http_routes(cx: &Context<'_>) -> Result<()> {
    for route in cx.base.of_kind("HTTPRoute") {
        let names_service = crate::kinds::canary::objects::http_route_backend_refs(&route.value)
            .any(|b| {
                crate::kinds::canary::objects::gateway_api::names_service(cx, b, route.namespace())
            });
        if names_service {
            return Err(route
                .error(&["spec", "rules"], format!("HTTPRoute {} sends traffic to Service {} too, past the VirtualService canaryplan weights", route.name, cx.service.name))
                .hint("route this Service with one API: remove the HTTPRoute, or route only with HTTPRoutes and set `traffic: gateway-api` in the plan")
                .into());
        }
    }
    Ok(())
}

impl Component for Routes {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        refuse_http_routes(cx)?;
        let vss = select::in_base(cx)?;
        let hosts: Vec<&str> = cx.env.hosts.iter().map(|h| h.value.as_str()).collect();
        if let Some(h) = cx.env.hosts.first() {
            if vss.len() > 1 {
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
            if let Some(vs) = vss.first().filter(|vs| select::is_delegate(vs)) {
                return Err(cx
                    .plan
                    .diag(h.pos, format!("VirtualService {} is a delegate: it has no hosts of its own", vs.name))
                    .hint("a delegate serves its root's hosts: change them on the root VirtualService in base, or remove `hosts`")
                    .into());
            }
        }
        let Some(routing) = cx.model.routing else {
            return Ok(());
        };
        if vss.is_empty() {
            return generated::render(cx, routing, &hosts, out);
        }
        let selected = select::selected_routes(cx, &vss)?;
        refuse_http_features_without_http(cx, &selected)?;
        for (vs, routes) in selected {
            let mut ops = Vec::new();
            let mut tests = Vec::new();
            for (kind, i) in routes {
                let route = split::split(cx, vs, kind, i, routing)?;
                // A route that already is what the stage needs is left as it is.
                if vs.value.at(&format!("/spec/{kind}/{i}/route")) != Some(&route) {
                    ops.push(json!({"op": "replace", "path": format!("/spec/{kind}/{i}/route"), "value": route}));
                }
                ops.extend(mirror::ops(cx, vs, kind, i)?);
                if let Some(test) = test_routes::test_route(cx, vs, kind, i)? {
                    tests.push(
                        json!({"op": "add", "path": format!("/spec/{kind}/{i}"), "value": test}),
                    );
                }
            }
            // Test routes go in after every replacement (which name the base's indices), from
            // the last route up: each insert shifts only routes after it.
            ops.extend(tests.into_iter().rev());
            if !hosts.is_empty() {
                ops.push(json!({"op": "replace", "path": "/spec/hosts", "value": hosts}));
            }
            if ops.is_empty() {
                continue;
            }
            let mut from = match routing {
                Routing::Split(_) => format!("routes to {} split by version", cx.host),
                Routing::StableOnly => format!(
                    "routes to {} pinned to subset {}",
                    cx.host, cx.plan.stable.subset.value
                ),
                Routing::CanaryOnly => format!(
                    "routes to {} on subset {} only",
                    cx.host, cx.plan.canary.subset.value
                ),
            };
            if test_routes::tests_canary(cx) {
                from.push_str(", test traffic to the canary first");
            }
            if let Some(p) = mirror::percent(cx) {
                from.push_str(&format!(", {p}% mirrored to the canary"));
            }
            out.patches.push(Patch {
                file: format!("patch-virtualservice-{}.yaml", cx.file_part(vs)?),
                from,
                target: Target::of(vs),
                body: PatchBody::Json(ops),
            });
        }
        Ok(())
    }
}

/// `match:` and `mirror:` act on http routes only (Istio matches headers and mirrors only
/// there): a plan whose selected routes are all tcp/tls cannot have them.
fn refuse_http_features_without_http(
    cx: &Context<'_>,
    selected: &[(&crate::base::BaseObject, select::RouteRefs)],
) -> Result<()> {
    let any_http = selected
        .iter()
        .any(|(_, routes)| routes.iter().any(|(kind, _)| *kind == "http"));
    if any_http {
        return Ok(());
    }
    let field = if let Some(m) = cx.env.matches.first() {
        Some(("match", m.pos))
    } else {
        cx.env.mirror.as_ref().map(|m| ("mirror", m.pos))
    };
    match field {
        Some((name, pos)) => Err(cx
            .plan
            .diag(pos, format!("`{name}` needs an http route, and every route to {} the plan selects is tcp or tls", cx.host))
            .hint("Istio matches headers and mirrors requests only on http routes: remove it, or select an http route")
            .into()),
        None => Ok(()),
    }
}
