//! A CanaryPlan's verbs: `promote` (the next weight in `steps`), `abort` (weight 0) and
//! `advance` (the next stage), each an edit of one value in the plan text, checked and
//! rendered with the overlay on disk before anything is written.

use crate::pointer::Pointer as _;
use std::path::Path;

use super::check::{self, CheckedPlan, EnvironmentPlan};
use super::plan::Plan;
use super::stage::Stage;
use crate::edit::{Action, Edit, TextEdit, anchor_at, replace_at, scalar_range};
use crate::error::{Diagnostic, Error, Result};
use crate::render::Mode;
use crate::templates::Templates;
use crate::yaml::{Pos, Source};

/// The new text of a plan after `action` on environment `env`: only the value that moves
/// changes. Pure text work on a checked plan (the fuzz target and property test drive it).
pub fn edit_text(plan: &CheckedPlan, env: &str, action: Action) -> Result<TextEdit> {
    let Some(e) = plan.environment(env) else {
        return Err(
            Diagnostic::new(format!("the plan has no environment `{env}`"))
                .in_file(plan.path.as_path())
                .into(),
        );
    };
    let (new_text, change, message) = match action {
        Action::PromoteLane { .. } => {
            return Err(refuse(
                plan,
                e,
                "--lane promotes a lane of a LanePlan, and this is a CanaryPlan".to_string(),
                "leave out --lane (and --service)",
            ));
        }
        Action::Promote { to, .. } => promote_text(plan, e, env, to)?,
        Action::Abort => abort_text(plan, e, env)?,
        Action::Advance => advance_text(plan, e, env)?,
    };
    Ok(TextEdit {
        new_text,
        change,
        commit_message: message,
    })
}

/// The new text, the change in words and the commit message of one verb.
type Edited = (String, String, String);

/// A verb refused at environment `e`'s stage.
fn refuse(plan: &CheckedPlan, e: &EnvironmentPlan, message: String, hint: &str) -> Error {
    plan.diag(e.stage.pos, message)
        .hint(hint.to_string())
        .into()
}

/// `promote`: the weight to `--to`, else to the next of the plan's steps (at stage shift only).
fn promote_text(
    plan: &CheckedPlan,
    e: &EnvironmentPlan,
    env: &str,
    to: Option<u8>,
) -> Result<Edited> {
    let (stage, weight) = (e.stage.value, e.weight.as_ref().map(|w| w.value));
    if stage != Stage::Shift {
        return Err(refuse(
            plan,
            e,
            format!(
                "environment `{env}` is at stage {stage}; promote moves the weight at stage shift"
            ),
            if stage < Stage::Shift {
                "run `canaryplan advance` until the stage is shift"
            } else {
                "cleanup has begun: there is no weight to move"
            },
        ));
    }
    let current = weight.unwrap_or(0);
    let next = match to {
        Some(n) if n > 100 => {
            return Err(
                Diagnostic::new(format!("--to {n} is not a weight from 0 to 100"))
                    .hint("give the canary percentage, e.g. `--to 25`")
                    .into(),
            );
        }
        Some(n) => n,
        None => plan
            .steps
            .iter()
            .copied()
            .find(|s| *s > current)
            .ok_or_else(|| {
                refuse(
                    plan,
                    e,
                    format!("environment `{env}` is at weight {current}, the last step"),
                    "advance to cleanup-1 to remove the stable copy",
                )
            })?,
    };
    if next == current {
        return Err(refuse(
            plan,
            e,
            format!("environment `{env}` is already at weight {current}"),
            "nothing to do",
        ));
    }
    let mut text = set_weight(&plan.source.text, plan, e, next)?;
    if let Some(a) = &e.aborted {
        // Promoting after an abort starts again: the mark goes, found where the edited text
        // has it.
        let reparsed = reparse_unchecked(plan.path.as_path(), text.clone())?;
        let at = reparsed
            .file
            .spec
            .environments
            .iter()
            .find(|(k, _)| k.value == env)
            .and_then(|(_, x)| x.aborted.as_ref().map(Pos::of))
            .unwrap_or(a.pos);
        text = remove_aborted(&text, plan, at)?;
    }
    Ok((
        text,
        format!("{env}: weight {current} → {next}"),
        format!(
            "canary({}): {env} to {next}% on {}",
            plan.name, plan.canary.version.value
        ),
    ))
}

