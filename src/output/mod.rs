//! Objects → output: the kustomize overlay on disk, the final manifest stream, and the diff
//! between what would be written and what is there.

pub mod diff;
pub mod overlay;
pub mod review;
pub mod stream;
