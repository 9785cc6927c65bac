//! What `status` reports for an environment of any kind: its stage, where requests go per
//! workload, whether the overlay on disk is current, and the next step. Each kind fills it in
//! from its own rendered streams.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    pub environment: String,
    /// The stage's name in the plan kind's ladder.
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// Where requests to the Service go, per workload (the first route to it).
    pub traffic: Vec<VersionTraffic>,
    /// Percent of the main route's requests also copied (mirrored) to the canary, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirrored: Option<f64>,
    /// Facts about the traffic worth knowing (test routes, mesh callers bypassing the split...).
    pub notes: Vec<String>,
    pub overlay: Overlay,
    /// The overlay directory.
    pub output: String,
    /// The next step, in one line.
    pub next: String,
    /// What rendering the plan would move against the overlay on disk (its record), one line
    /// per change; empty when nothing would.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionTraffic {
    /// The pods' version label, if they carry one.
    pub version: String,
    /// The Deployment (or other workload) the requests reach.
    pub workload: String,
    /// `stable`, `canary`, or how the workload relates to the release.
    pub role: String,
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

/// `status` for a terminal: per plan, each environment's stage, overlay, traffic bars, notes
/// and next step.
pub fn to_text(plans: &[(String, Vec<EnvironmentStatus>)]) -> String {
    let mut out = String::new();
    for (path, envs) in plans {
        out.push_str(&format!("{path}\n"));
        for e in envs {
            let overlay = match &e.overlay {
                Overlay::Current => "up to date".to_string(),
                Overlay::Stale { files } => {
                    format!("stale: {files} file(s) differ, run `canaryplan render`")
                }
                Overlay::Missing => "not rendered yet, run `canaryplan render`".to_string(),
                Overlay::Refused { reason } => format!("render refuses: {reason}"),
            };
            out.push_str(&format!(
                "  {}  stage {}  ({}: {overlay})\n",
                e.environment, e.stage, e.output
            ));
            for t in &e.traffic {
                out.push_str(&format!(
                    "    {:<6} {:<24} {} {:>3}%  {}\n",
                    t.version,
                    t.workload,
                    bar(t.percent),
                    t.percent,
                    t.role
                ));
            }
            for n in &e.notes {
                out.push_str(&format!("    note: {n}\n"));
            }
            for p in &e.pending {
                out.push_str(&format!("    pending (render and sync): {p}\n"));
            }
            out.push_str(&format!("    next: {}\n", e.next));
        }
    }
    out
}

/// `status --format json`.
pub fn to_json(plans: &[(String, Vec<EnvironmentStatus>)]) -> serde_json::Value {
    let json: Vec<_> = plans
        .iter()
        .map(|(p, envs)| serde_json::json!({"plan": p, "environments": envs}))
        .collect();
    serde_json::json!({ "plans": json })
}

/// A 20-cell bar for a percentage.
fn bar(percent: u8) -> String {
    let full = (usize::from(percent) * 20 + 50) / 100;
    format!("{}{}", "█".repeat(full), "░".repeat(20 - full))
}
