//! The gateway canary upgrade on a base shaped like Istio's `gateway` chart output (fixture
//! `gateway-upgrade`): the injecting revision of the gateway and its canary resolved at every
//! stage from the stream alone, targets that would make the canary pointless or wrong refused,
//! and what an operator reads in `status`, `explain` and `init`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use canaryplan::kinds::revision_upgrade::injection::Injection;
use common::*;

fn revision_of(objects: &[serde_json::Value], name: &str) -> Option<String> {
    Injection::of(objects)
        .workload("Deployment", "istio-system", name)
        .and_then(|w| w.injected.revision().map(str::to_string))
}

#[test]
fn the_gateway_and_its_canary_are_injected_by_the_right_revision_at_every_stage() {
    let s = Scratch::fixture("gateway-upgrade");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let gw = "istio-ingressgateway";
    let canary = "istio-ingressgateway-canary";
    let expect = [
        ("prepare", Some("1-22-1"), None),
        ("canary", Some("1-22-1"), Some("1-23-1")),
        ("upgrade", Some("1-23-1"), Some("1-23-1")),
        ("cleanup", Some("1-23-1"), None),
    ];
    for (i, (stage, gateway_rev, canary_rev)) in expect.into_iter().enumerate() {
        if i > 0 {
            s.run(&["advance", "--env", "production", "--render"]).ok();
        }
        let out = stream(&s, "production");
        assert_eq!(revision_of(&out, gw).as_deref(), gateway_rev, "{stage}");
        assert_eq!(revision_of(&out, canary).as_deref(), canary_rev, "{stage}");
    }
}

