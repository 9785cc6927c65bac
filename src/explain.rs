//! `canaryplan explain`: the traffic table of one environment, read from its final manifests
//! (and, for comparison, its base) by the evaluator in `traffic` — never from the plan. For every
//! VirtualService route in order: which requests it catches (less what earlier routes caught),
//! where they go (percent per subset, mirrors, how many workloads each reaches), and what is
//! wrong: a destination answering 503, a route no request can reach, a route that reached pods
//! in the base and reaches none now.

use serde::Serialize;
use serde_json::Value;

use crate::traffic::{Destination, Mesh, Route};

/// One route of the table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `VirtualService reviews, http[0] ("primary")`.
    pub position: String,
    /// `VirtualService` or `HTTPRoute`.
    pub object: String,
    /// The routing object's name (in JSON under its kind: `virtualService` or `httpRoute`).
    #[serde(skip)]
    pub virtual_service: String,
    /// The VirtualService's name, for an Istio route.
    #[serde(rename = "virtualService", skip_serializing_if = "Option::is_none")]
    pub virtual_service_name: Option<String>,
    /// The HTTPRoute's name, for a Gateway API rule.
    #[serde(rename = "httpRoute", skip_serializing_if = "Option::is_none")]
    pub http_route: Option<String>,
    pub hosts: Vec<String>,
    /// Empty: the mesh (sidecars).
    pub gateways: Vec<String>,
    pub kind: String,
    /// Its place among the VirtualService's routes of that kind.
    pub index: usize,
    pub name: Option<String>,
    /// The requests it catches, in words (`every request`, `uri prefix /api`, `everything else`).
    pub catches: String,
    pub destinations: Vec<Target>,
    pub mirrors: Vec<Target>,
    /// Why no request can reach it, if none can.
    pub unreachable: Option<String>,
    /// Earlier routes that catch some of the requests its conditions describe first.
    pub after: Vec<String>,
    /// The VirtualService its requests are handed to (`delegate`).
    pub delegate: Option<String>,
    /// For a delegate's route: the root route it serves under.
    pub delegated_from: Option<String>,
}

/// Where part of a route's requests go.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub host: String,
    pub subset: Option<String>,
    pub percent: f64,
    /// Whether the host is a Service of these manifests (else it is beyond what they show).
    pub in_stream: bool,
    /// The workloads whose pods receive them (`Deployment reviews-v1`).
    pub workloads: Vec<String>,
}

/// The table and every problem in it.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub routes: Vec<Row>,
    pub problems: Vec<String>,
}

fn target(d: &Destination) -> Target {
    Target {
        host: d.host.clone(),
        subset: d.subset.clone(),
        percent: d.percent,
        in_stream: d.service.is_some(),
        workloads: d.endpoints.iter().map(ToString::to_string).collect(),
    }
}

