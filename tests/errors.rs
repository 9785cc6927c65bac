//! Bad input: every case exits 2, says where (`file:line:column`), what and how to fix it,
//! prints nothing on stdout, and leaves what is on disk exactly as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// Renders the runbook once, applies `edit`, renders again and expects a refusal whose
/// message contains every one of `expected`; the overlays must be untouched.
fn refused(edit: impl FnOnce(&Scratch), expected: &[&str]) -> String {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    let before = s.tree("gap");
    edit(&s);
    for args in [
        vec!["render"],
        vec!["validate"],
        vec!["render", "--stdout", "--env", "production"],
    ] {
        let r = s.run(&args);
        r.fails();
        for e in expected {
            assert!(
                r.stderr.contains(e),
                "{args:?}: expected {e:?} in:\n{}",
                r.stderr
            );
        }
        assert_eq!(
            s.tree("gap"),
            before,
            "a refused render must leave the overlays as they were"
        );
    }
    s.run(&["render", "--from-scratch"]).stderr
}

fn replace(s: &Scratch, from: &str, to: &str) {
    s.edit_plan(|t| {
        assert!(t.contains(from), "{from:?} not in plan");
        t.replacen(from, to, 1)
    });
}

#[test]
fn typo_in_a_field_name() {
    let err = refused(
        |s| replace(s, "      weight: 5\n", "      wieght: 5\n"),
        &[
            "canaryplan.yaml:36:7: error: unknown field `wieght`",
            "hint:",
        ],
    );
    assert!(
        err.contains("36 |       wieght: 5"),
        "shows the line:\n{err}"
    );
}

#[test]
fn weight_that_is_not_a_number() {
    refused(
        |s| replace(s, "weight: 5\n", "weight: five\n"),
        &["canaryplan.yaml:36:15: error: weight is `five`, expected an integer from 0 to 100"],
    );
}

#[test]
fn weight_out_of_range() {
    refused(
        |s| replace(s, "weight: 5\n", "weight: 150\n"),
        &[
            "canaryplan.yaml:36:15:",
            "150, expected an integer from 0 to 100",
        ],
    );
}

#[test]
fn misspelt_stage_suggests_the_right_one() {
    refused(
        |s| {
            replace(
                s,
                "stage: shift\n      weight: 5",
                "stage: shfit\n      weight: 5",
            )
        },
        &[
            "canaryplan.yaml:35:14: error: unknown stage `shfit`",
            "did you mean `shift`?",
        ],
    );
}

#[test]
fn broken_base_file() {
    refused(
        |s| {
            s.write(
                "base/service.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: my-service-web\n",
            )
        },
        &["base/service.yaml:3:"],
    );
}

#[test]
fn base_object_without_a_name() {
    refused(
        |s| {
            s.write(
                "base/service.yaml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  labels: {a: b}\n",
            )
        },
        &["base/service.yaml:3:1: error: this manifest has no metadata.name"],
    );
}

#[test]
fn missing_workload_is_located_at_the_plan_field() {
    refused(
        |s| replace(s, "workload: web\n", "workload: wep\n"),
        &[
            "canaryplan.yaml:9:13: error: Deployment `wep` is not in the base",
            "did you mean `web`?",
        ],
    );
}

#[test]
fn missing_base_directory() {
    refused(
        |s| replace(s, "base: overlays/production", "base: overlays/prod"),
        &["canaryplan.yaml:33:13: error: the base `overlays/prod` does not exist"],
    );
}

#[test]
fn selectors_that_are_not_disjoint() {
    // Without the override, the original's selector `app: web` also selects the copy's pods.
    refused(
        |s| replace(s, "    labels: {app: web-v1}\n", ""),
        &[
            "the selector of Deployment web also matches the pods of Deployment web-v1",
            "stable.labels",
        ],
    );
}

#[test]
fn service_selector_that_misses_a_version() {
    refused(
        |s| replace(s, "    remove: [app]\n", "    remove: []\n"),
        &[
            "canaryplan.yaml:22:10:",
            "does not select the stable version's pods",
        ],
    );
}

