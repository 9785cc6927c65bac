//! `analysis:`: Prometheus queries that must hold before the next weight (`canaryplan gate`,
//! `promote --gate`), also handed to controllers by `export` as an AnalysisTemplate; and the
//! pauses of `steps` entries written as `{weight: N, pause: 20s}`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;
use std::time::Duration;

use crate::error::Diagnostics;
use crate::yaml::At;
use crate::yaml::{Kind, Node, Pos, Source};

/// The environment variable that names the Prometheus server when the plan does not, or to
/// point a CI job at another one.
pub const PROMETHEUS_ENV: &str = "CANARYPLAN_PROMETHEUS_URL";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Analysis {
    /// The Prometheus server's URL (or `$CANARYPLAN_PROMETHEUS_URL`, which takes precedence).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub prometheus: Option<Spanned<String>>,
    /// The window of the queries (`{{ interval }}`) and, exported, how often they run (default `5m`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    /// Exported: how long a controller waits before the first measurement.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub initial_delay: Option<Spanned<String>>,
    /// Exported: the step from which the analysis runs, as an index of the exported Argo
    /// Rollouts steps: each plan step below 100 is two (`setWeight`, then its `pause`), so 1 is
    /// the pause at the first weight, 2 the second weight (an export's header and mirror steps
    /// come first and are counted by the export).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub starting_step: Option<Node>,
    /// Exported: the AnalysisTemplate's name (default `<plan>-analysis`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// How many samples `gate` takes, `interval` apart (default 1, as Argo Rollouts); across a
    /// step's pause when the plan's git history shows when its weight was set.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub count: Option<Node>,
    /// How many failed samples a metric may have and still pass (default 0, as Argo Rollouts).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub failure_limit: Option<Node>,
    /// How many inconclusive samples (no data, too little traffic) a metric may have before
    /// the gate is inconclusive (default 0).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub inconclusive_limit: Option<Node>,
    /// More errors in a row than this (no answer, a query error) fail a metric (default 4, as
    /// Argo Rollouts: the fifth error in a row fails).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub consecutive_error_limit: Option<Node>,
    /// A query for the canary's request count in the window; with `minRequests`, a sample with
    /// fewer requests is inconclusive (a quiet night neither promotes nor aborts).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub requests: Option<Spanned<String>>,
    /// The fewest requests (`requests` query) a sample needs to count.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub min_requests: Option<Node>,
    /// Accept answers Prometheus or Thanos flag with `warnings` (a partial response). Default
    /// false: such a sample is inconclusive.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub allow_partial: Option<Node>,
    /// The metrics; each must hold.
    #[schemars(with = "Vec<Metric>")]
    pub metrics: Spanned<Vec<Metric>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metric {
    /// A name for the table and the exported metric.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// A PromQL query returning one number; a minijinja template over the plan's values
    /// (`service`, `namespace`, `workload`, `canary.version`, `stable.version`, `interval`,
    /// `environment`, `plan`).
    #[schemars(with = "String")]
    pub query: Spanned<String>,
    /// The value must be at least this.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub min: Option<Node>,
    /// The value must be at most this.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub max: Option<Node>,
    /// An expression over `result` (the value) that must hold, e.g. `result >= 0.99 && result
    /// <= 1` (`and`, `or`, `not` also work).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub success_condition: Option<Spanned<String>>,
    /// An expression over `result` that fails the sample. With `successCondition`, a value
    /// that meets neither is inconclusive (a band between pass and fail).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub failure_condition: Option<Spanned<String>>,
}

/// A checked metric.
#[derive(Debug, Clone)]
pub struct CheckedMetric {
    pub name: At<String>,
    pub query: At<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub success_condition: Option<At<String>>,
    pub failure_condition: Option<At<String>>,
}

#[derive(Debug, Clone)]
pub struct CheckedAnalysis {
    pub prometheus: Option<At<String>>,
    pub interval: String,
    pub initial_delay: Option<String>,
    pub starting_step: Option<u32>,
    pub name: Option<String>,
    pub count: u32,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
    pub consecutive_error_limit: u32,
    pub requests: Option<At<String>>,
    pub min_requests: Option<f64>,
    pub allow_partial: bool,
    pub metrics: Vec<CheckedMetric>,
}

/// The variables a query template sees, for `environment` of a plan.
pub struct QueryValues<'a> {
    pub plan: &'a str,
    pub environment: &'a str,
    pub service: &'a str,
    pub namespace: &'a str,
    pub workload: &'a str,
    pub canary_version: &'a str,
    pub stable_version: &'a str,
    pub interval: &'a str,
}

