//! Test traffic (`match:`): before each rule that sends to the Service, a rule of the plan's
//! matches crossed with the rule's own, to the canary's Service alone. Gateway API does not
//! take the first rule that matches: the most specific match wins (an Exact path, then the
//! longest path prefix, then a method, then the most headers, then the most query
//! parameters), list order only breaking ties within a route. The crossed match is at least as
//! specific as the rule's own and comes first, so it wins over it; what must be refused is a
//! test rule more specific than a rule that today wins over the Service's rule for some
//! requests (it would take that rule's requests away from another backend).

use crate::pointer::Pointer as _;
use serde_json::{Map, Value, json};

use super::http_routes::{refs, rule_sends_to_service, rules};
use super::{names_service, version_service};
use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::Context;

/// A match with Gateway API's defaults filled in (path prefix `/`, Exact header and query
/// matches), as the API server stores it.
pub fn defaulted(m: &Value) -> Value {
    let mut m = m.as_object().cloned().unwrap_or_default();
    m.entry("path")
        .or_insert_with(|| json!({"type": "PathPrefix", "value": "/"}));
    if let Some(p) = m.get_mut("path").and_then(Value::as_object_mut) {
        p.entry("type").or_insert_with(|| json!("PathPrefix"));
        p.entry("value").or_insert_with(|| json!("/"));
    }
    for list in ["headers", "queryParams"] {
        if let Some(items) = m.get_mut(list).and_then(Value::as_array_mut) {
            for i in items.iter_mut().filter_map(Value::as_object_mut) {
                i.entry("type").or_insert_with(|| json!("Exact"));
            }
        }
    }
    Value::Object(m)
}

/// A rule's matches, defaulted (a rule without matches matches every request).
pub fn matches_of(rule: &Value) -> Vec<Value> {
    match rule.get("matches").and_then(Value::as_array) {
        Some(ms) if !ms.is_empty() => ms.iter().map(defaulted).collect(),
        _ => vec![defaulted(&json!({}))],
    }
}

fn path(m: &Value) -> (&str, &str) {
    let s = |k: &str| m.at(k).and_then(Value::as_str).unwrap_or_default();
    (s("/path/type"), s("/path/value"))
}

/// Whether `path` is under the prefix `prefix` (Gateway API prefixes match whole segments).
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The name a header (`fold`: case-insensitive) or query parameter match is about.
fn item_key(i: &Value, fold: bool) -> String {
    let n = i.get("name").and_then(Value::as_str).unwrap_or_default();
    if fold {
        n.to_ascii_lowercase()
    } else {
        n.to_string()
    }
}

/// Precedence of a defaulted match: (Exact path, prefix length, method, headers, query
/// parameters); a greater key wins.
pub fn rank(m: &Value) -> (bool, usize, bool, usize, usize) {
    let (kind, value) = path(m);
    let count = |k: &str| m.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    (
        kind == "Exact",
        if kind == "RegularExpression" {
            0
        } else {
            value.len()
        },
        m.get("method").is_some(),
        count("headers"),
        count("queryParams"),
    )
}