/// One `match` entry in words.
pub fn condition(m: &Value) -> String {
    let Some(obj) = m.as_object() else {
        return "every request".to_string();
    };
    let mut parts = Vec::new();
    let string_match = |v: &Value| -> String {
        match v.as_object().and_then(|o| o.iter().next()) {
            Some((how, value)) => {
                let value = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                match how.as_str() {
                    "exact" => format!("={value}"),
                    "prefix" => format!(" prefix {value}"),
                    "regex" => format!("~{value}"),
                    other => format!(" {other} {value}"),
                }
            }
            None => " present".to_string(),
        }
    };
    // Gateway API's list form: `[{name, value, type}]`.
    let listed = |v: &Value, what: &str, parts: &mut Vec<String>| {
        for h in v.as_array().into_iter().flatten() {
            let name = h.get("name").and_then(Value::as_str).unwrap_or_default();
            let value = h.get("value").and_then(Value::as_str).unwrap_or_default();
            let op = match h.get("type").and_then(Value::as_str) {
                Some("RegularExpression") => "~",
                _ => "=",
            };
            parts.push(format!("{what} {name}{op}{value}"));
        }
    };
    for (field, v) in obj {
        match field.as_str() {
            "name" => {}
            "path" if v.get("value").is_some() => {
                let value = v.get("value").and_then(Value::as_str).unwrap_or_default();
                match v.get("type").and_then(Value::as_str) {
                    Some("Exact") => parts.push(format!("path={value}")),
                    Some("RegularExpression") => parts.push(format!("path~{value}")),
                    _ => parts.push(format!("path prefix {value}")),
                }
            }
            "headers" if v.is_array() => listed(v, "header", &mut parts),
            "queryParams" if v.is_array() => listed(v, "query", &mut parts),
            "method" if v.is_string() => {
                parts.push(format!("method {}", v.as_str().unwrap_or_default()))
            }
            "uri" | "scheme" | "method" | "authority" => {
                parts.push(format!("{field}{}", string_match(v)))
            }
            "headers" | "queryParams" | "withoutHeaders" => {
                for (k, sm) in v.as_object().into_iter().flatten() {
                    let prefix = if field == "withoutHeaders" {
                        "no header "
                    } else if field == "queryParams" {
                        "query "
                    } else {
                        "header "
                    };
                    parts.push(format!("{prefix}{k}{}", string_match(sm)));
                }
            }
            "sourceLabels" => {
                let labels: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, l)| format!("{k}={}", l.as_str().unwrap_or_default()))
                    .collect();
                parts.push(format!("from pods {}", labels.join(",")));
            }
            "port" => parts.push(format!("port {v}")),
            "gateways" => parts.push(format!("via {}", v)),
            other => parts.push(format!("{other} {v}")),
        }
    }
    if parts.is_empty() {
        "every request".to_string()
    } else {
        parts.join(" and ")
    }
}

/// Whether some request can satisfy both match entries: no field is required on both with
/// different exact values (a header `exact: a` and `exact: b`, two ports, two exact URIs).
fn entries_overlap(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return true;
    };
    let exact = |v: &Value| v.get("exact").cloned();
    for (k, av) in a {
        let Some(bv) = b.get(k) else { continue };
        let disjoint = match k.as_str() {
            "name" | "gateways" | "ignoreUriCase" | "statPrefix" => false,
            "port" | "sourceNamespace" => av != bv,
            "headers" | "queryParams" | "sourceLabels" => {
                av.as_object()
                    .into_iter()
                    .flatten()
                    .any(|(hk, hv)| match bv.get(hk) {
                        Some(other) if k == "sourceLabels" => other != hv,
                        Some(other) => exact(hv).zip(exact(other)).is_some_and(|(x, y)| x != y),
                        None => false,
                    })
            }
            _ => exact(av).zip(exact(bv)).is_some_and(|(x, y)| x != y),
        };
        if disjoint {
            return false;
        }
    }
    true
}

/// Whether an earlier route may catch some of the requests a later one describes.
fn overlaps(earlier: &Route, later: &Route) -> bool {
    let all = [Value::Object(serde_json::Map::new())];
    let e: &[Value] = if earlier.matches.is_empty() {
        &all
    } else {
        &earlier.matches
    };
    let l: &[Value] = if later.matches.is_empty() {
        &all
    } else {
        &later.matches
    };
    e.iter().any(|a| l.iter().any(|b| entries_overlap(a, b)))
}

/// Whether a route catches every request (no `match`, or an empty match entry).
fn catch_all(r: &Route) -> bool {
    r.matches.is_empty()
        || r.matches
            .iter()
            .any(|m| m.as_object().is_none_or(|o| o.keys().all(|k| k == "name")))
}

/// The table for the final objects of one environment, compared with its base: the
/// evaluator's destination problems, then the route findings of `table`.
pub fn explain(objects: &[Value], base: &[Value]) -> Explanation {
    explain_meshes(&Mesh::new(objects), &Mesh::new(base))
}

/// `explain` over meshes already built (a base's objects need not be copied for one).
pub fn explain_meshes(mesh: &Mesh<'_>, base: &Mesh<'_>) -> Explanation {
    let mut problems: Vec<String> = mesh.problems().iter().map(ToString::to_string).collect();
    let (routes, findings) = table(mesh, base);
    problems.extend(findings);
    problems.dedup();
    Explanation { routes, problems }
}