#[test]
fn the_canary_does_not_carry_the_old_releases_labels() {
    let s = Scratch::fixture("gateway-upgrade");
    let out = stream(&s, "staging");
    let canary = named(&out, "Deployment", "istio-ingressgateway-canary").unwrap();
    for labels in [
        &canary["metadata"]["labels"],
        &canary["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(labels["app.kubernetes.io/version"], "1.23.1", "{labels}");
        assert!(labels.get("helm.sh/chart").is_none(), "{labels}");
    }
    // At upgrade the gateway's pods say their new version too.
    s.set_stage("upgrade");
    let out = stream(&s, "staging");
    let gateway = named(&out, "Deployment", "istio-ingressgateway").unwrap();
    assert_eq!(
        gateway["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "1.23.1"
    );
}

#[test]
fn a_target_the_gateway_already_runs_is_refused() {
    let s = Scratch::fixture("gateway-upgrade");
    s.edit_plan(|p| p.replace("revision: 1-23-1", "revision: 1-22-1"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:13:15: error: Deployment istio-ingressgateway already runs revision 1-22-1: the canary would be the version the gateway runs, and the upgrade would change nothing")
            && r.stderr.contains("name the new control plane's revision in `to.revision` (the base serves 1-22-1, 1-23-1)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_proxy_image_of_another_version_than_the_revision_is_refused() {
    let s = Scratch::fixture("gateway-upgrade");
    s.edit_plan(|p| {
        p.replace(
            "    revision: 1-23-1\n",
            "    revision: 1-23-1\n    image: docker.io/istio/proxyv2:1.22.1\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:14:12: error: image docker.io/istio/proxyv2:1.22.1 is version 1.22.1, the old version, revision 1-23-1 is version 1.23.1: the canary's proxy must match its control plane's version"),
        "{}",
        r.stderr
    );
    // The matching version is accepted.
    s.edit_plan(|p| p.replace("proxyv2:1.22.1", "proxyv2:1.23.1"));
    s.run(&["validate"]).ok();
}

#[test]
fn an_image_only_upgrade_of_an_injected_gateway_is_refused() {
    let s = Scratch::fixture("gateway-upgrade");
    s.edit_plan(|p| {
        p.replace(
            "    revision: 1-23-1\n",
            "    image: docker.io/istio/proxyv2:1.23.1\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:13:12: error: an image-only upgrade of injected gateway istio-ingressgateway runs proxy docker.io/istio/proxyv2:1.23.1 under its old control plane (revision 1-22-1)")
            && r.stderr.contains("set `to.revision` to it; keep `image: auto`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_dotted_or_unserved_revision_is_refused() {
    let s = Scratch::fixture("gateway-upgrade");
    s.edit_plan(|p| p.replace("revision: 1-23-1", "revision: 1.23.1"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:13:15: error: revision `1.23.1` is not a DNS label")
            && r.stderr.contains("did you mean `1-23-1`?"),
        "{}",
        r.stderr
    );
    let s = Scratch::fixture("gateway-upgrade");
    s.edit_plan(|p| p.replace("revision: 1-23-1", "revision: 1-24-0"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:13:15: error: no injector in the base serves revision 1-24-0: the gateway's pods would come back with `image: auto` and no proxy"),
        "{}",
        r.stderr
    );
    // The base serves it once the new revision's istiod Service is there.
    s.write(
        "istio-system/istiod.yaml",
        &s.read("istio-system/istiod.yaml")
            .replace("1-23-1", "1-24-0"),
    );
    s.run(&["validate"]).ok();
}

#[test]
fn a_daemonset_gateway_is_said_to_be_unsupported() {
    let s = Scratch::fixture("gateway-upgrade");
    s.write(
        "istio-system/gateway.yaml",
        &s.read("istio-system/gateway.yaml").replacen(
            "apiVersion: apps/v1\nkind: Deployment\n",
            "apiVersion: apps/v1\nkind: DaemonSet\n",
            1,
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("istio-system/gateway.yaml:")
            && r.stderr.contains("error: gateway istio-ingressgateway is a DaemonSet: a GatewayUpgrade canaries a Deployment")
            && !r.stderr.contains("Deployment none"),
        "{}",
        r.stderr
    );
}

#[test]
fn status_and_explain_say_what_shares_the_gateways_connections() {
    let s = Scratch::fixture("gateway-upgrade");
    let status = s.run(&["status", "--env", "staging"]).ok().stdout.clone();
    assert!(status.contains("HorizontalPodAutoscaler istio-ingressgateway scales Deployment istio-ingressgateway only, yet counts the canary's pods too"), "{status}");
    let explain = s.run(&["explain", "--env", "staging"]).ok().stdout.clone();
    assert!(explain.contains("gateway istio-ingressgateway (staging, stage canary): 75% istio-ingressgateway (gateway, old version), 25% istio-ingressgateway-canary (canary, new version)"), "{explain}");
    assert!(
        explain.contains("a pod share, not a weight: Service istio-ingressgateway spreads connections over 4 pods, 1 of them the canary's"),
        "{explain}"
    );
    // At upgrade the canary still runs, and status says so.
    s.set_stage("upgrade");
    let status = s.run(&["status", "--env", "staging"]).ok().stdout.clone();
    assert!(
        status.contains("the canary Deployment istio-ingressgateway-canary still runs (1 pod(s), the new version) beside the upgraded gateway until cleanup"),
        "{status}"
    );
    assert!(status.contains("istio-ingressgateway-canary"), "{status}");
}

#[test]
fn init_proposes_a_gateway_upgrade_for_a_gateway_and_a_revision_upgrade_for_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &fixture_dir("gateway-upgrade").join("istio-system"),
        &dir.path().join("istio-system"),
    );
    copy_tree(
        &fixture_dir("revision-upgrade").join("cluster"),
        &dir.path().join("cluster"),
    );
    run_in(
        dir.path(),
        &["init", "--base", "istio-system", "--output", "gateway.yaml"],
        &[],
    )
    .ok();
    let plan = std::fs::read_to_string(dir.path().join("gateway.yaml")).unwrap();
    assert!(plan.contains("kind: GatewayUpgrade\n"), "{plan}");
    assert!(plan.contains("  gateway: istio-ingressgateway\n"), "{plan}");
    assert!(plan.contains("    revision: 1-23-1\n"), "{plan}");
    assert!(!plan.contains("sha256"), "{plan}");
    run_in(dir.path(), &["validate", "gateway.yaml"], &[]).ok();

    run_in(
        dir.path(),
        &["init", "--base", "cluster", "--output", "mesh.yaml"],
        &[],
    )
    .ok();
    let plan = std::fs::read_to_string(dir.path().join("mesh.yaml")).unwrap();
    assert!(plan.contains("kind: RevisionUpgrade\n"), "{plan}");
    assert!(
        plan.contains("  from: 1-22-1\n") && plan.contains("  to: 1-23-1\n"),
        "{plan}"
    );
    assert!(
        plan.contains("    stable: prod-stable\n    canary: prod-canary\n"),
        "{plan}"
    );
    run_in(dir.path(), &["validate", "mesh.yaml"], &[]).ok();
}
