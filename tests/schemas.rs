//! Every object canaryplan renders validates against the published schemas in
//! `../shared/schemas`: Istio CRDs (their `openAPIV3Schema`, made strict so unknown fields
//! fail) and the strict Kubernetes JSON schemas for Service, Deployment and Namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::{Value, json};

/// OpenAPI v3 (CRD flavour) → JSON Schema, strict: objects with properties reject others.
fn strict(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "properties" => {
                let props = v
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(p, s)| (p.clone(), strict(s)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), strict(v));
            }
            "allOf" | "anyOf" | "oneOf" => {
                // CRD schemas use these only to state required-field combinations.
                out.insert(
                    k.clone(),
                    Value::Array(v.as_array().unwrap().iter().map(strict).collect()),
                );
            }
            "nullable"
            | "x-kubernetes-int-or-string"
            | "x-kubernetes-preserve-unknown-fields"
            | "format" => {}
            k if k.starts_with("x-kubernetes") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if obj.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        out.remove("type");
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if obj.get("nullable") == Some(&json!(true))
        && let Some(t) = out.get("type").and_then(Value::as_str).map(str::to_string)
    {
        out.insert("type".into(), json!([t, "null"]));
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if obj.contains_key("properties") && !preserve && !obj.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(out)
}

/// The definition `name` and every definition it refers to, transitively.
fn closure(defs: &Value, name: &str) -> Value {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r.trim_start_matches("#/$defs/").to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut picked = serde_json::Map::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        if picked.contains_key(&n) {
            continue;
        }
        let def = defs[&n].clone();
        assert!(!def.is_null(), "no definition {n}");
        refs(&def, &mut todo);
        picked.insert(n, def);
    }
    Value::Object(picked)
}

struct Schemas {
    by_gvk: HashMap<String, jsonschema::Validator>,
    /// Each CRD version's `openAPIV3Schema` as published, for defaults and CEL rules.
    crd: HashMap<String, Value>,
    /// How many CEL rules were evaluated (a test that evaluates none proves nothing).
    cel_evaluated: std::cell::Cell<usize>,
}

