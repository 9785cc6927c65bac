//! The stage ladder every plan kind shares: a kind names its stages in order (a CanaryPlan's
//! prepare → … → done, a GatewayUpgrade's prepare → canary → upgrade → cleanup → done, a
//! RevisionUpgrade's waves); an environment moves at most one stage past the stage on disk,
//! and may always go back (the rollback).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

// The stages of a canary release, shared by the kinds that release new code behind a Service
// (CanaryPlan, LanePlan); each kind says what a stage renders. (A plain comment: a doc comment
// would enter the plan's JSON Schema.)
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The pinned stable copy and the original's pod labels; routing untouched.
    Prepare,
    /// Subsets, the route patch sending everything to the canary subset (still old code),
    /// the Service selector patch and the copy's AuthorizationPolicy.
    Route,
    /// As `route`, with `100 - weight` to stable and `weight` to canary.
    Shift,
    /// After weight 100: the stable route, selector patch, copy and its policy go.
    #[serde(rename = "cleanup-1")]
    Cleanup1,
    /// The route patch goes; the base VirtualService serves again.
    #[serde(rename = "cleanup-2")]
    Cleanup2,
    /// The DestinationRule goes.
    #[serde(rename = "cleanup-3")]
    Cleanup3,
    /// Nothing beyond the base.
    Done,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Prepare,
        Stage::Route,
        Stage::Shift,
        Stage::Cleanup1,
        Stage::Cleanup2,
        Stage::Cleanup3,
        Stage::Done,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Route => "route",
            Stage::Shift => "shift",
            Stage::Cleanup1 => "cleanup-1",
            Stage::Cleanup2 => "cleanup-2",
            Stage::Cleanup3 => "cleanup-3",
            Stage::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.name() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn next(self) -> Option<Stage> {
        Stage::ALL.get(self.index() + 1).copied()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The default weight ladder for `promote`.
pub const DEFAULT_STEPS: [u8; 4] = [10, 25, 50, 100];
