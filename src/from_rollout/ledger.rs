//! The account of a Rollout's fields: each is carried over into the plan or the printed
//! objects, or named with why it is not (`--strict` refuses those).

use serde_json::Value;

/// The account of the Rollout's fields: which were carried over (JSON pointers, a pointer
/// covers what is below it), which were dropped and why.
#[derive(Debug, Default)]
pub struct Ledger {
    carried: Vec<String>,
    pub dropped: Vec<String>,
    pub notes: Vec<String>,
}

impl Ledger {
    pub(super) fn carry(&mut self, pointer: &str) {
        self.carried.push(pointer.to_string());
    }

    pub(super) fn drop(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.dropped.contains(&what) {
            self.dropped.push(what);
        }
    }

    pub(super) fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.notes.contains(&what) {
            self.notes.push(what);
        }
    }

    pub(super) fn is_carried(&self, pointer: &str) -> bool {
        self.carried.iter().any(|c| {
            pointer == c
                || pointer
                    .strip_prefix(c.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Names every field of `v` under `pointer` that is neither carried nor already dropped.
    pub(super) fn account(&mut self, v: &Value, pointer: &str) {
        if self.is_carried(pointer) {
            return;
        }
        if let Some((_, why)) = KNOWN.iter().find(|(p, _)| *p == pointer) {
            self.drop(format!("{} ({why})", dotted(pointer)));
            return;
        }
        match v.as_object() {
            Some(o) if !o.is_empty() => {
                for (k, child) in o {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    self.account(child, &format!("{pointer}/{key}"));
                }
            }
            _ => self.drop(format!(
                "{} {} (no counterpart in a plan)",
                dotted(pointer),
                short(v)
            )),
        }
    }
}

/// Fields that commonly do not carry over, and why.
const KNOWN: [(&str, &str); 16] = [
    (
        "/spec/strategy/canary/dynamicStableScale",
        "canaryplan keeps the stable copy at its replicas until cleanup-1 removes it; scale it in base if you must",
    ),
    (
        "/spec/strategy/canary/canaryMetadata",
        "the canary's pods carry the version label and `podLabels`; add other labels to the Deployment's pod template",
    ),
    (
        "/spec/strategy/canary/stableMetadata",
        "the stable copy's pods carry the version label, `stable.labels` and `podLabels`",
    ),
    (
        "/spec/strategy/canary/abortScaleDownDelaySeconds",
        "after `abort` the canary keeps running at weight 0 until a commit changes it",
    ),
    (
        "/spec/strategy/canary/scaleDownDelaySeconds",
        "the stable copy goes at cleanup-1, a commit of its own",
    ),
    (
        "/spec/strategy/canary/scaleDownDelayRevisionLimit",
        "canaryplan keeps one stable copy",
    ),
    (
        "/spec/strategy/canary/antiAffinity",
        "put the anti-affinity in the Deployment's pod template",
    ),
    (
        "/spec/strategy/canary/minPodsPerReplicaSet",
        "set the Deployment's replicas",
    ),
    (
        "/spec/strategy/canary/replicaProgressThreshold",
        "canaryplan does not wait for replicas between steps",
    ),
    (
        "/spec/strategy/canary/trafficRouting/maxTrafficWeight",
        "a plan's weights are percents",
    ),
    (
        "/spec/strategy/canary/trafficRouting/managedRoutes",
        "the plan's `match:` and `mirror:` are its managed routes",
    ),
    (
        "/spec/strategy/canary/analysis",
        "the analysis could not be carried over",
    ),
    (
        "/spec/progressDeadlineAbort",
        "nothing aborts by itself: `canaryplan abort` is a commit",
    ),
    (
        "/spec/rollbackWindow",
        "a rollback is a commit that goes back a stage",
    ),
    (
        "/spec/restartAt",
        "restart the Deployment with `kubectl rollout restart`",
    ),
    ("/spec/strategy/canary/pingPong", "see the refusal"),
];

/// A JSON pointer as a dotted path (`spec.strategy.canary`).
fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// A value in a note, on one line and short.
pub(super) fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or_default()),
        None => text,
    }
}
