//! What every export of a CanaryPlan reads from the plan and the environment's base: the
//! Service, the Deployment, the routing objects the plan weights.

use crate::pointer::Pointer as _;
use serde_json::Value;

use crate::base::{Base, BaseObject};
use crate::error::{Diagnostic, Result};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};
use crate::kinds::canary::plan::Traffic;

pub struct Facts {
    pub base: Base,
    pub namespace: Option<String>,
    /// The VirtualServices (Istio) or HTTPRoutes (Gateway API) the plan weights, with the
    /// names of the http routes to the Service (VirtualServices; empty for HTTPRoutes).
    pub routes: Vec<(String, Vec<String>)>,
    /// The DestinationRule for the Service's host in base, if any.
    pub destination_rule: Option<String>,
    /// http routes to the Service that have no name (Argo Rollouts names them).
    pub unnamed_routes: usize,
}

impl Facts {
    pub fn service<'a>(&'a self, plan: &CheckedPlan) -> Option<&'a BaseObject> {
        self.base.find("Service", &plan.service.value)
    }

    pub fn workload<'a>(&'a self, plan: &CheckedPlan) -> Option<&'a BaseObject> {
        self.base.find("Deployment", &plan.workload.value)
    }
}

pub fn gather(plan: &CheckedPlan, env: &EnvironmentPlan) -> Result<Facts> {
    let base = crate::base::load(&plan.dir.join(&env.base.value), &plan.root)?;
    let (Some(service), Some(workload)) = (
        base.find("Service", &plan.service.value),
        base.find("Deployment", &plan.workload.value),
    ) else {
        return Err(plan
            .diag(
                plan.service.pos,
                "the Service or the Deployment is not in the base",
            )
            .hint("run `canaryplan validate`: it says which, and where")
            .into());
    };
    let namespace = workload.namespace().map(str::to_string);
    let is_ours = |h: &str| crate::rendered::is_host_of(service, h);
    let mut routes = Vec::new();
    let mut unnamed = 0;
    match plan.traffic {
        Traffic::Istio => {
            for vs in base.of_kind("VirtualService") {
                let refs = crate::rendered::routes_to(&vs.value, is_ours);
                let named = plan.virtual_services.is_empty()
                    || plan.virtual_services.iter().any(|v| v.value == vs.name);
                if refs.is_empty() || !named {
                    continue;
                }
                let mut names = Vec::new();
                for (kind, i) in refs {
                    if kind != "http" {
                        continue;
                    }
                    match vs
                        .value
                        .at(&format!("/spec/http/{i}/name"))
                        .and_then(Value::as_str)
                    {
                        Some(n) => {
                            let wanted = plan
                                .routes
                                .as_ref()
                                .is_none_or(|rs| rs.iter().any(|r| r.value == n));
                            if wanted {
                                names.push(n.to_string());
                            }
                        }
                        None => unnamed += 1,
                    }
                }
                routes.push((vs.name.clone(), names));
            }
        }
        Traffic::GatewayApi => {
            for hr in base.of_kind("HTTPRoute") {
                let to_service = crate::rendered::http_route_backend_refs(&hr.value).any(|b| {
                    b.get("name").and_then(Value::as_str) == Some(plan.service.value.as_str())
                });
                let named = plan.http_routes.is_empty()
                    || plan.http_routes.iter().any(|h| h.value == hr.name);
                if to_service && named {
                    routes.push((hr.name.clone(), Vec::new()));
                }
            }
        }
    }
    let destination_rule = base
        .of_kind("DestinationRule")
        .find(|d| {
            d.value
                .at("/spec/host")
                .and_then(Value::as_str)
                .is_some_and(is_ours)
        })
        .map(|d| d.name.clone());
    Ok(Facts {
        base,
        namespace,
        routes,
        destination_rule,
        unnamed_routes: unnamed,
    })
}

/// `metadata` with the name and, where there is one, the namespace.
pub fn metadata(name: &str, namespace: &Option<String>) -> Value {
    let mut m = serde_json::json!({"name": name});
    if let (Some(ns), Some(o)) = (namespace, m.as_object_mut()) {
        o.insert("namespace".into(), Value::String(ns.clone()));
    }
    m
}

/// A plan environment by name, or the error `export` gives.
pub fn environment<'a>(plan: &'a CheckedPlan, env: Option<&str>) -> Result<&'a EnvironmentPlan> {
    match env {
        Some(name) => plan.environment(name).ok_or_else(|| {
            Diagnostic::new(format!("the plan has no environment `{name}`"))
                .in_file(&plan.path)
                .into()
        }),
        None => match plan.environments.as_slice() {
            [one] => Ok(one),
            _ => Err(Diagnostic::new("the plan has several environments")
                .in_file(&plan.path)
                .hint("choose one with --env E: its base is exported")
                .into()),
        },
    }
}

/// A pause as whole seconds (Kruise's integer pauses), rounded up, from any duration a plan's
/// pause may hold (`20s`, `2m30s`, `500ms`).
pub fn seconds(d: &str) -> Option<u64> {
    crate::analysis::go_duration_millis(d).map(|ms| ms.div_ceil(1000))
}
