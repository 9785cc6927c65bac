//! `canaryplan gate`: every `analysis.metrics` query against the Prometheus HTTP API
//! (`/api/v1/query`), sampled `count` times, each value held to its bounds and conditions, with
//! Argo Rollouts' limits: a metric fails after more than `failureLimit` failed samples or more
//! than `consecutiveErrorLimit` errors in a row; no data, too little traffic or a partial answer
//! is inconclusive. Every metric is measured even when another errs, so a failure is never
//! hidden behind an error. The transport (auth, TLS, redirects, limits) is `gate/http.rs`.

mod http;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

pub use crate::analysis::{human, human_left};
pub use crate::endpoint::Endpoint;
pub use crate::names::clean;
pub use http::Access;

use crate::analysis::{self, CheckedAnalysis, CheckedMetric};
use crate::error::{Diagnostic, Result};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};

/// How long a gate run may wait for Prometheus beyond the time its samples are spaced over.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What one sample, one metric or the whole gate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Neither pass nor fail: no data, too little traffic, a partial answer, a value in the
    /// band between `successCondition` and `failureCondition`.
    Inconclusive,
    /// No measurement: Prometheus did not answer, or answered with an error.
    Error,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// When it measured (Unix seconds).
    pub time: f64,
    pub value: Option<f64>,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    /// Where the metric's query is written (`file:line:column`).
    pub at: String,
    /// The query as sent.
    pub query: String,
    /// The last measured value; `None`: no sample measured one.
    pub value: Option<f64>,
    /// `>= 0.99`, `<= 500`, a condition, or several joined by `and`.
    pub bound: String,
    pub result: Outcome,
    pub pass: bool,
    /// Why the metric ended where it did (the deciding sample's note, the counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The server, without credentials.
    pub prometheus: String,
    pub verdict: Outcome,
    /// How the samples were spread, e.g. `3 samples over the 20m pause since the weight was set`.
    pub sampling: String,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.verdict == Outcome::Pass
    }
}

/// How a gate run reaches Prometheus and spreads its samples.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--prometheus` (or `$CANARYPLAN_PROMETHEUS_URL`): overrides the plan's URL.
    pub prometheus: Option<String>,
    pub access: Access,
    /// One sample now, whatever `count` says (for schedulers that run the gate repeatedly).
    pub once: bool,
    /// The deadline beyond the sampling time; `None`: [`DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// When the current weight was set (Unix seconds, from git): samples are spread over the
    /// time since, so they span the step's pause.
    pub since: Option<i64>,
}

/// A sample about to be taken, for a progress line.
pub struct Progress {
    pub sample: u32,
    pub of: u32,
    /// How long until it is taken.
    pub wait: Duration,
}

