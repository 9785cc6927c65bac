//! `canaryplan export` of CanaryPlans for in-cluster controllers, as a user runs it: the
//! runbook and a plan with test traffic and analysis, for Argo Rollouts and Kruise; the Argo
//! Rollouts on ASM walkthrough reproduced; Gateway API through Argo's plugin. Every file is
//! snapshotted (review a change as production config); tests/schemas.rs validates them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn export(fixture: &str, args: &[&str]) -> Run {
    let s = Scratch::fixture(fixture);
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let r = s.run(&all);
    r.ok();
    r
}

#[test]
fn every_export_is_what_was_reviewed() {
    for (fixture, args) in EXPORTS {
        let r = export(fixture, args);
        let name = format!("export__{fixture}__{}", args.join("_").replace("--", ""));
        insta::assert_snapshot!(name, r.stdout);
    }
}

#[test]
fn the_argo_rollouts_walkthrough_on_asm() {
    let out =
        parse_stream(&export("argo-walkthrough", &["argo-rollouts", "--routing", "host"]).stdout);
    let rollout = &out[0];
    let canary = &rollout["spec"]["strategy"]["canary"];
    assert_eq!(canary["canaryService"], "istio-rollout-canary");
    assert_eq!(canary["stableService"], "istio-rollout-stable");
    assert_eq!(
        canary["trafficRouting"],
        json!({"istio": {"virtualServices": [{"name": "istio-rollout-vsvc", "routes": ["primary"]}]}})
    );
    let mut want = vec![json!({"setWeight": 10}), json!({"pause": {}})];
    for w in (20..=90).step_by(10) {
        want.push(json!({"setWeight": w}));
        want.push(json!({"pause": {"duration": "20s"}}));
    }
    assert_eq!(canary["steps"], Value::Array(want));
    assert_eq!(
        canary["analysis"],
        json!({"templates": [{"templateName": "istio-success-rate"}], "startingStep": 1,
               "args": [{"name": "service", "value": "istio-rollout-canary"}, {"name": "namespace", "value": "default"}]})
    );
    assert_eq!(rollout["spec"]["workloadRef"]["scaleDown"], "progressively");
    let template = &out[1];
    assert_eq!(template["kind"], "AnalysisTemplate");
    assert_eq!(template["metadata"]["name"], "istio-success-rate");
    assert_eq!(
        template["spec"]["args"],
        json!([{"name": "service"}, {"name": "namespace"}])
    );
    let metric = &template["spec"]["metrics"][0];
    assert_eq!(metric["initialDelay"], "60s");
    assert_eq!(metric["interval"], "20s");
    assert_eq!(metric["successCondition"], "result[0] >= 0.9");
    let query = metric["provider"]["prometheus"]["query"].as_str().unwrap();
    assert!(
        query.contains(
            "destination_service=~\"{{args.service}}.{{args.namespace}}.svc.cluster.local\""
        ),
        "{query}"
    );
    // The two Services Argo switches, and the VirtualService weighting them.
    let kinds: Vec<String> = out
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Rollout istio-rollout",
            "AnalysisTemplate istio-success-rate",
            "Service istio-rollout-stable",
            "Service istio-rollout-canary",
            "VirtualService istio-rollout-vsvc"
        ]
    );
}

#[test]
fn test_traffic_and_mirrors_become_managed_routes() {
    let out =
        parse_stream(&export("test-routes", &["argo-rollouts", "--env", "production"]).stdout);
    let canary = &out[0]["spec"]["strategy"]["canary"];
    assert_eq!(
        canary["trafficRouting"]["managedRoutes"],
        json!([{"name": "canary-header"}])
    );
    assert_eq!(
        canary["steps"][0],
        json!({"setHeaderRoute": {"name": "canary-header", "match": [{"headerName": "x-canary", "headerValue": {"exact": "true"}}]}})
    );
    // Step pauses: 10m at 1% and 5%, then a person.
    assert_eq!(canary["steps"][2], json!({"pause": {"duration": "10m"}}));
    assert_eq!(canary["steps"][6], json!({"pause": {}}));
    let s = Scratch::fixture("mirror");
    let r = s.run(&["export", "argo-rollouts", "--env", "production"]);
    let out = parse_stream(&r.ok().stdout);
    assert_eq!(
        out[0]["spec"]["strategy"]["canary"]["steps"][0]["setMirrorRoute"]["percentage"],
        1
    );
    assert!(
        r.stderr
            .contains("a mirror of 0.5% (Argo mirrors whole percents: 1%)"),
        "{}",
        r.stderr
    );
}

