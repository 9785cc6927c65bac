//! The final manifest stream: the base with every patch applied by canaryplan itself, plus the
//! new resources, in the order `kubectl kustomize` prints them.

use crate::pointer::Pointer as _;
use serde_json::Value;

use crate::base::Base;
use crate::error::{Diagnostic, Result};
use crate::rendered::{PatchBody, Rendered};

/// Applies `rendered` to the base and returns the final objects, sorted as kustomize sorts.
pub fn final_objects(base: &Base, rendered: &Rendered) -> Result<Vec<Value>> {
    let mut objects: Vec<Value> = base.objects.iter().map(|o| o.value.clone()).collect();
    for patch in &rendered.patches {
        if patch.body == PatchBody::Delete {
            let before = objects.len();
            objects.retain(|o| !patch.target.matches(o));
            if objects.len() == before {
                return Err(Diagnostic::new(format!(
                    "patch {} deletes {} {}, which is not in the base",
                    patch.file, patch.target.kind, patch.target.name
                ))
                .into());
            }
            continue;
        }
        let Some(target) = objects.iter_mut().find(|o| patch.target.matches(o)) else {
            return Err(Diagnostic::new(format!(
                "patch {} targets {} {}, which is not in the base",
                patch.file, patch.target.kind, patch.target.name
            ))
            .into());
        };
        match &patch.body {
            PatchBody::Merge(m) => {
                json_patch::merge(target, m);
                // kustomize's strategic merge clears every null field of the object it patches
                // (a label written without a value, `version:`), not only the patch's.
                drop_nulls(target);
            }
            PatchBody::Delete => {}
            PatchBody::Json(ops) => {
                let p: json_patch::Patch = serde_json::from_value(Value::Array(ops.clone()))
                    .map_err(|e| {
                        Diagnostic::new(format!("patch {} is not valid: {e}", patch.file))
                    })?;
                json_patch::patch(target, &p).map_err(|e| {
                    Diagnostic::new(format!(
                        "patch {} does not apply to {} {}: {e}",
                        patch.file, patch.target.kind, patch.target.name
                    ))
                })?;
            }
        }
    }
    objects.extend(rendered.resources.iter().map(|r| r.object.clone()));
    sort_like_kustomize(&mut objects);
    Ok(objects)
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Kinds kustomize's legacy order puts first, in order; `LAST` go last; all others between.
const FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn sort_key(v: &Value) -> (i64, String, String, String) {
    let s = |p: &str| v.at(p).and_then(Value::as_str).unwrap_or_default();
    let kind = s("/kind");
    let order = if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        i as i64 - FIRST.len() as i64
    } else if let Some(i) = LAST.iter().position(|k| *k == kind) {
        i as i64 + 1
    } else {
        0
    };
    let (group, version) = s("/apiVersion")
        .rsplit_once('/')
        .unwrap_or(("", s("/apiVersion")));
    let gvk = format!("{group}_{version}_{kind}");
    (
        order,
        gvk,
        s("/metadata/namespace").to_string(),
        s("/metadata/name").to_string(),
    )
}

pub fn sort_like_kustomize(objects: &mut [Value]) {
    objects.sort_by_cached_key(sort_key);
}