impl Schemas {
    /// `None` (the test is skipped, loudly) when the schemas are not here.
    fn load() -> Option<Schemas> {
        let dir = schemas_dir()?;
        let mut by_gvk = HashMap::new();
        let mut crd_schemas = HashMap::new();
        let k8s = dir.join("kubernetes-v1.34");
        let defs_text = std::fs::read_to_string(k8s.join("_definitions.json"))
            .unwrap()
            .replace("/api/_definitions.json#", "#");
        let defs: Value = serde_json::from_str::<Value>(&defs_text).unwrap()["$defs"].clone();
        // CRDs leave metadata to the API server: validate it as the strict ObjectMeta.
        let object_meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        let meta_defs = closure(&defs, object_meta);
        for file in [
            "istio-crds.yaml",
            "argo-rollouts-rollout-crd.yaml",
            "argo-rollouts-analysistemplate-crd.yaml",
            "gateway-api-httproutes-crd.yaml",
            "kruise-rollouts-crd.yaml",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            for crd in parse_stream(&text) {
                if crd["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let group = crd["spec"]["group"].as_str().unwrap();
                let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
                for v in crd["spec"]["versions"].as_array().unwrap() {
                    let mut schema = strict(&v["schema"]["openAPIV3Schema"]);
                    schema["properties"]["metadata"] =
                        json!({"$ref": format!("#/$defs/{object_meta}")});
                    schema["$defs"] = meta_defs.clone();
                    schema["properties"]["apiVersion"] = json!({"type": "string"});
                    schema["properties"]["kind"] = json!({"type": "string"});
                    let gvk = format!("{group}/{}/{kind}", v["name"].as_str().unwrap());
                    crd_schemas.insert(gvk.clone(), v["schema"]["openAPIV3Schema"].clone());
                    by_gvk.insert(gvk, jsonschema::validator_for(&schema).unwrap());
                }
            }
        }
        for (file, gvk) in [
            ("service-v1.json", "/v1/Service"),
            ("deployment-apps-v1.json", "apps/v1/Deployment"),
            ("namespace-v1.json", "/v1/Namespace"),
            ("statefulset-apps-v1.json", "apps/v1/StatefulSet"),
            ("daemonset-apps-v1.json", "apps/v1/DaemonSet"),
            (
                "horizontalpodautoscaler-autoscaling-v2.json",
                "autoscaling/v2/HorizontalPodAutoscaler",
            ),
            (
                "poddisruptionbudget-policy-v1.json",
                "policy/v1/PodDisruptionBudget",
            ),
            (
                "mutatingwebhookconfiguration-admissionregistration-v1.json",
                "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration",
            ),
        ] {
            let text = std::fs::read_to_string(k8s.join(file))
                .unwrap()
                .replace("/api/_definitions.json#", "#");
            let mut schema: Value = serde_json::from_str(&text).unwrap();
            schema["$defs"] = defs.clone();
            by_gvk.insert(gvk.to_string(), jsonschema::validator_for(&schema).unwrap());
        }
        // Kinds published only as definitions (the gateway chart's ServiceAccount and RBAC).
        for (def, gvk) in [
            ("io.k8s.api.core.v1.ServiceAccount", "/v1/ServiceAccount"),
            (
                "io.k8s.api.rbac.v1.Role",
                "rbac.authorization.k8s.io/v1/Role",
            ),
            (
                "io.k8s.api.rbac.v1.RoleBinding",
                "rbac.authorization.k8s.io/v1/RoleBinding",
            ),
        ] {
            let schema = json!({"$ref": format!("#/$defs/{def}"), "$defs": defs.clone()});
            by_gvk.insert(gvk.to_string(), jsonschema::validator_for(&schema).unwrap());
        }
        Some(Schemas {
            by_gvk,
            crd: crd_schemas,
            cel_evaluated: std::cell::Cell::new(0),
        })
    }

    fn errors(&self, object: &Value) -> Result<Vec<String>, String> {
        let api = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
        let gvk = format!(
            "{group}/{version}/{}",
            object["kind"].as_str().unwrap_or_default()
        );
        let v = self.by_gvk.get(&gvk).ok_or(gvk.clone())?;
        let mut out: Vec<String> = v
            .iter_errors(object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if let Some(schema) = self.crd.get(&gvk) {
            let mut defaulted = object.clone();
            cel_rules::default(schema, &mut defaulted);
            let mut n = self.cel_evaluated.get();
            cel_rules::errors(schema, &defaulted, "", &mut out, &mut n);
            self.cel_evaluated.set(n);
        }
        Ok(out)
    }
}

#[test]
fn every_rendered_object_is_valid() {
    let Some(schemas) = Schemas::load() else {
        return;
    };
    let mut validated = 0;
    for (fixture, stage, scratch) in every_stage() {
        for env in environments(&scratch) {
            let out = scratch.run(&["render", "--stdout", "--env", &env]);
            for object in parse_stream(&out.ok().stdout) {
                let errors = schemas.errors(&object).unwrap_or_else(|gvk| {
                    panic!("{fixture} {stage} {env}: no published schema for {gvk}")
                });
                assert!(
                    errors.is_empty(),
                    "{fixture} {stage} {env}: {} {} is invalid:\n{}",
                    object["kind"],
                    object["metadata"]["name"],
                    errors.join("\n")
                );
                validated += 1;
            }
        }
    }
    assert!(validated > 100, "only {validated} objects validated");
    assert!(
        schemas.cel_evaluated.get() > 1000,
        "only {} CEL rules evaluated",
        schemas.cel_evaluated.get()
    );
}

#[test]
fn every_exported_object_is_valid() {
    let Some(schemas) = Schemas::load() else {
        return;
    };
    let mut validated = 0;
    for (fixture, args) in EXPORTS {
        let s = Scratch::fixture(fixture);
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        for o in parse_stream(&s.run(&all).ok().stdout) {
            // ASM's lane CRDs are not published: their shapes are tested in tests/lanes.rs.
            if o["apiVersion"] == "istio.alibabacloud.com/v1" {
                continue;
            }
            let errors = schemas
                .errors(&o)
                .unwrap_or_else(|gvk| panic!("{fixture} {args:?}: no schema for {gvk}"));
            assert!(
                errors.is_empty(),
                "{fixture} {args:?}: {} {}: {}",
                o["kind"],
                o["metadata"]["name"],
                errors.join("\n")
            );
            validated += 1;
        }
    }
    assert!(
        validated >= 14,
        "only {validated} exported objects validated"
    );
}

#[test]
fn the_validation_rejects_unknown_fields_and_wrong_types() {
    let Some(schemas) = Schemas::load() else {
        return;
    };
    let bad_vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"},
        "spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a", "subsett": "v1"}, "weight": 100}]}]}});
    assert!(
        !schemas.errors(&bad_vs).unwrap().is_empty(),
        "a typo'd field must fail"
    );
    let bad_weight = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"},
        "spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}, "weight": "100"}]}]}});
    assert!(
        !schemas.errors(&bad_weight).unwrap().is_empty(),
        "a string weight must fail"
    );
    let bad_svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selektor": {}}});
    assert!(
        !schemas.errors(&bad_svc).unwrap().is_empty(),
        "Kubernetes schemas are strict"
    );
    let bad_meta = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "x", "lables": {}},
        "spec": {"host": "a"}});
    assert!(
        !schemas.errors(&bad_meta).unwrap().is_empty(),
        "metadata of custom resources is checked too"
    );
    let bad_dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "3"}});
    assert!(!schemas.errors(&bad_dep).unwrap().is_empty());
    // CEL rules of the HTTPRoute CRD, on routes the structural schema accepts.
    let route = |rule: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "x"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [rule]}})
    };
    let good = route(
        json!({"backendRefs": [{"name": "a", "port": 80, "weight": 90}, {"name": "b", "port": 80, "weight": 10}]}),
    );
    assert_eq!(schemas.errors(&good).unwrap(), Vec::<String>::new());
    let no_port = route(json!({"backendRefs": [{"name": "a"}]}));
    let errors = schemas.errors(&no_port).unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Must have port for Service reference")),
        "a Service backendRef without a port (group and kind defaulted) must fail: {errors:?}"
    );
    let bad_path = route(
        json!({"matches": [{"path": {"type": "PathPrefix", "value": "api"}}], "backendRefs": [{"name": "a", "port": 80}]}),
    );
    assert!(
        !schemas.errors(&bad_path).unwrap().is_empty(),
        "a path not starting with / must fail"
    );
    let two_rewrites = route(json!({"filters": [
        {"type": "URLRewrite", "urlRewrite": {"hostname": "a"}},
        {"type": "URLRewrite", "urlRewrite": {"hostname": "b"}}],
        "backendRefs": [{"name": "a", "port": 80}]}));
    assert!(!schemas.errors(&two_rewrites).unwrap().is_empty());
    let mirror_both = route(
        json!({"filters": [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "a", "port": 80}, "percent": 5, "fraction": {"numerator": 1}}}],
        "backendRefs": [{"name": "a", "port": 80}]}),
    );
    assert!(!schemas.errors(&mirror_both).unwrap().is_empty());
}

