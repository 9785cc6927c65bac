//! A LanePlan's verbs: `advance` moves the stage, `abort` sets every lane's ingress weight of
//! the environment to 0.

use crate::edit::{Action, Edit, replace_at};
use crate::error::{Diagnostic, Error, Result};
use crate::render::Mode;
use crate::yaml::{Pos, Source};

/// A LanePlan's steps: `advance` moves the stage, `abort` sets every lane's ingress weight of
/// the environment to 0; `promote` has no single weight to move (each lane has its own).
pub fn edit(
    plan: &crate::kinds::lanes::CheckedLanePlan,
    env: &str,
    action: Action,
) -> Result<Edit> {
    let path = plan.path.as_path();
    let Some(e) = plan.environments.iter().find(|x| x.name.value == env) else {
        return Err(
            crate::kinds::lanes::render_plan(plan, &[env.to_string()], Mode::Stream)
                .err()
                .unwrap_or_else(|| Error::one(Diagnostic::new(format!("no environment `{env}`")))),
        );
    };
    let text = plan.source.text.clone();
    let cannot = |pos: Pos| -> Error {
        plan.diag(pos, "cannot edit this value in place")
            .hint("write it as a plain scalar (e.g. `weight: 5`) and try again")
            .into()
    };
    let stage = e.stage.value;
    let (new_text, change, message) = match action {
        Action::PromoteLane { lane, service, to } => {
            return super::promote::promote(plan, env, &lane, service.as_deref(), to);
        }
        Action::Advance => {
            let Some(next) = stage.next() else {
                return Err(plan
                    .diag(e.stage.pos, format!("environment `{env}` is done"))
                    .hint("delete the plan once every environment is done")
                    .into());
            };
            let t =
                replace_at(&text, e.stage.pos, next.name()).ok_or_else(|| cannot(e.stage.pos))?;
            (
                t,
                format!("{env}: stage {stage} → {next}"),
                format!(
                    "lanes({}): {env} to {next}: {}",
                    plan.name,
                    crate::kinds::lanes::stage::LaneModel::summary(next)
                ),
            )
        }
        Action::Abort => abort_text(plan, e, env)?,
        Action::Promote { .. } => {
            return Err(plan
                .diag(
                    e.stage.pos,
                    "a LanePlan has no single weight to promote: each lane has its own",
                )
                .hint(format!(
                    "promote one lane: `promote --env {env} --lane <lane> [--to N]`, or one service of it: `--lane <lane> --service <service>`"
                ))
                .into());
        }
    };
    let edited = crate::kinds::lanes::plan::load_in(
        Source::from_text(path, new_text.clone()),
        plan.root.clone(),
    )?;
    crate::kinds::lanes::render_plan(&edited, &[env.to_string()], Mode::Overlay)?;
    Ok(Edit {
        path: path.to_path_buf(),
        old_text: text,
        new_text,
        change,
        commit_message: message,
        notes: Vec::new(),
        plan: Box::new(edited),
    })
}

/// `abort` (at shift): every lane's weight to 0 and `aborted: true` under the environment, so
/// that no request reaches a lane copy, tagged or not.
fn abort_text(
    plan: &crate::kinds::lanes::CheckedLanePlan,
    e: &crate::kinds::lanes::plan::LaneEnv,
    env: &str,
) -> Result<(String, String, String)> {
    let text = plan.source.text.clone();
    let cannot = |pos: Pos| -> Error {
        plan.diag(pos, "cannot edit this value in place")
            .hint("write it as a plain scalar (e.g. `weight: 5`) and try again")
            .into()
    };
    let mut t = text.clone();
    let mut moved = Vec::new();
    // From the end of the file up, so earlier positions stay valid.
    let mut weights: Vec<(String, Pos)> = e
        .lanes
        .iter()
        .filter_map(|(l, w, _)| {
            w.as_ref()
                .filter(|w| w.value > 0)
                .map(|w| (l.clone(), w.pos))
        })
        .collect();
    weights.sort_by_key(|(_, p)| std::cmp::Reverse((p.line, p.column)));
    if e.aborted.is_some() {
        return Err(plan
            .diag(
                e.stage.pos,
                format!("environment `{env}` is already aborted"),
            )
            .hint("no request reaches a lane copy; `promote --lane` starts again")
            .into());
    }
    if e.stage.value != crate::ladder::Stage::Shift {
        return Err(plan
            .diag(e.stage.pos, format!("environment `{env}` is at stage {}; abort takes the lanes out of traffic at shift", e.stage.value))
            .hint("before shift only requests naming a lane reach it: to end a lane, set an earlier stage and render")
            .into());
    }
    for (lane, pos) in weights {
        t = replace_at(&t, pos, "0").ok_or_else(|| cannot(pos))?;
        moved.push(lane);
    }
    moved.reverse();
    // The mark goes under the environment's key, which comes before its weights in the
    // file: their edits left its position as it was.
    t = super::promote::add_key(&t, e.name.pos, "aborted: true")
        .ok_or_else(|| cannot(e.stage.pos))?;
    let what = if moved.is_empty() {
        "lane routes closed".to_string()
    } else {
        format!("lanes {} to weight 0", moved.join(", "))
    };
    Ok((
        t,
        format!("{env}: {what}, no request reaches a lane copy"),
        format!(
            "lanes({}): {env}: abort, ingress traffic back on {}",
            plan.name, plan.baseline.value
        ),
    ))
}
