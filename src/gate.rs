//! `canaryplan gate`: every `analysis.metrics` query against the Prometheus HTTP API
//! (`/api/v1/query`), each value held to its bounds. No data (an empty vector, NaN) fails,
//! never passes. Prometheus unreachable, an HTTP error or a query error is an error (exit 2):
//! nothing is decided on a measurement that did not happen.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::analysis::{self, QueryValues};
use crate::error::{Diagnostic, Result};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};

/// How long one query may take, and how often a failed connection is tried again.
const TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: u32 = 2;
/// The most of a response read: a query for one number answers in bytes, not megabytes.
const MAX_BODY: u64 = 4 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    /// The query as sent.
    pub query: String,
    /// `None`: no data.
    pub value: Option<f64>,
    /// `>= 0.99`, `<= 500`, or both.
    pub bound: String,
    pub pass: bool,
    /// Why it failed without a value, or how many tries it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub prometheus: String,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.pass)
    }
}

/// The Prometheus URL: `$CANARYPLAN_PROMETHEUS_URL` when set (a CI job points the gate at its
/// server), else the plan's.
fn url(plan: &CheckedPlan, var: Option<String>) -> Result<String> {
    if let Some(u) = var.filter(|u| !u.is_empty()) {
        return Ok(u);
    }
    let a = plan.analysis.as_ref();
    match a.and_then(|a| a.prometheus.as_ref()) {
        Some(p) => Ok(p.value.clone()),
        None => Err(Diagnostic::new("the plan names no Prometheus server")
            .in_file(&plan.path)
            .hint(format!(
                "set `analysis.prometheus: http://prometheus.istio-system:9090`, or ${}",
                analysis::PROMETHEUS_ENV
            ))
            .into()),
    }
}

/// Runs every metric of the plan's analysis for environment `env`.
pub fn run(plan: &CheckedPlan, env: &EnvironmentPlan, var: Option<String>) -> Result<Report> {
    let Some(a) = &plan.analysis else {
        return Err(
            Diagnostic::new("the plan has no `analysis`: there is nothing to gate on")
                .in_file(&plan.path)
                .hint("add `analysis: {prometheus: ..., metrics: [{name, query, min}]}` under spec")
                .into(),
        );
    };
    let base = url(plan, var)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let endpoint = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let namespace = plan_namespace(plan, env);
    let mut rows = Vec::new();
    for m in &a.metrics {
        let values = QueryValues {
            plan: &plan.name,
            environment: &env.name.value,
            service: &plan.service.value,
            namespace: &namespace,
            workload: &plan.workload.value,
            canary_version: &plan.canary.version.value,
            stable_version: &plan.stable.version.value,
            interval: &a.interval,
        };
        let query = analysis::render_query(&m.query.value, &values).map_err(|why| {
            plan.diag(
                m.query.pos,
                format!(
                    "the query of metric `{}` does not render: {why}",
                    m.name.value
                ),
            )
        })?;
        let (body, tries) = get(&agent, &endpoint, &query)?;
        let value = value_of(&body).map_err(|why| {
            plan.diag(m.query.pos, format!("Prometheus at {base} answered the query of metric `{}` with {why}", m.name.value))
                .hint("try the query in Prometheus's own UI; it must return one number (a scalar or a one-series vector)")
        })?;
        let mut bound = Vec::new();
        if let Some(min) = m.min {
            bound.push(format!(">= {min}"));
        }
        if let Some(max) = m.max {
            bound.push(format!("<= {max}"));
        }
        let (pass, note) = match value {
            None => (
                false,
                Some("no data: the query returned no series".to_string()),
            ),
            Some(v) if v.is_nan() => (
                false,
                Some("no data: the value is NaN (a ratio of nothing?)".to_string()),
            ),
            Some(v) => (
                m.min.is_none_or(|x| v >= x) && m.max.is_none_or(|x| v <= x),
                None,
            ),
        };
        let note = match (note, tries) {
            (n, 1) => n,
            (Some(n), t) => Some(format!("{n}; answered on try {t}")),
            (None, t) => Some(format!("answered on try {t}")),
        };
        rows.push(Row {
            metric: m.name.value.clone(),
            query,
            value: value.filter(|v| !v.is_nan()),
            bound: bound.join(" and "),
            pass,
            note,
        });
    }
    Ok(Report {
        prometheus: base,
        rows,
    })
}

/// The namespace queries see: the one the environment's base sets, if it can be read.
fn plan_namespace(plan: &CheckedPlan, env: &EnvironmentPlan) -> String {
    crate::base::load(&plan.dir.join(&env.base.value), &plan.root)
        .ok()
        .and_then(|b| {
            b.find("Service", &plan.service.value)
                .and_then(|s| s.namespace().map(str::to_string))
        })
        .unwrap_or_else(|| "default".to_string())
}

