//! The workload: the pinned stable copy `<workload>-<stable.version>` and the patch that labels
//! the original Deployment's pods as the canary (its selector is immutable and never touched).
//! With the coexistence method, environment variables choose each copy's implementation.

use serde_json::{Value, json};

use super::{
    Component, Context, Patch, Rendered, Resource, SYNC_WAVE, Target, strip_server_fields,
};
use crate::error::Result;
use crate::plan::{Labels, Method};
use crate::selector;

pub struct Workload;

impl Component for Workload {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let main = main_container(cx)?;
        if cx.model.stable_copy {
            out.resources.push(stable_copy(cx, main)?);
        }
        if cx.model.canary_pod_labels {
            let mut labels = Labels::new();
            labels.insert(
                cx.plan.version_label.clone(),
                cx.plan.canary.version.value.clone(),
            );
            labels.extend(cx.plan.pod_labels.clone());
            out.patches.push(Patch::merge(
                format!("patch-deployment-{}.yaml", cx.workload.name),
                format!("the version label on Deployment {}'s pods", cx.workload.name),
                Target::of(cx.workload),
                json!({"spec": {"template": {"metadata": {"labels": selector::to_value(&labels)}}}}),
            ));
        }
        if cx.plan.method == Method::Coexistence && cx.model.stage == crate::stage::Stage::Done {
            check_canary_env_in_base(cx, main)?;
        }
        if cx.plan.method == Method::Coexistence
            && canary_env_applies(cx)
            && !cx.plan.canary.env.is_empty()
        {
            let container = cx
                .workload
                .value
                .pointer(&format!("/spec/template/spec/containers/{main}"));
            let ops = env_ops(
                &format!("/spec/template/spec/containers/{main}"),
                container,
                &cx.plan.canary.env,
            );
            if !ops.is_empty() {
                out.patches.push(Patch {
                    file: format!("patch-deployment-{}-env.yaml", cx.workload.name),
                    from: format!("canary.env on Deployment {}", cx.workload.name),
                    target: Target::of(cx.workload),
                    body: super::PatchBody::Json(ops),
                });
            }
        }
        Ok(())
    }
}

/// The canary implementation is switched on once traffic starts to reach it (shift with a
/// weight above 0) and stays on; before that the original keeps behaving as stable.
fn canary_env_applies(cx: &Context<'_>) -> bool {
    use crate::stage::Stage;
    match cx.model.stage {
        Stage::Prepare | Stage::Route => false,
        Stage::Shift => cx.model.weight.unwrap_or(0) > 0,
        Stage::Cleanup1 | Stage::Cleanup2 | Stage::Cleanup3 => true,
        Stage::Done => false,
    }
}

/// At `done` nothing beyond the base is rendered: unless the base's Deployment already runs the
/// canary implementation, `done` would quietly switch it back to stable's.
fn check_canary_env_in_base(cx: &Context<'_>, main: usize) -> Result<()> {
    let env = cx
        .workload
        .value
        .pointer(&format!("/spec/template/spec/containers/{main}/env"))
        .and_then(Value::as_array);
    let has = |k: &str, v: &str| {
        env.into_iter().flatten().any(|e| {
            e.get("name").and_then(Value::as_str) == Some(k)
                && e.get("value").and_then(Value::as_str) == Some(v)
        })
    };
    let missing: Vec<String> = cx
        .plan
        .canary
        .env
        .iter()
        .filter(|(k, v)| !has(k, v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(cx
        .plan
        .diag(cx.env.stage.pos, format!("at done Deployment {} would go back to the stable implementation: its base lacks {}", cx.workload.name, missing.join(", ")))
        .hint("put canary.env into the base Deployment's env and sync it while at cleanup-3, then advance to done")
        .into())
}

/// Index of the main container: the one `stable.container` names, or the first.
fn main_container(cx: &Context<'_>) -> Result<usize> {
    let containers = cx
        .workload
        .value
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            cx.workload
                .error(
                    &["spec", "template", "spec"],
                    format!("Deployment {} has no containers", cx.workload.name),
                )
                .hint("the workload must be a Deployment with at least one container")
        })?;
    let Some(wanted) = &cx.plan.stable.container else {
        return Ok(0);
    };
    containers
        .iter()
        .position(|c| c.get("name").and_then(Value::as_str) == Some(&wanted.value))
        .ok_or_else(|| {
            let names: Vec<&str> = containers
                .iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect();
            cx.plan
                .diag(
                    wanted.pos,
                    format!(
                        "Deployment {} has no container `{}`",
                        cx.workload.name, wanted.value
                    ),
                )
                .hint(format!("its containers are {}", names.join(", ")))
                .into()
        })
}

