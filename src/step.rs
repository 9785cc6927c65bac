//! `promote`, `abort` and `advance` on a plan file of any kind: load it, ask its kind for the
//! edit, write it (with its overlay, `--render`) under a lock.

use std::path::Path;

use crate::edit::{lock, restore, write};
use crate::error::{Diagnostic, Result};
use crate::kinds::{Action, Edit};
use crate::templates::Templates;

/// Plans the edit of `action` on environment `env` of the plan at `path`, and checks the
/// result like `validate` would.
pub fn plan_edit(path: &Path, env: &str, action: Action, templates: &Templates) -> Result<Edit> {
    let plan = crate::kinds::registry::load(path)?;
    let mut edit = plan.edit(env, action, templates)?;
    // What the step moves, computed from the two renders: the commit message's body.
    if let Some(d) = moved(plan.as_ref(), edit.plan.as_ref(), env, templates) {
        edit.commit_message
            .push_str(&format!("\n\n{}", d.to_text(env).trim_end()));
    }
    Ok(edit)
}

/// The traffic delta between environment `env` of `before` and of `after`, each rendered as
/// its final stream; `None` when either does not render.
pub fn moved(
    before: &dyn crate::kinds::Plan,
    after: &dyn crate::kinds::Plan,
    env: &str,
    templates: &Templates,
) -> Option<crate::invariants::Delta> {
    let model = |p: &dyn crate::kinds::Plan| {
        p.render(&[env.to_string()], templates, crate::render::Mode::Stream)
            .ok()?
            .into_iter()
            .next()?
            .model
    };
    Some(crate::invariants::delta(&model(before)?, &model(after)?))
}

/// What `promote`/`abort`/`advance` did: the edit written, and the overlay rendered with it
/// (`--render`).
#[derive(Debug)]
pub struct Applied {
    pub edit: Edit,
    pub report: crate::render::WriteReport,
}

/// Edits environment `env` of the plan at `path` and writes it, under a lock on the plan's
/// directory (concurrent steps take turns). With `render`, the environment's overlay is
/// rendered from the edited plan too, and the two change together or not at all: if the
/// overlay cannot be written, the plan goes back to what it was.
pub fn apply(
    path: &Path,
    env: &str,
    action: Action,
    templates: &Templates,
    render: Option<bool>,
) -> Result<Applied> {
    let _lock = lock(path)?;
    let edit = plan_edit(path, env, action, templates)?;
    let renders = match render {
        Some(from_scratch) => {
            let r = edit.plan.render(
                std::slice::from_ref(&env.to_string()),
                templates,
                crate::render::Mode::Overlay,
            )?;
            crate::render::refuse_jumps_from_nothing(&r, from_scratch)?;
            r
        }
        None => Vec::new(),
    };
    write(&edit)?;
    let report = match crate::render::write_overlays(&renders) {
        Ok(r) => r,
        Err(mut e) => {
            let shown = crate::output::diff::shown(path);
            e.diagnostics.push(match restore(&edit) {
                Ok(()) => Diagnostic::new(format!("{shown} is unchanged"))
                    .hint("fix the problem and run the same command again"),
                Err(r) => Diagnostic::new(format!(
                    "{shown} was edited but its overlay was not written, and putting the plan back failed too: {r}"
                ))
                .hint("render it, or undo the plan edit with git"),
            });
            return Err(e);
        }
    };
    Ok(Applied { edit, report })
}
