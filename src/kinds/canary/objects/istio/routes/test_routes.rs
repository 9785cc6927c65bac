//! Test traffic (`match:`): before each selected http route, a route of the plan's match
//! conditions crossed with the route's own, to the canary subset alone.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::Context;
use crate::kinds::canary::stage::Routing;

/// Whether the stage renders test routes (`match:`).
pub fn tests_canary(cx: &Context<'_>) -> bool {
    cx.tests_canary()
}

/// The test route inserted before route `i`: the plan's `match` crossed with the route's own
/// conditions, the canary subset as its only destination, and the route's retries, timeout,
/// CORS, header changes, fault and rewrite (not its mirror). It must come first: Istio takes
/// the first route whose conditions match, so after `i` it would never see a request.
pub fn test_route(
    cx: &Context<'_>,
    vs: &BaseObject,
    kind: &str,
    i: usize,
) -> Result<Option<Value>> {
    // tcp and tls routes cannot match headers: they get the weights only.
    if !tests_canary(cx) || kind != "http" {
        return Ok(None);
    }
    let Some(route) = vs.value.at(&format!("/spec/http/{i}")) else {
        return Ok(None);
    };
    let own: Vec<Value> = route
        .get("match")
        .and_then(Value::as_array)
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})]);
    let mut matches = Vec::new();
    for theirs in &own {
        for ours in &cx.env.matches {
            let mut merged = theirs.as_object().cloned().unwrap_or_default();
            for (k, v) in ours.value.as_object().into_iter().flatten() {
                match merged.get(k) {
                    Some(existing) if existing != v && k != "headers" => {
                        return Err(cx
                            .plan
                            .diag(ours.pos, format!("`{k}` is set here and, differently, on route http[{i}] of VirtualService {}", vs.name))
                            .hint("a test route matches the route's own conditions AND the plan's: leave this field to the route, or give it the route's value")
                            .into());
                    }
                    Some(existing) if k == "headers" => {
                        let mut headers = existing.as_object().cloned().unwrap_or_default();
                        for (h, m) in v.as_object().into_iter().flatten() {
                            if headers.get(h).is_some_and(|x| x != m) {
                                return Err(cx
                                    .plan
                                    .diag(ours.pos, format!("header `{h}` is matched here and, differently, on route http[{i}] of VirtualService {}", vs.name))
                                    .hint("leave this header to the route, or match it the same way")
                                    .into());
                            }
                            headers.insert(h.clone(), m.clone());
                        }
                        merged.insert(k.clone(), Value::Object(headers));
                    }
                    _ => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            matches.push(Value::Object(merged));
        }
    }
    let name = match route.get("name").and_then(Value::as_str) {
        Some(n) => format!("{n}-canary"),
        None => format!("canary-{i}"),
    };
    let taken = vs
        .value
        .at("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| r.get("name").and_then(Value::as_str) == Some(&name));
    if taken {
        return Err(vs
            .error(&["spec", "http", &i.to_string()], format!("VirtualService {} already has a route named `{name}`, the name of this route's test route", vs.name))
            .hint("rename that route in base")
            .into());
    }
    let mut test = serde_json::Map::new();
    test.insert("name".into(), Value::String(name));
    test.insert("match".into(), Value::Array(matches));
    let destination = super::split::split(cx, vs, "http", i, Routing::CanaryOnly)?;
    test.insert("route".into(), destination);
    for keep in [
        "rewrite",
        "timeout",
        "retries",
        "fault",
        "corsPolicy",
        "headers",
    ] {
        if let Some(v) = route.get(keep) {
            test.insert(keep.into(), v.clone());
        }
    }
    Ok(Some(Value::Object(test)))
}
