//! Plan kinds beside the CanaryPlan (`plan.rs` → `check.rs` → `objects/`): each kind is a
//! folder owning its plan file, its checks, its stage model and what each stage renders. What
//! kinds share — located errors, the stage ladder and the one-step rule, environments, overlay
//! and stream output — lives outside them. `kind:` in the file picks the module.

pub mod lanes;

use serde::Deserialize;

use crate::yaml::Source;

/// The `kind:` of a plan file, read before the file is parsed as that kind (`None` when the
/// file has none, or is not a mapping: the CanaryPlan parser then says what is wrong).
pub fn kind_of(source: &Source) -> Option<String> {
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    serde_saphyr::from_str_with_options::<KindOnly>(&source.text, crate::yaml::options())
        .ok()
        .and_then(|k| k.kind)
}
