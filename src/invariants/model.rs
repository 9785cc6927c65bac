//! The traffic model of one final stream: every request class the routes distinguish and the
//! workloads (with shares) it reaches, the workloads each Service selects, and each workload's
//! images and injecting control-plane revision. Built by the evaluator `explain` uses
//! (`traffic::Mesh`, `explain::table`), never from the plan; small and sorted, because it is
//! also the record committed in each overlay.

use crate::pointer::Pointer as _;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::explain;
use crate::selector;
use crate::traffic::{Destination, Mesh, Route, ServiceRef, Workload as MeshWorkload};

/// Shares are rounded to this many decimals, so that output is stable byte for byte.
pub const DECIMALS: i32 = 2;
/// Two shares closer than this are the same (half the last decimal kept).
pub const TOLERANCE: f64 = 0.005;

/// `entry` of a class reached by sidecars (mesh routes, GAMMA routes).
pub const MESH: &str = "mesh";
/// `entry` of a class whose callers reach a Service's pods without any route: by pod count.
pub const DIRECT: &str = "direct";

/// A share, rounded to `DECIMALS`.
pub fn round(p: f64) -> f64 {
    let f = 10f64.powi(DECIMALS);
    (p * f).round() / f
}

/// The traffic model of one environment's final stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    /// Every request class, sorted by `Class::key`.
    #[serde(default)]
    pub classes: Vec<Class>,
    /// Service (`ns/name`, or `name` without a namespace) → the workloads it selects.
    #[serde(default)]
    pub services: BTreeMap<String, Vec<String>>,
    /// Workload (`ns/name`) → its images and injecting revision.
    #[serde(default)]
    pub workloads: BTreeMap<String, WorkloadFacts>,
}

/// One request class: what the routes distinguish, and where its requests go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Class {
    /// `mesh`, the gateway (`ns/name`) the route is bound to, or `direct`.
    pub entry: String,
    /// What callers address: the route's hosts (joined by `,`), or the Service for `direct`.
    pub host: String,
    /// The Service port the requests are delivered to (absent: every port, or not stated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// `http`, `tcp`, `tls`, or `any` for `direct`.
    pub protocol: String,
    /// The route's own conditions in words (`every request`, `header x-canary=true`).
    pub condition: String,
    /// Conditions of earlier routes that catch some of these requests first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// Workload → percent of this class's requests.
    #[serde(default)]
    pub to: BTreeMap<String, f64>,
    /// Workload → percent of this class's requests mirrored to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mirrors: BTreeMap<String, f64>,
    /// Whether (part of) the split is by pod count: Service load balancing, not a weight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_pods: bool,
}

impl Class {
    /// What identifies the class across streams.
    pub fn key(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{} {}{port} {} {}",
            self.entry, self.host, self.protocol, self.condition
        )
    }

    /// The class in words, for messages: `mesh reviews:9080 (http, header end-user=jason)`.
    pub fn describe(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let via = match self.entry.as_str() {
            MESH => "mesh callers of".to_string(),
            DIRECT => "callers without routing to".to_string(),
            g => format!("gateway {g},"),
        };
        let mut what = format!("{via} {}{port} ({}", self.host, self.protocol);
        if self.entry != DIRECT {
            what.push_str(&format!(", {}", self.condition));
            if !self.except.is_empty() {
                what.push_str(&format!(" except {}", self.except.join("; ")));
            }
        }
        what.push(')');
        what
    }

    /// The share of this class that reaches any of `workloads`.
    pub fn share_of(&self, workloads: &[String]) -> f64 {
        round(
            self.to
                .iter()
                .filter(|(w, _)| workloads.contains(w))
                .map(|(_, p)| p)
                .sum(),
        )
    }

    /// The conjuncts of each alternative of the condition (`a and b, or c` → [[a, b], [c]]);
    /// `every request` has one empty alternative.
    pub fn alternatives(&self) -> Vec<Vec<String>> {
        alternatives(&self.condition)
    }
}

/// The conjuncts of each alternative of a condition in words.
pub fn alternatives(condition: &str) -> Vec<Vec<String>> {
    if condition == "every request" {
        return vec![Vec::new()];
    }
    condition
        .split(", or ")
        .map(|alt| alt.split(" and ").map(str::to_string).collect())
        .collect()
}

