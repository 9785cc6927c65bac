//! The path of each request class through the chain, read from the final objects (what Argo CD
//! applies): a request naming a lane, one naming the baseline, and one without the header
//! (split at the ingress by weight). For each service in call order: the route that takes the
//! request, and which lane's pods serve it (their lane label; the baseline's when unlabelled).

use crate::pointer::Pointer as _;
use serde_json::Value;

use super::plan::CheckedLanePlan;
use crate::traffic::{Mesh, host_names};

/// One request class and, per service, the lane serving it (with percent where split).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Path {
    /// `x-lane=canary`, or `no header`.
    pub request: String,
    /// Per service in chain order: (service, [(lane, percent)]).
    pub hops: Vec<(String, Vec<(String, f64)>)>,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hops: Vec<String> = self
            .hops
            .iter()
            .map(|(s, lanes)| match lanes.as_slice() {
                [] => format!("{s} (no pods)"),
                [(l, _)] => format!("{s} {l}"),
                many => format!(
                    "{s} {}",
                    many.iter()
                        .map(|(l, p)| format!("{l} {p}%"))
                        .collect::<Vec<_>>()
                        .join(" · ")
                ),
            })
            .collect();
        write!(f, "{}: {}", self.request, hops.join(" → "))
    }
}

/// Whether a VirtualService match entry holds for a request carrying only `headers`. Other
/// conditions (a uri...) hold at the ingress, whose matches select the chain's traffic, and not
/// inside the chain, where they pick out other requests (a health check path).
fn holds(m: &Value, headers: &[(String, String)], at_ingress: bool) -> bool {
    let other = m
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k != "headers"));
    if other && !at_ingress {
        return false;
    }
    m.get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, cond)| {
            let got = headers
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str());
            match (cond.get("exact").and_then(Value::as_str), got) {
                (Some(want), Some(v)) => want == v,
                (Some(_), None) => false,
                _ => got.is_some(),
            }
        })
}

/// A lane reached, its percent, and the request headers from there on.
type Served = (String, f64, Vec<(String, String)>);

/// Where a request with `headers` to `service` goes: the lanes of the pods reached, with percent.
fn serve(
    plan: &CheckedLanePlan,
    mesh: &Mesh<'_>,
    service: &str,
    ns: Option<&str>,
    headers: &[(String, String)],
    gateway: Option<&str>,
) -> Vec<Served> {
    let route = mesh.routes().iter().find(|r| {
        r.kind == "http"
            && match gateway {
                Some(g) => r.gateways.iter().any(|x| x == g),
                None => {
                    r.applies_to_mesh()
                        && r.hosts
                            .iter()
                            .any(|h| host_names(h, service, ns, r.namespace.as_deref()))
                }
            }
            && (r.matches.is_empty()
                || r.matches
                    .iter()
                    .any(|m| holds(m, headers, gateway.is_some())))
    });
    let lane_of = |w: &crate::traffic::Workload| {
        mesh.workloads()
            .into_iter()
            .find(|(x, _)| x == w)
            .and_then(|(_, l)| l.get(&plan.label.value).cloned())
            .unwrap_or_else(|| plan.baseline.value.clone())
    };
    match route {
        Some(r) => r
            .destinations
            .iter()
            .filter(|d| d.percent > 0.0)
            .map(|d| {
                let lanes: Vec<String> = d.endpoints.iter().map(lane_of).collect();
                // A destination setting the header sends the rest of the chain down that lane.
                let mut h = headers.to_vec();
                if let Some((_, v)) = d
                    .sets
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&plan.header.value))
                {
                    let v = v.clone();
                    h.retain(|(k, _)| !k.eq_ignore_ascii_case(&plan.header.value));
                    h.push((plan.header.value.clone(), v));
                }
                let lane = match lanes.as_slice() {
                    [] => format!("{} (no pods)", d.host),
                    [one] => one.clone(),
                    many => many.join("+"),
                };
                (lane, d.percent, h)
            })
            .collect(),
        None => {
            // No route: the Service spreads requests over what it selects.
            let Some(svc) = mesh.service_for_host(service, ns) else {
                return Vec::new();
            };
            let ws = mesh.endpoints(&svc, None);
            let mut lanes: Vec<String> = ws.iter().map(lane_of).collect();
            lanes.sort();
            lanes.dedup();
            lanes
                .into_iter()
                .map(|l| (l, 100.0, headers.to_vec()))
                .collect()
        }
    }
}

/// Every request class through the chain.
pub fn paths(plan: &CheckedLanePlan, objects: &[Value]) -> Vec<Path> {
    let mesh = Mesh::new(objects);
    let ns_of = |service: &str| {
        objects
            .iter()
            .find(|o| {
                o.get("kind").and_then(Value::as_str) == Some("Service")
                    && o.at("/metadata/name").and_then(Value::as_str) == Some(service)
            })
            .and_then(|o| o.at("/metadata/namespace").and_then(Value::as_str))
            .map(str::to_string)
    };
    let mut classes: Vec<(String, Vec<(String, String)>)> = plan
        .lanes
        .iter()
        .map(|l| l.name.value.clone())
        .chain(std::iter::once(plan.baseline.value.clone()))
        .map(|l| {
            (
                format!("{}={l}", plan.header.value),
                vec![(plan.header.value.clone(), l)],
            )
        })
        .collect();
    classes.push(("no header".to_string(), Vec::new()));
    let mut out = Vec::new();
    for (request, headers) in classes {
        let mut hops = Vec::new();
        // Through the ingress first, when there is one: its routes may set the header.
        let mut variants: Vec<(f64, Vec<(String, String)>)> = vec![(100.0, headers.clone())];
        let gateway = plan.ingress.as_ref().map(|i| i.gateway.value.clone());
        for (k, m) in plan.services.iter().enumerate() {
            let svc = &m.service.value;
            let ns = ns_of(svc);
            let mut reached: Vec<(String, f64)> = Vec::new();
            let mut next = Vec::new();
            for (share, h) in &variants {
                let entry = k == 0
                    && gateway.is_some()
                    && plan
                        .ingress
                        .as_ref()
                        .is_some_and(|i| i.service.value == *svc);
                for (lane, p, h2) in serve(
                    plan,
                    &mesh,
                    svc,
                    ns.as_deref(),
                    h,
                    if entry { gateway.as_deref() } else { None },
                ) {
                    let part = share * p / 100.0;
                    match reached.iter_mut().find(|(l, _)| *l == lane) {
                        Some((_, x)) => *x += part,
                        None => reached.push((lane, part)),
                    }
                    next.push((part, h2));
                }
            }
            hops.push((svc.clone(), reached));
            if !next.is_empty() {
                variants = next;
            }
        }
        out.push(Path { request, hops });
    }
    out
}
