//! Soak time, with git as the state: a step's `pause` has passed when the commit that set the
//! environment's current weight is at least that old (what Argo Rollouts' pause and Kargo's
//! `requiredSoakTime` give, with no controller). The plan's history is read with `git`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::analysis::Pause;
use crate::error::Result;
use crate::kinds::canary::check::CheckedPlan;
use crate::kinds::canary::stage::Stage;

/// Where an environment's pause stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Soak {
    /// The current weight is not a step with a pause.
    NoPause,
    /// `pause: manual`: a person approves.
    Manual { since: Option<i64> },
    /// A timed pause; `left` is zero once it has passed.
    Timed {
        pause: Duration,
        since: i64,
        commit: String,
        left: Duration,
    },
    /// A timed pause, but no history says when the weight was set.
    Unknown { pause: Duration, why: String },
}

/// When the commit that set `env`'s current weight was made, and which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightSet {
    pub commit: String,
    /// Committer time, Unix seconds.
    pub time: i64,
}

/// The pause of environment `env` at `now` (Unix seconds).
pub fn soak(plan: &CheckedPlan, env: &str, now: i64) -> Soak {
    let Some(e) = plan.environment(env) else {
        return Soak::NoPause;
    };
    let Some(weight) = e.weight.as_ref().map(|w| w.value) else {
        return Soak::NoPause;
    };
    if e.stage.value != Stage::Shift {
        return Soak::NoPause;
    }
    let pause = plan
        .steps
        .iter()
        .zip(&plan.step_pauses)
        .find(|(s, _)| **s == weight)
        .and_then(|(_, p)| p.as_ref().map(|p| p.value.clone()));
    let set = || weight_set(&plan.path, env, e.stage.value.name(), weight);
    match pause {
        None => Soak::NoPause,
        Some(Pause::Manual) => Soak::Manual {
            since: set().ok().map(|s| s.time),
        },
        Some(Pause::For(d)) => {
            let pause = Duration::from_millis(crate::analysis::go_duration_millis(&d).unwrap_or(0));
            match set() {
                Ok(s) => {
                    let elapsed = u64::try_from(now.saturating_sub(s.time)).unwrap_or(0);
                    Soak::Timed {
                        pause,
                        since: s.time,
                        commit: s.commit,
                        left: pause.saturating_sub(Duration::from_secs(elapsed)),
                    }
                }
                Err(why) => Soak::Unknown { pause, why },
            }
        }
    }
}

/// When the weight was set, for spreading the gate's samples over the pause.
pub fn since(plan: &CheckedPlan, env: &str, now: i64) -> Option<i64> {
    match soak(plan, env, now) {
        Soak::Timed { since, .. } => Some(since),
        Soak::Manual { since } => since,
        _ => None,
    }
}

/// `promote` refuses to move on before the pause of the current step has passed: a timed
/// pause must have elapsed since the commit that set the weight (`force` only stands in for
/// a history that cannot tell), a manual one needs `approve`. Returns what to tell the user.
pub fn check_promote(
    plan: &CheckedPlan,
    env: &str,
    now: i64,
    approve: bool,
    force: bool,
) -> Result<Option<String>> {
    let at = plan
        .environment(env)
        .and_then(|e| e.weight.as_ref())
        .map(|w| (w.pos, w.value));
    let Some((pos, weight)) = at else {
        return Ok(None);
    };
    match soak(plan, env, now) {
        Soak::NoPause => Ok(None),
        Soak::Manual { .. } if approve => Ok(Some(format!(
            "the manual pause at weight {weight} was approved (--approve)"
        ))),
        Soak::Manual { .. } => Err(plan
            .diag(pos, format!("environment `{env}` is paused at weight {weight} until a person approves (`pause: manual`)"))
            .hint("look at the canary, then run the same command with --approve")
            .into()),
        Soak::Timed { left, .. } if left.is_zero() => Ok(None),
        Soak::Timed {
            pause,
            since,
            commit,
            left,
        } => Err(plan
            .diag(
                pos,
                format!(
                    "environment `{env}` soaks at weight {weight} for {} after commit {} set it ({} ago): {} left",
                    crate::analysis::human(pause),
                    short(&commit),
                    crate::analysis::human(Duration::from_secs(u64::try_from(now.saturating_sub(since)).unwrap_or(0))),
                    crate::analysis::human_left(left)
                ),
            )
            .hint("nothing changed; run it again when the pause has passed (`canaryplan status` shows the time left)")
            .into()),
        Soak::Unknown { .. } if force => Ok(Some(format!(
            "the pause at weight {weight} was not checked (--force): no history tells when the weight was set"
        ))),
        Soak::Unknown { pause, why } => Err(plan
            .diag(
                pos,
                format!(
                    "environment `{env}` must soak at weight {weight} for {}, but {why}",
                    crate::analysis::human(pause)
                ),
            )
            .hint("commit the plan and wait out the pause, or promote with --force to skip the check")
            .into()),
    }
}

