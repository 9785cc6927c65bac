//! DestinationRule subsets, one per version. A DestinationRule for the host in base is patched
//! (its traffic policy and other subsets stay); otherwise one is generated.

use serde_json::{Value, json};

use super::{Component, Context, Patch, PatchBody, Rendered, SYNC_WAVE, Target};
use crate::base::BaseObject;
use crate::error::Result;

pub struct Subsets;

/// The subsets both versions need, as `(name, labels)`.
pub fn subsets(cx: &Context<'_>) -> Vec<Value> {
    [&cx.plan.stable.version.value, &cx.plan.canary.version.value]
        .into_iter()
        .map(|v| json!({"name": v, "labels": {cx.plan.version_label.clone(): v}}))
        .collect()
}

/// The DestinationRule in base for the Service's host, if any.
pub fn in_base<'a>(cx: &Context<'a>) -> Option<&'a BaseObject> {
    cx.base.of_kind("DestinationRule").find(|d| {
        d.value
            .pointer("/spec/host")
            .and_then(Value::as_str)
            .is_some_and(|h| cx.is_service_host(h))
    })
}

impl Component for Subsets {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        if !cx.model.subsets {
            return Ok(());
        }
        let wanted = subsets(cx);
        match in_base(cx) {
            Some(dr) => {
                let existing = dr.value.pointer("/spec/subsets").and_then(Value::as_array);
                let mut ops = Vec::new();
                for s in &wanted {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                    let same_name = existing
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .find(|(_, e)| e.get("name").and_then(Value::as_str) == Some(name));
                    match same_name {
                        Some((_, e)) if e.get("labels") == s.get("labels") => {}
                        Some((i, _)) => {
                            return Err(dr
                                .error(&["spec", "subsets", &i.to_string()], format!("DestinationRule {} already has a subset `{name}` with other labels", dr.name))
                                .hint("rename the version in the plan, or remove that subset from base")
                                .into());
                        }
                        None if existing.is_none() && ops.is_empty() => {
                            ops.push(json!({"op": "add", "path": "/spec/subsets", "value": [s]}))
                        }
                        None if existing.is_none() => {
                            if let Some(list) = ops
                                .first_mut()
                                .and_then(|o| o.get_mut("value"))
                                .and_then(Value::as_array_mut)
                            {
                                list.push(s.clone());
                            }
                        }
                        None => {
                            ops.push(json!({"op": "add", "path": "/spec/subsets/-", "value": s}))
                        }
                    }
                }
                if !ops.is_empty() {
                    out.patches.push(Patch {
                        file: format!("patch-destinationrule-{}.yaml", cx.file_part(dr)?),
                        from: format!(
                            "subsets {} and {} for {}",
                            cx.plan.stable.version.value, cx.plan.canary.version.value, cx.host
                        ),
                        target: Target::of(dr),
                        body: PatchBody::Json(ops),
                    });
                }
            }
            None => {
                let name = cx.service.name.clone();
                if cx.base.find("DestinationRule", &name).is_some() {
                    return Err(cx
                        .plan
                        .diag(cx.plan.service.pos, format!("the base has a DestinationRule `{name}` for another host"))
                        .hint("rename it, or point its host at the Service so canaryplan adds the subsets to it")
                        .into());
                }
                out.resources.push(cx.new_resource(
                    "destination-rule.yaml.j2",
                    ("networking.istio.io/v1", "DestinationRule"),
                    &name,
                    json!({"host": cx.host, "subsets": wanted, "annotations": {SYNC_WAVE.0: SYNC_WAVE.1}}),
                    Vec::new(),
                    format!("subsets {} and {} for Service {}", cx.plan.stable.version.value, cx.plan.canary.version.value, cx.service.name),
                )?);
            }
        }
        Ok(())
    }
}
