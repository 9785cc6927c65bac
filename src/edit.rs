//! `promote`, `abort` and `advance`: change one environment's weight or stage in the plan
//! file in place. Only the value that moves changes; comments, key order, quoting and blank
//! lines stay byte for byte. The edited plan is checked and rendered in memory (with the
//! overlay on disk) before anything is written, so a refused step changes nothing.

use std::path::{Path, PathBuf};

use crate::check::{self, CheckedPlan, EnvironmentPlan};
use crate::error::{Diagnostic, Error, Result};
use crate::plan::Plan;
use crate::stage::Stage;
use crate::yaml::{Pos, Source};
use crate::{Mode, Templates};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The next weight in `steps`, or `to`.
    Promote { to: Option<u8> },
    /// Weight 0: all traffic back on the stable copy.
    Abort,
    /// The next stage.
    Advance,
}

/// A checked edit, ready to be written.
#[derive(Debug)]
pub struct Edit {
    pub path: PathBuf,
    pub old_text: String,
    pub new_text: String,
    /// What changed, e.g. `production: weight 5 → 25`.
    pub change: String,
    pub commit_message: String,
    /// What the user should know about the step (warnings, how to go on).
    pub notes: Vec<String>,
    /// The plan as edited.
    pub plan: crate::AnyPlan,
}

/// The new text of a plan after `action` on environment `env`: only the value that moves
/// changes. Pure text work on a checked plan (the fuzz target and property test drive it).
pub fn edit_text(plan: &CheckedPlan, env: &str, action: Action) -> Result<TextEdit> {
    let path = plan.path.as_path();
    let Some(e) = plan.environment(env) else {
        return Err(
            Diagnostic::new(format!("the plan has no environment `{env}`"))
                .in_file(path)
                .into(),
        );
    };
    let text = &plan.source.text;
    let (stage, weight) = (e.stage.value, e.weight.as_ref().map(|w| w.value));
    let refuse = |message: String, hint: &str| -> Error {
        plan.diag(e.stage.pos, message)
            .hint(hint.to_string())
            .into()
    };
    let (new_text, change, message) = match action {
        Action::Promote { to } => {
            if stage != Stage::Shift {
                return Err(refuse(
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
                            format!("environment `{env}` is at weight {current}, the last step"),
                            "advance to cleanup-1 to remove the stable copy",
                        )
                    })?,
            };
            if next == current {
                return Err(refuse(
                    format!("environment `{env}` is already at weight {current}"),
                    "nothing to do",
                ));
            }
            let text = set_weight(text, plan, e, next)?;
            (
                text,
                format!("{env}: weight {current} → {next}"),
                format!(
                    "canary({}): {env} to {next}% on {}",
                    plan.name, plan.canary.version.value
                ),
            )
        }
        Action::Abort => {
            match stage {
                Stage::Shift if weight == Some(0) => {
                    return Err(refuse(
                        format!("environment `{env}` is already at weight 0"),
                        "all traffic is on the stable copy",
                    ));
                }
                Stage::Shift => {}
                Stage::Route => {}
                _ => {
                    return Err(refuse(
                        format!(
                            "environment `{env}` is at stage {stage}; abort needs the stable copy serving (stages route and shift)"
                        ),
                        "to roll back further, set an earlier stage in the plan and render",
                    ));
                }
            }
            let mut t = text.clone();
            if stage == Stage::Route {
                t = set_stage(&t, plan, e, Stage::Shift)?;
                // A route stage has no weight (the plan check refuses one).
                let reparsed = reparse_unchecked(path, t.clone())?;
                t = insert_weight(&t, &reparsed, env, 0)?;
            } else {
                t = set_weight(&t, plan, e, 0)?;
            }
            let was = weight.map_or_else(|| format!("stage {stage}"), |w| format!("weight {w}"));
            (
                t,
                format!("{env}: {was} → weight 0 (all traffic on the stable copy)"),
                format!(
                    "canary({}): abort in {env}, all traffic on {}",
                    plan.name, plan.stable.version.value
                ),
            )
        }
        Action::Advance => {
            let Some(next) = stage.next() else {
                return Err(refuse(
                    format!("environment `{env}` is done"),
                    "delete the environment (or the plan) when the release is complete",
                ));
            };
            let mut t = set_stage(text, plan, e, next)?;
            if next == Stage::Shift && weight.is_none() {
                let reparsed = reparse_unchecked(path, t.clone())?;
                t = insert_weight(&t, &reparsed, env, 0)?;
            }
            (
                t,
                format!("{env}: stage {stage} → {next}"),
                format!(
                    "canary({}): {env} to {next}: {}",
                    plan.name,
                    next.summary_for(plan.traffic)
                ),
            )
        }
    };
    Ok(TextEdit {
        new_text,
        change,
        commit_message: message,
    })
}

