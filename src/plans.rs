//! Several plans at once (a monorepo, `--all`, the pre-commit hook): find them, load each by
//! its kind, render them in parallel, and the checks that span plans.

use std::path::{Path, PathBuf};

use crate::Templates;
use crate::error::{Diagnostic, Diagnostics, Error, Result};
use crate::kinds;
use crate::plan_file::DEFAULT_PLAN;
use crate::render::{EnvironmentRender, Mode};

/// What a caller of `render_plans` reads of each render once it passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Everything: final objects, traffic models, every file (`--stdout`, `diff`, reviews).
    All,
    /// What writing the overlays reads (`render`, `validate`): each render is settled
    /// (`EnvironmentRender::settle`) as soon as it is checked, in the thread that rendered it.
    Writes,
    /// What a review reads (`diff`): the traffic models too
    /// (`EnvironmentRender::settle_for_review`).
    Review,
}

/// Loads, checks and renders several plans, in parallel on the machine's cores; every
/// problem in every plan is reported together, in the order the plans were given.
pub fn render_plans(
    paths: &[PathBuf],
    only: &[String],
    templates: &Templates,
    mode: Mode,
    keep: Keep,
) -> Result<Vec<EnvironmentRender>> {
    // One plan (`render --stdout`, an Argo CD refresh) is rendered on this thread.
    if let [plan] = paths {
        return render_one(plan, only, templates, mode, keep);
    }
    let feed = |push: &mut dyn FnMut(usize, PathBuf)| {
        for (i, p) in paths.iter().enumerate() {
            push(i, p.clone());
        }
        Ok(())
    };
    let renders = render_queued(feed, only, templates, mode, keep)?;
    checked_together(renders, paths.len())
}

/// Every plan below `root` (as `find_plans` finds them) rendered as `render_plans` renders
/// them, in the order `find_plans` gives: the plans found first are rendered while the rest of
/// the tree is walked.
pub fn render_found(
    root: &Path,
    only: &[String],
    templates: &Templates,
    mode: Mode,
    keep: Keep,
) -> Result<Vec<EnvironmentRender>> {
    let feed = |push: &mut dyn FnMut(PathBuf, PathBuf)| {
        let mut found = 0;
        walk(root, &mut |p| {
            found += 1;
            push(p.clone(), p);
        })?;
        if found == 0 {
            return Err(no_plans(root));
        }
        Ok(())
    };
    let renders = render_queued(feed, only, templates, mode, keep)?;
    let plans = renders.len();
    checked_together(renders, plans)
}

/// Renders the plans `feed` pushes (each with the key its renders are ordered by), on one
/// thread per core while `feed` runs on this one; the renders come back ordered by their keys,
/// every plan's problems reported together.
fn render_queued<K: Ord + Send>(
    feed: impl FnOnce(&mut dyn FnMut(K, PathBuf)) -> Result<()>,
    only: &[String],
    templates: &Templates,
    mode: Mode,
    keep: Keep,
) -> Result<Vec<Vec<EnvironmentRender>>> {
    let (send, receive) = std::sync::mpsc::channel::<(K, PathBuf)>();
    let receive = std::sync::Mutex::new(receive);
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let (fed, mut results) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        // The lock is let go before rendering (a `while let` would hold it).
                        let next = receive
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        // Over when the feed is done and every plan taken.
                        let Ok((key, plan)) = next else { break };
                        done.push((key, render_one(&plan, only, templates, mode, keep)));
                    }
                    done
                })
            })
            .collect();
        let fed = feed(&mut |key, plan| {
            // The receiver outlives every worker: a send cannot fail.
            let _ = send.send((key, plan));
        });
        drop(send);
        let mut results: Vec<(K, Result<Vec<EnvironmentRender>>)> = Vec::new();
        for h in handles {
            match h.join() {
                Ok(done) => results.extend(done),
                Err(_) => {
                    return (
                        Err(Diagnostic::new("internal error: a render thread panicked").into()),
                        Vec::new(),
                    );
                }
            }
        }
        (fed, results)
    });
    fed?;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut d = Diagnostics::default();
    let mut out = Vec::with_capacity(results.len());
    for (_, r) in results {
        if let Some(r) = d.take(r) {
            out.push(r);
        }
    }
    d.into_result()?;
    Ok(out)
}

/// One plan's environments, settled when only their writes are kept.
fn render_one(
    plan: &Path,
    only: &[String],
    templates: &Templates,
    mode: Mode,
    keep: Keep,
) -> Result<Vec<EnvironmentRender>> {
    let mut renders = kinds::registry::load(plan)?.render(only, templates, mode)?;
    match keep {
        Keep::All => {}
        Keep::Writes => renders.iter_mut().for_each(EnvironmentRender::settle),
        Keep::Review => renders
            .iter_mut()
            .for_each(EnvironmentRender::settle_for_review),
    }
    Ok(renders)
}

/// The checks across plans, when there are several.
fn checked_together(
    renders: Vec<Vec<EnvironmentRender>>,
    plans: usize,
) -> Result<Vec<EnvironmentRender>> {
    let out: Vec<EnvironmentRender> = renders.into_iter().flatten().collect();
    if plans > 1 {
        crate::monorepo::one_plan_per_overlay(&out)?;
        crate::monorepo::selectors_apart(&out)?;
    }
    Ok(out)
}

/// Every `canaryplan.yaml` below `root`, sorted; hidden directories, `target` and
/// `node_modules` are skipped. For monorepos and the pre-commit hook.
pub fn find_plans(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(root, &mut |p| found.push(p))?;
    found.sort();
    if found.is_empty() {
        return Err(no_plans(root));
    }
    Ok(found)
}

/// Calls `plan` with every `canaryplan.yaml` below `root`, in no particular order.
fn walk(root: &Path, plan: &mut dyn FnMut(PathBuf)) -> Result<()> {
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
                plan(p.strip_prefix("./").map(Path::to_path_buf).unwrap_or(p));
            }
        }
    }
    Ok(())
}

fn no_plans(root: &Path) -> Error {
    Diagnostic::new(format!("no {} below this directory", DEFAULT_PLAN))
        .in_file(root)
        .hint("create one with `canaryplan init`, or name the plans to render")
        .into()
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
