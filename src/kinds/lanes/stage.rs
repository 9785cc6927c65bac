//! The stages of a LanePlan: the same ladder as a CanaryPlan's (prepare → route → shift →
//! cleanup-1..3 → done, one step a commit), with what each renders for lanes. Make-before-break:
//! lane copies and their subsets exist before a route names them and outlive every route that
//! does.

use crate::ladder::Stage;

/// What one environment's stage renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneModel {
    pub stage: Stage,
    /// The lane copies `<workload>-<lane>` run.
    pub copies: bool,
    /// The baseline's pods carry `<label>: <baseline>` (a pod-template patch).
    pub baseline_label: bool,
    /// Each service's DestinationRule has a subset per lane with pods of it, and the baseline's.
    pub subsets: bool,
    /// Per-service routes: by header to the lane's subset, everything else to the baseline.
    pub lane_routes: bool,
    /// The route patches (or generated VirtualServices) exist; without `lane_routes` they send
    /// everything to the baseline subset.
    pub routes: bool,
    /// At the ingress, requests without the header are split by lane weight.
    pub weighted: bool,
    /// The Services select the baseline's pods and the lanes' (a selector patch).
    pub service_selector: bool,
}

impl LaneModel {
    pub fn new(stage: Stage) -> LaneModel {
        use Stage::*;
        let at = |stages: &[Stage]| stages.contains(&stage);
        LaneModel {
            stage,
            // Kept one stage after routes stop naming them: a sync that switches the routes
            // must not also take away the pods the old routes still send to.
            copies: at(&[Prepare, Route, Shift, Cleanup1]),
            baseline_label: at(&[Prepare, Route, Shift, Cleanup1, Cleanup2]),
            subsets: at(&[Route, Shift, Cleanup1, Cleanup2]),
            lane_routes: at(&[Route, Shift]),
            routes: at(&[Route, Shift, Cleanup1]),
            weighted: stage == Shift,
            service_selector: at(&[Route, Shift]),
        }
    }

    /// What moving to this stage changes, for `status` and commit messages.
    pub fn summary(stage: Stage) -> &'static str {
        match stage {
            Stage::Prepare => {
                "the lane copies are added and the baseline's pods get the lane label"
            }
            Stage::Route => {
                "subsets per lane, per-service routes by header (fallback to the baseline) and the ingress routes are added"
            }
            Stage::Shift => "ingress requests without the header are split by lane weight",
            Stage::Cleanup1 => {
                "every route goes to the baseline; the lane copies and the Service selector patches are removed"
            }
            Stage::Cleanup2 => "the route patches and the ingress routes are removed",
            Stage::Cleanup3 => "the subsets and the baseline's lane label are removed",
            Stage::Done => "nothing beyond the bases remains; the plan can be deleted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_before_break_holds_across_every_transition() {
        for pair in Stage::ALL.windows(2) {
            let (a, b) = (LaneModel::new(pair[0]), LaneModel::new(pair[1]));
            // A lane subset is named on either side of a sync: it exists after it, with pods.
            if a.lane_routes || b.lane_routes {
                assert!(b.subsets && b.copies, "{} -> {}", a.stage, b.stage);
            }
            // Copies run before routes name them (prepare) and after they stop (cleanup-1).
            if b.lane_routes {
                assert!(a.copies, "{} -> {}", a.stage, b.stage);
            }
            // The baseline subset is named while routes exist: it and its label outlive them.
            if a.routes || b.routes {
                assert!(b.subsets && b.baseline_label, "{} -> {}", a.stage, b.stage);
            }
            // The Service selects the copies only while routes name their subsets.
            assert!(!b.service_selector || b.lane_routes);
        }
    }
}