/// A plan's text after an edit, and how to say what changed.
#[derive(Debug, Clone)]
pub struct TextEdit {
    pub new_text: String,
    /// What changed, e.g. `production: weight 5 → 25`.
    pub change: String,
    pub commit_message: String,
}

/// Plans the edit of `action` on environment `env` of the plan at `path`, and checks the
/// result like `validate` would.
pub fn plan_edit(path: &Path, env: &str, action: Action, templates: &Templates) -> Result<Edit> {
    let plan = match crate::load_any(path)? {
        crate::AnyPlan::Canary(p) => p,
        crate::AnyPlan::Lanes(p) => return lanes_edit(path, &p, env, action),
        crate::AnyPlan::GatewayUpgrade(p) => {
            use crate::kinds::gateway_upgrade as g;
            let e = p.environments.iter().find(|e| e.name.value == env);
            let diag = |pos: Pos, m: String| p.diag(pos, m);
            return ladder_edit(
                LadderPlan {
                    path,
                    text: &p.source.text,
                    name: &p.name,
                    environment: env,
                    stage: e.map(|e| &e.stage),
                    ladder: &g::plan::STAGES,
                    summary: g::summary,
                    diag: &diag,
                },
                action,
                |text| {
                    let edited = g::plan::load_in(Source::from_text(path, text), p.root.clone())?;
                    g::render_plan(&edited, &[env.to_string()], Mode::Overlay)?;
                    Ok(crate::AnyPlan::GatewayUpgrade(edited))
                },
            );
        }
        crate::AnyPlan::RevisionUpgrade(p) => {
            use crate::kinds::revision_upgrade as r;
            let e = p.environments.iter().find(|e| e.name.value == env);
            let diag = |pos: Pos, m: String| p.diag(pos, m);
            let ladder = p.ladder();
            return ladder_edit(
                LadderPlan {
                    path,
                    text: &p.source.text,
                    name: &p.name,
                    environment: env,
                    stage: e.map(|e| &e.stage),
                    ladder: &ladder,
                    summary: r::summary,
                    diag: &diag,
                },
                action,
                |text| {
                    let edited = r::plan::load_in(Source::from_text(path, text), p.root.clone())?;
                    r::render_plan(&edited, &[env.to_string()], Mode::Overlay)?;
                    Ok(crate::AnyPlan::RevisionUpgrade(edited))
                },
            );
        }
    };
    let Some(e) = plan.environment(env) else {
        // Reuse the renderer's message for an unknown environment.
        return Err(
            crate::render_plan(&plan, &[env.to_string()], templates, Mode::Stream)
                .err()
                .unwrap_or_else(|| Error::one(Diagnostic::new(format!("no environment `{env}`")))),
        );
    };
    let text = &plan.source.text;
    let stage = e.stage.value;
    let TextEdit {
        new_text,
        change,
        commit_message: message,
    } = edit_text(&plan, env, action)?;
    let edited = reparse(path, new_text.clone(), &plan.root)?;
    let after = crate::render_plan(&edited, &[env.to_string()], templates, Mode::Overlay)?;
    let after_objects = after
        .first()
        .map(|r| r.objects.as_slice())
        .unwrap_or_default();
    let mut notes = Vec::new();
    let (mut change, mut message) = (change, message);
    match action {
        Action::Advance => {
            // What the step really changes in the cluster, from the two rendered streams.
            if let Ok(before) = crate::objects_at(&plan, e, e.model.clone(), templates) {
                let what = crate::transition::describe(&before, after_objects);
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
        Action::Promote { .. } => {
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
        plan: crate::AnyPlan::Canary(edited),
    })
}

/// A LanePlan's steps: `advance` moves the stage, `abort` sets every lane's ingress weight of
/// the environment to 0; `promote` has no single weight to move (each lane has its own).
fn lanes_edit(
    path: &Path,
    plan: &crate::kinds::lanes::CheckedLanePlan,
    env: &str,
    action: Action,
) -> Result<Edit> {
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
        Action::Abort => {
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
            for (lane, pos) in weights {
                t = replace_at(&t, pos, "0").ok_or_else(|| cannot(pos))?;
                moved.push(lane);
            }
            if moved.is_empty() {
                return Err(plan
                    .diag(e.stage.pos, format!("no lane of environment `{env}` takes ingress traffic"))
                    .hint("requests that name a lane by header still reach it; to end a lane, advance to cleanup-1")
                    .into());
            }
            moved.reverse();
            (
                t,
                format!("{env}: lanes {} to weight 0", moved.join(", ")),
                format!(
                    "lanes({}): {env}: abort, ingress traffic back on {}",
                    plan.name, plan.baseline.value
                ),
            )
        }
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
        plan: crate::AnyPlan::Lanes(edited),
    })
}

