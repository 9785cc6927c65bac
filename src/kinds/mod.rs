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
    match serde_saphyr::from_str_with_options::<KindOnly>(&source.text, crate::yaml::options()) {
        Ok(k) => k.kind,
        // A file the parser refuses (a duplicate key...) is parsed again as its kind, whose
        // parser then says where: find the kind by its top-level line.
        Err(_) => source.text.lines().find_map(|l| {
            let v = l.strip_prefix("kind:")?.trim();
            let v = v
                .split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches(['"', '\'']);
            (!v.is_empty()).then(|| v.to_string())
        }),
    }
}
