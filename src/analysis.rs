//! `analysis:`: Prometheus queries that must hold before the next weight (`canaryplan gate`,
//! `promote --gate`), also handed to controllers by `export` as an AnalysisTemplate; and the
//! pauses of `steps` entries written as `{weight: N, pause: 20s}`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use crate::check::At;
use crate::error::Diagnostics;
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
    /// The metrics; each must hold.
    #[schemars(with = "Vec<Metric>")]
    pub metrics: Spanned<Vec<Metric>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
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
}

/// A checked metric.
#[derive(Debug, Clone)]
pub struct CheckedMetric {
    pub name: At<String>,
    pub query: At<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct CheckedAnalysis {
    pub prometheus: Option<At<String>>,
    pub interval: String,
    pub initial_delay: Option<String>,
    pub starting_step: Option<u32>,
    pub name: Option<String>,
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

/// Renders a query template; an unknown variable or a syntax error is an error message.
pub fn render_query(template: &str, v: &QueryValues<'_>) -> std::result::Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(100_000));
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
    env.render_str(template, minijinja::value::Serde(&ctx))
        .map_err(|e| {
            let mut m = e.kind().to_string();
            if let Some(d) = e.detail() {
                m = format!("{m}: {d}");
            }
            m
        })
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
    let mut ok = true;
    let mut duration = |s: &Option<Spanned<String>>, field: &str, d: &mut Diagnostics| {
        let s = s.as_ref()?;
        if !is_duration(&s.value) {
            ok = false;
            d.push(
                err(
                    Pos::of(s),
                    format!("{field} `{}` is not a duration", s.value),
                )
                .hint("write digits and a unit: `30s`, `5m`, `1h`"),
            );
        }
        Some(s.value.clone())
    };
    let interval = duration(&a.interval, "analysis.interval", d).unwrap_or_else(|| "5m".into());
    let initial_delay = duration(&a.initial_delay, "analysis.initialDelay", d);
    let starting_step = match &a.starting_step {
        None => None,
        Some(n) => match &n.kind {
            Kind::Number(x) if x.as_u64().is_some_and(|v| v >= 1) => x.as_u64().map(|v| v as u32),
            _ => {
                ok = false;
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
    };
    if let Some(p) = &a.prometheus
        && !(p.value.starts_with("http://") || p.value.starts_with("https://"))
    {
        ok = false;
        d.push(
            err(Pos::of(p), format!("`{}` is not an http(s) URL", p.value))
                .hint("e.g. `http://prometheus.istio-system:9090`"),
        );
    }
    if a.metrics.value.is_empty() {
        ok = false;
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
    let mut metrics = Vec::new();
    for m in &a.metrics.value {
        if let Err(why) = render_query(&m.query.value, &probe) {
            ok = false;
            d.push(
                err(Pos::of(&m.query), format!("the query of metric `{}` does not render: {why}", m.name.value))
                    .hint("queries may use service, namespace, workload, canary.version, stable.version, interval, environment and plan"),
            );
        }
        let (min, max) = (number(&m.min), number(&m.max));
        for (v, field) in [(&min, "min"), (&max, "max")] {
            if let Some((None, pos)) = v {
                ok = false;
                d.push(err(*pos, format!("`{field}` is a number")).hint("e.g. `min: 0.99`"));
            }
        }
        if min.is_none() && max.is_none() {
            ok = false;
            d.push(
                err(
                    Pos::of(&m.name),
                    format!("metric `{}` has neither `min` nor `max`", m.name.value),
                )
                .hint("say what value passes, e.g. `min: 0.99` for a success rate"),
            );
        }
        metrics.push(CheckedMetric {
            name: At::of(&m.name),
            query: At::of(&m.query),
            min: min.and_then(|(v, _)| v),
            max: max.and_then(|(v, _)| v),
        });
    }
    ok.then(|| CheckedAnalysis {
        prometheus: a.prometheus.as_ref().map(At::of),
        interval,
        initial_delay,
        starting_step,
        name: a.name.as_ref().map(|n| n.value.clone()),
        metrics,
    })
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

#[cfg(test)]
mod tests {
    use super::go_duration_millis;

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
