//! AuthorizationPolicies for the Deployment canaryplan adds (the stable copy, or the versioned
//! canary): one from the plan's `allowFrom`, and a clone of every policy in base that selects
//! the workload's pods but not the new ones, so the new pods accept exactly the traffic the
//! workload's pods accept.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use super::{Component, Context, Rendered, Resource, strip_server_fields};
use crate::error::Result;
use crate::selector;

pub struct Policies;

impl Component for Policies {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let copy = cx.plan.new_deployment_name();
        let match_labels = cx
            .new_selector
            .get("matchLabels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if cx.model.allow_from && !cx.plan.allow_from.is_empty() {
            let name = format!("{copy}-allow");
            let principals: Vec<String> = cx
                .plan
                .allow_from
                .iter()
                .map(|a| {
                    format!(
                        "{}/ns/{}/sa/{}",
                        cx.plan.trust_domain, a.namespace, a.service_account
                    )
                })
                .collect();
            out.resources.push(cx.new_resource(
                "authorization-policy.yaml.j2",
                ("security.istio.io/v1", "AuthorizationPolicy"),
                &name,
                json!({"match_labels": match_labels, "principals": principals, "workload": copy}),
                Vec::new(),
                format!("allowFrom, for {} {copy}", cx.plan.new_deployment_role()),
            )?);
        }
        // Policies guard the new pods for as long as they run, not only while routed.
        if !cx.model.new_deployment {
            return Ok(());
        }
        for policy in cx.base.of_kind("AuthorizationPolicy") {
            let Some(sel) = policy.value.at("/spec/selector") else {
                continue; // namespace-wide: applies to the copy already
            };
            let selects = |labels| selector::label_selector_matches(sel, labels);
            if !selects(&cx.original_pod_labels) || selects(&cx.new_pod_labels) {
                continue;
            }
            let version = match cx.plan.method {
                crate::kinds::canary::plan::Method::Versioned => &cx.plan.canary.version.value,
                _ => &cx.plan.stable.version.value,
            };
            let name = format!("{}-{version}", cx.file_part(policy)?);
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
                    "AuthorizationPolicy {} in base, extended to {} {copy}",
                    policy.name,
                    cx.plan.new_deployment_role()
                ),
                object: clone,
            });
        }
        Ok(())
    }
}
