//! What a LanePlan's stage renders on top of the services' bases: per service, the lane copies
//! `<workload>-<lane>`, the baseline's lane label, the Service selector that reaches both while
//! routes name subsets, a DestinationRule subset per lane and the baseline, and routes by
//! header (to the lane's subset where the service has one, to the baseline where it does not);
//! at the ingress, routes that set the header so the whole chain follows one lane.

use crate::pointer::Pointer as _;
use serde_json::{Map, Value, json};

use super::plan::{CheckedLanePlan, LaneEnv, Member};
use crate::base::{Base, BaseObject};
use crate::error::{Diagnostics, Result};
use crate::plan_file::Labels;
use crate::rendered::{
    Patch, PatchBody, Rendered, Resource, SYNC_WAVE, Target, is_host_of, strip_server_fields,
};
use crate::selector;

/// The label every pod of a chain service carries while lanes run (baseline and copies), so
/// its Service can select them all while its own selector keys tell them apart.
pub const SERVICE_LABEL: &str = "canaryplan.io/lane-service";

/// One service of the chain as its base has it.
pub struct Found<'a> {
    pub member: &'a Member,
    pub service: &'a BaseObject,
    pub workload: &'a BaseObject,
    /// Namespace of the service's objects.
    pub namespace: Option<String>,
    /// The Service's host as routes and subsets name it.
    pub host: String,
    /// The lanes (in plan order) that run a version of this service.
    pub lanes: Vec<String>,
}

/// Finds each service of the chain and its Deployment in its base.
pub fn find<'a>(plan: &'a CheckedLanePlan, bases: &'a [Base]) -> Result<Vec<Found<'a>>> {
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for (m, base) in plan.services.iter().zip(bases) {
        let get = |kind: &str, name: &crate::yaml::At<String>| {
            let found = base.find(kind, &name.value);
            if found.is_none() {
                let others: Vec<&str> = base.of_kind(kind).map(|o| o.name.as_str()).collect();
                return Err(plan
                    .diag(
                        name.pos,
                        format!(
                            "{kind} `{}` is not in the base {}",
                            name.value,
                            base.path.display()
                        ),
                    )
                    .hint(
                        match crate::names::did_you_mean(&name.value, others.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "the base has {kind} {}",
                                if others.is_empty() {
                                    "none".to_string()
                                } else {
                                    others.join(", ")
                                }
                            ),
                        },
                    ));
            }
            Ok(found)
        };
        let (service, workload) = match (get("Service", &m.service), get("Deployment", &m.workload))
        {
            (Ok(Some(s)), Ok(Some(w))) => (s, w),
            (s, w) => {
                for e in [s.err(), w.err()].into_iter().flatten() {
                    d.push(e);
                }
                continue;
            }
        };
        let sel = selector::labels_of(workload.value.at("/spec/selector/matchLabels"));
        if sel.contains_key(&plan.label.value) {
            d.push(
                workload
                    .error(&["spec", "selector"], format!("the selector of Deployment {} holds `{}`, the lane label: its pods cannot be told apart by lane, and a selector cannot change", workload.name, plan.label.value))
                    .hint("choose a `label:` no Deployment of the chain has in its selector (the lanes label pods beside it)"),
            );
        }
        if sel.is_empty() {
            d.push(
                workload
                    .error(
                        &["spec", "selector"],
                        format!("Deployment {} has no selector.matchLabels", workload.name),
                    )
                    .hint("lane copies are made disjoint through matchLabels"),
            );
        }
        let namespace = workload.namespace().map(str::to_string);
        let host = match service.namespace() {
            Some(ns) => format!("{}.{ns}.svc.cluster.local", service.name),
            None => service.name.clone(),
        };
        let lanes = plan
            .lanes
            .iter()
            .filter(|l| l.image_of(&m.service.value).is_some())
            .map(|l| l.name.value.clone())
            .collect();
        out.push(Found {
            member: m,
            service,
            workload,
            namespace,
            host,
            lanes,
        });
    }
    d.into_result()?;
    Ok(out)
}

/// Pod labels Istio reads a workload's version (canonical revision) from, in its order.
const TELEMETRY_VERSION_LABELS: [&str; 2] = [
    "service.istio.io/canonical-revision",
    "app.kubernetes.io/version",
];

