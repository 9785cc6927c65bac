//! `kind: LanePlan` as a user meets it: the three-service chain of the Alibaba Service Mesh
//! lanes example on plain Istio, walked through every stage with `explain` reading the final
//! manifests, base routing kept, and each mistake refused with a located error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn explain(s: &Scratch, env: &str) -> String {
    s.run(&["explain", "--env", env]).ok().stdout.clone()
}

#[test]
fn a_lane_request_follows_its_lane_and_falls_back_to_the_baseline() {
    let s = Scratch::fixture("lanes");
    // staging is at shift with 10% of the ingress traffic into the canary lane.
    assert_eq!(
        explain(&s, "staging"),
        "x-asm-prefer-tag=canary: mocka canary → mockb base → mockc canary\n\
         x-asm-prefer-tag=base: mocka base → mockb base → mockc base\n\
         no header: mocka base 90% · canary 10% → mockb base → mockc base 90% · canary 10%\n"
    );
    // The ingress sets the header on each weighted share, so the chain follows the lane.
    let out = stream(&s, "staging");
    let ingress = named(&out, "VirtualService", "checkout-ingress").unwrap();
    assert_eq!(
        ingress["spec"]["gateways"],
        json!(["istio-system/ingressgateway"])
    );
    let weighted = ingress["spec"]["http"].as_array().unwrap().last().unwrap();
    assert_eq!(weighted["match"], json!([{"uri": {"exact": "/mock"}}]));
    assert_eq!(
        weighted["route"][1]["headers"]["request"]["set"],
        json!({"x-asm-prefer-tag": "canary"})
    );
    assert_eq!(weighted["route"][1]["weight"], 10);
    // mockb has no canary: nothing of it changes.
    for kind in ["Service", "Deployment"] {
        let name = if kind == "Service" {
            "mockb"
        } else {
            "mockb-v1"
        };
        let base = parse_stream(&s.read("mockb/app.yaml"));
        let mut want = named(&base, kind, name).unwrap().clone();
        want["metadata"]["namespace"] = json!("mock");
        assert_eq!(named(&out, kind, name).unwrap(), &want, "{kind} {name}");
    }
    assert!(named(&out, "Deployment", "mockb-v1-base").is_none());
}

#[test]
fn every_stage_through_the_chain() {
    let s = Scratch::fixture("lanes");
    let all_base = "x-asm-prefer-tag=canary: mocka base → mockb base → mockc base\n\
                    x-asm-prefer-tag=base: mocka base → mockb base → mockc base\n\
                    no header: mocka base → mockb base → mockc base\n";
    let by_header = "x-asm-prefer-tag=canary: mocka canary → mockb base → mockc canary\n\
                     x-asm-prefer-tag=base: mocka base → mockb base → mockc base\n\
                     no header: mocka base → mockb base → mockc base\n";
    for (stage, expected, copies) in [
        ("prepare", all_base, true),
        ("route", by_header, true),
        ("cleanup-1", all_base, true),
        ("cleanup-2", all_base, false),
        ("cleanup-3", all_base, false),
        ("done", all_base, false),
    ] {
        s.set_stage(stage);
        assert_eq!(explain(&s, "production"), expected, "{stage}");
        let out = stream(&s, "production");
        assert_eq!(
            named(&out, "Deployment", "mocka-v1-canary").is_some(),
            copies,
            "{stage}"
        );
        // Before routes name lane subsets, the Service does not reach the copies.
        let sel = &named(&out, "Service", "mocka").unwrap()["spec"]["selector"];
        let patched = sel == &json!({"canaryplan.io/lane-service": "mocka"});
        assert_eq!(patched, stage == "route", "{stage}: {sel}");
        let subsets = named(&out, "DestinationRule", "mocka").is_some();
        assert_eq!(
            subsets,
            ["route", "cleanup-1", "cleanup-2"].contains(&stage),
            "{stage}"
        );
        // The baseline's lane label outlives every route that names the baseline subset.
        let label = named(&out, "Deployment", "mocka-v1").unwrap()["spec"]["template"]["metadata"]
            ["labels"]["ASM_TRAFFIC_TAG"]
            .clone();
        assert_eq!(
            label == json!("base"),
            stage != "cleanup-3" && stage != "done",
            "{stage}"
        );
    }
    // done is the bases, untouched.
    s.set_stage("done");
    s.run(&["render", "--from-scratch"]).ok();
    let k = s.read("gitops/production/kustomization.yaml");
    assert!(
        !k.contains("patches:") && k.contains("- ../../mocka\n- ../../mockb\n- ../../mockc\n"),
        "{k}"
    );
}