/// The variables a query may use, for messages.
pub const VARIABLES: &str =
    "service, namespace, workload, canary.version, stable.version, interval, environment and plan";

/// `value` as the inside of a PromQL double-quoted string: a value can end up only as the text
/// of the string it is written in, never as PromQL (`"`, `\` and control characters escaped;
/// PromQL accepts no other escape in a double-quoted string).
pub fn promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Renders a query template. Every value is escaped for a PromQL string (automatically, or
/// with the `promql_string` filter, which is the same), so a value from a plan or a base cannot
/// change what the query means. An unknown variable or a syntax error is an error message
/// naming it.
pub fn render_query(template: &str, v: &QueryValues<'_>) -> std::result::Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(100_000));
    env.set_formatter(|out, _state, value| {
        let text = value.to_string();
        let text = if value.is_safe() {
            text
        } else {
            promql_string(&text)
        };
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    });
    env.add_filter("promql_string", |s: String| {
        minijinja::Value::from_safe_string(promql_string(&s))
    });
    let ctx = json!({
        "plan": v.plan,
        "environment": v.environment,
        "service": v.service,
        "namespace": v.namespace,
        "workload": v.workload,
        "canary": {"version": v.canary_version},
        "stable": {"version": v.stable_version},
        "interval": v.interval,
    });
    let message = |e: minijinja::Error| {
        let mut m = e.kind().to_string();
        if let Some(d) = e.detail() {
            m = format!("{m}: {d}");
        }
        m
    };
    let tmpl = env.template_from_str(template).map_err(message)?;
    // Name the variable a strict render would only call "undefined".
    let known = [
        "plan",
        "environment",
        "service",
        "namespace",
        "workload",
        "canary",
        "canary.version",
        "stable",
        "stable.version",
        "interval",
    ];
    let mut unknown: Vec<String> = tmpl
        .undeclared_variables(true)
        .into_iter()
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        return Err(format!(
            "`{first}` is not a variable a query can use{}",
            if unknown.len() > 1 {
                format!(" (nor {})", unknown.get(1..).unwrap_or_default().join(", "))
            } else {
                String::new()
            }
        ));
    }
    tmpl.render(minijinja::value::Serde(&ctx)).map_err(message)
}

/// Whether `expr` (an Argo-style condition over `result`) holds for `value`. `&&`, `||` and
/// `!` are read as `and`, `or` and `not`.
pub fn condition_holds(expr: &str, value: f64) -> std::result::Result<bool, String> {
    let env = minijinja::Environment::new();
    let jinja = jinja_condition(expr);
    let e = env
        .compile_expression(&jinja)
        .map_err(|e| e.detail().unwrap_or("not an expression").to_string())?;
    let v = e
        .eval(minijinja::context! { result => value })
        .map_err(|e| {
            e.detail()
                .map_or_else(|| e.kind().to_string(), str::to_string)
        })?;
    Ok(v.is_true())
}

fn jinja_condition(expr: &str) -> String {
    let mut out = expr.replace("&&", " and ").replace("||", " or ");
    // `!x` but not `!=`.
    let mut fixed = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '!' && chars.peek() != Some(&'=') {
            fixed.push_str(" not ");
        } else {
            fixed.push(c);
        }
    }
    out = fixed;
    out
}

/// A duration as Prometheus and Argo Rollouts write it: digits and a unit (`30s`, `5m`, `1h`).
pub fn is_duration(s: &str) -> bool {
    let digits = s.trim_end_matches(['s', 'm', 'h']);
    !digits.is_empty() && digits.len() + 1 == s.len() && digits.chars().all(|c| c.is_ascii_digit())
}