/// Labels as Kubernetes reads them: a label written without a value (`version:`) is the
/// empty string, not `null`.
pub fn labels_of(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The keys a lane copy's labels change: its Deployment's selector keys and its Service's
/// (so neither the baseline's Deployment nor the Service selects the copy by itself).
fn overridden(f: &Found<'_>) -> Vec<String> {
    let mut keys: Vec<String> = labels_of(f.workload.value.at("/spec/selector/matchLabels"))
        .keys()
        .cloned()
        .collect();
    for k in selector::labels_of(f.service.value.at("/spec/selector")).keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys
}

/// `labels` as a lane copy has them: overridden keys get `<value>-<lane>`, plus the lane label.
fn for_lane(plan: &CheckedLanePlan, f: &Found<'_>, labels: &Labels, lane: &str) -> Labels {
    let keys = overridden(f);
    let mut out = labels.clone();
    for (k, v) in out.iter_mut() {
        if keys.contains(k) {
            *v = format!("{v}-{lane}");
        }
    }
    out.insert(plan.label.value.clone(), lane.to_string());
    out
}

fn namespaced(meta: &mut Map<String, Value>, ns: &Option<String>) {
    if let Some(ns) = ns {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
}

/// The lane copy of a service's Deployment.
fn copy(plan: &CheckedLanePlan, f: &Found<'_>, lane: &str) -> Resource {
    let name = CheckedLanePlan::copy_name(&f.workload.name, lane);
    let mut d = f.workload.value.clone();
    strip_server_fields(&mut d);
    let labels = |p: &str, d: &Value| labels_of(d.at(p));
    let mut meta_labels = for_lane(plan, f, &labels("/metadata/labels", &d), lane);
    let mut match_labels = for_lane(plan, f, &labels("/spec/selector/matchLabels", &d), lane);
    let mut pod_labels = for_lane(plan, f, &labels("/spec/template/metadata/labels", &d), lane);
    pod_labels.insert(SERVICE_LABEL.into(), f.service.name.clone());
    // A subset (and telemetry) reads the version label: the copy runs the lane's image, so it
    // carries the lane's version, never the baseline's.
    let version = plan
        .lanes
        .iter()
        .find(|l| l.name.value == lane)
        .map_or_else(|| lane.to_string(), |l| l.version.clone());
    let key = plan.version_label.clone();
    pod_labels.insert(key.clone(), version.clone());
    meta_labels.insert(key.clone(), version.clone());
    // Istio's telemetry takes a workload's revision from these before `version`: a copy that
    // kept the baseline's would be reported as the baseline.
    for k in TELEMETRY_VERSION_LABELS {
        if pod_labels.contains_key(k) && !match_labels.contains_key(k) {
            pod_labels.insert(k.to_string(), version.clone());
        }
    }
    if match_labels.contains_key(&key) {
        match_labels.insert(key, version);
    }
    if let Some(m) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("name".into(), Value::String(name.clone()));
        m.insert("labels".into(), selector::to_value(&meta_labels));
        let mut annotations = m
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        annotations.insert(SYNC_WAVE.0.into(), json!(SYNC_WAVE.1));
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if let Some(s) = d.at_mut("/spec/selector").and_then(Value::as_object_mut) {
        s.insert("matchLabels".into(), selector::to_value(&match_labels));
    }
    if let Some(t) = d
        .at_mut("/spec/template/metadata")
        .and_then(Value::as_object_mut)
    {
        t.insert("labels".into(), selector::to_value(&pod_labels));
    }
    let image = plan
        .lanes
        .iter()
        .find(|l| l.name.value == lane)
        .and_then(|l| l.image_of(&f.member.service.value))
        .map(|i| i.value.clone());
    if let (Some(c), Some(image)) = (
        d.at_mut("/spec/template/spec/containers/0")
            .and_then(Value::as_object_mut),
        image,
    ) {
        c.insert("image".into(), Value::String(image));
    }
    Resource {
        file: format!("deployment-{name}.yaml"),
        from: format!("Deployment {} of base in lane {lane}", f.workload.name),
        object: d,
    }
}

/// The subsets of a service's DestinationRule: the baseline's and each of its lanes'.
fn subsets(plan: &CheckedLanePlan, f: &Found<'_>) -> Vec<Value> {
    std::iter::once(plan.baseline.value.clone())
        .chain(f.lanes.iter().cloned())
        .map(|l| json!({"name": l, "labels": {plan.label.value.clone(): l}}))
        .collect()
}

/// The `trafficPolicy` of the base subsets that the service's routes name: the baseline and
/// lane subsets replace them in those routes, so they carry it (a LEAST_REQUEST, a connection
/// pool). Two named subsets with different policies cannot both be carried: refused.
fn replaced_policy(f: &Found<'_>, base: &Base, dr: &BaseObject) -> Result<Option<Value>> {
    let mut named: Vec<String> = Vec::new();
    for vs in base.of_kind("VirtualService") {
        for (kind, i) in crate::rendered::routes_to(&vs.value, |h| is_host_of(f.service, h)) {
            let dests = vs
                .value
                .at(&format!("/spec/{kind}/{i}/route"))
                .and_then(Value::as_array);
            for d in dests.into_iter().flatten() {
                if let Some(s) = d.at("/destination/subset").and_then(Value::as_str)
                    && !named.iter().any(|n| n == s)
                {
                    named.push(s.to_string());
                }
            }
        }
    }
    let mut found: Option<(String, Value)> = None;
    for s in dr
        .value
        .at("/spec/subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        if !named.iter().any(|n| n == name) {
            continue;
        }
        let policy = s.get("trafficPolicy").cloned().unwrap_or(Value::Null);
        match &found {
            Some((other, p)) if *p != policy => {
                return Err(dr
                    .error(&["spec", "subsets"], format!("the routes to {} name subsets `{other}` and `{name}` of DestinationRule {} with different trafficPolicy; the baseline and lane subsets that replace them can carry only one", f.host, dr.name))
                    .hint("give those subsets the same trafficPolicy, or move it to the DestinationRule's own `trafficPolicy`")
                    .into());
            }
            Some(_) => {}
            None => found = Some((name.to_string(), policy)),
        }
    }
    Ok(found.map(|(_, p)| p).filter(|p| !p.is_null()))
}

fn destination_rule(
    plan: &CheckedLanePlan,
    f: &Found<'_>,
    base: &Base,
    out: &mut Rendered,
) -> Result<()> {
    let mut wanted = subsets(plan, f);
    let in_base = base.of_kind("DestinationRule").find(|dr| {
        dr.value
            .at("/spec/host")
            .and_then(Value::as_str)
            .is_some_and(|h| is_host_of(f.service, h))
    });
    let from = format!("a subset per lane of {}, and the baseline's", f.host);
    match in_base {
        Some(dr) => {
            if let Some(policy) = replaced_policy(f, base, dr)? {
                for s in &mut wanted {
                    if let Some(o) = s.as_object_mut() {
                        o.insert("trafficPolicy".into(), policy.clone());
                    }
                }
            }
            let existing = dr.value.at("/spec/subsets").and_then(Value::as_array);
            let mut ops = Vec::new();
            for s in &wanted {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                match existing
                    .into_iter()
                    .flatten()
                    .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                {
                    Some(e) if e.get("labels") != s.get("labels") => {
                        return Err(dr
                            .error(&["spec", "subsets"], format!("DestinationRule {} already has a subset `{name}` with other labels", dr.name))
                            .hint(format!("rename that subset in base: lane subsets are named after the lanes and select `{}`", plan.label.value))
                            .into());
                    }
                    Some(_) => {}
                    None if existing.is_none() && ops.is_empty() => {
                        ops.push(json!({"op": "add", "path": "/spec/subsets", "value": [s]}));
                    }
                    None => ops.push(json!({"op": "add", "path": "/spec/subsets/-", "value": s})),
                }
            }
            if !ops.is_empty() {
                out.patches.push(Patch {
                    file: format!("patch-destinationrule-{}.yaml", dr.name),
                    from,
                    target: Target::of(dr),
                    body: PatchBody::Json(ops),
                });
            }
        }
        None => {
            let name = f.service.name.clone();
            if base.find("DestinationRule", &name).is_some() {
                return Err(plan
                    .diag(f.member.service.pos, format!("the base has a DestinationRule `{name}` for another host"))
                    .hint("rename it, or point its host at the Service so canaryplan adds the subsets to it")
                    .into());
            }
            let mut meta = Map::new();
            meta.insert("name".into(), Value::String(name.clone()));
            namespaced(&mut meta, &f.namespace);
            meta.insert("annotations".into(), json!({SYNC_WAVE.0: SYNC_WAVE.1}));
            out.resources.push(Resource {
                file: format!("destinationrule-{name}.yaml"),
                from,
                object: json!({
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "DestinationRule",
                    "metadata": meta,
                    "spec": {"host": f.host, "subsets": wanted},
                }),
            });
        }
    }
    Ok(())
}

/// A route's conditions AND the header naming `lane`.
fn with_header(plan: &CheckedLanePlan, matches: Option<&Value>, lane: &str) -> Value {
    let header = json!({plan.header.value.clone(): {"exact": lane}});
    let own: Vec<Value> = matches
        .and_then(Value::as_array)
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})]);
    Value::Array(
        own.into_iter()
            .map(|mut m| {
                if let Some(o) = m.as_object_mut() {
                    let mut headers = o
                        .get("headers")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(h) = header.as_object() {
                        headers.extend(h.clone());
                    }
                    o.insert("headers".into(), Value::Object(headers));
                }
                m
            })
            .collect(),
    )
}