/// Runs every metric of the plan's analysis for environment `env`.
pub fn run(
    plan: &CheckedPlan,
    env: &EnvironmentPlan,
    opts: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report> {
    let Some(a) = &plan.analysis else {
        return Err(
            Diagnostic::new("the plan has no `analysis`: there is nothing to gate on")
                .in_file(&plan.path)
                .hint("add `analysis: {prometheus: ..., metrics: [{name, query, min}]}` under spec")
                .into(),
        );
    };
    let endpoint = endpoint(plan, a, opts)?;
    let namespace = namespace(plan, env)?;
    crate::kinds::canary::analysis::check_environment(plan, env, Some(&namespace))?;
    let values = crate::kinds::canary::analysis::values(plan, env, &a.interval, &namespace);
    let render = |q: &crate::yaml::At<String>, what: String| {
        analysis::render_query(&q.value, &values)
            .map_err(|why| plan.diag(q.pos, format!("{what} does not render: {why}")))
    };
    let requests = a
        .requests
        .as_ref()
        .map(|r| render(r, "the requests query".into()))
        .transpose()?;
    let queries = a
        .metrics
        .iter()
        .map(|m| render(&m.query, format!("the query of metric `{}`", m.name.value)))
        .collect::<std::result::Result<Vec<_>, _>>()?;

    // When to sample: over the pause since the weight was set when git says when that was,
    // else live, `interval` apart.
    let now = unix_now();
    let count = if opts.once { 1 } else { a.count.max(1) };
    let interval = analysis::seconds(&a.interval).unwrap_or(300);
    let timeout = opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let (times, sampling) = schedule(count, opts.since, now, &a.interval);
    let live = times.first().is_some_and(Option::is_none) && count > 1;
    let spread = if live {
        Duration::from_secs(interval * u64::from(count - 1))
    } else {
        Duration::ZERO
    };
    let started = Instant::now();
    let deadline = started + spread + timeout;
    let client = http::Client::new(endpoint, &opts.access, deadline, timeout)
        .map_err(|why| Diagnostic::new(why).hint("check --ca-file, --header and the token file"))?;

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); a.metrics.len()];
    for (i, at) in (0u32..).zip(&times) {
        if live {
            let due = started + Duration::from_secs(interval * u64::from(i));
            let wait = due.saturating_duration_since(Instant::now());
            progress(&Progress {
                sample: i + 1,
                of: count,
                wait,
            });
            std::thread::sleep(wait);
        } else if count > 1 {
            progress(&Progress {
                sample: i + 1,
                of: count,
                wait: Duration::ZERO,
            });
        }
        let time = at.unwrap_or_else(unix_now);
        let mut params = vec![("partial_response", a.allow_partial.to_string())];
        if let Some(t) = at {
            params.push(("time", format!("{t:.3}")));
        }
        // Too little traffic makes every metric of this sample inconclusive.
        let quiet = requests.as_ref().map(|q| traffic(&client, q, &params, a));
        for ((m, query), out) in a.metrics.iter().zip(&queries).zip(samples.iter_mut()) {
            let sample = match &quiet {
                Some(Err((outcome, why))) => Sample {
                    time,
                    value: None,
                    result: *outcome,
                    note: Some(why.clone()),
                },
                _ => measure(&client, m, query, &params, a, time),
            };
            out.push(sample);
        }
    }
    let rows = judge_all(plan, a, queries, samples);
    let verdict = [Outcome::Fail, Outcome::Error, Outcome::Inconclusive]
        .into_iter()
        .find(|o| rows.iter().any(|r| r.result == *o))
        .unwrap_or(Outcome::Pass);
    Ok(Report {
        prometheus: client.shown(),
        verdict,
        sampling,
        rows,
    })
}

/// When to take `count` samples, and that in words: spread over the time since the weight
/// was set (`since`, from git) up to `now`, else live, `interval` apart (`None`: now).
fn schedule(
    count: u32,
    since: Option<i64>,
    now: f64,
    interval: &str,
) -> (Vec<Option<f64>>, String) {
    match since {
        Some(since) if count > 1 && (since as f64) < now => {
            let span = now - since as f64;
            let times = (1..=count)
                .map(|i| Some(since as f64 + span * f64::from(i) / f64::from(count)))
                .collect();
            (
                times,
                format!(
                    "{count} samples over the {} since the current weight was set",
                    human(Duration::from_secs_f64(span))
                ),
            )
        }
        _ if count > 1 => (
            vec![None; count as usize],
            format!("{count} samples, {interval} apart"),
        ),
        _ => (vec![None], "one sample, now".into()),
    }
}

/// Each metric's samples judged against its bounds, a row per metric located at its query.
fn judge_all(
    plan: &CheckedPlan,
    a: &CheckedAnalysis,
    queries: Vec<String>,
    samples: Vec<Vec<Sample>>,
) -> Vec<Row> {
    a.metrics
        .iter()
        .zip(queries)
        .zip(samples)
        .map(|((m, query), samples)| {
            let at = plan
                .diag(m.query.pos, "")
                .location
                .map(|l| l.to_string())
                .unwrap_or_default();
            judge(m, a, query, samples, at)
        })
        .collect()
}

