//! A Rollout's canary `steps` as the plan's ladder: each `setWeight` a step with the pause
//! after it, `setHeaderRoute` the plan's `match:`, `setMirrorRoute` its `mirror:`, a pause
//! before the first weight a step at 0 that holds. What has no counterpart is said.

use serde_json::{Value, json};

use super::{Ledger, Router};
use crate::analysis::go_duration_millis;

/// One step of the plan's ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub weight: u64,
    pub pause: Option<String>,
}

/// What the steps became.
#[derive(Debug, Default)]
pub struct Converted {
    pub steps: Vec<Step>,
    /// The plan's `match:` (one entry: Argo matches all headers of a route at once).
    pub matches: Option<Value>,
    /// The plan's `mirror:` percent.
    pub mirror: Option<u64>,
    /// For each Argo step index, the index of the step the plan's export writes in its place
    /// (each plan step below 100 is `setWeight` then `pause`); `None` for steps with no place.
    pub export_index: Vec<Option<u64>>,
    /// The inline `analysis` steps: (Argo step index, the step).
    pub analysis_steps: Vec<(usize, Value)>,
}

/// A pause duration as the plan writes it: a Go duration kept as written, a number of
/// seconds (Argo reads `30` and `"30"` as seconds) as `30s`.
fn pause_of(p: &Value) -> Result<Option<String>, String> {
    match p.get("duration") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(format!("{n}s"))),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(format!("{s}s")))
        }
        Some(Value::String(s)) if go_duration_millis(s).is_some() => Ok(Some(s.clone())),
        Some(other) => Err(format!("{other}")),
    }
}

