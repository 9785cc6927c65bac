//! Safety checks on what would ship: run on the final objects of one environment (base with
//! every patch applied), so they check exactly what the cluster would get. Each check is a
//! small named function in `CHECKS`; a new rule is a new entry. Each failure points at the
//! plan field or base object to change.

use crate::pointer::Pointer as _;
use serde_json::Value;

use crate::error::{Diagnostic, Diagnostics, Result};
use crate::kinds::canary::objects::Context;
use crate::kinds::canary::plan::{Labels, Method, Traffic};
use crate::kinds::canary::stage::{Stage, StageModel};
use crate::selector;
use crate::traffic::{self, Mesh, ProblemKind};

/// A check: the diagnostics it finds in the final objects of the environment in `cx`.
pub type Check = fn(&Context<'_>, &Final<'_>) -> Vec<Diagnostic>;

/// Every check, in the order their findings are reported.
pub const CHECKS: &[(&str, Check)] = &[
    ("selectors match pod templates", selectors_match_templates),
    ("versions kept apart", versions_disjoint),
    ("the Service selects what it should", service_selection),
    ("version names unused elsewhere", version_names_unused),
    ("weights sum to 100", route_weights),
    ("every destination has pods of one version", destinations),
    (
        "every version Service a route names is rendered, with one version's pods",
        version_services,
    ),
    (
        "the canary is reached only through its subset",
        canary_only_through_its_subset,
    ),
    ("every VirtualService splits alike", virtual_services_agree),
    (
        "every route can match, nothing the base reached is lost",
        reachable,
    ),
    ("done changes no traffic", done_changes_nothing),
];

/// The final objects of one environment, with the lookups the checks share.
pub struct Final<'a> {
    pub objects: &'a [Value],
    /// The traffic evaluator over them, built once.
    pub mesh: Mesh<'a>,
}

impl Final<'_> {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| {
            o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.at("/metadata/name").and_then(Value::as_str) == Some(name)
        })
    }

    fn pod_labels(&self, name: &str) -> Option<Labels> {
        self.find("Deployment", name)
            .map(|o| selector::labels_of(o.at("/spec/template/metadata/labels")))
    }
}

/// Checks the final objects of the environment in `cx`.
pub fn check(cx: &Context<'_>, objects: &[Value]) -> Result<()> {
    let f = Final {
        objects,
        mesh: Mesh::new(objects),
    };
    let mut d = Diagnostics::default();
    for (_, check) in CHECKS {
        for diag in check(cx, &f) {
            d.push(diag);
        }
    }
    d.into_result()
}

