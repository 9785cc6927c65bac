//! The stages of a canary release and, for one environment, the stage model: which pieces a
//! stage renders and the traffic weights. Everything downstream asks the model, never the
//! stage name, so a new stage or piece changes this file only.

use crate::kinds::canary::plan::Method;
use serde::Serialize;

pub use crate::ladder::Stage;

impl Stage {
    /// What moving to this stage changes, in one line, for `status` and commit messages.
    pub fn summary(self) -> &'static str {
        match self {
            Stage::Prepare => {
                "the pinned stable copy is added and the original's pods get the version labels"
            }
            Stage::Route => {
                "subsets, a route patch (all traffic to the canary subset, still old code), the Service selector patch and the copy's AuthorizationPolicy are added"
            }
            Stage::Shift => "traffic is split between the stable copy and the canary by weight",
            Stage::Cleanup1 => {
                "the stable route, the Service selector patch, the stable copy and its AuthorizationPolicy are removed"
            }
            Stage::Cleanup2 => "the VirtualService patch is removed",
            Stage::Cleanup3 => "the DestinationRule is removed",
            Stage::Done => "nothing beyond the base remains; the plan can be deleted",
        }
    }
}

impl Stage {
    /// `summary` in the words of the traffic backend that renders the stage.
    pub fn summary_for(self, traffic: crate::kinds::canary::plan::Traffic) -> &'static str {
        use crate::kinds::canary::plan::Traffic;
        match (traffic, self) {
            (Traffic::Istio, _) | (_, Stage::Shift | Stage::Done) => self.summary(),
            (Traffic::GatewayApi, Stage::Prepare) => {
                "the pinned stable copy and the Services of both versions are added; the original's pods get the version labels"
            }
            (Traffic::GatewayApi, Stage::Route) => {
                "HTTPRoute rules to the Service send all traffic to the canary's Service (still old code), and the copy's AuthorizationPolicy is added"
            }
            (Traffic::GatewayApi, Stage::Cleanup1) => {
                "the stable version's backendRefs, the stable copy and its AuthorizationPolicy are removed"
            }
            (Traffic::GatewayApi, Stage::Cleanup2) => "the HTTPRoute patch is removed",
            (Traffic::GatewayApi, Stage::Cleanup3) => "the version Services are removed",
        }
    }
}

/// Traffic percentages per version; they always sum to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Weights {
    pub stable: u8,
    pub canary: u8,
}

/// How the routes to the Service look at a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Both subsets, by weight.
    Split(Weights),
    /// Only the canary subset.
    CanaryOnly,
    /// Only the stable subset: traffic pinned before a new version's pods exist.
    StableOnly,
}

/// Which version subsets the DestinationRule defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsets {
    Both,
    /// After the stable version is gone (versioned: cleanup-3).
    CanaryOnly,
}

/// What one environment's stage renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageModel {
    pub stage: Stage,
    pub method: Method,
    /// The plan's weight, where the stage has one.
    pub weight: Option<u8>,
    /// The new Deployment exists: the pinned stable copy (succession, coexistence) or the
    /// canary Deployment (versioned).
    pub new_deployment: bool,
    /// The version label (and pod labels) on the original Deployment's pods.
    pub canary_pod_labels: bool,
    /// Versioned: the stable Deployment of base is deleted (no route names it any more).
    pub stable_removed: bool,
    /// DestinationRule subsets.
    pub subsets: Option<Subsets>,
    /// The route patch, if routes are changed.
    pub routing: Option<Routing>,
    /// The Service selector patch that selects both versions.
    pub service_selector: bool,
    /// The `allowFrom` AuthorizationPolicy for the new Deployment.
    pub allow_from: bool,
}

