//! The stage invariants over real renders: each fixture of a failing case (`fixtures/invariant-*`)
//! is rendered in memory the way `render --stdout` does, its base loaded beside it, and the
//! engine must refuse it naming the rule, the environment, the request class and the shares
//! before and after; and every existing fixture, walked through every stage of its ladder,
//! must pass every rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use canaryplan::invariants::{self, Declared, Model, Record, Violation};
use canaryplan::{Mode, Templates};
use common::{DONE_AFTER_BASE_EDIT, FIXTURES, Scratch, stages_of};
use serde_json::Value;

/// A plan's environment rendered in memory the way `render --stdout` does: every invariant
/// already held (a render that breaks one is refused), its models kept beside it.
struct Rendered {
    base: Model,
    new: Model,
    declared: Declared,
}

fn try_render(plan_path: &Path, env: &str) -> Result<Rendered, canaryplan::Error> {
    let plan = canaryplan::load_any(plan_path)?;
    let r = plan
        .render(&[env.to_string()], &Templates::builtin(), Mode::Stream)?
        .into_iter()
        .next()
        .unwrap();
    Ok(Rendered {
        base: r.base_model.unwrap(),
        new: r.model.unwrap(),
        declared: r.declared.unwrap(),
    })
}

fn render(plan_path: &Path, env: &str) -> Rendered {
    try_render(plan_path, env).unwrap_or_else(|e| panic!("{}: {e}", plan_path.display()))
}

/// The refusal of a render that breaks an invariant, as the user reads it.
fn refusal(plan_path: &Path, env: &str) -> String {
    match try_render(plan_path, env) {
        Ok(_) => panic!(
            "{}: rendered, but it breaks an invariant",
            plan_path.display()
        ),
        Err(e) => e.to_string(),
    }
}

