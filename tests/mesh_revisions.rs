//! The Istio control plane's canary upgrade walked as an operator runs it, with the revision
//! of every workload and every tag resolved from each stage's rendered stream alone (the
//! injection resolver, which never sees the plan), and each mistake of issue 22 refused or
//! corrected: the `default` tag moved, namespaces left out of the waves, no second restart at
//! `done`, Rollouts restarted and opted-out workloads skipped, tags reached by URL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use canaryplan::kinds::revision_upgrade::injection::{Injection, pod_templates_changed};
use common::*;
use serde_json::Value;

/// Every workload and tag of the fixture, as `name → revision` ("-" when not injected).
fn revisions(objects: &[Value]) -> Vec<(String, String)> {
    let model = Injection::of(objects);
    let mut out: Vec<(String, String)> = model
        .workloads
        .iter()
        .map(|w| (w.id(), w.injected.revision().unwrap_or("-").to_string()))
        .collect();
    for t in &model.tags {
        out.push((
            format!("tag {}", t.tag),
            t.revision().unwrap_or("mixed").to_string(),
        ));
    }
    out
}

fn expect(objects: &[Value], table: &[(&str, &str)]) {
    let got = revisions(objects);
    let want: Vec<(String, String)> = table
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
}

/// Puts the end state into the base: namespaces on the canary tag, every tag on 1-23-1.
fn end_state_in_base(s: &Scratch) {
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
    s.write(
        "cluster/tags.yaml",
        &s.read("cluster/tags.yaml").replace("1-22-1", "1-23-1"),
    );
}

#[test]
fn the_whole_procedure_resolves_every_workload_and_tag_at_every_stage() {
    let s = Scratch::fixture("revision-upgrade");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let old = "1-22-1";
    let new = "1-23-1";
    // prepare: everything on the old revision; the default tag serves app-ns-3
    // (istio-injection=enabled); the batch job opts out.
    let prepare = stream(&s, "production");
    expect(
        &prepare,
        &[
            ("Deployment app-ns-1/sleep", old),
            ("Deployment app-ns-2/sleep", old),
            ("Deployment app-ns-3/batch", "-"),
            ("Deployment app-ns-3/sleep", old),
            ("Rollout app-ns-3/reviews", old),
            ("StatefulSet app-ns-1/cache", old),
            ("tag default", old),
            ("tag prod-canary", new),
            ("tag prod-stable", old),
        ],
    );
    // wave-1: app-ns-3 moves; exactly what changed revision restarts (the Rollout too).
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let wave1 = stream(&s, "production");
    expect(
        &wave1,
        &[
            ("Deployment app-ns-1/sleep", old),
            ("Deployment app-ns-2/sleep", old),
            ("Deployment app-ns-3/batch", "-"),
            ("Deployment app-ns-3/sleep", new),
            ("Rollout app-ns-3/reviews", new),
            ("StatefulSet app-ns-1/cache", old),
            ("tag default", old),
            ("tag prod-canary", new),
            ("tag prod-stable", old),
        ],
    );
    assert_eq!(
        pod_templates_changed(&prepare, &wave1),
        vec!["Deployment app-ns-3/sleep", "Rollout app-ns-3/reviews"]
    );
    // wave-2: app-ns-1.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let wave2 = stream(&s, "production");
    expect(
        &wave2,
        &[
            ("Deployment app-ns-1/sleep", new),
            ("Deployment app-ns-2/sleep", old),
            ("Deployment app-ns-3/batch", "-"),
            ("Deployment app-ns-3/sleep", new),
            ("Rollout app-ns-3/reviews", new),
            ("StatefulSet app-ns-1/cache", new),
            ("tag default", old),
            ("tag prod-canary", new),
            ("tag prod-stable", old),
        ],
    );
    assert_eq!(
        pod_templates_changed(&wave1, &wave2),
        vec!["Deployment app-ns-1/sleep", "StatefulSet app-ns-1/cache"]
    );
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("revision 1-22-1 cannot be uninstalled yet, still needed by: tag default"),
        "{status}"
    );
    assert!(!status.contains("can be uninstalled once"), "{status}");
    // promote-tags: prod-stable AND default move (label and all their webhooks); app-ns-2
    // restarts.
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let promoted = stream(&s, "production");
    expect(
        &promoted,
        &[
            ("Deployment app-ns-1/sleep", new),
            ("Deployment app-ns-2/sleep", new),
            ("Deployment app-ns-3/batch", "-"),
            ("Deployment app-ns-3/sleep", new),
            ("Rollout app-ns-3/reviews", new),
            ("StatefulSet app-ns-1/cache", new),
            ("tag default", new),
            ("tag prod-canary", new),
            ("tag prod-stable", new),
        ],
    );
    let default = named(
        &promoted,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-default",
    )
    .unwrap();
    let hooks = default["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 4);
    for h in hooks {
        assert_eq!(h["clientConfig"]["service"]["name"], "istiod-1-23-1", "{h}");
    }
    assert_eq!(
        pod_templates_changed(&wave2, &promoted),
        vec!["Deployment app-ns-2/sleep"]
    );
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("nothing in the rendered stream resolves to revision 1-22-1 (no namespace, tag webhook or pod template): it can be uninstalled once the cluster agrees"), "{status}");
    assert!(
        status.contains("check the cluster too: run `istioctl proxy-status` and see that no proxy's ISTIOD is istiod-1-22-1"),
        "{status}"
    );
    // done: refused while the base alone would leave anything on the old revision, the
    // default tag included.
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
    let tags = s.read("cluster/tags.yaml");
    s.write(
        "cluster/tags.yaml",
        &tags
            .replacen("istio.io/rev: 1-22-1", "istio.io/rev: 1-23-1", 1)
            .replacen("name: istiod-1-22-1", "name: istiod-1-23-1", 2),
    );
    let r = s.run(&["advance", "--env", "production"]);
    r.fails();
    assert!(
        r.stderr
            .contains("at done the base alone would leave pods on revision 1-22-1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("tag default (istio-revision-tag-default"),
        "{}",
        r.stderr
    );
    end_state_in_base(&s);
    s.run(&["advance", "--env", "production", "--render"]).ok();
    let done = stream(&s, "production");
    expect(
        &done,
        &[
            ("Deployment app-ns-1/sleep", new),
            ("Deployment app-ns-2/sleep", new),
            ("Deployment app-ns-3/batch", "-"),
            ("Deployment app-ns-3/sleep", new),
            ("Rollout app-ns-3/reviews", new),
            ("StatefulSet app-ns-1/cache", new),
            ("tag default", new),
            ("tag prod-canary", new),
            ("tag prod-stable", new),
        ],
    );
    // done changes no workload: the restart annotations stay (no second restart).
    assert_eq!(
        pod_templates_changed(&promoted, &done),
        Vec::<String>::new()
    );
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("it can be uninstalled once the cluster agrees")
            && status.contains("`istioctl proxy-status`"),
        "{status}"
    );
}