/// A line for `status`: the pause of the current step and the time left.
pub fn status_note(plan: &CheckedPlan, env: &str, now: i64) -> Option<String> {
    match soak(plan, env, now) {
        Soak::NoPause => None,
        Soak::Manual { .. } => {
            Some("paused until approved (`pause: manual`): promote --approve".into())
        }
        Soak::Timed { left, pause, .. } if left.is_zero() => Some(format!(
            "the {} pause has passed: promote may move on",
            crate::analysis::human(pause)
        )),
        Soak::Timed {
            left,
            pause,
            commit,
            ..
        } => Some(format!(
            "soaking: {} of the {} pause left (since commit {})",
            crate::analysis::human_left(left),
            crate::analysis::human(pause),
            short(&commit)
        )),
        Soak::Unknown { pause, why } => Some(format!(
            "a {} pause, but {why}: promote needs --force",
            crate::analysis::human(pause)
        )),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The commit that set `env` to `stage` at `weight`: walking the plan's history back from
/// HEAD, the oldest commit of the run in which the environment already had that weight. The
/// working copy must agree with HEAD: an uncommitted weight has not started soaking.
pub fn weight_set(
    plan_path: &Path,
    env: &str,
    stage: &str,
    weight: u8,
) -> std::result::Result<WeightSet, String> {
    let file =
        std::fs::canonicalize(plan_path).map_err(|e| format!("the plan cannot be found ({e})"))?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let top = git(&dir, &["rev-parse", "--show-toplevel"])
        .map_err(|_| "the plan is not in a git repository".to_string())?;
    let top = PathBuf::from(top.trim());
    let rel = git(&dir, &["ls-files", "--full-name", "--", &name])?;
    let rel = rel.trim().to_string();
    if rel.is_empty() {
        return Err("the plan is not committed to its git repository".into());
    }
    let wanted = (stage.to_string(), u64::from(weight));
    let state_in = |rev: &str| -> Option<(String, u64)> {
        let text = git(&top, &["show", &format!("{rev}:{rel}")]).ok()?;
        state(&text, env)
    };
    if state_in("HEAD") != Some(wanted.clone()) {
        return Err(format!(
            "weight {weight} of `{env}` is not committed yet (the soak starts with the commit)"
        ));
    }
    let log = git(&top, &["log", "--format=%H %ct", "--", &rel])?;
    let mut found: Option<WeightSet> = None;
    for line in log.lines() {
        let Some((commit, time)) = line.split_once(' ') else {
            continue;
        };
        if state_in(commit) != Some(wanted.clone()) {
            break;
        }
        found = Some(WeightSet {
            commit: commit.to_string(),
            time: time
                .trim()
                .parse()
                .map_err(|_| "git printed a time that is not a number")?,
        });
    }
    found.ok_or_else(|| "git shows no commit of the plan".to_string())
}

/// The stage and weight of `env` in a plan's text (any past version of it).
fn state(text: &str, env: &str) -> Option<(String, u64)> {
    let v: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    let e = v.get("spec")?.get("environments")?.get(env)?;
    let stage = e.get("stage")?.as_str()?.to_string();
    let weight = e
        .get("weight")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Some((stage, weight))
}

fn git(dir: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .map_err(|e| format!("git cannot run ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            crate::names::clean(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