/// Every route as a row, and what is wrong with routes as such: one no request can reach, one
/// that reached pods in `base` and reaches none now. (Destinations answering 503 are
/// `Mesh::problems`.)
pub fn table(mesh: &Mesh<'_>, base: &Mesh<'_>) -> (Vec<Row>, Vec<String>) {
    let routes = mesh.routes();
    let base_routes = base.routes();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        // Earlier routes of the same VirtualService and kind catch first.
        // (Gateway API rules are not taken in order but by specificity: none is "earlier".)
        let earlier: Vec<&Route> = routes
            .get(..i)
            .unwrap_or_default()
            .iter()
            .filter(|e| {
                !r.by_specificity()
                    && e.object == r.object
                    && e.virtual_service == r.virtual_service
                    && e.namespace == r.namespace
                    && e.kind == r.kind
            })
            .collect();
        let siblings = r.by_specificity()
            && routes.iter().any(|o| {
                !std::ptr::eq(o, r)
                    && o.object == r.object
                    && o.virtual_service == r.virtual_service
                    && o.namespace == r.namespace
            });
        let unreachable = earlier
            .iter()
            .find(|e| catch_all(e))
            .map(|e| format!("{} catches every request first", e.position()))
            .or_else(|| {
                earlier
                    .iter()
                    .find(|e| {
                        !r.matches.is_empty() && r.matches.iter().all(|m| e.matches.contains(m))
                    })
                    .map(|e| format!("{} catches the same requests first", e.position()))
            });
        if let Some(why) = &unreachable {
            problems.push(format!(
                "{}: no request can reach this route: {why}",
                r.position()
            ));
        }
        // Earlier routes that may catch some of the same requests: this route gets only what
        // they leave.
        let after: Vec<String> = earlier
            .iter()
            .filter(|e| overlaps(e, r))
            .map(|e| e.position())
            .collect();
        let catches = if r.matches.is_empty() {
            if siblings {
                "every request no more specific rule matches".to_string()
            } else if earlier.is_empty() {
                "every request".to_string()
            } else {
                "everything else".to_string()
            }
        } else {
            let these = r
                .matches
                .iter()
                .map(condition)
                .collect::<Vec<_>>()
                .join(", or ");
            if after.is_empty() || unreachable.is_some() {
                these
            } else {
                format!("{these}, less what the routes above catch")
            }
        };
        // A route that reached pods in the base must reach some now.
        let reaches =
            |d: &[Destination]| d.iter().any(|x| x.percent > 0.0 && !x.endpoints.is_empty());
        if let Some(b) = base_routes.iter().find(|b| {
            b.object == r.object
                && b.virtual_service == r.virtual_service
                && b.namespace == r.namespace
                && b.kind == r.kind
                && b.index == r.index
        }) && reaches(&b.destinations)
            && !reaches(&r.destinations)
            && r.destinations.iter().all(|d| d.service.is_some())
        {
            problems.push(format!(
                "{}: its requests reached pods in the base and reach none now",
                r.position()
            ));
        }
        rows.push(Row {
            position: r.position(),
            object: r.object.to_string(),
            virtual_service: r.virtual_service.clone(),
            virtual_service_name: (r.object != "HTTPRoute").then(|| r.virtual_service.clone()),
            http_route: (r.object == "HTTPRoute").then(|| r.virtual_service.clone()),
            hosts: r.hosts.clone(),
            gateways: r.gateways.clone(),
            kind: r.kind.to_string(),
            index: r.index,
            name: r.name.clone(),
            catches,
            destinations: r.destinations.iter().map(target).collect(),
            mirrors: r.mirrors.iter().map(target).collect(),
            unreachable,
            after,
            delegate: r.delegate.clone(),
            delegated_from: r.delegated_from.clone(),
        });
    }
    (rows, problems)
}