/// What runs in a workload's pods.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadFacts {
    /// Container name → image.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// The control-plane revision that injects its pods (absent: not injected, or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Pods it runs (`replicas`, or the minReplicas of an HPA scaling it; 1 when unset).
    pub replicas: u64,
}

fn s<'v>(v: &'v Value, p: &str) -> Option<&'v str> {
    v.at(p).and_then(Value::as_str)
}

fn qualified(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// How the model names a workload: `ns/name`, or `name` without a namespace.
pub fn workload_name(w: &MeshWorkload) -> String {
    qualified(&w.name, w.namespace.as_deref())
}

fn service_name(svc: &ServiceRef) -> String {
    qualified(&svc.name, svc.namespace.as_deref())
}

/// Builds the model of a final stream.
pub fn model(objects: &[Value]) -> Model {
    let mesh = Mesh::new(objects);
    let facts = workload_facts(objects, &mesh);
    let replicas = |w: &MeshWorkload| {
        facts
            .get(&workload_name(w))
            .map_or(1, |f| f.replicas.max(1))
    };
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut add = |c: Class| {
        // Two routes with the same key: the first catches the requests.
        classes.entry(c.key()).or_insert(c);
    };
    let routes = mesh.routes();
    let (rows, _) = explain::table(&mesh, &mesh);
    for (r, row) in routes.iter().zip(&rows) {
        if row.unreachable.is_some() || r.delegate.is_some() {
            continue;
        }
        let condition = if r.matches.is_empty() {
            "every request".to_string()
        } else {
            r.matches
                .iter()
                .map(explain::condition)
                .collect::<Vec<_>>()
                .join(", or ")
        };
        let except: Vec<String> = row
            .after
            .iter()
            .filter_map(|p| routes.iter().find(|e| &e.position() == p))
            .map(|e| {
                e.matches
                    .iter()
                    .map(explain::condition)
                    .collect::<Vec<_>>()
                    .join(", or ")
            })
            .collect();
        let mut to = BTreeMap::new();
        let mut by_pods = false;
        for d in &r.destinations {
            by_pods |= spread(d, d.percent, &mut to, &replicas);
        }
        let mut mirrors = BTreeMap::new();
        for d in &r.mirrors {
            spread(d, d.percent, &mut mirrors, &replicas);
        }
        let port = delivered_port(r);
        for entry in entries(r) {
            add(Class {
                entry,
                host: if r.hosts.is_empty() {
                    "*".to_string()
                } else {
                    r.hosts.join(",")
                },
                port,
                protocol: r.protocol().to_string(),
                condition: condition.clone(),
                except: except.clone(),
                to: to.clone(),
                mirrors: mirrors.clone(),
                by_pods,
            });
        }
    }
    let mut services = BTreeMap::new();
    for svc in services_of(objects, &mesh) {
        let endpoints = mesh.endpoints(&svc, None);
        if svc.selector.is_some() && !mesh.mesh_routed(&svc) {
            let mut to = BTreeMap::new();
            let total: u64 = endpoints.iter().map(&replicas).sum();
            for w in &endpoints {
                let p = 100.0 * replicas(w) as f64 / total.max(1) as f64;
                *to.entry(workload_name(w)).or_insert(0.0) += p;
            }
            for v in to.values_mut() {
                *v = round(*v);
            }
            add(Class {
                entry: DIRECT.to_string(),
                host: service_name(&svc),
                port: None,
                protocol: "any".to_string(),
                condition: "every request".to_string(),
                except: Vec::new(),
                to,
                mirrors: BTreeMap::new(),
                by_pods: endpoints.len() > 1,
            });
        }
        services.insert(
            service_name(&svc),
            endpoints.iter().map(workload_name).collect(),
        );
    }
    Model {
        classes: classes.into_values().collect(),
        services,
        workloads: facts,
    }
}

/// Every Service of the stream as the evaluator sees it.
fn services_of(objects: &[Value], mesh: &Mesh<'_>) -> Vec<ServiceRef> {
    objects
        .iter()
        .filter(|o| s(o, "/kind") == Some("Service"))
        .filter_map(|o| {
            let name = s(o, "/metadata/name")?;
            let ns = s(o, "/metadata/namespace");
            mesh.service_for_host(&qualified_host(name, ns), ns)
        })
        .collect()
}

fn qualified_host(name: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("{name}.{ns}.svc.cluster.local"),
        None => name.to_string(),
    }
}

