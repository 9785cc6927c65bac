//! A Rollout's analysis as the plan's `analysis:`: the Prometheus metrics of the
//! AnalysisTemplates it runs (found in its folder), their arguments resolved to the plan's
//! query variables or to their values, `result[0] >= N` as bounds. What the plan's gate does
//! not do (counts, failure limits, failure conditions, other providers) is said.

use crate::pointer::Pointer as _;
use serde_json::{Map, Value, json};

use super::Ledger;
use crate::analysis::{go_duration_millis, is_duration};

/// What a query argument stands for in the plan.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A plan variable (`{{ namespace }}`).
    Variable(&'static str),
    /// A value written into the query.
    Literal(String),
}

/// The names the plan's variables have for this Rollout.
pub struct Names<'a> {
    pub service: &'a str,
    pub namespace: Option<&'a str>,
    pub workload: &'a str,
    pub rollout: &'a Value,
}

/// A Rollout argument (`value` or `valueFrom`) as the plan can write it.
fn resolve(arg: &Value, names: &Names<'_>) -> Result<Arg, String> {
    if let Some(v) = arg.get("value").and_then(Value::as_str) {
        return Ok(if v == names.service {
            Arg::Variable("service")
        } else if Some(v) == names.namespace {
            Arg::Variable("namespace")
        } else {
            Arg::Literal(v.to_string())
        });
    }
    let field = arg
        .at("/valueFrom/fieldRef/fieldPath")
        .and_then(Value::as_str);
    match field {
        Some("metadata.namespace") => Ok(Arg::Variable("namespace")),
        Some("metadata.name")
            if names.rollout.at("/metadata/name").and_then(Value::as_str)
                == Some(names.workload) =>
        {
            Ok(Arg::Variable("workload"))
        }
        Some(path) => {
            let label = path
                .strip_prefix("metadata.labels['")
                .or_else(|| path.strip_prefix("metadata.labels[\""))
                .and_then(|l| l.get(..l.len().saturating_sub(2)));
            match label.and_then(|l| {
                names
                    .rollout
                    .at("/metadata/labels")
                    .and_then(|ls| ls.get(l))
                    .and_then(Value::as_str)
            }) {
                Some(v) => Ok(Arg::Literal(v.to_string())),
                None => Err(format!("valueFrom.fieldRef `{path}`")),
            }
        }
        None => match arg.get("valueFrom") {
            Some(from) => Err(format!("valueFrom {from}")),
            None => Err("no value".to_string()),
        },
    }
}

/// The query with each `{{args.X}}` replaced; an argument the plan cannot write is an error.
fn plan_query(query: &str, args: &Map<String, Value>, names: &Names<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = from.find("}}") else {
            return Err("an unclosed `{{`".into());
        };
        let inner = from.get(2..end).unwrap_or_default().trim();
        let Some(name) = inner.strip_prefix("args.") else {
            return Err(format!("`{{{{{inner}}}}}` (not an argument)"));
        };
        let arg = args
            .get(name)
            .ok_or_else(|| format!("the argument `{name}`, which has no value"))?;
        match resolve(arg, names).map_err(|why| format!("the argument `{name}` ({why})"))? {
            Arg::Variable(v) => out.push_str(&format!("{{{{ {v} }}}}")),
            Arg::Literal(v) if ["{{", "{%", "{#", "}}"].iter().any(|t| v.contains(t)) => {
                return Err(format!(
                    "the argument `{name}`, whose value looks like a template"
                ));
            }
            Arg::Literal(v) => out.push_str(&v),
        }
        rest = from.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// `result[0] >= 0.99` → (min, max, whether a bound was strict).
pub fn bounds(cond: &str) -> Option<(Option<f64>, Option<f64>, bool)> {
    let mut min = None;
    let mut max = None;
    let mut strict = false;
    for part in cond.split("&&") {
        let rest = part.trim().strip_prefix("result[0]")?.trim();
        let (op, n) = [">=", "<=", ">", "<"]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|n| (*op, n)))?;
        let n: f64 = n.trim().parse().ok()?;
        strict |= op.len() == 1;
        if op.starts_with('>') {
            min = Some(n);
        } else {
            max = Some(n);
        }
    }
    (min.is_some() || max.is_some()).then_some((min, max, strict))
}

/// A duration as the plan's analysis writes it (digits and one unit).
fn plan_duration(d: &str) -> Option<String> {
    if is_duration(d) {
        return Some(d.to_string());
    }
    let ms = go_duration_millis(d)?;
    (ms % 1000 == 0 && ms > 0).then(|| format!("{}s", ms / 1000))
}

/// Keeps the first value of a setting the plan has once for all metrics; a different one later
/// is dropped.
fn same(
    ledger: &mut Ledger,
    at: &str,
    field: &str,
    slot: &mut Option<String>,
    value: Option<String>,
) {
    match (slot.as_ref(), value) {
        (_, None) => {}
        (None, Some(v)) => *slot = Some(v),
        (Some(s), Some(v)) if *s == v => {}
        (Some(s), Some(v)) => ledger.drop(format!(
            "{at}: {field} {v} (the plan has one {field} for all metrics: {s})"
        )),
    }
}

