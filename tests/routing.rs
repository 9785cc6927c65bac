//! The routing toolbox beyond weights, as a user meets it: shadow traffic (`mirror`), several
//! VirtualServices, delegates, tcp routes by port. Each feature is proven on the final stream
//! by the evaluator (`explain`), and each misuse is refused with a located error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

fn virtual_service<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == "VirtualService" && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no VirtualService {name}"))
}

fn explain(s: &Scratch, env: &str) -> String {
    s.run(&["explain", "--env", env]).ok().stdout.clone()
}

#[test]
fn mirror_copies_the_stable_share_to_the_canary_while_stable_serves() {
    let s = Scratch::fixture("mirror");
    // Staging: weight 0, the plan's 10%; production its own 0.5%.
    assert_eq!(
        explain(&s, "staging"),
        "checkout  http  route \"payments\"  (VirtualService checkout, via mesh)\n  uri prefix /pay  → v1 100% · v2 0% · mirror v2 10%\ncheckout  http  route \"default\"  (VirtualService checkout, via mesh)\n  everything else  → v1 100% · v2 0% · mirror v2 10%\n"
    );
    assert!(explain(&s, "production").contains("→ v1 95% · v2 5% · mirror v2 0.5%"));
    let vs = virtual_service(&stream(&s, "production"), "checkout").clone();
    assert_eq!(vs["spec"]["http"][0]["mirror"]["subset"], "v2");
    assert_eq!(vs["spec"]["http"][0]["mirrorPercentage"]["value"], 0.5);
    // `status` says how much is mirrored, and where.
    let status: Value =
        serde_json::from_str(&s.run(&["status", "--format", "json"]).ok().stdout).unwrap();
    let production = &status["plans"][0]["environments"][1];
    assert_eq!(production["mirrored"], 0.5, "{production}");
    assert!(
        production["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("0.5% of these requests are also copied to Deployment checkout"),
        "{production}"
    );
    // At `route` (succession) the canary subset takes every request and still runs the stable
    // code: there is nothing to mirror to, so nothing is.
    s.set_stage("route");
    assert!(!explain(&s, "staging").contains("mirror"));
    // At weight 100 it would mirror the canary to itself: refused, with the way out.
    let s = Scratch::fixture("mirror");
    s.edit_plan(|t| t.replace("weight: 0\n", "weight: 100\n"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:24:11: error: environment `staging` mirrors 10% to the canary at weight 100")
            && r.stderr.contains("set `mirror: 0` on environment `staging`"),
        "{}",
        r.stderr
    );
    s.edit_plan(|t| t.replace("    staging:\n", "    staging:\n      mirror: 0\n"));
    s.run(&["validate"]).ok();
    assert!(!explain(&s, "staging").contains("mirror"));
}

#[test]
fn a_route_that_mirrors_already_is_refused_or_extended() {
    let s = Scratch::fixture("mirror");
    let vs = s.read("base/virtualservice.yaml");
    s.write(
        "base/virtualservice.yaml",
        &vs.replace(
            "    timeout: 30s\n",
            "    timeout: 30s\n    mirror:\n      host: audit.observability.svc.cluster.local\n",
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("base/virtualservice.yaml:15:7: error: route http[0] of VirtualService checkout already mirrors to audit.observability.svc.cluster.local")
            && r.stderr.contains("`mirrors: [{destination: ..., percentage: ...}]`"),
        "{}",
        r.stderr
    );
    // Written as `mirrors:` (Istio 1.22+), the canary joins the list.
    s.write(
        "base/virtualservice.yaml",
        &vs.replace(
            "    timeout: 30s\n",
            "    timeout: 30s\n    mirrors:\n    - destination: {host: audit.observability.svc.cluster.local}\n      percentage: {value: 1}\n",
        ),
    );
    let vs = virtual_service(&stream(&s, "staging"), "checkout").clone();
    let mirrors = vs["spec"]["http"][0]["mirrors"].as_array().unwrap();
    assert_eq!(mirrors.len(), 2, "{vs}");
    assert_eq!(mirrors[1]["destination"]["subset"], "v2");
    assert_eq!(mirrors[1]["percentage"]["value"], 10);
    assert!(explain(&s, "staging").contains(
        "v1 100% · v2 0% · mirror audit.observability.svc.cluster.local 1% (not a Service of these manifests) · mirror v2 10%"
    ));
}

#[test]
fn mirror_values_are_checked_where_they_are_written() {
    let s = Scratch::fixture("mirror");
    s.edit_plan(|t| t.replace("mirror: 0.5", "mirror: half"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml:30:15: error: mirror is a percent from 0 to 100"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_gateway_and_the_mesh_virtual_services_split_alike() {
    let s = Scratch::fixture("two-virtualservices");
    let objects = stream(&s, "staging");
    for name in ["catalog-public", "catalog-mesh"] {
        let vs = virtual_service(&objects, name);
        let http = vs["spec"]["http"].as_array().unwrap();
        // The test route first, then the split.
        assert_eq!(http.len(), 2, "{name}: {vs}");
        assert_eq!(http[1]["route"][0]["weight"], 75, "{name}");
        assert_eq!(http[1]["route"][1]["weight"], 25, "{name}");
    }
    // Naming only the gateway's would leave mesh callers on the bare host, which once the
    // Service selects both versions reaches them by pod count: that stage cannot be rendered.
    s.edit_plan(|t| {
        t.replace(
            "virtualServices: [catalog-public, catalog-mesh]",
            "virtualService: catalog-public",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("error: VirtualService catalog-mesh, http[0]: catalog reaches the pods of both versions by pod count, not by the plan's weights")
            && r.stderr.contains("list every VirtualService that routes to the Service"),
        "{}",
        r.stderr
    );
    // A mesh VirtualService that already splits, with other weights, disagrees too.
    let base = s.read("base/virtualservices.yaml");
    s.write(
        "base/virtualservices.yaml",
        &base.replace(
            "  - route:\n    - destination:\n        host: catalog\n",
            "  - route:\n    - destination: {host: catalog, subset: v1}\n      weight: 50\n    - destination: {host: catalog, subset: v2}\n      weight: 50\n",
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("error: VirtualService catalog-mesh, http[0] sends 50% to subset `v1` and 50% to subset `v2`, but VirtualService catalog-public, http[1] (\"api\") sends 75% and 25%"),
        "{}",
        r.stderr
    );
    // Both spellings at once, or a name twice, are located.
    let s = Scratch::fixture("two-virtualservices");
    s.edit_plan(|t| {
        t.replace(
            "virtualServices: [catalog-public, catalog-mesh]",
            "virtualService: catalog-public\n  virtualServices: [catalog-mesh, catalog-mesh]",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "canaryplan.yaml:12:20: error: both `virtualService` and `virtualServices` are set"
        ) && r.stderr.contains(
            "canaryplan.yaml:12:35: error: VirtualService `catalog-mesh` is listed twice"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_delegate_is_patched_and_its_root_left_alone() {
    let s = Scratch::fixture("delegate");
    s.run(&["render", "--from-scratch"]).ok();
    let files: Vec<String> = std::fs::read_dir(s.path().join("canary/staging"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(files.contains(&"patch-virtualservice-reviews.yaml".to_string()));
    assert!(!files.iter().any(|f| f.contains("bookinfo")), "{files:?}");
    // The delegate's routes serve under the root's host and /reviews condition.
    assert_eq!(
        explain(&s, "staging"),
        "bookinfo.example.com  http  route [0]  (VirtualService bookinfo, via istio-system/public)\n  uri prefix /reviews  → the routes of VirtualService reviews\nbookinfo.example.com  http  route \"reviews-canary\"  (VirtualService reviews, delegated from VirtualService bookinfo, http[0], via istio-system/public)\n  uri prefix /reviews and header end-user=jason  → v2 100%\nbookinfo.example.com  http  route \"reviews\"  (VirtualService reviews, delegated from VirtualService bookinfo, http[0], via istio-system/public)\n  uri prefix /reviews, less what the routes above catch  → v1 90% · v2 10% · mirror v2 5%\n"
    );
    // A delegate has no hosts of its own to change.
    s.edit_plan(|t| {
        t.replace(
            "    staging:\n",
            "    staging:\n      hosts: [reviews.example.com]\n",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "canaryplan.yaml:27:15: error: VirtualService reviews is a delegate: it has no hosts of its own"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn tcp_routes_are_selected_by_port_and_cannot_match_or_mirror() {
    let s = Scratch::fixture("tcp");
    let vs = virtual_service(&stream(&s, "staging"), "mysql").clone();
    for i in 0..2 {
        assert_eq!(
            vs["spec"]["tcp"][i]["route"][1]["destination"]["subset"],
            "v2"
        );
        assert_eq!(vs["spec"]["tcp"][i]["route"][1]["weight"], 50);
    }
    // Selecting only 3306 would leave the admin port on the bare host, which reaches both
    // versions by pod count once the Service selects both: refused.
    s.edit_plan(|t| t.replace("ports: [3306, 33062]", "ports: [3306]"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "VirtualService mysql, tcp[1]: mysql reaches the pods of both versions by pod count"
        ),
        "{}",
        r.stderr
    );
    s.edit_plan(|t| t.replace("ports: [3306]", "ports: [3306, 9999]"));
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:11:17: error: no tcp or tls route to mysql.orders-db.svc.cluster.local serves port 9999"),
        "{}",
        r.stderr
    );
    for (field, line) in [
        (
            "match:\n  - headers: {x-canary: {exact: \"true\"}}\n",
            "match",
        ),
        ("mirror: 10\n", "mirror"),
    ] {
        let s = Scratch::fixture("tcp");
        s.edit_plan(|t| t.replace("  environments:", &format!("  {field}  environments:")));
        let r = s.run(&["validate"]);
        r.fails();
        assert!(
            r.stderr.contains(&format!("error: `{line}` needs an http route, and every route to mysql.orders-db.svc.cluster.local the plan selects is tcp or tls")),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn subsets_go_into_the_base_destination_rule_never_a_second_one() {
    // bookinfo's destination-rule-all.yaml already defines reviews' subsets v1, v2, v3: the
    // canary's subset is added to THAT object (Istio merges two rules for one host unreliably),
    // and its other subsets and trafficPolicy stay.
    let s = Scratch::fixture("bookinfo-reviews");
    let dr = s.read("base/destination-rule.yaml");
    s.write(
        "base/destination-rule.yaml",
        &dr.replace(
            "spec:\n  host: reviews\n",
            "spec:\n  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 100}\n",
        ),
    );
    // Every stage but `done` (which renders the base alone).
    for stage in STAGES.into_iter().filter(|s| *s != "done") {
        s.set_stage(stage);
        let objects = stream(&s, "staging");
        let rules: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "DestinationRule")
            .collect();
        assert_eq!(rules.len(), 1, "{stage}: {rules:?}");
        let rule = rules[0];
        assert_eq!(rule["metadata"]["name"], "reviews", "{stage}");
        assert_eq!(
            rule["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"], 100,
            "{stage}"
        );
        let subsets: Vec<&str> = rule["spec"]["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for kept in ["v2", "v3"] {
            assert!(subsets.contains(&kept), "{stage}: {subsets:?}");
        }
        // Versioned: the canary's subset exists from prepare (before any route names it).
        assert!(subsets.contains(&"v4"), "{stage}: {subsets:?}");
    }
}