/// The server: `--prometheus`/`$CANARYPLAN_PROMETHEUS_URL`, else the plan's.
fn endpoint(plan: &CheckedPlan, a: &CheckedAnalysis, opts: &Options) -> Result<Endpoint> {
    if let Some(u) = opts.prometheus.as_ref().filter(|u| !u.is_empty()) {
        return Endpoint::parse(u).map_err(|why| {
            Diagnostic::new(format!(
                "--prometheus (or ${}): {why}",
                analysis::PROMETHEUS_ENV
            ))
            .hint("e.g. `https://user:password@prometheus.example:9090/prometheus`")
            .into()
        });
    }
    match &a.prometheus {
        Some(p) => Endpoint::parse(&p.value).map_err(|why| {
            plan.diag(p.pos, format!("analysis.prometheus: {why}"))
                .hint("e.g. `http://prometheus.istio-system:9090`")
                .into()
        }),
        None => Err(Diagnostic::new("the plan names no Prometheus server")
            .in_file(&plan.path)
            .hint(format!(
                "set `analysis.prometheus: http://prometheus.istio-system:9090`, --prometheus or ${}",
                analysis::PROMETHEUS_ENV
            ))
            .into()),
    }
}

/// The namespace queries see: the one the environment's base gives the Service.
fn namespace(plan: &CheckedPlan, env: &EnvironmentPlan) -> Result<String> {
    let base = crate::base::load(&plan.dir.join(&env.base.value), &plan.root)?;
    Ok(base
        .find("Service", &plan.service.value)
        .and_then(|s| s.namespace().map(str::to_string))
        .unwrap_or_else(|| "default".to_string()))
}

/// The request count of one sample: `Ok` when there was enough traffic to judge, else the
/// outcome every metric of the sample takes and why.
fn traffic(
    client: &http::Client,
    query: &str,
    params: &[(&str, String)],
    a: &CheckedAnalysis,
) -> std::result::Result<f64, (Outcome, String)> {
    let min = a.min_requests.unwrap_or(0.0);
    let mut p = params.to_vec();
    p.push(("query", query.to_string()));
    let (body, _) = client
        .query(&p)
        .map_err(|why| (Outcome::Error, format!("the requests query: {why}")))?;
    let answer = read_answer(&body).map_err(|why| {
        (
            Outcome::Error,
            format!("the requests query: {}", client.clean(&why)),
        )
    })?;
    let n = answer.value.filter(|v| v.is_finite()).unwrap_or(0.0);
    if n < min {
        return Err((
            Outcome::Inconclusive,
            format!("too little traffic: {n} requests, minRequests {min}"),
        ));
    }
    Ok(n)
}

/// One sample of one metric.
fn measure(
    client: &http::Client,
    m: &CheckedMetric,
    query: &str,
    params: &[(&str, String)],
    a: &CheckedAnalysis,
    time: f64,
) -> Sample {
    let sample = |value: Option<f64>, result: Outcome, note: Option<String>| Sample {
        time,
        value,
        result,
        note,
    };
    let mut p = params.to_vec();
    p.push(("query", query.to_string()));
    let body = match client.query(&p) {
        Ok((body, _)) => body,
        Err(why) => {
            return sample(
                None,
                Outcome::Error,
                Some(format!(
                    "Prometheus at {} did not answer: {why}",
                    client.shown()
                )),
            );
        }
    };
    let answer = match read_answer(&body) {
        Ok(a) => a,
        Err(why) => {
            return sample(
                None,
                Outcome::Error,
                Some(format!("Prometheus answered with {}", client.clean(&why))),
            );
        }
    };
    if !answer.warnings.is_empty() && !a.allow_partial {
        return sample(
            answer.value,
            Outcome::Inconclusive,
            Some(format!(
                "a partial answer (warnings: {}); set `allowPartial: true` to accept it",
                client.clean(&answer.warnings.join("; "))
            )),
        );
    }
    let Some(v) = answer.value else {
        return sample(
            None,
            Outcome::Inconclusive,
            Some("no data: the query returned no series".into()),
        );
    };
    if v.is_nan() {
        return sample(
            None,
            Outcome::Inconclusive,
            Some("no data: the value is NaN (a ratio of nothing?)".into()),
        );
    }
    if v.is_infinite() {
        return sample(
            Some(v),
            Outcome::Fail,
            Some(format!("{v} is not a measurement (a division by zero?)")),
        );
    }
    match verdict(m, v) {
        Ok((outcome, note)) => sample(Some(v), outcome, note),
        Err(why) => sample(Some(v), Outcome::Error, Some(why)),
    }
}