const METRIC_FIELDS: [&str; 5] = [
    "name",
    "interval",
    "initialDelay",
    "successCondition",
    "provider",
];

/// The plan's `analysis:` from the Rollout's background analysis (or, without one, its first
/// analysis step), with `starting_step` already in the plan's (exported) step index.
pub fn convert(
    background: Option<&Value>,
    inline: &[(usize, Value)],
    starting_step: impl Fn(usize) -> Option<u64>,
    objects: &[Value],
    names: &Names<'_>,
    ledger: &mut Ledger,
) -> Option<Value> {
    let (spec, start) = which_analysis(background, inline, ledger)?;
    for k in ["dryRun", "measurementRetention", "analysisRunMetadata"] {
        if spec.get(k).is_some() {
            ledger.drop(format!("analysis.{k} (the plan's gate has no counterpart)"));
        }
    }
    let mut args: Map<String, Value> = Map::new();
    let mut metrics = Vec::new();
    let mut name = None;
    let mut common = Common::default();
    for t in spec
        .get("templates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(tn) = t.get("templateName").and_then(Value::as_str) else {
            ledger.drop(format!("an analysis template without templateName: {t}"));
            continue;
        };
        let kind = if t.get("clusterScope").and_then(Value::as_bool) == Some(true) {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        let Some(at) = objects.iter().find(|o| {
            o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.at("/metadata/name").and_then(Value::as_str) == Some(tn)
        }) else {
            ledger.drop(format!("the {kind} {tn} (not in the Rollout's folder, or not among its kustomization's resources: put it there and run init again, or write its metrics under `analysis:`)"));
            continue;
        };
        name.get_or_insert_with(|| tn.to_string());
        // The template's defaults, then the Rollout's values.
        merge_args(&mut args, at.at("/spec/args"));
        merge_args(&mut args, spec.get("args"));
        for k in ["dryRun", "measurementRetention"] {
            if at.at(&format!("/spec/{k}")).is_some() {
                ledger.drop(format!(
                    "{kind} {tn}: {k} (the plan's gate has no counterpart)"
                ));
            }
        }
        for m in at
            .at("/spec/metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(metric) = metric(
                m,
                &format!("{kind} {tn}"),
                &args,
                names,
                &mut common,
                ledger,
            ) {
                metrics.push(metric);
            }
        }
    }
    if metrics.is_empty() {
        return None;
    }
    let Common {
        address,
        interval,
        initial_delay,
    } = common;
    let mut out = Map::new();
    if let Some(n) = name {
        out.insert("name".into(), json!(n));
    }
    if let Some(a) = address.filter(|a| !a.is_empty()) {
        out.insert("prometheus".into(), json!(a));
    }
    if let Some(i) = interval {
        out.insert("interval".into(), json!(i));
    }
    if let Some(d) = initial_delay {
        out.insert("initialDelay".into(), json!(d));
    }
    if let Some(s) = start.and_then(starting_step).filter(|s| *s > 0) {
        out.insert("startingStep".into(), json!(s));
    }
    out.insert("metrics".into(), Value::Array(metrics));
    Some(Value::Object(out))
}

/// The analysis the plan carries: the background one (its `startingStep`), else the first
/// analysis step (from its step on); the others are named as dropped.
fn which_analysis<'v>(
    background: Option<&'v Value>,
    inline: &'v [(usize, Value)],
    ledger: &mut Ledger,
) -> Option<(&'v Value, Option<usize>)> {
    match (background, inline.first()) {
        (Some(b), _) => {
            for (i, _) in inline {
                ledger.drop(format!("steps[{i}]: the analysis step (the plan runs one analysis, the Rollout's background one)"));
            }
            let start = b
                .get("startingStep")
                .and_then(Value::as_u64)
                .map(|s| s as usize);
            Some((b, start))
        }
        (None, Some((i, step))) => {
            ledger.drop(format!("steps[{i}]: the analysis step runs once there and blocks the Rollout; the plan's analysis runs from that step on, at every interval (`canaryplan gate`)"));
            for (j, _) in inline.get(1..).unwrap_or_default() {
                ledger.drop(format!("steps[{j}]: a second analysis step"));
            }
            Some((step, Some(*i)))
        }
        (None, None) => None,
    }
}

/// The settings the plan has once for all metrics, as the first metric gives them.
#[derive(Default)]
struct Common {
    address: Option<String>,
    interval: Option<String>,
    initial_delay: Option<String>,
}

/// Argo `args` (a template's, or the Rollout's analysis'), each by name over those before.
fn merge_args(args: &mut Map<String, Value>, list: Option<&Value>) {
    for a in list.and_then(Value::as_array).into_iter().flatten() {
        if let Some(n) = a.get("name").and_then(Value::as_str) {
            args.insert(n.to_string(), a.clone());
        }
    }
}

