//! `canaryplan init --from-rollout FILE`: a plan from an Argo Rollouts `Rollout` and what it
//! references in its folder (VirtualServices, the DestinationRule, the canary/stable Services,
//! AnalysisTemplates): the weight ladder and pauses from its steps, the routes and subset names
//! it uses, the analysis from its templates. And the one change the base needs: the Rollout
//! becomes a Deployment (the exact object, to commit in its place).

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{Diagnostic, Result};
use crate::output::overlay::relative;
use crate::yaml::{self, Source};

/// What `init --from-rollout` produces.
pub struct Migration {
    /// The plan's text.
    pub plan: String,
    /// The Deployment that replaces the Rollout in the base (YAML, with a header comment).
    pub deployment: String,
    /// What could not be carried over, and what to do about it.
    pub notes: Vec<String>,
}

fn s<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn q(text: &str) -> String {
    yaml::to_yaml(&Value::String(text.to_string()))
        .trim_end()
        .to_string()
}

/// Every object of the YAML files in `dir` (not below it).
fn objects_in(dir: &Path, root: &crate::fsio::Root) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| crate::error::Error::io("list", dir, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect();
    files.sort();
    for f in files {
        let source = Source::read(&f, root)?;
        out.extend(
            yaml::parse_values(&source)?
                .into_iter()
                .filter(|v| v.is_object()),
        );
    }
    Ok(out)
}

