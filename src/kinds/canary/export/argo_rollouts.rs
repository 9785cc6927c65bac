//! `export argo-rollouts`: an Argo Rollouts `Rollout` (with `workloadRef` to the plan's
//! Deployment) and an `AnalysisTemplate` for the plan's `analysis`, for one environment.
//! Istio routing by subset (the plan's DestinationRule subsets) or, with `--routing host`, by
//! the two Services Argo switches (exported too); Gateway API through Argo's plugin.

use crate::pointer::Pointer as _;
use serde_json::{Map, Value, json};

use super::facts::{self, Facts, metadata};
use crate::analysis::CheckedAnalysis;
use crate::analysis::{Pause, QueryValues, render_query};
use crate::base::BaseObject;
use crate::error::Result;
use crate::export::{Exported, Object};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};
use crate::kinds::canary::plan::{Method, Traffic};

pub use crate::export::Routing;

const HEADER_ROUTE: &str = "canary-header";
const MIRROR_ROUTE: &str = "canary-mirror";

/// Argo's header match for a plan match entry, when it is one (headers only).
fn header_match(plan: &CheckedPlan, m: &Value, notes: &mut Vec<String>) -> Vec<Value> {
    let mut out = Vec::new();
    match plan.traffic {
        Traffic::Istio => {
            for (k, _) in m
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "headers")
            {
                notes.push(format!(
                    "the test match on `{k}` (Argo Rollouts' header routes match headers only)"
                ));
            }
            for (name, cond) in m
                .get("headers")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let value = ["exact", "prefix", "regex"]
                    .iter()
                    .find_map(|k| cond.get(*k).map(|v| json!({*k: v})));
                match value {
                    Some(v) => out.push(json!({"headerName": name, "headerValue": v})),
                    None => notes.push(format!(
                        "the test match on header `{name}` (not exact, prefix or regex)"
                    )),
                }
            }
        }
        Traffic::GatewayApi => {
            for (k, _) in m
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "headers")
            {
                notes.push(format!(
                    "the test match on `{k}` (Argo Rollouts' header routes match headers only)"
                ));
            }
            for h in m
                .get("headers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = if h.get("type").and_then(Value::as_str) == Some("RegularExpression") {
                    "regex"
                } else {
                    "exact"
                };
                out.push(
                    json!({"headerName": h.get("name"), "headerValue": {kind: h.get("value")}}),
                );
            }
        }
    }
    out
}

/// The AnalysisTemplate's name.
fn template_name(plan: &CheckedPlan) -> String {
    plan.analysis
        .as_ref()
        .and_then(|a| a.name.clone())
        .unwrap_or_else(|| format!("{}-analysis", plan.name))
}

/// The plan values a query may use, as Argo arguments: (template variable, arg name, value).
/// With host routing (`--routing host`, Gateway API) the canary's requests reach the canary
/// Service, so `service` is passed as that Service: a query on `destination_service` then
/// measures the canary alone, as it measures the Service canaryplan splits.
fn args(
    plan: &CheckedPlan,
    env: &EnvironmentPlan,
    f: &Facts,
    host_routing: bool,
) -> Vec<(&'static str, &'static str, String)> {
    let service = if host_routing {
        format!("{}-canary", service_stem(&plan.service.value))
    } else {
        plan.service.value.clone()
    };
    vec![
        ("service", "service", service),
        (
            "namespace",
            "namespace",
            f.namespace.clone().unwrap_or_else(|| "default".into()),
        ),
        ("workload", "workload", plan.workload.value.clone()),
        (
            "canary.version",
            "canary-version",
            plan.canary.version.value.clone(),
        ),
        (
            "stable.version",
            "stable-version",
            plan.stable.version.value.clone(),
        ),
        ("environment", "environment", env.name.value.clone()),
        ("plan", "plan", plan.name.clone()),
    ]
}

/// The name the two Services Argo switches are made from: `<stem>-stable`, `<stem>-canary`.
fn service_stem(service: &str) -> &str {
    service.strip_suffix("-stable").unwrap_or(service)
}