/// A finite value held to the metric's bounds and conditions.
fn verdict(m: &CheckedMetric, v: f64) -> std::result::Result<(Outcome, Option<String>), String> {
    let cond = |c: &crate::yaml::At<String>| {
        analysis::condition_holds(&c.value, v)
            .map_err(|why| format!("the condition `{}` cannot be evaluated: {why}", c.value))
    };
    if let Some(f) = &m.failure_condition
        && cond(f)?
    {
        return Ok((
            Outcome::Fail,
            Some(format!("failureCondition `{}` holds", f.value)),
        ));
    }
    if !(m.min.is_none_or(|x| v >= x) && m.max.is_none_or(|x| v <= x)) {
        return Ok((Outcome::Fail, None));
    }
    match (&m.success_condition, &m.failure_condition) {
        (Some(s), _) if cond(s)? => Ok((Outcome::Pass, None)),
        (Some(s), Some(_)) => Ok((
            Outcome::Inconclusive,
            Some(format!(
                "neither successCondition `{}` nor failureCondition holds",
                s.value
            )),
        )),
        (Some(s), None) => Ok((
            Outcome::Fail,
            Some(format!("successCondition `{}` does not hold", s.value)),
        )),
        (None, _) => Ok((Outcome::Pass, None)),
    }
}

/// A metric's result from its samples, as Argo Rollouts counts.
fn judge(
    m: &CheckedMetric,
    a: &CheckedAnalysis,
    query: String,
    samples: Vec<Sample>,
    at: String,
) -> Row {
    let n = |o: Outcome| {
        u32::try_from(samples.iter().filter(|s| s.result == o).count()).unwrap_or(u32::MAX)
    };
    let (passed, failed, inconclusive, errors) = (
        n(Outcome::Pass),
        n(Outcome::Fail),
        n(Outcome::Inconclusive),
        n(Outcome::Error),
    );
    let mut run = 0u32;
    let mut longest = 0u32;
    for s in &samples {
        run = if s.result == Outcome::Error {
            run + 1
        } else {
            0
        };
        longest = longest.max(run);
    }
    let last_note = |o: Outcome| {
        samples
            .iter()
            .rev()
            .find(|s| s.result == o)
            .and_then(|s| s.note.clone())
    };
    let (result, why) = if failed > a.failure_limit {
        (Outcome::Fail, last_note(Outcome::Fail))
    } else if longest > a.consecutive_error_limit {
        (
            Outcome::Fail,
            Some(format!(
                "{longest} errors in a row (consecutiveErrorLimit {}): {}",
                a.consecutive_error_limit,
                last_note(Outcome::Error).unwrap_or_default()
            )),
        )
    } else if inconclusive > a.inconclusive_limit
        || (passed + failed == 0 && inconclusive > 0 && errors == 0)
    {
        (Outcome::Inconclusive, last_note(Outcome::Inconclusive))
    } else if passed + failed == 0 {
        (Outcome::Error, last_note(Outcome::Error))
    } else {
        (Outcome::Pass, None)
    };
    let counts = (samples.len() > 1).then(|| {
        format!(
            "{passed} pass, {failed} fail, {inconclusive} inconclusive, {errors} error of {}",
            samples.len()
        )
    });
    let note = match (why, counts) {
        (Some(w), Some(c)) => Some(format!("{w}; {c}")),
        (w, c) => w.or(c),
    };
    let mut bound = Vec::new();
    if let Some(min) = m.min {
        bound.push(format!(">= {min}"));
    }
    if let Some(max) = m.max {
        bound.push(format!("<= {max}"));
    }
    if let Some(s) = &m.success_condition {
        bound.push(s.value.clone());
    }
    if let Some(f) = &m.failure_condition {
        bound.push(format!("not ({})", f.value));
    }
    Row {
        metric: m.name.value.clone(),
        at,
        query,
        value: samples.iter().rev().find_map(|s| s.value),
        bound: bound.join(" and "),
        result,
        pass: result == Outcome::Pass,
        note,
        samples,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// A query answer: the one number it holds (`None`: an empty vector) and Prometheus's or
/// Thanos's warnings.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub value: Option<f64>,
    pub warnings: Vec<String>,
}

fn read_answer(body: &str) -> std::result::Result<Answer, String> {
    let value = value_of(body)?;
    let warnings = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("warnings").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_string))
        .collect();
    Ok(Answer { value, warnings })
}

