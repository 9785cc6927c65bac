//! Versioned releases: callers that no HTTPRoute weights (no sidecar, ambient without a
//! waypoint, node ports) reach whatever the base Service selects, by pod count. When that is
//! the stable Deployment alone in base, the Service is narrowed to the stable version from
//! prepare (before the canary's pods exist) through shift, and to the canary's at cleanup-1
//! (when every route names it); from cleanup-2 the stable Deployment is gone and the base
//! selector again selects exactly the canary. Weight 0 is then 0 for every caller.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::kinds::canary::objects::{Component, Context, Patch, Rendered, Target};
use crate::kinds::canary::plan::Method;
use crate::kinds::canary::stage::Stage;
use crate::selector;

pub struct BaseService;

/// The base Deployments, other than the plan's two versions, whose pods the Service selects.
pub fn other_workloads<'a>(cx: &'a Context<'_>) -> Vec<&'a str> {
    let sel = selector::labels_of(cx.service.value.at("/spec/selector"));
    let canary = cx.plan.new_deployment_name();
    cx.base
        .of_kind("Deployment")
        .filter(|d| d.name != cx.plan.workload.value && d.name != canary)
        .filter(|d| {
            let pods = selector::labels_of(d.value.at("/spec/template/metadata/labels"));
            selector::map_matches(&sel, &pods)
        })
        .map(|d| d.name.as_str())
        .collect()
}

/// The version the Service is narrowed to at this stage, if it is.
pub fn narrowed_to<'a>(cx: &'a Context<'_>) -> Option<&'a str> {
    if cx.plan.method != Method::Versioned || cx.base_edited || !other_workloads(cx).is_empty() {
        return None;
    }
    match cx.model.stage {
        Stage::Prepare | Stage::Route | Stage::Shift => Some(&cx.plan.stable.version.value),
        Stage::Cleanup1 => Some(&cx.plan.canary.version.value),
        Stage::Cleanup2 | Stage::Cleanup3 | Stage::Done => None,
    }
}

impl Component for BaseService {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> crate::error::Result<()> {
        let Some(version) = narrowed_to(cx) else {
            return Ok(());
        };
        let name = &cx.service.name;
        out.patches.push(Patch::merge(
            format!("patch-service-{}.yaml", cx.file_part(cx.service)?),
            format!(
                "Service {name} narrowed to version {version}: callers no HTTPRoute weights reach only its pods"
            ),
            Target::of(cx.service),
            json!({"spec": {"selector": {cx.plan.version_label.clone(): Value::String(version.to_string())}}}),
        ));
        Ok(())
    }
}