/// CEL: the `x-kubernetes-validations` rules of a CRD, evaluated as the API server does after
/// defaulting (`default` values filled in first), with `self` bound to the node the rule is
/// written on and property names that are CEL keywords escaped (`__namespace__`).
mod cel_rules {
    use serde_json::{Map, Value};

    const KEYWORDS: [&str; 21] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];

    /// Fills in the schema's `default`s, as the API server does before validating.
    pub fn default(schema: &Value, v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (k, s) in props {
                        if let (false, Some(d)) = (m.contains_key(k), s.get("default")) {
                            m.insert(k.clone(), d.clone());
                        }
                        if let Some(x) = m.get_mut(k) {
                            default(s, x);
                        }
                    }
                } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object())
                {
                    m.values_mut().for_each(|x| default(s, x));
                }
            }
            Value::Array(a) => {
                if let Some(s) = schema.get("items") {
                    a.iter_mut().for_each(|x| default(s, x));
                }
            }
            _ => {}
        }
    }

    /// The value as CEL sees it: schema property names escaped.
    fn escaped(schema: &Value, v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let mut out = Map::new();
                for (k, x) in m {
                    let s = props
                        .and_then(|p| p.get(k))
                        .or_else(|| schema.get("additionalProperties"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let key = if props.is_some() && KEYWORDS.contains(&k.as_str()) {
                        format!("__{k}__")
                    } else {
                        k.clone()
                    };
                    out.insert(key, escaped(&s, x));
                }
                Value::Object(out)
            }
            Value::Array(a) => {
                let s = schema.get("items").cloned().unwrap_or(Value::Null);
                Value::Array(a.iter().map(|x| escaped(&s, x)).collect())
            }
            _ => v.clone(),
        }
    }

    /// Every rule that fails on `v` (already defaulted), with where.
    pub fn errors(
        schema: &Value,
        v: &Value,
        at: &str,
        out: &mut Vec<String>,
        evaluated: &mut usize,
    ) {
        for rule in schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = rule["rule"].as_str().unwrap_or_default();
            if text.contains("oldSelf") {
                continue;
            }
            let program = match cel::Program::compile(text) {
                Ok(p) => p,
                Err(e) => {
                    out.push(format!("{at}: rule does not compile: {text}: {e}"));
                    continue;
                }
            };
            let mut cx = cel::Context::default();
            cx.add_variable("self", escaped(schema, v)).unwrap();
            *evaluated += 1;
            match program.execute(&cx) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(other) => out.push(format!(
                    "{at}: {} (rule `{text}` gave {other:?})",
                    rule["message"].as_str().unwrap_or("CEL rule failed")
                )),
                Err(e) => out.push(format!("{at}: rule `{text}` cannot be evaluated: {e}")),
            }
        }
        match v {
            Value::Object(m) => {
                let props = schema.get("properties").and_then(Value::as_object);
                for (k, x) in m {
                    let s = props
                        .and_then(|p| p.get(k))
                        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()));
                    if let Some(s) = s {
                        errors(s, x, &format!("{at}.{k}"), out, evaluated);
                    }
                }
            }
            Value::Array(a) => {
                if let Some(s) = schema.get("items") {
                    for (i, x) in a.iter().enumerate() {
                        errors(s, x, &format!("{at}[{i}]"), out, evaluated);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The exports of every plan `init --from-rollout` writes for the apps of fixtures/rollouts
/// (and, with `$CANARYPLAN_ARGO_ROLLOUTS_REPO`, for the Argo Rollouts repository's own
/// Rollouts) validate: the Rollout, AnalysisTemplate, Services and VirtualService for Argo
/// Rollouts, the Kruise Rollout.
#[test]
fn every_export_of_a_migrated_rollout_is_valid() {
    use common::rollouts::{self, Outcome};
    let Some(schemas) = Schemas::load() else {
        return;
    };
    let mut apps: Vec<(String, tempfile::TempDir)> = Vec::new();
    for dir in rollouts::corpus() {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&dir, copy.path());
        apps.push((dir.display().to_string(), copy));
    }
    if let Some(repo) = std::env::var_os(rollouts::UPSTREAM_ENV) {
        for f in rollouts::upstream_rollout_files(std::path::Path::new(&repo)) {
            apps.push((f.display().to_string(), rollouts::upstream_app(&f)));
        }
    }
    let mut validated = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for (name, app) in &apps {
        let Outcome::Migrated(m) = rollouts::migrate(app.path()) else {
            continue;
        };
        for (target, run) in &m.exports {
            for o in parse_stream(&run.stdout) {
                let errors = schemas
                    .errors(&o)
                    .unwrap_or_else(|gvk| panic!("{name} {target}: no schema for {gvk}"));
                assert!(
                    errors.is_empty(),
                    "{name} {target}: {} {} is invalid:\n{}\n{}",
                    o["kind"],
                    o["metadata"]["name"],
                    errors.join("\n"),
                    run.stdout
                );
                kinds.insert(format!("{} {}", o["apiVersion"], o["kind"]));
                validated += 1;
            }
        }
    }
    assert!(validated >= 16, "only {validated} objects validated");
    for want in [
        "\"argoproj.io/v1alpha1\" \"Rollout\"",
        "\"argoproj.io/v1alpha1\" \"AnalysisTemplate\"",
        "\"rollouts.kruise.io/v1beta1\" \"Rollout\"",
        "\"networking.istio.io/v1\" \"VirtualService\"",
    ] {
        assert!(kinds.contains(want), "no {want} among {kinds:?}");
    }
}