/// `{{args.X}}` (or `{{ args.X }}`) in an Argo query, as the plan's query variables.
fn plan_query(query: &str, args: &Map<String, Value>, notes: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        let replacement = match inner.strip_prefix("args.") {
            Some("service") => "{{ service }}".to_string(),
            Some("namespace") => "{{ namespace }}".to_string(),
            Some(other) => match args.get(other).and_then(Value::as_str) {
                Some(v) => v.to_string(),
                None => {
                    notes.push(format!("the query argument `{other}` has no value in the Rollout: replace `{{{{args.{other}}}}}` in the plan's query"));
                    format!("{{{{ '{{{{args.{other}}}}}' }}}}")
                }
            },
            None => rest[start..start + end + 2].to_string(),
        };
        out.push_str(&replacement);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// `result[0] >= 0.99` → (min, max).
fn bounds(cond: &str) -> Option<(Option<f64>, Option<f64>)> {
    let mut min = None;
    let mut max = None;
    for part in cond.split("&&") {
        let part = part.trim();
        let rest = part.strip_prefix("result[0]")?.trim();
        for op in [">=", "<=", ">", "<"] {
            if let Some(n) = rest.strip_prefix(op) {
                let n: f64 = n.trim().parse().ok()?;
                if op.starts_with('>') {
                    min = Some(n);
                } else {
                    max = Some(n);
                }
                break;
            }
        }
    }
    (min.is_some() || max.is_some()).then_some((min, max))
}

pub fn migrate(file: &Path, plan_path: &Path) -> Result<Migration> {
    // The boundary of what is read is the Rollout's repository, never where the plan goes.
    let root = crate::fsio::Root::of_sources(file.parent().unwrap_or(Path::new("")))?;
    let source = Source::read(file, &root)?;
    let docs = yaml::parse_values(&source)?;
    let Some(rollout) = docs.iter().find(|d| s(d, "/kind") == Some("Rollout")) else {
        return Err(Diagnostic::new("no Argo Rollouts Rollout in this file")
            .in_file(file)
            .hint("name the file that holds the `kind: Rollout`")
            .into());
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let all = objects_in(dir, &root)?;
    let find = |kind: &str, name: &str| {
        all.iter()
            .find(|o| s(o, "/kind") == Some(kind) && s(o, "/metadata/name") == Some(name))
    };
    let name = s(rollout, "/metadata/name").unwrap_or("app").to_string();
    let canary = rollout
        .pointer("/spec/strategy/canary")
        .cloned()
        .unwrap_or(Value::Null);
    let mut notes = Vec::new();

    // The pod template: the Rollout's own, or the Deployment its workloadRef names.
    let workload_ref = s(rollout, "/spec/workloadRef/name").map(str::to_string);
    let template = match &workload_ref {
        Some(d) => find("Deployment", d)
            .and_then(|d| d.pointer("/spec/template"))
            .cloned(),
        None => rollout.pointer("/spec/template").cloned(),
    }
    .unwrap_or(Value::Null);
    let workload = workload_ref.clone().unwrap_or_else(|| name.clone());
    let image = s(&template, "/spec/containers/0/image")
        .unwrap_or("registry.example/app@sha256:...")
        .to_string();

    // Routing: subsets of a DestinationRule, or the canary/stable Services.
    let istio = canary
        .pointer("/trafficRouting/istio")
        .cloned()
        .unwrap_or(Value::Null);
    let mut vs_list: Vec<(String, Vec<String>)> = Vec::new();
    if let Some(vs) = istio.get("virtualService") {
        vs_list.push((
            s(vs, "/name").unwrap_or_default().to_string(),
            strings(vs.get("routes")),
        ));
    }
    for vs in istio
        .get("virtualServices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        vs_list.push((
            s(vs, "/name").unwrap_or_default().to_string(),
            strings(vs.get("routes")),
        ));
    }
    let (stable_subset, canary_subset) = (
        s(&istio, "/destinationRule/stableSubsetName").map(str::to_string),
        s(&istio, "/destinationRule/canarySubsetName").map(str::to_string),
    );
    let service = match (s(&canary, "/stableService"), &vs_list.first()) {
        (Some(stable), _) => {
            notes.push(format!(
                "host-level routing: canaryplan splits one Service by subsets; route the VirtualService's {} to Service {stable} only (canaryplan adds the subsets), and Service {} can go once the plan is done",
                vs_list.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>().join(", "),
                s(&canary, "/canaryService").unwrap_or("<canary>")
            ));
            stable.to_string()
        }
        (None, Some((vs, _))) => find("VirtualService", vs)
            .and_then(|v| v.pointer("/spec/http/0/route/0/destination/host"))
            .and_then(Value::as_str)
            .map(|h| h.split('.').next().unwrap_or(h).to_string())
            .unwrap_or_else(|| name.clone()),
        (None, None) => {
            notes.push(
                "the Rollout has no Istio traffic routing: name the Service in `service:`".into(),
            );
            name.clone()
        }
    };

    // Steps: each setWeight, with the pause after it.
    let mut steps: Vec<(u64, Option<String>)> = Vec::new();
    for step in canary
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = step.get("setWeight").and_then(Value::as_u64) {
            steps.push((w, None));
        } else if let Some(p) = step.get("pause") {
            let pause = match p.get("duration") {
                Some(Value::String(d)) => d.clone(),
                Some(Value::Number(n)) => format!("{n}s"),
                _ => "manual".to_string(),
            };
            if let Some(last) = steps.last_mut() {
                last.1 = Some(pause);
            }
        } else if let Some(kind) = step.as_object().and_then(|o| o.keys().next()) {
            notes.push(format!("the `{kind}` step (canaryplan's steps are weights and pauses; header and mirror routes are `match:` and `mirror:`)"));
        }
    }
    if steps.last().is_none_or(|(w, _)| *w != 100) {
        steps.push((100, None));
    }
    let mut t = String::new();
    let folder = relative(plan_path.parent().unwrap_or(Path::new("")), dir)
        .unwrap_or_else(|| dir.display().to_string());
    t.push_str(&format!("# A canary plan from the Argo Rollouts Rollout {name} ({}). Review every value,\n# replace the Rollout in the base with the Deployment `init` printed, then run\n# `canaryplan validate`.\n", file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()));
    t.push_str("apiVersion: canaryplan.io/v1alpha1\nkind: CanaryPlan\nmetadata:\n");
    t.push_str(&format!(
        "  name: {}\nspec:\n  base: {}\n  service: {}\n  workload: {}\n",
        q(&name),
        q(&folder),
        q(&service),
        q(&workload)
    ));
    match vs_list.as_slice() {
        [] => {}
        [(vs, routes)] => {
            t.push_str(&format!("  virtualService: {}\n", q(vs)));
            if !routes.is_empty() {
                t.push_str(&format!(
                    "  routes: [{}]\n",
                    routes.iter().map(|r| q(r)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        many => {
            t.push_str(&format!(
                "  virtualServices: [{}]\n",
                many.iter()
                    .map(|(v, _)| q(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let routes: Vec<String> = many.iter().flat_map(|(_, r)| r.clone()).collect();
            if !routes.is_empty() {
                t.push_str(&format!(
                    "  routes: [{}]\n",
                    routes.iter().map(|r| q(r)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    let app = s(rollout, "/spec/selector/matchLabels/app")
        .unwrap_or(&name)
        .to_string();
    t.push_str("  stable:\n    version: v1\n");
    t.push_str("    # FILL IN: the image stable runs today, pinned by digest; prefilled with the Rollout's.\n");
    t.push_str(&format!("    image: {}\n", q(&image)));
    t.push_str(&format!(
        "    labels: {{app: {}}}   # keeps the stable copy's selector apart\n",
        q(&format!("{app}-v1"))
    ));
    if let Some(sub) = &stable_subset {
        t.push_str(&format!(
            "    subset: {}   # the Rollout's stableSubsetName\n",
            q(sub)
        ));
    }
    t.push_str("  canary:\n    version: v2\n");
    if let Some(sub) = &canary_subset {
        t.push_str(&format!(
            "    subset: {}   # the Rollout's canarySubsetName\n",
            q(sub)
        ));
    }
    t.push_str(&format!("  podLabels: {{applicationName: {}}}\n  selector:\n    remove: [app]\n    add: {{applicationName: {}}}\n", q(&name), q(&name)));
    t.push_str("  # The Rollout's setWeight steps, each with the pause after it.\n  steps:\n");
    for (w, pause) in &steps {
        match pause {
            Some(p) => t.push_str(&format!("  - {{weight: {w}, pause: {}}}\n", q(p))),
            None => t.push_str(&format!("  - {w}\n")),
        }
    }
    // Analysis: the templates the Rollout runs, when they are in the same folder.
    let analysis = canary.get("analysis").cloned().unwrap_or(Value::Null);
    let args: Map<String, Value> = analysis
        .get("args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((s(a, "/name")?.to_string(), a.get("value")?.clone())))
        .collect();
    let mut metrics = Vec::new();
    let mut address = None;
    let mut interval = None;
    let mut initial_delay = None;
    let mut template_name = None;
    for tpl in analysis
        .get("templates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(tn) = s(tpl, "/templateName") else {
            continue;
        };
        template_name.get_or_insert_with(|| tn.to_string());
        let Some(at) = find("AnalysisTemplate", tn) else {
            notes.push(format!(
                "AnalysisTemplate {tn} (not in {}): write its metrics under `analysis:`",
                dir.display()
            ));
            continue;
        };
        for m in at
            .pointer("/spec/metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mname = s(m, "/name").unwrap_or("metric").to_string();
            let Some(prom) = m.pointer("/provider/prometheus") else {
                notes.push(format!("metric `{mname}` of {tn} (not a Prometheus query)"));
                continue;
            };
            address.get_or_insert_with(|| s(prom, "/address").unwrap_or_default().to_string());
            if let Some(i) = s(m, "/interval") {
                interval.get_or_insert_with(|| i.to_string());
            }
            if let Some(d) = s(m, "/initialDelay") {
                initial_delay.get_or_insert_with(|| d.to_string());
            }
            let cond = s(m, "/successCondition").unwrap_or_default();
            let Some((min, max)) = bounds(cond) else {
                notes.push(format!("metric `{mname}`: successCondition `{cond}` is not `result[0] >= N` / `<= N`; write its min/max"));
                continue;
            };
            if cond.contains("> ") && !cond.contains(">=")
                || cond.contains("< ") && !cond.contains("<=")
            {
                notes.push(format!("metric `{mname}`: `{cond}` is a strict bound; the plan's min/max include the bound"));
            }
            let query = plan_query(s(prom, "/query").unwrap_or_default(), &args, &mut notes);
            metrics.push((mname, query, min, max));
        }
    }
    if !metrics.is_empty() {
        t.push_str("  analysis:\n");
        if let Some(n) = &template_name {
            t.push_str(&format!("    name: {}\n", q(n)));
        }
        if let Some(a) = address.filter(|a| !a.is_empty()) {
            t.push_str(&format!("    prometheus: {}\n", q(&a)));
        }
        if let Some(i) = &interval {
            t.push_str(&format!("    interval: {}\n", q(i)));
        }
        if let Some(d) = &initial_delay {
            t.push_str(&format!("    initialDelay: {}\n", q(d)));
        }
        if let Some(n) = analysis.get("startingStep").and_then(Value::as_u64) {
            t.push_str(&format!("    startingStep: {n}\n"));
        }
        t.push_str("    metrics:\n");
        for (mname, query, min, max) in &metrics {
            t.push_str(&format!(
                "    - name: {}\n      query: {}\n",
                q(mname),
                q(query.trim())
            ));
            if let Some(v) = min {
                t.push_str(&format!("      min: {v}\n"));
            }
            if let Some(v) = max {
                t.push_str(&format!("      max: {v}\n"));
            }
        }
    }
    t.push_str("  environments:\n    production:\n      stage: prepare\n");

    // The Deployment that replaces the Rollout.
    let deployment = match &workload_ref {
        Some(d) => {
            let replicas = rollout
                .pointer("/spec/replicas")
                .cloned()
                .unwrap_or(json!(1));
            format!(
                "# Delete the Rollout {name}; Deployment {d} (its workloadRef) stays, with its replicas back:\n# spec.replicas: {replicas}\n"
            )
        }
        None => {
            let mut meta = Map::new();
            for k in ["name", "namespace", "labels", "annotations"] {
                if let Some(v) = rollout.pointer(&format!("/metadata/{k}")) {
                    meta.insert(k.into(), v.clone());
                }
            }
            let mut spec = Map::new();
            for k in [
                "replicas",
                "selector",
                "template",
                "minReadySeconds",
                "revisionHistoryLimit",
            ] {
                if let Some(v) = rollout.pointer(&format!("/spec/{k}")) {
                    spec.insert(k.into(), v.clone());
                }
            }
            let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec});
            format!(
                "# Replace the Rollout {name} in {} with this Deployment (same name, selector and pod template; no Argo strategy):\n{}",
                file.display(),
                yaml::to_yaml(&d)
            )
        }
    };
    Ok(Migration {
        plan: t,
        deployment,
        notes,
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_conditions_become_bounds() {
        assert_eq!(bounds("result[0] >= 0.95"), Some((Some(0.95), None)));
        assert_eq!(bounds("result[0] > 0.90"), Some((Some(0.9), None)));
        assert_eq!(
            bounds("result[0] <= 500 && result[0] >= 1"),
            Some((Some(1.0), Some(500.0)))
        );
        assert_eq!(bounds("len(result) > 0"), None);
    }

    #[test]
    fn argo_arguments_become_plan_variables() {
        let mut notes = Vec::new();
        let mut args = Map::new();
        args.insert("reporter".into(), json!("source"));
        assert_eq!(
            plan_query(
                "x{s=\"{{args.service}}\",n=\"{{ args.namespace }}\",r=\"{{args.reporter}}\"}",
                &args,
                &mut notes
            ),
            "x{s=\"{{ service }}\",n=\"{{ namespace }}\",r=\"source\"}"
        );
        assert!(notes.is_empty());
    }
}
