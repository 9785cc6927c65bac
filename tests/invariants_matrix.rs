//! Each invariant, for each kind: a fixture of the kind rendered at the stage the invariant is
//! about (its step declared by the kind itself, as `render` declares it), then the render's
//! traffic model changed the way a faulty render or base edit would change it. The engine must
//! refuse the change under that rule, naming the environment; the unchanged render passes. The
//! real layouts that broke each rule are in tests/invariants.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use canaryplan::invariants::{self, Declared, Model, Record, Violation};
use canaryplan::{Mode, Templates};
use common::Scratch;

/// One fixture per kind, the environment looked at, and its stages for each invariant.
struct Kind {
    fixture: &'static str,
    env: &'static str,
    prepare: &'static str,
    step: &'static str,
    done: &'static str,
}

const KINDS: [Kind; 4] = [
    Kind {
        fixture: "runbook",
        env: "production",
        prepare: "prepare",
        step: "shift",
        done: "cleanup-3",
    },
    Kind {
        fixture: "lanes",
        env: "staging",
        prepare: "prepare",
        step: "shift",
        done: "cleanup-3",
    },
    Kind {
        fixture: "gateway-upgrade",
        env: "staging",
        prepare: "prepare",
        step: "canary",
        done: "cleanup",
    },
    Kind {
        fixture: "revision-upgrade",
        env: "production",
        prepare: "prepare",
        step: "wave-1",
        done: "promote-tags",
    },
];

struct Rendered {
    base: Model,
    new: Model,
    declared: Declared,
}

fn render(k: &Kind, stage: &str) -> Rendered {
    let s = Scratch::fixture(k.fixture);
    s.set_stage(stage);
    let plan = canaryplan::load_any(&s.plan()).unwrap();
    let r = plan
        .render(&[k.env.to_string()], &Templates::builtin(), Mode::Stream)
        .unwrap_or_else(|e| panic!("{} at {stage}: {e}", k.fixture))
        .into_iter()
        .next()
        .unwrap();
    Rendered {
        base: r.base_model.unwrap(),
        new: r.model.unwrap(),
        declared: r.declared.unwrap(),
    }
}

fn rules(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.rule).collect()
}

/// The first routed class that reaches a workload (a pod-share class where the step is a pod
/// share, as a gateway canary's).
fn routed(m: &mut Model) -> &mut invariants::Class {
    let i = m
        .classes
        .iter()
        .position(|c| !c.to.is_empty() && !c.by_pods)
        .or_else(|| m.classes.iter().position(|c| c.to.len() > 1))
        .expect("a class the step splits");
    &mut m.classes[i]
}

/// Sends every request of one class to a workload that did not get them; in a model without
/// request classes (a control-plane upgrade of namespaces without Services), moves a workload
/// to a revision nothing declared instead.
fn move_a_class(m: &mut Model) {
    let target = m.workloads.keys().next().cloned().unwrap();
    let target = format!("{target}-elsewhere");
    match m.classes.iter_mut().find(|c| !c.to.is_empty()) {
        Some(c) => c.to = [(target, 100.0)].into(),
        None => {
            let w = m
                .workloads
                .values_mut()
                .find(|w| w.revision.is_some())
                .expect("a class with a destination, or an injected workload");
            w.revision = Some("9-9-9".into());
        }
    }
}

fn check(
    k: &Kind,
    r: &Rendered,
    disk: Option<&Record>,
    new: &Model,
    step: &Declared,
) -> Vec<Violation> {
    invariants::check(k.env, &r.base, disk, new, step)
}

#[test]
fn prepare_changes_no_traffic_for_every_kind() {
    for k in &KINDS {
        let r = render(k, k.prepare);
        assert_eq!(r.declared, Declared::Prepare, "{}", k.fixture);
        assert!(
            check(k, &r, None, &r.new, &r.declared).is_empty(),
            "{}",
            k.fixture
        );
        let mut moved = r.new.clone();
        move_a_class(&mut moved);
        let v = check(k, &r, None, &moved, &r.declared);
        assert!(
            rules(&v).contains(&"prepare-changes-no-traffic"),
            "{}: {v:#?}",
            k.fixture
        );
        assert!(v.iter().all(|v| v.environment == k.env), "{}", k.fixture);
        // A revision that changes at prepare is refused too.
        let mut revised = r.new.clone();
        if let Some(w) = revised
            .workloads
            .values_mut()
            .find(|w| w.revision.is_some())
        {
            w.revision = Some("9-9-9".into());
            let v = check(k, &r, None, &revised, &r.declared);
            assert!(
                rules(&v).contains(&"prepare-changes-no-traffic"),
                "{}: {v:#?}",
                k.fixture
            );
        }
    }
}

