//! DestinationRule subsets, one per version. A DestinationRule for the host in base is patched
//! (its traffic policy and other subsets stay); otherwise one is generated.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::base::BaseObject;
use crate::error::Result;
use crate::kinds::canary::objects::{
    Component, Context, Patch, PatchBody, Rendered, SYNC_WAVE, Target,
};
use crate::kinds::canary::stage::Subsets as SubsetSet;
use crate::selector;

pub struct Subsets;

/// The subsets the stage needs, as `{name, labels}` objects.
pub fn subsets(cx: &Context<'_>) -> Vec<Value> {
    let label = |version: &str| json!({cx.plan.version_label.clone(): version});
    let stable_labels = if cx.stable_subset_follows_canary() {
        label(&cx.plan.canary.version.value)
    } else {
        label(&cx.plan.stable.version.value)
    };
    let stable = json!({"name": cx.plan.stable.subset.value, "labels": stable_labels});
    let canary = json!({"name": cx.plan.canary.subset.value, "labels": label(&cx.plan.canary.version.value)});
    match cx.model.subsets {
        Some(SubsetSet::Both) => vec![stable, canary],
        Some(SubsetSet::CanaryOnly) => vec![canary],
        None => Vec::new(),
    }
}

/// The DestinationRule in base for the Service's host, if any.
pub fn in_base<'a>(cx: &Context<'a>) -> Option<&'a BaseObject> {
    cx.base.of_kind("DestinationRule").find(|d| {
        d.value
            .at("/spec/host")
            .and_then(Value::as_str)
            .is_some_and(|h| cx.is_service_host(h))
    })
}

impl Component for Subsets {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let wanted = subsets(cx);
        if wanted.is_empty() {
            return Ok(());
        }
        let names = wanted
            .iter()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" and ");
        let from = format!("subsets {names} for {}", cx.host);
        match in_base(cx) {
            Some(dr) => {
                let existing = dr.value.at("/spec/subsets").and_then(Value::as_array);
                let mut ops = Vec::new();
                let mut added = Vec::new();
                for s in &wanted {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                    let same_name = existing
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .find(|(_, e)| e.get("name").and_then(Value::as_str) == Some(name));
                    match same_name {
                        // A subset of that name is reused: our version label joins its labels
                        // (an Argo Rollouts-style subset without labels gets them).
                        Some((i, e)) => {
                            let mut merged = selector::labels_of(e.get("labels"));
                            merged.extend(selector::labels_of(s.get("labels")));
                            if merged != selector::labels_of(e.get("labels")) {
                                ops.push(json!({"op": "add", "path": format!("/spec/subsets/{i}/labels"), "value": selector::to_value(&merged)}));
                            }
                        }
                        None => added.push(s.clone()),
                    }
                }
                if existing.is_none() && !added.is_empty() {
                    ops.push(json!({"op": "add", "path": "/spec/subsets", "value": added}));
                } else {
                    for s in added {
                        ops.push(json!({"op": "add", "path": "/spec/subsets/-", "value": s}));
                    }
                }
                if !ops.is_empty() {
                    out.patches.push(Patch {
                        file: format!("patch-destinationrule-{}.yaml", cx.file_part(dr)?),
                        from,
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
                    format!("subsets {names} for Service {}", cx.service.name),
                )?);
            }
        }
        Ok(())
    }
}