/// GETs the query; connection failures and 5xx answers are tried again, a bounded number of
/// times. Returns the body and how many tries it took.
fn get(agent: &ureq::Agent, endpoint: &str, query: &str) -> Result<(String, u32)> {
    let mut last = String::new();
    for t in 1..=RETRIES + 1 {
        match agent.get(endpoint).query("query", query).call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .read_to_string()
                    .unwrap_or_default();
                // Prometheus answers a bad query with 400 and a JSON error: that is an answer.
                if status < 500 && (status == 200 || body.contains("\"status\":\"error\"")) {
                    return Ok((body, t));
                }
                last = format!(
                    "HTTP {status}: {}",
                    body.chars().take(300).collect::<String>()
                );
                if status < 500 {
                    break;
                }
            }
            Err(e) => last = e.to_string(),
        }
        if t <= RETRIES {
            std::thread::sleep(Duration::from_millis(500 * u64::from(t)));
        }
    }
    Err(Diagnostic::new(format!("Prometheus at {endpoint} did not answer: {last}"))
        .hint(format!("check the URL (analysis.prometheus or ${}) and that the server is up; nothing was changed", analysis::PROMETHEUS_ENV))
        .into())
}

/// The one number a query response holds: `Ok(None)` for an empty vector, an error message for
/// a Prometheus error or a result that is not one number.
fn value_of(body: &str) -> std::result::Result<Option<f64>, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("a response that is not JSON ({e})"))?;
    if v.get("status").and_then(Value::as_str) == Some("error") {
        return Err(format!(
            "an error: {} ({})",
            v.get("error").and_then(Value::as_str).unwrap_or_default(),
            v.get("errorType")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    let data = v.get("data").ok_or("no data field")?;
    let number = |s: &Value| -> std::result::Result<f64, String> {
        let text = s
            .get(1)
            .and_then(Value::as_str)
            .ok_or("a sample without a value")?;
        match text {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            t => t
                .parse::<f64>()
                .map_err(|e| format!("a value `{t}` that is not a number ({e})")),
        }
    };
    match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => number(data.get("result").unwrap_or(&Value::Null)).map(Some),
        Some("vector") => {
            let result = data
                .get("result")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match result.as_slice() {
                [] => Ok(None),
                [one] => number(one.get("value").unwrap_or(&Value::Null)).map(Some),
                many => Err(format!(
                    "{} series, where one number was expected (aggregate it, e.g. with sum())",
                    many.len()
                )),
            }
        }
        other => Err(format!(
            "a {} result, where one number was expected",
            other.unwrap_or("missing")
        )),
    }
}

/// The gate of environment `env` of the plan at `path`, measured now (`$CANARYPLAN_PROMETHEUS_URL`
/// wins over the plan's URL).
pub fn measure(path: &std::path::Path, env: &str) -> Result<Report> {
    let plan = crate::kinds::canary::check::load(path)?;
    let Some(e) = plan.environment(env) else {
        let names: Vec<&str> = plan
            .environments
            .iter()
            .map(|e| e.name.value.as_str())
            .collect();
        return Err(
            Diagnostic::new(format!("the plan has no environment `{env}`"))
                .in_file(path)
                .hint(format!("the plan has {}", names.join(", ")))
                .into(),
        );
    };
    run(&plan, e, std::env::var(analysis::PROMETHEUS_ENV).ok())
}

impl Report {
    /// The table, for a terminal.
    pub fn to_table(&self) -> String {
        let mut t = format!("prometheus: {}\n", self.prometheus);
        let w = self
            .rows
            .iter()
            .map(|x| x.metric.len())
            .max()
            .unwrap_or(6)
            .max(6);
        t.push_str(&format!(
            "  {:<w$}  {:>12}  {:<20}  result\n",
            "metric", "value", "bound"
        ));
        for row in &self.rows {
            let value = row
                .value
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "no data".into());
            let mut line = format!(
                "  {:<w$}  {:>12}  {:<20}  {}",
                row.metric,
                value,
                row.bound,
                if row.pass { "pass" } else { "FAIL" }
            );
            if let Some(n) = &row.note {
                line.push_str(&format!("  ({n})"));
            }
            t.push_str(&line);
            t.push('\n');
        }
        t
    }

    /// `gate --format json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"passed": self.passed(), "prometheus": self.prometheus, "metrics": self.rows})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_are_read_as_one_number_or_no_data() {
        let vector = |r: &str| {
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{r}}}}}"#)
        };
        assert_eq!(
            value_of(&vector(r#"[{"metric":{},"value":[1,"0.995"]}]"#)),
            Ok(Some(0.995))
        );
        assert_eq!(value_of(&vector("[]")), Ok(None));
        assert!(
            value_of(&vector(r#"[{"metric":{},"value":[1,"NaN"]}]"#))
                .unwrap()
                .unwrap()
                .is_nan()
        );
        assert!(
            value_of(&vector(
                r#"[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]"#
            ))
            .unwrap_err()
            .contains("2 series")
        );
        assert_eq!(
            value_of(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#),
            Ok(Some(3.0))
        );
        assert!(
            value_of(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
                .unwrap_err()
                .contains("parse error")
        );
    }
}
