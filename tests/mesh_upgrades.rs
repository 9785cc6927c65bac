//! Mesh upgrades as staged commits, as a platform team runs them: the ingress gateway's canary
//! pod (`kind: GatewayUpgrade`) and the control plane's revision, namespace by namespace
//! (`kind: RevisionUpgrade`); every step a render, every mistake a located error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

fn stream(s: &Scratch, env: &str) -> Vec<Value> {
    parse_stream(&s.run(&["render", "--stdout", "--env", env]).ok().stdout)
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[test]
fn a_gateway_upgrade_walks_canary_upgrade_cleanup() {
    let s = Scratch::fixture("gateway-upgrade");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let rev = |o: &Value| o["spec"]["template"]["metadata"]["labels"]["istio.io/rev"].clone();
    // prepare: checks only.
    let out = stream(&s, "production");
    assert!(named(&out, "Deployment", "istio-ingressgateway-canary").is_none());
    // canary: one pod with the new revision, the gateway's pod labels (the Service selects it).
    let r = s.run(&["advance", "--env", "production", "--render"]);
    assert!(
        r.ok()
            .stdout
            .contains("ingress: production to canary: the canary gateway Deployment"),
        "{}",
        r.stdout
    );
    let out = stream(&s, "production");
    let canary = named(&out, "Deployment", "istio-ingressgateway-canary").unwrap();
    assert_eq!(rev(canary), "1-23-1");
    assert_eq!(canary["spec"]["replicas"], 1);
    assert_eq!(
        canary["spec"]["template"]["metadata"]["labels"]["istio"],
        "ingressgateway"
    );
    assert_eq!(
        rev(named(&out, "Deployment", "istio-ingressgateway").unwrap()),
        "1-22-1"
    );
    let status = s
        .run(&["status", "--env", "production"])
        .ok()
        .stdout
        .clone();
    assert!(status.contains("a pod share, not a weight: Service istio-ingressgateway spreads connections over 4 pods, 1 of them the canary's (counting the HPA's minReplicas)"), "{status}");
    assert!(
        status.contains("PodDisruptionBudget istio-ingressgateway also counts the canary's pods"),
        "{status}"
    );
    // upgrade: the gateway too; the canary stays.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let out = stream(&s, "production");
    assert_eq!(
        rev(named(&out, "Deployment", "istio-ingressgateway").unwrap()),
        "1-23-1"
    );
    assert!(named(&out, "Deployment", "istio-ingressgateway-canary").is_some());
    // cleanup: the canary goes.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let out = stream(&s, "production");
    assert!(named(&out, "Deployment", "istio-ingressgateway-canary").is_none());
    assert_eq!(
        rev(named(&out, "Deployment", "istio-ingressgateway").unwrap()),
        "1-23-1"
    );
    // done needs the new revision in base, or the gateway would go back.
    let r = s.run(&["advance", "--env", "production"]);
    r.fails();
    assert!(r.stderr.contains("at done the base alone would put Deployment istio-ingressgateway back on its old version"), "{}", r.stderr);
    s.write(
        "istio-system/gateway.yaml",
        &s.read("istio-system/gateway.yaml")
            .replace("istio.io/rev: 1-22-1", "istio.io/rev: 1-23-1"),
    );
    s.run(&["advance", "--env", "production", "--render"]).ok();
    assert!(
        !s.read("canary/production/kustomization.yaml")
            .contains("patches:")
    );
    // Skipping a stage is refused; going back is the rollback.
    s.edit_plan(|p| {
        p.replace(
            "    production:\n      stage: done",
            "    production:\n      stage: canary",
        )
    });
    s.run(&["render"]).ok();
    s.edit_plan(|p| {
        p.replace(
            "    production:\n      stage: canary",
            "    production:\n      stage: cleanup",
        )
    });
    let r = s.run(&["render"]);
    r.fails();
    assert!(
        r.stderr
            .contains("is at stage canary on disk; cleanup is more than one step ahead"),
        "{}",
        r.stderr
    );
}

#[test]
fn gateway_upgrade_mistakes_are_located() {
    // A leftover canary Deployment in base.
    let s = Scratch::fixture("gateway-upgrade");
    let gw = s.read("istio-system/gateway.yaml");
    let dep_start = gw.find("apiVersion: apps/v1").unwrap();
    let dep_end = dep_start + gw[dep_start..].find("---\n").unwrap();
    let leftover = gw[dep_start..dep_end].replacen(
        "name: istio-ingressgateway\n",
        "name: istio-ingressgateway-canary\n",
        1,
    );
    s.write("istio-system/gateway.yaml", &format!("{gw}---\n{leftover}"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("error: the base already has a Deployment `istio-ingressgateway-canary`, the canary this upgrade adds"), "{}", r.stderr);
    assert!(
        r.stderr.contains("istio-system/gateway.yaml:"),
        "{}",
        r.stderr
    );
    // A Service that selects by revision would not reach the canary.
    let s = Scratch::fixture("gateway-upgrade");
    s.write(
        "istio-system/gateway.yaml",
        &s.read("istio-system/gateway.yaml").replacen(
            "    istio: ingressgateway\n  ports:",
            "    istio: ingressgateway\n    istio.io/rev: 1-22-1\n  ports:",
            1,
        ),
    );
    let r = s.run(&["validate", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr
            .contains("Service istio-ingressgateway does not select the canary's pods"),
        "{}",
        r.stderr
    );
    // Neither a revision nor an image, and an unknown stage.
    let s = Scratch::fixture("gateway-upgrade");
    s.edit_plan(|p| {
        p.replace("  to:\n    revision: 1-23-1\n", "  to: {}\n")
            .replace("stage: canary", "stage: canry")
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("`to` names neither a revision nor an image"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("error: unknown stage `canry`")
            && r.stderr.contains("did you mean `canary`?"),
        "{}",
        r.stderr
    );
    // promote and abort have no weight to move here.
    let r = Scratch::fixture("gateway-upgrade").run(&["promote", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr
            .contains("this plan moves by stages only: `advance`"),
        "{}",
        r.stderr
    );
}