/// The Rollout of `env` (optional when the plan has one environment), its AnalysisTemplate,
/// and with host routing the Services and VirtualServices Argo Rollouts weights; with notes
/// on what Argo Rollouts cannot express.
pub fn export(plan: &CheckedPlan, env: Option<&str>, routing: Routing) -> Result<Exported> {
    let env = facts::environment(plan, env)?;
    let f = facts::gather(plan, env)?;
    let mut notes = Vec::new();
    let mut objects = Vec::new();
    let (Some(service), Some(workload)) = (f.service(plan), f.workload(plan)) else {
        return Ok(Exported::default());
    };
    let ns = &f.namespace;
    let host_routing = routing == Routing::Host || plan.traffic == Traffic::GatewayApi;
    // Steps: the header and mirror routes first, then a weight and its pause per plan step.
    let (mut steps, managed) = route_steps(env, header_matches(plan, env, &mut notes), &mut notes);
    steps.extend(weight_steps(plan));
    let mut canary = Map::new();
    let mut traffic = Map::new();
    match (plan.traffic, routing) {
        (Traffic::Istio, Routing::Subset) => {
            traffic.insert("istio".into(), subset_routing(plan, &f, &mut notes));
        }
        (Traffic::Istio, Routing::Host) | (Traffic::GatewayApi, _) => {
            let (stable_svc, canary_svc) = version_services(&f, service, &mut objects);
            canary.insert("stableService".into(), json!(stable_svc));
            canary.insert("canaryService".into(), json!(canary_svc));
            if plan.traffic == Traffic::GatewayApi {
                let routes: Vec<Value> = f.routes.iter().map(|(n, _)| json!({"name": n})).collect();
                traffic.insert(
                    "plugins".into(),
                    json!({"argoproj-labs/gatewayAPI": {
                        "httpRoutes": routes,
                        "namespace": ns.clone().unwrap_or_else(|| "default".into()),
                    }}),
                );
            } else {
                traffic.insert(
                    "istio".into(),
                    json!({"virtualServices": virtual_services(&f)}),
                );
                objects.extend(host_virtual_services(&f, service, &stable_svc, &canary_svc));
            }
        }
    }
    let prepended = managed.len();
    if !managed.is_empty() {
        traffic.insert("managedRoutes".into(), Value::Array(managed));
    }
    if f.unnamed_routes > 0 {
        notes.push(format!("{} http route(s) to the Service without a name (Argo Rollouts names the routes it weights)", f.unnamed_routes));
    }
    // The version labels canaryplan gives each version's pods, so that queries selecting
    // `destination_version` (Istio's metric label from the pod's `version`) and anything else
    // keyed on the label see the same pods under Argo Rollouts.
    let label = plan.version_label.clone();
    canary.insert(
        "canaryMetadata".into(),
        json!({"labels": {label.clone(): plan.canary.version.value}}),
    );
    canary.insert(
        "stableMetadata".into(),
        json!({"labels": {label: plan.stable.version.value}}),
    );
    canary.insert("trafficRouting".into(), Value::Object(traffic));
    canary.insert("steps".into(), Value::Array(steps));
    if let Some(a) = &plan.analysis {
        let used: Vec<(&str, &str, String)> = args(plan, env, &f, host_routing);
        let mut analysis = json!({
            "templates": [{"templateName": template_name(plan)}],
            "args": used.iter().map(|(_, arg, v)| json!({"name": arg, "value": v})).collect::<Vec<_>>(),
        });
        // The plan counts its weight and pause steps; the header and mirror steps come first.
        if let (Some(s), Some(o)) = (a.starting_step, analysis.as_object_mut()) {
            o.insert("startingStep".into(), json!(s as usize + prepended));
        }
        canary.insert("analysis".into(), analysis);
    }
    // Succession pins the stable image; Argo takes the stable version from the ReplicaSet running.
    match plan.method {
        // A Rollout has one template: the stable version is the ReplicaSet running before the
        // Deployment's image changes, which is what `stable.image` pins.
        Method::Succession => {}
        Method::Coexistence => notes.push("stable.env and canary.env (Argo Rollouts runs one pod template; the version is the image)".into()),
        Method::Versioned => notes.push(format!("the versioned layout (Argo Rollouts replaces {} in place instead of adding {})", plan.workload.value, plan.new_deployment_name())),
    }
    if !plan.allow_from.is_empty() {
        notes.push(
            "allowFrom (keep the AuthorizationPolicies in base: Argo Rollouts does not make them)"
                .into(),
        );
    }
    objects.insert(0, rollout(plan, workload, ns, canary));
    if let Some(a) = &plan.analysis {
        let arg_values: Vec<(&str, &str, String)> = args(plan, env, &f, host_routing);
        let (template, used) =
            analysis_template(plan, a, &arg_values, host_routing, ns, &mut notes);
        // The Rollout passes exactly the arguments the template declares.
        if let Some(rollout) = objects.first_mut() {
            keep_used_args(rollout, &used);
        }
        objects.insert(1, template);
    }
    Ok(Exported { objects, notes })
}