/// `abort`: weight 0, all traffic on the stable copy (from stage route, the stage becomes
/// shift with weight 0).
fn abort_text(plan: &CheckedPlan, e: &EnvironmentPlan, env: &str) -> Result<Edited> {
    let (stage, weight) = (e.stage.value, e.weight.as_ref().map(|w| w.value));
    match stage {
        Stage::Shift if e.aborted.is_some() => {
            return Err(refuse(
                plan,
                e,
                format!("environment `{env}` is already aborted"),
                "all traffic is on the stable copy; `promote` starts again",
            ));
        }
        Stage::Shift => {}
        Stage::Route => {}
        _ => {
            return Err(refuse(
                plan,
                e,
                format!(
                    "environment `{env}` is at stage {stage}; abort needs the stable copy serving (stages route and shift)"
                ),
                "to roll back further, set an earlier stage in the plan and render",
            ));
        }
    }
    let mut t = plan.source.text.clone();
    if stage == Stage::Route {
        t = set_stage(&t, plan, e, Stage::Shift)?;
        // A route stage has no weight (the plan check refuses one).
        let reparsed = reparse_unchecked(plan.path.as_path(), t.clone())?;
        t = insert_weight(&t, &reparsed, env, 0)?;
    } else {
        t = set_weight(&t, plan, e, 0)?;
    }
    // The mark that keeps every request off the canary: no test route, no mirror.
    let reparsed = reparse_unchecked(plan.path.as_path(), t.clone())?;
    t = insert_after_stage(&t, &reparsed, env, "aborted: true")?;
    let was = weight.map_or_else(|| format!("stage {stage}"), |w| format!("weight {w}"));
    Ok((
        t,
        format!("{env}: {was} → weight 0 (all traffic on the stable copy)"),
        format!(
            "canary({}): abort in {env}, all traffic on {}",
            plan.name, plan.stable.version.value
        ),
    ))
}

/// `advance`: the next stage (entering shift, at weight 0).
fn advance_text(plan: &CheckedPlan, e: &EnvironmentPlan, env: &str) -> Result<Edited> {
    let (stage, weight) = (e.stage.value, e.weight.as_ref().map(|w| w.value));
    let Some(next) = stage.next() else {
        return Err(refuse(
            plan,
            e,
            format!("environment `{env}` is done"),
            "delete the environment (or the plan) when the release is complete",
        ));
    };
    let mut t = set_stage(&plan.source.text, plan, e, next)?;
    if next == Stage::Shift && weight.is_none() {
        let reparsed = reparse_unchecked(plan.path.as_path(), t.clone())?;
        t = insert_weight(&t, &reparsed, env, 0)?;
    }
    Ok((
        t,
        format!("{env}: stage {stage} → {next}"),
        format!(
            "canary({}): {env} to {next}: {}",
            plan.name,
            next.summary_for(plan.traffic)
        ),
    ))
}