#[test]
fn a_pod_template_pinned_to_the_old_revision_stays_on_it_and_holds_the_uninstall() {
    // A Deployment whose own pod template names the old revision, in a namespace without
    // injection labels: the waves and the tags leave it where it is (its label wins), every
    // stage renders, and `status` names it as what still needs the old revision.
    let s = Scratch::fixture("revision-upgrade");
    s.write(
        "cluster/tools.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tools\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pinned\n  namespace: tools\nspec:\n  selector:\n    matchLabels: {app: pinned}\n  template:\n    metadata:\n      labels: {app: pinned, istio.io/rev: 1-22-1}\n    spec:\n      containers:\n      - {name: pinned, image: curlimages/curl}\n",
    );
    s.write(
        "cluster/kustomization.yaml",
        &s.read("cluster/kustomization.yaml")
            .replace("- tags.yaml", "- tags.yaml\n- tools.yaml"),
    );
    for stage in ["wave-1", "wave-2", "promote-tags"] {
        s.set_stage(stage);
        let r = s.run(&["validate"]);
        assert_eq!(r.code, 0, "{stage}: {}", r.stderr);
    }
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("tools/pinned"), "{status}");
    assert!(status.contains("cannot be uninstalled"), "{status}");
}

#[test]
fn a_pod_opting_in_without_a_namespace_label_keeps_the_old_revision_until_the_default_tag_moves() {
    let s = Scratch::fixture("revision-upgrade");
    s.write(
        "cluster/tools.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tools\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: debug\n  namespace: tools\nspec:\n  selector:\n    matchLabels: {app: debug}\n  template:\n    metadata:\n      labels: {app: debug, sidecar.istio.io/inject: \"true\"}\n    spec:\n      containers:\n      - {name: debug, image: curlimages/curl}\n",
    );
    s.write(
        "cluster/kustomization.yaml",
        &s.read("cluster/kustomization.yaml")
            .replace("- tags.yaml", "- tags.yaml\n- tools.yaml"),
    );
    s.set_stage("wave-2");
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("Deployment tools/debug: 1-22-1 (tag default)"),
        "{status}"
    );
    s.set_stage("promote-tags");
    let out = stream(&s, "production");
    let debug = named(&out, "Deployment", "debug").unwrap();
    assert_eq!(
        debug["spec"]["template"]["metadata"]["annotations"]["canaryplan.io/istio-revision"],
        "1-23-1"
    );
}

