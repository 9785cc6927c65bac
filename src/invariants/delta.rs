//! The traffic delta between two models of one environment (the record on disk or the base,
//! and this render): which request classes move to which workloads, and which workloads
//! change images or revision. Computed, never written per stage: it is what `diff`, `status`
//! and the suggested commit messages show reviewers.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{DIRECT, Model, TOLERANCE, WorkloadFacts};
use super::rules::{moves, nonzero, percent, shares};

/// What moved between two models.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    /// Classes whose requests (or mirrors) go elsewhere.
    pub classes: Vec<ClassChange>,
    /// Routed classes that reach a workload a moved class reaches, and did not move.
    pub unchanged: Vec<String>,
    /// Workloads added, removed, or running something else.
    pub workloads: Vec<WorkloadChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassChange {
    /// The class in words.
    pub class: String,
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mirrors_before: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mirrors_after: BTreeMap<String, f64>,
}

impl ClassChange {
    /// `reviews-v1 100% → 90%, reviews-v2 0% → 10%`: each workload whose share changed.
    pub fn words(&self) -> String {
        let mut out = per_workload(&self.before, &self.after);
        let mirrors = per_workload(&self.mirrors_before, &self.mirrors_after);
        if !mirrors.is_empty() {
            out.push_str(&format!("; mirrored {mirrors}"));
        }
        out
    }
}

