//! The traffic evaluator: where requests go, read from the FINAL manifests only (what Argo CD
//! applies), never from the plan. It resolves VirtualService routes → hosts → Services →
//! DestinationRule subsets → the pod templates of workloads, and reports every destination that
//! would answer 503 or reach pods it should not. Because it knows nothing of the renderer, it is
//! the independent check that `validate`, `render` and the tests use to prove the output right.

use crate::pointer::Pointer as _;
use serde_json::Value;

use crate::plan_file::Labels;
use crate::selector;

/// Kinds whose pod template receives traffic through a Service.
pub const WORKLOAD_KINDS: [&str; 5] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Rollout",
];
/// VirtualService route kinds with weighted destinations.
pub const ROUTE_KINDS: [&str; 3] = ["http", "tcp", "tls"];

/// A workload whose pods can receive traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// A Service in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub name: String,
    pub namespace: Option<String>,
    /// `None`: the Service has no selector (its endpoints are managed elsewhere).
    pub selector: Option<Labels>,
    /// Its `spec.ports[].port`, in order.
    pub ports: Vec<u32>,
}

/// One destination of a route, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    /// Percent of the route's requests (0..=100); for a mirror, the mirrored percent.
    pub percent: f64,
    /// The Service port it names (`destination.port.number`, a backendRef's `port`).
    pub port: Option<u32>,
    /// The Service the host names, when it is one in the stream.
    pub service: Option<ServiceRef>,
    /// The subset's labels, when the subset is defined.
    pub subset_labels: Option<Labels>,
    /// Workloads whose pods receive these requests.
    pub endpoints: Vec<Workload>,
    /// Request headers the route sets on its way there (`headers.request.set`).
    pub sets: Vec<(String, String)>,
}

/// One route of a VirtualService, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `VirtualService` or `HTTPRoute` (Gateway API).
    pub object: &'static str,
    /// The routing object's name.
    pub virtual_service: String,
    pub namespace: Option<String>,
    pub hosts: Vec<String>,
    /// Gateways the VirtualService is bound to; empty = the mesh sidecars only.
    pub gateways: Vec<String>,
    pub kind: &'static str,
    pub index: usize,
    pub name: Option<String>,
    /// The route's `match` conditions as written (empty: every request).
    pub matches: Vec<Value>,
    pub destinations: Vec<Destination>,
    pub mirrors: Vec<Destination>,
    /// The route delegates to another VirtualService.
    pub delegate: Option<String>,
    /// For a delegate's route: the root route whose hosts, gateways and conditions it serves
    /// under (`VirtualService bookinfo, http[1]`).
    pub delegated_from: Option<String>,
}

impl Route {
    /// `VirtualService reviews, http[0] ("primary")`: where the route is in the output.
    pub fn position(&self) -> String {
        let name = self
            .name
            .as_ref()
            .map(|n| format!(" (\"{n}\")"))
            .unwrap_or_default();
        format!(
            "{} {}, {}[{}]{name}",
            self.object, self.virtual_service, self.kind, self.index
        )
    }

    /// Whether Gateway API rules: the most specific match wins, whatever the order.
    pub fn by_specificity(&self) -> bool {
        self.object == "HTTPRoute"
    }

    /// The protocol: `http`, `tcp` or `tls` (an HTTPRoute rule is http).
    pub fn protocol(&self) -> &'static str {
        if self.by_specificity() {
            "http"
        } else {
            self.kind
        }
    }

    /// Whether mesh callers (sidecars) use this route, not only gateways.
    pub fn applies_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == "mesh")
    }
}

/// What would go wrong with a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The subset is not defined by any DestinationRule for the host: 503.
    MissingSubset,
    /// Nothing the Service and subset select has pods: 503.
    NoEndpoints,
    /// A subset that should name one version selects pods of several workloads.
    SeveralWorkloads(Vec<Workload>),
}

