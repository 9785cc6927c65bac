//! Plan kinds beside the CanaryPlan (`plan.rs` → `check.rs` → `objects/`): each kind is a
//! folder owning its plan file, its checks, its stage model and what each stage renders. What
//! kinds share — located errors, the stage ladder and the one-step rule, environments, overlay
//! and stream output — lives outside them. `kind:` in the file picks the module.

pub mod gateway_upgrade;
pub mod lanes;
pub mod revision_upgrade;

use serde::Deserialize;

use crate::yaml::Source;

/// The `kind:` of a plan file, read before the file is parsed as that kind (`None` when the
/// file has none, or is not a mapping: the CanaryPlan parser then says what is wrong). A
/// top-level key is at column 0 of a block mapping, and no scalar's content can be (it would
/// be indented): that line is read without a second parse of the file; a flow-style file is
/// parsed for it.
pub fn kind_of(source: &Source) -> Option<String> {
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    let line = source.text.lines().find_map(|l| {
        let v = l.strip_prefix("kind:")?;
        let v = v.split(" #").next().unwrap_or_default().trim();
        Some(v.trim_matches(['"', '\'']).to_string())
    });
    if let Some(k) = line.filter(|k| !k.is_empty()) {
        return Some(k);
    }
    serde_saphyr::from_str_with_options::<KindOnly>(&source.text, crate::yaml::options())
        .ok()
        .and_then(|k| k.kind)
}

/// What a kind's environment render needs besides its objects, to be written as an overlay and
/// checked against the one on disk.
pub struct Written<'a> {
    pub plan_name: &'a str,
    pub plan_path: &'a std::path::Path,
    pub plan_dir: &'a std::path::Path,
    pub root: &'a crate::fsio::Root,
    pub output_dir: std::path::PathBuf,
    pub environment: &'a str,
    pub stage: &'a str,
    /// The kind's stages, in order.
    pub ladder: &'a [&'a str],
    /// Where the plan sets the stage (a diagnostic without a message yet).
    pub stage_at: crate::Diagnostic,
    /// Each base, with where the plan names it (a diagnostic without a message yet).
    pub bases: Vec<(&'a crate::base::Base, crate::Diagnostic)>,
    /// Where requests go, in a few words, for summaries.
    pub traffic: String,
}

/// One environment's render of any kind: its overlay files (referencing every base) and the
/// state on disk, with the one-step rule of the kind's ladder.
pub fn environment_render(
    w: Written<'_>,
    rendered: &crate::objects::Rendered,
    objects: Vec<serde_json::Value>,
    mode: crate::Mode,
) -> crate::Result<crate::EnvironmentRender> {
    use crate::output::overlay::{self, OverlayOf};
    let (files, on_disk, existing) = match mode {
        crate::Mode::Stream => (Vec::new(), None, Vec::new()),
        crate::Mode::Overlay => {
            let mut refs = Vec::new();
            let mut d = crate::error::Diagnostics::default();
            for (b, at) in &w.bases {
                if !b.is_kustomization {
                    let mut e = at.clone();
                    e.message = format!(
                        "the base {} is not a kustomize directory, so an overlay cannot reference it",
                        b.path.display()
                    );
                    d.push(e.hint("add a kustomization.yaml listing the base's files under `resources:`, or use `render --stdout`"));
                    continue;
                }
                match overlay::relative(&w.output_dir, &b.path) {
                    Some(r) if !refs.contains(&r) => refs.push(r),
                    Some(_) => {}
                    None => {
                        let mut e = at.clone();
                        e.message = format!(
                            "cannot reach the base {} from the overlay {}",
                            b.path.display(),
                            w.output_dir.display()
                        );
                        d.push(
                            e.hint("keep the plan, its bases and its output under one directory"),
                        );
                    }
                }
            }
            d.into_result()?;
            overlay::check_target(w.plan_dir, &w.output_dir, w.root)?;
            let existing = overlay::read_files(&w.output_dir)?;
            overlay::check_ours(&w.output_dir, &existing)?;
            let of = OverlayOf {
                plan_name: w.plan_name,
                plan_path: w.plan_path,
                environment: w.environment,
                stage: w.stage,
                weight: None,
            };
            let files = overlay::files_of(&of, refs, rendered);
            let on_disk = overlay::state_of(&w.output_dir, &existing)?;
            if let Some(disk) = &on_disk {
                crate::ladder::check_step(
                    w.ladder,
                    w.environment,
                    &disk.stage,
                    w.stage,
                    w.stage_at.clone(),
                )?;
            }
            (files, on_disk, existing)
        }
    };
    Ok(crate::EnvironmentRender {
        plan: w.plan_path.to_path_buf(),
        environment: w.environment.to_string(),
        stage: w.stage.to_string(),
        first_stage: w.ladder.first() == Some(&w.stage),
        traffic: w.traffic,
        dir: w.output_dir,
        files,
        objects,
        on_disk,
        existing,
        patched_selector: None,
        stage_at: w.stage_at,
    })
}