fn show(l: &Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Kubernetes' own rule (apps/v1): a workload's selector must match its pod template, or the
/// API server rejects it. A pod-template patch on a Deployment whose selector holds the
/// version label breaks it.
fn selectors_match_templates(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for o in f.objects {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !traffic::WORKLOAD_KINDS.contains(&kind) {
            continue;
        }
        let (Some(sel), Some(name)) = (
            o.at("/spec/selector"),
            o.at("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let labels = selector::labels_of(o.at("/spec/template/metadata/labels"));
        if selector::label_selector_matches(sel, &labels) {
            continue;
        }
        let message = format!(
            "the selector of {kind} {name} ({}) does not match its pod template's labels ({}): the API server rejects it, and a selector cannot be changed",
            show(&selector::labels_of(sel.get("matchLabels"))),
            show(&labels)
        );
        let in_base = cx.base.find(kind, name);
        let holds_version =
            selector::labels_of(sel.get("matchLabels")).contains_key(&cx.plan.version_label);
        let diag = match in_base {
            Some(b) if name == cx.workload.name && holds_version && cx.plan.method != Method::Versioned => b
                .error(&["spec", "selector"], message)
                .hint(format!(
                    "its selector holds `{}`: this is the one-Deployment-per-version layout, so set `method: versioned` in the plan (the canary becomes a new Deployment {})",
                    cx.plan.version_label,
                    cx.plan.versioned_canary_name()
                )),
            Some(b) => b
                .error(&["spec", "selector"], message)
                .hint("keep every selector key on the pod template; check the plan's versionLabel, podLabels and stable.labels"),
            None => cx.plan.diag(cx.env.stage.pos, message).hint("check the plan's versionLabel, podLabels and stable.labels"),
        };
        out.push(diag);
    }
    out
}

/// The workload and the Deployment canaryplan adds must never select each other's pods.
fn versions_disjoint(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let plan = cx.plan;
    let new_name = plan.new_deployment_name();
    if cx.base_edited {
        return out;
    }
    let (Some(original), Some(new)) = (
        f.find("Deployment", &cx.workload.name),
        f.find("Deployment", &new_name),
    ) else {
        return out;
    };
    let labels = |o: &Value| selector::labels_of(o.at("/spec/template/metadata/labels"));
    let sel = |o: &Value| o.at("/spec/selector").cloned().unwrap_or(Value::Null);
    let (original_pods, new_pods) = (labels(original), labels(new));
    if selector::label_selector_matches(&sel(original), &new_pods) {
        out.push(
            plan.diag(plan.stable.labels_pos, format!("the selector of Deployment {} also matches the pods of Deployment {new_name} ({})", cx.workload.name, show(&new_pods)))
                .hint(format!("override a key of its selector in stable.labels, e.g. `labels: {{app: {new_name}}}`")),
        );
    }
    if selector::label_selector_matches(&sel(new), &original_pods) {
        out.push(
            plan.diag(plan.stable.labels_pos, format!("the selector of Deployment {new_name} also matches the pods of Deployment {} ({})", cx.workload.name, show(&original_pods)))
                .hint("give the copy a label value in stable.labels that the original's pods do not have"),
        );
    }
    out
}

/// The Service selects both versions while both serve, never the stable copy alone before
/// routing, and its patched selector reaches no other workload's pods.
fn service_selection(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let plan = cx.plan;
    let Some(service) = f.find("Service", &cx.service.name) else {
        return out;
    };
    // Versioned: the base's selector must take in every version (Gateway API narrows the
    // Service to one version while the release runs; see gateway_api::base_service).
    let sel = match plan.method {
        Method::Versioned => selector::labels_of(cx.service.value.at("/spec/selector")),
        _ => selector::labels_of(service.at("/spec/selector")),
    };
    let new_name = plan.new_deployment_name();
    let (canary_name, stable_name) = match plan.method {
        Method::Versioned => (new_name.clone(), cx.workload.name.clone()),
        Method::Succession | Method::Coexistence => (cx.workload.name.clone(), new_name.clone()),
    };
    let canary_pods = f.pod_labels(&canary_name);
    let stable_pods = f.pod_labels(&stable_name);
    // Gateway API routes name the version Services: the Service keeps its base selector.
    let patched = cx.model.service_selector && plan.traffic == Traffic::Istio;
    let both_serve = patched || plan.method == Method::Versioned;
    if both_serve {
        for (what, pods) in [
            ("the canary", &canary_pods),
            ("the stable version", &stable_pods),
        ] {
            if let Some(pods) = pods
                && !selector::map_matches(&sel, pods)
            {
                let d = if patched {
                    plan.diag(plan.selector_pos, format!("the patched selector of Service {} ({}) does not select {what}'s pods ({})", cx.service.name, show(&sel), show(pods)))
                        .hint("change `selector.remove`/`selector.add` so the Service selects labels both versions share, e.g. the podLabels")
                } else {
                    cx.service.error(&["spec", "selector"], format!("Service {} ({}) does not select {what}'s pods ({})", cx.service.name, show(&sel), show(pods)))
                        .hint("with one Deployment per version the Service selects the labels every version shares (e.g. `app`)")
                };
                out.push(d);
            }
        }
    } else if let Some(stable_pods) = &stable_pods
        && plan.method != Method::Versioned
        && selector::map_matches(&sel, stable_pods)
    {
        let message = match plan.traffic {
            Traffic::Istio => format!(
                "Service {} selects the stable copy's pods before routing is set up",
                cx.service.name
            ),
            Traffic::GatewayApi => format!(
                "Service {} selects the stable copy's pods: callers that no HTTPRoute weights would reach both versions by pod count",
                cx.service.name
            ),
        };
        out.push(
            plan.diag(plan.stable.labels_pos, message)
                .hint("override a key of the Service selector in stable.labels"),
        );
    }
    if patched {
        let ns = cx.service.namespace();
        for (w, labels) in f.mesh.workloads() {
            if w.name == canary_name || w.name == stable_name {
                continue;
            }
            if (w.namespace.as_deref() == ns || w.namespace.is_none() || ns.is_none())
                && selector::map_matches(&sel, &labels)
            {
                out.push(
                    plan.diag(plan.selector_pos, format!("the patched selector of Service {} ({}) also selects the pods of {w}, which is not part of this release", cx.service.name, show(&sel)))
                        .hint("add a label only this app's pods carry to `selector.add` and `podLabels`, e.g. `applicationName: <app>`"),
                );
            }
        }
    }
    out
}

/// A version name other pods behind the Service already carry would put them into that
/// version's subset.
fn version_names_unused(cx: &Context<'_>, _f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let plan = cx.plan;
    let sel = selector::labels_of(cx.service.value.at("/spec/selector"));
    let new_name = plan.new_deployment_name();
    for (version, pos) in [
        (&plan.canary.version.value, plan.canary.version.pos),
        (&plan.stable.version.value, plan.stable.version.pos),
    ] {
        let others: Vec<String> = traffic::WORKLOAD_KINDS
            .iter()
            .flat_map(|k| cx.base.of_kind(k))
            .filter(|o| o.name != cx.workload.name && o.name != new_name)
            .filter(|o| {
                let labels = selector::labels_of(o.value.at("/spec/template/metadata/labels"));
                selector::map_matches(&sel, &labels)
                    && labels.get(&plan.version_label) == Some(version)
            })
            .map(|o| format!("{} {}", o.kind, o.name))
            .collect();
        if !others.is_empty() {
            out.push(
                plan.diag(pos, format!("pods of {} behind Service {} already carry `{}: {version}`; that version's subset would include them", others.join(", "), cx.service.name, plan.version_label))
                    .hint("choose a version name no other workload behind the Service uses"),
            );
        }
    }
    out
}

/// Weights are integers summing to 100 on every route to the Service.
fn route_weights(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let weight_pos = cx
        .env
        .weight
        .as_ref()
        .map(|w| w.pos)
        .unwrap_or(cx.env.stage.pos);
    for vs in f
        .objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("VirtualService"))
    {
        let vs_name = vs
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for kind in traffic::ROUTE_KINDS {
            for (i, route) in vs
                .at(&format!("/spec/{kind}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let dests = route
                    .get("route")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ours = dests.iter().any(|x| {
                    x.at("/destination/host")
                        .and_then(Value::as_str)
                        .is_some_and(|h| cx.is_service_host(h))
                });
                if !ours {
                    continue;
                }
                let weights: Vec<Option<u64>> = dests
                    .iter()
                    .map(|x| x.get("weight").and_then(Value::as_u64))
                    .collect();
                let sum: u64 = weights.iter().flatten().sum();
                let valid = if dests.len() == 1 {
                    weights.first().copied().flatten().is_none_or(|w| w == 100)
                } else {
                    weights.iter().all(Option::is_some) && sum == 100
                };
                if !valid || weights.iter().flatten().any(|w| *w > 100) {
                    out.push(cx.plan.diag(weight_pos, format!("route {kind}[{i}] of VirtualService {vs_name} has weights that do not sum to 100")).hint("weights are integers from 0 to 100 summing to 100 per route"));
                }
            }
        }
    }
    out.extend(http_route_weights(cx, f, weight_pos));
    out
}

/// Gateway API: a rule split between the two version Services has weights summing to 100.
fn http_route_weights(
    cx: &Context<'_>,
    f: &Final<'_>,
    weight_pos: crate::yaml::Pos,
) -> Vec<Diagnostic> {
    let names = version_service_names(cx);
    let mut out = Vec::new();
    for r in f.mesh.routes().iter().filter(|r| r.object == "HTTPRoute") {
        let ours = r
            .destinations
            .iter()
            .filter(|d| names.contains(&d.host))
            .count();
        if ours == 2 && r.destinations.len() == 2 {
            let hr = f.find("HTTPRoute", &r.virtual_service);
            let weights: Vec<u64> = hr
                .and_then(|h| h.at(&format!("/spec/rules/{}/backendRefs", r.index)))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|b| b.get("weight").and_then(Value::as_u64).unwrap_or(1))
                .collect();
            if weights.iter().sum::<u64>() != 100 {
                out.push(
                    cx.plan
                        .diag(
                            weight_pos,
                            format!(
                                "{} splits Service {} with weights that do not sum to 100",
                                r.position(),
                                cx.service.name
                            ),
                        )
                        .hint("weights are integers from 0 to 100 summing to 100 per rule"),
                );
            }
        }
    }
    out
}

/// `<service>-<version>` of both versions (Gateway API mode's destinations).
fn version_service_names(cx: &Context<'_>) -> [String; 2] {
    [
        format!("{}-{}", cx.service.name, cx.plan.stable.version.value),
        format!("{}-{}", cx.service.name, cx.plan.canary.version.value),
    ]
}

/// Gateway API: every backendRef (and mirror) to a version Service names one the stage
/// renders (a missing backend answers 500 for its share), and that Service selects the pods
/// of exactly one workload, of its version.
fn version_services(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if cx.plan.traffic != Traffic::GatewayApi {
        return out;
    }
    let names = version_service_names(cx);
    let versions = [&cx.plan.stable.version.value, &cx.plan.canary.version.value];
    for r in f.mesh.routes() {
        let all = r
            .destinations
            .iter()
            .map(|d| ("backendRef", d))
            .chain(r.mirrors.iter().map(|d| ("mirror", d)));
        for (what, d) in all {
            let Some(k) = names.iter().position(|n| *n == d.host) else {
                continue;
            };
            let Some(svc) = &d.service else {
                out.push(
                    cx.plan
                        .diag(cx.env.stage.pos, format!("{}: the {what} names Service {}, which stage {} does not render; its requests would be answered 500", r.position(), d.host, cx.model.stage))
                        .hint(format!("Service {} is rendered {}: move the stage back, or remove the reference from the base", d.host, crate::kinds::canary::objects::gateway_api::stages_rendering(cx.plan.method, k == 1))),
                );
                continue;
            };
            let labels = |w: &traffic::Workload| {
                f.mesh
                    .workloads()
                    .into_iter()
                    .find(|(x, _)| x == w)
                    .map(|(_, l)| l)
                    .unwrap_or_default()
            };
            let wrong: Vec<String> = d
                .endpoints
                .iter()
                .filter(|w| labels(w).get(&cx.plan.version_label) != versions.get(k).copied())
                .map(ToString::to_string)
                .collect();
            if d.endpoints.len() > 1 || !wrong.is_empty() {
                let sel = svc.selector.as_ref().map(show).unwrap_or_default();
                out.push(
                    cx.plan
                        .diag(cx.env.stage.pos, format!("{}: Service {} ({sel}) selects the pods of {}, not exactly version {}'s", r.position(), d.host, list(&d.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>()), versions.get(k).map(|v| v.as_str()).unwrap_or_default()))
                        .hint("each version Service must select one Deployment: choose a version name (and versionLabel) no other workload behind the Service carries"),
                );
            }
        }
    }
    out
}

/// The traffic evaluator over the final objects: every route and mirror destination has pods,
/// of one workload when it names a subset.
fn destinations(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    f.mesh
        .problems()
        .into_iter()
        .map(|p| {
            let hint = match &p.kind {
                ProblemKind::MissingSubset => "a subset must exist before a route uses it and outlive it; if the base routes name this subset, define it in the base's DestinationRule".to_string(),
                ProblemKind::NoEndpoints => format!(
                    "at stage {} no pod template carries both; check selector.add/podLabels, versionLabel and, where base routes name a subset, stable.subset (with one Deployment per version: `method: versioned`)",
                    cx.model.stage
                ),
                ProblemKind::SeveralWorkloads(_) => "each subset must select exactly one version: choose a version name (and versionLabel) no other workload behind the Service carries".to_string(),
            };
            cx.plan.diag(cx.env.stage.pos, p.to_string()).hint(hint)
        })
        .collect()
}

/// `explain`'s findings beyond the destinations: routes no request can reach (behind a
/// catch-all), and routes that reached pods in the base and reach none now.
fn reachable(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let base = Mesh::of(cx.base.objects.iter().map(|o| &o.value));
    crate::explain::table(&f.mesh, &base)
        .1
        .into_iter()
        .map(|p| {
            cx.plan.diag(cx.env.stage.pos, p).hint(match cx.plan.traffic {
                Traffic::Istio => "Istio takes the first route that matches: put routes with `match` before the catch-all; `canaryplan explain` shows the table",
                Traffic::GatewayApi => "`canaryplan explain` shows which rule takes which requests",
            })
        })
        .collect()
}

/// Which version a destination names: 0 stable, 1 canary; by subset (Istio) or by version
/// Service (Gateway API).
fn version_of(cx: &Context<'_>, d: &traffic::Destination) -> Option<usize> {
    match cx.plan.traffic {
        Traffic::Istio => {
            let ours = d.service.as_ref().is_some_and(|s| {
                s.name == cx.service.name && s.namespace.as_deref() == cx.service.namespace()
            });
            let subset = d.subset.as_deref().filter(|_| ours)?;
            [&cx.plan.stable.subset.value, &cx.plan.canary.subset.value]
                .iter()
                .position(|s| s.as_str() == subset)
        }
        Traffic::GatewayApi => version_service_names(cx).iter().position(|n| *n == d.host),
    }
}

/// How routes reach one version, for messages: `subset \`v2\`` or `Service shop-v2`.
fn way_to(cx: &Context<'_>, k: usize) -> String {
    match cx.plan.traffic {
        Traffic::Istio => {
            let s = [&cx.plan.stable.subset.value, &cx.plan.canary.subset.value];
            format!(
                "subset `{}`",
                s.get(k).map(|s| s.as_str()).unwrap_or_default()
            )
        }
        Traffic::GatewayApi => {
            let n = version_service_names(cx);
            format!(
                "Service {}",
                n.get(k).map(String::as_str).unwrap_or_default()
            )
        }
    }
}

/// Versioned: the canary's pods sit behind the same Service as every other version, so only
/// a route naming the canary subset may reach them; a route to the bare host, or mesh callers
/// that no VirtualService covers, would send them traffic by pod count, untested.
fn canary_only_through_its_subset(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if cx.plan.method != Method::Versioned {
        return out;
    }
    let canary = cx.plan.new_deployment_name();
    let mesh = &f.mesh;
    let is_canary = |w: &traffic::Workload| w.kind == "Deployment" && w.name == canary;
    for r in mesh.routes() {
        for (i, d) in r.destinations.iter().enumerate() {
            if d.endpoints.iter().any(is_canary) && version_of(cx, d) != Some(1) && d.percent > 0.0
            {
                out.push(
                    cx.plan
                        .diag(cx.env.stage.pos, format!("{}, destination {}: {} reaches the pods of Deployment {canary} by pod count, not through {}", r.position(), i + 1, d.host, way_to(cx, 1)))
                        .hint("canaryplan pins every route it patches; name that VirtualService's route in `routes:` (or remove `virtualService:` so every VirtualService routing to the Service is patched)"),
                );
            }
        }
    }
    let Some(service) = mesh.service_for_host(&cx.service.name, cx.service.namespace()) else {
        return out;
    };
    if mesh.endpoints(&service, None).iter().any(is_canary) && !mesh.mesh_routed(&service) {
        out.push(match cx.plan.traffic {
            Traffic::Istio => cx.plan
                .diag(cx.env.stage.pos, format!("mesh callers of Service {} are not routed by any VirtualService: they would reach the pods of Deployment {canary} by pod count", cx.service.name))
                .hint(format!("add a VirtualService for the mesh host (`hosts: [{}]`, no `gateways`) routing to the Service to the base; canaryplan then pins and splits it too", cx.service.name)),
            Traffic::GatewayApi => cx.plan
                .diag(cx.env.stage.pos, format!("mesh callers of Service {} are not routed by any HTTPRoute whose parent is the Service (GAMMA): they would reach the pods of Deployment {canary} by pod count", cx.service.name))
                .hint(format!("set `meshRoute: generate` in the plan, or add to the base an HTTPRoute with `parentRefs: [{{group: \"\", kind: Service, name: {}}}]` routing to it; canaryplan then pins and splits it too", cx.service.name)),
        });
    }
    out
}

/// A gateway's VirtualService and the mesh's (or any two routes to the Service) must send the
/// same share to each version: a route the plan does not patch either still splits by pod count
/// across both versions (a bare host once the Service selects both) or keeps other weights.
fn virtual_services_agree(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if cx.model.routing.is_none() {
        return out;
    }
    let (stable, canary) = (way_to(cx, 0), way_to(cx, 1));
    let ours = |d: &traffic::Destination| {
        version_of(cx, d).is_some()
            || d.service.as_ref().is_some_and(|s| {
                s.name == cx.service.name && s.namespace.as_deref() == cx.service.namespace()
            })
    };
    let hint = "canaryplan patches the VirtualServices named in `virtualServices:` (default: every one routing to the Service); list every VirtualService that routes to the Service there, or remove it to patch them all";
    // Splits between the two subsets, with where each is.
    let mut splits: Vec<(String, (f64, f64))> = Vec::new();
    for r in f.mesh.routes() {
        let to_service: Vec<&traffic::Destination> =
            r.destinations.iter().filter(|d| ours(d)).collect();
        if to_service.is_empty() {
            continue;
        }
        if cx.plan.method != Method::Versioned {
            let both = |d: &traffic::Destination| {
                let copy = cx.plan.stable_copy_name();
                let has = |n: &str| {
                    d.endpoints
                        .iter()
                        .any(|w| w.kind == "Deployment" && w.name == n)
                };
                has(&copy) && has(&cx.plan.workload.value)
            };
            if let Some(d) = to_service
                .iter()
                .find(|d| d.subset.is_none() && d.percent > 0.0 && both(d))
            {
                out.push(
                    cx.plan
                        .diag(cx.env.stage.pos, format!("{}: {} reaches the pods of both versions by pod count, not by the plan's weights", r.position(), d.host))
                        .hint(hint),
                );
            }
        }
        let share = |k: usize| {
            to_service
                .iter()
                .filter(|d| version_of(cx, d) == Some(k))
                .map(|d| d.percent)
                .sum::<f64>()
        };
        let is_split = to_service.len() == r.destinations.len()
            && to_service.iter().all(|d| version_of(cx, d).is_some())
            && to_service.len() == 2;
        if is_split {
            splits.push((r.position(), (share(0), share(1))));
        }
    }
    if let Some((first, w)) = splits.first()
        && let Some((other, v)) = splits.iter().find(|(_, v)| v != w)
    {
        out.push(
            cx.plan
                .diag(cx.env.stage.pos, format!("{first} sends {}% to {stable} and {}% to {canary}, but {other} sends {}% and {}%", w.0, w.1, v.0, v.1))
                .hint(hint),
        );
    }
    out
}

/// `done` renders nothing beyond the base, so the base must by then route exactly as
/// cleanup-3 does and run the same workloads; otherwise `done` would silently undo the
/// release (traffic back on the stable version, or the canary's Deployment deleted).
fn done_changes_nothing(cx: &Context<'_>, f: &Final<'_>) -> Vec<Diagnostic> {
    if cx.model.stage != Stage::Done {
        return Vec::new();
    }
    let model = StageModel::new(cx.plan.method, Stage::Cleanup3, Some(100));
    // Without cleanup-3 to compare with, `done` cannot be shown safe: refuse, with the reason.
    let before = Context::at(cx.plan, cx.env, model, cx.base, cx.templates).and_then(|c| {
        crate::kinds::canary::objects::render(&c)
            .and_then(|r| crate::output::stream::final_objects(cx.base, &r))
    });
    let before = match before {
        Ok(b) => b,
        Err(e) => {
            let why = e
                .diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default();
            return vec![
                cx.plan
                    .diag(cx.env.stage.pos, format!("done cannot be compared with cleanup-3, which this base no longer renders: {why}"))
                    .hint("go back to cleanup-3 and fix what it reports, then advance to done"),
            ];
        }
    };
    let (a, b) = (Mesh::new(&before), &f.mesh);
    let mut differences = Vec::new();
    let names = |m: &Mesh<'_>| -> Vec<String> {
        m.workloads()
            .into_iter()
            .map(|(w, _)| w.to_string())
            .collect()
    };
    let (wa, wb) = (names(&a), names(b));
    for w in wa.iter().filter(|w| !wb.contains(w)) {
        differences.push(format!("{w} would be deleted: add it to the base"));
    }
    for w in wb.iter().filter(|w| !wa.contains(w)) {
        differences.push(format!("{w} would come back: remove it from the base"));
    }
    let reached = |m: &Mesh<'_>| -> Vec<(String, Vec<String>)> {
        m.routes()
            .iter()
            .map(|r| {
                let mut ws: Vec<String> = r
                    .destinations
                    .iter()
                    .filter(|d| d.percent > 0.0)
                    .flat_map(|d| d.endpoints.iter().map(ToString::to_string))
                    .collect();
                ws.sort();
                ws.dedup();
                (r.position(), ws)
            })
            .collect()
    };
    let (ra, rb) = (reached(&a), reached(b));
    for (pos, ws) in &rb {
        if let Some((_, was)) = ra.iter().find(|(p, _)| p == pos)
            && was != ws
        {
            differences.push(format!(
                "{pos} would send traffic to {} instead of {}: route it in the base as cleanup-3 does",
                list(ws),
                list(was)
            ));
        }
    }
    if differences.is_empty() {
        return Vec::new();
    }
    let steps = crate::kinds::canary::remaining::remaining_steps(cx.plan, cx.base, &before);
    let edit = match (cx.plan.method, cx.plan.traffic) {
        _ if !steps.is_empty() => format!(
            "commit the end state to the base `{}` first ({} edit(s), in one commit):\n    - {}\n  `canaryplan finish --env {}` prints them as a patch to review, `--write` applies it; see \"Finishing a versioned release\" in docs/operating.md",
            cx.env.base.value,
            steps.len(),
            steps.join("\n    - "),
            cx.env.name.value
        ),
        (Method::Versioned, Traffic::GatewayApi) => format!(
            "commit the end state to the base `{}` first: Deployment {} (as the overlay renders it at cleanup-3) in, Deployment {} out, and the HTTPRoute rules naming Service {} (canaryplan then keeps it: a base Service of that name selecting the version is reused); see \"Finishing a versioned release\" in docs/operating.md",
            cx.env.base.value,
            cx.plan.new_deployment_name(),
            cx.plan.workload.value,
            format_args!("{}-{}", cx.service.name, cx.plan.canary.version.value)
        ),
        (Method::Versioned, Traffic::Istio) => format!(
            "commit the end state to the base `{}` first: Deployment {} (as the overlay renders it at cleanup-3) in, Deployment {} out, routes to subset `{}`, the subset in its DestinationRule; see \"Finishing a versioned release\" in docs/operating.md",
            cx.env.base.value,
            cx.plan.new_deployment_name(),
            cx.plan.workload.value,
            cx.plan.canary.subset.value
        ),
        _ => {
            "put the end state of the release into the base first, then advance to done".to_string()
        }
    };
    vec![
        cx.plan
            .diag(
                cx.env.stage.pos,
                format!(
                    "at done the base alone would change the cluster: {}",
                    differences.join("; ")
                ),
            )
            .hint(edit),
    ]
}