/// A destination that would misbehave, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The route, as `Route::position` gives it, and which destination.
    pub at: String,
    pub host: String,
    pub subset: Option<String>,
    pub kind: ProblemKind,
    /// What selects the pods: the Service selector and the subset's labels.
    pub selects: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.subset {
            Some(s) => format!("subset `{s}` of {}", self.host),
            None => self.host.clone(),
        };
        match &self.kind {
            ProblemKind::MissingSubset => write!(
                f,
                "{}: {target} is not defined by any DestinationRule for the host; its requests would be answered 503",
                self.at
            ),
            ProblemKind::NoEndpoints => write!(
                f,
                "{}: {target} selects no pods of any workload ({}); its requests would be answered 503",
                self.at, self.selects
            ),
            ProblemKind::SeveralWorkloads(w) => write!(
                f,
                "{}: {target} selects the pods of {} workloads ({}), not one version",
                self.at,
                w.len(),
                w.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The mesh as the final manifests describe it, with the lookups every route needs built once.
pub struct Mesh<'a> {
    objects: Vec<&'a Value>,
    workloads: Vec<(Workload, Labels)>,
    services: Vec<ServiceRef>,
    /// Every route, resolved on first use (several checks read them).
    routes: std::cell::OnceCell<Vec<Route>>,
}

fn s<'v>(v: &'v Value, p: &str) -> Option<&'v str> {
    v.at(p).and_then(Value::as_str)
}

/// A root VirtualService's route that delegates.
struct Root {
    delegate: String,
    delegate_ns: Option<String>,
    hosts: Vec<String>,
    gateways: Vec<String>,
    matches: Vec<Value>,
    position: String,
}

