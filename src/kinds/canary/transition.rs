//! What moving from one stage to another does to the cluster, in words, computed from the two
//! final streams (never from stage names): objects added, removed and changed, and pods that
//! restart because a pod template changes. `status`, `advance` and commit messages use it.

use crate::pointer::Pointer as _;
use serde_json::Value;

fn id(o: &Value) -> (String, String, String) {
    let s = |p: &str| {
        o.at(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// One line per change from `before` to `after`, in stream order; empty when nothing changes.
pub fn describe(before: &[Value], after: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let find = |list: &[Value], o: &Value| {
        let i = id(o);
        list.iter().find(|x| id(x) == i).cloned()
    };
    for o in after {
        let (kind, _, name) = id(o);
        match find(before, o) {
            None => out.push(format!("adds {kind} {name}")),
            Some(old) if old != *o => {
                let template = |v: &Value| v.at("/spec/template").cloned();
                if template(&old) != template(o) && template(o).is_some() {
                    out.push(format!(
                        "changes {kind} {name}'s pod template, which restarts its pods"
                    ));
                } else {
                    let what = match kind.as_str() {
                        "VirtualService" => "routes",
                        "DestinationRule" => "subsets",
                        "Service" => "selector",
                        _ => "spec",
                    };
                    out.push(format!("changes the {what} of {kind} {name}"));
                }
            }
            Some(_) => {}
        }
    }
    for o in before {
        if find(after, o).is_none() {
            let (kind, _, name) = id(o);
            out.push(format!("removes {kind} {name}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn additions_removals_changes_and_restarts() {
        let d = |image: &str| json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1, "template": {"spec": {"image": image}}}});
        let vs =
            |w: u8| json!({"kind": "VirtualService", "metadata": {"name": "vs"}, "spec": {"w": w}});
        let dr = json!({"kind": "DestinationRule", "metadata": {"name": "dr"}});
        let before = vec![d("a"), vs(1), dr];
        let after = vec![
            d("b"),
            vs(2),
            json!({"kind": "Deployment", "metadata": {"name": "web-v1"}}),
        ];
        assert_eq!(
            describe(&before, &after),
            vec![
                "changes Deployment web's pod template, which restarts its pods",
                "changes the routes of VirtualService vs",
                "adds Deployment web-v1",
                "removes DestinationRule dr",
            ]
        );
        assert!(describe(&after, &after).is_empty());
    }
}
