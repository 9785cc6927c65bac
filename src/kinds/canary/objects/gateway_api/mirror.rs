//! Shadow traffic (`mirror:`): a `RequestMirror` filter on each rule that sends to the Service,
//! copying a percent of its requests to the canary's Service while the stable one still serves
//! (stages route and shift). Whole percents are written as `percent`, others as a `fraction`.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use super::{names_service, version_service};
use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::Context;

/// The filter's `percent` (whole percents) or `fraction` (e.g. 0.5% = 5/1000).
pub fn amount(p: f64) -> (&'static str, Value) {
    if p.fract() == 0.0 {
        return ("percent", json!(p as u64));
    }
    let mut denominator: u64 = 100;
    while denominator < 1_000_000 && ((p * denominator as f64 / 100.0).fract()).abs() > 1e-9 {
        denominator *= 10;
    }
    let numerator = (p * denominator as f64 / 100.0).round() as u64;
    (
        "fraction",
        json!({"numerator": numerator, "denominator": denominator}),
    )
}

/// The RequestMirror filter rule `i` of `hr` gets at this stage, if any. A rule that already
/// mirrors to the Service or a version Service is refused (it would be mirrored twice).
pub fn filter(cx: &Context<'_>, hr: &BaseObject, i: usize, rule: &Value) -> Result<Option<Value>> {
    let Some(p) = cx.mirror_percent() else {
        return Ok(None);
    };
    let ours = |b: &Value| {
        names_service(cx, b, hr.namespace())
            || b.get("name").and_then(Value::as_str).is_some_and(|n| {
                n == version_service(cx, &cx.plan.stable.version.value)
                    || n == version_service(cx, &cx.plan.canary.version.value)
            })
    };
    let filters = rule
        .get("filters")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (k, f) in filters.iter().enumerate() {
        if let Some(b) = f.at("/requestMirror/backendRef")
            && ours(b)
        {
            return Err(hr
                .error(&["spec", "rules", &i.to_string(), "filters", &k.to_string()], format!("HTTPRoute {}, rules[{i}] already mirrors to Service {}", hr.name, b.get("name").and_then(Value::as_str).unwrap_or_default()))
                .hint("remove this filter from base, or remove `mirror` from the plan: canaryplan mirrors to the canary's Service itself")
                .into());
        }
    }
    let port = super::http_routes::refs(rule)
        .iter()
        .find(|b| names_service(cx, b, hr.namespace()))
        .and_then(|b| b.get("port"))
        .cloned();
    Ok(Some(mirror_filter(cx, p, port)))
}

/// On a rule shared with other backends the mirror is a filter of the stable version's
/// backendRef (Gateway API: "executed if and only if the request is being forwarded to the
/// backend defined here"; support is implementation-specific). Istio's translation accepts
/// only header modifiers there and rejects the route otherwise: refused where the route's
/// Gateway in base is of class `istio`.
pub fn refuse_where_unsupported(cx: &Context<'_>, hr: &BaseObject, i: usize) -> Result<()> {
    let parents = hr
        .value
        .at("/spec/parentRefs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for p in parents {
        let s = |k: &str| p.get(k).and_then(Value::as_str);
        if s("kind").is_some_and(|k| k != "Gateway") {
            continue;
        }
        let Some(gw) = s("name").and_then(|n| cx.base.find("Gateway", n)) else {
            continue;
        };
        let class = gw
            .value
            .at("/spec/gatewayClassName")
            .and_then(Value::as_str);
        if class == Some("istio") {
            return Err(hr
                .error(&["spec", "rules", &i.to_string(), "backendRefs"], format!("HTTPRoute {}, rules[{i}] sends to other backends besides Service {}: to mirror only its requests canaryplan puts the RequestMirror filter on the backendRef of {}, and Gateway {} (class istio) rejects mirror filters on a backendRef", hr.name, cx.service.name, version_service(cx, &cx.plan.stable.version.value), gw.name))
                .hint("give the Service a rule of its own in base (a match that tells its requests apart), or set `mirror: 0` on this environment")
                .into());
        }
    }
    Ok(())
}

/// A RequestMirror filter to the canary's Service on `port`.
pub fn mirror_filter(cx: &Context<'_>, p: f64, port: Option<Value>) -> Value {
    let mut backend = json!({"name": version_service(cx, &cx.plan.canary.version.value)});
    if let (Some(port), Some(o)) = (port, backend.as_object_mut()) {
        o.insert("port".into(), port);
    }
    let (key, value) = amount(p);
    json!({"type": "RequestMirror", "requestMirror": {"backendRef": backend, key: value}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_percents_are_percent_and_others_a_fraction() {
        assert_eq!(amount(10.0), ("percent", json!(10)));
        assert_eq!(
            amount(0.5),
            ("fraction", json!({"numerator": 5, "denominator": 1000}))
        );
        assert_eq!(
            amount(12.25),
            ("fraction", json!({"numerator": 1225, "denominator": 10000}))
        );
    }
}
