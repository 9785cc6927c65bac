//! Where each environment stands: stage, weights per version, whether the overlay on disk is
//! current, and what the next step changes.

use serde::Serialize;

use crate::check::CheckedPlan;
use crate::output::diff;
use crate::stage::{Routing, Stage, Weights};
use crate::{Mode, Templates};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    pub environment: String,
    pub stage: Stage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// Percent of traffic per version name.
    pub traffic: Vec<VersionTraffic>,
    pub overlay: Overlay,
    /// The overlay directory.
    pub output: String,
    /// The next step, in one line.
    pub next: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionTraffic {
    pub version: String,
    pub role: &'static str,
    pub percent: u8,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Overlay {
    /// The overlay on disk is what `render` writes.
    Current,
    /// `files` files would change.
    Stale { files: usize },
    /// Not rendered yet.
    Missing,
    /// `render` would refuse; the first reason.
    Refused { reason: String },
}

/// The status of every environment of `plan`.
pub fn of(plan: &CheckedPlan, templates: &Templates) -> Vec<EnvironmentStatus> {
    plan.environments
        .iter()
        .map(|e| {
            let name = e.name.value.clone();
            let overlay = match crate::render_plan(
                plan,
                std::slice::from_ref(&name),
                templates,
                Mode::Overlay,
            ) {
                Err(err) => Overlay::Refused {
                    reason: err
                        .diagnostics
                        .first()
                        .map(|d| d.message.clone())
                        .unwrap_or_default(),
                },
                Ok(renders) => match renders
                    .first()
                    .map(|r| (r.on_disk.is_some(), diff::changes(r)))
                {
                    Some((false, _)) => Overlay::Missing,
                    Some((true, Ok(changes))) if changes.is_empty() => Overlay::Current,
                    Some((true, Ok(changes))) => Overlay::Stale {
                        files: changes.len(),
                    },
                    Some((true, Err(err))) => Overlay::Refused {
                        reason: err.to_string(),
                    },
                    None => Overlay::Missing,
                },
            };
            let w: Weights = e.model.weights();
            let next = next_step(
                plan,
                e.model.stage,
                e.model.routing,
                e.weight.as_ref().map(|w| w.value),
            );
            EnvironmentStatus {
                environment: name.clone(),
                stage: e.model.stage,
                weight: e.weight.as_ref().map(|w| w.value),
                traffic: vec![
                    VersionTraffic {
                        version: plan.stable.version.value.clone(),
                        role: "stable",
                        percent: w.stable,
                    },
                    VersionTraffic {
                        version: plan.canary.version.value.clone(),
                        role: "canary",
                        percent: w.canary,
                    },
                ],
                overlay,
                output: diff::shown(&plan.output_dir(&name)),
                next,
            }
        })
        .collect()
}

fn next_step(
    plan: &CheckedPlan,
    stage: Stage,
    routing: Option<Routing>,
    weight: Option<u8>,
) -> String {
    if let (Stage::Shift, Some(Routing::Split(_))) = (stage, routing) {
        let current = weight.unwrap_or(0);
        if let Some(step) = plan.steps.iter().find(|s| **s > current) {
            return format!(
                "promote to {step}: {} {}%, {} {step}%",
                plan.stable.version.value,
                100 - step,
                plan.canary.version.value
            );
        }
    }
    match stage.next() {
        Some(next) => format!("{next}: {}", next.summary()),
        None => "nothing: the release is complete; the plan can be deleted".to_string(),
    }
}