/// Whether one request can satisfy both defaulted matches.
pub fn overlap(a: &Value, b: &Value) -> bool {
    let (ak, av) = path(a);
    let (bk, bv) = path(b);
    let paths = match (ak, bk) {
        ("Exact", "Exact") => av == bv,
        ("Exact", "PathPrefix") => under(av, bv),
        ("PathPrefix", "Exact") => under(bv, av),
        ("PathPrefix", "PathPrefix") => under(av, bv) || under(bv, av),
        _ => true,
    };
    let method = match (a.get("method"), b.get("method")) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    let lists = |k: &str, fold: bool| {
        let items = |m: &Value| {
            m.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let key = |i: &Value| item_key(i, fold);
        items(a).iter().all(|x| {
            items(b).iter().all(|y| {
                key(x) != key(y)
                    || x.get("type") != Some(&json!("Exact"))
                    || y.get("type") != Some(&json!("Exact"))
                    || x.get("value") == y.get("value")
            })
        })
    };
    paths && method && lists("headers", true) && lists("queryParams", false)
}

/// Rule `i`'s match `theirs` AND the plan's match `ours`, or why they cannot both hold.
fn cross(theirs: &Value, ours: &Value) -> std::result::Result<Value, String> {
    let mut merged = theirs.as_object().cloned().unwrap_or_default();
    let ours = defaulted(ours);
    for (k, v) in ours.as_object().into_iter().flatten() {
        match k.as_str() {
            "path" => {
                let (tk, tv) = path(theirs);
                let (ok, ov) = path(&ours);
                let pick = match (tk, ok) {
                    _ if tk == ok && tv == ov => None,
                    (_, "PathPrefix") if ov == "/" => None,
                    ("PathPrefix", _) if tv == "/" => Some(v.clone()),
                    ("PathPrefix", "PathPrefix") if under(ov, tv) => Some(v.clone()),
                    ("PathPrefix", "PathPrefix") if under(tv, ov) => None,
                    ("PathPrefix", "Exact") if under(ov, tv) => Some(v.clone()),
                    ("Exact", "PathPrefix") if under(tv, ov) => None,
                    _ => {
                        return Err(format!(
                            "path {ok} `{ov}` cannot hold together with the rule's path {tk} `{tv}`"
                        ));
                    }
                };
                if let Some(p) = pick {
                    merged.insert("path".into(), p);
                }
            }
            "method" => match merged.get("method") {
                Some(m) if m != v => {
                    return Err(format!("method {v} differs from the rule's method {m}"));
                }
                _ => {
                    merged.insert("method".into(), v.clone());
                }
            },
            "headers" | "queryParams" => {
                let fold = k == "headers";
                let key = |i: &Value| item_key(i, fold);
                let mut list = merged
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in v.as_array().into_iter().flatten() {
                    match list.iter().find(|x| key(x) == key(item)) {
                        Some(x) if x != item => {
                            return Err(format!(
                                "{} `{}` is matched here and, differently, by the rule",
                                if fold { "header" } else { "query parameter" },
                                key(item)
                            ));
                        }
                        Some(_) => {}
                        None => list.push(item.clone()),
                    }
                }
                merged.insert(k.clone(), Value::Array(list));
            }
            _ => {}
        }
    }
    Ok(Value::Object(merged))
}

/// The test rule inserted before rule `i` of route `route` (its `all` rules): the plan's
/// matches crossed with rule `i`'s, the canary's Service as its only backend, and rule `i`'s
/// filters (not a mirror), timeouts and other fields.
pub fn rule(
    cx: &Context<'_>,
    route: &str,
    route_ns: Option<&str>,
    all: &[Value],
    i: usize,
) -> Result<Option<Value>> {
    if !cx.tests_canary() {
        return Ok(None);
    }
    let Some(base) = all.get(i) else {
        return Ok(None);
    };
    let mut crossed = Vec::new();
    for theirs in matches_of(base) {
        for ours in &cx.env.matches {
            match cross(&theirs, &ours.value) {
                Ok(m) => crossed.push(m),
                Err(why) => {
                    return Err(cx
                        .plan
                        .diag(ours.pos, format!("this test match and HTTPRoute {route}, rules[{i}] cannot both hold: {why}"))
                        .hint("a test rule matches the rule's own conditions AND the plan's: leave this field to the rule, or give it a value within the rule's")
                        .into());
                }
            }
        }
    }
    let mut test: Map<String, Value> = base.as_object().cloned().unwrap_or_default();
    if let Some(name) = base.get("name").and_then(Value::as_str) {
        let name = format!("{name}-canary");
        if all
            .iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some(&name))
        {
            return Err(cx
                .plan
                .diag(cx.env.matches.first().map(|m| m.pos).unwrap_or_default(), format!("HTTPRoute {route} already has a rule named `{name}`, the name of rules[{i}]'s test rule"))
                .hint("rename that rule in base")
                .into());
        }
        test.insert("name".into(), Value::String(name));
    }
    test.insert("matches".into(), Value::Array(crossed));
    let canary = version_service(cx, &cx.plan.canary.version.value);
    let backends: Vec<Value> = refs(base)
        .iter()
        .filter(|b| names_service(cx, b, route_ns))
        .map(|b| {
            let mut r = b.clone();
            if let Some(o) = r.as_object_mut() {
                o.insert("name".into(), Value::String(canary.clone()));
                o.remove("weight");
            }
            r
        })
        .collect();
    test.insert("backendRefs".into(), Value::Array(backends));
    let filters: Vec<Value> = base
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| f.get("type").and_then(Value::as_str) != Some("RequestMirror"))
        .cloned()
        .collect();
    if filters.is_empty() {
        test.remove("filters");
    } else {
        test.insert("filters".into(), Value::Array(filters));
    }
    Ok(Some(Value::Object(test)))
}

