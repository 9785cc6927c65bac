//! `promote --lane`: a LanePlan's promotion, one lane (its ingress weight) or one service of a
//! lane (`--service`, what `kubectl kruise rollout approve rollout/rollouts-<svc>` does in the
//! walkthrough) at a time, as an edit of the plan's text that changes only what moves.

use crate::pointer::Pointer as _;
use std::path::Path;

use super::plan::{self, CheckedLane, CheckedLanePlan, LaneEnv};
use crate::edit::{Edit, scalar_range};
use crate::error::{Error, Result};
use crate::ladder::Stage;
use crate::render::Mode;
use crate::yaml::{Pos, Source};

/// Promotes `service` of `lane` in environment `env` (its requests go to the baseline, which
/// runs the lane's image), or, without a service, moves the lane's ingress weight to `to` (or
/// the next of the default steps).
pub fn promote(
    p: &CheckedLanePlan,
    env: &str,
    lane: &str,
    service: Option<&str>,
    to: Option<u8>,
) -> Result<Edit> {
    let path: &Path = &p.path;
    let Some(e) = p.environments.iter().find(|x| x.name.value == env) else {
        return Err(super::render_plan(p, &[env.to_string()], Mode::Stream)
            .err()
            .unwrap_or_else(|| {
                Error::one(crate::Diagnostic::new(format!("no environment `{env}`")))
            }));
    };
    let Some(l) = p.lanes.iter().find(|l| l.name.value == lane) else {
        let known: Vec<&str> = p.lanes.iter().map(|l| l.name.value.as_str()).collect();
        return Err(p
            .diag(e.stage.pos, format!("the plan has no lane `{lane}`"))
            .hint(format!("its lanes are {}", known.join(", ")))
            .into());
    };
    let text = p.source.text.clone();
    let (new_text, change, message) = match service {
        Some(svc) => promote_service(p, e, l, lane, svc)?,
        None => promote_weight(p, e, lane, to)?,
    };
    // Promoting after an abort opens the lanes again: the mark goes.
    let new_text = match e.aborted {
        Some(_) => plan::aborted_at(&Source::from_text(path, new_text.clone()), env)
            .and_then(|at| crate::edit::remove_entry(&new_text, "aborted", at))
            .ok_or_else(|| cannot(p, lane, e.stage.pos))?,
        None => new_text,
    };
    let edited = plan::load_in(Source::from_text(path, new_text.clone()), p.root.clone())?;
    super::render_plan(&edited, &[env.to_string()], Mode::Overlay)?;
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

/// The new text, the change in words and the commit message of one promotion.
type Edited = (String, String, String);

/// The plan text could not be edited in place (a flow-style environment).
fn cannot(p: &CheckedLanePlan, lane: &str, pos: Pos) -> Error {
    p.diag(pos, "cannot edit the plan here in place")
        .hint(format!(
            "write the environment's lanes as a block, e.g. `lanes:` then `  {lane}: {{weight: 5}}`, and try again"
        ))
        .into()
}

/// `--service`: one service of the lane promoted (at route or shift), once its base runs the
/// lane's image.
fn promote_service(
    p: &CheckedLanePlan,
    e: &LaneEnv,
    l: &CheckedLane,
    lane: &str,
    svc: &str,
) -> Result<Edited> {
    let env = e.name.value.as_str();
    if l.image_of(svc).is_none() {
        let has: Vec<&str> = l.images.iter().map(|(s, _)| s.as_str()).collect();
        return Err(p
            .diag(
                l.name.pos,
                format!("lane `{lane}` has no version of `{svc}`"),
            )
            .hint(format!("the lane runs versions of {}", has.join(", ")))
            .into());
    }
    if !matches!(e.stage.value, Stage::Route | Stage::Shift) {
        return Err(p
            .diag(e.stage.pos, format!("environment `{env}` is at {}: a service is promoted in a lane at route or shift, while the lane's requests are routed", e.stage.value))
            .hint("advance to route first; past shift, end the whole lane with `end: promote`")
            .into());
    }
    // Checked here, before the edit, so the error points at the plan on disk.
    let bases = super::bases(p)?;
    let found = super::render::find(p, &bases)?;
    if let (Some(f), Some(image)) = (
        found.iter().find(|f| f.service.name == svc),
        l.image_of(svc),
    ) {
        let base_image = f
            .workload
            .value
            .at("/spec/template/spec/containers/0/image")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if base_image != image.value {
            return Err(p
                .diag(image.pos, format!("promoting `{svc}` in lane `{lane}` sends its lane requests to Deployment {}, which still runs {base_image} in base, not the lane's {}", f.workload.name, image.value))
                .hint(format!("put {} into Deployment {}'s base first (commit both together), then promote", image.value, f.workload.name))
                .into());
        }
    }
    if e.promoted(lane, svc) {
        return Err(p
            .diag(
                e.stage.pos,
                format!("`{svc}` is already promoted in lane `{lane}` of environment `{env}`"),
            )
            .hint("promote another service of the lane, or advance")
            .into());
    }
    let t =
        add_promoted(&p.source.text, e, lane, svc).ok_or_else(|| cannot(p, lane, e.stage.pos))?;
    let workload = p
        .member(svc)
        .map(|m| m.workload.value.clone())
        .unwrap_or_default();
    Ok((
        t,
        format!("{env}: lane {lane}: {svc} promoted (its lane requests go to {workload})"),
        format!(
            "lanes({}): {env}: promote {svc} in lane {lane}, its requests on {workload} in base",
            p.name
        ),
    ))
}

/// Without `--service`: the lane's ingress weight to `to`, else to the next default step (at
/// shift only).
fn promote_weight(p: &CheckedLanePlan, e: &LaneEnv, lane: &str, to: Option<u8>) -> Result<Edited> {
    let env = e.name.value.as_str();
    if e.stage.value != Stage::Shift {
        return Err(p
            .diag(
                e.stage.pos,
                format!(
                    "environment `{env}` is at {}: a lane's weight moves at shift",
                    e.stage.value
                ),
            )
            .hint("advance to shift first, or promote one service with --service")
            .into());
    }
    let now = e.weight(lane);
    let next = match to {
        Some(n) if n > 100 => {
            return Err(p
                .diag(e.stage.pos, format!("--to {n} is more than 100"))
                .hint("a lane's weight is a percent")
                .into());
        }
        Some(n) => n,
        None => {
            match crate::ladder::DEFAULT_STEPS.iter().find(|s| **s > now) {
                Some(n) => *n,
                None => {
                    return Err(p
                    .diag(e.stage.pos, format!("lane `{lane}` of environment `{env}` is at weight {now}, the last step"))
                    .hint("advance to cleanup-1 (with `end: promote` once its images are in base)")
                    .into());
                }
            }
        }
    };
    let t =
        set_weight(&p.source.text, e, lane, next).ok_or_else(|| cannot(p, lane, e.stage.pos))?;
    Ok((
        t,
        format!("{env}: lane {lane} weight {now} → {next}"),
        format!(
            "lanes({}): {env}: lane {lane} to {next}% of the requests without `{}`",
            p.name, p.header.value
        ),
    ))
}

/// The byte offset of a position (1-based line and column, in characters).
fn offset(text: &str, pos: Pos) -> Option<usize> {
    let line_start = text
        .split_inclusive('\n')
        .take(pos.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum::<usize>();
    let line = text.get(line_start..)?.split('\n').next()?;
    let col = line
        .char_indices()
        .nth(pos.column.saturating_sub(1) as usize)
        .map_or(line.len(), |(i, _)| i);
    Some(line_start + col)
}

fn line_bounds(text: &str, at: usize) -> (usize, usize) {
    let start = text
        .get(..at)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let end = text
        .get(at..)
        .and_then(|t| t.find('\n'))
        .map_or(text.len(), |i| at + i);
    let end = if text.get(..end).is_some_and(|t| t.ends_with('\r')) {
        end - 1
    } else {
        end
    };
    (start, end)
}

fn splice(text: &str, at: usize, insert: &str) -> Option<String> {
    Some(format!("{}{insert}{}", text.get(..at)?, text.get(at..)?))
}

/// Adds `entry` (`key: value`) to the mapping that is the value of the key at `key`: inside
/// its braces when it is written in flow style, as a new line under it in block style.
pub(crate) fn add_key(text: &str, key: Pos, entry: &str) -> Option<String> {
    let at = offset(text, key)?;
    let (start, end) = line_bounds(text, at);
    let line = text.get(at..end)?;
    let colon = line.find(':')?;
    let rest = line.get(colon + 1..)?;
    let value = rest.split(" #").next().unwrap_or_default().trim();
    if value.starts_with('{') {
        let open = at + colon + 1 + rest.find('{')?;
        let close = open + text.get(open..end)?.rfind('}')?;
        let inner = text.get(open + 1..close)?;
        return if inner.trim().is_empty() {
            Some(format!(
                "{}{{{entry}}}{}",
                text.get(..open)?,
                text.get(close + 1..)?
            ))
        } else {
            splice(text, close, &format!(", {entry}"))
        };
    }
    if !value.is_empty() {
        return None;
    }
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let own = indent(text.get(start..end)?);
    let child = text
        .get(end..)?
        .lines()
        .skip(1)
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(indent)
        .filter(|i| *i > own)
        .unwrap_or(own + 2);
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    splice(text, end, &format!("{newline}{}{entry}", " ".repeat(child)))
}

/// Adds `key: value` to lane `lane`'s setting in environment `e`, creating the setting (and
/// the environment's `lanes:`) when it is not written yet.
fn add_to_lane(text: &str, e: &LaneEnv, lane: &str, entry: &str) -> Option<String> {
    if let Some((_, pos)) = e.lane_keys.iter().skip(1).find(|(l, _)| l == lane) {
        return add_key(text, *pos, entry);
    }
    match e.lane_keys.get(1) {
        // Beside another lane of the environment, before it.
        Some((_, sibling)) => {
            let at = offset(text, *sibling)?;
            let (start, _) = line_bounds(text, at);
            let before = text.get(start..at)?;
            let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
            if before.trim().is_empty() {
                splice(text, at, &format!("{lane}: {{{entry}}}{newline}{before}"))
            } else {
                splice(text, at, &format!("{lane}: {{{entry}}}, "))
            }
        }
        None => add_key(text, e.name.pos, &format!("lanes: {{{lane}: {{{entry}}}}}")),
    }
}

fn set_weight(text: &str, e: &LaneEnv, lane: &str, to: u8) -> Option<String> {
    let written = e
        .lanes
        .iter()
        .find(|(l, _, _)| l == lane)
        .and_then(|(_, w, _)| w.as_ref());
    match written {
        Some(w) => {
            let (a, b) = scalar_range(text, w.pos)?;
            Some(format!("{}{to}{}", text.get(..a)?, text.get(b..)?))
        }
        None => add_to_lane(text, e, lane, &format!("weight: {to}")),
    }
}

fn add_promoted(text: &str, e: &LaneEnv, lane: &str, service: &str) -> Option<String> {
    let Some(list) = e.promoted.iter().find(|p| p.lane == lane) else {
        return add_to_lane(text, e, lane, &format!("promoted: [{service}]"));
    };
    // After the last service, so the list reads in the order of the promotions.
    match list.services.last() {
        Some(last) => {
            let at = offset(text, last.pos)?;
            let (start, end) = line_bounds(text, at);
            let before = text.get(start..at)?;
            if before.trim() == "-" {
                let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
                splice(text, end, &format!("{newline}{before}{service}"))
            } else {
                let (_, value_end) = scalar_range(text, last.pos)?;
                splice(text, value_end, &format!(", {service}"))
            }
        }
        None => {
            let at = offset(text, list.pos)?;
            let open = at + text.get(at..)?.find('[')?;
            splice(text, open + 1, service)
        }
    }
}
