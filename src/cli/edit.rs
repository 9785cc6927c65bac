//! `canaryplan promote`, `abort` and `advance`: one edit of the plan file (after the gate, for
//! `promote --gate`), the overlays rendered again with `--render`, and what changed printed.

use std::process::ExitCode;

use canaryplan::edit::Action;
use canaryplan::output::diff;
use canaryplan::output::overlay::Written;
use canaryplan::{Diagnostic, Error};

use super::args::{EditArgs, plan_path, templates};
use super::{gate, print, warn_left_behind};

/// `promote`: to a weight or a stage (`--to`), or a lane's version (`--lane`).
pub(crate) fn promote(a: &EditArgs) -> Result<ExitCode, Error> {
    let (to, service) = (a.to, a.service.clone());
    let action = match a.lane.clone() {
        Some(lane) => Action::PromoteLane { lane, service, to },
        None => Action::Promote {
            to,
            approve: a.approve,
            force: a.force,
        },
    };
    edit(a, action)
}

/// Applies `action` to the plan file, refusing the flags that belong to another verb.
pub(crate) fn edit(a: &EditArgs, action: Action) -> Result<ExitCode, Error> {
    let promote = matches!(action, Action::Promote { .. } | Action::PromoteLane { .. });
    if (a.to.is_some() || a.lane.is_some()) && !promote {
        let flag = if a.to.is_some() { "--to" } else { "--lane" };
        return Err(Diagnostic::new(format!("{flag} goes with promote"))
            .hint("abort always sets every weight to 0; advance moves the stage")
            .into());
    }
    if a.gate && !promote {
        return Err(Diagnostic::new("--gate goes with promote")
            .hint("run `canaryplan gate` to measure without promoting")
            .into());
    }
    if (a.approve || a.force) && !promote {
        return Err(Diagnostic::new("--approve and --force go with promote")
            .hint("abort and advance do not wait for a pause")
            .into());
    }
    let path = plan_path(a.plan.as_ref());
    // promote --gate: measure first; a failing gate edits nothing, or aborts with --on-fail.
    let (action, failed) = if a.gate {
        match gate::gated(a, action)? {
            Ok(go) => go,
            Err(code) => return Ok(code),
        }
    } else {
        (action, None)
    };
    let templates = templates(a.templates.as_deref())?;
    let render = a.render.then_some(a.from_scratch);
    let done = canaryplan::step::apply(&path, &a.env, action, &templates, render)?;
    let mut out = format!("{}: {}\n", diff::shown(&path), done.edit.change);
    for (dir, written) in &done.report.written {
        let what = match written {
            Written::Unchanged => "unchanged",
            _ => "rendered",
        };
        out.push_str(&format!("{}: {what}\n", diff::shown(dir)));
    }
    warn_left_behind(&done.report);
    for n in &done.edit.notes {
        eprintln!("{n}");
    }
    out.push_str("suggested commit message:\n");
    for line in done.edit.commit_message.lines() {
        out.push_str(&if line.is_empty() {
            "\n".to_string()
        } else {
            format!("  {line}\n")
        });
    }
    print(&out);
    Ok(failed.map_or(ExitCode::SUCCESS, |v| ExitCode::from(v.exit_code())))
}
