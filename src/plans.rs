//! Several plans at once (a monorepo, `--all`, the pre-commit hook): find them, load each by
//! its kind, render them in parallel, and the checks that span plans.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Diagnostics, Error, Result};
use crate::kinds;
use crate::plan_file::DEFAULT_PLAN;
use crate::render::{EnvironmentRender, Mode};
use crate::{Templates, selector, traffic};

/// Loads, checks and renders several plans, in parallel on the machine's cores; every
/// problem in every plan is reported together, in the order the plans were given.
pub fn render_plans(
    paths: &[PathBuf],
    only: &[String],
    templates: &Templates,
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    let render_one = |p: &PathBuf| kinds::registry::load(p)?.render(only, templates, mode);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(paths.len());
    let results: Vec<Result<Vec<EnvironmentRender>>> = if workers <= 1 {
        paths.iter().map(render_one).collect()
    } else {
        let chunk = paths.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(render_one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Diagnostic::new(
                            "internal error: a render thread panicked",
                        )
                        .into())]
                    })
                })
                .collect()
        })
    };
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for r in results {
        if let Some(r) = d.take(r) {
            out.extend(r);
        }
    }
    d.into_result()?;
    one_plan_per_overlay(&out)?;
    selectors_apart(&out)?;
    Ok(out)
}

/// Two plans writing their overlays to one directory would overwrite each other.
fn one_plan_per_overlay(renders: &[EnvironmentRender]) -> Result<()> {
    let mut d = Diagnostics::default();
    // The same directory however each plan spells it (`a/out` and `b/../a/out`).
    let key = |p: &Path| {
        let mut out = PathBuf::new();
        for c in std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .components()
        {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let keys: Vec<PathBuf> = renders.iter().map(|r| key(&r.dir)).collect();
    for (i, a) in renders.iter().enumerate() {
        for (j, b) in renders.iter().enumerate().skip(i + 1) {
            if a.plan != b.plan && keys.get(i) == keys.get(j) {
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
        }
    }
    d.into_result()
}

/// Plans rendered together (a monorepo) deploy to the same clusters per environment name: a
/// Service selector one plan patches must not select the pods of another plan's workloads in
/// the same namespace, or that Service would send its traffic to the other app.
fn selectors_apart(renders: &[EnvironmentRender]) -> Result<()> {
    let mut d = Diagnostics::default();
    if !renders.iter().any(|r| r.patched_selector.is_some()) {
        return Ok(());
    }
    let workloads: Vec<_> = renders
        .iter()
        .map(|r| traffic::Mesh::new(&r.objects).workloads())
        .collect();
    // Every pod label, per environment: a selector only needs the workloads that carry its
    // rarest label (a monorepo of hundreds of plans stays linear).
    // (environment, label key, label value) → (render, workload) indices.
    type Index<'a> = HashMap<(&'a str, &'a str, &'a str), Vec<(usize, usize)>>;
    let mut by_label: Index<'_> = HashMap::new();
    for (ri, (r, ws)) in renders.iter().zip(&workloads).enumerate() {
        for (wi, (_, labels)) in ws.iter().enumerate() {
            for (k, v) in labels {
                by_label
                    .entry((r.environment.as_str(), k.as_str(), v.as_str()))
                    .or_default()
                    .push((ri, wi));
            }
        }
    }
    for a in renders {
        let Some(p) = &a.patched_selector else {
            continue;
        };
        let candidates = p
            .selector
            .iter()
            .map(|(k, v)| {
                by_label
                    .get(&(a.environment.as_str(), k.as_str(), v.as_str()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|c| c.len())
            .unwrap_or_default();
        for &(ri, wi) in candidates {
            let (Some(b), Some((w, labels))) =
                (renders.get(ri), workloads.get(ri).and_then(|ws| ws.get(wi)))
            else {
                continue;
            };
            if b.plan == a.plan {
                continue;
            }
            let same_ns =
                w.namespace == p.namespace || w.namespace.is_none() || p.namespace.is_none();
            if same_ns && selector::map_matches(&p.selector, labels) {
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
    }
    d.into_result()
}

/// Every `canaryplan.yaml` below `root`, sorted; hidden directories, `target` and
/// `node_modules` are skipped. For monorepos and the pre-commit hook.
pub fn find_plans(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, &e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "node_modules" {
                    stack.push(entry.path());
                }
            } else if name == DEFAULT_PLAN {
                let p = entry.path();
                found.push(p.strip_prefix("./").map(Path::to_path_buf).unwrap_or(p));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(
            Diagnostic::new(format!("no {} below this directory", DEFAULT_PLAN))
                .in_file(root)
                .hint("create one with `canaryplan init`, or name the plans to render")
                .into(),
        );
    }
    Ok(found)
}