/// The header match of the environment's first test match (Argo matches one header route).
fn header_matches(
    plan: &CheckedPlan,
    env: &EnvironmentPlan,
    notes: &mut Vec<String>,
) -> Vec<Value> {
    let matches: Vec<Value> = env
        .matches
        .first()
        .map(|m| header_match(plan, &m.value, notes))
        .unwrap_or_default();
    if env.matches.len() > 1 {
        notes.push(format!("test matches after the first of {} (one Argo header route matches all its headers at once)", env.matches.len()));
    }
    matches
}

/// The steps that set the header route (`matches`) and the mirror route, and the routes Argo
/// manages for them.
fn route_steps(
    env: &EnvironmentPlan,
    matches: Vec<Value>,
    notes: &mut Vec<String>,
) -> (Vec<Value>, Vec<Value>) {
    let mut steps = Vec::new();
    let mut managed = Vec::new();
    if !matches.is_empty() {
        managed.push(json!({"name": HEADER_ROUTE}));
        steps.push(json!({"setHeaderRoute": {"name": HEADER_ROUTE, "match": matches}}));
    }
    if let Some(m) = &env.mirror {
        managed.push(json!({"name": MIRROR_ROUTE}));
        if m.value.fract() != 0.0 {
            notes.push(format!(
                "a mirror of {}% (Argo mirrors whole percents: {}%)",
                m.value,
                m.value.round()
            ));
        }
        steps.push(json!({"setMirrorRoute": {"name": MIRROR_ROUTE, "percentage": m.value.round() as u64, "match": [{"path": {"prefix": "/"}}]}}));
    }
    (steps, managed)
}

/// A weight, then its pause (a step's own, or indefinite: a person promotes), per plan step
/// below 100.
fn weight_steps(plan: &CheckedPlan) -> Vec<Value> {
    let mut steps = Vec::new();
    for (i, w) in plan.steps.iter().enumerate() {
        if *w == 100 {
            continue;
        }
        steps.push(json!({"setWeight": w}));
        let pause = match plan
            .step_pauses
            .get(i)
            .and_then(Option::as_ref)
            .map(|p| &p.value)
        {
            Some(Pause::For(d)) => json!({"duration": d}),
            Some(Pause::Manual) | None => json!({}),
        };
        steps.push(json!({"pause": pause}));
    }
    steps
}

/// The VirtualServices Argo weights, each with the named routes to the Service.
fn virtual_services(f: &Facts) -> Value {
    Value::Array(
        f.routes
            .iter()
            .map(|(vs, routes)| {
                let mut v = json!({"name": vs});
                if let (false, Some(o)) = (routes.is_empty(), v.as_object_mut()) {
                    o.insert("routes".into(), json!(routes));
                }
                v
            })
            .collect(),
    )
}

/// Istio routing by subset: the VirtualServices and the plan's DestinationRule subsets.
fn subset_routing(plan: &CheckedPlan, f: &Facts, notes: &mut Vec<String>) -> Value {
    let mut istio = Map::new();
    istio.insert("virtualServices".into(), virtual_services(f));
    if f.destination_rule.is_none() {
        notes.push(format!("the DestinationRule {} with subsets {} and {} (canaryplan renders it during a release; Argo Rollouts needs it in base)", plan.service.value, plan.stable.subset.value, plan.canary.subset.value));
    }
    istio.insert(
        "destinationRule".into(),
        json!({
            "name": f.destination_rule.clone().unwrap_or_else(|| plan.service.value.clone()),
            "canarySubsetName": plan.canary.subset.value,
            "stableSubsetName": plan.stable.subset.value,
        }),
    );
    Value::Object(istio)
}

