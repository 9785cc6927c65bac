//! Kubernetes label selectors: `matchLabels` and `matchExpressions`, and whether a set of pod
//! labels matches them. The safety checks are built on this.

use serde_json::{Map, Value};

use crate::plan_file::Labels;

/// Pod labels as a map.
pub fn labels_of(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a Service-style selector (a plain map) selects `labels`. An empty selector
/// selects nothing here: a Service without a selector routes to no pods of ours.
pub fn map_matches(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a `LabelSelector` (`matchLabels` + `matchExpressions`) selects `labels`.
pub fn label_selector_matches(selector: &Value, labels: &Labels) -> bool {
    let match_labels = labels_of(selector.get("matchLabels"));
    if !match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    let empty = match_labels.is_empty() && exprs.is_none_or(|e| e.is_empty());
    if empty {
        // An empty LabelSelector matches everything.
        return true;
    }
    exprs
        .into_iter()
        .flatten()
        .all(|e| expression_matches(e, labels))
}

fn expression_matches(e: &Value, labels: &Labels) -> bool {
    let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
    let values: Vec<&str> = e
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let have = labels.get(key).map(String::as_str);
    match e
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        _ => false,
    }
}

/// `labels` as a JSON object.
pub fn to_value(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v1"]}]});
        assert!(label_selector_matches(
            &sel,
            &l(&[("app", "web"), ("version", "v2")])
        ));
        assert!(!label_selector_matches(
            &sel,
            &l(&[("app", "web"), ("version", "v1")])
        ));
        assert!(!label_selector_matches(&sel, &l(&[("app", "web-v1")])));
        assert!(label_selector_matches(&json!({}), &l(&[])));
        assert!(!map_matches(&l(&[]), &l(&[("a", "b")])));
    }
}