/// The one number a query response holds: `Ok(None)` for an empty vector, an error message for
/// a Prometheus error or a result that is not one number.
fn value_of(body: &str) -> std::result::Result<Option<f64>, String> {
    if body.trim().is_empty() {
        return Err("an empty answer".into());
    }
    let v: Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "an answer that is not JSON ({e}): `{}`",
            body.chars().take(120).collect::<String>()
        )
    })?;
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

/// Measures the gate of environment `env` of the CanaryPlan at `path`.
pub fn measure_plan(
    path: &std::path::Path,
    env: &str,
    opts: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report> {
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
    let mut opts = opts.clone();
    opts.since = crate::kinds::canary::soak::since(&plan, env, crate::kinds::canary::soak::now());
    run(&plan, e, &opts, progress)
}

/// `promote --gate` checks the step's pause before it measures (a pause refuses without a
/// query); the edit checks it again under the plan's lock.
pub fn pause_passed(
    path: &std::path::Path,
    env: &str,
    action: &crate::kinds::Action,
) -> Result<()> {
    let plan = crate::kinds::canary::check::load(path)?;
    crate::kinds::canary::edit::soaked(&plan, env, action).map(|_| ())
}

impl Outcome {
    /// The exit code of a verdict: 0 pass, 1 fail, 2 error, 3 inconclusive.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Error => 2,
            Outcome::Inconclusive => 3,
        }
    }
}