/// A Go duration (`time.ParseDuration`, what Argo Rollouts reads a pause with): one or more
/// decimal numbers, each with a unit `ns`, `us`/`µs`, `ms`, `s`, `m` or `h` (`1h2m3s`, `500ms`,
/// `1.5h`), or a bare `0`; in milliseconds, rounded up. A sign is refused (a pause never runs
/// backwards).
pub fn go_duration_millis(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut nanos: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole.checked_mul(scale)?;
        let mut place = scale;
        for digit in fraction.chars() {
            place /= 10;
            part = part.checked_add(u128::from(digit.to_digit(10)?) * place)?;
        }
        nanos = nanos.checked_add(part)?;
        rest = next;
    }
    u64::try_from(nanos.div_ceil(1_000_000)).ok()
}

fn number(n: &Option<Node>) -> Option<(Option<f64>, Pos)> {
    let node = n.as_ref()?;
    match &node.kind {
        Kind::Number(x) => Some((x.as_f64(), node.pos)),
        _ => Some((None, node.pos)),
    }
}

/// Checks `analysis:`: durations, the URL, every query renders, every metric has a bound.
pub fn check(source: &Source, d: &mut Diagnostics, a: &Analysis) -> Option<CheckedAnalysis> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    // Every mistake is a diagnostic: the analysis is checked when none was added.
    let before = d.0.len();
    let interval =
        duration(source, d, &a.interval, "analysis.interval").unwrap_or_else(|| "5m".into());
    let initial_delay = duration(source, d, &a.initial_delay, "analysis.initialDelay");
    let starting_step = starting_step(source, d, a);
    let count = whole(source, d, &a.count, "count", 1).unwrap_or(1);
    let failure_limit = whole(source, d, &a.failure_limit, "failureLimit", 0).unwrap_or(0);
    let inconclusive_limit =
        whole(source, d, &a.inconclusive_limit, "inconclusiveLimit", 0).unwrap_or(0);
    let consecutive_error_limit = whole(
        source,
        d,
        &a.consecutive_error_limit,
        "consecutiveErrorLimit",
        0,
    )
    .unwrap_or(4);
    let min_requests = min_requests(source, d, a);
    let allow_partial = allow_partial(source, d, a);
    if let Some(p) = &a.prometheus
        && let Err(why) = crate::endpoint::Endpoint::parse(&p.value)
    {
        d.push(
            err(Pos::of(p), format!("analysis.prometheus: {why}"))
                .hint("e.g. `https://prometheus.istio-system:9090` (credentials go in --prometheus or a token file, not in the plan)"),
        );
    }
    if a.metrics.value.is_empty() {
        d.push(
            err(Pos::of(&a.metrics), "`analysis.metrics` is empty".into())
                .hint("add a metric with a query and a `min` or `max`"),
        );
    }
    let probe = QueryValues {
        plan: "p",
        environment: "e",
        service: "s",
        namespace: "n",
        workload: "w",
        canary_version: "v2",
        stable_version: "v1",
        interval: &interval,
    };
    if let Some(r) = &a.requests
        && let Err(why) = render_query(&r.value, &probe)
    {
        d.push(
            err(
                Pos::of(r),
                format!("the requests query does not render: {why}"),
            )
            .hint(format!("queries may use {VARIABLES}")),
        );
    }
    let metrics: Vec<CheckedMetric> = a
        .metrics
        .value
        .iter()
        .map(|m| check_metric(source, d, m, &probe))
        .collect();
    (d.0.len() == before).then(|| CheckedAnalysis {
        prometheus: a.prometheus.as_ref().map(At::of),
        interval,
        initial_delay,
        starting_step,
        name: a.name.as_ref().map(|n| n.value.clone()),
        count,
        failure_limit,
        inconclusive_limit,
        consecutive_error_limit,
        requests: a.requests.as_ref().map(At::of),
        min_requests,
        allow_partial,
        metrics,
    })
}

/// A duration field (`30s`, `5m`, `1h`), if set.
fn duration(
    source: &Source,
    d: &mut Diagnostics,
    s: &Option<Spanned<String>>,
    field: &str,
) -> Option<String> {
    let s = s.as_ref()?;
    if !is_duration(&s.value) {
        d.push(
            source
                .error(
                    Pos::of(s),
                    format!("{field} `{}` is not a duration", s.value),
                )
                .hint("write digits and a unit: `30s`, `5m`, `1h`"),
        );
    }
    Some(s.value.clone())
}