/// One Prometheus metric of template `template` as the plan's (its bounds from the success
/// condition, its query on the plan's variables), or `None` with why in the ledger.
fn metric(
    m: &Value,
    template: &str,
    args: &Map<String, Value>,
    names: &Names<'_>,
    common: &mut Common,
    ledger: &mut Ledger,
) -> Option<Value> {
    let mname = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("metric")
        .to_string();
    let at_metric = format!("{template}, metric `{mname}`");
    let Some(prom) = m.at("/provider/prometheus") else {
        let provider = m
            .get("provider")
            .and_then(Value::as_object)
            .and_then(|p| p.keys().next().cloned())
            .unwrap_or_default();
        ledger.drop(format!(
            "{at_metric}: the {provider} provider (the plan's gate queries Prometheus)"
        ));
        return None;
    };
    for (k, _) in m.as_object().into_iter().flatten() {
        if !METRIC_FIELDS.contains(&k.as_str()) {
            ledger.drop(format!("{at_metric}: {k} {} (the plan's gate measures once per promote: no counts, limits or failure conditions)", m.get(k).map(Value::to_string).unwrap_or_default()));
        }
    }
    for (k, v) in prom.as_object().into_iter().flatten() {
        if k != "address" && k != "query" {
            ledger.drop(format!("{at_metric}: prometheus.{k} {v} (set it where the gate runs: $CANARYPLAN_PROMETHEUS_URL and its options)"));
        }
    }
    let cond = m
        .get("successCondition")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some((min, max, strict)) = bounds(cond) else {
        ledger.drop(format!("{at_metric}: successCondition `{cond}` (the plan reads `result[0] >= N` and `<= N`: write its min/max)"));
        return None;
    };
    if strict {
        ledger.drop(format!(
            "{at_metric}: the strict bound in `{cond}` (the plan's min/max include the bound)"
        ));
    }
    let query = match plan_query(
        prom.get("query")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        args,
        names,
    ) {
        Ok(q) => q,
        Err(why) => {
            ledger.drop(format!("{at_metric}: its query uses {why} (write the query under `analysis:` with the plan's variables)"));
            return None;
        }
    };
    let addr = prom
        .get("address")
        .and_then(Value::as_str)
        .map(str::to_string);
    same(ledger, &at_metric, "address", &mut common.address, addr);
    let every = m.get("interval").and_then(Value::as_str);
    match every.map(|d| (d, plan_duration(d))) {
        Some((_, Some(d))) => same(ledger, &at_metric, "interval", &mut common.interval, Some(d)),
        Some((d, None)) => ledger.drop(format!("{at_metric}: interval {d} (not whole seconds)")),
        None => ledger.drop(format!("{at_metric}: no interval (Argo measured once; the plan's gate uses its interval, 5m by default, as the query window)")),
    }
    let delay = m.get("initialDelay").and_then(Value::as_str);
    match delay.map(|d| (d, plan_duration(d))) {
        Some((_, Some(d))) => same(
            ledger,
            &at_metric,
            "initialDelay",
            &mut common.initial_delay,
            Some(d),
        ),
        Some((d, None)) => {
            ledger.drop(format!("{at_metric}: initialDelay {d} (not whole seconds)"))
        }
        None => {}
    }
    let mut metric = json!({"name": mname, "query": query.trim_end()});
    if let Some(o) = metric.as_object_mut() {
        if let Some(v) = min {
            o.insert("min".into(), json!(v));
        }
        if let Some(v) = max {
            o.insert("max".into(), json!(v));
        }
    }
    Some(metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_conditions_become_bounds() {
        assert_eq!(bounds("result[0] >= 0.95"), Some((Some(0.95), None, false)));
        assert_eq!(bounds("result[0] > 0.90"), Some((Some(0.9), None, true)));
        assert_eq!(
            bounds("result[0] <= 500 && result[0] >= 1"),
            Some((Some(1.0), Some(500.0), false))
        );
        assert_eq!(bounds("len(result) > 0"), None);
    }

    #[test]
    fn arguments_become_plan_variables_or_values() {
        let rollout = json!({"metadata": {"name": "web", "labels": {"team": "shop"}}});
        let names = Names {
            service: "web-svc",
            namespace: Some("prod"),
            workload: "web",
            rollout: &rollout,
        };
        let mut args = Map::new();
        args.insert("svc".into(), json!({"name": "svc", "value": "web-svc"}));
        args.insert(
            "ns".into(),
            json!({"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        );
        args.insert(
            "reporter".into(),
            json!({"name": "reporter", "value": "source"}),
        );
        args.insert("team".into(), json!({"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}}));
        args.insert(
            "secret".into(),
            json!({"name": "secret", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
        );
        assert_eq!(
            plan_query(
                "x{s=\"{{args.svc}}\",n=\"{{ args.ns }}\",r=\"{{args.reporter}}\",t=\"{{args.team}}\"}",
                &args,
                &names
            ),
            Ok("x{s=\"{{ service }}\",n=\"{{ namespace }}\",r=\"source\",t=\"shop\"}".to_string())
        );
        assert!(plan_query("{{args.secret}}", &args, &names).is_err());
        assert!(plan_query("{{args.missing}}", &args, &names).is_err());
    }
}
