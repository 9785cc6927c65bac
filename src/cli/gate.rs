//! `canaryplan gate`, and the gate of `promote --gate`: options from the command line, the
//! report printed (a closed pipe is exit 2, never a panic), the verdict as the exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use canaryplan::gate::{Options, Outcome, Progress, Report};
use canaryplan::kinds::Action;
use canaryplan::{Diagnostic, Error};

use super::args::{EditArgs, GateArgs, OnFail, ServerArgs, StatusFormat, plan_path};

/// Writes to a stream that may be closed (`| head`).
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Diagnostic::new(format!("cannot write the gate's report: {e}")).into())
}

fn options(s: &ServerArgs) -> Result<Options, Error> {
    use canaryplan::gate::Access;
    let bad = |why: String| -> Error {
        Diagnostic::new(why)
            .hint("see `canaryplan gate --help`")
            .into()
    };
    let mut access = Access::default();
    if let Some(f) = &s.token_file {
        access.token = Some(Access::token_from(f).map_err(bad)?);
    }
    for h in s.headers.iter().filter(|h| !h.trim().is_empty()) {
        access.headers.push(Access::header(h).map_err(bad)?);
    }
    access.ca_file = s.ca_file.clone();
    let timeout = match &s.timeout {
        None => None,
        Some(t) => Some(std::time::Duration::from_secs(
            canaryplan::analysis::seconds(t)
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    bad(format!(
                        "--timeout `{}` is not a duration such as `90s` or `2m`",
                        canaryplan::gate::clean(t)
                    ))
                })?,
        )),
    };
    Ok(Options {
        prometheus: s.prometheus.clone(),
        access,
        once: s.once,
        timeout,
        since: None,
    })
}

fn report(path: &std::path::Path, env: &str, s: &ServerArgs) -> Result<Report, Error> {
    let opts = options(s)?;
    let tty = std::io::stderr().is_terminal();
    let mut progress = |p: &Progress| {
        if tty {
            let wait = if p.wait.is_zero() {
                String::new()
            } else {
                format!(" in {}", canaryplan::gate::human(p.wait))
            };
            let _ = writeln!(
                std::io::stderr().lock(),
                "gate: sample {}/{}{wait}",
                p.sample,
                p.of
            );
        }
    };
    canaryplan::gate::measure_plan(path, env, &opts, &mut progress)
}

pub(crate) fn gate(a: &GateArgs) -> Result<ExitCode, Error> {
    let r = report(&plan_path(a.plan.as_ref()), &a.env, &a.server)?;
    let text = match a.format {
        StatusFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&r.to_json()).unwrap_or_default()
        ),
        StatusFormat::Text => r.to_table(a.server.verbose),
    };
    emit(&mut std::io::stdout().lock(), &text)?;
    Ok(ExitCode::from(r.verdict.exit_code()))
}

/// `promote --gate`: the step's pause first, then the measure. The action to take (the
/// promotion, or with `--on-fail abort` the abort) and the verdict that changed it; or the
/// exit code when nothing is to change.
pub(crate) fn gated(
    a: &EditArgs,
    action: Action,
) -> Result<Result<(Action, Option<Outcome>), ExitCode>, Error> {
    let path = plan_path(a.plan.as_ref());
    canaryplan::gate::pause_passed(&path, &a.env, &action)?;
    let r = report(&path, &a.env, &a.server)?;
    let mut err = std::io::stderr().lock();
    emit(&mut err, &r.to_table(a.server.verbose))?;
    let stop = |why: &str| -> Result<Result<(Action, Option<Outcome>), ExitCode>, Error> {
        emit(&mut std::io::stderr().lock(), why)?;
        Ok(Err(ExitCode::from(r.verdict.exit_code())))
    };
    match (r.verdict, a.on_fail) {
        (Outcome::Pass, _) => Ok(Ok((action, None))),
        (Outcome::Fail, Some(OnFail::Abort)) => {
            emit(&mut err, "the gate failed: aborting (weight 0)\n")?;
            Ok(Ok((Action::Abort, Some(r.verdict))))
        }
        (Outcome::Fail, None) => stop(
            "the gate failed: nothing changed (add --on-fail abort to roll back as a commit)\n",
        ),
        (Outcome::Inconclusive, _) => stop(
            "the gate is inconclusive: nothing changed (neither promote nor abort; run it again later)\n",
        ),
        (Outcome::Error, _) => stop("the gate could not measure: nothing changed\n"),
    }
}
