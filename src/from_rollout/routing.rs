//! The Rollout's traffic routing as the plan's: which router (Istio subsets, Istio hosts, the
//! Gateway API plugin, none), the Service the plan splits, the VirtualServices or HTTPRoutes it
//! weights, and the routing objects that change in base (the canary Service's destinations
//! gone, the DestinationRule's subset labels that Argo Rollouts managed gone).

use crate::pointer::Pointer as _;
use serde_json::Value;

use super::{App, Ledger, find, refuse, s, short};
use crate::error::Result;

/// How the Rollout routes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    /// Istio with DestinationRule subsets.
    Istio,
    /// Istio with the canary/stable Services as hosts.
    IstioHost,
    /// The Gateway API plugin (HTTPRoute backendRefs to canary/stable Services).
    GatewayApi,
    /// No traffic router: Argo splits by replica counts.
    Replicas,
}

/// What the plan takes from the Rollout's routing.
pub struct Routing {
    pub router: Router,
    /// The Service the plan splits.
    pub service: String,
    /// The VirtualServices the plan weights, with the Rollout's route names.
    pub virtual_services: Vec<(String, Vec<String>)>,
    /// The HTTPRoutes the plan weights (Gateway API).
    pub http_routes: Vec<String>,
    /// The routing objects to commit in base, each with what changed.
    pub changed: Vec<(String, Value)>,
    /// The Rollout's `trafficRouting.istio`.
    pub istio: Value,
}