/// Succession: the Deployment that serves as canary, when it still runs stable.image and the
/// edited plan sends it traffic.
fn canary_on_stable_image(plan: &CheckedPlan, objects: &[serde_json::Value]) -> Option<String> {
    let stable = plan.stable.image.as_ref()?;
    if plan.method != crate::plan::Method::Succession {
        return None;
    }
    let d = objects.iter().find(|o| {
        o.get("kind").and_then(serde_json::Value::as_str) == Some("Deployment")
            && o.pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                == Some(&plan.workload.value)
    })?;
    let containers = d.pointer("/spec/template/spec/containers")?.as_array()?;
    let main = match &plan.stable.container {
        Some(c) => containers
            .iter()
            .find(|x| x.get("name").and_then(serde_json::Value::as_str) == Some(&c.value))?,
        None => containers.first()?,
    };
    (main.get("image").and_then(serde_json::Value::as_str) == Some(&stable.value))
        .then(|| plan.workload.value.clone())
}

/// Writes the edited plan atomically (a sibling file renamed over it). A plan that is a
/// symbolic link is edited where it points (inside the repository, as loading checked), so the
/// link stays a link.
pub fn write(edit: &Edit) -> Result<()> {
    replace(&edit.path, &edit.new_text)
}

/// Puts the plan's text back as it was before `write` (when the rest of a `--render` step
/// failed: the plan and its overlay change together or not at all).
pub fn restore(edit: &Edit) -> Result<()> {
    replace(&edit.path, &edit.old_text)
}

fn replace(path: &Path, text: &str) -> Result<()> {
    let target = std::fs::canonicalize(path).map_err(|e| Error::io("resolve", path, &e))?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.canaryplan-{}",
        target
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(|e| Error::io("write", path, &e))?;
    if let Ok(meta) = std::fs::metadata(&target) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("replace", path, &e)
    })
}

/// Held while a plan is read, edited and written: two `promote` runs at once take turns, so
/// neither loses the other's step. The lock is on the plan's directory (the plan file itself
/// is replaced by a rename, which a lock on it would not survive) and ends with the process.
pub struct Lock {
    #[cfg(unix)]
    _dir: std::fs::File,
}