fn list(ws: &[String]) -> String {
    if ws.is_empty() {
        "no pods".to_string()
    } else {
        ws.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::kinds::canary::{check, objects};
    use crate::{base, output, templates::Templates};

    /// The runbook's production environment rendered, then `tamper`ed with, then checked.
    fn check_tampered(tamper: impl FnOnce(&mut Vec<Value>)) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runbook");
        let plan = check::load(&dir.join("canaryplan.yaml")).unwrap();
        let env = plan.environment("production").unwrap();
        let base = base::load(&dir.join(&env.base.value), &plan.root).unwrap();
        let templates = Templates::builtin();
        let cx = objects::Context::new(&plan, env, &base, &templates).unwrap();
        let rendered = objects::render(&cx).unwrap();
        let mut final_objects = output::stream::final_objects(&base, &rendered).unwrap();
        check(&cx, &final_objects).unwrap();
        tamper(&mut final_objects);
        check(&cx, &final_objects).unwrap_err().to_string()
    }

    fn find<'a>(objects: &'a mut [Value], kind: &str) -> &'a mut Value {
        objects.iter_mut().find(|o| o["kind"] == kind).unwrap()
    }

    #[test]
    fn a_route_to_an_undefined_subset_is_refused() {
        let err = check_tampered(|o| {
            find(o, "DestinationRule")["spec"]["subsets"]
                .as_array_mut()
                .unwrap()
                .remove(0);
        });
        assert!(err.contains("VirtualService relational-data-access--web, http[0] (\"primary\"), destination 1: subset `v1` of my-service-web is not defined by any DestinationRule"), "{err}");
    }

    #[test]
    fn a_subset_matching_both_versions_is_refused() {
        let err = check_tampered(|o| {
            find(o, "DestinationRule")["spec"]["subsets"][0]["labels"] =
                serde_json::json!({"canary": "enabled"});
        });
        assert!(
            err.contains("subset `v1` of my-service-web selects the pods of 2 workloads (Deployment web, Deployment web-v1)"),
            "{err}"
        );
    }

    #[test]
    fn weights_that_do_not_sum_to_100_are_refused() {
        let err = check_tampered(|o| {
            find(o, "VirtualService")["spec"]["http"][0]["route"][0]["weight"] =
                serde_json::json!(90);
        });
        assert!(err.contains("canaryplan.yaml:36:15: error: route http[0] of VirtualService relational-data-access--web has weights that do not sum to 100"), "{err}");
    }

    #[test]
    fn a_copy_selector_matching_the_original_is_refused() {
        let err = check_tampered(|o| {
            let copy = o
                .iter_mut()
                .find(|x| x["metadata"]["name"] == "web-v1")
                .unwrap();
            copy["spec"]["selector"] = serde_json::json!({"matchLabels": {"canary": "enabled"}});
        });
        assert!(
            err.contains(
                "the selector of Deployment web-v1 also matches the pods of Deployment web"
            ),
            "{err}"
        );
    }
}
