//! AuthorizationPolicies for the stable copy: one from the plan's `allowFrom`, and a clone of
//! every policy in base that selects the original's pods but not the copy's, so the copy
//! accepts exactly the traffic the original accepts.

use serde_json::{Value, json};

use super::{Component, Context, Rendered, Resource, strip_server_fields};
use crate::error::Result;
use crate::selector;

pub struct Policies;

impl Component for Policies {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let copy = cx.plan.stable_copy_name();
        let match_labels = cx
            .stable_selector
            .get("matchLabels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if cx.model.stable_authorization && !cx.plan.allow_from.is_empty() {
            let name = format!("{copy}-allow");
            let principals: Vec<String> = cx
                .plan
                .allow_from
                .iter()
                .map(|a| format!("cluster.local/ns/{}/sa/{}", a.namespace, a.service_account))
                .collect();
            out.resources.push(cx.new_resource(
                "authorization-policy.yaml.j2",
                ("security.istio.io/v1", "AuthorizationPolicy"),
                &name,
                json!({"match_labels": match_labels, "principals": principals, "workload": copy}),
                Vec::new(),
                format!("allowFrom, for the stable copy {copy}"),
            )?);
        }
        // Policies guard the copy for as long as it runs, not only while it is routed.
        if !cx.model.stable_copy {
            return Ok(());
        }
        for policy in cx.base.of_kind("AuthorizationPolicy") {
            let Some(sel) = policy.value.pointer("/spec/selector") else {
                continue; // namespace-wide: applies to the copy already
            };
            let selects = |labels| selector::label_selector_matches(sel, labels);
            if !selects(&cx.original_pod_labels) || selects(&cx.stable_pod_labels) {
                continue;
            }
            let name = format!("{}-{}", cx.file_part(policy)?, cx.plan.stable.version.value);
            let mut clone = policy.value.clone();
            strip_server_fields(&mut clone);
            if let Some(meta) = clone.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), Value::String(name.clone()));
            }
            if let Some(spec) = clone.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("selector".into(), json!({"matchLabels": match_labels}));
            }
            out.resources.push(Resource {
                file: format!("authorizationpolicy-{name}.yaml"),
                from: format!(
                    "AuthorizationPolicy {} in base, extended to the stable copy {copy}",
                    policy.name
                ),
                object: clone,
            });
        }
        Ok(())
    }
}