/// `route` with the same destination host (and port), on `subset`.
fn to_subset(dest_host: &str, port: Option<&Value>, subset: &str) -> Value {
    let mut d = json!({"host": dest_host, "subset": subset});
    if let (Some(p), Some(o)) = (port, d.as_object_mut()) {
        o.insert("port".into(), p.clone());
    }
    json!({ "destination": d })
}

/// Route fields a lane's route does not take from the route it is made from: its own name,
/// match and destinations. Every other field (timeout, retries, mirror, fault, headers, CORS,
/// rewrite...) is kept, so a lane request is treated as the route treated it.
const OWN: [&str; 3] = ["name", "match", "route"];

fn virtual_service(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    f: &Found<'_>,
    base: &Base,
    out: &mut Rendered,
) -> Result<()> {
    let baseline = &plan.baseline.value;
    // A service promoted one by one in a lane (its version is the baseline's now) takes that
    // lane's requests on its baseline subset: no lane route of its own.
    let routed: Vec<String> = f
        .lanes
        .iter()
        .filter(|l| !env.promoted(l, &f.member.service.value) && env.lanes_open())
        .cloned()
        .collect();
    let lanes: &[String] = if env.model.lane_routes { &routed } else { &[] };
    let mesh = |vs: &BaseObject| {
        vs.value
            .at("/spec/gateways")
            .and_then(Value::as_array)
            .is_none_or(|g| g.is_empty() || g.iter().any(|x| x == "mesh"))
    };
    // Every VirtualService of base routing to the service is patched, a gateway's too: a route
    // to the bare host would reach the lane copies by pod count once the Service selects them.
    let in_base: Vec<&BaseObject> = base
        .of_kind("VirtualService")
        .filter(|vs| {
            !crate::rendered::routes_to(&vs.value, |h| is_host_of(f.service, h)).is_empty()
        })
        .collect();
    // Mesh callers need a VirtualService of their own when base has none for them.
    if !in_base.iter().any(|vs| mesh(vs)) {
        let name = f.service.name.clone();
        if base.find("VirtualService", &name).is_some() {
            return Err(plan
                .diag(f.member.service.pos, format!("the base has a VirtualService `{name}` that does not route mesh callers to {}", f.host))
                .hint("rename it, or make it route to the Service so canaryplan patches it")
                .into());
        }
        let mut http: Vec<Value> = lanes
            .iter()
            .map(|l| json!({"name": l, "match": with_header(plan, None, l), "route": [to_subset(&f.host, None, l)]}))
            .collect();
        http.push(json!({"name": baseline, "route": [to_subset(&f.host, None, baseline)]}));
        let mut meta = Map::new();
        meta.insert("name".into(), Value::String(name.clone()));
        namespaced(&mut meta, &f.namespace);
        out.resources.push(Resource {
            file: format!("virtualservice-{name}.yaml"),
            from: format!("mesh callers of {} by lane", f.host),
            object: json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": meta,
                "spec": {"hosts": [f.service.name], "http": http},
            }),
        });
    }
    for vs in in_base {
        let mut ops = Vec::new();
        let mut inserts = Vec::new();
        for (kind, i) in crate::rendered::routes_to(&vs.value, |h| is_host_of(f.service, h)) {
            if kind != "http" {
                return Err(vs
                    .error(&["spec", kind], format!("VirtualService {} routes {} by {kind}: lanes need http routes (they match a header)", vs.name, f.host))
                    .hint("lanes work on http traffic; leave this service out of the chain")
                    .into());
            }
            let Some(route) = vs.value.at(&format!("/spec/http/{i}")) else {
                continue;
            };
            let dest = route.at("/route/0/destination");
            let dest_host = dest
                .and_then(|d| d.get("host"))
                .and_then(Value::as_str)
                .unwrap_or(&f.host);
            let port = dest.and_then(|d| d.get("port"));
            ops.push(json!({"op": "replace", "path": format!("/spec/http/{i}/route"), "value": [to_subset(dest_host, port, baseline)]}));
            let rname = route.get("name").and_then(Value::as_str);
            for l in lanes.iter().rev() {
                let mut r = Map::new();
                r.insert(
                    "name".into(),
                    json!(match rname {
                        Some(n) => format!("{n}-{l}"),
                        None => l.clone(),
                    }),
                );
                r.insert("match".into(), with_header(plan, route.get("match"), l));
                r.insert("route".into(), json!([to_subset(dest_host, port, l)]));
                for (k, v) in route.as_object().into_iter().flatten() {
                    if !OWN.contains(&k.as_str()) {
                        r.insert(k.clone(), v.clone());
                    }
                }
                inserts.push(json!({"op": "add", "path": format!("/spec/http/{i}"), "value": r}));
            }
        }
        // Inserts after the replacements (which name the base's indices), from the last route up.
        ops.extend(inserts.into_iter().rev());
        out.patches.push(Patch {
            file: format!("patch-virtualservice-{}.yaml", vs.name),
            from: format!(
                "routes to {} by lane header, the rest to the baseline",
                f.host
            ),
            target: Target::of(vs),
            body: PatchBody::Json(ops),
        });
    }
    Ok(())
}

