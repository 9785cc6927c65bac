//! What both mesh upgrade kinds (`kinds::gateway_upgrade`, `kinds::revision_upgrade`) share,
//! below the kinds so that neither imports the other: the sidecar injection resolver and the
//! common parts of their plan files.

pub mod injection;
pub mod plan;