#[test]
fn without_tags_in_the_plan_a_tag_on_the_old_revision_is_refused() {
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| {
        let start = p.find("  tags:\n").unwrap();
        let end = p.find("  environments:").unwrap();
        format!("{}{}", &p[..start], &p[end..])
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("cluster/tags.yaml:"), "{}", r.stderr);
    assert!(r.stderr.contains("error: tag default sends pods to revision 1-22-1, and this plan moves no tag: after the uninstall every pod it injects is rejected (failurePolicy: Fail)"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("add `tags: {stable: default}` to the plan: its promote-tags stage points the tag at 1-23-1 (`istioctl tag set default --revision 1-23-1`)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_namespace_on_the_old_revision_in_no_wave_is_refused() {
    let s = Scratch::fixture("revision-upgrade");
    s.write(
        "cluster/namespaces.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: app-ns-4\n  labels:\n    istio.io/rev: 1-22-1\n",
            s.read("cluster/namespaces.yaml")
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("cluster/namespaces.yaml:29:5:")
            && r.stderr.contains("error: namespace app-ns-4 is on revision 1-22-1 (namespace label istio.io/rev=1-22-1; no tag webhook 1-22-1 in the stream) and in no wave: it would keep the old revision, and block its uninstall")
            && r.stderr.contains("add `app-ns-4` to a wave of the plan"),
        "{}",
        r.stderr
    );
    s.edit_plan(|p| p.replace("  - [app-ns-1]\n", "  - [app-ns-1, app-ns-4]\n"));
    s.run(&["validate"]).ok();
}

#[test]
fn a_rollout_is_restarted_and_an_opted_out_deployment_is_not() {
    let s = Scratch::fixture("revision-upgrade");
    let out = stream(&s, "production");
    let annotation = |kind: &str, name: &str| {
        named(&out, kind, name).unwrap()["spec"]["template"]["metadata"]["annotations"]
            ["canaryplan.io/istio-revision"]
            .clone()
    };
    assert_eq!(annotation("Rollout", "reviews"), "1-23-1");
    assert_eq!(annotation("Deployment", "batch"), Value::Null);
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("restart annotation on: Deployment app-ns-3/sleep (revision 1-23-1), Rollout app-ns-3/reviews (revision 1-23-1)"), "{status}");
    assert!(status.contains("not restarted, the injector skips them: Deployment app-ns-3/batch (pod label sidecar.istio.io/inject: \"false\")"), "{status}");
}

#[test]
fn the_default_tag_as_stable_restarts_the_injection_enabled_namespaces_it_moves() {
    // Waves relabel to the revision itself; `default` is the tag the rest of the mesh uses.
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| {
        p.replace(
            "    stable: prod-stable\n    canary: prod-canary\n",
            "    stable: default\n",
        )
        .replace("  - [app-ns-3]\n  - [app-ns-1]\n", "  - [app-ns-1]\n")
    });
    s.set_stage("promote-tags");
    let out = stream(&s, "production");
    // app-ns-3 (istio-injection=enabled, in no wave) is on the default tag: it moves with
    // it, and restarts.
    let sleep = out
        .iter()
        .find(|o| {
            o["kind"] == "Deployment"
                && o["metadata"]["namespace"] == "app-ns-3"
                && o["metadata"]["name"] == "sleep"
        })
        .unwrap();
    assert_eq!(
        sleep["spec"]["template"]["metadata"]["annotations"]["canaryplan.io/istio-revision"],
        "1-23-1"
    );
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("namespace app-ns-3: revision 1-23-1 (tag default)"),
        "{status}"
    );
    assert!(
        status.contains("namespace app-ns-1: revision 1-23-1 (namespace label istio.io/rev=1-23-1"),
        "{status}"
    );
    assert!(
        status.contains("can be uninstalled once the cluster agrees"),
        "{status}"
    );
}

const REMOTE: &str =
    "https://istiod-1-22-1.istio-system.svc:15017/inject/cluster/remote1/net/network1";