/// `startingStep`: a step number from 1, as Argo Rollouts counts.
fn starting_step(source: &Source, d: &mut Diagnostics, a: &Analysis) -> Option<u32> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match &a.starting_step {
        None => None,
        Some(n) => match &n.kind {
            Kind::Number(x) if x.as_u64().is_some_and(|v| v >= 1) => x.as_u64().map(|v| v as u32),
            _ => {
                d.push(
                    err(
                        n.pos,
                        "analysis.startingStep is a step number from 1".into(),
                    )
                    .hint("count the steps from 1, as Argo Rollouts does"),
                );
                None
            }
        },
    }
}

/// A count or limit: a whole number from `min` (to 10000), if set.
fn whole(
    source: &Source,
    d: &mut Diagnostics,
    n: &Option<Node>,
    field: &str,
    min: u64,
) -> Option<u32> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let node = n.as_ref()?;
    match &node.kind {
        Kind::Number(x) if x.as_u64().is_some_and(|v| v >= min && v <= 10_000) => {
            x.as_u64().and_then(|v| u32::try_from(v).ok())
        }
        _ => {
            d.push(
                err(
                    node.pos,
                    format!("analysis.{field} is a whole number from {min}"),
                )
                .hint("as Argo Rollouts counts it, e.g. `3`"),
            );
            None
        }
    }
}

/// `minRequests`: a number of requests, set together with the `requests` query.
fn min_requests(source: &Source, d: &mut Diagnostics, a: &Analysis) -> Option<f64> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let min_requests = match number(&a.min_requests) {
        Some((Some(v), _)) if v.is_finite() && v >= 0.0 => Some(v),
        Some((_, pos)) => {
            d.push(
                err(pos, "analysis.minRequests is a number of requests".into())
                    .hint("e.g. `minRequests: 100`"),
            );
            None
        }
        None => None,
    };
    if min_requests.is_some() != a.requests.is_some() {
        let pos = a
            .requests
            .as_ref()
            .map(Pos::of)
            .or(a.min_requests.as_ref().map(|n| n.pos))
            .unwrap_or_default();
        d.push(
            err(pos, "analysis.requests and analysis.minRequests go together".into())
                .hint("`requests:` counts the canary's requests in the window, `minRequests:` is the fewest a sample needs"),
        );
    }
    min_requests
}

/// `allowPartial`: true or false (default false).
fn allow_partial(source: &Source, d: &mut Diagnostics, a: &Analysis) -> bool {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match &a.allow_partial {
        None => false,
        Some(n) => match &n.kind {
            Kind::Bool(b) => *b,
            _ => {
                d.push(
                    err(n.pos, "analysis.allowPartial is true or false".into())
                        .hint("e.g. `allowPartial: true` for Thanos with a store down"),
                );
                false
            }
        },
    }
}

/// One metric: its query renders, its conditions are expressions, and it has a bound.
fn check_metric(
    source: &Source,
    d: &mut Diagnostics,
    m: &Metric,
    probe: &QueryValues<'_>,
) -> CheckedMetric {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if let Err(why) = render_query(&m.query.value, probe) {
        d.push(
            err(
                Pos::of(&m.query),
                format!(
                    "the query of metric `{}` does not render: {why}",
                    m.name.value
                ),
            )
            .hint(format!("queries may use {VARIABLES}")),
        );
    }
    for c in [&m.success_condition, &m.failure_condition]
        .into_iter()
        .flatten()
    {
        if let Err(why) = condition_holds(&c.value, 0.5) {
            d.push(
                err(
                    Pos::of(c),
                    format!(
                        "the condition `{}` of metric `{}` is not an expression: {why}",
                        c.value, m.name.value
                    ),
                )
                .hint("compare `result`, e.g. `result >= 0.99 && result <= 1`"),
            );
        }
    }
    let (min, max) = (number(&m.min), number(&m.max));
    for (v, field) in [(&min, "min"), (&max, "max")] {
        if let Some((None, pos)) = v {
            d.push(err(*pos, format!("`{field}` is a number")).hint("e.g. `min: 0.99`"));
        }
    }
    if min.is_none()
        && max.is_none()
        && m.success_condition.is_none()
        && m.failure_condition.is_none()
    {
        d.push(
            err(
                Pos::of(&m.name),
                format!(
                    "metric `{}` has neither `min` nor `max` nor a condition",
                    m.name.value
                ),
            )
            .hint("say what value passes, e.g. `min: 0.99` for a success rate"),
        );
    }
    CheckedMetric {
        name: At::of(&m.name),
        query: At::of(&m.query),
        min: min.and_then(|(v, _)| v),
        max: max.and_then(|(v, _)| v),
        success_condition: m.success_condition.as_ref().map(At::of),
        failure_condition: m.failure_condition.as_ref().map(At::of),
    }
}