#[test]
fn what_a_target_cannot_express_is_said_and_strict_refuses_it() {
    let s = Scratch::fixture("coexistence");
    // Several environments: which one's base is exported must be said.
    let r = s.run(&["export", "kruise"]);
    r.fails();
    assert!(
        r.stderr.contains("the plan has several environments"),
        "{}",
        r.stderr
    );
    let r = s.run(&["export", "kruise", "--env", "qa"]);
    assert!(
        r.ok()
            .stdout
            .contains("# Not expressed: stable.env and canary.env"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("note: not expressed in kruise: stable.env and canary.env"),
        "{}",
        r.stderr
    );
    let r = s.run(&["export", "kruise", "--env", "qa", "--strict"]);
    r.fails();
    assert!(
        r.stderr
            .contains("kruise cannot express all of canaryplan.yaml"),
        "{}",
        r.stderr
    );
    // The target for another kind is refused with what to use.
    let r = Scratch::fixture("runbook").run(&["export", "asm"]);
    r.fails();
    assert!(
        r.stderr.contains("`export asm` reads a LanePlan"),
        "{}",
        r.stderr
    );
    let r = Scratch::fixture("lanes").run(&["export", "argo-rollouts"]);
    r.fails();
    assert!(
        r.stderr
            .contains("`export argo-rollouts` reads a CanaryPlan"),
        "{}",
        r.stderr
    );
}

/// The argo-subsets app as it was under Argo Rollouts: a Rollout with subset-level routing,
/// steps, and an AnalysisTemplate in the same folder.
fn under_argo_rollouts() -> Scratch {
    let s = Scratch::fixture("argo-subsets");
    std::fs::remove_file(s.plan()).unwrap();
    let app = s.read("base/app.yaml").replace(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rollouts-demo\n  labels:\n    app: rollouts-demo\nspec:\n  replicas: 4\n",
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: rollouts-demo\n  labels:\n    app: rollouts-demo\nspec:\n  replicas: 4\n  strategy:\n    canary:\n      trafficRouting:\n        istio:\n          virtualService: {name: rollouts-demo-vsvc, routes: [primary]}\n          destinationRule: {name: rollouts-demo-destrule, canarySubsetName: canary, stableSubsetName: stable}\n      analysis:\n        templates: [{templateName: success-rate}]\n        startingStep: 2\n        args:\n        - {name: service, value: rollouts-demo}\n        - {name: namespace, value: rollouts-demo}\n        - {name: reporter, value: source}\n      steps:\n      - setWeight: 5\n      - pause: {}\n      - setWeight: 20\n      - pause: {duration: 30s}\n      - setWeight: 60\n      - pause: {duration: 1m}\n",
    );
    s.write("base/app.yaml", &app);
    // The base is what its kustomization lists: the template is one of its resources.
    let kustomization = s.read("base/kustomization.yaml");
    s.write(
        "base/kustomization.yaml",
        &kustomization.replace("- app.yaml\n", "- app.yaml\n- analysis.yaml\n"),
    );
    s.write(
        "base/analysis.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: success-rate\nspec:\n  args:\n  - name: service\n  - name: namespace\n  - name: reporter\n  metrics:\n  - name: success-rate\n    interval: 1m\n    initialDelay: 30s\n    successCondition: result[0] >= 0.95\n    provider:\n      prometheus:\n        address: http://prometheus.istio-system:9090\n        query: |\n          sum(rate(istio_requests_total{reporter=\"{{args.reporter}}\",destination_service_name=\"{{args.service}}\",response_code!~\"5.*\"}[1m])) / sum(rate(istio_requests_total{reporter=\"{{args.reporter}}\",destination_service_name=\"{{args.service}}\"}[1m]))\n",
    );
    s
}

#[test]
fn init_from_a_rollout_writes_the_plan_and_the_deployment_to_commit() {
    let s = under_argo_rollouts();
    // The Rollout in base points at the command.
    s.write(
        "canaryplan.yaml",
        &std::fs::read_to_string(fixture_dir("argo-subsets").join("canaryplan.yaml")).unwrap(),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan init --from-rollout base/app.yaml"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(s.plan()).unwrap();

    let r = s.run(&["init", "--from-rollout", "base/app.yaml"]);
    r.ok();
    let plan = &parse_stream(&s.read("canaryplan.yaml"))[0]["spec"];
    assert_eq!(plan["virtualService"], "rollouts-demo-vsvc");
    assert_eq!(plan["routes"], json!(["primary"]));
    assert_eq!(plan["stable"]["subset"], "stable");
    assert_eq!(plan["canary"]["subset"], "canary");
    assert_eq!(
        plan["steps"],
        json!([{"weight": 5, "pause": "manual"}, {"weight": 20, "pause": "30s"}, {"weight": 60, "pause": "1m"}, 100])
    );
    let analysis = &plan["analysis"];
    assert_eq!(analysis["name"], "success-rate");
    assert_eq!(
        analysis["prometheus"],
        "http://prometheus.istio-system:9090"
    );
    assert_eq!(analysis["interval"], "1m");
    assert_eq!(analysis["initialDelay"], "30s");
    // Argo's step 2 (setWeight 20) is the plan's second weight: exported step 2.
    assert_eq!(analysis["startingStep"], 2);
    assert_eq!(analysis["metrics"][0]["min"], 0.95);
    let query = analysis["metrics"][0]["query"].as_str().unwrap();
    assert!(
        query.contains("destination_service_name=\"{{ service }}\""),
        "{query}"
    );
    assert!(query.contains("reporter=\"source\""), "{query}");
    // The printed Deployment is the base change: with it in place of the Rollout, the plan
    // validates and renders.
    let deployment = r.stdout.clone();
    assert!(
        deployment.starts_with(
            "# Replace the Rollout rollouts-demo in base/app.yaml with this Deployment"
        ),
        "{deployment}"
    );
    let objects = parse_stream(&deployment);
    assert_eq!(objects[0]["kind"], "Deployment");
    assert_eq!(objects[0]["spec"]["replicas"], 4);
    assert!(objects[0]["spec"].get("strategy").is_none());
    let app = s.read("base/app.yaml");
    let start = app.find("apiVersion: argoproj.io/v1alpha1").unwrap();
    let end = start
        + app[start..]
            .find("\n---\n")
            .map_or(app.len() - start, |e| e + 1);
    let body: String = deployment
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    s.write(
        "base/app.yaml",
        &format!("{}{}{}", &app[..start], body, &app[end..]),
    );
    // The image is the one to pin: the plan says so; prefilled with the Rollout's.
    s.run(&["validate"]).ok();
    s.run(&["render"]).ok();
}

#[test]
fn a_plan_the_target_fully_expresses_passes_strict() {
    // The walkthrough: host routing, its query on the Service (passed as the canary Service,
    // which only the canary's requests reach); nothing is left out.
    let s = Scratch::fixture("argo-walkthrough");
    let r = s.run(&["export", "argo-rollouts", "--routing", "host", "--strict"]);
    r.ok();
    assert!(!r.stdout.contains("# Not expressed"), "{}", r.stdout);
    // The same plan with subsets: the query would measure both versions under Argo.
    let r = s.run(&["export", "argo-rollouts", "--strict"]);
    r.fails();
    assert!(
        r.stderr
            .contains("metric `success-rate` as a measure of the canary alone"),
        "{}",
        r.stderr
    );
    // A query selecting the canary's version passes with subsets too.
    s.edit_plan(|t| {
        t.replace(
            "response_code!~\"5.*\"}[40s]",
            "destination_version=\"{{ canary.version }}\",response_code!~\"5.*\"}[40s]",
        )
    });
    s.write(
        "base/destinationrule.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: istio-rollout\nspec:\n  host: istio-rollout\n  subsets:\n  - name: v1\n  - name: v2\n",
    );
    let k = s.read("base/kustomization.yaml");
    s.write(
        "base/kustomization.yaml",
        &k.replace("resources:\n", "resources:\n- destinationrule.yaml\n"),
    );
    let r = s.run(&["export", "argo-rollouts", "--strict"]);
    r.ok();
    let out = parse_stream(&r.stdout);
    let canary = &out[0]["spec"]["strategy"]["canary"];
    // The pods carry the version labels the query selects.
    assert_eq!(
        canary["canaryMetadata"],
        json!({"labels": {"version": "v2"}})
    );
    assert_eq!(
        canary["stableMetadata"],
        json!({"labels": {"version": "v1"}})
    );
}

#[test]
fn starting_step_counts_the_header_route_before_the_weights() {
    let s = Scratch::fixture("test-routes");
    s.edit_plan(|t| {
        t.replace(
            "    interval: 5m\n",
            "    interval: 5m\n    startingStep: 1\n",
        )
    });
    let out = parse_stream(&export_in(&s, &["argo-rollouts", "--env", "production"]).stdout);
    let canary = &out[0]["spec"]["strategy"]["canary"];
    // Plan step 1 is the pause at the first weight; the header route comes first.
    assert_eq!(canary["analysis"]["startingStep"], 2);
    assert_eq!(canary["steps"][2], json!({"pause": {"duration": "10m"}}));
    assert!(canary["steps"][0].get("setHeaderRoute").is_some());
}

#[test]
fn kruise_names_the_routing_objects_as_base_writes_them() {
    let s = Scratch::fixture("argo-subsets");
    let routing = s.read("base/routing.yaml");
    s.write(
        "base/routing.yaml",
        &routing.replace("networking.istio.io/v1\n", "networking.istio.io/v1beta1\n"),
    );
    let r = export_in(&s, &["kruise"]);
    let out = parse_stream(&r.stdout);
    let refs = &out[0]["spec"]["strategy"]["canary"]["trafficRoutings"][0]["customNetworkRefs"];
    assert_eq!(
        refs,
        &json!([
            {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "name": "rollouts-demo-vsvc"},
            {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "name": "rollouts-demo-destrule"}
        ])
    );
    assert!(!r.stderr.contains("the DestinationRule"), "{}", r.stderr);
    // Without one in base, the export says the controller needs it.
    let s = Scratch::fixture("runbook");
    let r = export_in(&s, &["kruise", "--env", "production"]);
    assert!(
        r.stderr.contains("the DestinationRule my-service-web (canaryplan renders it during a release; Kruise Rollout needs it in base"),
        "{}",
        r.stderr
    );
}

fn export_in(s: &Scratch, args: &[&str]) -> Run {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let r = s.run(&all);
    r.ok();
    r
}
