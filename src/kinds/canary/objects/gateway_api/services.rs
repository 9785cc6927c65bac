//! The per-version Services `<service>-<version>`: the Service's ports, and its selector
//! narrowed to one version's pods (the version label added, the version's own values for the
//! keys its pods override). Routes name them instead of the Service, so the Service itself
//! keeps its base selector in this mode.

use crate::pointer::Pointer as _;
use serde_json::{Map, Value, json};

use super::version_service;
use crate::error::{Diagnostics, Result};
use crate::kinds::canary::objects::{Component, Context, Rendered, SYNC_WAVE};
use crate::kinds::canary::plan::Method;
use crate::kinds::canary::stage::{Stage, StageModel, Subsets};
use crate::plan_file::Labels;
use crate::selector;

pub struct VersionServices;

/// The versions whose Services the stage renders, with their pod labels.
pub fn versions<'a>(cx: &'a Context<'_>) -> Vec<(&'a str, &'a Labels)> {
    let stable = (cx.plan.stable.version.value.as_str(), &cx.stable_pod_labels);
    let canary = (cx.plan.canary.version.value.as_str(), &cx.canary_pod_labels);
    let (s, c) = rendered_at(&cx.model);
    let mut out = Vec::new();
    if s {
        out.push(stable);
    }
    if c {
        out.push(canary);
    }
    out
}

/// Whether the stage renders the stable and the canary version's Service.
pub fn rendered_at(model: &StageModel) -> (bool, bool) {
    // A stage earlier than Istio's subsets: a Service's endpoints take a sync to appear (a
    // subset is only a label filter), so they exist from prepare, before `route` names them.
    let prepared = model.stage == Stage::Prepare && model.new_deployment;
    match model.subsets {
        Some(Subsets::Both) => (true, true),
        Some(Subsets::CanaryOnly) => (false, true),
        None if prepared => (true, true),
        None => (false, false),
    }
}

/// The stages that render a version's Service (the stable one, or the canary's), in words:
/// `prepare to cleanup-3`.
pub fn stages_rendering(method: Method, canary: bool) -> String {
    let at: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| {
            let (st, ca) = rendered_at(&StageModel::new(method, *s, Some(100)));
            if canary { ca } else { st }
        })
        .collect();
    match (at.first(), at.last()) {
        (Some(a), Some(b)) if a == b => format!("at {a}"),
        (Some(a), Some(b)) => format!("from {a} to {b}"),
        _ => "at no stage".to_string(),
    }
}

impl Component for VersionServices {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let mut d = Diagnostics::default();
        let base_selector = selector::labels_of(cx.service.value.at("/spec/selector"));
        for (version, pods) in versions(cx) {
            let name = version_service(cx, version);
            if let Some(taken) = cx.base.find("Service", &name) {
                // The base's own Service of this version (one Service per version, as with
                // Istio's subsets in base) is reused, if it selects that version's pods.
                let theirs = selector::labels_of(taken.value.at("/spec/selector"));
                if theirs.is_empty() || !selector::map_matches(&theirs, pods) {
                    d.push(
                        taken
                            .error(&["spec", "selector"], format!("the base has a Service `{name}`, the name of version {version}'s Service, and it does not select that version's pods"))
                            .hint(format!("in Gateway API mode `<service>-<version>` is each version's Service: select `{}: {version}` in it, or rename it", cx.plan.version_label)),
                    );
                }
                continue;
            }
            let mut sel = Map::new();
            for (k, v) in &base_selector {
                let value = pods.get(k).unwrap_or(v);
                sel.insert(k.clone(), Value::String(value.clone()));
            }
            sel.insert(
                cx.plan.version_label.clone(),
                Value::String(version.to_string()),
            );
            let ports: Vec<Value> = cx
                .service_ports()
                .iter()
                .map(|p| {
                    let mut kept = Map::new();
                    for k in ["name", "protocol", "appProtocol", "port", "targetPort"] {
                        if let Some(v) = p.get(k) {
                            kept.insert(k.to_string(), v.clone());
                        }
                    }
                    Value::Object(kept)
                })
                .collect();
            let labels = cx
                .service
                .value
                .at("/metadata/labels")
                .cloned()
                .unwrap_or(Value::Null);
            d.take(
                cx.new_resource(
                    "version-service.yaml.j2",
                    ("v1", "Service"),
                    &name,
                    json!({
                        "labels": labels,
                        "annotations": {SYNC_WAVE.0: SYNC_WAVE.1},
                        "ports": ports,
                        "selector": sel,
                    }),
                    Vec::new(),
                    format!(
                        "the Service of version {version}: Service {}'s ports, its pods only",
                        cx.service.name
                    ),
                )
                .map(|r| out.resources.push(r)),
            );
        }
        d.into_result()
    }
}