/// The strings of the array at `p`.
fn strings(v: &Value, p: &str) -> Vec<String> {
    v.at(p)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// An HTTPRoute's hostnames and parents: a Gateway (`ns/name` when the namespace is written),
/// or for GAMMA a Service, whose callers are the mesh and whose name is a host.
fn parents(hr: &Value, ns: &Option<String>) -> (Vec<String>, Vec<String>) {
    let mut hosts: Vec<String> = hr
        .at("/spec/hostnames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let mut gateways = Vec::new();
    for p in hr
        .at("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parent = s(p, "/name").unwrap_or_default();
        let parent_ns = s(p, "/namespace")
            .map(str::to_string)
            .or_else(|| ns.clone());
        if s(p, "/kind") == Some("Service") {
            // GAMMA: the route serves mesh callers of that Service.
            gateways.push("mesh".to_string());
            hosts.push(match &parent_ns {
                Some(n) => format!("{parent}.{n}.svc.cluster.local"),
                None => parent.to_string(),
            });
        } else {
            gateways.push(match (s(p, "/namespace"), &ns) {
                (Some(n), _) => format!("{n}/{parent}"),
                _ => parent.to_string(),
            });
        }
    }
    (hosts, gateways)
}

/// A delegate route's conditions under its root's, as Istio merges them: each pair of match
/// entries, the root's fields taken where the delegate's does not set them.
fn merge_matches(root: &[Value], own: &[Value]) -> Vec<Value> {
    if root.is_empty() {
        return own.to_vec();
    }
    if own.is_empty() {
        return root.to_vec();
    }
    let mut out = Vec::new();
    for r in root {
        for o in own {
            let mut merged = r.as_object().cloned().unwrap_or_default();
            for (k, v) in o.as_object().into_iter().flatten() {
                // Maps (headers, queryParams, sourceLabels) are joined, key by key.
                match (merged.get_mut(k), v.as_object()) {
                    (Some(Value::Object(mine)), Some(theirs)) => {
                        for (hk, hv) in theirs {
                            mine.insert(hk.clone(), hv.clone());
                        }
                    }
                    _ => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            out.push(Value::Object(merged));
        }
    }
    out
}

fn namespace(v: &Value) -> Option<String> {
    s(v, "/metadata/namespace").map(str::to_string)
}

impl<'a> Mesh<'a> {
    pub fn new(objects: &'a [Value]) -> Mesh<'a> {
        Self::of(objects.iter())
    }

    /// The mesh of objects held elsewhere (a base's objects, without copying them).
    pub fn of(objects: impl IntoIterator<Item = &'a Value>) -> Mesh<'a> {
        let objects: Vec<&'a Value> = objects.into_iter().collect();
        let workloads = workloads_of(objects.iter().copied());
        let services = objects
            .iter()
            .filter(|o| s(o, "/kind") == Some("Service"))
            .filter_map(|svc| {
                Some(ServiceRef {
                    name: s(svc, "/metadata/name")?.to_string(),
                    namespace: namespace(svc),
                    selector: svc
                        .at("/spec/selector")
                        .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
                        .map(|v| selector::labels_of(Some(v))),
                    ports: svc
                        .at("/spec/ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.get("port")?.as_u64())
                        .filter_map(|p| u32::try_from(p).ok())
                        .collect(),
                })
            })
            .collect();
        Mesh {
            objects,
            workloads,
            services,
            routes: std::cell::OnceCell::new(),
        }
    }

    fn of_kind<'m>(&'m self, kind: &'m str) -> impl Iterator<Item = &'a Value> + 'm {
        self.objects
            .iter()
            .copied()
            .filter(move |o| s(o, "/kind") == Some(kind))
    }

    /// The Service a route host names, seen from a VirtualService in `from_ns`.
    pub fn service_for_host(&self, host: &str, from_ns: Option<&str>) -> Option<ServiceRef> {
        self.services
            .iter()
            .find(|svc| host_names(host, &svc.name, svc.namespace.as_deref(), from_ns))
            .cloned()
    }

    /// Every workload (pod template) with its pod labels.
    pub fn workloads(&self) -> Vec<(Workload, Labels)> {
        self.workloads.clone()
    }

    /// Workloads whose pods a Service (and a subset's labels) select.
    pub fn endpoints(&self, service: &ServiceRef, subset: Option<&Labels>) -> Vec<Workload> {
        let Some(sel) = &service.selector else {
            return Vec::new();
        };
        let mut out: Vec<Workload> = self
            .workloads
            .iter()
            .filter(|(w, labels)| {
                same_namespace(w.namespace.as_deref(), service.namespace.as_deref())
                    && selector::map_matches(sel, labels)
                    && subset.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
            })
            .map(|(w, _)| w.clone())
            .collect();
        out.sort();
        out
    }

    /// The subsets every DestinationRule for `service` defines, by name.
    pub fn subsets(&self, service: &ServiceRef) -> Vec<(String, Labels)> {
        self.of_kind("DestinationRule")
            .filter(|dr| {
                s(dr, "/spec/host").is_some_and(|h| {
                    host_names(
                        h,
                        &service.name,
                        service.namespace.as_deref(),
                        s(dr, "/metadata/namespace"),
                    )
                })
            })
            .flat_map(|dr| {
                dr.at("/spec/subsets")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|sub| {
                        Some((
                            sub.get("name")?.as_str()?.to_string(),
                            selector::labels_of(sub.get("labels")),
                        ))
                    })
            })
            .collect()
    }

    fn destination(&self, d: &Value, percent: f64, from_ns: Option<&str>) -> Destination {
        let host = s(d, "/host").unwrap_or_default().to_string();
        let subset = s(d, "/subset").map(str::to_string);
        let service = self.service_for_host(&host, from_ns);
        let subset_labels = match (&service, &subset) {
            (Some(svc), Some(name)) => self
                .subsets(svc)
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, l)| l),
            _ => None,
        };
        let endpoints = match &service {
            Some(svc) if subset.is_none() || subset_labels.is_some() => {
                self.endpoints(svc, subset_labels.as_ref())
            }
            _ => Vec::new(),
        };
        let port = d
            .at("/port/number")
            .or_else(|| d.get("port").filter(|p| p.is_u64()))
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok());
        Destination {
            host,
            subset,
            percent,
            port,
            service,
            subset_labels,
            endpoints,
            sets: Vec::new(),
        }
    }

    /// Every route of every VirtualService, in the order of the stream and of the routes.
    pub fn routes(&self) -> &[Route] {
        self.routes.get_or_init(|| self.resolve_routes())
    }

    /// Every VirtualService route (a delegate's under its root's hosts, gateways and
    /// conditions), then every HTTPRoute rule.
    fn resolve_routes(&self) -> Vec<Route> {
        let roots = self.delegating_roots();
        let mut out = Vec::new();
        for vs in self.of_kind("VirtualService") {
            let ns = namespace(vs);
            let vs_name = s(vs, "/metadata/name").unwrap_or_default();
            let mut hosts = strings(vs, "/spec/hosts");
            let mut gateways = strings(vs, "/spec/gateways");
            let mut root_matches: Vec<Value> = Vec::new();
            let mut delegated_from = None;
            if hosts.is_empty()
                && let Some(root) = roots
                    .iter()
                    .find(|r| r.delegate == vs_name && r.delegate_ns == ns)
            {
                hosts = root.hosts.clone();
                gateways = root.gateways.clone();
                root_matches = root.matches.clone();
                delegated_from = Some(root.position.clone());
            }
            for kind in ROUTE_KINDS {
                let routes = vs.at(&format!("/spec/{kind}")).and_then(Value::as_array);
                for (index, r) in routes.into_iter().flatten().enumerate() {
                    let destinations = self.weighted_destinations(r, ns.as_deref());
                    let mirrors = self.mirrors(r, ns.as_deref());
                    out.push(Route {
                        object: "VirtualService",
                        virtual_service: vs_name.to_string(),
                        namespace: ns.clone(),
                        hosts: hosts.clone(),
                        gateways: gateways.clone(),
                        kind,
                        index,
                        name: r.get("name").and_then(Value::as_str).map(str::to_string),
                        matches: merge_matches(
                            &root_matches,
                            &r.get("match")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default(),
                        ),
                        destinations,
                        mirrors,
                        delegate: s(r, "/delegate/name").map(str::to_string),
                        delegated_from: delegated_from.clone(),
                    });
                }
            }
        }
        out.extend(self.http_routes());
        out
    }

    /// Root routes that delegate: a delegate (a VirtualService without hosts) serves its
    /// root's hosts and gateways, under the root route's conditions merged with its own.
    fn delegating_roots(&self) -> Vec<Root> {
        let mut roots: Vec<Root> = Vec::new();
        for vs in self.of_kind("VirtualService") {
            let ns = namespace(vs);
            for (index, r) in vs
                .at("/spec/http")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(name) = s(r, "/delegate/name") {
                    roots.push(Root {
                        delegate: name.to_string(),
                        delegate_ns: s(r, "/delegate/namespace")
                            .map(str::to_string)
                            .or_else(|| ns.clone()),
                        hosts: strings(vs, "/spec/hosts"),
                        gateways: strings(vs, "/spec/gateways"),
                        matches: r
                            .get("match")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                        position: format!(
                            "VirtualService {}, http[{index}]",
                            s(vs, "/metadata/name").unwrap_or_default()
                        ),
                    });
                }
            }
        }
        roots
    }

    /// A VirtualService route's destinations: each with its weight (a lone destination
    /// without one takes 100) and the request headers it sets.
    fn weighted_destinations(&self, r: &Value, ns: Option<&str>) -> Vec<Destination> {
        let dests: Vec<&Value> = r
            .get("route")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let single = dests.len() == 1;
        dests
            .iter()
            .filter_map(|d| {
                let w = match d.get("weight").and_then(Value::as_f64) {
                    Some(w) => w,
                    None if single => 100.0,
                    None => 0.0,
                };
                d.get("destination").map(|dest| {
                    let mut out = self.destination(dest, w, ns);
                    out.sets = d
                        .at("/headers/request/set")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect();
                    out
                })
            })
            .collect()
    }

    /// A VirtualService route's mirrors (`mirror` with `mirrorPercentage`, and `mirrors`).
    fn mirrors(&self, r: &Value, ns: Option<&str>) -> Vec<Destination> {
        let mirror_percent = r
            .at("/mirrorPercentage/value")
            .and_then(Value::as_f64)
            .unwrap_or(100.0);
        let mut mirrors: Vec<Destination> = r
            .get("mirror")
            .map(|m| self.destination(m, mirror_percent, ns))
            .into_iter()
            .collect();
        for m in r
            .get("mirrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let p = m
                .at("/percentage/value")
                .and_then(Value::as_f64)
                .unwrap_or(100.0);
            if let Some(dest) = m.get("destination") {
                mirrors.push(self.destination(dest, p, ns));
            }
        }
        mirrors
    }

    /// Gateway API HTTPRoutes, a route per rule: its parents (Gateways, or for GAMMA a Service:
    /// the mesh), hostnames, matches, and its backendRefs weighted relative to each other.
    fn http_routes(&self) -> Vec<Route> {
        let mut out = Vec::new();
        for hr in self.of_kind("HTTPRoute") {
            let ns = namespace(hr);
            let name = s(hr, "/metadata/name").unwrap_or_default();
            let (hosts, gateways) = parents(hr, &ns);
            if gateways.is_empty() {
                // A route with no parent is attached to nothing: no request reaches it.
                continue;
            }
            for (index, rule) in hr
                .at("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let (destinations, mirrors) = self.backends(rule, &ns);
                out.push(Route {
                    object: "HTTPRoute",
                    virtual_service: name.to_string(),
                    namespace: ns.clone(),
                    hosts: hosts.clone(),
                    gateways: gateways.clone(),
                    kind: "rules",
                    index,
                    name: rule.get("name").and_then(Value::as_str).map(str::to_string),
                    matches: rule
                        .get("matches")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    destinations,
                    mirrors,
                    delegate: None,
                    delegated_from: None,
                });
            }
        }
        out
    }

    /// A backendRef as a destination with `percent` of the rule's requests (a kind other than
    /// Service named with its kind, so no Service matches it).
    fn backend(&self, b: &Value, percent: f64, ns: &Option<String>) -> Destination {
        let kind_ok = s(b, "/kind").is_none_or(|k| k == "Service")
            && s(b, "/group").is_none_or(str::is_empty);
        let target = s(b, "/name").unwrap_or_default();
        let b_ns = s(b, "/namespace")
            .map(str::to_string)
            .or_else(|| ns.clone());
        let host = if kind_ok {
            target.to_string()
        } else {
            format!("{} {target}", s(b, "/kind").unwrap_or_default())
        };
        let mut d = serde_json::json!({ "host": host });
        if let (Some(p), Some(o)) = (b.get("port"), d.as_object_mut()) {
            o.insert("port".into(), p.clone());
        }
        self.destination(&d, percent, b_ns.as_deref())
    }

    /// A rule's backendRefs, weighted relative to each other, and its mirrors.
    fn backends(&self, rule: &Value, ns: &Option<String>) -> (Vec<Destination>, Vec<Destination>) {
        let refs: Vec<&Value> = rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let weight = |b: &Value| b.get("weight").and_then(Value::as_f64).unwrap_or(1.0);
        let total: f64 = refs.iter().map(|b| weight(b)).sum();
        let destinations: Vec<Destination> = refs
            .iter()
            .map(|b| {
                let p = if total > 0.0 {
                    weight(b) * 100.0 / total
                } else {
                    0.0
                };
                self.backend(b, p, ns)
            })
            .collect();
        // Mirrors of the rule copy all its requests; a backendRef's mirror only the
        // requests sent to that backend (its share of the rule).
        let share = |b: &Value| {
            if total > 0.0 { weight(b) / total } else { 0.0 }
        };
        let rule_filters = rule
            .get("filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| (f, 1.0));
        let backend_filters = refs.iter().flat_map(|b| {
            b.get("filters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |f| (f, share(b)))
        });
        let mirrors: Vec<Destination> = rule_filters
            .chain(backend_filters)
            .filter(|(f, _)| s(f, "/type") == Some("RequestMirror"))
            .filter_map(|(f, of)| {
                let m = f.get("requestMirror")?;
                let percent = m
                    .get("percent")
                    .and_then(Value::as_f64)
                    .or_else(|| {
                        let n = m.at("/fraction/numerator")?.as_f64()?;
                        let d = m
                            .at("/fraction/denominator")
                            .and_then(Value::as_f64)
                            .unwrap_or(100.0);
                        (d > 0.0).then(|| n * 100.0 / d)
                    })
                    .unwrap_or(100.0);
                // Rounded to a millionth of a percent: 5% of 81% is 4.05%, not
                // 4.050000000000001%.
                let percent = (percent * of * 1e6).round() / 1e6;
                Some(self.backend(m.get("backendRef")?, percent, ns))
            })
            .collect();
        (destinations, mirrors)
    }

    /// Whether sidecar (mesh) callers of `service` go through a VirtualService: one bound to
    /// the mesh with a host naming the Service. Without one they reach every pod the Service
    /// selects, by pod count, whatever the routes of gateway-bound VirtualServices say.
    pub fn mesh_routed(&self, service: &ServiceRef) -> bool {
        self.routes().iter().any(|r| {
            r.applies_to_mesh()
                && r.hosts.iter().any(|h| {
                    host_names(
                        h,
                        &service.name,
                        service.namespace.as_deref(),
                        r.namespace.as_deref(),
                    )
                })
        })
    }

    /// Every destination that would answer 503 or reach more than one workload through a
    /// subset, over every route and mirror of every VirtualService.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for r in self.routes() {
            let all = r
                .destinations
                .iter()
                .enumerate()
                .map(|(i, d)| (format!("{}, destination {}", r.position(), i + 1), d))
                .chain(
                    r.mirrors
                        .iter()
                        .map(|d| (format!("{}, mirror", r.position()), d)),
                );
            for (at, d) in all {
                if let Some(kind) = problem_of(d) {
                    let show = |l: &Labels| {
                        l.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    let mut selects = Vec::new();
                    if let Some(sel) = d.service.as_ref().and_then(|s| s.selector.as_ref()) {
                        selects.push(format!("Service selector {}", show(sel)));
                    }
                    if let Some(l) = &d.subset_labels {
                        selects.push(format!("subset labels {}", show(l)));
                    }
                    out.push(Problem {
                        at,
                        host: d.host.clone(),
                        subset: d.subset.clone(),
                        kind,
                        selects: selects.join(", "),
                    });
                }
            }
        }
        out
    }
}

fn problem_of(d: &Destination) -> Option<ProblemKind> {
    // A host that is not a Service of the stream is outside what we can see.
    let service = d.service.as_ref()?;
    if d.subset.is_some() && d.subset_labels.is_none() {
        return Some(ProblemKind::MissingSubset);
    }
    // Without a selector the Service's endpoints are managed elsewhere.
    service.selector.as_ref()?;
    if d.endpoints.is_empty() {
        return Some(ProblemKind::NoEndpoints);
    }
    if d.subset.is_some() && d.endpoints.len() > 1 {
        return Some(ProblemKind::SeveralWorkloads(d.endpoints.clone()));
    }
    None
}

/// Objects without a namespace all share the one the manifests are applied to.
fn same_namespace(a: Option<&str>, b: Option<&str>) -> bool {
    a == b || a.is_none() || b.is_none()
}

/// Whether `host`, written in namespace `from_ns`, names Service `name` in `ns`.
pub fn host_names(host: &str, name: &str, ns: Option<&str>, from_ns: Option<&str>) -> bool {
    let Some(rest) = host.strip_prefix(name) else {
        return false;
    };
    if rest.is_empty() {
        return same_namespace(ns, from_ns);
    }
    match ns {
        Some(ns) => [
            format!(".{ns}"),
            format!(".{ns}.svc"),
            format!(".{ns}.svc.cluster.local"),
        ]
        .iter()
        .any(|f| f == rest),
        // Without a namespace in the manifests, any namespace-qualified form may be it.
        None => {
            let parts: Vec<&str> = rest.trim_start_matches('.').split('.').collect();
            rest.starts_with('.')
                && (parts.len() == 1
                    || parts.get(1..) == Some(&["svc"])
                    || parts.get(1..) == Some(&["svc", "cluster", "local"]))
        }
    }
}

/// Every workload (pod template) among `objects`, with its pod labels: what `Mesh::workloads`
/// gives, without building a mesh (the checks across plans keep only this of each render).
pub fn workloads_of<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Vec<(Workload, Labels)> {
    objects
        .into_iter()
        .filter(|o| s(o, "/kind").is_some_and(|k| WORKLOAD_KINDS.contains(&k)))
        .filter_map(|o| {
            Some((
                Workload {
                    kind: s(o, "/kind")?.to_string(),
                    name: s(o, "/metadata/name")?.to_string(),
                    namespace: namespace(o),
                },
                selector::labels_of(o.at("/spec/template/metadata/labels")),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn deployment(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ns"},
               "spec": {"selector": {"matchLabels": labels.clone()}, "template": {"metadata": {"labels": labels}}}})
    }

    fn bookinfo() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "ns"}, "spec": {"selector": {"app": "reviews"}}}),
            deployment("reviews-v1", json!({"app": "reviews", "version": "v1"})),
            deployment("reviews-v2", json!({"app": "reviews", "version": "v2"})),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "ns"},
                   "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "ns"},
                   "spec": {"hosts": ["reviews"], "http": [{"route": [
                       {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                       {"destination": {"host": "reviews.ns.svc.cluster.local", "subset": "v2"}, "weight": 10}]}]}}),
        ]
    }

    #[test]
    fn routes_resolve_to_the_pods_of_one_workload_each() {
        let objects = bookinfo();
        let mesh = Mesh::new(&objects);
        let routes = mesh.routes();
        assert_eq!(routes.len(), 1);
        let d = &routes[0].destinations;
        assert_eq!(d[0].endpoints[0].name, "reviews-v1");
        assert_eq!(d[0].percent, 90.0);
        assert_eq!(d[1].endpoints[0].name, "reviews-v2");
        assert!(mesh.problems().is_empty(), "{:?}", mesh.problems());
    }

    #[test]
    fn a_removed_subset_is_a_503() {
        let mut objects = bookinfo();
        objects[3]["spec"]["subsets"]
            .as_array_mut()
            .unwrap()
            .remove(1);
        let p = Mesh::new(&objects).problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, ProblemKind::MissingSubset);
        assert!(
            p[0].to_string().starts_with(
                "VirtualService reviews, http[0], destination 2: subset `v2` of reviews.ns.svc.cluster.local is not defined"
            ),
            "{}",
            p[0]
        );
    }

    #[test]
    fn a_subset_without_pods_is_a_503() {
        let mut objects = bookinfo();
        objects.remove(2);
        let p = Mesh::new(&objects).problems();
        assert_eq!(p[0].kind, ProblemKind::NoEndpoints);
    }

    #[test]
    fn a_subset_over_two_workloads_is_flagged() {
        let mut objects = bookinfo();
        objects.push(deployment(
            "ratings-v1",
            json!({"app": "reviews", "version": "v1", "tier": "x"}),
        ));
        let p = Mesh::new(&objects).problems();
        assert!(
            matches!(&p[0].kind, ProblemKind::SeveralWorkloads(w) if w.len() == 2),
            "{p:?}"
        );
    }

    #[test]
    fn services_in_other_namespaces_are_not_confused() {
        assert!(host_names("reviews", "reviews", Some("a"), Some("a")));
        assert!(!host_names("reviews", "reviews", Some("a"), Some("b")));
        assert!(host_names(
            "reviews.a.svc.cluster.local",
            "reviews",
            Some("a"),
            Some("b")
        ));
        assert!(!host_names("reviews.b", "reviews", Some("a"), None));
        assert!(!host_names("reviewsx", "reviews", None, None));
    }
}