/// prod-stable's webhooks reach istiod by URL (a remote cluster's tag).
fn url_tags(s: &Scratch, url: &str) {
    let tags = s.read("cluster/tags.yaml");
    let (stable, rest) = tags.split_at(tags.find("---\n").unwrap());
    let stable = stable.replace(
        "    service:\n      name: istiod-1-22-1\n      namespace: istio-system\n      path: /inject\n      port: 443\n",
        &format!("    url: {url}\n"),
    );
    s.write("cluster/tags.yaml", &format!("{stable}{rest}"));
}

#[test]
fn a_tag_reached_by_url_is_moved_whole() {
    let s = Scratch::fixture("revision-upgrade");
    url_tags(&s, REMOTE);
    s.set_stage("promote-tags");
    let out = stream(&s, "production");
    let hook = named(
        &out,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod-stable",
    )
    .unwrap();
    assert_eq!(hook["metadata"]["labels"]["istio.io/rev"], "1-23-1");
    for w in hook["webhooks"].as_array().unwrap() {
        assert_eq!(
            w["clientConfig"]["url"],
            "https://istiod-1-23-1.istio-system.svc:15017/inject/cluster/remote1/net/network1"
        );
    }
    let tag = Injection::of(&out);
    assert_eq!(tag.tag("prod-stable").unwrap().revision(), Some("1-23-1"));
}

#[test]
fn a_tag_whose_url_names_no_istiod_needs_the_new_revisions_url() {
    let s = Scratch::fixture("revision-upgrade");
    let external = "https://istiod.mesh.example.net:15017/inject/cluster/remote1/net/network1";
    url_tags(&s, external);
    // The URL names no revision: the tag is resolved by the revision's own webhook in base.
    let own = |rev: &str, url: &str| {
        format!(
            "---\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  name: istio-sidecar-injector-{rev}\n  labels:\n    istio.io/rev: {rev}\nwebhooks:\n- name: rev.namespace.sidecar-injector.istio.io\n  clientConfig:\n    url: {url}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  namespaceSelector:\n    matchLabels:\n      istio.io/rev: {rev}\n"
        )
    };
    let base_tags = s.read("cluster/tags.yaml");
    s.write(
        "cluster/tags.yaml",
        &format!("{base_tags}{}", own("1-22-1", external)),
    );
    s.set_stage("promote-tags");
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("cluster/tags.yaml:"), "{}", r.stderr);
    assert!(r.stderr.contains("of tag prod-stable reaches its istiod by url https://istiod.mesh.example.net:15017/inject/cluster/remote1/net/network1, and the base does not say the new revision's url"), "{}", r.stderr);
    let new_url =
        "https://istiod-canary.mesh.example.net:15017/inject/cluster/remote1/net/network1";
    s.write(
        "cluster/tags.yaml",
        &format!(
            "{base_tags}{}{}",
            own("1-22-1", external),
            own("1-23-1", new_url)
        ),
    );
    let out = stream(&s, "production");
    let hook = named(
        &out,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod-stable",
    )
    .unwrap();
    for w in hook["webhooks"].as_array().unwrap() {
        assert_eq!(w["clientConfig"]["url"], new_url);
    }
    assert_eq!(
        Injection::of(&out).tag("prod-stable").unwrap().revision(),
        Some("1-23-1")
    );
}

#[test]
fn a_half_moved_tag_in_base_is_refused() {
    let s = Scratch::fixture("revision-upgrade");
    url_tags(&s, REMOTE);
    let tags = s.read("cluster/tags.yaml");
    s.write(
        "cluster/tags.yaml",
        &tags.replacen("istio.io/rev: 1-22-1", "istio.io/rev: 1-23-1", 1),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "tag prod-stable sends to 1-22-1 (label istio.io/rev: 1-23-1), not to revision 1-22-1"
        ) || r.stderr.contains("tag prod-stable is half-moved"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_dotted_or_unserved_revision_is_refused() {
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| p.replace("to: 1-23-1", "to: 1.23.1"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:13:7: error: revision `1.23.1` is not a DNS label")
            && r.stderr.contains("did you mean `1-23-1`?"),
        "{}",
        r.stderr
    );
    let s = Scratch::fixture("revision-upgrade");
    s.edit_plan(|p| p.replace("to: 1-23-1", "to: 1-24-0"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "canaryplan.yaml:13:7: error: no injector in the base serves revision 1-24-0"
        ),
        "{}",
        r.stderr
    );
}