impl StageModel {
    /// The model for `stage`; `weight` is the canary's percentage at `shift`.
    pub fn new(method: Method, stage: Stage, weight: Option<u8>) -> StageModel {
        use Stage::*;
        let at = |stages: &[Stage]| stages.contains(&stage);
        let split = |canary: u8| {
            Routing::Split(Weights {
                stable: 100 - canary,
                canary,
            })
        };
        let shifted = split(weight.unwrap_or(0).min(100));
        match method {
            Method::Succession | Method::Coexistence => StageModel {
                stage,
                method,
                weight,
                new_deployment: at(&[Prepare, Route, Shift]),
                // Kept while any route names the canary subset (make-before-break).
                canary_pod_labels: at(&[Prepare, Route, Shift, Cleanup1]),
                stable_removed: false,
                // Subsets outlive every route that names them: removed only at cleanup-3.
                subsets: at(&[Route, Shift, Cleanup1, Cleanup2]).then_some(Subsets::Both),
                routing: match stage {
                    Route => Some(split(100)),
                    Shift => Some(shifted),
                    Cleanup1 => Some(Routing::CanaryOnly),
                    _ => None,
                },
                service_selector: at(&[Route, Shift]),
                allow_from: at(&[Route, Shift]),
            },
            // One Deployment per version: routes are pinned to the stable subset before the
            // canary's pods exist, and the base edit at `done` makes the canary the base's.
            Method::Versioned => StageModel {
                stage,
                method,
                weight,
                new_deployment: at(&[Route, Shift, Cleanup1, Cleanup2, Cleanup3]),
                canary_pod_labels: false,
                stable_removed: at(&[Cleanup2, Cleanup3]),
                subsets: match stage {
                    Prepare | Route | Shift | Cleanup1 | Cleanup2 => Some(Subsets::Both),
                    Cleanup3 => Some(Subsets::CanaryOnly),
                    Done => None,
                },
                routing: match stage {
                    Prepare => Some(Routing::StableOnly),
                    Route => Some(split(0)),
                    Shift => Some(shifted),
                    Cleanup1 | Cleanup2 | Cleanup3 => Some(Routing::CanaryOnly),
                    Done => None,
                },
                service_selector: false,
                allow_from: at(&[Route, Shift, Cleanup1, Cleanup2, Cleanup3]),
            },
        }
    }

    /// The weights the plan asks for, as `status` shows them when nothing else is known.
    pub fn weights(&self) -> Weights {
        match self.routing {
            Some(Routing::Split(w)) => w,
            Some(Routing::StableOnly) => Weights {
                stable: 100,
                canary: 0,
            },
            Some(Routing::CanaryOnly) => Weights {
                stable: 0,
                canary: 100,
            },
            // Without a route patch the base routes: succession's original is the canary
            // Deployment; the versioned stable Deployment serves until `prepare` pins it.
            None => match (self.method, self.stage) {
                (Method::Versioned, Stage::Prepare) => Weights {
                    stable: 100,
                    canary: 0,
                },
                _ => Weights {
                    stable: 0,
                    canary: 100,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_before_break_holds_across_every_transition() {
        // Moving forward one stage, every subset a route names, before or after the sync, is
        // defined after it: subsets are added with (and, by sync wave, before) the first route
        // that names them and removed only a stage after the last one did.
        for method in [Method::Succession, Method::Coexistence, Method::Versioned] {
            for pair in Stage::ALL.windows(2) {
                let (a, b) = (
                    StageModel::new(method, pair[0], Some(100)),
                    StageModel::new(method, pair[1], Some(100)),
                );
                let names_stable = |m: &StageModel| {
                    matches!(m.routing, Some(Routing::Split(_) | Routing::StableOnly))
                };
                let names_canary = |m: &StageModel| {
                    matches!(m.routing, Some(Routing::Split(_) | Routing::CanaryOnly))
                };
                if names_stable(&a) || names_stable(&b) {
                    assert_eq!(
                        b.subsets,
                        Some(Subsets::Both),
                        "{method:?} {} -> {}",
                        a.stage,
                        b.stage
                    );
                }
                // Versioned `done`: the base itself routes to the canary subset and defines it
                // (the base edit that ends the release; `safety` refuses done until it does).
                let base_takes_over = method == Method::Versioned && b.stage == Stage::Done;
                if (names_canary(&a) || names_canary(&b)) && !base_takes_over {
                    assert!(b.subsets.is_some(), "{method:?} {} -> {}", a.stage, b.stage);
                }
                // Versioned: the canary's pods exist only once routes pin traffic by subset,
                // and the stable Deployment goes only after no route names it.
                if method == Method::Versioned {
                    if b.new_deployment {
                        assert!(
                            a.routing.is_some() && b.routing.is_some(),
                            "{} -> {}",
                            a.stage,
                            b.stage
                        );
                    }
                    if b.stable_removed {
                        assert!(
                            !names_stable(&a) && !names_stable(&b),
                            "{} -> {}",
                            a.stage,
                            b.stage
                        );
                    }
                } else {
                    // Traffic on the stable subset needs the copy on both sides.
                    for m in [&a, &b] {
                        if let Some(Routing::Split(w)) = m.routing
                            && w.stable > 0
                        {
                            assert!(
                                a.new_deployment && b.new_deployment,
                                "{} -> {}",
                                a.stage,
                                b.stage
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.name()), Some(s));
        }
        assert_eq!(Stage::parse("shfit"), None);
    }
}
