//! The stage invariants over real renders: each fixture of a failing case (`fixtures/invariant-*`)
//! is rendered in memory the way `render --stdout` does, its base loaded beside it, and the
//! engine must refuse it naming the rule, the environment, the request class and the shares
//! before and after; and every existing fixture, walked through every stage of its ladder,
//! must pass every rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use canaryplan::invariants::{
    self, Declared, LaneShare, LaneWeight, Model, Record, Revisions, Shift, Violation,
};
use canaryplan::{AnyPlan, Mode, Templates};
use common::{DONE_AFTER_BASE_EDIT, FIXTURES, Scratch, stages_of};
use serde_json::Value;

/// A plan's environment rendered in memory: its final stream and its base's objects.
struct Rendered {
    plan: AnyPlan,
    new: Vec<Value>,
    base: Vec<Value>,
}

fn base_objects(plan: &AnyPlan, env: &str) -> Vec<Value> {
    let load = |dir: &Path, base: &str, root: &canaryplan::fsio::Root| {
        canaryplan::base::load(&dir.join(base), root)
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.value)
            .collect::<Vec<Value>>()
    };
    match plan {
        AnyPlan::Canary(p) => {
            let e = p.environment(env).unwrap();
            load(&p.dir, &e.base.value, &p.root)
        }
        AnyPlan::Lanes(p) => p
            .services
            .iter()
            .flat_map(|m| load(&p.dir, &m.base.value, &p.root))
            .collect(),
        AnyPlan::GatewayUpgrade(p) => load(&p.dir, &p.base.value, &p.root),
        AnyPlan::RevisionUpgrade(p) => load(&p.dir, &p.base.value, &p.root),
    }
}

