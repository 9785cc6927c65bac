//! The workload: the pinned stable copy `<workload>-<stable.version>` and the patch that labels
//! the original Deployment's pods as the canary (its selector is immutable and never touched).
//! With the coexistence method, environment variables choose each copy's implementation.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use super::{
    Component, Context, Patch, Rendered, Resource, SYNC_WAVE, Target, strip_server_fields,
};
use crate::error::Result;
use crate::kinds::canary::plan::{Labels, Method};
use crate::selector;

pub struct Workload;

impl Component for Workload {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let main = main_container(cx)?;
        if cx.plan.method == Method::Versioned {
            return versioned(cx, main, out);
        }
        if cx.plan.method == Method::Succession {
            stable_image_in_base(cx, main)?;
        }
        if cx.model.new_deployment {
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
        if cx.plan.method == Method::Coexistence
            && cx.model.stage == crate::kinds::canary::stage::Stage::Done
        {
            check_canary_env_in_base(cx, main)?;
        }
        if cx.plan.method == Method::Coexistence
            && canary_env_applies(cx)
            && !cx.plan.canary.env.is_empty()
        {
            let container = cx
                .workload
                .value
                .at(&format!("/spec/template/spec/containers/{main}"));
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

/// The image of the workload's main container in this environment's base.
fn base_image<'a>(cx: &Context<'a>, main: usize) -> Option<&'a str> {
    cx.workload
        .value
        .at(&format!("/spec/template/spec/containers/{main}/image"))
        .and_then(Value::as_str)
}

/// Succession: while the original Deployment serves as "stable" (prepare, route: all traffic
/// reaches it), it must run the stable image. New code in a base shared with another
/// environment would otherwise reach 100% of that environment's traffic untested.
fn stable_image_in_base(cx: &Context<'_>, main: usize) -> Result<()> {
    use crate::kinds::canary::stage::Stage;
    let (Some(stable), Some(image)) = (&cx.plan.stable.image, base_image(cx, main)) else {
        return Ok(());
    };
    if !matches!(cx.model.stage, Stage::Prepare | Stage::Route) || image == stable.value {
        return Ok(());
    }
    Err(cx
        .plan
        .diag(
            cx.env.stage.pos,
            format!(
                "at stage {} all of environment `{}`'s traffic reaches Deployment {}, whose base runs image {image}, not stable.image {}",
                cx.model.stage, cx.env.name.value, cx.workload.name, stable.value
            ),
        )
        .hint(format!(
            "new code goes into the base only once this environment is at shift (weight 0 first); keep {} at the stable image in `{}`: give this environment its own base (`environments.{}.base`) or advance it to shift first",
            cx.workload.name, cx.env.base.value, cx.env.name.value
        ))
        .into())
}

/// The versioned method: a new Deployment `<app>-<canary.version>` beside the stable one,
/// which stays as base has it until cleanup-2 removes it.
fn versioned(cx: &Context<'_>, main: usize, out: &mut Rendered) -> Result<()> {
    if cx.base_edited {
        return Ok(());
    }
    let vl = &cx.plan.version_label;
    let stable = &cx.plan.stable.version.value;
    let template = &cx.original_pod_labels;
    if template.get(vl) != Some(stable) {
        return Err(cx
            .workload
            .error(
                &["spec", "template", "metadata", "labels"],
                format!(
                    "the pods of Deployment {} are not labelled `{vl}: {stable}`",
                    cx.workload.name
                ),
            )
            .hint(format!(
                "the versioned method needs the stable Deployment's pods labelled with stable.version; label them, or set versionLabel/stable.version to what they carry{}",
                template.get(vl).map(|v| format!(" (`{v}`)")).unwrap_or_default()
            ))
            .into());
    }
    let selects_version = selector::labels_of(cx.workload.value.at("/spec/selector/matchLabels"))
        .get(vl)
        .is_some();
    if !selects_version {
        return Err(cx
            .workload
            .error(
                &["spec", "selector"],
                format!(
                    "the selector of Deployment {} does not hold `{vl}`, so it would also select the canary's pods",
                    cx.workload.name
                ),
            )
            .hint(format!(
                "with one Deployment per version each selector holds the version label (`{vl}: {stable}`); without it, use `method: succession`"
            ))
            .into());
    }
    let name = cx.plan.new_deployment_name();
    let in_base = cx.base.find("Deployment", &name);
    if let Some(existing) = in_base {
        // The base's own canary (the end state committed early) runs canary.image with the
        // canary's version label; anything else of that name is another version.
        let labels = selector::labels_of(existing.value.at("/spec/template/metadata/labels"));
        let image = existing
            .value
            .at(&format!("/spec/template/spec/containers/{main}/image"))
            .and_then(Value::as_str);
        let canary_image = cx.plan.canary.image.as_ref().map(|i| i.value.as_str());
        let canary = &cx.plan.canary.version.value;
        if labels.get(vl) == Some(canary) && image != canary_image {
            // The version already runs (Istio's helloworld: v1 and v2 side by side): the
            // release can shift to it as it is, or bring a new image under a new version.
            let at = cx
                .plan
                .canary
                .image
                .as_ref()
                .map(|i| i.pos)
                .unwrap_or(cx.plan.canary.version.pos);
            return Err(cx
                .plan
                .diag(at, format!("the base already runs Deployment {name} of version {canary}, with image {}, not canary.image", image.unwrap_or("(none)")))
                .hint("a release adds its canary version: choose a canary.version no Deployment in base uses (e.g. the next one); a version that already serves requests is not a canary")
                .into());
        }
        let releasing = matches!(
            cx.model.stage,
            crate::kinds::canary::stage::Stage::Prepare
                | crate::kinds::canary::stage::Stage::Route
                | crate::kinds::canary::stage::Stage::Shift
        );
        if labels.get(vl) == Some(canary) && releasing {
            // Istio's helloworld runs v1 and v2 side by side, and its Service splits their
            // requests by pod count: a release from v1 "to v2" would first pin every route to
            // v1 (prepare changes no traffic, so it is refused by the invariants too).
            return Err(cx
                .plan
                .diag(cx.plan.canary.version.pos, format!("the base already runs Deployment {name} of the canary version {canary}: it serves requests beside the stable version, and the release would first pin them all to the stable one, taking its share away"))
                .hint(format!("a release adds a version the base does not run yet: choose a new canary.version (e.g. the next one); to move from the stable version to the {name} that runs, change the base's routes (or remove the stable Deployment) in a reviewed commit of its own"))
                .into());
        }
        if labels.get(vl) != Some(canary) {
            return Err(cx
                .plan
                .diag(
                    cx.plan.canary.version.pos,
                    format!("the canary Deployment would be {name}, but the base already has a Deployment {name} whose pods are labelled {}", labels.get(vl).map(|v| format!("`{vl}: {v}`")).unwrap_or_else(|| format!("without `{vl}`"))),
                )
                .hint("choose a canary.version no Deployment in base uses")
                .into());
        }
    }
    if cx.model.new_deployment && in_base.is_none() {
        out.resources.push(canary_deployment(cx, main, &name)?);
    }
    if cx.model.stable_removed {
        out.patches.push(Patch {
            file: format!("delete-deployment-{}.yaml", cx.workload.name),
            from: format!(
                "Deployment {} (stable version {stable}) removed: no route names it",
                cx.workload.name
            ),
            target: Target::of(cx.workload),
            body: super::PatchBody::Delete,
        });
    }
    Ok(())
}

/// What the Deployment canaryplan adds (stable copy or versioned canary) takes from the
/// workload: its annotations, with the sync wave that applies it before any route uses it, and
/// its spec, with the new Deployment's own selector and pod labels.
fn new_deployment_parts(
    cx: &Context<'_>,
    deployment: &Value,
) -> (serde_json::Map<String, Value>, Value) {
    let mut annotations = deployment
        .at("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(SYNC_WAVE.0.into(), Value::String(SYNC_WAVE.1.into()));
    let mut spec = deployment.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(s) = spec.as_object_mut() {
        s.insert("selector".into(), cx.new_selector.clone());
    }
    if let Some(meta) = spec
        .at_mut("/template/metadata")
        .and_then(Value::as_object_mut)
    {
        meta.insert("labels".into(), selector::to_value(&cx.new_pod_labels));
    }
    (annotations, spec)
}

fn canary_deployment(cx: &Context<'_>, main: usize, name: &str) -> Result<Resource> {
    let mut deployment = cx.workload.value.clone();
    strip_server_fields(&mut deployment);
    let vl = &cx.plan.version_label;
    let canary = &cx.plan.canary.version.value;
    let mut labels = selector::labels_of(deployment.at("/metadata/labels"));
    if labels.contains_key(vl) {
        labels.insert(vl.clone(), canary.clone());
    }
    let (annotations, mut spec) = new_deployment_parts(cx, &deployment);
    if let (Some(c), Some(image)) = (
        spec.at_mut(&format!("/template/spec/containers/{main}"))
            .and_then(Value::as_object_mut),
        &cx.plan.canary.image,
    ) {
        c.insert("image".into(), Value::String(image.value.clone()));
    }
    cx.new_resource(
        "stable-copy.yaml.j2",
        ("apps/v1", "Deployment"),
        name,
        json!({
            "labels": selector::to_value(&labels),
            "annotations": annotations,
            "workload": cx.workload.name,
            "version": canary,
        }),
        vec![("spec", spec)],
        format!(
            "Deployment {} in base, as the canary version {canary}",
            cx.workload.name
        ),
    )
}

/// The canary implementation is switched on once traffic starts to reach it (shift with a
/// weight above 0) and stays on; before that the original keeps behaving as stable.
fn canary_env_applies(cx: &Context<'_>) -> bool {
    use crate::kinds::canary::stage::Stage;
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
        .at(&format!("/spec/template/spec/containers/{main}/env"))
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
        .at("/spec/template/spec/containers")
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
    let name = cx.plan.new_deployment_name();
    let mut deployment = cx.workload.value.clone();
    strip_server_fields(&mut deployment);
    let mut labels = selector::labels_of(deployment.at("/metadata/labels"));
    labels.extend(cx.plan.stable.labels.clone());
    labels.insert(
        cx.plan.version_label.clone(),
        cx.plan.stable.version.value.clone(),
    );
    let (annotations, mut spec) = new_deployment_parts(cx, &deployment);
    let container_path = format!("/template/spec/containers/{main}");
    match cx.plan.method {
        Method::Succession | Method::Versioned => {
            if let (Some(c), Some(image)) = (
                spec.at_mut(&container_path).and_then(Value::as_object_mut),
                &cx.plan.stable.image,
            ) {
                c.insert("image".into(), Value::String(image.value.clone()));
            }
        }
        Method::Coexistence => {
            let ops = env_ops(
                &container_path,
                spec.at(&container_path),
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
