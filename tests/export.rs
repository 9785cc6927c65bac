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
               "args": [{"name": "service", "value": "istio-rollout"}, {"name": "namespace", "value": "default"}]})
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
