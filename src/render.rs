//! One environment's render, whatever the plan's kind: the overlay files and final objects a
//! kind produced, the state on disk it was checked against, and writing overlays to disk (only
//! once every plan rendered without error).

use std::path::PathBuf;

use serde_json::Value;

use crate::error::{Diagnostic, Diagnostics, Result};
use crate::output::overlay::{self, DiskState, File};
use crate::plan_file::Labels;

/// What a render is for: the overlay needs a base kustomize can build and is checked against
/// the overlay on disk; the stream (Argo CD, `--stdout`) needs neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Overlay,
    Stream,
}

/// One environment of one plan, rendered in memory and checked.
#[derive(Debug)]
pub struct EnvironmentRender {
    pub plan: PathBuf,
    pub environment: String,
    /// The stage rendered (its name in the plan kind's ladder).
    pub stage: String,
    /// Whether it is the ladder's first stage (where a release starts).
    pub first_stage: bool,
    /// Where traffic goes at that stage, in a few words (`stable 95% / canary 5%`).
    pub traffic: String,
    /// `<output>/<environment>`.
    pub dir: PathBuf,
    /// The overlay's files (empty in stream mode).
    pub files: Vec<File>,
    /// The final objects: base with every patch applied, plus the new resources (emptied by
    /// `settle`).
    pub objects: Vec<Value>,
    /// Every workload of the final objects with its pod labels, for the checks across plans
    /// (kept by `settle`).
    pub pods: Vec<(crate::traffic::Workload, crate::plan_file::Labels)>,
    /// What the overlay on disk renders, if there is one.
    pub on_disk: Option<DiskState>,
    /// The overlay's files on disk when rendering started.
    pub existing: Vec<File>,
    /// The Service selector as patched at this stage, for checks across plans.
    pub patched_selector: Option<PatchedSelector>,
    /// Where the plan sets this environment's stage (a diagnostic without a message yet).
    pub stage_at: Diagnostic,
    /// The traffic model of this render (`kinds::promise::keep` sets it).
    pub model: Option<crate::invariants::Model>,
    /// The traffic model of the base alone, as this environment sees it.
    pub base_model: Option<crate::invariants::Model>,
    /// Changes of this environment outside its plan entry that `--accept-change` (or
    /// `--from-scratch`) accepted: what invariant 2 would have refused.
    pub accepted: Vec<String>,
    /// What the kind declared this render to be (`Unchanged` when the record on disk was
    /// rendered from the same plan entry).
    pub declared: Option<crate::invariants::Declared>,
    /// The traffic model the overlay on disk recorded when it was rendered, if it has a record.
    pub traffic_before: Option<crate::invariants::Model>,
}

impl EnvironmentRender {
    /// Drops what only a review reads, once every check of this render passed: the final
    /// objects, the traffic models, and the overlay's files when they are the ones on disk
    /// (writing them would change nothing). `render` and `validate` settle each render as soon
    /// as it is checked, so thousands of plans rendered together hold only what they write and
    /// what the checks across plans read (`pods`, `patched_selector`, `dir`).
    pub fn settle(&mut self) {
        self.settle_for_review();
        self.model = None;
        self.base_model = None;
        self.traffic_before = None;
    }

    /// `settle`, keeping what a review reads (`diff`): the traffic models, besides the files
    /// that differ from disk.
    pub fn settle_for_review(&mut self) {
        self.objects = Vec::new();
        if self.files == self.existing {
            self.files = Vec::new();
            self.existing = Vec::new();
        }
    }
}

/// A Service selector canaryplan patched: in one namespace it must select no pods of another
/// plan's apps.
#[derive(Debug, Clone)]
pub struct PatchedSelector {
    pub namespace: Option<String>,
    pub service: String,
    pub selector: Labels,
    /// Where the plan sets it (a diagnostic without a message yet).
    pub at: Diagnostic,
}

/// Without an overlay on disk nothing says which stage the cluster is at, so the "one stage at
/// a time" rule cannot hold: a render starting past `prepare` must be asked for
/// (`--from-scratch`), since it may skip stages in a cluster that was synced from elsewhere.
pub fn refuse_jumps_from_nothing(renders: &[EnvironmentRender], from_scratch: bool) -> Result<()> {
    if from_scratch {
        return Ok(());
    }
    let mut d = Diagnostics::default();
    for r in renders {
        if r.on_disk.is_none() && !r.first_stage {
            let mut diag = r.stage_at.clone();
            diag.message = format!(
                "environment `{}` has no overlay on disk at {}, and the plan starts it at stage {}",
                r.environment,
                r.dir.display(),
                r.stage
            );
            d.push(diag.hint("a release starts at prepare, one stage per commit; if the cluster really is at this stage (a deleted overlay, a new checkout of rendered output), render with --from-scratch"));
        }
    }
    d.into_result()
}

/// What writing the overlays did: each overlay with what happened to it, and directories that
/// could not be removed afterwards.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub written: Vec<(PathBuf, overlay::Written)>,
    pub left_behind: Vec<PathBuf>,
}

/// Writes rendered overlays. Call only once everything rendered without error, so that a
/// refused render writes nothing. Each overlay is replaced whole; when one cannot be written,
/// the error says which overlays are new and which are as they were.
pub fn write_overlays(renders: &[EnvironmentRender]) -> Result<WriteReport> {
    let mut report = WriteReport::default();
    for (i, r) in renders.iter().enumerate() {
        // The plan's repository, as loading it found it: overlays are written inside it.
        let written = if r.files == r.existing {
            Ok((overlay::Written::Unchanged, None))
        } else {
            crate::fsio::Root::discover(r.plan.parent().unwrap_or(std::path::Path::new("")))
                .and_then(|root| overlay::write(&root, &r.dir, &r.files, &r.existing))
        };
        match written {
            Ok((w, leftover)) => {
                report.written.push((r.dir.clone(), w));
                report.left_behind.extend(leftover);
            }
            Err(mut e) => {
                if renders.len() > 1 {
                    let list = |rs: &mut dyn Iterator<Item = &PathBuf>| {
                        let v: Vec<String> = rs.map(|p| p.display().to_string()).collect();
                        if v.is_empty() {
                            "none".to_string()
                        } else {
                            v.join(", ")
                        }
                    };
                    let new = list(
                        &mut report
                            .written
                            .iter()
                            .filter(|(_, w)| *w != overlay::Written::Unchanged)
                            .map(|(p, _)| p),
                    );
                    let old = list(&mut renders.iter().skip(i).map(|r| &r.dir));
                    e.diagnostics.push(
                        Diagnostic::new(format!(
                            "overlays written: {new}; left as they were: {old}"
                        ))
                        .hint(
                            "fix the problem and render again: each overlay is whole, old or new",
                        ),
                    );
                }
                return Err(e);
            }
        }
    }
    Ok(report)
}