/// Host routing: the stable and canary Services Argo switches, named from the plan's Service;
/// the ones base lacks are exported, copies of the plan's Service.
fn version_services(
    f: &Facts,
    service: &BaseObject,
    objects: &mut Vec<Object>,
) -> (String, String) {
    // A plan from a host-routed Rollout already splits `<app>-stable`: its pair is
    // `<app>-canary`, not `<app>-stable-stable`.
    let stem = service_stem(&service.name);
    let (stable_svc, canary_svc) = (format!("{stem}-stable"), format!("{stem}-canary"));
    for (name, role) in [(&stable_svc, "stable"), (&canary_svc, "canary")] {
        if f.base.find("Service", name).is_some() {
            continue;
        }
        let mut svc = service.value.clone();
        crate::rendered::strip_server_fields(&mut svc);
        if let Some(m) = svc.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("name".into(), json!(name));
        }
        if let Some(s) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            for k in ["clusterIP", "clusterIPs"] {
                s.remove(k);
            }
        }
        objects.push(Object::new(
            format!("service-{name}.yaml"),
            &format!("the {role} Service Argo Rollouts points at the {role} pods (it adds their rollouts-pod-template-hash to the selector)"),
            svc,
        ));
    }
    (stable_svc, canary_svc)
}

/// Istio host routing: the base's VirtualServices as Argo expects them, their routes to the
/// Service weighted to the two Services, everything on stable.
fn host_virtual_services(
    f: &Facts,
    service: &BaseObject,
    stable_svc: &str,
    canary_svc: &str,
) -> Vec<Object> {
    let mut objects = Vec::new();
    for (vs_name, _) in &f.routes {
        let Some(vs) = f.base.find("VirtualService", vs_name) else {
            continue;
        };
        let mut v = vs.value.clone();
        crate::rendered::strip_server_fields(&mut v);
        for (kind, i) in
            crate::rendered::routes_to(&vs.value, |h| crate::rendered::is_host_of(service, h))
        {
            let Some(route) = v.at_mut(&format!("/spec/{kind}/{i}/route")) else {
                continue;
            };
            let port = route.at("/0/destination/port").cloned();
            let dest = |host: &str, w: u8| {
                let mut d = json!({"host": host});
                if let (Some(p), Some(o)) = (&port, d.as_object_mut()) {
                    o.insert("port".into(), p.clone());
                }
                json!({"destination": d, "weight": w})
            };
            *route = json!([dest(stable_svc, 100), dest(canary_svc, 0)]);
        }
        objects.push(Object::new(
            format!("virtualservice-{vs_name}.yaml"),
            &format!("VirtualService {vs_name} of base, its routes to {} on the two Services Argo Rollouts weights", service.name),
            v,
        ));
    }
    objects
}

/// The Rollout: the plan's Deployment by reference (its replicas and selector), the canary
/// strategy.
fn rollout(
    plan: &CheckedPlan,
    workload: &BaseObject,
    ns: &Option<String>,
    canary: Map<String, Value>,
) -> Object {
    let mut spec = json!({
        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name, "scaleDown": "progressively"},
        "strategy": {"canary": canary},
    });
    if let Some(o) = spec.as_object_mut() {
        if let Some(r) = workload.value.at("/spec/replicas") {
            o.insert("replicas".into(), r.clone());
        }
        if let Some(sel) = workload.value.at("/spec/selector") {
            o.insert("selector".into(), sel.clone());
        }
    }
    Object::new(
        format!("rollout-{}.yaml", plan.name),
        &format!(
            "Deployment {} rolled out by Argo Rollouts{}, steps {:?}",
            workload.name,
            if plan.traffic == Traffic::GatewayApi {
                " (with its gatewayAPI traffic router plugin installed)"
            } else {
                ""
            },
            plan.steps
        ),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": metadata(&plan.name, ns),
            "spec": spec,
        }),
    )
}

