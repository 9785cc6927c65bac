//! Stage invariants from final manifests: the product's promise in code. For one environment,
//! the traffic model (`model`) of three streams — the base alone, the record on disk
//! (`record`), this render — is compared by a list of rules (`rules`) against the step the
//! plan's kind declares (`Declared`), and the difference is described for reviewers
//! (`delta`). It reads final streams (`&[serde_json::Value]`, what `render --stdout` prints),
//! never a renderer type and never the plan.
//!
//! API (what a caller wires):
//! - `model(&objects) -> Model`: serde, sorted, rounded; also the body of the record.
//! - `Record::new(entry, model)`, `record.to_yaml()`, `record::parse(path, text)` (located
//!   errors, version checked); `record::FILE` is its name in an overlay.
//! - `check(env, &base, disk: Option<&Record>, &new, &Declared) -> Vec<Violation>`; a
//!   `Violation` names the rule, environment, request class or workload, and the shares
//!   before/after, with a message and a hint: the caller adds where the plan sets the stage.
//! - `delta(&before, &after) -> Delta` with `to_text(env)`, `to_markdown(env)`,
//!   `is_empty()`; `delta::to_markdown(&[(env, &delta)])` for several environments.

pub mod delta;
pub mod model;
pub mod record;
pub mod rules;

pub use delta::{Delta, delta};
pub use model::{Class, Model, WorkloadFacts, model};
pub use record::Record;
pub use rules::{Declared, LaneShare, LaneWeight, Revisions, Shift, Violation, check};
