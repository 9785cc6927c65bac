//! `canaryplan finish`: print (or write, then check) the base edit that ends a release.

use std::io::Write;
use std::process::ExitCode;

use canaryplan::Error;
use canaryplan::output::diff;

use super::args::{FinishArgs, plan_path, templates};

pub(crate) fn finish(a: &FinishArgs) -> Result<ExitCode, Error> {
    let templates = templates(a.templates.as_deref())?;
    let plan = canaryplan::finish::load(&plan_path(a.plan.as_ref()))?;
    let f = canaryplan::finish::finish(&plan, &a.env, &templates)?;
    if f.files.is_empty() {
        eprintln!(
            "{}: the base already holds the end state; advance `{}` to done",
            diff::shown(&plan.path),
            a.env
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.write {
        canaryplan::finish::write_checked(&plan, &a.env, &f, &templates)?;
    } else {
        let mut out = std::io::stdout().lock();
        for file in &f.files {
            let _ = write!(out, "{}", file.unified());
        }
    }
    eprintln!("the base edit that finishes the release of `{}`:", a.env);
    for s in &f.steps {
        eprintln!("  - {s}");
    }
    if a.write {
        eprintln!(
            "written, and checked: at done the base alone renders what cleanup-3 did. Commit it, then `canaryplan advance --env {} --render`",
            a.env
        );
    } else {
        eprintln!(
            "review the patch above; `canaryplan finish --env {} --write` applies it (or `git apply`)",
            a.env
        );
    }
    Ok(ExitCode::SUCCESS)
}