/// Argo's header match as the plan's (Istio HTTPMatchRequest or Gateway API header list).
fn header_match(router: Router, headers: &[Value], ledger: &mut Ledger) -> Option<Value> {
    let mut istio = serde_json::Map::new();
    let mut gateway = Vec::new();
    for h in headers {
        let Some(name) = h.get("headerName").and_then(Value::as_str) else {
            ledger.drop("a setHeaderRoute match without a headerName");
            continue;
        };
        let value = h.get("headerValue");
        let (kind, v) = match ["exact", "prefix", "regex"]
            .iter()
            .find_map(|k| value.and_then(|v| v.get(*k)).map(|v| (*k, v.clone())))
        {
            Some(kv) => kv,
            None => {
                ledger.drop(format!(
                    "the setHeaderRoute match on header `{name}` (no exact, prefix or regex value)"
                ));
                continue;
            }
        };
        istio.insert(name.to_string(), json!({kind: v}));
        match (kind, v.as_str()) {
            ("exact", Some(s)) => gateway.push(json!({"name": name, "value": s})),
            ("regex", Some(s)) => {
                gateway.push(json!({"name": name, "value": s, "type": "RegularExpression"}))
            }
            ("prefix", Some(s)) => gateway.push(json!({"name": name, "value": format!("^{}", regex_escape(s)), "type": "RegularExpression"})),
            _ => ledger.drop(format!("the setHeaderRoute match on header `{name}`")),
        }
    }
    match router {
        Router::GatewayApi => (!gateway.is_empty()).then(|| json!({"headers": gateway})),
        _ => (!istio.is_empty()).then(|| json!({"headers": istio})),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a mirror route's match is every request (`path: {prefix: /}` or nothing).
fn matches_everything(m: &Value) -> bool {
    m.as_array().is_none_or(|all| {
        all.iter().any(|one| {
            one.as_object().is_none_or(|o| {
                o.iter().all(|(k, v)| {
                    k == "path" && v.get("prefix").and_then(Value::as_str) == Some("/")
                })
            })
        })
    })
}

pub fn convert(steps: &[Value], router: Router, ledger: &mut Ledger) -> Converted {
    let mut c = Converted::default();
    // Whether traffic has started to move (a header or mirror route set later changes when
    // it applies: the plan's hold from `route` on).
    let mut moved = false;
    for (i, step) in steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        let Some((kind, body)) = step.as_object().and_then(|o| o.iter().next()) else {
            ledger.drop(format!("{at}: an empty step"));
            c.export_index.push(None);
            continue;
        };
        if step.as_object().is_some_and(|o| o.len() > 1) {
            ledger.drop(format!(
                "{at}: a step with several actions (only `{kind}` is read)"
            ));
        }
        let mut index = None;
        match kind.as_str() {
            "setWeight" => match body.as_u64().filter(|w| *w <= 100) {
                Some(0) if c.steps.is_empty() => {
                    c.steps.push(Step {
                        weight: 0,
                        pause: None,
                    });
                    index = Some(0);
                }
                Some(w) if c.steps.last().is_none_or(|s| s.weight < w) => {
                    index = Some(2 * c.steps.len() as u64);
                    c.steps.push(Step {
                        weight: w,
                        pause: None,
                    });
                    moved = true;
                }
                Some(w) => ledger.drop(format!(
                    "{at}: setWeight {w} after {} (a plan's weights only go up; `abort` sends everything back to stable)",
                    c.steps.last().map(|s| s.weight).unwrap_or_default()
                )),
                None => ledger.drop(format!("{at}: setWeight {body} (not a weight 0..100)")),
            },
            "pause" => {
                let pause = match pause_of(body) {
                    Ok(Some(d)) => d,
                    Ok(None) => "manual".to_string(),
                    Err(bad) => {
                        ledger.drop(format!("{at}: pause duration {bad} (not a duration Argo Rollouts reads)"));
                        c.export_index.push(None);
                        continue;
                    }
                };
                if c.steps.is_empty() {
                    // Held before any traffic moves: a first step at weight 0.
                    c.steps.push(Step {
                        weight: 0,
                        pause: None,
                    });
                }
                let n = c.steps.len() as u64;
                match c.steps.last_mut() {
                    Some(last) if last.pause.is_none() => {
                        last.pause = Some(pause);
                        index = Some(2 * n - 1);
                    }
                    Some(last) => ledger.drop(format!(
                        "{at}: a second pause ({pause}) at weight {} (a plan step has one pause)",
                        last.weight
                    )),
                    None => {}
                }
            }
            "setHeaderRoute" => {
                let headers = body.get("match").and_then(Value::as_array);
                match headers {
                    Some(h) if c.matches.is_none() => {
                        c.matches = header_match(router, h, ledger);
                        if moved {
                            ledger.drop(format!("{at}: when the header route starts (the plan's `match:` applies from stage route on, before the first weight; Argo set it after traffic moved)"));
                        }
                    }
                    Some(_) => ledger.drop(format!(
                        "{at}: a second setHeaderRoute (the plan has one test match)"
                    )),
                    None => ledger.drop(format!("{at}: removing the header route before the end (the plan's `match:` holds until cleanup-1)")),
                }
            }
            "setMirrorRoute" => match body.get("match") {
                Some(m) if c.mirror.is_none() => {
                    let percent = body.get("percentage").and_then(Value::as_u64).unwrap_or(100);
                    c.mirror = Some(percent);
                    if !matches_everything(m) {
                        ledger.drop(format!("{at}: the mirror route's match {m} (the plan mirrors {percent}% of every request to the Service)"));
                    }
                    if moved {
                        ledger.drop(format!("{at}: when the mirror starts (the plan's `mirror:` applies from stage route on)"));
                    }
                }
                Some(_) => ledger.drop(format!("{at}: a second setMirrorRoute (the plan has one mirror)")),
                None => ledger.drop(format!("{at}: removing the mirror before the end (the plan's `mirror:` holds until cleanup-1)")),
            },
            "analysis" => c.analysis_steps.push((i, body.clone())),
            "setCanaryScale" => ledger.drop(format!("{at}: setCanaryScale {body} (canaryplan runs the canary Deployment at its own replicas and the stable copy beside it; scale them in base)")),
            "experiment" => ledger.drop(format!("{at}: the experiment (canaryplan runs no extra ReplicaSets; run the comparison as `analysis:` queries)")),
            "plugin" => ledger.drop(format!("{at}: the step plugin {} (canaryplan runs no step plugins)", body.get("name").and_then(Value::as_str).unwrap_or_default())),
            other => ledger.drop(format!("{at}: the `{other}` step (no counterpart in a plan)")),
        }
        c.export_index.push(index);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: Value, router: Router) -> (Converted, Vec<String>) {
        let mut ledger = Ledger::default();
        let c = convert(
            steps.as_array().map(Vec::as_slice).unwrap_or(&[]),
            router,
            &mut ledger,
        );
        (c, ledger.dropped)
    }

    #[test]
    fn a_staged_rollout_without_weights_stays_staged() {
        let (c, dropped) = run(
            json!([{"setCanaryScale": {"replicas": 1}}, {"setMirrorRoute": {"name": "m", "percentage": 30, "match": [{"path": {"prefix": "/"}}]}}, {"pause": {}}]),
            Router::Istio,
        );
        assert_eq!(
            c.steps,
            [Step {
                weight: 0,
                pause: Some("manual".into())
            }]
        );
        assert_eq!(c.mirror, Some(30));
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert!(dropped[0].contains("setCanaryScale"));
    }

    #[test]
    fn pauses_keep_their_duration_and_a_leading_zero_is_kept() {
        let (c, dropped) = run(
            json!([{"setWeight": 0}, {"pause": {"duration": "2m30s"}}, {"setWeight": 20}, {"pause": {"duration": 45}}, {"setWeight": 50}, {"pause": {"duration": "60"}}]),
            Router::Istio,
        );
        assert!(dropped.is_empty(), "{dropped:?}");
        let want = [(0, "2m30s"), (20, "45s"), (50, "60s")];
        assert_eq!(
            c.steps,
            want.map(|(w, p)| Step {
                weight: w,
                pause: Some(p.into())
            })
        );
        assert_eq!(
            c.export_index,
            [Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)]
        );
    }

    #[test]
    fn header_routes_become_the_plans_match() {
        let steps = json!([{"setHeaderRoute": {"name": "h", "match": [{"headerName": "x-canary", "headerValue": {"exact": "yes"}}, {"headerName": "x-user", "headerValue": {"prefix": "qa."}}]}}, {"setWeight": 10}]);
        let (c, dropped) = run(steps.clone(), Router::Istio);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(
            c.matches,
            Some(json!({"headers": {"x-canary": {"exact": "yes"}, "x-user": {"prefix": "qa."}}}))
        );
        let (c, _) = run(steps, Router::GatewayApi);
        assert_eq!(
            c.matches,
            Some(
                json!({"headers": [{"name": "x-canary", "value": "yes"}, {"name": "x-user", "value": "^qa\\.", "type": "RegularExpression"}]})
            )
        );
    }
}