/// The edit of `action` on environment `env` of `plan`, checked like `validate` would.
pub fn edit(plan: &CheckedPlan, env: &str, action: Action, templates: &Templates) -> Result<Edit> {
    let path = plan.path.as_path();
    let Some(e) = plan.environment(env) else {
        // Reuse the renderer's message for an unknown environment.
        return Err(
            super::render::render_plan(plan, &[env.to_string()], templates, Mode::Stream)
                .err()
                .unwrap_or_else(|| Error::one(Diagnostic::new(format!("no environment `{env}`")))),
        );
    };
    let text = &plan.source.text;
    let stage = e.stage.value;
    let soaked = soaked(plan, env, &action)?;
    let TextEdit {
        new_text,
        change,
        commit_message: message,
    } = edit_text(plan, env, action.clone())?;
    let edited = reparse(path, new_text.clone(), &plan.root)?;
    let after = super::render::render_plan(&edited, &[env.to_string()], templates, Mode::Overlay)?;
    let after_objects = after
        .first()
        .map(|r| r.objects.as_slice())
        .unwrap_or_default();
    let mut notes: Vec<String> = soaked.into_iter().collect();
    let (mut change, mut message) = (change, message);
    match action {
        Action::Advance => {
            // What the step really changes in the cluster, from the two rendered streams.
            if let Ok(before) = super::render::objects_at(plan, e, e.model.clone(), templates) {
                let what = crate::kinds::canary::transition::describe(&before, after_objects);
                let what = if what.is_empty() {
                    "changes nothing in the cluster".to_string()
                } else {
                    what.join("; ")
                };
                change = format!("{change} ({what})");
                message = format!(
                    "canary({}): {env} to {}: {what}",
                    plan.name,
                    stage.next().unwrap_or(stage)
                );
            }
        }
        Action::Promote { .. } | Action::PromoteLane { .. } => {
            if let Some(w) = canary_on_stable_image(&edited, after_objects) {
                notes.push(format!(
                    "warning: Deployment {w} still runs stable.image: this promotion moves traffic between two copies of the stable code; put the new image into the base to test it"
                ));
            }
        }
        Action::Abort => notes.push(format!(
            "all traffic is on the stable copy {}. To end the failed release: put stable.image back into Deployment {} in the base `{}` and sync it; then promote to 100 and advance to done (both versions then run the stable code), or fix the new code and promote again",
            plan.new_deployment_name(),
            plan.workload.value,
            e.base.value
        )),
    }
    Ok(Edit {
        path: path.to_path_buf(),
        old_text: text.clone(),
        new_text,
        change,
        commit_message: message,
        notes,
        plan: Box::new(edited),
    })
}

/// `promote` waits out the current step's pause (`soak`): refused before it has passed; a
/// note when `--approve` or `--force` moved on. Going back down (`--to` a lower weight) is
/// never held.
pub fn soaked(plan: &CheckedPlan, env: &str, action: &Action) -> Result<Option<String>> {
    let Action::Promote { to, approve, force } = action else {
        return Ok(None);
    };
    let current = plan
        .environment(env)
        .and_then(|e| e.weight.as_ref())
        .map(|w| w.value);
    if to.is_some_and(|t| current.is_some_and(|c| t <= c)) {
        return Ok(None);
    }
    super::soak::check_promote(plan, env, super::soak::now(), *approve, *force)
}

/// Succession: the Deployment that serves as canary, when it still runs stable.image and the
/// edited plan sends it traffic.
fn canary_on_stable_image(plan: &CheckedPlan, objects: &[serde_json::Value]) -> Option<String> {
    let stable = plan.stable.image.as_ref()?;
    if plan.method != crate::kinds::canary::plan::Method::Succession {
        return None;
    }
    let d = objects.iter().find(|o| {
        o.get("kind").and_then(serde_json::Value::as_str) == Some("Deployment")
            && o.at("/metadata/name").and_then(serde_json::Value::as_str)
                == Some(&plan.workload.value)
    })?;
    let containers = d.at("/spec/template/spec/containers")?.as_array()?;
    let main = match &plan.stable.container {
        Some(c) => containers
            .iter()
            .find(|x| x.get("name").and_then(serde_json::Value::as_str) == Some(&c.value))?,
        None => containers.first()?,
    };
    (main.get("image").and_then(serde_json::Value::as_str) == Some(&stable.value))
        .then(|| plan.workload.value.clone())
}

fn reparse(path: &Path, text: String, root: &crate::fsio::Root) -> Result<CheckedPlan> {
    check::check(Plan::parse_in(Source::from_text(path, text), root.clone())?)
}

/// Parses without the plan checks (an intermediate text may be incomplete, e.g. shift
/// without its weight yet).
fn reparse_unchecked(path: &Path, text: String) -> Result<Plan> {
    Plan::parse(Source::from_text(path, text))
}