/// The short name of a Service host (`web.shop.svc.cluster.local` → `web`).
fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// The route names of an Argo `virtualService` entry.
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether `selector` (a Service's) selects pods labelled `labels`.
fn selects(selector: Option<&Value>, labels: Option<&Value>) -> bool {
    let Some(sel) = selector
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Removes from each route of a VirtualService (http/tls/tcp) or HTTPRoute rule the
/// destinations `is_canary` picks; a lone destination left loses its weight. Whether any
/// changed.
fn without_canary(
    object: &mut Value,
    lists: &[(&str, &str)],
    is_canary: impl Fn(&Value) -> bool,
) -> bool {
    let mut changed = false;
    for (routes_key, dest_key) in lists {
        let Some(routes) = object
            .at_mut(&format!("/spec/{routes_key}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for r in routes {
            let Some(dests) = r.get_mut(*dest_key).and_then(Value::as_array_mut) else {
                continue;
            };
            let before = dests.len();
            dests.retain(|d| !is_canary(d));
            if dests.len() != before {
                changed = true;
                if let [only] = dests.as_mut_slice()
                    && let Some(o) = only.as_object_mut()
                {
                    o.remove("weight");
                }
            }
        }
    }
    changed
}

pub(super) fn read(
    app: &App<'_>,
    pod_labels: Option<&Value>,
    ledger: &mut Ledger,
) -> Result<Routing> {
    let App {
        file,
        dir,
        name,
        canary,
        all,
        ..
    } = *app;
    // The traffic router.
    let traffic = canary.get("trafficRouting").cloned().unwrap_or(Value::Null);
    let plugins = traffic.get("plugins").and_then(Value::as_object);
    for (k, _) in traffic.as_object().into_iter().flatten() {
        if !["istio", "plugins", "managedRoutes", "maxTrafficWeight"].contains(&k.as_str()) {
            return Err(refuse(
                file,
                format!(
                    "Rollout {name} routes traffic with {k}; canaryplan weights traffic with Istio or the Gateway API"
                ),
                "route this app through Istio (a VirtualService to its Service) or a Gateway API HTTPRoute, give the Rollout that trafficRouting, and run init again",
            ));
        }
    }
    for (k, _) in plugins.into_iter().flatten() {
        if k != "argoproj-labs/gatewayAPI" {
            return Err(refuse(
                file,
                format!("Rollout {name} routes traffic with the plugin {k}"),
                "canaryplan weights traffic with Istio or the Gateway API (`argoproj-labs/gatewayAPI`): route this app through one of them and run init again",
            ));
        }
    }
    let istio = traffic.get("istio").cloned().unwrap_or(Value::Null);
    let gateway = plugins
        .and_then(|p| p.get("argoproj-labs/gatewayAPI"))
        .cloned();
    let stable_service = s(canary, "/stableService").map(str::to_string);
    let canary_service = s(canary, "/canaryService").map(str::to_string);
    let router = if !istio.is_null() {
        if istio.get("destinationRule").is_some() {
            Router::Istio
        } else if stable_service.is_some() && canary_service.is_some() {
            Router::IstioHost
        } else {
            return Err(refuse(
                file,
                format!(
                    "Rollout {name} routes with Istio but names neither a destinationRule nor canaryService and stableService"
                ),
                "Argo Rollouts needs one of them too: fix the Rollout and run init again",
            ));
        }
    } else if gateway.is_some() {
        Router::GatewayApi
    } else {
        Router::Replicas
    };
    if let Some(w) = traffic
        .get("maxTrafficWeight")
        .and_then(Value::as_u64)
        .filter(|w| *w != 100)
    {
        return Err(refuse(
            file,
            format!("Rollout {name} counts weights out of {w}"),
            "a plan's weights are percents: rewrite the setWeight steps out of 100 (and drop maxTrafficWeight), then run init again",
        ));
    }
    if traffic.get("maxTrafficWeight").is_some() {
        ledger.carry("/spec/strategy/canary/trafficRouting/maxTrafficWeight");
    }

    // The Service and the routing objects, and how the base changes.
    let mut changed_objects: Vec<(String, Value)> = Vec::new();
    let mut vs_list: Vec<(String, Vec<String>)> = Vec::new();
    let mut http_routes: Vec<String> = Vec::new();
    let service = match router {
        Router::Istio | Router::IstioHost => {
            ledger.carry("/spec/strategy/canary/trafficRouting/istio/virtualService");
            ledger.carry("/spec/strategy/canary/trafficRouting/istio/virtualServices");
            ledger.carry("/spec/strategy/canary/trafficRouting/istio/destinationRule");
            let mut entries: Vec<&Value> = istio.get("virtualService").into_iter().collect();
            entries.extend(
                istio
                    .get("virtualServices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
            for vs in &entries {
                let vname = s(vs, "/name").unwrap_or_default().to_string();
                let routes = strings(vs.get("routes"));
                for k in ["tlsRoutes", "tcpRoutes"] {
                    if vs.get(k).is_some() {
                        if routes.is_empty() {
                            ledger.note(format!("VirtualService {vname}: {k}: the plan weights every route to the Service, tls and tcp too"));
                        } else {
                            ledger.drop(format!("VirtualService {vname}: {k} (the plan weights the named http routes; leave out `routes:` to weight every route, or list ports under `ports:`)"));
                        }
                    }
                }
                vs_list.push((vname, routes));
            }
            let mut service = None;
            for (vname, routes) in &vs_list {
                let Some(vs) = find(all, "VirtualService", vname) else {
                    return Err(refuse(
                        file,
                        format!(
                            "VirtualService {vname} (the Rollout's trafficRouting) is not in {}",
                            dir.display()
                        ),
                        format!(
                            "put VirtualService {vname} in the Rollout's folder and run init again"
                        ),
                    ));
                };
                let host = vs
                    .at("/spec/http")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|r| {
                        routes.is_empty()
                            || r.get("name")
                                .and_then(Value::as_str)
                                .is_some_and(|n| routes.iter().any(|x| x == n))
                    })
                    .flat_map(|r| {
                        r.get("route")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                    })
                    .chain(
                        ["tls", "tcp"]
                            .iter()
                            .flat_map(|k| {
                                vs.at(&format!("/spec/{k}"))
                                    .and_then(Value::as_array)
                                    .into_iter()
                                    .flatten()
                            })
                            .flat_map(|r| {
                                r.get("route")
                                    .and_then(Value::as_array)
                                    .into_iter()
                                    .flatten()
                            }),
                    )
                    .filter_map(|d| s(d, "/destination/host"))
                    .map(short_host)
                    .find(|h| router == Router::Istio || Some(*h) == stable_service.as_deref());
                if service.is_none() {
                    service = host.map(str::to_string);
                }
                if router == Router::IstioHost {
                    let canary_host = canary_service.clone().unwrap_or_default();
                    let mut changed = vs.clone();
                    crate::rendered::strip_server_fields(&mut changed);
                    let is_canary = |d: &Value| {
                        s(d, "/destination/host").map(short_host) == Some(canary_host.as_str())
                    };
                    if without_canary(
                        &mut changed,
                        &[("http", "route"), ("tls", "route"), ("tcp", "route")],
                        is_canary,
                    ) {
                        changed_objects.push((format!("VirtualService {vname}: its routes to Service {canary_host} removed (the plan weights the subsets of {} instead)", stable_service.clone().unwrap_or_default()), changed));
                    }
                }
            }
            // Argo labels the subsets at run time (with the pod-template hash); the plan labels
            // them by version, so the labels in git go.
            if let Some(dr_name) = s(&istio, "/destinationRule/name")
                && let Some(dr) = find(all, "DestinationRule", dr_name)
            {
                let ours = [
                    s(&istio, "/destinationRule/stableSubsetName"),
                    s(&istio, "/destinationRule/canarySubsetName"),
                ];
                let mut changed = dr.clone();
                crate::rendered::strip_server_fields(&mut changed);
                let mut any = false;
                for sub in changed
                    .at_mut("/spec/subsets")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let named = sub.get("name").and_then(Value::as_str);
                    if ours.contains(&named)
                        && let Some(o) = sub.as_object_mut()
                    {
                        any |= o.remove("labels").is_some();
                    }
                }
                if any {
                    changed_objects.push((format!("DestinationRule {dr_name}: the labels of its subsets {} and {} removed (Argo Rollouts set them at run time; the plan labels them by version)", ours[0].unwrap_or_default(), ours[1].unwrap_or_default()), changed));
                }
            }
            if router == Router::IstioHost {
                ledger.carry("/spec/strategy/canary/stableService");
                ledger.carry("/spec/strategy/canary/canaryService");
                ledger.note(format!("host-level routing: the plan splits Service {} by subsets; Service {} is routed to no more (delete it once the plan is done)", stable_service.clone().unwrap_or_default(), canary_service.clone().unwrap_or_default()));
                service = stable_service.clone();
            }
            match service {
                Some(sv) => sv,
                None => {
                    return Err(refuse(
                        file,
                        format!(
                            "the Rollout's VirtualService routes ({}) send to no host",
                            vs_list
                                .iter()
                                .map(|(v, _)| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "give the VirtualService's routes a destination (the app's Service) and run init again",
                    ));
                }
            }
        }
        Router::GatewayApi => {
            ledger.carry("/spec/strategy/canary/trafficRouting/plugins/argoproj-labs~1gatewayAPI");
            ledger.carry("/spec/strategy/canary/stableService");
            ledger.carry("/spec/strategy/canary/canaryService");
            let g = gateway.clone().unwrap_or(Value::Null);
            if let Some(one) = s(&g, "/httpRoute") {
                http_routes.push(one.to_string());
            }
            for r in g
                .get("httpRoutes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = s(r, "/name") {
                    http_routes.push(n.to_string());
                }
                if r.get("useHeaderRoutes").is_some() {
                    ledger.note(format!("HTTPRoute {}: useHeaderRoutes: the plan's `match:` adds its header rule to every HTTPRoute it weights", s(r, "/name").unwrap_or_default()));
                }
            }
            for (k, v) in g.as_object().into_iter().flatten() {
                if !["httpRoute", "httpRoutes", "namespace"].contains(&k.as_str()) {
                    ledger.drop(format!(
                        "the gatewayAPI plugin's {k} {} (no counterpart in a plan)",
                        short(v)
                    ));
                }
            }
            let (Some(stable), Some(canary_svc)) = (&stable_service, &canary_service) else {
                return Err(refuse(
                    file,
                    "the gatewayAPI plugin needs canaryService and stableService, and the Rollout lacks one",
                    "add them (as Argo Rollouts requires) and run init again",
                ));
            };
            for hr in &http_routes {
                let Some(route) = find(all, "HTTPRoute", hr) else {
                    return Err(refuse(
                        file,
                        format!(
                            "HTTPRoute {hr} (the Rollout's gatewayAPI plugin) is not in {}",
                            dir.display()
                        ),
                        format!("put HTTPRoute {hr} in the Rollout's folder and run init again"),
                    ));
                };
                let mut changed = route.clone();
                crate::rendered::strip_server_fields(&mut changed);
                if without_canary(&mut changed, &[("rules", "backendRefs")], |b| {
                    s(b, "/name") == Some(canary_svc.as_str())
                }) {
                    changed_objects.push((format!("HTTPRoute {hr}: its backendRefs to Service {canary_svc} removed (the plan adds the per-version Services and weights them)"), changed));
                }
            }
            ledger.note(format!("Service {canary_svc} is referenced no more once the HTTPRoutes change (delete it once the plan is done)"));
            stable.clone()
        }
        Router::Replicas => {
            let by_selector = || {
                let mut found: Vec<&str> = all
                    .iter()
                    .filter(|o| {
                        s(o, "/kind") == Some("Service")
                            && selects(o.at("/spec/selector"), pod_labels)
                    })
                    .filter_map(|o| s(o, "/metadata/name"))
                    .collect();
                found.sort();
                found.first().map(|n| n.to_string())
            };
            let svc = stable_service.clone().or_else(by_selector);
            ledger.carry("/spec/strategy/canary/stableService");
            if let Some(c) = &canary_service {
                ledger.carry("/spec/strategy/canary/canaryService");
                ledger.note(format!("Service {c} (the canaryService): the plan routes to the canary by subsets of {}; delete it once the plan is done", svc.clone().unwrap_or_default()));
            }
            ledger.note("no traffic router: Argo split traffic by replica counts; the plan weights it exactly with Istio (the pods need sidecars; a VirtualService for the Service's mesh host is generated)");
            match svc {
                Some(sv) => sv,
                None => {
                    return Err(refuse(
                        file,
                        format!(
                            "Rollout {name} has no traffic routing and {} holds no Service selecting its pods",
                            dir.display()
                        ),
                        format!(
                            "put the Service that receives this app's traffic (its selector matching the pod labels {}) in the Rollout's folder and run init again",
                            pod_labels.map(short).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    };
    Ok(Routing {
        router,
        service,
        virtual_services: vs_list,
        http_routes,
        changed: changed_objects,
        istio,
    })
}
