//! Mesh upgrades as staged commits, as a platform team runs them: the ingress gateway's canary
//! pod (`kind: GatewayUpgrade`) and the control plane's revision, namespace by namespace
//! (`kind: RevisionUpgrade`); every step a render, every mistake a located error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

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
    // Skipping a stage is refused; going back is the rollback (with the base's upgrade
    // reverted: a canary of the version the gateway already runs is refused).
    s.edit_plan(|p| {
        p.replace(
            "    production:\n      stage: done",
            "    production:\n      stage: canary",
        )
    });
    let r = s.run(&["render"]);
    r.fails();
    assert!(
        r.stderr.contains("Deployment istio-ingressgateway already runs revision 1-23-1: the canary would be the version the gateway runs"),
        "{}",
        r.stderr
    );
    s.write(
        "istio-system/gateway.yaml",
        &s.read("istio-system/gateway.yaml")
            .replace("istio.io/rev: 1-23-1", "istio.io/rev: 1-22-1"),
    );
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

fn ns_labels(objects: &[Value], ns: &str) -> Value {
    named(objects, "Namespace", ns).unwrap()["metadata"]["labels"].clone()
}

fn restarted(objects: &[Value], kind: &str, ns: &str, name: &str) -> bool {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind && o["metadata"]["name"] == name && o["metadata"]["namespace"] == ns
        })
        .unwrap()["spec"]["template"]["metadata"]["annotations"]["canaryplan.io/istio-revision"]
        == "1-23-1"
}

#[test]
fn a_revision_upgrade_moves_namespaces_wave_by_wave_then_the_tag() {
    let s = Scratch::fixture("revision-upgrade");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let out = stream(&s, "production");
    assert_eq!(
        ns_labels(&out, "app-ns-3"),
        serde_json::json!({"istio-injection": "enabled"})
    );
    assert!(!restarted(&out, "Deployment", "app-ns-3", "sleep"));

    // wave-1: app-ns-3 moves to the canary tag; its old label goes (it would win); it restarts.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let out = stream(&s, "production");
    assert_eq!(
        ns_labels(&out, "app-ns-3"),
        serde_json::json!({"istio.io/rev": "prod-canary"})
    );
    assert!(restarted(&out, "Deployment", "app-ns-3", "sleep"));
    assert!(!restarted(&out, "Deployment", "app-ns-1", "sleep"));
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("namespace app-ns-3: revision 1-23-1 (tag prod-canary)"),
        "{status}"
    );
    assert!(
        status.contains("namespace app-ns-1: revision 1-22-1 (tag prod-stable)"),
        "{status}"
    );

    // wave-2: app-ns-1 too, its StatefulSet restarted as well; app-ns-2 stays on prod-stable.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let out = stream(&s, "production");
    assert_eq!(
        ns_labels(&out, "app-ns-1"),
        serde_json::json!({"istio.io/rev": "prod-canary"})
    );
    assert!(restarted(&out, "StatefulSet", "app-ns-1", "cache"));
    assert!(!restarted(&out, "Deployment", "app-ns-2", "sleep"));

    // promote-tags: prod-stable points at 1-23-1 (its label and every webhook's service), and
    // the namespace still on it restarts.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let out = stream(&s, "production");
    let hook = named(
        &out,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod-stable",
    )
    .unwrap();
    assert_eq!(hook["metadata"]["labels"]["istio.io/rev"], "1-23-1");
    for w in hook["webhooks"].as_array().unwrap() {
        assert_eq!(w["clientConfig"]["service"]["name"], "istiod-1-23-1");
    }
    assert!(restarted(&out, "Deployment", "app-ns-2", "sleep"));
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("namespace app-ns-2: revision 1-23-1 (tag prod-stable)"),
        "{status}"
    );

    // done needs the end state in base; then the old revision can go.
    let r = s.run(&["advance", "--env", "production"]);
    r.fails();
    assert!(
        r.stderr
            .contains("at done the base alone would leave pods on revision 1-22-1"),
        "{}",
        r.stderr
    );
    s.write(
        "cluster/namespaces.yaml",
        &s.read("cluster/namespaces.yaml")
            .replace(
                "  name: app-ns-1\n  labels:\n    istio.io/rev: prod-stable",
                "  name: app-ns-1\n  labels:\n    istio.io/rev: prod-canary",
            )
            .replace(
                "    istio-injection: enabled",
                "    istio.io/rev: prod-canary",
            ),
    );
    // Every tag on the old revision moves in base: prod-stable and default.
    s.write(
        "cluster/tags.yaml",
        &s.read("cluster/tags.yaml").replace("1-22-1", "1-23-1"),
    );
    s.run(&["advance", "--env", "production", "--render"]).ok();
    // Only the restart annotations stay in the overlay, so that done restarts nothing.
    let kustomization = s.read("canary/production/kustomization.yaml");
    assert!(
        !kustomization.contains("patch-namespace"),
        "{kustomization}"
    );
    assert!(
        !kustomization.contains("mutatingwebhook"),
        "{kustomization}"
    );
    assert!(
        s.read("canary/production/patch-deployment-app-ns-2-sleep.yaml")
            .contains("keeps its restart annotation (no second restart)")
    );
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("nothing in the rendered stream resolves to revision 1-22-1 (no namespace, tag webhook or pod template): it can be uninstalled once the cluster agrees"),
        "{status}"
    );
}