#[test]
fn base_routing_is_patched_not_duplicated() {
    let s = Scratch::fixture("lanes");
    let out = stream(&s, "staging");
    let vs: Vec<&Value> = out
        .iter()
        .filter(|o| o["kind"] == "VirtualService" && o["spec"]["hosts"] == json!(["mockc"]))
        .collect();
    assert_eq!(vs.len(), 1, "one VirtualService for mockc, the base's");
    let http = vs[0]["spec"]["http"].as_array().unwrap();
    let names: Vec<&str> = http.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // The health route stays first; the lane route comes right before the route it splits.
    assert_eq!(names, ["health", "default-canary", "default"]);
    assert_eq!(
        http[0]["route"][0]["destination"]["host"],
        "mockc-maintenance"
    );
    for r in &http[1..] {
        assert_eq!(r["retries"], json!({"attempts": 3, "perTryTimeout": "2s"}));
    }
    assert_eq!(
        http[1]["match"],
        json!([{"headers": {"x-asm-prefer-tag": {"exact": "canary"}}}])
    );
    assert_eq!(
        http[2]["route"],
        json!([{"destination": {"host": "mockc", "subset": "base", "port": {"number": 8000}}}])
    );
}

#[test]
fn mistakes_in_a_lane_plan_are_located() {
    let s = Scratch::fixture("lanes");
    s.edit_plan(|p| {
        p.replace(
            "        mockc: {image: registry.example/go-http-sample:2.0}\n",
            "        mockc: {image: registry.example/go-http-sample:2.0}\n        mockd: {image: registry.example/go-http-sample:2.0}\n    empty:\n      services: {}\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:27:9: error: `mockd` is not a service of the chain"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("canaryplan.yaml:29:17: error: lane `empty` has no services"),
        "{}",
        r.stderr
    );
    // Two lanes of one name would carry the same label value: the parser refuses the key.
    let s = Scratch::fixture("lanes");
    s.edit_plan(|p| {
        p.replace(
            "  output: gitops\n",
            "    canary:\n      services: {mocka: {image: x:3}}\n  output: gitops\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:27:5: error: duplicate mapping key: canary"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.to_lowercase().contains("duplicate"),
        "{}",
        r.stderr
    );
    // A lane named like the baseline, and a lane label in a Deployment's selector.
    let s = Scratch::fixture("lanes");
    s.edit_plan(|p| {
        p.replace("  lanes:\n    canary:", "  lanes:\n    base:")
            .replace("canary:\n          weight", "base:\n          weight")
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: lane `base` has the baseline's name"),
        "{}",
        r.stderr
    );
    let s = Scratch::fixture("lanes");
    s.write(
        "mocka/app.yaml",
        &s.read("mocka/app.yaml")
            .replace(
                "    matchLabels: {app: mocka}",
                "    matchLabels: {app: mocka, ASM_TRAFFIC_TAG: base}",
            )
            .replace(
                "      labels: {app: mocka, version: v1}",
                "      labels: {app: mocka, version: v1, ASM_TRAFFIC_TAG: base}",
            ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("mocka/app.yaml:19:5: error: the selector of Deployment mocka-v1 holds `ASM_TRAFFIC_TAG`, the lane label"),
        "{}",
        r.stderr
    );
    // A removed lane still taking ingress traffic at cleanup.
    let s = Scratch::fixture("lanes");
    s.edit_plan(|p| p.replacen("      stage: shift", "      stage: cleanup-1", 1));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: lane `canary` still takes 10% of the ingress traffic at cleanup-1"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_promoted_lane_needs_its_versions_in_base() {
    let s = Scratch::fixture("lanes");
    s.run(&["render", "--from-scratch"]).ok();
    s.edit_plan(|p| {
        p.replace(
            "          weight: 10\n",
            "          weight: 10\n          end: promote\n",
        )
        .replacen("      stage: shift", "      stage: cleanup-1", 1)
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("lane `canary` ends by promotion at cleanup-1, but Deployment mocka-v1 in base still runs registry.example/go-http-sample:1.0, not the lane's registry.example/go-http-sample:2.0"),
        "{}",
        r.stderr
    );
    for svc in ["mocka", "mockc"] {
        s.write(
            &format!("{svc}/app.yaml"),
            &s.read(&format!("{svc}/app.yaml"))
                .replace("go-http-sample:1.0", "go-http-sample:2.0"),
        );
    }
    // The base is shared: production (at prepare, its entry unchanged since its overlay was
    // rendered) would run the new images too. That is refused, naming production...
    let r = s.run(&["validate"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("production's plan entry did not change, but mock/mocka-v1, which serves requests, would change images: container default from registry.example/go-http-sample:1.0 to registry.example/go-http-sample:2.0 [unchanged-environment-does-not-change]"), "{}", r.stderr);
    // ...until the change is accepted for it, as a reviewed one.
    s.run(&["validate", "--accept-change", "production"]).ok();
}

#[test]
fn advance_abort_and_status_on_a_lane_plan() {
    let s = Scratch::fixture("lanes");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let r = s.run(&["advance", "--env", "staging", "--render"]);
    assert!(
        r.ok()
            .stdout
            .contains("canaryplan.yaml: staging: stage prepare → route"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("lanes(checkout): staging to route: subsets per lane"),
        "{}",
        r.stdout
    );
    assert!(
        s.read("gitops/staging/kustomization.yaml")
            .contains("canaryplan.io/stage: route")
    );
    // Skipping a stage is refused, as for a CanaryPlan.
    let text = s.read("canaryplan.yaml");
    s.edit_plan(|p| p.replace("      stage: prepare", "      stage: shift"));
    let r = s.run(&["render"]);
    r.fails();
    assert!(r.stderr.contains("environment `production` is at stage prepare on disk; shift is more than one step ahead"), "{}", r.stderr);
    s.write("canaryplan.yaml", &text);
    s.edit_plan(|p| p.replacen("      stage: route", "      stage: shift", 1));
    s.run(&["render"]).ok();
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["abort", "--env", "staging"]);
    assert!(
        r.ok()
            .stdout
            .contains("staging: lanes canary to weight 0, no request reaches a lane copy"),
        "{}",
        r.stdout
    );
    let after = s.read("canaryplan.yaml");
    // Every lane's weight to 0, and the mark that closes the lane routes too.
    assert_eq!(
        after,
        before
            .replace("          weight: 10\n", "          weight: 0\n")
            .replace(
                "    staging:\n      stage: shift",
                "    staging:\n      aborted: true\n      stage: shift"
            )
    );
    let r = s.run(&["promote", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr
            .contains("a LanePlan has no single weight to promote"),
        "{}",
        r.stderr
    );
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("staging  stage shift"), "{status}");
    assert!(
        status.contains("note: x-asm-prefer-tag=canary: mocka base → mockb base → mockc base"),
        "{status}"
    );
    assert!(
        status.contains("every service must pass `x-asm-prefer-tag` on"),
        "{status}"
    );
}

#[test]
fn export_for_asm_follows_the_lane_group_shapes() {
    let s = Scratch::fixture("lanes");
    let r = s.run(&["export", "asm", "--env", "staging"]);
    r.ok();
    let objects = parse_stream(&r.stdout);
    let kinds: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ASMSwimLaneGroup", "checkout"),
            ("ASMSwimLane", "base"),
            ("ASMSwimLane", "canary")
        ]
    );
    let group = &objects[0]["spec"];
    assert_eq!(
        group["permissiveModeConfiguration"],
        json!({"fallbackTarget": "base", "routeHeader": "x-asm-prefer-tag", "traceHeader": "x-asm-prefer-tag"})
    );
    assert_eq!(group["isPermissive"], true);
    assert_eq!(
        group["ingress"]["gateway"],
        json!({"name": "ingressgateway", "namespace": "istio-system", "type": "ASM"})
    );
    assert_eq!(
        group["ingress"]["ingressRouting"]["ingressRoutingStrategy"],
        "weighted"
    );
    let canary = &objects[2];
    assert_eq!(
        canary["metadata"]["labels"],
        json!({"swimlane-group": "checkout"})
    );
    assert_eq!(
        canary["spec"]["labelSelector"],
        json!({"ASM_TRAFFIC_TAG": "canary"})
    );
    assert_eq!(
        canary["spec"]["services"],
        json!([{"name": "mocka", "namespace": "mock"}, {"name": "mockc", "namespace": "mock"}])
    );
    assert_eq!(
        canary["spec"]["ingressRules"][0]["match"],
        json!({"uri": {"exact": "/mock"}, "headers": {"x-asm-prefer-tag": {"exact": "canary"}}})
    );
    assert_eq!(canary["spec"]["ingressWeight"]["weight"], 10);
    // What ASM needs and the plan does not say is in each header and on stderr.
    assert!(
        r.stdout
            .starts_with("# Exported by canaryplan from canaryplan.yaml for asm: the lane group")
    );
    assert!(
        r.stdout
            .contains("# Not expressed: ASM lists each service with the `cluster`")
    );
    assert!(
        r.stderr.contains("note: not expressed in asm:"),
        "{}",
        r.stderr
    );
    // Without weights (production is at prepare): rule-based.
    let prod = parse_stream(&s.run(&["export", "asm", "--env", "production"]).ok().stdout);
    assert_eq!(
        prod[0]["spec"]["ingress"]["ingressRouting"]["ingressRoutingStrategy"],
        "rule_based"
    );
    // --strict refuses what cannot be expressed, and prints nothing.
    let r = s.run(&["export", "asm", "--strict"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: asm cannot express all of canaryplan.yaml"),
        "{}",
        r.stderr
    );
}

#[test]
fn export_for_kruise_writes_a_rollout_per_lane_service() {
    let s = Scratch::fixture("lanes");
    let r = s.run(&["export", "kruise", "--output", "kruise"]);
    r.ok();
    assert!(
        r.stdout.contains("kruise/rollout-mocka.yaml: written"),
        "{}",
        r.stdout
    );
    let rollout = parse_stream(&s.read("kruise/rollout-mockc.yaml"));
    // Named as `kubectl kruise rollout approve rollout/rollouts-mockc` expects, in mockc's
    // namespace.
    assert_eq!(
        rollout[0]["metadata"],
        json!({"name": "rollouts-mockc", "namespace": "mock"})
    );
    assert_eq!(
        rollout[0]["spec"],
        json!({
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mockc-v1"},
            "strategy": {"canary": {
                "enableExtraWorkloadForCanary": true,
                "steps": [{"replicas": 1}],
                "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}},
            }},
        })
    );
    assert!(!s.path().join("kruise/rollout-mockb.yaml").exists());
    // Exporting again replaces its own files; a file of the user's is never overwritten.
    s.run(&["export", "kruise", "--output", "kruise"]).ok();
    s.write("kruise/rollout-mocka.yaml", "# mine\n");
    let r = s.run(&["export", "kruise", "--output", "kruise"]);
    r.fails();
    assert!(
        r.stderr
            .contains("rollout-mocka.yaml: error: exists and was not exported by canaryplan"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("kruise/rollout-mocka.yaml"), "# mine\n");
    // A CanaryPlan is not a LanePlan.
    let c = Scratch::fixture("runbook");
    let r = c.run(&["export", "asm"]);
    r.fails();
    assert!(
        r.stderr.contains("`export asm` reads a LanePlan"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_readme_lanes_example_validates_and_explains_as_shown() {
    // The LanePlan and explain output of docs/lanes.md (once in the README).
    let page = std::fs::read_to_string(root().join("docs/lanes.md")).unwrap();
    let section = &page[page.find("# Lanes across a call chain").unwrap()..];
    let plan = section.split("```yaml\n").nth(1).unwrap();
    let plan = &plan[..plan.find("```").unwrap()];
    // The block after the plan: its content is the third piece between fences.
    let shown = section.split("```\n").nth(2).unwrap();
    let s = Scratch::fixture("lanes");
    s.write("canaryplan.yaml", plan);
    s.run(&["validate"]).ok();
    assert_eq!(explain(&s, "staging"), shown);
}

#[test]
fn a_base_virtualservice_on_the_ingress_gateway_is_refused() {
    let s = Scratch::fixture("lanes");
    s.write(
        "mocka/app.yaml",
        &format!(
            "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: mocka-public\nspec:\n  hosts: [\"*\"]\n  gateways: [istio-system/ingressgateway]\n  http:\n  - route:\n    - destination: {{host: mocka}}\n",
            s.read("mocka/app.yaml")
        ),
    );
    let r = s.run(&["validate", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr.contains("mocka/app.yaml:") && r.stderr.contains("error: VirtualService mocka-public already routes host `*` through gateway istio-system/ingressgateway"),
        "{}",
        r.stderr
    );
    // Before routes (prepare) nothing of the ingress is rendered, so nothing competes yet.
    s.run(&["validate", "--env", "production"]).ok();
}

#[test]
fn every_route_to_a_lane_service_is_split_by_header() {
    // Without `ingress:`, a gateway's VirtualService in the service's base is split by header
    // too, and mesh callers get one of their own.
    let s = Scratch::fixture("lanes");
    s.edit_plan(|p| {
        let start = p.find("  ingress:\n").unwrap();
        let end = p.find("  lanes:\n").unwrap();
        format!("{}{}", &p[..start], &p[end..])
    });
    s.write(
        "mocka/app.yaml",
        &format!(
            "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: mocka-public\nspec:\n  hosts: [mock.example.com]\n  gateways: [istio-system/ingressgateway]\n  http:\n  - name: site\n    route:\n    - destination: {{host: mocka}}\n",
            s.read("mocka/app.yaml")
        ),
    );
    let out = stream(&s, "staging");
    let public = named(&out, "VirtualService", "mocka-public").unwrap();
    let names: Vec<&str> = public["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["site-canary", "site"]);
    assert_eq!(
        public["spec"]["http"][1]["route"][0]["destination"]["subset"],
        "base"
    );
    assert!(
        named(&out, "VirtualService", "mocka").is_some(),
        "the mesh's own VirtualService"
    );
    // A route to the bare host from elsewhere (mockb's base) would reach the canary copy by pod
    // count once the Service selects it: refused, with where.
    let s = Scratch::fixture("lanes");
    s.write(
        "mockb/app.yaml",
        &format!(
            "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: to-mocka\nspec:\n  hosts: [mocka-alias]\n  http:\n  - route:\n    - destination: {{host: mocka.mock.svc.cluster.local}}\n",
            s.read("mockb/app.yaml")
        ),
    );
    let r = s.run(&["validate", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr.contains("VirtualService to-mocka, http[0], destination 1: mocka.mock.svc.cluster.local reaches the pods of lane copy mocka-v1-canary by pod count, not through subset `canary`"),
        "{}",
        r.stderr
    );
}