/// Where a route's callers come from: `mesh` and/or each gateway (`ns/name` as written, the
/// routing object's namespace added to a bare name).
fn entries(r: &Route) -> Vec<String> {
    if r.gateways.is_empty() {
        return vec![MESH.to_string()];
    }
    let mut out: Vec<String> = r
        .gateways
        .iter()
        .map(|g| {
            if g == MESH || g.contains('/') {
                g.clone()
            } else {
                qualified(g, r.namespace.as_deref())
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The Service port a route delivers to: its destinations' port; else the port its match
/// names when the Service has that port; else the Service's only port.
fn delivered_port(r: &Route) -> Option<u32> {
    let ports: Vec<u32> = r.destinations.iter().filter_map(|d| d.port).collect();
    if let Some(p) = ports.first() {
        return Some(*p);
    }
    let matched = r
        .matches
        .iter()
        .filter_map(|m| m.get("port").and_then(Value::as_u64))
        .filter_map(|p| u32::try_from(p).ok())
        .next();
    let service_ports: Vec<u32> = r
        .destinations
        .iter()
        .filter_map(|d| d.service.as_ref())
        .flat_map(|svc| svc.ports.iter().copied())
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    match (matched, service_ports.as_slice()) {
        (Some(p), ports) if ports.contains(&p) => Some(p),
        (_, [one]) => Some(*one),
        _ => None,
    }
}

/// Adds a destination's share to `into`, per workload: the whole share to one workload, or
/// spread over several by pod count. Returns whether it was spread by pod count.
fn spread(
    d: &Destination,
    percent: f64,
    into: &mut BTreeMap<String, f64>,
    replicas: &dyn Fn(&MeshWorkload) -> u64,
) -> bool {
    if percent <= 0.0 {
        return false;
    }
    let mut add = |k: String, p: f64| {
        let v = into.entry(k).or_insert(0.0);
        *v = round(*v + p);
    };
    match (&d.service, d.endpoints.as_slice()) {
        (None, _) => {
            add(format!("{} (outside these manifests)", d.host), percent);
            false
        }
        (Some(_), []) => {
            let name = match &d.subset {
                Some(sub) => format!("{} subset {sub} (no pods)", d.host),
                None => format!("{} (no pods)", d.host),
            };
            add(name, percent);
            false
        }
        (Some(_), [one]) => {
            add(workload_name(one), percent);
            false
        }
        (Some(_), several) => {
            let total: u64 = several.iter().map(replicas).sum();
            for w in several {
                add(
                    workload_name(w),
                    percent * replicas(w) as f64 / total.max(1) as f64,
                );
            }
            true
        }
    }
}

/// Every workload's images, replicas and injecting revision.
fn workload_facts(objects: &[Value], mesh: &Mesh<'_>) -> BTreeMap<String, WorkloadFacts> {
    let injection = Injection::of(objects);
    let mut out = BTreeMap::new();
    for (w, labels) in mesh.workloads() {
        let Some(o) = objects.iter().find(|o| {
            s(o, "/kind") == Some(w.kind.as_str())
                && s(o, "/metadata/name") == Some(w.name.as_str())
                && s(o, "/metadata/namespace") == w.namespace.as_deref()
        }) else {
            continue;
        };
        let images = o
            .at("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c.get("name")?.as_str()?.to_string(),
                    c.get("image")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let hpa_min = objects
            .iter()
            .filter(|h| s(h, "/kind") == Some("HorizontalPodAutoscaler"))
            .filter(|h| s(h, "/metadata/namespace") == w.namespace.as_deref())
            .find(|h| {
                s(h, "/spec/scaleTargetRef/name") == Some(w.name.as_str())
                    && s(h, "/spec/scaleTargetRef/kind").is_none_or(|k| k == w.kind)
            })
            .and_then(|h| h.at("/spec/minReplicas").and_then(Value::as_u64));
        let replicas = hpa_min
            .or_else(|| o.at("/spec/replicas").and_then(Value::as_u64))
            .unwrap_or(1);
        out.insert(
            workload_name(&w),
            WorkloadFacts {
                images,
                revision: injection.revision(w.namespace.as_deref(), &labels),
                replicas,
            },
        );
    }
    out
}

/// Which control-plane revision injects a pod, from what the stream holds: namespace labels
/// (`istio-injection`, `istio.io/rev`), the pod template's (`istio.io/rev`,
/// `sidecar.istio.io/inject`), revision tags (`MutatingWebhookConfiguration`
/// `istio-revision-tag-<tag>`) and the `istiod-<rev>` Service or URL their webhooks call.
struct Injection {
    /// Namespace → its labels.
    namespaces: BTreeMap<String, crate::plan_file::Labels>,
    /// Tag → the revision its webhook calls.
    tags: BTreeMap<String, String>,
}

/// The tag `istio-injection: enabled` means.
const DEFAULT_TAG: &str = "default";

impl Injection {
    fn of(objects: &[Value]) -> Injection {
        let namespaces = objects
            .iter()
            .filter(|o| s(o, "/kind") == Some("Namespace"))
            .filter_map(|n| {
                Some((
                    s(n, "/metadata/name")?.to_string(),
                    selector::labels_of(n.at("/metadata/labels")),
                ))
            })
            .collect();
        // A revision's own injector (`istio-sidecar-injector-<rev>`, labelled with it) by the
        // URL it is called at: a tag whose webhook calls an external istiod by URL serves the
        // revision whose own webhook calls that URL.
        let by_url: BTreeMap<&str, &str> = objects
            .iter()
            .filter(|o| s(o, "/kind") == Some("MutatingWebhookConfiguration"))
            .filter(|o| {
                s(o, "/metadata/name").is_some_and(|n| n.starts_with("istio-sidecar-injector"))
            })
            .filter_map(|o| {
                Some((
                    s(o, "/webhooks/0/clientConfig/url")?,
                    s(o, "/metadata/labels/istio.io~1rev")?,
                ))
            })
            .collect();
        let mut tags = BTreeMap::new();
        for w in objects
            .iter()
            .filter(|o| s(o, "/kind") == Some("MutatingWebhookConfiguration"))
        {
            let Some(name) = s(w, "/metadata/name") else {
                continue;
            };
            let tag = match name.strip_prefix("istio-revision-tag-") {
                Some(t) => t.to_string(),
                // The default injector (`istio-sidecar-injector[-<rev>]`) serves `default`.
                None if name.starts_with("istio-sidecar-injector") => DEFAULT_TAG.to_string(),
                None => continue,
            };
            let by_own_url = s(w, "/webhooks/0/clientConfig/url")
                .and_then(|u| by_url.get(u))
                .map(|r| r.to_string());
            if let Some(rev) = by_own_url.or_else(|| webhook_revision(w)) {
                tags.insert(tag, rev);
            }
        }
        Injection { namespaces, tags }
    }

    /// A tag or revision name → the revision.
    fn resolve(&self, name: &str) -> String {
        self.tags
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    fn revision(&self, namespace: Option<&str>, pod: &crate::plan_file::Labels) -> Option<String> {
        let opt_out = |v: Option<&String>| v.is_some_and(|v| v == "false");
        if opt_out(pod.get("sidecar.istio.io/inject")) {
            return None;
        }
        let ns = namespace.and_then(|n| self.namespaces.get(n));
        // `istio-injection` on the namespace takes precedence over every revision label.
        match ns
            .and_then(|l| l.get("istio-injection"))
            .map(String::as_str)
        {
            Some("enabled") => return Some(self.resolve(DEFAULT_TAG)),
            Some(_) => return None,
            None => {}
        }
        if let Some(r) = ns.and_then(|l| l.get("istio.io/rev")) {
            return Some(self.resolve(r));
        }
        if let Some(r) = pod.get("istio.io/rev") {
            return Some(self.resolve(r));
        }
        if pod
            .get("sidecar.istio.io/inject")
            .is_some_and(|v| v == "true")
        {
            return Some(self.resolve(DEFAULT_TAG));
        }
        None
    }
}

/// The revision a webhook configuration calls: its `istiod-<rev>` Service, else (a URL, whose
/// host names no revision for sure) its `istio.io/rev` label, else the URL's `istiod-<rev>` host.
fn webhook_revision(w: &Value) -> Option<String> {
    let hook = w.at("/webhooks/0")?;
    let of_host = |h: &str| match h {
        "istiod" => Some(DEFAULT_TAG.to_string()),
        h => h.strip_prefix("istiod-").map(str::to_string),
    };
    if let Some(name) = s(hook, "/clientConfig/service/name") {
        return of_host(name)
            .or_else(|| s(w, "/metadata/labels/istio.io~1rev").map(str::to_string));
    }
    if let Some(rev) = s(w, "/metadata/labels/istio.io~1rev") {
        return Some(rev.to_string());
    }
    let url = s(hook, "/clientConfig/url")?;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    of_host(rest.split(['.', ':', '/']).next()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn deployment(ns: &str, name: &str, labels: Value, replicas: u64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
               "spec": {"replicas": replicas, "template": {"metadata": {"labels": labels},
                 "spec": {"containers": [{"name": "main", "image": format!("registry.example/{name}:1")}]}}}})
    }

    fn service(ns: &str, name: &str, selector: Value, ports: &[u32]) -> Value {
        let ports: Vec<Value> = ports.iter().map(|p| json!({"port": p})).collect();
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
               "spec": {"selector": selector, "ports": ports}})
    }

    fn find<'m>(m: &'m Model, entry: &str, condition: &str) -> &'m Class {
        m.classes
            .iter()
            .find(|c| c.entry == entry && c.condition == condition)
            .unwrap_or_else(|| panic!("no {entry} class `{condition}` in {:#?}", m.classes))
    }

    #[test]
    fn a_tcp_route_is_known_by_the_service_port_it_delivers_to() {
        let objects = vec![
            service(
                "echo",
                "tcp-echo",
                json!({"app": "tcp-echo"}),
                &[9000, 9001],
            ),
            deployment("echo", "tcp-echo", json!({"app": "tcp-echo"}), 1),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "gw", "namespace": "echo"},
                   "spec": {"hosts": ["*"], "gateways": ["tcp-echo-gateway"], "tcp": [{"match": [{"port": 31400}],
                     "route": [{"destination": {"host": "tcp-echo", "port": {"number": 9000}}}]}]}}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "mesh", "namespace": "echo"},
                   "spec": {"hosts": ["tcp-echo"], "tcp": [{"match": [{"port": 9001}], "route": [{"destination": {"host": "tcp-echo"}}]}]}}),
        ];
        let m = model(&objects);
        let gw = find(&m, "echo/tcp-echo-gateway", "port 31400");
        assert_eq!((gw.port, gw.protocol.as_str()), (Some(9000), "tcp"));
        assert_eq!(gw.to, [("echo/tcp-echo".to_string(), 100.0)].into());
        // Without a destination port, the port the route matches when the Service has it.
        assert_eq!(find(&m, MESH, "port 9001").port, Some(9001));
        // Mesh-routed: no direct class for the Service.
        assert!(
            m.classes.iter().all(|c| c.entry != DIRECT),
            "{:#?}",
            m.classes
        );
    }

    #[test]
    fn without_a_mesh_route_callers_reach_pods_by_count() {
        let objects = vec![
            service("hello", "helloworld", json!({"app": "helloworld"}), &[5000]),
            deployment(
                "hello",
                "helloworld-v1",
                json!({"app": "helloworld", "version": "v1"}),
                1,
            ),
            deployment(
                "hello",
                "helloworld-v2",
                json!({"app": "helloworld", "version": "v2"}),
                2,
            ),
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "v1", "namespace": "hello"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "helloworld-v1"}, "minReplicas": 4}}),
        ];
        let m = model(&objects);
        let d = find(&m, DIRECT, "every request");
        assert!(d.by_pods);
        assert_eq!(d.host, "hello/helloworld");
        // 4 pods (the HPA's minimum) against 2.
        assert_eq!(
            d.to,
            [
                ("hello/helloworld-v1".to_string(), 66.67),
                ("hello/helloworld-v2".to_string(), 33.33)
            ]
            .into()
        );
        assert_eq!(
            m.services["hello/helloworld"],
            vec!["hello/helloworld-v1", "hello/helloworld-v2"]
        );
        assert_eq!(m.workloads["hello/helloworld-v1"].replicas, 4);
    }

    #[test]
    fn a_route_says_what_earlier_routes_take_and_where_mirrors_go() {
        let objects = vec![
            service("ns", "reviews", json!({"app": "reviews"}), &[9080]),
            deployment(
                "ns",
                "reviews-v1",
                json!({"app": "reviews", "version": "v1"}),
                1,
            ),
            deployment(
                "ns",
                "reviews-v2",
                json!({"app": "reviews", "version": "v2"}),
                1,
            ),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "ns"},
                   "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "ns"},
                   "spec": {"hosts": ["reviews"], "http": [
                     {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
                     {"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 90}, {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}],
                      "mirror": {"host": "reviews", "subset": "v2"}, "mirrorPercentage": {"value": 5.0}}]}}),
        ];
        let m = model(&objects);
        let rest = find(&m, MESH, "every request");
        assert_eq!(rest.except, vec!["header end-user=jason"]);
        assert_eq!(rest.port, Some(9080));
        assert_eq!(
            rest.to,
            [
                ("ns/reviews-v1".to_string(), 90.0),
                ("ns/reviews-v2".to_string(), 10.0)
            ]
            .into()
        );
        assert_eq!(rest.mirrors, [("ns/reviews-v2".to_string(), 5.0)].into());
        assert_eq!(
            rest.describe(),
            "mesh callers of reviews:9080 (http, every request except header end-user=jason)"
        );
        assert_eq!(
            find(&m, MESH, "header end-user=jason").to,
            [("ns/reviews-v2".to_string(), 100.0)].into()
        );
    }

    fn webhook(name: &str, client: Value) -> Value {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": name}, "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io", "clientConfig": client}]})
    }

    #[test]
    fn the_injecting_revision_is_resolved_through_labels_tags_and_webhooks() {
        let ns = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        let objects = vec![
            ns("tagged", json!({"istio.io/rev": "prod-stable"})),
            ns(
                "legacy",
                json!({"istio-injection": "enabled", "istio.io/rev": "prod-canary"}),
            ),
            ns("plain", json!({})),
            ns("direct", json!({"istio.io/rev": "1-24-0"})),
            webhook(
                "istio-revision-tag-prod-stable",
                json!({"service": {"name": "istiod-1-22-1", "namespace": "istio-system"}}),
            ),
            webhook(
                "istio-revision-tag-prod-canary",
                json!({"url": "https://istiod-1-23-1.istio-system.svc:15017/inject"}),
            ),
            webhook(
                "istio-sidecar-injector-1-21-0",
                json!({"service": {"name": "istiod-1-21-0", "namespace": "istio-system"}}),
            ),
            deployment("tagged", "a", json!({"app": "a"}), 1),
            deployment(
                "tagged",
                "opted-out",
                json!({"app": "b", "sidecar.istio.io/inject": "false"}),
                1,
            ),
            deployment("legacy", "c", json!({"app": "c"}), 1),
            deployment("plain", "d", json!({"app": "d"}), 1),
            deployment(
                "plain",
                "e",
                json!({"app": "e", "istio.io/rev": "prod-canary"}),
                1,
            ),
            deployment("direct", "f", json!({"app": "f"}), 1),
            deployment(
                "unknown",
                "g",
                json!({"app": "g", "sidecar.istio.io/inject": "true"}),
                1,
            ),
        ];
        let m = model(&objects);
        let rev = |w: &str| m.workloads[w].revision.clone();
        assert_eq!(rev("tagged/a").as_deref(), Some("1-22-1"));
        assert_eq!(rev("tagged/opted-out"), None);
        // `istio-injection` wins over the namespace's revision label: the default injector.
        assert_eq!(rev("legacy/c").as_deref(), Some("1-21-0"));
        assert_eq!(rev("plain/d"), None);
        assert_eq!(rev("plain/e").as_deref(), Some("1-23-1"));
        assert_eq!(rev("direct/f").as_deref(), Some("1-24-0"));
        assert_eq!(rev("unknown/g").as_deref(), Some("1-21-0"));
        assert_eq!(
            m.workloads["plain/d"].images["main"],
            "registry.example/d:1"
        );
    }

    #[test]
    fn the_model_is_the_same_byte_for_byte_whatever_the_order_of_the_stream() {
        let mut objects = vec![
            service("ns", "a", json!({"app": "a"}), &[80]),
            service("ns", "b", json!({"app": "b"}), &[80]),
            deployment("ns", "a", json!({"app": "a"}), 3),
            deployment("ns", "b", json!({"app": "b"}), 1),
        ];
        let one = serde_json::to_string(&model(&objects)).unwrap();
        objects.reverse();
        assert_eq!(serde_json::to_string(&model(&objects)).unwrap(), one);
        assert_eq!(round(100.0 / 3.0), 33.33);
    }
}
