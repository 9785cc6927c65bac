//! canaryplan renders canary-release manifests for GitOps. Data flows one way:
//!
//! plan file → `kinds::<kind>` (parse, check, stage model, objects, checks on the final stream)
//! → `render` (one environment's overlay files and final objects) → `output` (overlay, stream,
//! diff). `kinds::Plan` is the one interface every kind implements; `kinds::KINDS` lists them.
//! What every kind shares sits below the kinds: located errors and YAML (`error`, `yaml`),
//! confined file access (`fsio`), plan-file basics (`plan_file`), the stage ladder (`ladder`),
//! bases (`base`), rendered objects (`rendered`), the traffic evaluator (`traffic`, `explain`),
//! and what the two mesh upgrade kinds share (`mesh_upgrade`: the injection resolver, their
//! plan files' common parts).
//! Commands that work over kinds (`plans`, `edit`, `export`, `gate`, `init`) sit above them.
//!
//! The library never prints and never exits; the binary owns the terminal.

// Input must never panic: no indexing that could go out of bounds (and, by Cargo.toml's
// lints, no unwrap/expect/panic).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
// Every write goes through `fsio::WriteDir` (see clippy.toml).
#![deny(clippy::disallowed_methods)]

pub mod analysis;
pub mod argocd;
pub mod base;
pub mod edit;
pub mod endpoint;
pub mod error;
pub mod explain;
pub mod export;
pub mod finish;
pub mod from_rollout;
pub mod fsio;
pub mod gate;
pub mod init;
pub mod invariants;
pub mod kinds;
pub mod ladder;
pub mod mesh_upgrade;
pub mod monorepo;
pub mod names;
pub mod output;
pub mod plan_file;
pub mod plans;
pub mod pointer;
pub mod render;
pub mod rendered;
pub mod selector;
pub mod status;
pub mod step;
pub mod templates;
pub mod traffic;
pub mod yaml;

pub use error::{Diagnostic, Error, Result};
pub use kinds::AnyPlan;
pub use kinds::registry::load as load_any;
pub use plans::{Keep, find_plans, render_found, render_plans};
pub use render::{
    EnvironmentRender, Mode, PatchedSelector, WriteReport, refuse_jumps_from_nothing,
    write_overlays,
};
pub use templates::Templates;

/// Renders every environment of a plan given as text against a base given as text, all in
/// memory, and returns each environment's final stream. For fuzzing and benchmarks: the same
/// path through parse, check, render and safety checks as `render --stdout`.
pub fn render_text(plan_text: &str, base_text: &str, templates: &Templates) -> Result<Vec<String>> {
    kinds::registry::render_text(plan_text, base_text, templates)
}
