//! Issue 23, Gateway API as Istio's helloworld users meet it: ending a versioned release with
//! `canaryplan finish` (both backends), weight 0 that is 0 for callers no route weights, a
//! canary version that already runs, a mirror on a rule shared with other backends, and the
//! wording and refusals of this mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Where each request class goes in a stream: (route, [(workload, percent)]).
fn table(objects: &[Value]) -> Vec<(String, Vec<(String, f64)>)> {
    canaryplan::traffic::Mesh::new(objects)
        .routes()
        .iter()
        .map(|r| {
            let to = r
                .destinations
                .iter()
                .flat_map(|d| d.endpoints.iter().map(|w| (w.name.clone(), d.percent)))
                .collect();
            (r.position(), to)
        })
        .collect()
}

/// The Deployments whose pods a Service of the stream selects.
fn selected_by(objects: &[Value], service: &str) -> Vec<String> {
    let mesh = canaryplan::traffic::Mesh::new(objects);
    let svc = mesh.service_for_host(service, Some("hello")).unwrap();
    let mut names: Vec<String> = mesh
        .endpoints(&svc, None)
        .iter()
        .map(|w| w.name.clone())
        .collect();
    names.sort();
    names
}

/// The helloworld fixture walked to cleanup-3 the way a user does, one stage per commit.
fn helloworld_at_cleanup_3() -> Scratch {
    let s = Scratch::fixture("gateway-helloworld");
    s.set_stage("prepare");
    s.run(&["render"]).ok();
    for _ in ["route", "shift"] {
        s.run(&["advance", "--env", "staging", "--render"]).ok();
    }
    s.run(&["promote", "--env", "staging", "--to", "100", "--render"])
        .ok();
    for _ in ["cleanup-1", "cleanup-2", "cleanup-3"] {
        s.run(&["advance", "--env", "staging", "--render"]).ok();
    }
    s
}