#[test]
fn revision_upgrade_mistakes_are_located() {
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| p.replace("  - [app-ns-1]\n", "  - [app-ns-1, app-ns-3, app-ns-9]\n"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:16:16: error: namespace `app-ns-3` is in wave 1 already"),
        "{}",
        r.stderr
    );
    // A namespace not in base, found once the plan itself is fine.
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| p.replace("  - [app-ns-1]\n", "  - [app-ns-1, app-ns-9]\n"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:16:16: error: namespace `app-ns-9` is not in the base"),
        "{}",
        r.stderr
    );
    // A tag webhook missing from base.
    let s = Scratch::fixture("revision-upgrade");
    let tags = s.read("cluster/tags.yaml");
    s.write("cluster/tags.yaml", &tags[..tags.find("---\n").unwrap()]);
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("error: the base has no MutatingWebhookConfiguration `istio-revision-tag-prod-canary` for the canary tag"), "{}", r.stderr);
    // A namespace labelled both ways in base: the revision label would be ignored.
    let s = Scratch::fixture("revision-upgrade");
    s.write(
        "cluster/namespaces.yaml",
        &s.read("cluster/namespaces.yaml").replacen(
            "    istio.io/rev: prod-stable\n",
            "    istio.io/rev: prod-stable\n    istio-injection: enabled\n",
            1,
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("cluster/namespaces.yaml:")
            && r.stderr
                .contains("namespace app-ns-1 has both `istio-injection` and `istio.io/rev`"),
        "{}",
        r.stderr
    );
    // promote-tags exists only with tags.
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| {
        let start = p.find("  tags:\n").unwrap();
        let end = p.find("  environments:").unwrap();
        format!("{}{}", &p[..start], &p[end..]).replace("stage: wave-1", "stage: promote-tags")
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("error: unknown stage `promote-tags`")
            && r.stderr
                .contains("the stages are prepare, wave-1, wave-2, done"),
        "{}",
        r.stderr
    );
}

#[test]
fn plans_of_every_kind_render_together() {
    // A monorepo: `render --all` takes the plans of every kind below the directory.
    let dir = tempfile::tempdir().unwrap();
    for f in ["runbook", "lanes", "gateway-upgrade", "revision-upgrade"] {
        copy_fixture(f, &dir.path().join(f));
    }
    let r = run_in(dir.path(), &["render", "--all", "--from-scratch"], &[]);
    r.ok();
    for f in [
        "runbook/gap/production",
        "lanes/gitops/staging",
        "gateway-upgrade/canary/staging",
        "revision-upgrade/canary/production",
    ] {
        assert!(
            dir.path().join(f).join("kustomization.yaml").is_file(),
            "{f}"
        );
    }
    let r = run_in(dir.path(), &["diff", "--all"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn the_readme_examples_are_plans_that_validate() {
    // The GatewayUpgrade and RevisionUpgrade examples of docs/mesh-upgrades.md (once in the
    // README).
    let page = std::fs::read_to_string(root().join("docs/mesh-upgrades.md")).unwrap();
    let section = &page[page.find("# Mesh upgrades as staged commits").unwrap()..];
    let mut blocks = section
        .split("```yaml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()]);
    for fixture in ["gateway-upgrade", "revision-upgrade"] {
        let s = Scratch::fixture(fixture);
        s.write("canaryplan.yaml", blocks.next().unwrap());
        s.run(&["validate"]).ok();
    }
}

#[test]
fn without_tags_a_wave_relabels_namespaces_to_the_revision() {
    // A mesh without tags on the old revision: namespaces name it, the new revision is served
    // by its own istiod (its tag prod-canary in base).
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| {
        let start = p.find("  tags:\n").unwrap();
        let end = p.find("  environments:").unwrap();
        format!("{}{}", &p[..start], &p[end..])
            .replace("  - [app-ns-1]\n", "  - [app-ns-1, app-ns-2]\n")
    });
    s.write(
        "cluster/namespaces.yaml",
        &s.read("cluster/namespaces.yaml")
            .replace("istio.io/rev: prod-stable", "istio.io/rev: 1-22-1"),
    );
    let tags = s.read("cluster/tags.yaml");
    let canary_start = tags.find("---\n").unwrap();
    let default_start = canary_start + 4 + tags[canary_start + 4..].find("---\n").unwrap();
    s.write("cluster/tags.yaml", &tags[canary_start..default_start]);
    let out = stream(&s, "production");
    assert_eq!(
        ns_labels(&out, "app-ns-3"),
        serde_json::json!({"istio.io/rev": "1-23-1"})
    );
    assert!(restarted(&out, "Deployment", "app-ns-3", "sleep"));
    // The canary tag is left alone: no tag moves.
    let hook = named(
        &out,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod-canary",
    )
    .unwrap();
    assert_eq!(hook["metadata"]["labels"]["istio.io/rev"], "1-23-1");
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("namespace app-ns-3: revision 1-23-1 (namespace label istio.io/rev=1-23-1; no tag webhook 1-23-1 in the stream)\n"),
        "{status}"
    );
    assert!(
        status.contains("namespace app-ns-1: revision 1-22-1 (namespace label istio.io/rev=1-22-1"),
        "{status}"
    );
}