fn per_workload(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|w| {
            let b = before.get(w).copied().unwrap_or(0.0);
            let a = after.get(w).copied().unwrap_or(0.0);
            ((a - b).abs() > TOLERANCE).then(|| format!("{w} {} → {}", percent(b), percent(a)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadChange {
    pub workload: String,
    pub change: String,
}

/// The delta from `before` to `after`.
pub fn delta(before: &Model, after: &Model) -> Delta {
    let moved = moves(before, after);
    let classes: Vec<ClassChange> = moved
        .iter()
        .map(|m| ClassChange {
            class: m.class.describe(),
            before: nonzero(&m.before),
            after: nonzero(&m.after),
            mirrors_before: nonzero(&m.mirrors_before),
            mirrors_after: nonzero(&m.mirrors_after),
        })
        .collect();
    let involved: Vec<&String> = moved
        .iter()
        .flat_map(|m| m.before.keys().chain(m.after.keys()))
        .collect();
    let moved_keys: Vec<String> = moved.iter().map(|m| m.class.key()).collect();
    let unchanged = after
        .classes
        .iter()
        .filter(|c| c.entry != DIRECT && !moved_keys.contains(&c.key()))
        .filter(|c| c.to.keys().any(|w| involved.contains(&w)))
        .map(|c| format!("{} ({})", c.describe(), shares(&c.to)))
        .collect();
    let mut workloads = Vec::new();
    let names: std::collections::BTreeSet<&String> = before
        .workloads
        .keys()
        .chain(after.workloads.keys())
        .collect();
    for w in names {
        let change = match (before.workloads.get(w), after.workloads.get(w)) {
            (None, Some(a)) => Some(format!("added ({})", running(a))),
            (Some(_), None) => Some("removed".to_string()),
            (Some(b), Some(a)) => changed(b, a),
            (None, None) => None,
        };
        if let Some(change) = change {
            workloads.push(WorkloadChange {
                workload: w.clone(),
                change,
            });
        }
    }
    Delta {
        classes,
        unchanged,
        workloads,
    }
}

fn running(f: &WorkloadFacts) -> String {
    let mut parts: Vec<String> = f.images.values().cloned().collect();
    if let Some(r) = &f.revision {
        parts.push(format!("revision {r}"));
    }
    parts.join(", ")
}

fn changed(b: &WorkloadFacts, a: &WorkloadFacts) -> Option<String> {
    let mut parts = Vec::new();
    let containers: std::collections::BTreeSet<&String> =
        b.images.keys().chain(a.images.keys()).collect();
    for c in containers {
        let (x, y) = (b.images.get(c), a.images.get(c));
        if x != y {
            parts.push(format!(
                "container {c} {} → {}",
                x.map_or("none", String::as_str),
                y.map_or("none", String::as_str)
            ));
        }
    }
    if b.revision != a.revision {
        parts.push(format!(
            "revision {} → {}",
            b.revision.as_deref().unwrap_or("none"),
            a.revision.as_deref().unwrap_or("none")
        ));
    }
    if b.replicas != a.replicas {
        parts.push(format!("pods {} → {}", b.replicas, a.replicas));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

impl Delta {
    /// Whether nothing moved and no workload changed.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty() && self.workloads.is_empty()
    }

    /// The delta in words, one line per change, each starting with the environment.
    pub fn to_text(&self, env: &str) -> String {
        if self.is_empty() {
            return format!("{env}: unchanged\n");
        }
        let mut out = String::new();
        for c in &self.classes {
            out.push_str(&format!("{env}: {}: {}\n", c.class, c.words()));
        }
        for u in &self.unchanged {
            out.push_str(&format!("{env}: {u} unchanged\n"));
        }
        for w in &self.workloads {
            out.push_str(&format!("{env}: workload {}: {}\n", w.workload, w.change));
        }
        out
    }

    /// The delta as Markdown table rows (`| environment | what | before | after |`); see
    /// `to_markdown` for a whole table of several environments.
    pub fn markdown_rows(&self, env: &str) -> String {
        let cell = |s: &str| s.replace('|', "\\|");
        if self.is_empty() {
            return format!("| {} | unchanged | | |\n", cell(env));
        }
        let mut out = String::new();
        for c in &self.classes {
            let mut before = shares(&c.before);
            let mut after = shares(&c.after);
            if c.mirrors_before != c.mirrors_after {
                before.push_str(&format!("; mirrored {}", shares(&c.mirrors_before)));
                after.push_str(&format!("; mirrored {}", shares(&c.mirrors_after)));
            }
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(env),
                cell(&c.class),
                cell(&before),
                cell(&after)
            ));
        }
        for w in &self.workloads {
            out.push_str(&format!(
                "| {} | workload {} | | {} |\n",
                cell(env),
                cell(&w.workload),
                cell(&w.change)
            ));
        }
        out
    }

    /// One environment's delta as a Markdown table, for a pull-request comment or
    /// `$GITHUB_STEP_SUMMARY`.
    pub fn to_markdown(&self, env: &str) -> String {
        to_markdown(&[(env, self)])
    }
}

/// Several environments' deltas as one Markdown table.
pub fn to_markdown(deltas: &[(&str, &Delta)]) -> String {
    let mut out =
        String::from("| environment | request class | before | after |\n|---|---|---|---|\n");
    for (env, d) in deltas {
        out.push_str(&d.markdown_rows(env));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::super::model::{Class, MESH};
    use super::*;

    fn model(canary: f64, header: bool) -> Model {
        let class = |condition: &str, to: &[(&str, f64)]| Class {
            entry: MESH.into(),
            host: "checkout".into(),
            port: Some(8080),
            protocol: "http".into(),
            condition: condition.into(),
            except: Vec::new(),
            to: to.iter().map(|(w, p)| (w.to_string(), *p)).collect(),
            mirrors: BTreeMap::new(),
            by_pods: false,
        };
        let mut classes = vec![class(
            "uri prefix /checkout",
            &[
                ("shop/checkout", canary),
                ("shop/checkout-v1", 100.0 - canary),
            ],
        )];
        if header {
            classes.push(class("header x-canary=true", &[("shop/checkout", 100.0)]));
        }
        Model {
            classes,
            ..Model::default()
        }
    }

    #[test]
    fn a_weight_step_in_words_and_in_a_table() {
        let d = delta(&model(10.0, true), &model(25.0, true));
        assert!(!d.is_empty());
        assert_eq!(
            d.to_text("production"),
            "production: mesh callers of checkout:8080 (http, uri prefix /checkout): shop/checkout 10% → 25%, shop/checkout-v1 90% → 75%\n\
             production: mesh callers of checkout:8080 (http, header x-canary=true) (shop/checkout 100%) unchanged\n"
        );
        assert_eq!(
            d.to_markdown("production"),
            "| environment | request class | before | after |\n|---|---|---|---|\n\
             | production | mesh callers of checkout:8080 (http, uri prefix /checkout) | shop/checkout 10% · shop/checkout-v1 90% | shop/checkout 25% · shop/checkout-v1 75% |\n"
        );
    }

    #[test]
    fn nothing_moved_is_empty_and_says_unchanged() {
        let d = delta(&model(10.0, false), &model(10.0, false));
        assert!(d.is_empty());
        assert_eq!(d.to_text("staging"), "staging: unchanged\n");
        assert_eq!(
            to_markdown(&[
                ("staging", &d),
                ("production", &delta(&model(0.0, false), &model(5.0, false)))
            ]),
            "| environment | request class | before | after |\n|---|---|---|---|\n\
             | staging | unchanged | | |\n\
             | production | mesh callers of checkout:8080 (http, uri prefix /checkout) | shop/checkout-v1 100% | shop/checkout 5% · shop/checkout-v1 95% |\n"
        );
    }

    #[test]
    fn a_workload_that_changes_images_or_revision_is_listed() {
        let mut before = model(0.0, false);
        before.workloads.insert(
            "istio-ingress/gw".into(),
            WorkloadFacts {
                images: [("istio-proxy".to_string(), "auto".to_string())].into(),
                revision: Some("1-22-1".into()),
                replicas: 2,
            },
        );
        let mut after = before.clone();
        if let Some(w) = after.workloads.get_mut("istio-ingress/gw") {
            w.revision = Some("1-23-1".into());
        }
        let d = delta(&before, &after);
        assert_eq!(
            d.to_text("production"),
            "production: workload istio-ingress/gw: revision 1-22-1 → 1-23-1\n"
        );
    }
}