#[test]
fn done_lists_every_remaining_edit_and_finish_prints_then_writes_them() {
    let s = helloworld_at_cleanup_3();
    let before = s.tree("base") + &s.read("canaryplan.yaml");

    // One refusal names all five edits, where they go, and the command that makes them.
    let r = s.run(&["advance", "--env", "staging"]);
    r.fails();
    for step in [
        "(5 edit(s), in one commit)",
        "- base/helloworld.yaml: replace Deployment helloworld-v1 with Deployment helloworld-v2 (as cleanup-3 renders it)",
        "- base/gateway.yaml: change HTTPRoute helloworld: its rules name what cleanup-3's do",
        "- base/helloworld.yaml: add Service helloworld-v2",
        "- base/gateway.yaml: add HTTPRoute helloworld-mesh",
        "- canaryplan.yaml:11: remove `meshRoute: generate`",
        "`canaryplan finish --env staging` prints them as a patch",
    ] {
        assert!(r.stderr.contains(step), "{step}:\n{}", r.stderr);
    }

    // `finish` prints the edit as a patch and writes nothing.
    let p = s.run(&["finish", "--env", "staging"]);
    p.ok();
    for header in [
        "--- a/base/gateway.yaml\n+++ b/base/gateway.yaml\n",
        "--- a/base/helloworld.yaml\n+++ b/base/helloworld.yaml\n",
        "--- a/canaryplan.yaml\n+++ b/canaryplan.yaml\n",
    ] {
        assert!(p.stdout.contains(header), "{header}\n{}", p.stdout);
    }
    // The route's backendRef changes in place (flow style kept), the Deployment's scalars
    // too: the file's comments stay.
    assert!(
        p.stdout.contains(
            "-    - {name: helloworld, port: 5000}\n+    - {name: helloworld-v2, port: 5000}\n"
        ),
        "{}",
        p.stdout
    );
    assert!(p.stdout.contains("-  meshRoute: generate             # mesh callers get the same weights while the release runs\n"), "{}", p.stdout);
    assert_eq!(s.tree("base") + &s.read("canaryplan.yaml"), before);

    // `--write` applies it and checks it; the base alone is now the release's end state.
    let w = s.run(&["finish", "--env", "staging", "--write"]);
    w.ok();
    assert!(w.stderr.contains("written, and checked"), "{}", w.stderr);
    let base = s.read("base/helloworld.yaml");
    assert!(
        base.contains("        imagePullPolicy: IfNotPresent   # pinned by digest\n"),
        "{base}"
    );
    assert!(base.contains("            cpu: \"100m\"\n"), "{base}");
    assert!(!base.contains("helloworld-v1"), "{base}");
    assert!(!s.read("canaryplan.yaml").contains("meshRoute"));
    let base_objects = if have_kubectl() {
        let out = std::process::Command::new("kubectl")
            .args(["kustomize", "base"])
            .current_dir(s.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_stream(&String::from_utf8_lossy(&out.stdout))
    } else {
        Vec::new()
    };

    // Nothing left to finish, and done renders nothing beyond the base.
    let again = s.run(&["finish", "--env", "staging"]);
    again.ok();
    assert!(again.stdout.is_empty(), "{}", again.stdout);
    assert!(
        again
            .stderr
            .contains("the base already holds the end state")
    );
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    let k = s.read("canary/staging/kustomization.yaml");
    assert!(
        k.contains("canaryplan.io/stage: done")
            && !k.contains("patches:")
            && !k.contains("- deployment-"),
        "{k}"
    );
    let done = stream(&s, "staging");
    assert_eq!(
        table(&done),
        vec![
            (
                "HTTPRoute helloworld, rules[0]".to_string(),
                vec![("helloworld-v2".to_string(), 100.0)]
            ),
            (
                "HTTPRoute helloworld-mesh, rules[0]".to_string(),
                vec![("helloworld-v2".to_string(), 100.0)]
            ),
        ]
    );
    if !base_objects.is_empty() {
        // What kustomize builds from the edited base is what canaryplan's done stream holds.
        let names = |o: &[Value]| {
            let mut n: Vec<String> = o
                .iter()
                .map(|x| {
                    format!(
                        "{} {}",
                        x["kind"].as_str().unwrap(),
                        x["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&base_objects), names(&done));
    }
}

#[test]
fn finish_works_for_the_istio_backend_too() {
    // bookinfo's reviews with subsets: the Deployment swapped in place, the routes on subset
    // v4 and the subset in the base's DestinationRule, then done adds nothing.
    let s = Scratch::fixture("bookinfo-reviews");
    s.set_stage("cleanup-3");
    s.run(&["render", "--from-scratch"]).ok();
    let p = s.run(&["finish", "--env", "staging"]);
    p.ok();
    assert!(
        p.stdout
            .contains("-        subset: v1\n+        subset: v4\n"),
        "{}",
        p.stdout
    );
    assert!(
        p.stderr.contains(
            "base/reviews.yaml: replace Deployment reviews-v1 with Deployment reviews-v4"
        ),
        "{}",
        p.stderr
    );
    assert!(
        p.stderr
            .contains("base/destination-rule.yaml: change DestinationRule reviews"),
        "{}",
        p.stderr
    );
    s.run(&["finish", "--env", "staging", "--write"]).ok();
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    let out = stream(&s, "staging");
    assert!(named(&out, "Deployment", "reviews-v1").is_none());
    assert!(named(&out, "Deployment", "reviews-v4").is_some());
}

#[test]
fn finish_refuses_before_cleanup_3_and_on_a_base_shared_with_an_environment_behind() {
    let s = Scratch::fixture("gateway-helloworld");
    let r = s.run(&["finish", "--env", "staging"]);
    r.fails();
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("canaryplan.yaml:24:14: error: environment `staging` is at stage shift; the base edit that finishes a release is made at cleanup-3"), "{}", r.stderr);

    // production shares the base and is still shifting: staging cannot finish alone.
    s.set_stage("cleanup-3");
    s.edit_plan(|t| format!("{t}    production:\n      stage: shift\n      weight: 50\n"));
    let r = s.run(&["finish", "--env", "staging", "--write"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "environment `production` shares the base `base` with `staging` and is at stage shift"
        ),
        "{}",
        r.stderr
    );
    assert!(!s.read("base/helloworld.yaml").contains("helloworld-v2"));
}

#[test]
fn finish_edits_a_symlinked_base_file_where_it_points() {
    let s = helloworld_at_cleanup_3();
    std::fs::create_dir_all(s.path().join("shared")).unwrap();
    std::fs::rename(
        s.path().join("base/gateway.yaml"),
        s.path().join("shared/gateway.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../shared/gateway.yaml", s.path().join("base/gateway.yaml"))
        .unwrap();
    s.run(&["finish", "--env", "staging", "--write"]).ok();
    let link = std::fs::symlink_metadata(s.path().join("base/gateway.yaml")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    assert!(
        s.read("shared/gateway.yaml")
            .contains("name: helloworld-mesh")
    );
}

#[test]
fn weight_0_is_0_for_callers_no_route_weights() {
    // Callers without a sidecar reach what Service helloworld selects: only v1 until every
    // route has moved to v2, then only v2.
    let s = Scratch::fixture("gateway-helloworld");
    for (stage, expected) in [
        ("prepare", vec!["helloworld-v1"]),
        ("route", vec!["helloworld-v1"]),
        ("shift", vec!["helloworld-v1"]),
        ("cleanup-1", vec!["helloworld-v2"]),
        ("cleanup-2", vec!["helloworld-v2"]),
        ("cleanup-3", vec!["helloworld-v2"]),
    ] {
        s.set_stage(stage);
        let out = stream(&s, "staging");
        assert_eq!(selected_by(&out, "helloworld"), expected, "{stage}");
    }
    // The base keeps selecting every version: done leaves the Service as base has it.
    s.set_stage("shift");
    let out = stream(&s, "staging");
    assert_eq!(
        named(&out, "Service", "helloworld").unwrap()["spec"]["selector"],
        json!({"app": "helloworld", "version": "v1"})
    );
    // Where the Service also selects other versions (bookinfo's reviews v2 and v3), narrowing
    // it would cut them off: status names the callers that reach the canary by pod count.
    let b = Scratch::fixture("gateway-versioned");
    let st = b.run(&["status"]);
    assert!(st.stdout.contains("note: callers that no HTTPRoute weights (without a sidecar, or ambient without a waypoint) reach Deployment reviews-v4 by pod count: Service reviews selects reviews-v1, reviews-v2, reviews-v3, reviews-v4"), "{}", st.stdout);
}

/// helloworld as Istio's sample ships it: v1 and v2 both running behind the Service.
fn with_v2_running(s: &Scratch, image: &str) {
    let base = s.read("base/helloworld.yaml");
    let v1 = &base[base.find("apiVersion: apps/v1").unwrap()..];
    let v2 = v1
        .replace("helloworld-v1", "helloworld-v2")
        .replace("version: v1", "version: v2")
        .replace(
            "registry.example/helloworld@sha256:1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a",
            image,
        );
    s.write("base/helloworld.yaml", &format!("{base}---\n{v2}"));
}

#[test]
fn a_canary_version_that_already_runs_is_shifted_to_or_refused_precisely() {
    let v2 = "registry.example/helloworld@sha256:2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b";
    // Another image than the one helloworld-v2 runs: said as that, not "another version".
    let s = Scratch::fixture("gateway-helloworld");
    with_v2_running(&s, "registry.example/helloworld:v2-old");
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("canaryplan.yaml:20:12: error: the base already runs Deployment helloworld-v2 of version v2, with image registry.example/helloworld:v2-old, not canary.image"), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "a release adds its canary version: choose a canary.version no Deployment in base uses"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("of another version"), "{}", r.stderr);

    // The image it runs: Istio's tutorial shifts from v1 to a running v2, but here the base
    // Service already splits /hello between them by pod count. Pinning every route to v1 at
    // prepare would take v2's half away: the first stage invariant refuses it, naming each
    // request class and its shares before and after.
    let s = Scratch::fixture("gateway-helloworld");
    with_v2_running(&s, v2);
    s.set_stage("prepare");
    let r = s.run(&["render"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "canaryplan.yaml:19:14: error: the base already runs Deployment helloworld-v2 of the canary version v2: it serves requests beside the stable version, and the release would first pin them all to the stable one, taking its share away"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("choose a new canary.version"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_mirror_on_a_shared_rule_copies_only_the_stable_versions_requests() {
    // /search is shared 9 : 1 with an experiment; `mirror: 5` (staging) must not copy the
    // experiment's requests: the filter sits on search-v1's backendRef, not on the rule.
    let s = Scratch::fixture("gateway-two-rules");
    let out = stream(&s, "staging");
    let route = named(&out, "HTTPRoute", "search").unwrap();
    let shared = route["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["backendRefs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["name"] == "search-experiment")
        })
        .unwrap();
    assert!(shared.get("filters").is_none(), "{shared}");
    assert_eq!(
        shared["backendRefs"],
        json!([
            {"name": "search-v1", "port": 8080, "weight": 810, "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "search-v2", "port": 8080}, "percent": 5}}]},
            {"name": "search-v2", "port": 8080, "weight": 90},
            {"name": "search-experiment", "port": 8080, "weight": 100},
        ])
    );
    // A rule to the Service alone keeps the rule's filter.
    let own = route["spec"]["rules"].as_array().unwrap().last().unwrap();
    assert_eq!(own["filters"][0]["type"], "RequestMirror");
    // The evaluator reads it: 5% of the stable's 81% of /search.
    let e = s.run(&["explain", "--env", "staging"]);
    assert!(e.stdout.contains("path prefix /search  → search-v1 81% · search-v2 9% · search-experiment 10% (not a Service of these manifests) · mirror search-v2 4.05%"), "{}", e.stdout);

    // Istio's Gateway rejects a mirror on a backendRef: refused where the Gateway is in base.
    s.write(
        "base/gateway.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: infra}\nspec:\n  gatewayClassName: istio\n  listeners:\n  - {name: http, protocol: HTTP, port: 80}\n",
    );
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml")
            .replace("- httproute.yaml\n", "- httproute.yaml\n- gateway.yaml\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("base/httproute.yaml:21:7: error: HTTPRoute search, rules[1] sends to other backends besides Service search: to mirror only its requests canaryplan puts the RequestMirror filter on the backendRef of search-v1, and Gateway public (class istio) rejects mirror filters on a backendRef"), "{}", r.stderr);
}

#[test]
fn gateway_api_words_and_refusals() {
    // A GAMMA-less versioned release whose Service selects other versions too: mesh callers
    // would reach the canary by pod count; the refusal speaks of HTTPRoutes, not
    // VirtualServices, in `validate` and in `status`.
    let s = Scratch::fixture("gateway-versioned");
    s.write(
        "base/httproute.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: reviews\nspec:\n  parentRefs:\n  - name: public\n  rules:\n  - backendRefs:\n    - name: reviews-v1\n      port: 9080\n",
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("mesh callers of Service reviews are not routed by any HTTPRoute whose parent is the Service (GAMMA)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("set `meshRoute: generate`"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("VirtualService"), "{}", r.stderr);
    let st = s.run(&["status"]);
    assert!(!st.stdout.contains("VirtualService"), "{}", st.stdout);

    // explain's JSON names an HTTPRoute as one.
    let g = Scratch::fixture("gateway-helloworld");
    let j: Value = serde_json::from_str(
        &g.run(&["explain", "--env", "staging", "--format", "json"])
            .stdout,
    )
    .unwrap();
    let row = &j["routes"][0];
    assert_eq!(row["httpRoute"], "helloworld");
    assert!(row.get("virtualService").is_none(), "{row}");

    // A wrong stable.version: one error, not a follow-on "no HTTPRoute sends to Service".
    let s = Scratch::fixture("gateway-versioned");
    s.edit_plan(|t| t.replacen("    version: v1\n", "    version: v9\n", 1));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("the pods of Deployment reviews-v1 are not labelled `version: v9`"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("no HTTPRoute in the base sends"),
        "{}",
        r.stderr
    );

    // A route with a Gateway and a Service parent is refused where the Service parent is.
    let g = Scratch::fixture("gateway-helloworld");
    g.write(
        "base/gateway.yaml",
        &g.read("base/gateway.yaml").replace(
            "  - name: hello-gateway\n  rules:",
            "  - name: hello-gateway\n  - {group: \"\", kind: Service, name: helloworld}\n  rules:",
        ),
    );
    let r = g.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("base/gateway.yaml:10:5: error: HTTPRoute helloworld has a Gateway parent (hello-gateway) and a Service parent"), "{}", r.stderr);
}

#[test]
fn init_on_bookinfo_proposes_this_apps_next_version_and_no_istio_only_fields() {
    // productpage-v1 beside reviews-v1..v3 (the whole of bookinfo), routed by an HTTPRoute:
    // the canary is v2 (reviews' versions are another app's), and no podLabels.
    let s = Scratch::fixture("gateway-versioned");
    std::fs::remove_file(s.plan()).unwrap();
    s.write(
        "base/productpage.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: productpage}\nspec:\n  selector: {app: productpage}\n  ports: [{name: http, port: 9080}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: productpage-v1}\nspec:\n  selector:\n    matchLabels: {app: productpage, version: v1}\n  template:\n    metadata:\n      labels: {app: productpage, version: v1}\n    spec:\n      containers:\n      - {name: productpage, image: registry.example/productpage:1.0}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bookinfo}\nspec:\n  parentRefs: [{name: bookinfo-gateway}]\n  rules:\n  - backendRefs: [{name: productpage, port: 9080}]\n",
    );
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml").replace(
            "- httproute.yaml\n",
            "- httproute.yaml\n- productpage.yaml\n",
        ),
    );
    s.run(&["init", "--base", "base", "--service", "productpage"])
        .ok();
    let plan = s.read("canaryplan.yaml");
    assert!(
        plan.contains("    version: v2   # no Deployment behind the Service uses it yet\n"),
        "{plan}"
    );
    assert!(plan.contains("  traffic: gateway-api\n"), "{plan}");
    assert!(!plan.contains("podLabels"), "{plan}");
    s.run(&["validate"]).ok();
}

/// Optional: Istio's own helloworld sample, fetched by the tester. With
/// CANARYPLAN_ISTIO_SAMPLES pointing at a checkout's `samples/` directory, the Gateway API
/// variant is rendered at every stage and finished with `canaryplan finish`.
#[test]
fn upstream_helloworld_sample_when_present() {
    let dir = std::env::var_os("CANARYPLAN_ISTIO_SAMPLES").map(std::path::PathBuf::from);
    let present = dir
        .as_ref()
        .is_some_and(|d| d.join("helloworld/helloworld.yaml").is_file());
    if !present {
        eprintln!(
            "\nSKIPPED (upstream_helloworld_sample_when_present): set CANARYPLAN_ISTIO_SAMPLES to istio's samples/ directory to run it\n"
        );
        return;
    }
    let samples = dir.unwrap();
    let s = Scratch::fixture("gateway-helloworld");
    let upstream = std::fs::read_to_string(samples.join("helloworld/helloworld.yaml")).unwrap();
    // Only v1 runs when the release starts; v2 is what the release brings.
    let v1_only = &upstream[..upstream
        .find("---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: helloworld-v2")
        .unwrap()];
    s.write("base/helloworld.yaml", v1_only);
    s.write(
        "base/gateway.yaml",
        &std::fs::read_to_string(samples.join("helloworld/gateway-api/helloworld-gateway.yaml"))
            .unwrap(),
    );
    s.set_stage("prepare");
    s.run(&["render"]).ok();
    for _ in 0..2 {
        s.run(&["advance", "--env", "staging", "--render"]).ok();
    }
    s.run(&["promote", "--env", "staging", "--to", "100", "--render"])
        .ok();
    for _ in 0..3 {
        s.run(&["advance", "--env", "staging", "--render"]).ok();
    }
    s.run(&["finish", "--env", "staging", "--write"]).ok();
    s.run(&["advance", "--env", "staging", "--render"]).ok();
}
