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
