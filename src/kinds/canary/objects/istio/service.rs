//! The Service selector patch: while both versions serve, the Service selects the pods of
//! both (keys removed, keys added, as the plan says).

use crate::pointer::Pointer as _;
use serde_json::{Map, Value, json};

use crate::error::{Diagnostics, Result};
use crate::kinds::canary::objects::{Component, Context, Patch, Rendered, Target};
use crate::selector;

pub struct Selector;

impl Component for Selector {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()> {
        let current = selector::labels_of(cx.service.value.at("/spec/selector"));
        let mut d = Diagnostics::default();
        for key in &cx.plan.selector_remove {
            if !current.contains_key(&key.value) {
                d.push(
                    cx.plan
                        .diag(
                            key.pos,
                            format!(
                                "Service {} has no selector key `{}` to remove",
                                cx.service.name, key.value
                            ),
                        )
                        .hint(format!(
                            "its selector keys are {}",
                            current.keys().cloned().collect::<Vec<_>>().join(", ")
                        )),
                );
            }
        }
        d.into_result()?;
        if !cx.model.service_selector
            || (cx.plan.selector_remove.is_empty() && cx.plan.selector_add.is_empty())
        {
            return Ok(());
        }
        let mut patch = Map::new();
        for key in &cx.plan.selector_remove {
            patch.insert(key.value.clone(), Value::Null);
        }
        for (k, v) in &cx.plan.selector_add {
            patch.insert(k.clone(), Value::String(v.clone()));
        }
        out.patches.push(Patch::merge(
            format!("patch-service-{}.yaml", cx.service.name),
            format!(
                "the selector of Service {} while both versions serve",
                cx.service.name
            ),
            Target::of(cx.service),
            json!({"spec": {"selector": patch}}),
        ));
        Ok(())
    }
}
