//! The CanaryPlan's `analysis` queries with an environment's real values: what the gate
//! sends, and the check that every query renders for every environment.

use crate::analysis::{QueryValues, VARIABLES, render_query};
use crate::error::Diagnostics;

/// The values a query sees in environment `env`: the plan's, and the namespace the
/// environment's base gives the Service (`default` when it sets none).
pub fn values<'a>(
    plan: &'a crate::kinds::canary::check::CheckedPlan,
    env: &'a crate::kinds::canary::check::EnvironmentPlan,
    interval: &'a str,
    namespace: &'a str,
) -> QueryValues<'a> {
    QueryValues {
        plan: &plan.name,
        environment: &env.name.value,
        service: &plan.service.value,
        namespace,
        workload: &plan.workload.value,
        canary_version: &plan.canary.version.value,
        stable_version: &plan.stable.version.value,
        interval,
    }
}

/// Checks the queries of `analysis` with the real values of environment `env` (its base's
/// namespace included): each renders to a non-empty query, and the namespace is a DNS label,
/// so no base can smuggle PromQL in through it. Called where the environment's base is loaded.
pub fn check_environment(
    plan: &crate::kinds::canary::check::CheckedPlan,
    env: &crate::kinds::canary::check::EnvironmentPlan,
    namespace: Option<&str>,
) -> crate::error::Result<()> {
    let Some(a) = &plan.analysis else {
        return Ok(());
    };
    let namespace = namespace.unwrap_or("default");
    if !crate::names::is_dns_label(namespace) {
        return Err(plan
            .diag(
                env.base.pos,
                format!(
                    "the base of environment `{}` puts Service {} in namespace `{}`, which is not a DNS-1123 label",
                    env.name.value,
                    plan.service.value,
                    namespace.escape_default()
                ),
            )
            .hint("fix the `namespace:` of the base's kustomization (or the Service's metadata.namespace)")
            .into());
    }
    let values = values(plan, env, &a.interval, namespace);
    let queries = a
        .requests
        .iter()
        .map(|r| ("the requests query".to_string(), r))
        .chain(
            a.metrics
                .iter()
                .map(|m| (format!("the query of metric `{}`", m.name.value), &m.query)),
        );
    let mut d = Diagnostics::default();
    for (what, q) in queries {
        match render_query(&q.value, &values) {
            Ok(text) if text.trim().is_empty() => d.push(
                plan.diag(
                    q.pos,
                    format!("{what} renders empty for environment `{}`", env.name.value),
                )
                .hint("a query must ask Prometheus something in every environment"),
            ),
            Ok(_) => {}
            Err(why) => d.push(
                plan.diag(
                    q.pos,
                    format!(
                        "{what} does not render for environment `{}`: {why}",
                        env.name.value
                    ),
                )
                .hint(format!("queries may use {VARIABLES}")),
            ),
        }
    }
    d.into_result()
}