/// Refuses to edit a value shared through a YAML anchor: changing it would silently change
/// every environment that refers to it.
fn refuse_shared(text: &str, plan: &CheckedPlan, pos: Pos, what: &str) -> Result<()> {
    let Some(anchor) = anchor_at(text, pos) else {
        return Ok(());
    };
    let sharing: Vec<String> = plan
        .environments
        .iter()
        .filter(|e| {
            [Some(e.stage.pos), e.weight.as_ref().map(|w| w.pos)]
                .into_iter()
                .flatten()
                .any(|p| anchor_at(text, p).as_deref() == Some(anchor.as_str()))
        })
        .map(|e| format!("`{}`", e.name.value))
        .collect();
    Err(plan
        .diag(
            pos,
            format!(
                "this {what} is shared through the YAML anchor `&{anchor}` by environments {}; editing it would change them all",
                sharing.join(", ")
            ),
        )
        .hint("write each environment's value out (e.g. `weight: 5`) instead of the anchor and alias, then run the command again")
        .into())
}

fn cannot_edit(plan: &CheckedPlan, pos: Pos) -> Error {
    plan.diag(pos, "cannot edit this value in place")
        .hint("write it as a plain scalar (e.g. `weight: 5`) and try again")
        .into()
}

fn set_stage(text: &str, plan: &CheckedPlan, e: &EnvironmentPlan, to: Stage) -> Result<String> {
    refuse_shared(text, plan, e.stage.pos, "stage")?;
    replace_at(text, e.stage.pos, to.name()).ok_or_else(|| cannot_edit(plan, e.stage.pos))
}

fn set_weight(text: &str, plan: &CheckedPlan, e: &EnvironmentPlan, to: u8) -> Result<String> {
    match &e.weight {
        Some(w) => {
            refuse_shared(text, plan, w.pos, "weight")?;
            replace_at(text, w.pos, &to.to_string()).ok_or_else(|| cannot_edit(plan, w.pos))
        }
        None => {
            let parsed = reparse_unchecked(&plan.path, text.to_string())?;
            insert_weight(text, &parsed, &e.name.value, to)
        }
    }
}

/// Adds `weight: N` right after the environment's `stage:` value: a new line with the same
/// indentation in block style, `, weight: N` in flow style.
fn insert_weight(text: &str, plan: &Plan, env: &str, to: u8) -> Result<String> {
    insert_after_stage(text, plan, env, &format!("weight: {to}"))
}

/// Adds `entry` (`key: value`) right after the environment's `stage:` value, as
/// `insert_weight` does.
fn insert_after_stage(text: &str, plan: &Plan, env: &str, entry: &str) -> Result<String> {
    let Some((_, e)) = plan
        .file
        .spec
        .environments
        .iter()
        .find(|(k, _)| k.value == env)
    else {
        return Err(Diagnostic::new(format!("no environment `{env}`")).into());
    };
    let pos = Pos::of(&e.stage);
    let (_, end) = scalar_range(text, pos)
        .ok_or_else(|| Error::one(plan.source.error(pos, "cannot edit this value in place")))?;
    let line_start = text
        .get(..end)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let line = text
        .get(line_start..)
        .and_then(|t| t.split('\n').next())
        .unwrap_or_default();
    let before_value = text.get(line_start..end).unwrap_or_default();
    let flow = before_value.contains('{');
    if flow {
        return Ok(format!(
            "{}, {entry}{}",
            text.get(..end).unwrap_or_default(),
            text.get(end..).unwrap_or_default()
        ));
    }
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    let line_end = line_start + line.len();
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let line_end = if newline == "\r\n" {
        line_end.saturating_sub(usize::from(line.ends_with('\r')))
    } else {
        line_end
    };
    Ok(format!(
        "{}{newline}{indent}{entry}{}",
        text.get(..line_end).unwrap_or_default(),
        text.get(line_end..).unwrap_or_default()
    ))
}

/// Removes the environment's `aborted: true`.
fn remove_aborted(text: &str, plan: &CheckedPlan, at: Pos) -> Result<String> {
    crate::edit::remove_entry(text, "aborted", at).ok_or_else(|| cannot_edit(plan, at))
}
