//! Checks across the plans rendered together (a monorepo, `render --all`): no two plans write
//! one overlay directory, and no patched Service selector selects another plan's pods. Each
//! check indexes the renders once, so its cost grows with the plans and objects, not with
//! their pairs.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::error::Diagnostics;
use crate::{EnvironmentRender, Result, selector};

/// Two plans writing their overlays to one directory would overwrite each other. Each
/// environment that shares its directory with an earlier plan's is reported once, against the
/// first plan that writes there.
pub fn one_plan_per_overlay(renders: &[EnvironmentRender]) -> Result<()> {
    let mut d = Diagnostics::default();
    // The same directory however each plan spells it (`a/out` and `b/../a/out`) → the renders
    // writing there, in order.
    let mut by_dir: HashMap<PathBuf, Vec<&EnvironmentRender>> =
        HashMap::with_capacity(renders.len());
    for b in renders {
        let earlier = by_dir.entry(directory_key(&b.dir)).or_default();
        // The first render there may be another environment of this very plan: look for the
        // first one of another plan.
        let other = earlier.iter().find(|a| a.plan != b.plan).copied();
        earlier.push(b);
        let Some(a) = other else {
            continue;
        };
        let mut diag = b.stage_at.clone();
        diag.message = format!(
            "environment `{}` of this plan and environment `{}` of {} write their overlays to the same directory {}",
            b.environment,
            a.environment,
            a.plan.display(),
            b.dir.display()
        );
        d.push(diag.hint("give each plan its own `spec.output` directory"));
    }
    d.into_result()
}

/// `p` absolute, with `.` and `..` resolved lexically.
fn directory_key(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .components()
    {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// (render, workload) indices.
type Workloads = Vec<(usize, usize)>;
/// (environment, namespace, label key, label value) → the workloads whose pods carry the
/// label. `None` namespace: the object sets none (it lands in whatever namespace it is
/// applied to).
type ByLabel<'a> = HashMap<(&'a str, Option<&'a str>, &'a str, &'a str), Workloads>;
/// The same, in every namespace.
type ByLabelAnywhere<'a> = HashMap<(&'a str, &'a str, &'a str), Workloads>;

/// Plans rendered together (a monorepo) deploy to the same clusters per environment name: a
/// Service selector one plan patches must not select the pods of another plan's workloads in
/// the same namespace, or that Service would send its traffic to the other app.
///
/// Pod labels are indexed by environment, namespace and label; a selector looks only at the
/// workloads of its namespace (and of none) that carry its rarest label. Apps that share
/// label values (`app.kubernetes.io/part-of`, `team`) in their own namespaces are never
/// compared, so a monorepo of thousands of plans stays linear.
pub fn selectors_apart(renders: &[EnvironmentRender]) -> Result<()> {
    let mut d = Diagnostics::default();
    // One plan (`render --stdout`, a single plan's hook run) has no other plan to collide with.
    let Some(first) = renders.first() else {
        return Ok(());
    };
    if renders.iter().all(|r| r.plan == first.plan)
        || !renders.iter().any(|r| r.patched_selector.is_some())
    {
        return Ok(());
    }
    let mut by_label: ByLabel<'_> = HashMap::new();
    // A selector without a namespace may select pods in any namespace: only then are all
    // namespaces looked at.
    let any_namespace = renders.iter().any(|r| {
        r.patched_selector
            .as_ref()
            .is_some_and(|p| p.namespace.is_none())
    });
    let mut by_label_any: ByLabelAnywhere<'_> = HashMap::new();
    for (ri, r) in renders.iter().enumerate() {
        for (wi, (w, labels)) in r.pods.iter().enumerate() {
            for (k, v) in labels {
                by_label
                    .entry((
                        r.environment.as_str(),
                        w.namespace.as_deref(),
                        k.as_str(),
                        v.as_str(),
                    ))
                    .or_default()
                    .push((ri, wi));
                if any_namespace {
                    by_label_any
                        .entry((r.environment.as_str(), k.as_str(), v.as_str()))
                        .or_default()
                        .push((ri, wi));
                }
            }
        }
    }
    let none: &[(usize, usize)] = &[];
    for a in renders {
        let Some(p) = &a.patched_selector else {
            continue;
        };
        let env = a.environment.as_str();
        // The workloads carrying the selector's rarest label, in the namespaces it reaches.
        let lists: Vec<&[(usize, usize)]> = p
            .selector
            .iter()
            .map(|(k, v)| match p.namespace.as_deref() {
                Some(ns) => [Some(ns), None]
                    .into_iter()
                    .map(|n| {
                        by_label
                            .get(&(env, n, k.as_str(), v.as_str()))
                            .map_or(none, Vec::as_slice)
                    })
                    .collect::<Vec<_>>(),
                None => vec![
                    by_label_any
                        .get(&(env, k.as_str(), v.as_str()))
                        .map_or(none, Vec::as_slice),
                ],
            })
            .min_by_key(|lists| lists.iter().map(|l| l.len()).sum::<usize>())
            .unwrap_or_default();
        for &(ri, wi) in lists.iter().copied().flatten() {
            let Some(b) = renders.get(ri) else {
                continue;
            };
            let Some((w, labels)) = b.pods.get(wi) else {
                continue;
            };
            if b.plan == a.plan || !selector::map_matches(&p.selector, labels) {
                continue;
            }
            let mut diag = p.at.clone();
            diag.message = format!(
                "in environment `{}` the patched selector of Service {} ({}) also selects the pods of {w} of {}",
                a.environment,
                p.service,
                p.selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                b.plan.display()
            );
            d.push(diag.hint("give each app's selector a label only its pods carry (e.g. `applicationName: <app>` in `podLabels` and `selector.add`)"));
        }
    }
    d.into_result()
}