#[test]
fn an_unchanged_environment_does_not_change_for_every_kind() {
    for k in &KINDS {
        let r = render(k, k.step);
        let record = Record::new(serde_json::json!({"stage": k.step}), r.new.clone());
        assert!(
            check(k, &r, Some(&record), &r.new, &Declared::Unchanged).is_empty(),
            "{}",
            k.fixture
        );
        // A base edit: a workload that serves requests runs another image.
        let mut edited = r.new.clone();
        let served: Vec<String> = edited
            .classes
            .iter()
            .flat_map(|c| c.to.keys().cloned())
            .collect();
        // (Without request classes, any workload: a revision upgrade restarts them all.)
        let w = edited
            .workloads
            .iter_mut()
            .find(|(n, _)| served.is_empty() || served.contains(n))
            .map(|(_, w)| w)
            .expect("a workload that serves requests");
        for image in w.images.values_mut() {
            image.push_str("-edited");
        }
        let v = check(k, &r, Some(&record), &edited, &Declared::Unchanged);
        assert!(
            rules(&v).contains(&"unchanged-environment-does-not-change"),
            "{}: {v:#?}",
            k.fixture
        );
        // And a class that moves.
        let mut moved = r.new.clone();
        move_a_class(&mut moved);
        let v = check(k, &r, Some(&record), &moved, &Declared::Unchanged);
        assert!(
            rules(&v).contains(&"unchanged-environment-does-not-change"),
            "{}: {v:#?}",
            k.fixture
        );
    }
}

#[test]
fn a_step_moves_exactly_what_it_declares_for_every_kind() {
    for k in &KINDS {
        let r = render(k, k.step);
        assert!(
            !matches!(
                r.declared,
                Declared::Prepare | Declared::Done | Declared::Unchanged
            ),
            "{}: {:?}",
            k.fixture,
            r.declared
        );
        assert!(
            check(k, &r, None, &r.new, &r.declared).is_empty(),
            "{}",
            k.fixture
        );
        let mut moved = r.new.clone();
        match &r.declared {
            // A wave moves its namespaces' workloads to its revision: another revision is
            // more (or other) than it declares.
            Declared::Waves(_) => {
                for w in moved
                    .workloads
                    .values_mut()
                    .filter(|w| w.revision.is_some())
                {
                    w.revision = Some("9-9-9".into());
                }
            }
            // A weight (or pod share) step: one routed class off its declared split.
            _ => {
                let c = routed(&mut moved);
                let first = c.to.keys().next().cloned().unwrap();
                c.to = [(first, 100.0)].into();
                if c.to
                    == r.new
                        .classes
                        .iter()
                        .find(|x| x.key() == c.key())
                        .unwrap()
                        .to
                {
                    move_a_class(&mut moved);
                }
            }
        }
        let v = check(k, &r, None, &moved, &r.declared);
        assert!(
            rules(&v).contains(&"step-moves-what-it-declares"),
            "{}: {v:#?}",
            k.fixture
        );
    }
}

#[test]
fn no_endpoint_is_lost_for_every_kind() {
    for k in &KINDS {
        let r = render(k, k.step);
        if r.base.services.is_empty() {
            // The revision-upgrade fixture's namespaces run workloads without Services: no
            // endpoint to lose, and nothing to check. Said, not skipped silently.
            assert_eq!(k.fixture, "revision-upgrade");
            continue;
        }
        let mut lost = r.new.clone();
        // A Service stops selecting a workload of the base that still runs, and no class
        // reaches it any more.
        let (svc, w) = r
            .base
            .services
            .iter()
            .find_map(|(s, ws)| {
                ws.iter()
                    .find(|w| lost.workloads.contains_key(*w))
                    .map(|w| (s.clone(), w.clone()))
            })
            .expect("a Service selecting a workload");
        if let Some(ws) = lost.services.get_mut(&svc) {
            ws.retain(|x| *x != w);
        }
        for c in &mut lost.classes {
            c.to.remove(&w);
            c.mirrors.remove(&w);
        }
        let v = check(k, &r, None, &lost, &r.declared);
        assert!(
            rules(&v).contains(&"no-endpoint-lost"),
            "{}: {v:#?}",
            k.fixture
        );
        assert!(
            v.iter().any(|v| v.workload.as_deref() == Some(w.as_str())),
            "{}",
            k.fixture
        );
    }
}

#[test]
fn the_last_stage_equals_the_base_for_every_kind() {
    for k in &KINDS {
        // `done` itself needs the base edit of each kind; its promise is checked on the stage
        // before, declared as done: the release's objects must be gone.
        let r = render(k, k.done);
        let mut left = r.base.clone();
        assert!(
            check(k, &r, None, &left, &Declared::Done).is_empty(),
            "{}",
            k.fixture
        );
        move_a_class(&mut left);
        let v = check(k, &r, None, &left, &Declared::Done);
        assert!(
            rules(&v).contains(&"done-equals-base"),
            "{}: {v:#?}",
            k.fixture
        );
        // A workload the base does not have, left behind.
        let mut extra = r.base.clone();
        let (name, facts) = extra
            .workloads
            .iter()
            .next()
            .map(|(n, f)| (n.clone(), f.clone()))
            .unwrap();
        extra.workloads.insert(format!("{name}-left-behind"), facts);
        let v = check(k, &r, None, &extra, &Declared::Done);
        assert!(
            rules(&v).contains(&"done-equals-base"),
            "{}: {v:#?}",
            k.fixture
        );
    }
}