/// A step's pause: until a person (or a passing gate) promotes, or a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pause {
    Manual,
    For(String),
}

/// The `pause` of a `{weight: N, pause: P}` step entry.
pub fn pause_of(source: &Source, d: &mut Diagnostics, node: &Node) -> Option<At<Pause>> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    let (_, p) = entries.iter().find(|(k, _)| k.value == "pause")?;
    let Kind::String(s) = &p.kind else {
        d.push(
            source
                .error(p.pos, "a step's pause is `manual` or a duration")
                .hint("e.g. `pause: 20s`"),
        );
        return None;
    };
    if s == "manual" {
        return Some(At {
            value: Pause::Manual,
            pos: p.pos,
        });
    }
    if go_duration_millis(s).is_none() {
        d.push(
            source
                .error(p.pos, format!("pause `{s}` is not a duration"))
                .hint("write `manual`, or a duration as Argo Rollouts reads it: `30s`, `5m`, `2m30s`, `1h2m3s`, `500ms`"),
        );
        return None;
    }
    Some(At {
        value: Pause::For(s.clone()),
        pos: p.pos,
    })
}

/// Seconds in a duration `is_duration` accepts.
pub fn seconds(s: &str) -> Option<u64> {
    if !is_duration(s) {
        return None;
    }
    let (digits, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(match unit {
        "s" => 1,
        "m" => 60,
        _ => 3600,
    })
}

/// Adds to an exported Argo Rollouts metric what the gate holds it to beyond min/max: the
/// conditions (`result` becomes Argo's `result[0]`), `count` and the limits.
pub fn export_metric(a: &CheckedAnalysis, m: &CheckedMetric, metric: &mut serde_json::Value) {
    let Some(o) = metric.as_object_mut() else {
        return;
    };
    let argo = |c: &str| {
        let mut out = String::new();
        let mut rest = c;
        while let Some(i) = rest.find("result") {
            let (before, after) = rest.split_at(i);
            out.push_str(before);
            out.push_str("result");
            rest = after.get("result".len()..).unwrap_or_default();
            if !rest.starts_with('[') {
                out.push_str("[0]");
            }
        }
        out.push_str(rest);
        out
    };
    if let Some(s) = &m.success_condition {
        let old = o
            .get("successCondition")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let new = if old.is_empty() {
            argo(&s.value)
        } else {
            format!("{old} && ({})", argo(&s.value))
        };
        o.insert("successCondition".into(), json!(new));
    }
    if let Some(f) = &m.failure_condition {
        o.insert("failureCondition".into(), json!(argo(&f.value)));
    }
    if a.count > 1 {
        o.insert("count".into(), json!(a.count));
    }
    // Argo Rollouts' defaults are the gate's: only what differs is written.
    for (field, value, default) in [
        ("failureLimit", a.failure_limit, 0),
        ("inconclusiveLimit", a.inconclusive_limit, 0),
        ("consecutiveErrorLimit", a.consecutive_error_limit, 4),
    ] {
        if value != default {
            o.insert(field.into(), json!(value));
        }
    }
}

/// What an exported AnalysisTemplate cannot carry of the analysis.
pub fn export_notes(a: &CheckedAnalysis) -> Vec<String> {
    let mut notes = Vec::new();
    if a.requests.is_some() {
        notes.push("analysis.requests/minRequests (Argo Rollouts has no traffic floor: add it to each metric's successCondition, or a metric whose failure is inconclusive)".into());
    }
    if a.allow_partial {
        notes.push(
            "analysis.allowPartial (Argo Rollouts reads Prometheus warnings its own way)".into(),
        );
    }
    notes
}

/// A time left, rounded up to the minute from 5 minutes on (never "0m left" before it is).
pub fn human_left(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    human(Duration::from_secs(if s >= 300 {
        s.div_ceil(60) * 60
    } else {
        s
    }))
}

/// `1h20m`, `45s`: a duration for a person (whole minutes from 5 minutes on).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let s = if s >= 300 { s - s % 60 } else { s };
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn values(namespace: &str) -> QueryValues<'_> {
        QueryValues {
            plan: "p",
            environment: "production",
            service: "svc",
            namespace,
            workload: "w",
            canary_version: "v2",
            stable_version: "v1",
            interval: "5m",
        }
    }

    #[test]
    fn values_land_inside_their_string_escaped() {
        let q = "up{namespace=\"{{ namespace }}\"}";
        assert_eq!(
            render_query(q, &values("a\"}) or vector(1) #\\")).unwrap(),
            "up{namespace=\"a\\\"}) or vector(1) #\\\\\"}"
        );
        // The filter is the same escape, not a second one.
        assert_eq!(
            render_query("{{ namespace|promql_string }}", &values("a\"b")).unwrap(),
            "a\\\"b"
        );
        assert_eq!(promql_string("x\ny\u{1b}"), "x\\ny\\u001b");
    }

    #[test]
    fn an_unknown_variable_is_named() {
        let e = render_query("{{ canary.tag }} {{ nope }}", &values("n")).unwrap_err();
        assert_eq!(
            e,
            "`canary.tag` is not a variable a query can use (nor nope)"
        );
    }

    #[test]
    fn exported_metrics_keep_conditions_and_limits() {
        let at = |s: &str| At {
            value: s.to_string(),
            pos: Pos::default(),
        };
        let m = CheckedMetric {
            name: at("m"),
            query: at("q"),
            min: Some(0.9),
            max: None,
            success_condition: Some(at("result <= 1")),
            failure_condition: Some(at("result < 0.5 || result[0] > 2")),
        };
        let a = CheckedAnalysis {
            prometheus: None,
            interval: "1m".into(),
            initial_delay: None,
            starting_step: None,
            name: None,
            count: 3,
            failure_limit: 1,
            inconclusive_limit: 0,
            consecutive_error_limit: 4,
            requests: None,
            min_requests: None,
            allow_partial: false,
            metrics: Vec::new(),
        };
        let mut metric = json!({"successCondition": "result[0] >= 0.9"});
        export_metric(&a, &m, &mut metric);
        assert_eq!(
            metric,
            json!({
                "successCondition": "result[0] >= 0.9 && (result[0] <= 1)",
                "failureCondition": "result[0] < 0.5 || result[0] > 2",
                "count": 3,
                "failureLimit": 1,
            })
        );
    }

    #[test]
    fn conditions_read_argo_and_jinja_alike() {
        assert!(condition_holds("result >= 0.99 && result <= 1", 0.995).unwrap());
        assert!(!condition_holds("result >= 0.99 and result <= 1", 1.5).unwrap());
        assert!(condition_holds("!(result > 1) || result == 5", 5.0).unwrap());
        assert!(condition_holds("result != 1", 2.0).unwrap());
        assert!(condition_holds("result >=", 1.0).is_err());
    }

    #[test]
    fn pauses_read_every_go_duration_argo_accepts() {
        for (text, ms) in [
            ("30s", 30_000),
            ("2m30s", 150_000),
            ("1h2m3s", 3_723_000),
            ("500ms", 500),
            ("1.5h", 5_400_000),
            ("0", 0),
            ("1m0.5s", 60_500),
            ("1500us", 2),
            (".5s", 500),
        ] {
            assert_eq!(go_duration_millis(text), Some(ms), "{text}");
        }
        for bad in ["", "5", "5x", "-1s", "1..5s", "s", "1h 2m", "manual"] {
            assert_eq!(go_duration_millis(bad), None, "{bad}");
        }
    }
}