#[test]
fn removing_a_selector_key_the_service_lacks() {
    refused(
        |s| replace(s, "remove: [app]", "remove: [tier]"),
        &[
            "canaryplan.yaml:21:14: error: Service my-service-web has no selector key `tier` to remove",
        ],
    );
}

#[test]
fn cleanup_before_weight_100_in_the_plan() {
    refused(
        |s| {
            replace(
                s,
                "stage: shift\n      weight: 5",
                "stage: cleanup-1\n      weight: 5",
            )
        },
        &["canaryplan.yaml:36:15: error: stage cleanup-1 needs weight 100, but the weight is 5"],
    );
}

#[test]
fn cleanup_before_weight_100_on_disk() {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    let before = s.tree("gap");
    replace(&s, "stage: shift\n      weight: 5", "stage: cleanup-1");
    let r = s.run(&["render", "--from-scratch"]);
    r.fails();
    assert!(r.stderr.contains("canaryplan.yaml:35:14: error: cleanup-1 removes the stable copy, but the overlay on disk still sends it traffic (weight 5)"), "{}", r.stderr);
    assert_eq!(s.tree("gap"), before);
}

#[test]
fn a_stage_may_advance_one_step_and_go_back_any_number() {
    let s = Scratch::fixture("runbook");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    let before = s.tree("gap");
    s.set_stage("shift");
    let r = s.run(&["render", "--from-scratch"]);
    r.fails();
    assert!(
        r.stderr
            .contains("is at stage prepare on disk; shift is more than one step ahead"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("set `stage: route` first"),
        "{}",
        r.stderr
    );
    assert_eq!(s.tree("gap"), before);
    for stage in ["route", "shift"] {
        s.set_stage(stage);
        s.run(&["render", "--from-scratch"]).ok();
    }
    // Rollback: back to prepare in one go.
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    assert_eq!(s.tree("gap"), before);
}

#[test]
fn unknown_environment() {
    let s = Scratch::fixture("runbook");
    let r = s.run(&["render", "--env", "stagin"]);
    r.fails();
    assert!(
        r.stderr.contains("the plan has no environment `stagin`")
            && r.stderr.contains("did you mean `staging`?"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_overlay_directory_with_foreign_files_is_not_overwritten() {
    let s = Scratch::fixture("runbook");
    s.write("gap/staging/notes.txt", "mine\n");
    let r = s.run(&["render", "--from-scratch"]);
    r.fails();
    assert!(
        r.stderr.contains("holds files canaryplan did not write"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("gap/staging/notes.txt"), "mine\n");
}

#[test]
fn foreign_files_beside_a_rendered_overlay_are_not_overwritten() {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    s.write("gap/staging/README.md", "notes\n");
    s.write("gap/production/extra/patch.yaml", "[]\n");
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    let before = s.tree("gap");
    let r = s.run(&["render", "--from-scratch"]);
    r.fails();
    assert!(
        r.stderr
            .contains("gap/staging: error: this directory holds files canaryplan did not write"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("gap/production: error: this directory holds files canaryplan did not write"),
        "{}",
        r.stderr
    );
    assert_eq!(s.tree("gap"), before);
}

#[test]
fn coexistence_reaches_done_only_with_the_canary_implementation_in_base() {
    let s = Scratch::fixture("coexistence");
    s.set_stage("done");
    let r = s.run(&["render", "--from-scratch"]);
    r.fails();
    assert!(r.stderr.contains("at done Deployment search would go back to the stable implementation: its base lacks SEARCH_ENGINE=vector, VECTOR_INDEX=2026-11"), "{}", r.stderr);
    let base = s.read("base/search.yaml").replace("        - {name: SEARCH_ENGINE, value: classic}\n", "        - {name: SEARCH_ENGINE, value: vector}\n        - {name: VECTOR_INDEX, value: \"2026-11\"}\n");
    s.write("base/search.yaml", &base);
    s.run(&["render", "--from-scratch"]).ok();
}

#[test]
fn missing_plan_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), &["render", "--from-scratch"], &[]);
    r.fails();
    assert!(
        r.stderr
            .contains("canaryplan.yaml: error: no plan file here"),
        "{}",
        r.stderr
    );
}
