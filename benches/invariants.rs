//! The cost of the invariants' traffic model (`invariants::model`), which every render of every
//! environment builds twice (base and new): on the runbook fixture's final stream, and on a
//! generated stream of 200 routes (200 Services, 400 Deployments, one VirtualService with 200
//! http routes over subsets, their DestinationRules). Run: `cargo bench --bench invariants`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(what: &str, objects: &[Value], runs: usize) {
    // One run to warm the allocator and caches.
    let m = canaryplan::invariants::model(objects);
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(canaryplan::invariants::model(std::hint::black_box(objects)));
            t.elapsed()
        })
        .collect();
    let check = Instant::now();
    let step = canaryplan::invariants::Declared::Unchanged;
    std::hint::black_box(canaryplan::invariants::check("e", &m, None, &m, &step));
    let check = check.elapsed();
    println!(
        "{what}: {} objects, {} classes: model() median {:.3} ms over {runs} runs; check() {:.3} ms",
        objects.len(),
        m.classes.len(),
        median(times).as_secs_f64() * 1e3,
        check.as_secs_f64() * 1e3
    );
}

fn runbook() -> Vec<Value> {
    let plan = canaryplan::load_any(Path::new("fixtures/runbook/canaryplan.yaml")).unwrap();
    let renders = plan
        .render(
            &["production".to_string()],
            &canaryplan::Templates::builtin(),
            canaryplan::Mode::Stream,
        )
        .unwrap();
    renders.into_iter().next().unwrap().objects
}

fn two_hundred_routes() -> Vec<Value> {
    let mut out = Vec::new();
    let mut http = Vec::new();
    for i in 0..200 {
        let app = format!("app-{i}");
        out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": "shop"},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 8080}]}}));
        for v in ["v1", "v2"] {
            out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("{app}-{v}"), "namespace": "shop"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app, "version": v}},
                  "template": {"metadata": {"labels": {"app": app, "version": v}},
                    "spec": {"containers": [{"name": "main", "image": format!("registry.example/{app}:{v}")},
                                            {"name": "sidecar", "image": "registry.example/proxy:1"}]}}}}));
        }
        out.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": app, "namespace": "shop"},
            "spec": {"host": app, "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}));
        http.push(json!({"name": app, "match": [{"uri": {"prefix": format!("/{app}/")}}],
            "route": [{"destination": {"host": app, "subset": "v1", "port": {"number": 8080}}, "weight": 90},
                      {"destination": {"host": app, "subset": "v2", "port": {"number": 8080}}, "weight": 10}]}));
    }
    out.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"hosts": ["shop.example.com"], "gateways": ["istio-system/public"], "http": http}}));
    out
}

fn main() {
    time("runbook fixture, production", &runbook(), 200);
    time("generated, 200 routes", &two_hundred_routes(), 20);
}