fn show(v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("[{}] {}\n  hint: {}", v.rule, v.message, v.hint))
        .collect::<Vec<_>>()
        .join("\n")
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
            for env in plan.environments() {
                let (base, new) = match try_render(&s.plan(), &env) {
                    Ok(r) => (r.base, r.new),
                    Err(e) => {
                        failures.push(format!("{f} at {stage}, {env}:\n{e}"));
                        continue;
                    }
                };
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
    let r = render(&s.plan(), &env);
    println!(
        "BASE\n{}",
        Record::new(Value::Null, r.base.clone()).to_yaml()
    );
    println!("NEW\n{}", Record::new(Value::Null, r.new.clone()).to_yaml());
    println!(
        "DELTA\n{}",
        invariants::delta(&r.base, &r.new).to_text(&env)
    );
    println!("DECLARED\n{:?}", r.declared);
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

/// The refusal names the rule, the environment and the request class with its shares before
/// and after, located at the environment's stage in the plan; `validate` exits 2 with it.
fn assert_refused(fixture: &str, line: &str, rule: &str, messages: &[&str]) {
    let e = refusal(&plan_of(fixture), "production");
    assert!(e.contains(line), "{e}");
    for m in messages {
        assert!(e.contains(&format!("{m} [{rule}]")), "{e}");
    }
    let s = Scratch::fixture(fixture);
    let r = s.run(&["validate", FAILING_PLAN]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(rule), "{}", r.stderr);
}

#[test]
fn case_1_gateway_api_prepare_that_drains_a_live_version_is_refused() {
    assert_refused(
        "invariant-gateway-prepare",
        "failing-plan.yaml:22:14",
        "prepare-changes-no-traffic",
        &[
            "production is at prepare, which changes no traffic, but gateway hello/helloworld-gateway, *:5000 (http, path=/hello) would go hello/helloworld-v1 50% · hello/helloworld-v2 50% → hello/helloworld-v1 100%",
        ],
    );
}

#[test]
fn case_2_a_shared_base_edit_that_upgrades_an_unchanged_environment_is_refused() {
    let s = fixture("invariant-gateway-upgrade-shared-base");
    // Production's overlay rendered at prepare and committed: its record is on disk.
    s.run(&["render", FAILING_PLAN, "--env", "production"]).ok();
    assert!(
        s.read("canary/production/canaryplan-record.yaml")
            .contains("entry:")
    );
    // Staging's `done` hint: the new revision into the (shared) base.
    let gateway = s.read("ingress/gateway.yaml");
    s.write(
        "ingress/gateway.yaml",
        &gateway.replace("istio.io/rev: 1-22-1", "istio.io/rev: 1-23-1"),
    );
    // Refused for production by render, validate and diff: by the kind's own check (the
    // gateway would already run the target revision) before the invariants get to say that an
    // unchanged environment would change.
    for cmd in ["render", "validate", "diff"] {
        let r = s.run(&[cmd, FAILING_PLAN, "--env", "production"]);
        assert_eq!(r.code, 2, "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains("1-23-1"), "{cmd}: {}", r.stderr);
    }
    // The invariant itself, on the same models: production's record against the edited base.
    let record = invariants::record::parse(
        Path::new("canaryplan-record.yaml"),
        &s.read("canary/production/canaryplan-record.yaml"),
    )
    .unwrap();
    let mut edited = record.model.clone();
    for w in edited.workloads.values_mut() {
        if w.revision.as_deref() == Some("1-22-1") {
            w.revision = Some("1-23-1".to_string());
        }
    }
    let v = invariants::check(
        "production",
        &edited,
        Some(&record),
        &edited,
        &Declared::Unchanged,
    );
    assert!(
        v.iter()
            .any(|v| v.rule == "unchanged-environment-does-not-change"
                && v.message.contains("would change from 1-22-1 to 1-23-1")),
        "{}",
        show(&v)
    );
    // The stream Argo CD syncs is checked against the same record.
    let r = s.run(&["render", FAILING_PLAN, "--env", "production", "--stdout"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Staging, at cleanup, is where that edit belongs: it passes there.
    s.run(&["render", FAILING_PLAN, "--env", "staging", "--from-scratch"])
        .ok();
}

#[test]
fn an_ordinary_base_edit_passes_for_an_unchanged_environment() {
    let s = fixture("invariant-gateway-upgrade-shared-base");
    s.run(&["render", FAILING_PLAN, "--env", "production"]).ok();
    let record = s.read("canary/production/canaryplan-record.yaml");
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
    s.run(&["render", FAILING_PLAN, "--env", "production"]).ok();
    // Nothing moved: the record is the same.
    assert_eq!(s.read("canary/production/canaryplan-record.yaml"), record);
}

#[test]
fn case_3_a_second_deployment_behind_a_lane_service_losing_its_traffic_is_refused() {
    assert_refused(
        "invariant-lanes-second-deployment",
        "failing-plan.yaml:",
        "no-endpoint-lost",
        &[
            "production: Service mock/mocka selects the pods of mock/mocka-v2 in the base, and in this render neither it (it selects mock/mocka-v1, mock/mocka-v1-canary) nor any route does",
        ],
    );
    let e = refusal(&plan_of("invariant-lanes-second-deployment"), "production");
    assert!(
        e.contains("mesh callers of mocka:8000 (http, every request except header x-lane=canary)"),
        "{e}"
    );
    assert!(e.contains("[step-moves-what-it-declares]"), "{e}");
}

#[test]
fn case_4_a_lane_abort_takes_every_request_off_the_copies() {
    let s = fixture("invariant-lanes-abort");
    let plan = s.path().join(FAILING_PLAN);
    // Before the abort: the lane has a weight, and its header's requests reach its copy.
    let before = render(&plan, "production");
    assert!(before.new.classes.iter().any(
        |c| c.condition == "header x-lane=canary" && c.to.contains_key("mock/mocka-v1-canary")
    ));
    s.run(&["abort", FAILING_PLAN, "--env", "production"]).ok();
    assert!(s.read(FAILING_PLAN).contains("weight: 0"));
    // The abort renders (the kind declares it an abort, and every rule held), and no class,
    // tagged or not, reaches the copy any more.
    let r = render(&plan, "production");
    assert!(
        matches!(r.declared, Declared::Abort { .. }),
        "{:?}",
        r.declared
    );
    let step = Declared::Abort {
        canary: vec!["mock/mocka-v1-canary".to_string()],
    };
    let v = invariants::check("production", &r.base, None, &r.new, &step);
    assert!(v.is_empty(), "{}", show(&v));
    assert!(
        r.new
            .classes
            .iter()
            .all(|c| !c.to.contains_key("mock/mocka-v1-canary")),
        "{:#?}",
        r.new.classes
    );
    // The untagged ingress requests went back to the baseline.
    assert!(
        r.new
            .classes
            .iter()
            .any(|c| c.entry == "istio-system/ingressgateway"
                && c.condition == "every request"
                && c.to == shares(&[("mock/mocka-v1", 100.0)]))
    );
}

#[test]
fn case_5_one_service_port_split_two_ways_is_refused() {
    // The gateway's route matches 31400 and delivers to tcp-echo:9000.
    assert_refused(
        "invariant-tcp-two-ways",
        "failing-plan.yaml:",
        "step-moves-what-it-declares",
        &[
            "production: the step sends 10% canary, 90% stable of Service tcp-echo's requests, but gateway echo/tcp-echo-gateway, *:9000 (tcp, port 31400) would go echo/tcp-echo-v1 100%",
        ],
    );
}

#[test]
fn a_canary_abort_takes_the_canary_out_of_every_route_test_routes_included() {
    // The runbook: no test routes; after `abort`, no class reaches the canary.
    let s = fixture("runbook");
    s.run(&["abort", "--env", "production"]).ok();
    let r = render(&s.plan(), "production");
    let (base, new) = (r.base, r.new);
    let abort = Declared::Abort {
        canary: vec!["my-service/web".to_string()],
    };
    let v = invariants::check("production", &base, None, &new, &abort);
    // Only callers without mesh routing (no sidecar) still reach the canary's pods, by pod
    // count, while the Service selects both versions: the routed classes all left it.
    assert!(
        v.iter().all(|v| v
            .class
            .as_deref()
            .is_some_and(|c| c.starts_with("callers without routing"))),
        "{}",
        show(&v)
    );
    // test-routes: `abort` sets weight 0, and the test routes by header and cookie go too:
    // at shift, weight 0 sends no request to the canary (they come back with a weight).
    let s = fixture("test-routes");
    s.run(&["abort", "--env", "production"]).ok();
    let r = render(&s.plan(), "production");
    assert!(
        matches!(r.declared, Declared::Abort { .. }),
        "{:?}",
        r.declared
    );
    let abort = Declared::Abort {
        canary: vec!["my-service-tests/web".to_string()],
    };
    let v = invariants::check("production", &r.base, None, &r.new, &abort);
    assert!(v.is_empty(), "{}", show(&v));
    s.run(&["promote", "--env", "production", "--to", "5", "--force"])
        .ok();
    let r = render(&s.plan(), "production");
    assert!(
        r.new
            .classes
            .iter()
            .any(|c| c.condition.contains("header x-canary=true")
                && c.to == shares(&[("my-service-tests/web", 100.0)])),
        "{:#?}",
        r.new.classes
    );
}