/// The AnalysisTemplate of the plan's analysis, its queries on Argo's arguments, and the
/// arguments they use.
fn analysis_template<'a>(
    plan: &CheckedPlan,
    a: &CheckedAnalysis,
    arg_values: &[(&str, &'a str, String)],
    host_routing: bool,
    ns: &Option<String>,
    notes: &mut Vec<String>,
) -> (Object, Vec<&'a str>) {
    // The query with Argo's argument placeholders where the plan's values go.
    let placeholder = |var: &str| {
        arg_values
            .iter()
            .find(|(v, _, _)| *v == var)
            .map(|(_, a, _)| format!("{{{{args.{a}}}}}"))
            .unwrap_or_default()
    };
    let values = QueryValues {
        plan: &placeholder("plan"),
        environment: &placeholder("environment"),
        service: &placeholder("service"),
        namespace: &placeholder("namespace"),
        workload: &placeholder("workload"),
        canary_version: &placeholder("canary.version"),
        stable_version: &placeholder("stable.version"),
        interval: &a.interval,
    };
    let mut metrics = Vec::new();
    let mut used = Vec::new();
    for m in &a.metrics {
        let query = render_query(&m.query.value, &values).unwrap_or_default();
        // Argo runs one Service (subsets) or two (host): a query that selects neither the
        // canary's version nor, with host routing, its Service measures both versions.
        let selects_canary = m.query.value.contains("canary.version")
            || host_routing && m.query.value.contains("service");
        if !selects_canary {
            notes.push(format!(
                "metric `{}` as a measure of the canary alone (its query selects neither `destination_version=\"{{{{ canary.version }}}}\"` nor, with host routing, the Service: under Argo Rollouts it measures both versions)",
                m.name.value
            ));
        }
        for (_, arg, _) in arg_values {
            if query.contains(&format!("{{{{args.{arg}}}}}")) && !used.contains(arg) {
                used.push(*arg);
            }
        }
        let mut cond = Vec::new();
        if let Some(min) = m.min {
            cond.push(format!("result[0] >= {min}"));
        }
        if let Some(max) = m.max {
            cond.push(format!("result[0] <= {max}"));
        }
        let mut metric = json!({
            "name": m.name.value,
            "interval": a.interval,
            "successCondition": cond.join(" && "),
            "provider": {"prometheus": {
                "address": a.prometheus.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                "query": query,
            }},
        });
        if let (Some(d), Some(o)) = (&a.initial_delay, metric.as_object_mut()) {
            o.insert("initialDelay".into(), json!(d));
        }
        // The gate's conditions and sample limits, as Argo Rollouts writes them.
        crate::analysis::export_metric(a, m, &mut metric);
        metrics.push(metric);
    }
    notes.extend(crate::analysis::export_notes(a));
    if a.prometheus.is_none() {
        notes.push("the Prometheus address (the plan leaves it to $CANARYPLAN_PROMETHEUS_URL): fill in provider.prometheus.address".into());
    }
    let template_args: Vec<Value> = arg_values
        .iter()
        .filter(|(_, arg, _)| used.contains(arg))
        .map(|(_, arg, _)| json!({"name": arg}))
        .collect();
    let mut spec = json!({"metrics": metrics});
    if let (false, Some(o)) = (template_args.is_empty(), spec.as_object_mut()) {
        o.insert("args".into(), Value::Array(template_args));
    }
    let template = Object::new(
        format!("analysistemplate-{}.yaml", template_name(plan)),
        "the plan's analysis: each metric's bounds as its successCondition",
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": metadata(&template_name(plan), ns),
            "spec": spec,
        }),
    );
    (template, used)
}

/// Drops the Rollout's analysis arguments the template does not declare (and `args` if none
/// is left).
fn keep_used_args(rollout: &mut Object, used: &[&str]) {
    if let Some(analysis) = rollout
        .object
        .at_mut("/spec/strategy/canary/analysis")
        .and_then(Value::as_object_mut)
    {
        if let Some(a) = analysis.get_mut("args").and_then(Value::as_array_mut) {
            a.retain(|x| {
                x.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| used.contains(&n))
            });
        }
        if analysis
            .get("args")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            analysis.remove("args");
        }
    }
}