fn render(plan_path: &Path, env: &str) -> Rendered {
    let plan = canaryplan::load_any(plan_path).unwrap_or_else(|e| panic!("{e}"));
    let renders = canaryplan::render_any(
        &plan,
        &[env.to_string()],
        &Templates::builtin(),
        Mode::Stream,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", plan_path.display()));
    let new = renders.into_iter().next().unwrap().objects;
    let base = base_objects(&plan, env);
    Rendered { plan, new, base }
}

fn environments(plan: &AnyPlan) -> Vec<String> {
    match plan {
        AnyPlan::Canary(p) => p
            .environments
            .iter()
            .map(|e| e.name.value.clone())
            .collect(),
        AnyPlan::Lanes(p) => p
            .environments
            .iter()
            .map(|e| e.name.value.clone())
            .collect(),
        AnyPlan::GatewayUpgrade(p) => p
            .environments
            .iter()
            .map(|e| e.name.value.clone())
            .collect(),
        AnyPlan::RevisionUpgrade(p) => p
            .environments
            .iter()
            .map(|e| e.name.value.clone())
            .collect(),
    }
}

/// How the model names a workload of the base: `ns/name`, or `name` without a namespace.
fn named(base: &[Value], kind: &str, name: &str) -> String {
    base.iter()
        .find(|o| {
            o["kind"] == kind && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        })
        .and_then(|o| o.pointer("/metadata/namespace").and_then(Value::as_str))
        .map_or(name.to_string(), |ns| format!("{ns}/{name}"))
}

/// The step each kind's stage declares, in traffic terms: the table of the module doc
/// (`src/invariants/mod.rs`), built from the plan alone, never from the render.
fn declared(r: &Rendered, env: &str) -> Declared {
    match &r.plan {
        AnyPlan::Canary(p) => {
            use canaryplan::Stage::*;
            let e = p.environment(env).unwrap();
            let ns_of = |name: &str| {
                named(&r.base, "Deployment", &p.workload.value)
                    .split_once('/')
                    .map_or(name.to_string(), |(ns, _)| format!("{ns}/{name}"))
            };
            let (stable, canary) = match p.method {
                canaryplan::plan::Method::Versioned => {
                    (p.workload.value.clone(), p.versioned_canary_name())
                }
                _ => (p.stable_copy_name(), p.workload.value.clone()),
            };
            let shift = |to: f64| invariants::Shift {
                service: p.service.value.clone(),
                ports: p.ports.iter().map(|x| u32::from(x.value)).collect(),
                stable: vec![ns_of(&stable)],
                canary: vec![ns_of(&canary)],
                from: None,
                to,
                held: e
                    .matches
                    .iter()
                    .map(|m| canaryplan::explain::condition(&m.value))
                    .collect(),
                revisions: None,
                by_pods: false,
                hosts: e.hosts.iter().map(|h| h.value.clone()).collect(),
            };
            match e.stage.value {
                Prepare => Declared::Prepare,
                Route | Shift => Declared::Shift(shift(f64::from(e.model.weights().canary))),
                Cleanup1 | Cleanup2 | Cleanup3 => Declared::Cleanup(shift(100.0)),
                Done => Declared::Done,
            }
        }
        AnyPlan::Lanes(p) => {
            use canaryplan::Stage::*;
            let e = p.environments.iter().find(|e| e.name.value == env).unwrap();
            let with_lanes: Vec<_> = p
                .services
                .iter()
                .filter(|m| {
                    p.lanes
                        .iter()
                        .any(|l| l.image_of(&m.service.value).is_some())
                })
                .collect();
            let baseline = with_lanes
                .iter()
                .map(|m| named(&r.base, "Deployment", &m.workload.value))
                .collect();
            let lanes = p
                .lanes
                .iter()
                .map(|l| LaneShare {
                    lane: l.name.value.clone(),
                    copies: with_lanes
                        .iter()
                        .filter(|m| l.image_of(&m.service.value).is_some())
                        .map(|m| {
                            let copy = canaryplan::kinds::lanes::CheckedLanePlan::copy_name(
                                &m.workload.value,
                                &l.name.value,
                            );
                            named(&r.base, "Deployment", &m.workload.value)
                                .rsplit_once('/')
                                .map_or(copy.clone(), |(ns, _)| format!("{ns}/{copy}"))
                        })
                        .collect(),
                    to: if e.stage.value == Shift && e.model.weighted {
                        f64::from(e.weight(&l.name.value))
                    } else {
                        0.0
                    },
                })
                .collect();
            let header = &p.header.value;
            let held = p
                .lanes
                .iter()
                .map(|l| l.name.value.clone())
                .chain(std::iter::once(p.baseline.value.clone()))
                .map(|l| format!("header {header}={l}"))
                .collect();
            let lane_weight = |held| {
                Declared::LaneWeight(LaneWeight {
                    ingress: p.ingress.as_ref().map(|i| i.gateway.value.clone()),
                    baseline,
                    lanes,
                    held,
                })
            };
            match e.stage.value {
                Prepare => Declared::Prepare,
                Route | Shift => lane_weight(held),
                // Every lane route goes: every class on the baseline, none held in a lane.
                Cleanup1 | Cleanup2 | Cleanup3 => lane_weight(Vec::new()),
                Done => Declared::Done,
            }
        }
        AnyPlan::GatewayUpgrade(p) => {
            let e = p.environments.iter().find(|e| e.name.value == env).unwrap();
            let base = canaryplan::base::load(&p.dir.join(&p.base.value), &p.root).unwrap();
            let found = canaryplan::kinds::gateway_upgrade::find(p, &base).unwrap();
            let (canary_pods, all_pods) = canaryplan::kinds::gateway_upgrade::pod_share(p, &found);
            let gateway = named(&r.base, "Deployment", &p.gateway.value);
            let canary = gateway.rsplit_once('/').map_or(p.canary_name(), |(ns, _)| {
                format!("{ns}/{}", p.canary_name())
            });
            let revisions = p.revision.as_ref().map(|rev| Revisions {
                namespaces: Vec::new(),
                workloads: vec![gateway.clone()],
                to: rev.value.clone(),
            });
            let shift = |to: f64, revisions| Shift {
                service: found.service.name.clone(),
                ports: Vec::new(),
                stable: vec![gateway.clone()],
                canary: vec![canary.clone()],
                from: None,
                to,
                held: Vec::new(),
                revisions,
                by_pods: true,
                hosts: Vec::new(),
            };
            let share = 100.0 * canary_pods as f64 / all_pods as f64;
            match e.stage.value.as_str() {
                "prepare" => Declared::Prepare,
                "canary" => Declared::Shift(shift(share, None)),
                "upgrade" => Declared::Shift(shift(share, revisions)),
                "cleanup" => Declared::Cleanup(shift(0.0, revisions)),
                _ => Declared::Done,
            }
        }
        AnyPlan::RevisionUpgrade(p) => {
            let e = p.environments.iter().find(|e| e.name.value == env).unwrap();
            let stage = e.stage.value.as_str();
            let to = p.to.value.clone();
            match stage {
                "prepare" => Declared::Prepare,
                "done" => Declared::Done,
                "promote-tags" => Declared::Waves(Revisions {
                    namespaces: vec!["*".to_string()],
                    workloads: Vec::new(),
                    to,
                }),
                _ => Declared::Waves(Revisions {
                    namespaces: p
                        .waves
                        .iter()
                        .take(p.waves_at(stage))
                        .flatten()
                        .map(|n| n.value.clone())
                        .collect(),
                    workloads: Vec::new(),
                    to,
                }),
            }
        }
    }
}

fn show(v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("[{}] {}\n  hint: {}", v.rule, v.message, v.hint))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every rule over one environment of a plan on disk, without a record.
fn check(plan_path: &Path, env: &str) -> (Rendered, Model, Model, Vec<Violation>) {
    let r = render(plan_path, env);
    let (base, new) = (invariants::model(&r.base), invariants::model(&r.new));
    let step = declared(&r, env);
    let v = invariants::check(env, &base, None, &new, &step);
    (r, base, new, v)
}

fn fixture(name: &str) -> Scratch {
    Scratch::fixture(name)
}

#[test]
fn every_fixture_passes_every_invariant_at_every_stage() {
    let mut failures = Vec::new();
    for f in FIXTURES {
        for stage in stages_of(f) {
            if stage == "done" && DONE_AFTER_BASE_EDIT.contains(&f) {
                continue;
            }
            let s = fixture(f);
            s.set_stage(stage);
            let plan = canaryplan::load_any(&s.plan()).unwrap();
            for env in environments(&plan) {
                let (_, base, new, v) = check(&s.plan(), &env);
                if !v.is_empty() {
                    failures.push(format!("{f} at {stage}, {env}:\n{}", show(&v)));
                }
                // The record the overlay would keep reads back as written, and a render of an
                // unchanged entry against it passes.
                let record = Record::new(serde_json::json!({"stage": stage}), new.clone());
                let text = record.to_yaml();
                let read = invariants::record::parse(Path::new("record.yaml"), &text)
                    .unwrap_or_else(|e| panic!("{f} at {stage}, {env}: {e}\n{text}"));
                assert_eq!(read, record, "{f} at {stage}, {env}");
                let again = invariants::check(&env, &base, Some(&read), &new, &Declared::Unchanged);
                assert!(again.is_empty(), "{f} at {stage}, {env}: {}", show(&again));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `INVARIANTS_SHOW=fixture:stage:env cargo test --test invariants show_models -- --nocapture`
/// prints the base's and the render's models, the delta and the violations: for reviewing a
/// rule against a fixture.
#[test]
fn show_models() {
    let Ok(spec) = std::env::var("INVARIANTS_SHOW") else {
        return;
    };
    let (f, stage, env) = {
        let mut it = spec.split(':');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let s = fixture(&f);
    s.set_stage(&stage);
    let (_, base, new, v) = check(&s.plan(), &env);
    println!("BASE\n{}", Record::new(Value::Null, base.clone()).to_yaml());
    println!("NEW\n{}", Record::new(Value::Null, new.clone()).to_yaml());
    println!("DELTA\n{}", invariants::delta(&base, &new).to_text(&env));
    println!("VIOLATIONS\n{}", show(&v));
}

/// The failing cases' plans are named `failing-plan.yaml`, so that `render --all` and
/// `diff --all` (which find `canaryplan.yaml` files) leave them out: they are layouts the
/// invariants refuse, with no rendered output to keep current.
const FAILING_PLAN: &str = "failing-plan.yaml";

fn plan_of(fixture: &str) -> std::path::PathBuf {
    common::fixture_dir(fixture).join(FAILING_PLAN)
}

fn shares(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(w, p)| (w.to_string(), *p)).collect()
}

#[test]
fn case_1_gateway_api_prepare_that_drains_a_live_version_is_refused() {
    let (_, _, _, v) = check(&plan_of("invariant-gateway-prepare"), "production");
    assert_eq!(v.len(), 1, "{}", show(&v));
    let v = &v[0];
    assert_eq!(v.rule, "prepare-changes-no-traffic");
    assert_eq!(v.environment, "production");
    assert_eq!(
        v.class.as_deref(),
        Some("gateway hello/helloworld-gateway, *:5000 (http, path=/hello)")
    );
    assert_eq!(
        v.before,
        shares(&[("hello/helloworld-v1", 50.0), ("hello/helloworld-v2", 50.0)])
    );
    assert_eq!(v.after, shares(&[("hello/helloworld-v1", 100.0)]));
    assert_eq!(
        v.message,
        "production is at prepare, which changes no traffic, but gateway hello/helloworld-gateway, *:5000 (http, path=/hello) would go hello/helloworld-v1 50% · hello/helloworld-v2 50% → hello/helloworld-v1 100%"
    );
}

#[test]
fn case_2_a_shared_base_edit_that_upgrades_an_unchanged_environment_is_refused() {
    let s = fixture("invariant-gateway-upgrade-shared-base");
    // What production's overlay records when it is rendered at prepare, as it is on disk.
    let plan = s.path().join(FAILING_PLAN);
    let before = render(&plan, "production");
    let entry = serde_json::json!({"stage": "prepare"});
    let on_disk = Record::new(entry.clone(), invariants::model(&before.new)).to_yaml();
    let record =
        invariants::record::parse(Path::new("canary/production/record.yaml"), &on_disk).unwrap();
    // Staging's `done` hint: the new revision into the (shared) base.
    let gateway = s.read("ingress/gateway.yaml");
    s.write(
        "ingress/gateway.yaml",
        &gateway.replace("istio.io/rev: 1-22-1", "istio.io/rev: 1-23-1"),
    );
    let after = render(&plan, "production");
    let (base, new) = (
        invariants::model(&after.base),
        invariants::model(&after.new),
    );
    // Production's entry is the one its record was rendered from.
    assert_eq!(record.entry, entry);
    let v = invariants::check(
        "production",
        &base,
        Some(&record),
        &new,
        &Declared::Unchanged,
    );
    assert_eq!(v.len(), 1, "{}", show(&v));
    assert_eq!(v[0].rule, "unchanged-environment-does-not-change");
    assert_eq!(v[0].environment, "production");
    assert_eq!(
        v[0].workload.as_deref(),
        Some("istio-ingress/istio-ingressgateway")
    );
    assert_eq!(
        v[0].message,
        "production: its plan entry did not change and istio-ingress/istio-ingressgateway serves requests, but the revision injecting istio-ingress/istio-ingressgateway would change from 1-22-1 to 1-23-1"
    );
    // Prepare itself is kept (new ≡ base: the base moved with it): only the record sees it.
    assert!(invariants::check("production", &base, None, &new, &Declared::Prepare).is_empty());
    // Staging, at cleanup, is where that edit belongs: it passes there.
    let (_, _, _, v) = check(&plan, "staging");
    assert!(v.is_empty(), "{}", show(&v));
}

#[test]
fn an_ordinary_base_edit_passes_for_an_unchanged_environment() {
    let s = fixture("invariant-gateway-upgrade-shared-base");
    let plan = s.path().join(FAILING_PLAN);
    let before = render(&plan, "production");
    let record = Record::new(
        serde_json::json!({"stage": "prepare"}),
        invariants::model(&before.new),
    );
    // Resource limits and the HPA's ceiling: no class moves, no image or revision changes.
    let gateway = s.read("ingress/gateway.yaml");
    s.write(
        "ingress/gateway.yaml",
        &gateway.replace("maxReplicas: 5", "maxReplicas: 8").replace(
            "        image: auto\n",
            "        image: auto\n        resources:\n          limits: {cpu: \"2\", memory: 1Gi}\n",
        ),
    );
    assert_ne!(s.read("ingress/gateway.yaml"), gateway, "the edit took");
    let after = render(&plan, "production");
    let (base, new) = (
        invariants::model(&after.base),
        invariants::model(&after.new),
    );
    let v = invariants::check(
        "production",
        &base,
        Some(&record),
        &new,
        &Declared::Unchanged,
    );
    assert!(v.is_empty(), "{}", show(&v));
    // The delta says nothing moved; the record refreshes.
    assert!(invariants::delta(&record.model, &new).is_empty());
}

#[test]
fn case_3_a_second_deployment_behind_a_lane_service_losing_its_traffic_is_refused() {
    let (_, _, _, v) = check(&plan_of("invariant-lanes-second-deployment"), "production");
    let lost: Vec<&Violation> = v.iter().filter(|v| v.rule == "no-endpoint-lost").collect();
    assert_eq!(lost.len(), 1, "{}", show(&v));
    assert_eq!(lost[0].environment, "production");
    assert_eq!(lost[0].workload.as_deref(), Some("mock/mocka-v2"));
    assert_eq!(
        lost[0].message,
        "production: Service mock/mocka selects the pods of mock/mocka-v2 in the base, and in this render neither it (it selects mock/mocka-v1, mock/mocka-v1-canary) nor any route does"
    );
    // Where mesh callers of mocka went: half to each Deployment; now all to the baseline.
    let moved: Vec<&Violation> = v
        .iter()
        .filter(|v| v.rule == "step-moves-what-it-declares")
        .collect();
    assert_eq!(moved.len(), 1, "{}", show(&v));
    assert_eq!(
        moved[0].class.as_deref(),
        Some("mesh callers of mocka:8000 (http, every request except header x-lane=canary)")
    );
    assert_eq!(
        moved[0].before,
        shares(&[("mock/mocka-v1", 50.0), ("mock/mocka-v2", 50.0)])
    );
    assert_eq!(moved[0].after, shares(&[("mock/mocka-v1", 100.0)]));
}

#[test]
fn case_4_a_lane_abort_that_leaves_lane_requests_on_the_copies_is_refused() {
    let s = fixture("invariant-lanes-abort");
    s.run(&["abort", FAILING_PLAN, "--env", "production"]).ok();
    assert!(s.read(FAILING_PLAN).contains("weight: 0"));
    let r = render(&s.path().join(FAILING_PLAN), "production");
    let (base, new) = (invariants::model(&r.base), invariants::model(&r.new));
    let step = Declared::Abort {
        canary: vec!["mock/mocka-v1-canary".to_string()],
    };
    let v = invariants::check("production", &base, None, &new, &step);
    let classes: Vec<&str> = v.iter().filter_map(|v| v.class.as_deref()).collect();
    assert_eq!(
        classes,
        vec![
            "gateway istio-system/ingressgateway, mock.example.com:8000 (http, header x-lane=canary)",
            "mesh callers of mocka:8000 (http, header x-lane=canary)",
        ],
        "{}",
        show(&v)
    );
    for x in &v {
        assert_eq!(x.rule, "step-moves-what-it-declares");
        assert_eq!(x.environment, "production");
        assert_eq!(x.after, shares(&[("mock/mocka-v1-canary", 100.0)]));
        assert!(
            x.message
                .starts_with("production: after an abort no request reaches the canary, but "),
            "{}",
            x.message
        );
    }
    // The untagged ingress requests did go back to the baseline.
    assert!(
        new.classes
            .iter()
            .any(|c| c.entry == "istio-system/ingressgateway"
                && c.condition == "every request"
                && c.to == shares(&[("mock/mocka-v1", 100.0)]))
    );
}

#[test]
fn case_5_one_service_port_split_two_ways_is_refused() {
    let (_, _, _, v) = check(&plan_of("invariant-tcp-two-ways"), "production");
    assert_eq!(v.len(), 1, "{}", show(&v));
    let v = &v[0];
    assert_eq!(v.rule, "step-moves-what-it-declares");
    assert_eq!(v.environment, "production");
    // The gateway's route matches 31400 and delivers to tcp-echo:9000.
    assert_eq!(
        v.class.as_deref(),
        Some("gateway echo/tcp-echo-gateway, *:9000 (tcp, port 31400)")
    );
    assert_eq!(v.before, shares(&[("echo/tcp-echo", 100.0)]));
    assert_eq!(v.after, shares(&[("echo/tcp-echo-v1", 100.0)]));
    assert_eq!(
        v.message,
        "production: the step sends 10% canary, 90% stable of Service tcp-echo's requests, but gateway echo/tcp-echo-gateway, *:9000 (tcp, port 31400) would go echo/tcp-echo-v1 100%"
    );
}

#[test]
fn a_canary_abort_takes_the_canary_out_of_every_route_and_a_test_route_keeps_it_in() {
    // The runbook: no test routes; after `abort`, no class reaches the canary.
    let s = fixture("runbook");
    s.run(&["abort", "--env", "production"]).ok();
    let r = render(&s.plan(), "production");
    let (base, new) = (invariants::model(&r.base), invariants::model(&r.new));
    let abort = Declared::Abort {
        canary: vec!["my-service/web".to_string()],
    };
    let v = invariants::check("production", &base, None, &new, &abort);
    assert!(v.is_empty(), "{}", show(&v));
    // test-routes: `abort` sets weight 0, and the test routes by header and cookie still send
    // their requests to the canary — what the issue says an abort must not leave.
    let s = fixture("test-routes");
    s.run(&["abort", "--env", "production"]).ok();
    let r = render(&s.plan(), "production");
    let (base, new) = (invariants::model(&r.base), invariants::model(&r.new));
    let abort = Declared::Abort {
        canary: vec!["my-service-tests/web".to_string()],
    };
    let v = invariants::check("production", &base, None, &new, &abort);
    assert_eq!(v.len(), 1, "{}", show(&v));
    assert_eq!(v[0].rule, "step-moves-what-it-declares");
    assert_eq!(
        v[0].class.as_deref(),
        Some(
            "gateway istio-system/public, my-service.example.net:80 (http, uri prefix / and header x-canary=true)"
        )
    );
    assert_eq!(v[0].after, shares(&[("my-service-tests/web", 100.0)]));
}
