//! `canaryplan init --from-rollout FILE`: a plan from an Argo Rollouts `Rollout` and what its
//! folder holds (VirtualServices, DestinationRule, HTTPRoutes, Services, AnalysisTemplates),
//! and the base changes that replace the controller (the Rollout becomes a Deployment; with
//! host-level routing, the routes lose their canary Service). Every field of the Rollout is
//! carried over or named in `dropped`; the plan is built as data, written by the serializer,
//! and checked (parsed back, then rendered against the changed base) before `init` writes it.

mod analysis;
mod steps;
mod verify;

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{Diagnostic, Result};
use crate::output::overlay::relative;
use crate::yaml::{self, Source};

/// What `init --from-rollout` produces.
#[derive(Debug)]
pub struct Migration {
    /// The plan's text.
    pub plan: String,
    /// The objects to commit in the base in place of the ones they replace (a YAML stream,
    /// each object headed by a comment saying which).
    pub base_changes: String,
    /// Settings of the Rollout the plan does not carry over (`--strict` refuses them).
    pub dropped: Vec<String>,
    /// What was carried over in another form.
    pub notes: Vec<String>,
}

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

/// The account of the Rollout's fields: which were carried over (JSON pointers, a pointer
/// covers what is below it), which were dropped and why.
#[derive(Debug, Default)]
pub struct Ledger {
    carried: Vec<String>,
    pub dropped: Vec<String>,
    pub notes: Vec<String>,
}

impl Ledger {
    fn carry(&mut self, pointer: &str) {
        self.carried.push(pointer.to_string());
    }

    fn drop(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.dropped.contains(&what) {
            self.dropped.push(what);
        }
    }

    fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.notes.contains(&what) {
            self.notes.push(what);
        }
    }

    fn is_carried(&self, pointer: &str) -> bool {
        self.carried.iter().any(|c| {
            pointer == c
                || pointer
                    .strip_prefix(c.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Names every field of `v` under `pointer` that is neither carried nor already dropped.
    fn account(&mut self, v: &Value, pointer: &str) {
        if self.is_carried(pointer) {
            return;
        }
        if let Some((_, why)) = KNOWN.iter().find(|(p, _)| *p == pointer) {
            self.drop(format!("{} ({why})", dotted(pointer)));
            return;
        }
        match v.as_object() {
            Some(o) if !o.is_empty() => {
                for (k, child) in o {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    self.account(child, &format!("{pointer}/{key}"));
                }
            }
            _ => self.drop(format!(
                "{} {} (no counterpart in a plan)",
                dotted(pointer),
                short(v)
            )),
        }
    }
}

/// Fields that commonly do not carry over, and why.
const KNOWN: [(&str, &str); 16] = [
    (
        "/spec/strategy/canary/dynamicStableScale",
        "canaryplan keeps the stable copy at its replicas until cleanup-1 removes it; scale it in base if you must",
    ),
    (
        "/spec/strategy/canary/canaryMetadata",
        "the canary's pods carry the version label and `podLabels`; add other labels to the Deployment's pod template",
    ),
    (
        "/spec/strategy/canary/stableMetadata",
        "the stable copy's pods carry the version label, `stable.labels` and `podLabels`",
    ),
    (
        "/spec/strategy/canary/abortScaleDownDelaySeconds",
        "after `abort` the canary keeps running at weight 0 until a commit changes it",
    ),
    (
        "/spec/strategy/canary/scaleDownDelaySeconds",
        "the stable copy goes at cleanup-1, a commit of its own",
    ),
    (
        "/spec/strategy/canary/scaleDownDelayRevisionLimit",
        "canaryplan keeps one stable copy",
    ),
    (
        "/spec/strategy/canary/antiAffinity",
        "put the anti-affinity in the Deployment's pod template",
    ),
    (
        "/spec/strategy/canary/minPodsPerReplicaSet",
        "set the Deployment's replicas",
    ),
    (
        "/spec/strategy/canary/replicaProgressThreshold",
        "canaryplan does not wait for replicas between steps",
    ),
    (
        "/spec/strategy/canary/trafficRouting/maxTrafficWeight",
        "a plan's weights are percents",
    ),
    (
        "/spec/strategy/canary/trafficRouting/managedRoutes",
        "the plan's `match:` and `mirror:` are its managed routes",
    ),
    (
        "/spec/strategy/canary/analysis",
        "the analysis could not be carried over",
    ),
    (
        "/spec/progressDeadlineAbort",
        "nothing aborts by itself: `canaryplan abort` is a commit",
    ),
    (
        "/spec/rollbackWindow",
        "a rollback is a commit that goes back a stage",
    ),
    (
        "/spec/restartAt",
        "restart the Deployment with `kubectl rollout restart`",
    ),
    ("/spec/strategy/canary/pingPong", "see the refusal"),
];

/// A JSON pointer as a dotted path (`spec.strategy.canary`).
fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// A value in a note, on one line and short.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or_default()),
        None => text,
    }
}

fn s<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// Text that goes into a comment: one line, no control characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Every object of the YAML files in `dir` (not below it).
fn objects_in(dir: &Path, root: &crate::fsio::Root) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| crate::error::Error::io("list", dir, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect();
    files.sort();
    for f in files {
        let source = Source::read(&f, root)?;
        out.extend(
            yaml::parse_values(&source)?
                .into_iter()
                .filter(|v| v.is_object()),
        );
    }
    Ok(out)
}

/// A refusal about the Rollout file: what is wrong and what to do.
fn refuse(file: &Path, message: impl Into<String>, hint: impl Into<String>) -> crate::error::Error {
    Diagnostic::new(message).in_file(file).hint(hint).into()
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
            .pointer_mut(&format!("/spec/{routes_key}"))
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

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    all.iter()
        .find(|o| s(o, "/kind") == Some(kind) && s(o, "/metadata/name") == Some(name))
}

/// Converts the Rollout in `file` to a plan written at `plan_path`. With `strict`, a
/// setting that does not carry over is an error instead of a note.
pub fn migrate(file: &Path, plan_path: &Path, strict: bool) -> Result<Migration> {
    let plan_dir = plan_path.parent().unwrap_or(Path::new(""));
    let root = crate::fsio::Root::discover(plan_dir)?;
    let source = Source::read(file, &root)?;
    let docs = yaml::parse_values(&source)?;
    let rollouts: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            s(d, "/kind") == Some("Rollout")
                && s(d, "/apiVersion").is_some_and(|a| a.starts_with("argoproj.io/"))
        })
        .collect();
    let rollout = match rollouts.as_slice() {
        [one] => *one,
        [] => {
            return Err(refuse(
                file,
                "no Argo Rollouts Rollout in this file",
                "name the file that holds the `kind: Rollout`",
            ));
        }
        many => {
            let names: Vec<&str> = many.iter().filter_map(|r| s(r, "/metadata/name")).collect();
            return Err(refuse(
                file,
                format!(
                    "{} Rollouts in this file ({})",
                    many.len(),
                    names.join(", ")
                ),
                "move each Rollout to a file of its own (with its Services and routing) and run init on one",
            ));
        }
    };
    let name = s(rollout, "/metadata/name").unwrap_or("app").to_string();
    let dir = file.parent().unwrap_or(Path::new("."));
    let dir_or_here = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // What the base holds: the kustomization's resources (wherever they are), else the
    // folder's YAML files.
    let all = match crate::base::kustomization_file(dir_or_here) {
        Some(_) => crate::base::load(dir_or_here, &root)?
            .objects
            .into_iter()
            .map(|o| o.value)
            .collect(),
        None => objects_in(dir_or_here, &root)?,
    };
    let mut ledger = Ledger::default();
    for p in [
        "/apiVersion",
        "/kind",
        "/status",
        "/metadata/name",
        "/metadata/namespace",
        "/metadata/labels",
        "/metadata/annotations",
        "/metadata/uid",
        "/metadata/resourceVersion",
        "/metadata/generation",
        "/metadata/creationTimestamp",
        "/metadata/managedFields",
        "/metadata/selfLink",
        "/spec/replicas",
        "/spec/selector",
        "/spec/template",
        "/spec/minReadySeconds",
        "/spec/revisionHistoryLimit",
        "/spec/progressDeadlineSeconds",
        "/spec/paused",
        "/spec/workloadRef",
        "/spec/strategy/canary/steps",
        "/spec/strategy/canary/maxSurge",
        "/spec/strategy/canary/maxUnavailable",
    ] {
        ledger.carry(p);
    }

    // The strategy: canary only.
    if rollout.pointer("/spec/strategy/blueGreen").is_some() {
        return Err(refuse(
            file,
            format!(
                "Rollout {name} is blueGreen: a preview Service, then all traffic at once; a canary plan moves traffic by weight between two versions behind one Service"
            ),
            "rewrite the strategy as `canary:` with the steps you want (a one-step switch after a check: `steps: [{pause: {}}, {setWeight: 100}]`) and run init again, or keep this app on Argo Rollouts",
        ));
    }
    let Some(canary) = rollout.pointer("/spec/strategy/canary") else {
        return Err(refuse(
            file,
            format!("Rollout {name} has no canary strategy"),
            "a plan is a canary: give the Rollout `strategy.canary` with its steps and run init again",
        ));
    };
    if canary.get("pingPong").is_some() {
        return Err(refuse(
            file,
            format!(
                "Rollout {name} uses pingPong: two Services that take turns being stable; a canary plan keeps one Service and weights the two versions behind it"
            ),
            "remove `pingPong` and route with `canaryService`/`stableService` (or Istio subsets), then run init again",
        ));
    }

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

    // The pod template and what replaces the Rollout in base.
    let workload_ref = s(rollout, "/spec/workloadRef/name").map(str::to_string);
    let mut deployment = match &workload_ref {
        Some(d) => {
            let Some(found) = find(&all, "Deployment", d) else {
                return Err(refuse(
                    file,
                    format!(
                        "the Rollout's workloadRef names Deployment {d}, which is not in {}",
                        dir.display()
                    ),
                    format!("put Deployment {d} in the Rollout's folder and run init again"),
                ));
            };
            let mut dep = found.clone();
            crate::objects::strip_server_fields(&mut dep);
            dep
        }
        None => {
            let mut meta = Map::new();
            for k in ["name", "namespace", "labels", "annotations"] {
                if let Some(v) = rollout.pointer(&format!("/metadata/{k}")) {
                    meta.insert(k.into(), v.clone());
                }
            }
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {}})
        }
    };
    if let Some(spec) = deployment.get_mut("spec").and_then(Value::as_object_mut) {
        for k in [
            "replicas",
            "selector",
            "template",
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "paused",
        ] {
            if workload_ref.is_some() && ["selector", "template"].contains(&k) {
                continue;
            }
            if let Some(v) = rollout.pointer(&format!("/spec/{k}")) {
                spec.insert(k.into(), v.clone());
            }
        }
        let mut rolling = Map::new();
        for k in ["maxSurge", "maxUnavailable"] {
            if let Some(v) = canary.get(k) {
                rolling.insert(k.into(), v.clone());
            }
        }
        if !rolling.is_empty() {
            spec.insert(
                "strategy".into(),
                json!({"type": "RollingUpdate", "rollingUpdate": rolling}),
            );
            ledger.note("maxSurge/maxUnavailable: the Deployment's rolling update (how the canary's pods are replaced when its image changes)");
        }
    }
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let workload = s(&deployment, "/metadata/name")
        .unwrap_or(&name)
        .to_string();
    let Some(image) = s(&template, "/spec/containers/0/image").map(str::to_string) else {
        return Err(refuse(
            file,
            format!("Rollout {name} has no pod template with a container image"),
            "a plan pins the stable image: give the Rollout (or its workloadRef Deployment) its pod template and run init again",
        ));
    };
    let pod_labels = template.pointer("/metadata/labels").cloned();
    let namespace = s(rollout, "/metadata/namespace").map(str::to_string);

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
                let Some(vs) = find(&all, "VirtualService", vname) else {
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
                    .pointer("/spec/http")
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
                                vs.pointer(&format!("/spec/{k}"))
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
                    crate::objects::strip_server_fields(&mut changed);
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
                && let Some(dr) = find(&all, "DestinationRule", dr_name)
            {
                let ours = [
                    s(&istio, "/destinationRule/stableSubsetName"),
                    s(&istio, "/destinationRule/canarySubsetName"),
                ];
                let mut changed = dr.clone();
                crate::objects::strip_server_fields(&mut changed);
                let mut any = false;
                for sub in changed
                    .pointer_mut("/spec/subsets")
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
                let Some(route) = find(&all, "HTTPRoute", hr) else {
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
                crate::objects::strip_server_fields(&mut changed);
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
                            && selects(o.pointer("/spec/selector"), pod_labels.as_ref())
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
                            pod_labels.as_ref().map(short).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    };
    let Some(service_object) = find(&all, "Service", &service) else {
        return Err(refuse(
            file,
            format!(
                "the Rollout's traffic goes to Service {service}, which is not in {}",
                dir.display()
            ),
            format!(
                "put Service {service} in the Rollout's folder (the plan splits its traffic) and run init again"
            ),
        ));
    };

    // Steps and analysis.
    let step_list: Vec<Value> = canary
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let converted = steps::convert(&step_list, router, &mut ledger);
    if converted.matches.is_some() || converted.mirror.is_some() {
        ledger.carry("/spec/strategy/canary/trafficRouting/managedRoutes");
    }
    if canary.get("analysis").is_some() {
        ledger.carry("/spec/strategy/canary/analysis");
    }
    let names = analysis::Names {
        service: &service,
        namespace: namespace.as_deref(),
        workload: &workload,
        rollout,
    };
    let index = &converted.export_index;
    let starting_step = |argo: usize| index.iter().skip(argo).find_map(|i| *i);
    let plan_analysis = analysis::convert(
        canary.get("analysis"),
        &converted.analysis_steps,
        starting_step,
        &all,
        &names,
        &mut ledger,
    );
    if canary.get("analysis").is_some() && plan_analysis.is_none() {
        ledger.drop("the analysis: none of its metrics could be carried over (see above)");
    }
    let mut plan_steps: Vec<Value> = converted
        .steps
        .iter()
        .map(|st| match &st.pause {
            Some(p) => json!({"weight": st.weight, "pause": p}),
            None => json!(st.weight),
        })
        .collect();
    if converted.steps.last().is_none_or(|st| st.weight != 100) {
        plan_steps.push(json!(100));
    }

    // Every other field of the Rollout is named.
    ledger.account(rollout, "");

    // The plan, as data.
    let selector_key = {
        let sel = deployment
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object);
        let svc_sel = service_object
            .pointer("/spec/selector")
            .and_then(Value::as_object);
        let keys: Vec<&String> = sel.map(|m| m.keys().collect()).unwrap_or_default();
        keys.iter()
            .find(|k| k.as_str() == "app" && svc_sel.is_some_and(|s| s.contains_key(k.as_str())))
            .or_else(|| {
                keys.iter()
                    .find(|k| svc_sel.is_some_and(|s| s.contains_key(k.as_str())))
            })
            .or_else(|| keys.first())
            .map(|k| k.to_string())
    };
    let Some(key) = selector_key else {
        return Err(refuse(
            file,
            format!("Rollout {name} has no selector matchLabels"),
            "give it `selector.matchLabels` (a Deployment needs them) and run init again",
        ));
    };
    let key_value = s(
        &deployment,
        &format!(
            "/spec/selector/matchLabels/{}",
            key.replace('~', "~0").replace('/', "~1")
        ),
    )
    .unwrap_or(&name)
    .to_string();
    let folder = relative(plan_dir, dir).unwrap_or_else(|| dir.display().to_string());
    let mut spec = Map::new();
    if router == Router::GatewayApi {
        spec.insert("traffic".into(), json!("gateway-api"));
        spec.insert("httpRoutes".into(), json!(http_routes));
    }
    spec.insert(
        "base".into(),
        json!(if folder.is_empty() {
            ".".to_string()
        } else {
            folder
        }),
    );
    spec.insert("service".into(), json!(service));
    spec.insert("workload".into(), json!(workload));
    match vs_list.as_slice() {
        [] => {}
        [(vs, _)] => {
            spec.insert("virtualService".into(), json!(vs));
        }
        many => {
            spec.insert(
                "virtualServices".into(),
                json!(many.iter().map(|(v, _)| v).collect::<Vec<_>>()),
            );
        }
    }
    let routes: Vec<&String> = vs_list.iter().flat_map(|(_, r)| r).collect();
    if !routes.is_empty() {
        spec.insert("routes".into(), json!(routes));
    }
    let mut stable = json!({"version": "v1", "image": image, "labels": {key.clone(): format!("{key_value}-v1")}});
    let mut canary_version = json!({"version": "v2"});
    if router == Router::Istio {
        if let (Some(sub), Some(o)) = (
            s(&istio, "/destinationRule/stableSubsetName"),
            stable.as_object_mut(),
        ) {
            o.insert("subset".into(), json!(sub));
        }
        if let (Some(sub), Some(o)) = (
            s(&istio, "/destinationRule/canarySubsetName"),
            canary_version.as_object_mut(),
        ) {
            o.insert("subset".into(), json!(sub));
        }
    }
    spec.insert("stable".into(), stable);
    spec.insert("canary".into(), canary_version);
    if router != Router::GatewayApi {
        spec.insert("podLabels".into(), json!({"applicationName": name}));
        spec.insert(
            "selector".into(),
            json!({"remove": [key], "add": {"applicationName": name}}),
        );
    }
    if let Some(m) = &converted.matches {
        spec.insert("match".into(), json!([m]));
    }
    if let Some(m) = converted.mirror {
        spec.insert("mirror".into(), json!(m));
    }
    spec.insert("steps".into(), Value::Array(plan_steps));
    if let Some(a) = plan_analysis {
        spec.insert("analysis".into(), a);
    }
    spec.insert(
        "environments".into(),
        json!({"production": {"stage": "prepare"}}),
    );
    let plan = json!({
        "apiVersion": crate::plan::API_VERSION,
        "kind": crate::plan::KIND,
        "metadata": {"name": name},
        "spec": spec,
    });

    // The base changes, headed by what each replaces.
    let file_shown = one_line(&file.display().to_string());
    let mut base_changes = match &workload_ref {
        Some(d) => format!(
            "# Delete the Rollout {} in {file_shown}; its workloadRef, Deployment {}, takes over with the Rollout's replicas:\n",
            one_line(&name),
            one_line(d)
        ),
        None => format!(
            "# Replace the Rollout {} in {file_shown} with this Deployment (same name, selector and pod template; no Argo strategy):\n",
            one_line(&name)
        ),
    };
    base_changes.push_str(&yaml::to_yaml(&deployment));
    for (about, object) in &changed_objects {
        base_changes.push_str(&format!("---\n# In place of {}:\n", one_line(about)));
        base_changes.push_str(&yaml::to_yaml(object));
    }

    let mut header = format!(
        "# A canary plan from the Argo Rollouts Rollout {} ({}).\n# Review every value: stable.image is the image the Rollout runs today (pin it by digest).\n# Commit the objects `init` printed in place of the ones they replace, then run\n# `canaryplan validate`.\n",
        one_line(&name),
        one_line(
            &file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    );
    for d in &ledger.dropped {
        header.push_str(&format!("# Not carried over: {}\n", one_line(d)));
    }
    for n in &ledger.notes {
        header.push_str(&format!("# Note: {}\n", one_line(n)));
    }
    let text = format!("{header}{}", yaml::to_yaml(&plan));

    let replaced = verify::Replacements {
        rollout: name.clone(),
        deployment: deployment.clone(),
        workload_ref: workload_ref.is_some(),
        changed: changed_objects.iter().map(|(_, o)| o.clone()).collect(),
    };
    verify::plan_validates(&text, &plan, plan_path, &root, dir, file, &replaced)?;
    if strict && !ledger.dropped.is_empty() {
        let mut e: Vec<Diagnostic> = ledger
            .dropped
            .iter()
            .map(|d| Diagnostic::new(format!("not carried over: {d}")).in_file(file))
            .collect();
        e.push(Diagnostic::new(format!("--strict: the plan cannot carry over all of Rollout {name}; nothing was written")).in_file(file).hint("change the Rollout so that each setting above has a counterpart, or run without --strict and review the notes"));
        return Err(e.into());
    }
    Ok(Migration {
        plan: text,
        base_changes,
        dropped: ledger.dropped,
        notes: ledger.notes,
    })
}
