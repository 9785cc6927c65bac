//! The layouts real teams have (Istio's bookinfo, an Argo Rollouts leftover, shared bases and
//! namespaces): each supported one is walked through every stage and proven by the traffic
//! evaluator, which reads only the final stream; each unsafe one is refused with a located
//! error that says what to change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use canaryplan::traffic::Mesh;
use common::*;
use serde_json::Value;

/// Where the routes to `host` send traffic: `(workload, percent)` per destination of every
/// route naming it, from the final stream alone.
fn traffic(objects: &[Value], host: &str) -> Vec<Vec<(String, f64)>> {
    Mesh::new(objects)
        .routes()
        .iter()
        .filter(|r| r.destinations.iter().any(|d| d.host == host))
        .map(|r| {
            r.destinations
                .iter()
                .flat_map(|d| d.endpoints.iter().map(|w| (w.name.clone(), d.percent)))
                .collect()
        })
        .collect()
}

fn deployments(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_stage_of_every_fixture_passes_the_traffic_check() {
    let mut checked = 0;
    for (fixture, stage, scratch) in every_stage() {
        for env in environments(&scratch) {
            let objects = stream(&scratch, &env);
            let problems = Mesh::new(&objects).problems();
            assert!(
                problems.is_empty(),
                "{fixture} {stage} {env}: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} streams checked");
}

/// A user walks bookinfo's reviews from v1 to v4 with the operator commands, one commit per
/// stage; at each stage the evaluator shows where requests go.
#[test]
fn versioned_release_of_bookinfo_reviews() {
    let s = Scratch::fixture("bookinfo-reviews");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let at = |s: &Scratch| {
        let objects = stream(s, "staging");
        (traffic(&objects, "reviews"), deployments(&objects))
    };

    // prepare: routes already pin subset v1; the canary does not run yet.
    let (t, d) = at(&s);
    assert_eq!(t, vec![vec![("reviews-v1".to_string(), 100.0)]]);
    assert!(!d.contains(&"reviews-v4".to_string()), "{d:?}");

    // route: reviews-v4 runs, with no traffic.
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    let (t, d) = at(&s);
    assert_eq!(
        t,
        vec![vec![
            ("reviews-v1".to_string(), 100.0),
            ("reviews-v4".to_string(), 0.0)
        ]]
    );
    assert!(d.contains(&"reviews-v4".to_string()));

    // shift: the weights the plan says.
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    s.run(&["promote", "--env", "staging", "--render"]).ok();
    let (t, _) = at(&s);
    assert_eq!(
        t,
        vec![vec![
            ("reviews-v1".to_string(), 90.0),
            ("reviews-v4".to_string(), 10.0)
        ]]
    );
    // cleanup-1 before 100 is refused, and changes nothing.
    let before = s.read("canaryplan.yaml");
    s.run(&["advance", "--env", "staging"]).fails();
    assert_eq!(s.read("canaryplan.yaml"), before);
    s.run(&["promote", "--env", "staging", "--to", "100", "--render"])
        .ok();

    // cleanup-1: all on v4; v1 still runs for an instant rollback.
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    let (t, d) = at(&s);
    assert_eq!(t, vec![vec![("reviews-v4".to_string(), 100.0)]]);
    assert!(d.contains(&"reviews-v1".to_string()));
    // cleanup-2: reviews-v1 goes (no route names it any more); v2 and v3 are untouched. The
    // suggested commit says so, from the rendered difference.
    let r = s.run(&["advance", "--env", "staging", "--render"]);
    assert!(
        r.ok()
            .stdout
            .contains("canary(reviews): staging to cleanup-2: removes Deployment reviews-v1\n"),
        "{}",
        r.stdout
    );
    let (_, d) = at(&s);
    assert_eq!(d, ["reviews-v2", "reviews-v3", "reviews-v4"]);
    s.run(&["advance", "--env", "staging", "--render"]).ok();

    // done is refused until the base holds the end state...
    let r = s.run(&["advance", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr
            .contains("Deployment reviews-v4 would be deleted: add it to the base"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Finishing a versioned release"),
        "{}",
        r.stderr
    );

    // ...which the user commits as the README says: the canary Deployment from the overlay into
    // base, reviews-v1 out, the route and the subset to v4.
    move_reviews_v4_into_base(&s, "staging");
    s.write(
        "base/virtual-service.yaml",
        &s.read("base/virtual-service.yaml")
            .replace("subset: v1", "subset: v4"),
    );
    s.write(
        "base/destination-rule.yaml",
        &format!(
            "{}  - name: v4\n    labels:\n      version: v4\n",
            s.read("base/destination-rule.yaml")
        ),
    );
    // cleanup-3 still renders against the edited base; done renders nothing beyond it, and
    // the cluster does not change.
    s.run(&["render", "--from-scratch"]).ok();
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    let k = s.read("canary/staging/kustomization.yaml");
    assert!(
        k.contains("canaryplan.io/stage: done")
            && k.contains("resources:\n- ../../base\n")
            && !k.contains("patches:"),
        "{k}"
    );
    let (t, d) = at(&s);
    assert_eq!(t, vec![vec![("reviews-v4".to_string(), 100.0)]]);
    assert_eq!(d, ["reviews-v2", "reviews-v3", "reviews-v4"]);
}

#[test]
fn versioned_never_reaches_the_canary_past_its_subset() {
    // productpage without the mesh's VirtualService: sidecar callers would reach v2 by pod count.
    let s = Scratch::fixture("bookinfo-productpage");
    std::fs::remove_file(s.path().join("base/mesh.yaml")).unwrap();
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml")
            .replace("- mesh.yaml\n", ""),
    );
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let objects = stream(&s, "production");
    // prepare pins the gateway's route to subset v1 (make-before-break: the subset comes first).
    assert_eq!(
        traffic(&objects, "productpage"),
        vec![vec![("productpage-v1".to_string(), 100.0)]]
    );
    let r = s.run(&["advance", "--env", "production"]);
    r.fails();
    assert!(
        r.stderr.contains("mesh callers of Service productpage are not routed by any VirtualService: they would reach the pods of Deployment productpage-v2 by pod count"),
        "{}",
        r.stderr
    );
}

#[test]
fn productpage_splits_gateway_and_mesh_callers_alike_with_its_trust_domain() {
    let s = Scratch::fixture("bookinfo-productpage");
    s.set_stage("shift");
    let objects = stream(&s, "production");
    let t = traffic(&objects, "productpage");
    assert_eq!(t.len(), 2, "the gateway's and the mesh's route: {t:?}");
    for route in t {
        assert_eq!(
            route,
            vec![
                ("productpage-v1".to_string(), 50.0),
                ("productpage-v2".to_string(), 50.0)
            ]
        );
    }
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "AuthorizationPolicy")
        .unwrap();
    assert_eq!(
        policy["spec"]["rules"][0]["from"][0]["source"]["principals"][0],
        "mesh.example.com/ns/istio-system/sa/istio-ingressgateway-service-account"
    );
}

#[test]
fn subsets_named_in_base_routes_are_reused_through_every_stage() {
    // The Argo Rollouts layout: routes name `stable` (100) and `canary` (0). After weight 100
    // `stable` follows the canary's pods until the route patch is gone, so no stage leaves a
    // route on a subset without pods (every_stage_of_every_fixture_passes_the_traffic_check).
    let s = Scratch::fixture("argo-subsets");
    for (stage, expected) in [
        (
            "prepare",
            vec![("rollouts-demo", 100.0), ("rollouts-demo", 0.0)],
        ),
        (
            "route",
            vec![("rollouts-demo-blue", 0.0), ("rollouts-demo", 100.0)],
        ),
        ("cleanup-1", vec![("rollouts-demo", 100.0)]),
        (
            "cleanup-2",
            vec![("rollouts-demo", 100.0), ("rollouts-demo", 0.0)],
        ),
        (
            "cleanup-3",
            vec![("rollouts-demo", 100.0), ("rollouts-demo", 0.0)],
        ),
    ] {
        s.set_stage(stage);
        let objects = stream(&s, "production");
        let expected: Vec<(String, f64)> = expected
            .into_iter()
            .map(|(w, p)| (w.to_string(), p))
            .collect();
        assert_eq!(
            traffic(&objects, "rollouts-demo"),
            vec![expected],
            "{stage}"
        );
    }
}

/// A plan for bookinfo's reviews written as if it were the runbook's layout.
const SUCCESSION_ON_BOOKINFO: &str = "apiVersion: canaryplan.io/v1alpha1
kind: CanaryPlan
metadata: {name: reviews}
spec:
  base: base
  service: reviews
  workload: reviews-v1
  stable:
    version: v1
    image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.1
    labels: {app: reviews-stable}
  canary:
    version: v4
  environments:
    staging: {stage: prepare}
";

#[test]
fn a_template_label_patch_that_breaks_an_immutable_selector_is_refused() {
    let s = Scratch::fixture("bookinfo-reviews");
    s.write("canaryplan.yaml", SUCCESSION_ON_BOOKINFO);
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("base/reviews.yaml:27:5: error: the selector of Deployment reviews-v1 (app=reviews,version=v1) does not match its pod template's labels (app=reviews,version=v4)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("set `method: versioned`"), "{}", r.stderr);
}

#[test]
fn a_canary_version_other_pods_carry_is_refused() {
    // Versioned: reviews-v2 exists and runs another image, so v2 cannot be the new canary's
    // version (the error is at canary.image; the hint offers shifting to what runs).
    let s = Scratch::fixture("bookinfo-reviews");
    s.edit_plan(|t| t.replace("version: v4", "version: v2"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:16:12: error: the base already runs Deployment reviews-v2 of version v2, with image docker.io/istio/examples-bookinfo-reviews-v2:1.20.1, not canary.image"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("choose a canary.version no Deployment in base uses"),
        "{}",
        r.stderr
    );
    // A Deployment of the canary's name whose pods carry another version.
    let s = Scratch::fixture("bookinfo-reviews");
    s.write(
        "base/reviews.yaml",
        &s.read("base/reviews.yaml")
            .replace("  name: reviews-v3\n", "  name: reviews-v4\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:15:14: error: the canary Deployment would be reviews-v4, but the base already has a Deployment reviews-v4 whose pods are labelled `version: v3`"),
        "{}",
        r.stderr
    );
    // Succession: another Deployment behind the Service already carries `version: v2`.
    let s = Scratch::fixture("runbook");
    s.write(
        "base/other.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-experiment}\nspec:\n  selector: {matchLabels: {app: web, track: experiment}}\n  template:\n    metadata: {labels: {app: web, track: experiment, version: v2}}\n    spec: {containers: [{name: web, image: registry.example/web:exp}]}\n",
    );
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml")
            .replace("- service.yaml\n", "- service.yaml\n- other.yaml\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("pods of Deployment web-experiment behind Service my-service-web already carry `version: v2`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_patched_selector_that_reaches_another_apps_pods_is_refused() {
    // A shared namespace: another app's pods carry `canary: enabled` too.
    let s = Scratch::fixture("no-virtualservice");
    s.write(
        "base/other.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: billing}\nspec:\n  selector: {matchLabels: {app: billing}}\n  template:\n    metadata: {labels: {app: billing, canary: enabled}}\n    spec: {containers: [{name: billing, image: registry.example/billing:1}]}\n",
    );
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml")
            .replace("- ledger.yaml\n", "- ledger.yaml\n- other.yaml\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("the patched selector of Service ledger (canary=enabled) also selects the pods of Deployment billing"),
        "{}",
        r.stderr
    );
}

#[test]
fn new_code_in_a_shared_base_is_refused_where_it_would_take_all_traffic() {
    let s = Scratch::fixture("runbook");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    // The README once said: put the new image in base. With one base for both environments
    // that sends all of production's traffic to it at prepare.
    s.write(
        "base/deployment.yaml",
        &s.read("base/deployment.yaml").replacen(
            "image: registry.example/my-service@sha256:be6b2a4c1f0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa",
            "image: registry.example/my-service:2.0.0",
            1,
        ),
    );
    let r = s.run(&["render", "--from-scratch"]);
    r.fails();
    assert!(
        r.stderr.contains("at stage prepare all of environment `production`'s traffic reaches Deployment web, whose base runs image registry.example/my-service:2.0.0, not stable.image registry.example/my-service@sha256:be6b"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("give this environment its own base"),
        "{}",
        r.stderr
    );
    // At shift (weight 0: all traffic on the pinned copy) the new code is where it belongs.
    s.set_stage("shift");
    s.edit_plan(|t| t.replace("weight: 50", "weight: 0"));
    s.run(&["render", "--stdout", "--env", "production"]).ok();
}

#[test]
fn an_http_route_to_the_same_service_is_refused() {
    let s = Scratch::fixture("runbook");
    s.write(
        "base/httproute.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\nspec:\n  parentRefs: [{name: public}]\n  rules:\n  - backendRefs: [{name: my-service-web, port: 80}]\n",
    );
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml")
            .replace("- service.yaml\n", "- service.yaml\n- httproute.yaml\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("base/httproute.yaml:7:5: error: HTTPRoute web sends traffic to Service my-service-web too, past the VirtualService canaryplan weights"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_argo_rollout_in_base_says_what_it_is_and_how_to_migrate() {
    let s = Scratch::fixture("argo-subsets");
    let app = s.read("base/app.yaml");
    s.write(
        "base/app.yaml",
        &app.replace(
            "apiVersion: apps/v1\nkind: Deployment",
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout",
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: `rollouts-demo` is an Argo Rollouts Rollout, not a Deployment"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Coming from Argo Rollouts"),
        "{}",
        r.stderr
    );
}

#[test]
fn two_plans_in_one_namespace_must_not_select_each_others_pods() {
    let mono = tempfile::tempdir().unwrap();
    copy_fixture("no-virtualservice", &mono.path().join("apps/ledger"));
    copy_fixture("no-virtualservice", &mono.path().join("apps/billing"));
    let billing = mono.path().join("apps/billing");
    for f in [
        "canaryplan.yaml",
        "base/ledger.yaml",
        "base/kustomization.yaml",
    ] {
        let text = std::fs::read_to_string(billing.join(f)).unwrap();
        std::fs::write(billing.join(f), text.replace("ledger", "billing")).unwrap();
    }
    std::fs::rename(
        billing.join("base/ledger.yaml"),
        billing.join("base/billing.yaml"),
    )
    .unwrap();
    let r = run_in(
        mono.path(),
        &[
            "render",
            "apps/billing/canaryplan.yaml",
            "apps/ledger/canaryplan.yaml",
        ],
        &[],
    );
    r.fails();
    assert!(
        r.stderr.contains("apps/billing/canaryplan.yaml:20:10: error: in environment `dev` the patched selector of Service billing (canary=enabled) also selects the pods of Deployment ledger of apps/ledger/canaryplan.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        !mono.path().join("apps/ledger/rendered").exists(),
        "nothing is written"
    );
}

#[test]
fn explain_shows_every_stage_of_every_fixture_without_a_problem() {
    let mut shown = 0;
    for (fixture, stage, scratch) in every_stage() {
        for env in environments(&scratch) {
            let r = scratch.run(&["explain", "--env", &env]);
            assert_eq!(
                r.code, 0,
                "{fixture} {stage} {env}:\n{}{}",
                r.stdout, r.stderr
            );
            let json: Value = serde_json::from_str(
                &scratch
                    .run(&["explain", "--env", &env, "--format", "json"])
                    .stdout,
            )
            .unwrap();
            assert_eq!(
                json["problems"],
                serde_json::json!([]),
                "{fixture} {stage} {env}"
            );
            shown += 1;
        }
    }
    assert!(shown >= 45);
    // The text form (the README's example is `fixtures/delegate`, asserted in tests/routing.rs).
    let s = Scratch::fixture("bookinfo-reviews");
    assert_eq!(
        s.run(&["explain"]).ok().stdout,
        "reviews  http  route [0]  (VirtualService reviews, via mesh)\n  every request  → v1 90% · v4 10%\n"
    );
}

#[test]
fn a_route_behind_a_catch_all_is_refused_and_explained() {
    // A base whose header route sits after the catch-all: Istio takes the first match, so no
    // request ever reaches it.
    let s = Scratch::fixture("runbook");
    let vs = s.read("base/virtualservice.yaml").replace(
        "  http:\n  - name: primary\n    match:\n    - uri: {prefix: /}\n",
        "  http:\n  - name: primary\n",
    );
    s.write(
        "base/virtualservice.yaml",
        &format!("{vs}  - name: testers\n    match:\n    - headers: {{x-tester: {{exact: \"yes\"}}}}\n    route:\n    - destination: {{host: my-service-web}}\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("VirtualService relational-data-access--web, http[1] (\"testers\"): no request can reach this route: VirtualService relational-data-access--web, http[0] (\"primary\") catches every request first"),
        "{}",
        r.stderr
    );
    let e = s.run(&["explain", "--env", "production"]);
    assert_eq!(e.code, 1, "{}", e.stderr);
    assert!(
        e.stdout.contains("  header x-tester=yes  → never: "),
        "{}",
        e.stdout
    );
}

#[test]
fn test_traffic_gets_a_route_of_its_own_before_the_split() {
    // Istio takes the first route whose conditions match: the test route must stand before
    // `primary` (which catches `uri prefix /`, so everything), or no test request reaches it.
    let s = Scratch::fixture("test-routes");
    let table = s
        .run(&["explain", "--env", "production"])
        .ok()
        .stdout
        .clone();
    assert_eq!(
        table,
        "my-service.example.net  http  route \"primary-canary\"  (VirtualService relational-data-access--web, via istio-system/public)\n  uri prefix / and header x-canary=true  → v2 100%\nmy-service.example.net  http  route \"primary\"  (VirtualService relational-data-access--web, via istio-system/public)\n  uri prefix /, less what the routes above catch  → v1 95% · v2 5%\n"
    );
    // `status` shows the split the main route makes, not the test route's 100%.
    let json: Value =
        serde_json::from_str(&s.run(&["status", "--format", "json"]).ok().stdout).unwrap();
    let production = &json["plans"][0]["environments"][1];
    assert_eq!(production["traffic"][0]["percent"], 95, "{production}");
    assert_eq!(production["traffic"][1]["percent"], 5, "{production}");
    // The original route's name still selects it in `routes:`.
    s.edit_plan(|t| t.replace("  steps:", "  routes: [primary]\n  steps:"));
    s.run(&["validate"]).ok();
    // The test route keeps the route's retries, timeout and CORS, and goes with cleanup-2.
    let objects = stream(&s, "production");
    let vs = objects
        .iter()
        .find(|o| o["kind"] == "VirtualService")
        .unwrap();
    let test = &vs["spec"]["http"][0];
    assert_eq!(test["timeout"], "10s");
    assert_eq!(test["retries"]["attempts"], 3);
    assert!(test.get("mirror").is_none());
    s.set_stage("cleanup-2");
    let objects = stream(&s, "production");
    let vs = objects
        .iter()
        .find(|o| o["kind"] == "VirtualService")
        .unwrap();
    assert_eq!(vs["spec"]["http"].as_array().unwrap().len(), 1);
}

#[test]
fn test_traffic_conflicts_and_typos_are_located() {
    let s = Scratch::fixture("test-routes");
    s.edit_plan(|t| {
        t.replacen(
            "  - headers: {x-canary: {exact: \"true\"}}\n",
            "  - headers: {x-canary: {exact: \"true\"}}\n    uri: {exact: /beta}\n",
            1,
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:28:5: error: `uri` is set here and, differently, on route http[0] of VirtualService relational-data-access--web"),
        "{}",
        r.stderr
    );
    let s = Scratch::fixture("test-routes");
    s.edit_plan(|t| t.replacen("  - headers: {end-user", "  - heders: {end-user", 1));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: `heders` is not a field of an Istio match request")
            && r.stderr.contains("did you mean `headers`?"),
        "{}",
        r.stderr
    );
}