pub fn lock(path: &Path) -> Result<Lock> {
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    #[cfg(unix)]
    {
        let file = std::fs::File::open(&dir).map_err(|e| Error::io("lock", &dir, &e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", &dir, &std::io::Error::from(e)))?;
        Ok(Lock { _dir: file })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(Lock {})
    }
}

fn reparse(path: &Path, text: String, root: &crate::fsio::Root) -> Result<CheckedPlan> {
    check::check(Plan::parse_in(Source::from_text(path, text), root.clone())?)
}

/// Parses without the plan checks (an intermediate text may be incomplete, e.g. shift
/// without its weight yet).
fn reparse_unchecked(path: &Path, text: String) -> Result<Plan> {
    Plan::parse(Source::from_text(path, text))
}

/// The byte range of the scalar starting at `pos`.
pub(crate) fn scalar_range(text: &str, pos: Pos) -> Option<(usize, usize)> {
    let line_start = text
        .split_inclusive('\n')
        .take(pos.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum::<usize>();
    let line = text.get(line_start..)?.split('\n').next()?;
    let col = line
        .char_indices()
        .nth(pos.column.saturating_sub(1) as usize)
        .map(|(i, _)| i)?;
    let rest = line.get(col..)?;
    let end = match rest.chars().next()? {
        q @ ('"' | '\'') => rest.get(1..)?.find(q)? + 2,
        _ => {
            let stop = rest.find([',', '}', ']', '\r']).unwrap_or(rest.len());
            // A comment starts at `#` after a space or a tab.
            let comment = rest
                .char_indices()
                .find(|(i, c)| {
                    *c == '#' && *i > 0 && rest.get(..*i).is_some_and(|b| b.ends_with([' ', '\t']))
                })
                .map(|(i, _)| i);
            let stop = comment.map_or(stop, |c| c.min(stop));
            rest.get(..stop)?.trim_end().len()
        }
    };
    Some((line_start + col, line_start + col + end))
}

/// The anchor (`&name`) or alias (`*name`) a value at `pos` is written with, if any.
fn anchor_at(text: &str, pos: Pos) -> Option<String> {
    let line = text.lines().nth(pos.line.saturating_sub(1) as usize)?;
    let col = line
        .char_indices()
        .nth(pos.column.saturating_sub(1) as usize)
        .map_or(line.len(), |(i, _)| i);
    let name = |s: &str| {
        s.chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']'))
            .collect::<String>()
    };
    let (before, at) = line.split_at(col);
    if let Some(alias) = at.strip_prefix('*') {
        return Some(name(alias));
    }
    // `key: &name value`: the anchor stands between the key's colon and the value.
    let value_part = before.rsplit_once(':').map_or(before, |(_, v)| v);
    value_part
        .split_whitespace()
        .find_map(|w| w.strip_prefix('&'))
        .map(name)
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

fn replace_at(text: &str, pos: Pos, value: &str) -> Option<String> {
    let (a, b) = scalar_range(text, pos)?;
    Some(format!("{}{value}{}", text.get(..a)?, text.get(b..)?))
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
            "{}, weight: {to}{}",
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
        "{}{newline}{indent}weight: {to}{}",
        text.get(..line_end).unwrap_or_default(),
        text.get(line_end..).unwrap_or_default()
    ))
}

/// A plan of a kind whose environments only name a stage of its ladder.
struct LadderPlan<'a> {
    path: &'a Path,
    text: &'a str,
    name: &'a str,
    environment: &'a str,
    stage: Option<&'a crate::check::At<String>>,
    ladder: &'a [&'a str],
    summary: fn(&str) -> &'static str,
    diag: &'a dyn Fn(Pos, String) -> Diagnostic,
}

/// `advance` for such a plan: the next stage of its ladder (it has no weight to promote or
/// abort); `reload` checks and renders the edited text.
fn ladder_edit(
    p: LadderPlan<'_>,
    action: Action,
    reload: impl FnOnce(String) -> Result<crate::AnyPlan>,
) -> Result<Edit> {
    let Some(stage) = p.stage else {
        return Err(Error::one(
            Diagnostic::new(format!("the plan has no environment `{}`", p.environment))
                .in_file(p.path),
        ));
    };
    if action != Action::Advance {
        return Err((p.diag)(
            stage.pos,
            format!(
                "this plan moves by stages only: `advance` (its stages are {})",
                p.ladder.join(", ")
            ),
        )
        .hint("go back a stage by editing `stage:` (the rollback)")
        .into());
    }
    let Some(next) = crate::ladder::next(p.ladder, &stage.value) else {
        return Err((p.diag)(
            stage.pos,
            format!("environment `{}` is done", p.environment),
        )
        .hint("delete the plan once every environment is done")
        .into());
    };
    let new_text = replace_at(p.text, stage.pos, next).ok_or_else(|| -> Error {
        (p.diag)(stage.pos, "cannot edit this value in place".into())
            .hint("write it as a plain scalar and try again")
            .into()
    })?;
    let plan = reload(new_text.clone())?;
    Ok(Edit {
        path: p.path.to_path_buf(),
        old_text: p.text.to_string(),
        new_text,
        change: format!("{}: stage {} → {next}", p.environment, stage.value),
        commit_message: format!(
            "{}: {} to {next}: {}",
            p.name,
            p.environment,
            (p.summary)(next)
        ),
        notes: Vec::new(),
        plan,
    })
}