/// Whether two HTTPRoutes share a parent (a Gateway or, for GAMMA, a Service).
fn share_parent(a: &BaseObject, b: &BaseObject) -> bool {
    let parents = |hr: &BaseObject| -> Vec<(String, String, String)> {
        hr.value
            .at("/spec/parentRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                let s = |k: &str| p.get(k).and_then(Value::as_str);
                (
                    s("kind").unwrap_or("Gateway").to_string(),
                    s("namespace")
                        .or(hr.namespace())
                        .unwrap_or_default()
                        .to_string(),
                    s("name").unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let pa = parents(a);
    parents(b).iter().any(|p| pa.contains(p))
}

/// Refuses test rules that would take requests a rule to another backend serves today: a
/// test match more specific than a rule's match that, for the same requests, wins over the
/// Service's rule now (in `hr` or another HTTPRoute of base on the same parent).
pub fn refuse_stolen_requests(cx: &Context<'_>, hr: &BaseObject) -> Result<()> {
    let all = rules(hr);
    for (i, r) in all.iter().enumerate() {
        if !rule_sends_to_service(cx, hr, r) {
            continue;
        }
        let Some(test) = rule(cx, &hr.name, hr.namespace(), all, i)? else {
            continue;
        };
        let own = matches_of(r);
        let tests = matches_of(&test);
        for other in cx.base.of_kind("HTTPRoute") {
            let same = std::ptr::eq(other, hr);
            if !same && !share_parent(hr, other) {
                continue;
            }
            for (j, x) in rules(other).iter().enumerate() {
                if rule_sends_to_service(cx, other, x) {
                    continue;
                }
                for xm in matches_of(x) {
                    // `x` wins over the Service's rule for requests both match: more specific,
                    // or as specific and before it in the same route (across routes, assume it).
                    let x_wins = own.iter().any(|o| {
                        overlap(o, &xm)
                            && (rank(&xm) > rank(o) || (rank(&xm) == rank(o) && (!same || j < i)))
                    });
                    if let Some(t) = tests
                        .iter()
                        .find(|t| x_wins && overlap(t, &xm) && rank(t) > rank(&xm))
                    {
                        return Err(cx
                            .plan
                            .diag(cx.env.matches.first().map(|m| m.pos).unwrap_or_default(), format!(
                                "the test rule before HTTPRoute {}, rules[{i}] ({}) would be more specific than HTTPRoute {}, rules[{j}] ({}), and take requests that rule sends elsewhere today",
                                hr.name,
                                crate::explain::condition(t),
                                other.name,
                                crate::explain::condition(&xm)
                            ))
                            .hint("Gateway API sends a request to the most specific match, not the first: make the test match no more specific than that rule (fewer headers, no path), or route that rule's requests some other way")
                            .into());
                    }
                }
            }
        }
    }
    Ok(())
}
