//! Gateway API mode (`traffic: gateway-api`) as a user meets it: per-version Services made
//! before any rule names them and removed after none does, HTTPRoute rules weighted by percent,
//! test rules that must win by specificity without taking other rules' requests, mirrors, the
//! generated mesh route, and every misuse refused with a located error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn services(objects: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    s.sort();
    s
}

/// Every backendRef and mirror backendRef of every HTTPRoute.
fn backend_names(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for hr in objects.iter().filter(|o| o["kind"] == "HTTPRoute") {
        for rule in hr["spec"]["rules"].as_array().unwrap() {
            for b in rule["backendRefs"].as_array().into_iter().flatten() {
                out.push(b["name"].as_str().unwrap().to_string());
            }
            for f in rule["filters"].as_array().into_iter().flatten() {
                if let Some(n) = f.pointer("/requestMirror/backendRef/name") {
                    out.push(n.as_str().unwrap().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn version_services_exist_before_any_rule_names_them_and_go_after_none_does() {
    let s = Scratch::fixture("gateway-north-south");
    let base = parse_stream(&s.read("base/httproute.yaml"));
    let base_route = named(&base, "HTTPRoute", "shop-public").unwrap().clone();
    let mut seen = Vec::new();
    for stage in STAGES {
        s.set_stage(stage);
        let out = stream(&s, "staging");
        let svcs = services(&out);
        // Make-before-break within a stage and across the step from the previous one.
        for b in backend_names(&out) {
            if b.starts_with("shop-v") {
                assert!(svcs.contains(&b), "{stage}: {b} is named but not rendered");
                if let Some((prev, prev_svcs)) = seen.last() {
                    let prev_svcs: &Vec<String> = prev_svcs;
                    assert!(
                        prev_svcs.contains(&b) || *prev == "none",
                        "{stage}: {b} is named one stage after {prev}, which did not render it"
                    );
                }
            }
        }
        // The Service keeps its base selector in this mode: routes name the version Services.
        assert_eq!(
            named(&out, "Service", "shop").unwrap()["spec"]["selector"],
            json!({"app": "shop"}),
            "{stage}"
        );
        let expected: &[&str] = match stage {
            "prepare" | "route" | "shift" | "cleanup-1" | "cleanup-2" => {
                &["shop", "shop-v1", "shop-v2"]
            }
            _ => &["shop"],
        };
        assert_eq!(svcs, expected, "{stage}");
        let route = named(&out, "HTTPRoute", "shop-public").unwrap();
        match stage {
            "prepare" | "cleanup-2" | "cleanup-3" | "done" => {
                assert_eq!(route["spec"], base_route["spec"], "{stage}: the base route");
            }
            _ => assert_ne!(route["spec"], base_route["spec"], "{stage}"),
        }
        if stage == "cleanup-1" {
            // Only the canary's Service is left in the rules; the test rules stay harmlessly.
            assert!(!backend_names(&out).contains(&"shop-v1".to_string()));
            assert!(named(&out, "Deployment", "shop-v1").is_none());
        }
        seen.push((stage, svcs));
    }
    // What was rendered before (the fixture's shift at weight 25) is on the version Services.
    let s = Scratch::fixture("gateway-north-south");
    let out = stream(&s, "staging");
    let api = &named(&out, "HTTPRoute", "shop-public").unwrap()["spec"]["rules"][1];
    assert_eq!(api["name"], "api");
    assert_eq!(
        api["backendRefs"],
        json!([{"name": "shop-v1", "port": 8080, "weight": 75}, {"name": "shop-v2", "port": 8080, "weight": 25}])
    );
    // The rule's own filters and timeouts are kept, the mirror added after them.
    assert_eq!(api["timeouts"], json!({"request": "10s"}));
    assert_eq!(api["filters"][0]["type"], "RequestHeaderModifier");
    assert_eq!(
        api["filters"][1],
        json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shop-v2", "port": 8080}, "percent": 5}})
    );
    // Argo CD syncs what a rule depends on first: the version Services (and the stable copy)
    // in wave -1, the route in the default wave 0.
    let wave = |kind: &str, name: &str| {
        named(&out, kind, name).unwrap()["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .clone()
    };
    assert_eq!(wave("Service", "shop-v1"), json!("-1"));
    assert_eq!(wave("Service", "shop-v2"), json!("-1"));
    assert_eq!(wave("Deployment", "shop-v1"), json!("-1"));
    assert_eq!(wave("HTTPRoute", "shop-public"), Value::Null);
    // The version Services select one version each.
    assert_eq!(
        named(&out, "Service", "shop-v1").unwrap()["spec"]["selector"],
        json!({"app": "shop-v1", "version": "v1"})
    );
    assert_eq!(
        named(&out, "Service", "shop-v2").unwrap()["spec"]["selector"],
        json!({"app": "shop", "version": "v2"})
    );
}

#[test]
fn test_rules_come_first_and_win_by_specificity() {
    let s = Scratch::fixture("gateway-north-south");
    let out = s
        .run(&["explain", "--env", "production"])
        .ok()
        .stdout
        .clone();
    // The crossed match is more specific than the rule's own (one more header), and first.
    assert!(
        out.contains("path prefix /api and header x-canary=true  → shop-v2 100%"),
        "{out}"
    );
    assert!(out.contains("→ shop-v1 95% · shop-v2 5%"), "{out}");
    let rules = stream(&s, "production");
    let names: Vec<&str> = named(&rules, "HTTPRoute", "shop-public").unwrap()["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-canary", "api", "site-canary", "site"]);
}

#[test]
fn other_backends_keep_their_share_and_other_rules_are_untouched() {
    let s = Scratch::fixture("gateway-two-rules");
    let out = stream(&s, "staging");
    let rules = named(&out, "HTTPRoute", "search").unwrap()["spec"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        rules[0]["backendRefs"],
        json!([{"name": "legacy", "port": 8080}])
    );
    // search 9 : experiment 1, search split 90 : 10 → 810 : 90 : 100 (the experiment keeps 10%).
    // (Staging's mirror copies only search-v1's requests: tests/gateway_finish.rs.)
    assert_eq!(
        rules[2]["backendRefs"],
        json!([
            {"name": "search-v1", "port": 8080, "weight": 810, "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "search-v2", "port": 8080}, "percent": 5}}]},
            {"name": "search-v2", "port": 8080, "weight": 90},
            {"name": "search-experiment", "port": 8080, "weight": 100}
        ])
    );
    let explain = s.run(&["explain", "--env", "staging"]).ok().stdout.clone();
    assert!(
        explain.contains("search-v1 81% · search-v2 9% · search-experiment 10%"),
        "{explain}"
    );
    // At cleanup-1 the canary's Service takes the Service's place, weights as in base.
    let prod = stream(&s, "production");
    let rules = &named(&prod, "HTTPRoute", "search").unwrap()["spec"]["rules"];
    assert_eq!(
        rules[1]["backendRefs"],
        json!([{"name": "search-v2", "port": 8080, "weight": 9}, {"name": "search-experiment", "port": 8080, "weight": 1}])
    );
}

#[test]
fn a_test_rule_that_would_take_another_rules_requests_is_refused() {
    let s = Scratch::fixture("gateway-two-rules");
    // A beta rule before the catch-all: requests with `x-beta: "1"` go to Service beta today.
    s.write(
        "base/httproute.yaml",
        &s.read("base/httproute.yaml").replace(
            "  - backendRefs:\n    - name: search\n",
            "  - matches:\n    - headers: [{name: x-beta, value: \"1\"}]\n    backendRefs:\n    - name: beta\n      port: 8080\n  - backendRefs:\n    - name: search\n",
        ),
    );
    // One test header ties with the beta rule, which comes first: beta keeps its requests.
    s.run(&["validate"]).ok();
    // Two would be more specific than the beta rule and take `x-beta` requests from it.
    s.edit_plan(|p| {
        p.replace(
            "headers: [{name: x-canary, value: \"true\"}]",
            "headers: [{name: x-canary, value: \"true\"}, {name: x-tester, value: qa}]",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:23:9: error: the test rule before HTTPRoute search, rules[3] (path prefix / and header x-canary=true and header x-tester=qa) would be more specific than HTTPRoute search, rules[2] (header x-beta=1 and path prefix /), and take requests that rule sends elsewhere today"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("most specific match, not the first"));
}

#[test]
fn fields_of_the_other_routing_api_are_located_errors() {
    let s = Scratch::fixture("gateway-north-south");
    s.edit_plan(|p| {
        p.replace(
            "  httpRoutes: [shop-public]\n",
            "  httpRoutes: [shop-public]\n  virtualService: shop\n",
        )
        .replace(
            "    labels: {app: shop-v1}\n",
            "    labels: {app: shop-v1}\n    subset: stable\n",
        )
        .replace(
            "      weight: 5\n",
            "      weight: 5\n      hosts: [shop.example.net]\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    for (at, field) in [
        ("canaryplan.yaml:11:19", "virtualService"),
        ("canaryplan.yaml:19:13", "subset"),
        ("canaryplan.yaml:32:15", "hosts"),
    ] {
        assert!(
            r.stderr.contains(&format!("{at}: error: `{field}` is an Istio field, and this plan routes with `traffic: gateway-api`")),
            "{field}: {}",
            r.stderr
        );
    }
    let s = Scratch::fixture("runbook");
    s.edit_plan(|p| p.replacen("spec:\n", "spec:\n  meshRoute: generate\n", 1));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: `meshRoute` is a Gateway API field, and this plan routes with Istio"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("set `traffic: gateway-api`"));
    let s = Scratch::fixture("gateway-gamma");
    s.edit_plan(|p| p.replace("traffic: gateway-api", "traffic: gateway"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:9:12: error: unknown traffic API `gateway`"),
        "{}",
        r.stderr
    );
}

#[test]
fn istio_shaped_matches_get_the_gateway_api_form_in_the_hint() {
    let s = Scratch::fixture("gateway-north-south");
    s.edit_plan(|p| {
        p.replace(
            "  - headers: [{name: x-canary, value: \"true\"}]",
            "  - headers: {x-canary: {exact: \"true\"}}\n  - uri: {prefix: /beta}",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:21:14: error: `headers` is a list of `{name, value}` entries in Gateway API"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("write e.g. `headers: [{name: x-canary, value: \"true\"}]`")
    );
    assert!(
        r.stderr.contains(
            "canaryplan.yaml:22:5: error: `uri` is not a field of a Gateway API HTTPRouteMatch"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn routes_the_plan_cannot_weight_are_refused() {
    // A typo in httpRoutes.
    let s = Scratch::fixture("gateway-north-south");
    s.edit_plan(|p| p.replace("httpRoutes: [shop-public]", "httpRoutes: [shop-pubic]"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: HTTPRoute `shop-pubic` is not in the base"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean `shop-public`?"));
    // A second route for mesh callers next to a GAMMA route of base.
    let s = Scratch::fixture("gateway-gamma");
    s.edit_plan(|p| {
        p.replace(
            "traffic: gateway-api\n",
            "traffic: gateway-api\n  meshRoute: generate\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:10:14: error: HTTPRoute ratings of base already routes mesh callers of Service ratings (its parent is the Service)"),
        "{}",
        r.stderr
    );
    // A rule of base naming a version Service outlives it: its share would be answered 500.
    let s = Scratch::fixture("gateway-two-rules");
    s.write(
        "base/httproute.yaml",
        &s.read("base/httproute.yaml")
            .replace("    - name: legacy\n", "    - name: search-v2\n"),
    );
    s.set_stage("cleanup-3");
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("HTTPRoute search, rules[0], destination 1: the backendRef names Service search-v2, which stage cleanup-3 does not render; its requests would be answered 500")
            || r.stderr.contains("the backendRef names Service search-v2, which stage cleanup-3 does not render"),
        "{}",
        r.stderr
    );
}

#[test]
fn mesh_callers_get_a_generated_gamma_route_per_port() {
    let s = Scratch::fixture("gateway-mesh-route");
    let out = stream(&s, "staging");
    for (port, name) in [(80, "catalog-mesh-80"), (9090, "catalog-mesh-9090")] {
        let hr = named(&out, "HTTPRoute", name).unwrap();
        assert_eq!(
            hr["spec"]["parentRefs"],
            json!([{"group": "", "kind": "Service", "name": "catalog", "port": port}])
        );
        assert_eq!(
            hr["spec"]["rules"][0]["backendRefs"],
            json!([{"name": "catalog-v1", "port": port, "weight": 80}, {"name": "catalog-v2", "port": port, "weight": 20}])
        );
        // 2.5% is not a whole percent: a fraction.
        assert_eq!(
            hr["spec"]["rules"][0]["filters"][0]["requestMirror"]["fraction"],
            json!({"numerator": 25, "denominator": 1000})
        );
    }
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("v1     catalog-v1"), "{status}");
    assert!(status.contains("80%"), "{status}");
    // Without the generated route, the storefront route alone is weighted: status says so.
    s.edit_plan(|p| p.replace("  meshRoute: generate\n", ""));
    let status = s.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains(
            "HTTPRoute catalog-storefront is bound to gateways only: mesh callers bypass the split"
        ) && status.contains("`meshRoute: generate` weights them too"),
        "{status}"
    );
}

/// Where the rules of HTTPRoute `route` send requests: (workload, percent) per backend.
fn split(objects: &[Value], route: &str) -> Vec<Vec<(String, f64)>> {
    canaryplan::traffic::Mesh::new(objects)
        .routes()
        .iter()
        .filter(|r| r.object == "HTTPRoute" && r.virtual_service == route)
        .map(|r| {
            r.destinations
                .iter()
                .flat_map(|d| d.endpoints.iter().map(|w| (w.name.clone(), d.percent)))
                .collect()
        })
        .collect()
}

#[test]
fn versioned_release_with_a_service_per_version_in_base() {
    let s = Scratch::fixture("gateway-versioned");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let at = |s: &Scratch| {
        let objects = stream(s, "staging");
        let deployments: Vec<String> = objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        (split(&objects, "reviews"), deployments, services(&objects))
    };
    let v = |pairs: &[(&str, f64)]| {
        vec![
            pairs
                .iter()
                .map(|(w, p)| (w.to_string(), *p))
                .collect::<Vec<_>>(),
        ]
    };

    // prepare: the base's own reviews-v1 Service is reused, reviews-v4 is added before its pods.
    let (t, d, svc) = at(&s);
    assert_eq!(t, v(&[("reviews-v1", 100.0)]));
    assert!(!d.contains(&"reviews-v4".to_string()));
    assert_eq!(svc, ["reviews", "reviews-v1", "reviews-v4"]);
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    s.run(&["promote", "--env", "staging", "--render"]).ok();
    assert_eq!(at(&s).0, v(&[("reviews-v1", 90.0), ("reviews-v4", 10.0)]));
    s.run(&["promote", "--env", "staging", "--to", "100", "--render"])
        .ok();
    for _ in ["cleanup-1", "cleanup-2", "cleanup-3"] {
        s.run(&["advance", "--env", "staging", "--render"]).ok();
    }
    // cleanup-3: the rule names reviews-v4; reviews-v1 (Deployment) is gone, its Service stays
    // in base, unnamed.
    let (t, d, _) = at(&s);
    assert_eq!(t, v(&[("reviews-v4", 100.0)]));
    assert_eq!(d, ["reviews-v2", "reviews-v3", "reviews-v4"]);
    let r = s.run(&["advance", "--env", "staging"]);
    r.fails();
    // One refusal lists every remaining edit, and names the command that makes it.
    for step in [
        "base/reviews.yaml: replace Deployment reviews-v1 with Deployment reviews-v4",
        "base/httproute.yaml: change HTTPRoute reviews",
        "base/services-by-version.yaml: replace Service reviews-v1 with Service reviews-v4",
        "`canaryplan finish --env staging` prints them as a patch",
    ] {
        assert!(r.stderr.contains(step), "{step}: {}", r.stderr);
    }

    // The base edit: the canary Deployment in, reviews-v1 out, the route and the version
    // Service to v4 (canaryplan reuses it at cleanup-3, then done renders nothing beyond it).
    move_reviews_v4_into_base(&s, "staging");
    s.write(
        "base/httproute.yaml",
        &s.read("base/httproute.yaml")
            .replace("name: reviews-v1", "name: reviews-v4"),
    );
    s.write(
        "base/services-by-version.yaml",
        &s.read("base/services-by-version.yaml")
            .replace("name: reviews-v1", "name: reviews-v4")
            .replace("version: v1", "version: v4"),
    );
    s.run(&["render", "--from-scratch"]).ok();
    s.run(&["advance", "--env", "staging", "--render"]).ok();
    let k = s.read("canary/staging/kustomization.yaml");
    assert!(
        k.contains("canaryplan.io/stage: done") && !k.contains("patches:"),
        "{k}"
    );
    let (t, d, svc) = at(&s);
    assert_eq!(t, v(&[("reviews-v4", 100.0)]));
    assert_eq!(d, ["reviews-v2", "reviews-v3", "reviews-v4"]);
    assert_eq!(svc, ["reviews", "reviews-v4"]);
}

#[test]
fn a_base_service_with_a_version_services_name_must_select_that_version() {
    let s = Scratch::fixture("gateway-versioned");
    s.write(
        "base/services-by-version.yaml",
        &s.read("base/services-by-version.yaml")
            .replace("version: v1", "version: v2"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("base/services-by-version.yaml:15:5: error: the base has a Service `reviews-v1`, the name of version v1's Service, and it does not select that version's pods"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_readme_example_is_a_plan_that_validates() {
    // docs/gateway-api.md's plan and route (once in the README), on the north-south fixture's
    // Deployment/Service.
    let page = std::fs::read_to_string(root().join("docs/gateway-api.md")).unwrap();
    let section = &page[page.find("# Gateway API").unwrap()..];
    let mut blocks = section
        .split("```yaml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()]);
    let (plan, route) = (blocks.next().unwrap(), blocks.next().unwrap());
    let s = Scratch::fixture("gateway-north-south");
    s.write("canaryplan.yaml", plan);
    s.write("base/httproute.yaml", route);
    let r = s.run(&["validate"]);
    r.ok();
    assert!(
        r.stderr.contains("production ok (stage shift)"),
        "{}",
        r.stderr
    );
}

#[test]
fn init_detects_http_routes_and_writes_a_gateway_api_plan_that_validates() {
    for (fixture, args, gamma) in [
        ("gateway-north-south", vec!["init"], false),
        ("gateway-gamma", vec!["init"], true),
        (
            "gateway-versioned",
            vec!["init", "--service", "reviews", "--workload", "reviews-v1"],
            true,
        ),
    ] {
        let s = Scratch::fixture(fixture);
        std::fs::remove_file(s.plan()).unwrap();
        s.run(&args).ok();
        let plan = s.read("canaryplan.yaml");
        assert!(
            plan.contains("\n  traffic: gateway-api\n"),
            "{fixture}: {plan}"
        );
        assert!(
            !plan.contains("selector:"),
            "{fixture}: no Service selector patch: {plan}"
        );
        assert_eq!(
            plan.contains("# meshRoute: generate"),
            !gamma,
            "{fixture}: {plan}"
        );
        let v = s.run(&["validate"]);
        assert_eq!(v.code, 0, "{fixture}: {plan}\n{}", v.stderr);
    }
}

#[test]
fn a_virtualservice_to_the_same_service_is_refused() {
    // Its callers would go past the weighted HTTPRoutes, to whatever the Service selects.
    let s = Scratch::fixture("gateway-north-south");
    s.write(
        "base/virtualservice.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop-mesh}\nspec:\n  hosts: [shop]\n  http:\n  - route:\n    - destination: {host: shop}\n",
    );
    s.write(
        "base/kustomization.yaml",
        &s.read("base/kustomization.yaml").replace(
            "- httproute.yaml\n",
            "- httproute.yaml\n- virtualservice.yaml\n",
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("base/virtualservice.yaml:7:5: error: VirtualService shop-mesh routes to Service shop too, past the HTTPRoutes canaryplan weights"),
        "{}",
        r.stderr
    );
}
