//! The Gateway API backend (`traffic: gateway-api`). Per-version Services
//! `<service>-<version>` play the part of Istio's subsets: `services` creates them before any
//! route names them and removes them after none does. `http_routes` weights the HTTPRoute
//! rules that send to the Service between them; `test_rules` (`match:`), `mirror`
//! (`mirror:`) and `mesh_route` (`meshRoute: generate`) are the routing features, one module
//! each, as in the Istio backend.

mod base_service;
mod http_routes;
mod mesh_route;
mod mirror;
mod services;

pub use services::stages_rendering;
mod test_rules;

use serde_json::Value;

use super::{Component, Context};

/// The Gateway API components, in the order their files are listed in the overlay.
pub const COMPONENTS: &[&dyn Component] = &[
    &services::VersionServices,
    &http_routes::HttpRoutes,
    &base_service::BaseService,
];

/// Gateway API weights are relative; canaryplan writes them as percents (0..100), and scales
/// the other backends of a rule by 100 where the Service shares a rule with them. Beyond
/// this the API server refuses the weight.
pub const MAX_WEIGHT: u64 = 1_000_000;

/// The Service of one version: `<service>-<version>`.
pub fn version_service(cx: &Context<'_>, version: &str) -> String {
    format!("{}-{version}", cx.service.name)
}

/// Whether backendRef `b` of an HTTPRoute in namespace `route_ns` names the plan's Service,
/// or a version's own Service where the base has one (one Service per version: the routes of
/// base name the stable one, or after the base edit that ends a release, the canary's; as
/// Istio routes name a subset).
pub fn names_service(cx: &Context<'_>, b: &Value, route_ns: Option<&str>) -> bool {
    let s = |k: &str| b.get(k).and_then(Value::as_str);
    let in_base = |version: &str| {
        let name = version_service(cx, version);
        s("name") == Some(name.as_str()) && cx.base.find("Service", &name).is_some()
    };
    let named = s("name") == Some(cx.service.name.as_str())
        || in_base(&cx.plan.stable.version.value)
        || in_base(&cx.plan.canary.version.value);
    named
        && s("kind").is_none_or(|k| k == "Service")
        && s("group").is_none_or(str::is_empty)
        && same_namespace(s("namespace").or(route_ns), cx.service.namespace())
}

/// Objects without a namespace share the one the manifests are applied to.
fn same_namespace(a: Option<&str>, b: Option<&str>) -> bool {
    a == b || a.is_none() || b.is_none()
}