/// A VirtualService of base bound to the plan's gateway for one of its hosts would compete with
/// the ingress VirtualService canaryplan renders: Istio merges two VirtualServices for one host
/// on a gateway in no defined order, so which routes win is chance.
fn refuse_a_second_ingress(plan: &CheckedLanePlan, bases: &[Base]) -> Result<()> {
    let Some(ing) = &plan.ingress else {
        return Ok(());
    };
    let (gw_ns, gw_name) = ing
        .gateway
        .value
        .split_once('/')
        .unwrap_or(("", &ing.gateway.value));
    let strings = |v: &Value, p: &str| -> Vec<String> {
        v.at(p)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    for vs in bases.iter().flat_map(|b| b.of_kind("VirtualService")) {
        let bound = strings(&vs.value, "/spec/gateways")
            .iter()
            .any(|g| g == &ing.gateway.value || (g == gw_name && vs.namespace() == Some(gw_ns)));
        let hosts = strings(&vs.value, "/spec/hosts");
        let shared = hosts
            .iter()
            .find(|h| ing.hosts.iter().any(|x| x == *h || x == "*" || *h == "*"));
        if let (true, Some(h)) = (bound, shared) {
            return Err(vs
                .error(&["spec", "gateways"], format!("VirtualService {} already routes host `{h}` through gateway {}, where canaryplan renders the lanes' ingress VirtualService", vs.name, ing.gateway.value))
                .hint("Istio merges two VirtualServices for one host on a gateway in no defined order: remove this one from the base while the lanes run, or leave `ingress:` out of the plan")
                .into());
        }
    }
    Ok(())
}

/// The ingress VirtualService: a request that names a lane keeps it; one that does not is
/// split by lane weight (at shift), each share setting the header so the chain follows it.
fn ingress(plan: &CheckedLanePlan, env: &LaneEnv, entry: &Found<'_>, out: &mut Rendered) {
    let Some(ing) = &plan.ingress else { return };
    let h = &plan.header.value;
    let baseline = &plan.baseline.value;
    let subset_for = |lane: &str| {
        if env.lanes_open()
            && entry.lanes.iter().any(|l| l == lane)
            && !env.promoted(lane, &entry.member.service.value)
        {
            lane.to_string()
        } else {
            baseline.clone()
        }
    };
    let dest = |lane: &str, weight: Option<u8>| {
        let mut d = to_subset(&entry.host, None, &subset_for(lane));
        if let Some(o) = d.as_object_mut() {
            o.insert(
                "headers".into(),
                json!({"request": {"set": {h.clone(): lane}}}),
            );
            if let Some(w) = weight {
                o.insert("weight".into(), json!(w));
            }
        }
        d
    };
    let own = (!ing.matches.is_empty()).then(|| Value::Array(ing.matches.clone()));
    let mut http = Vec::new();
    if env.model.lane_routes {
        for lane in plan
            .lanes
            .iter()
            .map(|l| &l.name.value)
            .chain(std::iter::once(baseline))
        {
            http.push(json!({"name": lane, "match": with_header(plan, own.as_ref(), lane), "route": [dest(lane, None)]}));
        }
    }
    let weighted: Vec<(String, u8)> = plan
        .lanes
        .iter()
        .map(|l| {
            (
                l.name.value.clone(),
                if env.model.weighted {
                    env.weight(&l.name.value)
                } else {
                    0
                },
            )
        })
        .filter(|(_, w)| *w > 0)
        .collect();
    let rest = 100 - weighted.iter().map(|(_, w)| *w).sum::<u8>();
    let mut route = vec![dest(baseline, (!weighted.is_empty()).then_some(rest))];
    route.extend(weighted.iter().map(|(l, w)| dest(l, Some(*w))));
    let mut default = json!({"name": "by-weight", "route": route});
    if let (Some(m), Some(o)) = (&own, default.as_object_mut()) {
        o.insert("match".into(), m.clone());
    }
    http.push(default);
    let name = format!("{}-ingress", plan.name);
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(name.clone()));
    namespaced(&mut meta, &entry.namespace);
    out.resources.push(Resource {
        file: format!("virtualservice-{name}.yaml"),
        from: format!("requests entering through {} by lane", ing.gateway.value),
        object: json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta,
            "spec": {"hosts": ing.hosts, "gateways": [ing.gateway.value], "http": http},
        }),
    });
}

