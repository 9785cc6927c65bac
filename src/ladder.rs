//! The stage ladder every plan kind shares: a kind names its stages in order (a CanaryPlan's
//! prepare → … → done, a GatewayUpgrade's prepare → canary → upgrade → cleanup → done, a
//! RevisionUpgrade's waves); an environment moves at most one stage past the stage on disk,
//! and may always go back (the rollback).

use crate::error::Diagnostic;

/// The stage after `stage` in `names`.
pub fn next<'a>(names: &[&'a str], stage: &str) -> Option<&'a str> {
    let i = names.iter().position(|n| *n == stage)?;
    names.get(i + 1).copied()
}

/// Refuses a move from `on_disk` to `to` of more than one stage forward; `at` is where the
/// plan sets the stage (a diagnostic without a message yet).
pub fn check_step(
    names: &[&str],
    environment: &str,
    on_disk: &str,
    to: &str,
    at: Diagnostic,
) -> Result<(), Diagnostic> {
    let Some(from) = names.iter().position(|n| *n == on_disk) else {
        let mut d = at;
        d.message = format!(
            "environment `{environment}` is at stage {on_disk} on disk, which this plan does not have"
        );
        return Err(d.hint(format!(
            "the overlay was written for another plan (its stages are {}): render it with --from-scratch if the cluster really is where this plan says",
            names.join(", ")
        )));
    };
    let Some(target) = names.iter().position(|n| *n == to) else {
        return Ok(());
    };
    if target > from + 1 {
        let next = names.get(from + 1).copied().unwrap_or(on_disk);
        let mut d = at;
        d.message = format!(
            "environment `{environment}` is at stage {on_disk} on disk; {to} is more than one step ahead"
        );
        return Err(d.hint(format!(
            "advance one stage at a time, each its own commit and sync: set `stage: {next}` first"
        )));
    }
    Ok(())
}
