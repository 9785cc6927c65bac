//! Several plans at once (a monorepo, `--all`, the pre-commit hook): find them, load each by
//! its kind, render them in parallel, and the checks that span plans.

use std::path::{Path, PathBuf};

use crate::Templates;
use crate::error::{Diagnostic, Diagnostics, Error, Result};
use crate::kinds;
use crate::plan_file::DEFAULT_PLAN;
use crate::render::{EnvironmentRender, Mode};

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
    if paths.len() > 1 {
        crate::monorepo::one_plan_per_overlay(&out)?;
        crate::monorepo::selectors_apart(&out)?;
    }
    Ok(out)
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

/// What environment `env`'s render moves, in words and as JSON: against the record of its
/// overlay on disk (`disk`), or against the base alone.
pub struct TrafficChange {
    pub text: String,
    pub json: serde_json::Value,
}

/// `explain --against disk|base`: the render's traffic model compared with the overlay's
/// record (what the cluster has) or with the base alone, by the invariants' delta.
pub fn traffic_change(
    plan: &dyn kinds::Plan,
    env: &str,
    templates: &Templates,
    disk: bool,
) -> Result<TrafficChange> {
    let r = plan
        .render(&[env.to_string()], templates, Mode::Stream)?
        .into_iter()
        .next();
    let (before, against) = match &r {
        Some(r) if disk => (r.traffic_before.as_ref(), "the overlay on disk"),
        Some(r) => (r.base_model.as_ref(), "the base alone"),
        None => (None, ""),
    };
    let after = r.as_ref().and_then(|r| r.model.as_ref());
    Ok(match (before, after) {
        (Some(b), Some(a)) => {
            let d = crate::invariants::delta(b, a);
            TrafficChange {
                text: format!("\nagainst {against}:\n{}", d.to_text(env)),
                json: serde_json::json!({"against": against, "delta": d}),
            }
        }
        _ => TrafficChange {
            text: format!(
                "\nagainst {against}: nothing to compare with (no traffic record on disk: `canaryplan render` writes one)\n"
            ),
            json: serde_json::json!({"against": against, "delta": null}),
        },
    })
}

/// `status` for a plan of any kind, with each environment's pending traffic change: what its
/// render moves against the record of its overlay on disk (the invariants' delta).
pub fn status(
    plan: &dyn kinds::Plan,
    templates: &Templates,
) -> Vec<crate::status::EnvironmentStatus> {
    let mut envs = plan.status(templates);
    for e in &mut envs {
        let Ok(renders) = plan.render(
            std::slice::from_ref(&e.environment),
            templates,
            Mode::Stream,
        ) else {
            continue;
        };
        let Some(r) = renders.first() else { continue };
        if let (Some(before), Some(after)) = (&r.traffic_before, &r.model) {
            let d = crate::invariants::delta(before, after);
            if !d.is_empty() {
                e.pending = d
                    .to_text(&e.environment)
                    .lines()
                    .map(str::to_string)
                    .collect();
            }
        }
    }
    envs
}