/// Whether an environment's overlay on disk is what `render` writes, from a render of it.
pub fn overlay_state(r: crate::Result<Vec<crate::EnvironmentRender>>) -> crate::status::Overlay {
    use crate::status::Overlay;
    match r {
        Err(err) => Overlay::Refused {
            reason: err
                .diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default(),
        },
        Ok(r) => match r
            .first()
            .map(|r| (r.on_disk.is_some(), crate::output::diff::changes(r)))
        {
            Some((false, _)) | None => Overlay::Missing,
            Some((true, Ok(c))) if c.is_empty() => Overlay::Current,
            Some((true, Ok(c))) => Overlay::Stale { files: c.len() },
            Some((true, Err(err))) => Overlay::Refused {
                reason: err.to_string(),
            },
        },
    }
}

/// The stage after `stage` in a kind's ladder.
pub fn next_stage<'a>(ladder: &[&'a str], stage: &str) -> Option<&'a str> {
    crate::ladder::next(ladder, stage)
}

/// Renders the environments `only` (all when empty) of a plan whose environments are named by
/// `name`: an unknown name is refused with the plan's names; every environment's problems are
/// reported together.
pub fn render_each<E>(
    plan_path: &std::path::Path,
    environments: &[E],
    name: impl Fn(&E) -> &str,
    only: &[String],
    mut render: impl FnMut(&E) -> crate::Result<crate::EnvironmentRender>,
) -> crate::Result<Vec<crate::EnvironmentRender>> {
    let mut d = crate::error::Diagnostics::default();
    let names: Vec<&str> = environments.iter().map(&name).collect();
    for wanted in only {
        if !names.contains(&wanted.as_str()) {
            let hint = match crate::names::did_you_mean(wanted, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? the plan has {}", names.join(", ")),
                None => format!("the plan has {}", names.join(", ")),
            };
            d.push(
                crate::Diagnostic::new(format!("the plan has no environment `{wanted}`"))
                    .in_file(plan_path)
                    .hint(hint),
            );
        }
    }
    d.into_result()?;
    let mut d = crate::error::Diagnostics::default();
    let mut out = Vec::new();
    for e in environments
        .iter()
        .filter(|e| only.is_empty() || only.iter().any(|o| o == name(e)))
    {
        if let Some(r) = d.take(render(e)) {
            out.push(r);
        }
    }
    d.into_result()?;
    Ok(out)
}

/// A kind's base, relative to its plan, or where the plan names one that does not exist.
pub fn load_base(
    dir: &std::path::Path,
    base: &crate::check::At<String>,
    root: &crate::fsio::Root,
    at: crate::Diagnostic,
) -> crate::Result<crate::base::Base> {
    let path = dir.join(&base.value);
    if std::fs::symlink_metadata(&path).is_err() {
        let mut e = at;
        e.message = format!("the base `{}` does not exist", base.value);
        return Err(e
            .hint(format!(
                "the path is relative to the plan file; looked for {}",
                path.display()
            ))
            .into());
    }
    crate::base::load(&path, root)
}