fn stable_copy(cx: &Context<'_>, main: usize) -> Result<Resource> {
    let name = cx.plan.stable_copy_name();
    let mut deployment = cx.workload.value.clone();
    strip_server_fields(&mut deployment);
    let mut labels = selector::labels_of(deployment.pointer("/metadata/labels"));
    labels.extend(cx.plan.stable.labels.clone());
    labels.insert(
        cx.plan.version_label.clone(),
        cx.plan.stable.version.value.clone(),
    );
    let mut annotations = deployment
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(SYNC_WAVE.0.into(), Value::String(SYNC_WAVE.1.into()));

    let mut spec = deployment.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(s) = spec.as_object_mut() {
        s.insert("selector".into(), cx.stable_selector.clone());
    }
    if let Some(meta) = spec
        .pointer_mut("/template/metadata")
        .and_then(Value::as_object_mut)
    {
        meta.insert("labels".into(), selector::to_value(&cx.stable_pod_labels));
    }
    let container_path = format!("/template/spec/containers/{main}");
    match cx.plan.method {
        Method::Succession => {
            if let (Some(c), Some(image)) = (
                spec.pointer_mut(&container_path)
                    .and_then(Value::as_object_mut),
                &cx.plan.stable.image,
            ) {
                c.insert("image".into(), Value::String(image.value.clone()));
            }
        }
        Method::Coexistence => {
            let ops = env_ops(
                &container_path,
                spec.pointer(&container_path),
                &cx.plan.stable.env,
            );
            if !ops.is_empty()
                && let Ok(p) = serde_json::from_value::<json_patch::Patch>(Value::Array(ops))
            {
                // The operations were built against this very container; they apply.
                let _ = json_patch::patch(&mut spec, &p);
            }
        }
    }
    cx.new_resource(
        "stable-copy.yaml.j2",
        ("apps/v1", "Deployment"),
        &name,
        json!({
            "labels": selector::to_value(&labels),
            "annotations": annotations,
            "workload": cx.workload.name,
            "version": cx.plan.stable.version.value,
        }),
        vec![("spec", spec)],
        format!(
            "Deployment {} in base, pinned to stable version {}",
            cx.workload.name, cx.plan.stable.version.value
        ),
    )
}

/// JSON-patch operations that set `env` on the container at `path` (a JSON pointer), keeping
/// every other variable.
fn env_ops(path: &str, container: Option<&Value>, env: &Labels) -> Vec<Value> {
    let existing = container
        .and_then(|c| c.get("env"))
        .and_then(Value::as_array);
    let Some(existing) = existing else {
        if env.is_empty() {
            return Vec::new();
        }
        let list: Vec<Value> = env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        return vec![json!({"op": "add", "path": format!("{path}/env"), "value": list})];
    };
    let mut ops = Vec::new();
    for (k, v) in env {
        match existing.iter().position(|e| e.get("name").and_then(Value::as_str) == Some(k)) {
            Some(i) => ops.push(json!({"op": "replace", "path": format!("{path}/env/{i}"), "value": {"name": k, "value": v}})),
            None => ops.push(json!({"op": "add", "path": format!("{path}/env/-"), "value": {"name": k, "value": v}})),
        }
    }
    ops
}
