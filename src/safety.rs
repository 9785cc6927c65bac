//! Safety checks on what would ship: run on the final objects of one environment (base with
//! every patch applied), so they check exactly what the cluster would get. Each failure points
//! at the plan field to change.

use serde_json::Value;

use crate::error::{Diagnostics, Result};
use crate::objects::Context;
use crate::plan::Labels;
use crate::selector;

/// Checks the final objects of the environment in `cx`.
pub fn check(cx: &Context<'_>, objects: &[Value]) -> Result<()> {
    let mut d = Diagnostics::default();
    let plan = cx.plan;
    let kind_name = |kind: &str, name: &str| {
        objects.iter().find(|o| {
            o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        })
    };
    let pod_labels = |o: &Value| selector::labels_of(o.pointer("/spec/template/metadata/labels"));
    let original = kind_name("Deployment", &cx.workload.name);
    let copy_name = plan.stable_copy_name();
    let copy = kind_name("Deployment", &copy_name);
    let canary_pods = original.map(pod_labels).unwrap_or_default();
    let stable_pods = copy.map(pod_labels);
    let show = |l: &Labels| {
        l.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };

    // The two Deployments must never select each other's pods.
    if let (Some(original), Some(copy), Some(stable_pods)) = (original, copy, &stable_pods) {
        let sel_original = original
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(Value::Null);
        let sel_copy = copy
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(Value::Null);
        if selector::label_selector_matches(&sel_original, stable_pods) {
            d.push(
                plan.diag(plan.stable.labels_pos, format!("the selector of Deployment {} also matches the stable copy's pods ({})", cx.workload.name, show(stable_pods)))
                    .hint(format!("override a key of its selector in stable.labels, e.g. `labels: {{app: {copy_name}}}`")),
            );
        }
        if selector::label_selector_matches(&sel_copy, &canary_pods) {
            d.push(
                plan.diag(plan.stable.labels_pos, format!("the stable copy's selector also matches the pods of Deployment {} ({})", cx.workload.name, show(&canary_pods)))
                    .hint("give the copy a label value in stable.labels that the original's pods do not have"),
            );
        }
    }

    // The Service: both versions while both serve; never the copy alone before routing.
    if let Some(service) = kind_name("Service", &cx.service.name) {
        let sel = selector::labels_of(service.pointer("/spec/selector"));
        if cx.model.service_selector {
            for (what, pods) in [
                ("the canary", Some(&canary_pods)),
                ("the stable copy", stable_pods.as_ref()),
            ] {
                if let Some(pods) = pods
                    && !selector::map_matches(&sel, pods)
                {
                    d.push(
                            plan.diag(plan.selector_pos, format!("the patched selector of Service {} ({}) does not select {what}'s pods ({})", cx.service.name, show(&sel), show(pods)))
                                .hint("change `selector.remove`/`selector.add` so the Service selects labels both versions share, e.g. the podLabels"),
                        );
                }
            }
        } else if let Some(stable_pods) = &stable_pods
            && selector::map_matches(&sel, stable_pods)
        {
            d.push(
                plan.diag(
                    plan.stable.labels_pos,
                    format!(
                        "Service {} selects the stable copy's pods before routing is set up",
                        cx.service.name
                    ),
                )
                .hint("override a key of the Service selector in stable.labels"),
            );
        }
    }

    // Routes: weights, and every subset they name defined for the host.
    let subsets: Vec<(String, Value)> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("DestinationRule"))
        .filter(|o| {
            o.pointer("/spec/host")
                .and_then(Value::as_str)
                .is_some_and(|h| cx.is_service_host(h))
        })
        .flat_map(|o| {
            o.pointer("/spec/subsets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|s| {
            Some((
                s.get("name")?.as_str()?.to_string(),
                s.get("labels").cloned().unwrap_or(Value::Null),
            ))
        })
        .collect();
    let weight_pos = cx
        .env
        .weight
        .as_ref()
        .map(|w| w.pos)
        .unwrap_or(cx.env.stage.pos);
    for vs in objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("VirtualService"))
    {
        let vs_name = vs
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for kind in crate::objects::ROUTE_KINDS {
            for (i, route) in vs
                .pointer(&format!("/spec/{kind}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let dests = route
                    .get("route")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ours: Vec<&Value> = dests
                    .iter()
                    .filter(|x| {
                        x.pointer("/destination/host")
                            .and_then(Value::as_str)
                            .is_some_and(|h| cx.is_service_host(h))
                    })
                    .collect();
                if ours.is_empty() {
                    continue;
                }
                let weights: Vec<Option<u64>> = dests
                    .iter()
                    .map(|x| x.get("weight").and_then(Value::as_u64))
                    .collect();
                let sum: u64 = weights.iter().flatten().sum();
                let valid = if dests.len() == 1 {
                    weights.first().copied().flatten().is_none_or(|w| w == 100)
                } else {
                    weights.iter().all(Option::is_some) && sum == 100
                };
                if !valid || weights.iter().flatten().any(|w| *w > 100) {
                    d.push(plan.diag(weight_pos, format!("route {kind}[{i}] of VirtualService {vs_name} has weights that do not sum to 100")).hint("weights are integers from 0 to 100 summing to 100 per route"));
                }
                for dest in ours {
                    let Some(subset) = dest.pointer("/destination/subset").and_then(Value::as_str)
                    else {
                        continue;
                    };
                    match subsets.iter().find(|(n, _)| n == subset) {
                        None => d.push(
                            plan.diag(cx.env.stage.pos, format!("route {kind}[{i}] of VirtualService {vs_name} names subset `{subset}`, which no DestinationRule for {} defines", cx.host))
                                .hint("a subset must exist before a route uses it; go back one stage"),
                        ),
                        Some((_, labels)) => {
                            let labels = selector::labels_of(Some(labels));
                            let matches_canary = selector::map_matches(&labels, &canary_pods);
                            let matches_stable = stable_pods.as_ref().is_some_and(|p| selector::map_matches(&labels, p));
                            if matches_canary == matches_stable {
                                let what = if matches_canary { "both versions'" } else { "neither version's" };
                                d.push(
                                    plan.diag(cx.env.stage.pos, format!("subset `{subset}` ({}) matches {what} pods", show(&labels)))
                                        .hint("each subset must select exactly one version; check versionLabel and the pod labels in base"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    d.into_result()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{base, check, objects, output, templates::Templates};

    /// The runbook's production environment rendered, then `tamper`ed with, then checked.
    fn check_tampered(tamper: impl FnOnce(&mut Vec<Value>)) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runbook");
        let plan = check::load(&dir.join("canaryplan.yaml")).unwrap();
        let env = plan.environment("production").unwrap();
        let base = base::load(&dir.join(&env.base.value)).unwrap();
        let templates = Templates::builtin();
        let cx = objects::Context::new(&plan, env, &base, &templates).unwrap();
        let rendered = objects::render(&cx).unwrap();
        let mut final_objects = output::stream::final_objects(&base, &rendered).unwrap();
        check(&cx, &final_objects).unwrap();
        tamper(&mut final_objects);
        check(&cx, &final_objects).unwrap_err().to_string()
    }

    fn find<'a>(objects: &'a mut [Value], kind: &str) -> &'a mut Value {
        objects.iter_mut().find(|o| o["kind"] == kind).unwrap()
    }

    #[test]
    fn a_route_to_an_undefined_subset_is_refused() {
        let err = check_tampered(|o| {
            find(o, "DestinationRule")["spec"]["subsets"]
                .as_array_mut()
                .unwrap()
                .remove(0);
        });
        assert!(err.contains("names subset `v1`, which no DestinationRule for my-service-web.my-service.svc.cluster.local defines"), "{err}");
    }

    #[test]
    fn a_subset_matching_both_versions_is_refused() {
        let err = check_tampered(|o| {
            find(o, "DestinationRule")["spec"]["subsets"][0]["labels"] =
                serde_json::json!({"canary": "enabled"});
        });
        assert!(
            err.contains("subset `v1` (canary=enabled) matches both versions' pods"),
            "{err}"
        );
    }

    #[test]
    fn weights_that_do_not_sum_to_100_are_refused() {
        let err = check_tampered(|o| {
            find(o, "VirtualService")["spec"]["http"][0]["route"][0]["weight"] =
                serde_json::json!(90);
        });
        assert!(err.contains("canaryplan.yaml:36:15: error: route http[0] of VirtualService relational-data-access--web has weights that do not sum to 100"), "{err}");
    }

    #[test]
    fn a_copy_selector_matching_the_original_is_refused() {
        let err = check_tampered(|o| {
            let copy = o
                .iter_mut()
                .find(|x| x["metadata"]["name"] == "web-v1")
                .unwrap();
            copy["spec"]["selector"] = serde_json::json!({"matchLabels": {"canary": "enabled"}});
        });
        assert!(
            err.contains("the stable copy's selector also matches the pods of Deployment web"),
            "{err}"
        );
    }
}
