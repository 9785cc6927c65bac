//! `canaryplan init`: a starter plan from a base, or a plan migrated from an Argo Rollout
//! (`--from-rollout`), written where no plan is yet.

use std::process::ExitCode;

use canaryplan::Error;
use canaryplan::output::diff;

use super::args::InitArgs;

pub(crate) fn init(a: &InitArgs) -> Result<ExitCode, Error> {
    if let Some(file) = &a.from_rollout {
        let target =
            canaryplan::init::target(file.parent().unwrap_or(std::path::Path::new("")), &a.output)?;
        let m = canaryplan::from_rollout::migrate(file, &a.output, a.strict)?;
        target.write(&m.plan)?;
        print!("{}", m.base_changes);
        for n in &m.dropped {
            eprintln!("note: not carried over: {n}");
        }
        for n in &m.notes {
            eprintln!("note: {n}");
        }
        eprintln!(
            "wrote {}: review it, commit the objects above in place of the Rollout (and the routes they replace), then run `canaryplan validate`",
            diff::shown(&a.output)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let target = canaryplan::init::target(&a.base, &a.output)?;
    let pick = canaryplan::init::Pick {
        service: a.service.clone(),
        workload: a.workload.clone(),
    };
    let text = canaryplan::init::starter(&a.base, &a.output, &pick)?;
    target.write(&text)?;
    eprintln!(
        "wrote {}: review it (the image above all), then run `canaryplan validate`",
        diff::shown(&a.output)
    );
    Ok(ExitCode::SUCCESS)
}
