//! A CanaryPlan handed to an in-cluster controller: an Argo Rollouts Rollout (with its
//! AnalysisTemplate) or a Kruise Rollout, from the checked plan and its base.

pub mod argo_rollouts;
pub mod facts;
pub mod kruise;
