//! Shadow traffic (`mirror:`): the selected http routes copy a percent of their requests to
//! the canary subset while the stable subset still serves (stages route and shift); the
//! copies' responses are dropped by the sidecar.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::Context;

/// The mirrored percent at this stage (`Context::mirror_percent`).
pub fn percent(cx: &Context<'_>) -> Option<f64> {
    cx.mirror_percent()
}

/// Istio's `Percent`: a double, written as an integer when it is whole (`10`, `0.5`), as
/// kustomize writes it back.
pub fn percentage(p: f64) -> Value {
    if p.fract() == 0.0 && (0.0..=100.0).contains(&p) {
        json!({ "value": p as u8 })
    } else {
        json!({ "value": p })
    }
}

/// The patch operations that make http route `i` mirror to the canary: `mirror` and
/// `mirrorPercentage`, or one more entry in `mirrors` where base already lists some. A
/// route that already has a `mirror` is refused: one route has one `mirror`.
pub fn ops(cx: &Context<'_>, vs: &BaseObject, kind: &str, i: usize) -> Result<Vec<Value>> {
    let Some(p) = percent(cx) else {
        return Ok(Vec::new());
    };
    if kind != "http" {
        return Ok(Vec::new());
    }
    let Some(route) = vs.value.at(&format!("/spec/http/{i}")) else {
        return Ok(Vec::new());
    };
    let dest = super::split::service_destination(cx, vs, kind, i)?;
    let mut target = dest
        .get("destination")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(t) = target.as_object_mut() {
        t.insert(
            "subset".into(),
            Value::String(cx.plan.canary.subset.value.clone()),
        );
    }
    if let Some(existing) = route.get("mirror") {
        let to = existing
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("another host");
        return Err(vs
            .error(
                &["spec", "http", &i.to_string(), "mirror"],
                format!(
                    "route http[{i}] of VirtualService {} already mirrors to {to}, and the plan has `mirror`",
                    vs.name
                ),
            )
            .hint("a route has one `mirror`: write the base's as `mirrors: [{destination: ..., percentage: ...}]` (Istio 1.22 and later) and canaryplan adds the canary to that list, or remove `mirror` from the plan")
            .into());
    }
    let base = format!("/spec/http/{i}");
    if route.get("mirrors").is_some_and(Value::is_array) {
        return Ok(vec![json!({
            "op": "add",
            "path": format!("{base}/mirrors/-"),
            "value": {"destination": target, "percentage": percentage(p)},
        })]);
    }
    Ok(vec![
        json!({"op": "add", "path": format!("{base}/mirror"), "value": target}),
        json!({"op": "add", "path": format!("{base}/mirrorPercentage"), "value": percentage(p)}),
    ])
}