fn percent(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

fn shown(t: &Target) -> String {
    let name = t.subset.clone().unwrap_or_else(|| t.host.clone());
    let pods = match t.workloads.len() {
        _ if !t.in_stream => " (not a Service of these manifests)".to_string(),
        0 => " (no pods)".to_string(),
        1 => String::new(),
        n => format!(" ({n} workloads)"),
    };
    format!("{name} {}{pods}", percent(t.percent))
}

/// The table as text: per route a header line, then what it catches and where it goes.
pub fn to_text(e: &Explanation) -> String {
    let mut out = String::new();
    for r in &e.routes {
        let name = match &r.name {
            Some(n) => format!(" \"{n}\""),
            None => format!(" [{}]", r.index),
        };
        let via = if r.gateways.is_empty() {
            "mesh".to_string()
        } else {
            r.gateways.join(", ")
        };
        let under = r
            .delegated_from
            .as_ref()
            .map(|root| format!(", delegated from {root}"))
            .unwrap_or_default();
        let hosts = if r.hosts.is_empty() {
            "*".to_string()
        } else {
            r.hosts.join(", ")
        };
        let what = if r.object == "HTTPRoute" {
            "rule"
        } else {
            "route"
        };
        let protocol = if r.object == "HTTPRoute" {
            "http"
        } else {
            r.kind.as_str()
        };
        out.push_str(&format!(
            "{hosts}  {protocol}  {what}{name}  ({} {}{under}, via {via})\n",
            r.object, r.virtual_service
        ));
        let mut to: Vec<String> = r.destinations.iter().map(shown).collect();
        to.extend(r.mirrors.iter().map(|m| format!("mirror {}", shown(m))));
        if let Some(d) = &r.delegate {
            to.push(format!("the routes of VirtualService {d}"));
        }
        let line = if let Some(why) = &r.unreachable {
            format!("  {}  → never: {why}\n", r.catches)
        } else {
            format!("  {}  → {}\n", r.catches, to.join(" · "))
        };
        out.push_str(&line);
    }
    if e.routes.is_empty() {
        out.push_str("no routes (VirtualService or HTTPRoute): callers reach every pod each Service selects\n");
    }
    for p in &e.problems {
        out.push_str(&format!("error: {p}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn stream(routes: Value) -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews"}, "spec": {"selector": {"app": "reviews"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reviews-v1"}, "spec": {"template": {"metadata": {"labels": {"app": "reviews", "version": "v1"}}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reviews-v2"}, "spec": {"template": {"metadata": {"labels": {"app": "reviews", "version": "v2"}}}}}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
                   "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"}, "spec": {"hosts": ["reviews"], "http": routes}}),
        ]
    }

    #[test]
    fn the_table_says_what_each_route_catches_and_where_it_goes() {
        let s = stream(json!([
            {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            {"name": "primary", "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 95}, {"destination": {"host": "reviews", "subset": "v2"}, "weight": 5}],
             "mirror": {"host": "reviews", "subset": "v2"}, "mirrorPercentage": {"value": 10.0}}
        ]));
        let e = explain(&s, &s);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        assert_eq!(
            to_text(&e),
            "reviews  http  route \"jason\"  (VirtualService reviews, via mesh)\n  header end-user=jason  → v2 100%\nreviews  http  route \"primary\"  (VirtualService reviews, via mesh)\n  everything else  → v1 95% · v2 5% · mirror v2 10%\n"
        );
    }

    #[test]
    fn a_route_reordered_behind_a_catch_all_is_caught() {
        // The header route must come first: behind the catch-all no request reaches it.
        let s = stream(json!([
            {"name": "primary", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
            {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]}
        ]));
        let e = explain(&s, &s);
        assert_eq!(
            e.problems,
            vec![
                "VirtualService reviews, http[1] (\"jason\"): no request can reach this route: VirtualService reviews, http[0] (\"primary\") catches every request first"
            ]
        );
    }

    #[test]
    fn a_route_says_when_earlier_routes_take_some_of_its_requests_first() {
        let s = stream(json!([
            {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            // Disjoint from `jason` (another exact value of the same header): nothing taken.
            {"name": "maria", "match": [{"headers": {"end-user": {"exact": "maria"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            // Overlaps both: a request under /api from jason goes to `jason` first.
            {"name": "api", "match": [{"uri": {"prefix": "/api"}}], "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}
        ]));
        let e = explain(&s, &s);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        assert!(e.routes[1].after.is_empty(), "{:?}", e.routes[1].after);
        assert_eq!(e.routes[1].catches, "header end-user=maria");
        assert_eq!(e.routes[2].after.len(), 2);
        assert_eq!(
            e.routes[2].catches,
            "uri prefix /api, less what the routes above catch"
        );
    }

    #[test]
    fn a_delegate_serves_under_its_root() {
        let mut s = stream(json!([]));
        s.pop();
        s.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "root"},
            "spec": {"hosts": ["bookinfo.com"], "gateways": ["gw"], "http": [{"match": [{"uri": {"prefix": "/reviews"}}], "delegate": {"name": "reviews"}}]}}));
        s.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
            "spec": {"http": [{"match": [{"headers": {"x": {"exact": "1"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}}));
        let e = explain(&s, &s);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        let r = &e.routes[1];
        assert_eq!(r.hosts, vec!["bookinfo.com"]);
        assert_eq!(r.gateways, vec!["gw"]);
        assert_eq!(r.catches, "uri prefix /reviews and header x=1");
        assert_eq!(
            r.delegated_from.as_deref(),
            Some("VirtualService root, http[0]")
        );
        assert_eq!(e.routes[0].delegate.as_deref(), Some("reviews"));
    }

    #[test]
    fn gateway_api_rules_by_parent_weight_and_mirror() {
        // Per-version Services stand for subsets; backendRef weights are relative (9:1).
        let svc = |name: &str, version: Option<&str>| {
            let mut sel = json!({"app": "reviews"});
            if let Some(v) = version {
                sel["version"] = json!(v);
            }
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"selector": sel}})
        };
        let mut s = stream(json!([]));
        s.truncate(3);
        s.push(svc("reviews-v1", Some("v1")));
        s.push(svc("reviews-v2", Some("v2")));
        s.push(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "shop"},
            "spec": {"parentRefs": [{"name": "public", "namespace": "infra"}], "hostnames": ["shop.example.com"],
              "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/reviews"}, "headers": [{"name": "x-canary", "value": "true"}]}],
                 "backendRefs": [{"name": "reviews-v2", "port": 9080}]},
                {"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 9}, {"name": "reviews-v2", "port": 9080, "weight": 1}],
                 "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "reviews-v2", "port": 9080}, "percent": 5}}]}
              ]}}));
        // GAMMA: a route whose parent is the Service itself serves mesh callers.
        s.push(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "reviews-mesh", "namespace": "shop"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews"}],
              "rules": [{"backendRefs": [{"name": "reviews-v1", "port": 9080}]}]}}));
        let e = explain(&s, &s);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        assert_eq!(
            to_text(&e),
            "shop.example.com  http  rule [0]  (HTTPRoute shop, via infra/public)\n  path prefix /reviews and header x-canary=true  → reviews-v2 100%\nshop.example.com  http  rule [1]  (HTTPRoute shop, via infra/public)\n  every request no more specific rule matches  → reviews-v1 90% · reviews-v2 10% · mirror reviews-v2 5%\nreviews.shop.svc.cluster.local  http  rule [0]  (HTTPRoute reviews-mesh, via mesh)\n  every request  → reviews-v1 100%\n"
        );
    }

    #[test]
    fn a_removed_subset_and_lost_traffic_are_caught() {
        let base =
            stream(json!([{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]));
        let mut broken = base.clone();
        broken[3]["spec"]["subsets"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        let e = explain(&broken, &base);
        assert_eq!(e.problems.len(), 2, "{:?}", e.problems);
        assert!(e.problems[0].contains("subset `v1` of reviews is not defined"));
        assert!(
            e.problems[1].ends_with("its requests reached pods in the base and reach none now")
        );
    }
}