/// Renders one environment's stage over the services' bases (in chain order), `found` in them.
pub fn render(
    plan: &CheckedLanePlan,
    env: &LaneEnv,
    bases: &[Base],
    found: &[Found<'_>],
) -> Result<Rendered> {
    let m = env.model;
    let mut out = Rendered::default();
    let mut d = Diagnostics::default();
    for (f, base) in found.iter().zip(bases) {
        // A service no lane runs a version of is left as its base has it: requests of every
        // lane reach its baseline (the fallback) with no route of ours.
        if f.lanes.is_empty() {
            continue;
        }
        if m.copies {
            for lane in &f.lanes {
                out.resources.push(copy(plan, f, lane));
            }
        }
        if m.baseline_label {
            let mut labels = Labels::new();
            labels.insert(plan.label.value.clone(), plan.baseline.value.clone());
            labels.insert(SERVICE_LABEL.into(), f.service.name.clone());
            out.patches.push(Patch::merge(
                format!("patch-deployment-{}.yaml", f.workload.name),
                format!("the baseline lane label on Deployment {}'s pods", f.workload.name),
                Target::of(f.workload),
                json!({"spec": {"template": {"metadata": {"labels": selector::to_value(&labels)}}}}),
            ));
        }
        if m.service_selector && !f.lanes.is_empty() {
            let mut sel = Map::new();
            for k in selector::labels_of(f.service.value.at("/spec/selector")).keys() {
                sel.insert(k.clone(), Value::Null);
            }
            sel.insert(SERVICE_LABEL.into(), Value::String(f.service.name.clone()));
            out.patches.push(Patch::merge(
                format!("patch-service-{}.yaml", f.service.name),
                format!(
                    "the selector of Service {} while its lanes serve",
                    f.service.name
                ),
                Target::of(f.service),
                json!({"spec": {"selector": sel}}),
            ));
        }
        if m.subsets {
            d.take(destination_rule(plan, f, base, &mut out));
        }
        if m.routes {
            d.take(virtual_service(plan, env, f, base, &mut out));
        }
    }
    if m.routes
        && let Some(ing) = &plan.ingress
        && let Some(entry) = found.iter().find(|f| f.service.name == ing.service.value)
    {
        d.take(refuse_a_second_ingress(plan, bases));
        ingress(plan, env, entry, &mut out);
    }
    d.into_result()?;
    Ok(out)
}