impl Report {
    /// The table, for a terminal; with `verbose` each query and sample too.
    pub fn to_table(&self, verbose: bool) -> String {
        let mut t = format!("prometheus: {}  ({})\n", self.prometheus, self.sampling);
        let width = |f: fn(&Row) -> usize, min: usize| {
            self.rows.iter().map(f).max().unwrap_or(min).max(min)
        };
        let w = width(|x| x.metric.chars().count(), 6);
        let bw = width(|x| x.bound.chars().count(), 5).min(40);
        t.push_str(&format!(
            "  {:<w$}  {:>12}  {:<bw$}  result\n",
            "metric", "value", "bound"
        ));
        let value = |v: Option<f64>| {
            v.map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "no data".into())
        };
        for row in &self.rows {
            let mut line = format!(
                "  {:<w$}  {:>12}  {:<bw$}  {}",
                row.metric,
                value(row.value),
                row.bound,
                row.result.word()
            );
            if let Some(n) = &row.note {
                line.push_str(&format!("  ({n})"));
            }
            if row.result == Outcome::Error {
                line.push_str(&format!("  [query at {}]", row.at));
            }
            t.push_str(&line);
            t.push('\n');
            if verbose {
                t.push_str(&format!(
                    "      query: {}\n",
                    row.query.trim().replace('\n', "\n             ")
                ));
                for s in &row.samples {
                    t.push_str(&format!(
                        "      sample @{:.0}: {} {}{}\n",
                        s.time,
                        value(s.value),
                        s.result.word(),
                        s.note
                            .as_ref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        t.push_str(&format!("verdict: {}\n", self.verdict.word()));
        t
    }

    /// The report for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "passed": self.passed(),
            "verdict": self.verdict,
            "prometheus": self.prometheus,
            "sampling": self.sampling,
            "metrics": self.rows,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::yaml::At;
    use crate::yaml::Pos;

    fn at(s: &str) -> At<String> {
        At {
            value: s.to_string(),
            pos: Pos::default(),
        }
    }

    fn analysis(failure_limit: u32, inconclusive_limit: u32, errors: u32) -> CheckedAnalysis {
        CheckedAnalysis {
            prometheus: None,
            interval: "5m".into(),
            initial_delay: None,
            starting_step: None,
            name: None,
            count: 5,
            failure_limit,
            inconclusive_limit,
            consecutive_error_limit: errors,
            requests: None,
            min_requests: None,
            allow_partial: false,
            metrics: Vec::new(),
        }
    }

    fn metric() -> CheckedMetric {
        CheckedMetric {
            name: at("m"),
            query: at("q"),
            min: Some(0.99),
            max: None,
            success_condition: None,
            failure_condition: None,
        }
    }

    fn samples(outcomes: &[Outcome]) -> Vec<Sample> {
        outcomes
            .iter()
            .map(|o| Sample {
                time: 0.0,
                value: Some(1.0),
                result: *o,
                note: None,
            })
            .collect()
    }

    #[test]
    fn metrics_are_judged_as_argo_rollouts_counts() {
        use Outcome::{Error as E, Fail as F, Inconclusive as I, Pass as P};
        let judged = |a: CheckedAnalysis, o: &[Outcome]| {
            judge(&metric(), &a, "q".into(), samples(o), String::new()).result
        };
        assert_eq!(judged(analysis(0, 0, 4), &[P, P, P]), P);
        assert_eq!(judged(analysis(0, 0, 4), &[P, F, P]), F);
        assert_eq!(judged(analysis(1, 0, 4), &[P, F, P]), P);
        assert_eq!(judged(analysis(1, 0, 4), &[F, F, P]), F);
        // A failure outweighs an inconclusive or an error.
        assert_eq!(judged(analysis(0, 0, 4), &[I, E, F]), F);
        assert_eq!(judged(analysis(0, 0, 4), &[P, I, P]), I);
        assert_eq!(judged(analysis(0, 1, 4), &[P, I, P]), P);
        // Nothing measured but inconclusive: inconclusive, whatever the limit.
        assert_eq!(judged(analysis(0, 5, 4), &[I, I]), I);
        // Errors: more than the limit in a row fail; fewer, with a pass, pass; only errors err.
        assert_eq!(judged(analysis(0, 0, 4), &[E, E, E, E, E]), F);
        assert_eq!(judged(analysis(0, 0, 4), &[E, E, E, E, P]), P);
        assert_eq!(judged(analysis(0, 0, 4), &[E]), E);
    }

    #[test]
    fn durations_read_as_a_person_would() {
        let d = Duration::from_secs;
        assert_eq!(human(d(90)), "1m30s");
        assert_eq!(human(d(601)), "10m");
        assert_eq!(human(d(3 * 3600 + 61)), "3h1m");
        assert_eq!(human_left(d(599)), "10m");
        assert_eq!(human_left(d(45)), "45s");
    }

    #[test]
    fn bounds_and_conditions_decide_a_value() {
        let mut m = metric();
        assert_eq!(verdict(&m, 0.995).unwrap().0, Outcome::Pass);
        assert_eq!(verdict(&m, 0.98).unwrap().0, Outcome::Fail);
        m.success_condition = Some(at("result >= 0.999"));
        assert_eq!(verdict(&m, 0.995).unwrap().0, Outcome::Fail);
        m.failure_condition = Some(at("result < 0.99"));
        assert_eq!(verdict(&m, 0.995).unwrap().0, Outcome::Inconclusive);
        assert_eq!(verdict(&m, 0.9995).unwrap().0, Outcome::Pass);
    }

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
