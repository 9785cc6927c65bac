//! Operating a release: status, promote / abort / advance (editing the plan in place), the
//! plan's JSON Schema, init, completions and the man page — as a user's session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// Lines that differ between two texts, as (old, new) pairs; the texts must have the same
/// number of lines unless `inserted` lines were added.
fn changed_lines(old: &str, new: &str) -> Vec<(String, String)> {
    let diff = similar::TextDiff::from_lines(old, new);
    diff.iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| (format!("{:?}", c.tag()), c.value().to_string()))
        .collect()
}

#[test]
fn status_shows_stage_traffic_overlay_and_next_step() {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch", "--env", "staging"])
        .ok();
    let r = s.run(&["status"]);
    r.ok();
    insta::assert_snapshot!("status_text", r.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&s.run(&["status", "--format", "json"]).ok().stdout).unwrap();
    let envs = &json["plans"][0]["environments"];
    assert_eq!(envs[0]["environment"], "staging");
    assert_eq!(envs[0]["overlay"]["state"], "current");
    assert_eq!(envs[1]["overlay"]["state"], "missing");
    assert_eq!(
        envs[1]["traffic"][0],
        serde_json::json!({"version": "v1", "workload": "web-v1", "role": "stable", "percent": 95})
    );
    assert_eq!(envs[1]["next"], "promote to 25: v1 75%, v2 25%");
    // What the next stage really changes, from the two stages' rendered output.
    assert_eq!(
        envs[0]["next"],
        "cleanup-1: changes the selector of Service my-service-web; changes the routes of VirtualService relational-data-access--web; removes Deployment web-v1; removes AuthorizationPolicy web-allow-frontend-v1; removes AuthorizationPolicy web-v1-allow"
    );
    // The route is bound to a gateway only: mesh callers bypass it, and status says so.
    assert!(
        envs[0]["notes"][0]
            .as_str()
            .unwrap()
            .contains("mesh callers bypass the split")
    );
}

#[test]
fn status_tells_what_the_base_routes_and_when_the_plan_can_go() {
    // At prepare nothing is routed by subset yet: the base's route reaches the original
    // Deployment, whose pods are labelled v2 but still run the stable image.
    let s = Scratch::fixture("runbook");
    s.set_stage("prepare");
    let json: serde_json::Value =
        serde_json::from_str(&s.run(&["status", "--format", "json"]).ok().stdout).unwrap();
    let env = &json["plans"][0]["environments"][0];
    assert_eq!(
        env["traffic"],
        serde_json::json!([{"version": "v2", "workload": "web", "role": "canary pods, still on the stable image", "percent": 100}])
    );
    assert!(
        env["next"].as_str().unwrap().starts_with("route: changes the selector of Service my-service-web; adds DestinationRule my-service-web;"),
        "{}",
        env["next"]
    );
    // The plan can be deleted only once every environment is done.
    s.set_stage("done");
    s.edit_plan(|t| t.replacen("stage: done", "stage: cleanup-3", 1));
    let text = s.run(&["status"]).ok().stdout.clone();
    assert!(
        text.contains("next: nothing: this environment is done"),
        "{text}"
    );
    assert!(!text.contains("can be deleted"), "{text}");
    s.set_stage("done");
    let text = s.run(&["status"]).ok().stdout.clone();
    assert!(
        text.contains(
            "every environment is done; the plan (and its output directory) can be deleted"
        ),
        "{text}"
    );
}

#[test]
fn after_an_abort_status_says_how_to_end_a_failed_release() {
    let s = Scratch::fixture("runbook");
    s.run(&["abort", "--env", "production"]).ok();
    let text = s
        .run(&["status", "--env", "production"])
        .ok()
        .stdout
        .clone();
    assert!(
        text.contains("To end a failed release instead: put stable.image back into Deployment web in the base `overlays/production`"),
        "{text}"
    );
}

#[test]
fn promote_changes_only_the_weight_and_suggests_a_commit() {
    let s = Scratch::fixture("runbook");
    // Comments, quoting, flow maps and blank lines around the value must survive.
    s.edit_plan(|t| {
        t.replace(
            "      weight: 5\n",
            "      weight: 5   # five percent, on a Tuesday\n\n",
        )
    });
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", "production"]);
    r.ok();
    // The commit message's body is the traffic the step moves, computed from the two renders.
    assert_eq!(
        r.stdout,
        "canaryplan.yaml: production: weight 5 → 25\nsuggested commit message:\n  canary(my-service): production to 25% on v2\n\n  production: gateway istio-system/public, my-service.example.net:80 (http, uri prefix /): my-service/web 5% → 25%, my-service/web-v1 95% → 75%\n"
    );
    // The base still runs the stable image: the promotion only moves traffic between copies.
    assert!(
        r.stderr
            .contains("warning: Deployment web still runs stable.image"),
        "{}",
        r.stderr
    );
    let after = s.read("canaryplan.yaml");
    assert_eq!(
        changed_lines(&before, &after),
        vec![
            (
                "Delete".into(),
                "      weight: 5   # five percent, on a Tuesday\n".into()
            ),
            (
                "Insert".into(),
                "      weight: 25   # five percent, on a Tuesday\n".into()
            )
        ]
    );
    // --to, and --render re-renders that environment only.
    s.run(&["render", "--from-scratch", "--env", "production"])
        .ok();
    let r = s.run(&["promote", "--env", "production", "--to", "50", "--render"]);
    r.ok();
    assert!(
        r.stdout
            .contains("production: weight 25 → 50\ngap/production: rendered\n"),
        "{}",
        r.stdout
    );
    assert!(!s.path().join("gap/staging").exists());
    assert!(
        s.read("gap/production/patch-virtualservice-relational-data-access--web.yaml")
            .contains("weight: 50\n")
    );
    s.run(&["promote", "--env", "production"]).ok();
    // At the last step, promote says what comes next and changes nothing.
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", "production"]);
    r.fails();
    assert!(
        r.stderr
            .contains("environment `production` is at weight 100, the last step")
            && r.stderr.contains("advance to cleanup-1"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("canaryplan.yaml"), before);
}

#[test]
fn abort_puts_all_traffic_back_on_the_stable_copy() {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["abort", "--env", "production", "--render"]);
    r.ok();
    assert!(
        r.stdout.starts_with(
            "canaryplan.yaml: production: weight 5 → weight 0 (all traffic on the stable copy)\n"
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("suggested commit message:\n  canary(my-service): abort in production, all traffic on v1\n\n  production: gateway istio-system/public, my-service.example.net:80 (http, uri prefix /): my-service/web 5% → 0%, my-service/web-v1 95% → 100%\n"), "{}", r.stdout);
    let after = s.read("canaryplan.yaml");
    // The weight line, and the mark that keeps test routes and mirrors off the canary.
    assert_eq!(changed_lines(&before, &after).len(), 3);
    assert!(after.contains("      stage: shift\n      aborted: true\n      weight: 0\n"));
    assert!(after.contains("      weight: 0\n"));
    let vs = s.read("gap/production/patch-virtualservice-relational-data-access--web.yaml");
    assert!(vs.contains("subset: v1\n    weight: 100\n"), "{vs}");
    // From route, abort moves to shift at weight 0 (a weight line is added).
    s.edit_plan(|t| {
        t.replace(
            "      stage: shift\n      aborted: true\n      weight: 0\n",
            "      stage: route\n",
        )
    });
    s.run(&["abort", "--env", "production"]).ok();
    assert!(
        s.read("canaryplan.yaml")
            .contains("      stage: shift\n      aborted: true\n      weight: 0\n")
    );
    // Promote starts again: the mark goes with the new weight.
    s.run(&["promote", "--env", "production", "--force"]).ok();
    let again = s.read("canaryplan.yaml");
    assert!(!again.contains("aborted"), "{again}");
    assert!(
        again.contains("      stage: shift\n      weight: 1\n"),
        "{again}"
    );
    // Not while the copy does not serve.
    s.set_stage("cleanup-2");
    let r = s.run(&["abort", "--env", "production"]);
    r.fails();
    assert!(
        r.stderr.contains("abort needs the stable copy serving"),
        "{}",
        r.stderr
    );
}

#[test]
fn advance_walks_the_stages_one_commit_at_a_time() {
    let s = Scratch::fixture("no-virtualservice");
    // A flow-style environment is edited in place too.
    s.edit_plan(|t| {
        t.replace(
            "    dev:\n      stage: route\n",
            "    dev: {stage: prepare}   # the dev cluster\n",
        )
    });
    s.run(&["render"]).ok();
    let mut seen = Vec::new();
    for expected in ["route", "shift", "cleanup-1"] {
        let before = s.read("canaryplan.yaml");
        let r = s.run(&["advance", "--env", "dev", "--render"]);
        if expected == "cleanup-1" {
            // shift at weight 0: cleanup-1 is refused and nothing changes.
            r.fails();
            assert!(
                r.stderr
                    .contains("stage cleanup-1 needs weight 100, but the weight is 0"),
                "{}",
                r.stderr
            );
            assert_eq!(s.read("canaryplan.yaml"), before);
            break;
        }
        r.ok();
        seen.push(
            s.read("canaryplan.yaml")
                .lines()
                .find(|l| l.contains("dev:"))
                .unwrap()
                .to_string(),
        );
        assert!(
            r.stdout.contains("dev: stage ") && r.stdout.contains(&format!("→ {expected} (")),
            "{}",
            r.stdout
        );
    }
    assert_eq!(
        seen,
        vec![
            "    dev: {stage: route}   # the dev cluster",
            "    dev: {stage: shift, weight: 0}   # the dev cluster"
        ]
    );
    s.run(&["promote", "--env", "dev", "--to", "100", "--render"])
        .ok();
    for stage in ["cleanup-1", "cleanup-2", "cleanup-3", "done"] {
        let r = s.run(&["advance", "--env", "dev", "--render"]);
        r.ok();
        assert!(r.stdout.contains(&format!("→ {stage} (")), "{}", r.stdout);
        assert!(
            s.read("rendered/dev/kustomization.yaml")
                .contains(&format!("canaryplan.io/stage: {stage}\n"))
        );
    }
    let r = s.run(&["advance", "--env", "dev"]);
    r.fails();
    assert!(
        r.stderr.contains("environment `dev` is done"),
        "{}",
        r.stderr
    );
}

#[test]
fn advance_in_block_style_adds_the_weight_line() {
    let s = Scratch::fixture("runbook");
    s.set_stage("route");
    s.run(&["render", "--from-scratch"]).ok();
    let before = s.read("canaryplan.yaml");
    s.run(&["advance", "--env", "staging"]).ok();
    let changes = changed_lines(&before, &s.read("canaryplan.yaml"));
    assert_eq!(
        changes,
        vec![
            ("Delete".into(), "      stage: route\n".into()),
            ("Insert".into(), "      stage: shift\n".into()),
            ("Insert".into(), "      weight: 0\n".into())
        ]
    );
}

#[test]
fn edits_are_refused_like_validate_would() {
    let s = Scratch::fixture("runbook");
    s.set_stage("prepare");
    s.run(&["render", "--from-scratch"]).ok();
    // On disk: prepare. Two advances without rendering in between: the second is refused.
    s.run(&["advance", "--env", "staging"]).ok();
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["advance", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr
            .contains("is at stage prepare on disk; shift is more than one step ahead"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("canaryplan.yaml"), before);
    let r = s.run(&["promote", "--env", "staging"]);
    r.fails();
    assert!(
        r.stderr.contains("promote moves the weight at stage shift"),
        "{}",
        r.stderr
    );
    let r = s.run(&["advance", "--env", "qa"]);
    r.fails();
    assert!(
        r.stderr.contains("the plan has no environment `qa`"),
        "{}",
        r.stderr
    );
}

#[test]
fn schema_is_derived_from_the_plan_types_and_committed() {
    let s = Scratch::fixture("runbook");
    let printed = s.run(&["schema"]).ok().stdout.clone();
    let committed = std::fs::read_to_string(root().join("schema/canaryplan.schema.json")).unwrap();
    assert_eq!(
        printed, committed,
        "the plan format changed: run `cargo run -- schema > schema/canaryplan.schema.json` and review the diff"
    );
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for f in FIXTURES {
        let plan =
            parse_stream(&std::fs::read_to_string(fixture_dir(f).join("canaryplan.yaml")).unwrap())
                .remove(0);
        let errors: Vec<String> = validator
            .iter_errors(&plan)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
    let mut bad = parse_stream(
        &std::fs::read_to_string(fixture_dir("runbook").join("canaryplan.yaml")).unwrap(),
    )
    .remove(0);
    bad["spec"]["environments"]["staging"]["wieght"] = serde_json::json!(5);
    assert!(
        !validator.is_valid(&bad),
        "unknown fields are errors in editors too"
    );
    bad["spec"]["environments"]["staging"] = serde_json::json!({"stage": "shfit"});
    assert!(!validator.is_valid(&bad));
    bad["spec"]["environments"]["staging"] = serde_json::json!({"stage": "shift", "weight": 101});
    assert!(!validator.is_valid(&bad));
}

#[test]
fn init_writes_a_plan_that_validates() {
    for fixture in ["runbook", "multi-route", "no-virtualservice"] {
        let s = Scratch::fixture(fixture);
        std::fs::remove_file(s.plan()).unwrap();
        let r = s.run(&["init"]);
        r.ok();
        assert!(r.stderr.contains("wrote canaryplan.yaml"), "{}", r.stderr);
        let plan = s.read("canaryplan.yaml");
        assert!(
            plan.contains("# FILL IN: the image stable runs today"),
            "{plan}"
        );
        let v = s.run(&["validate"]);
        assert_eq!(
            v.code, 0,
            "{fixture}: the starter plan must validate:\n{plan}\n{}",
            v.stderr
        );
        if fixture == "runbook" {
            insta::assert_snapshot!("init_runbook", plan);
        }
        // It never overwrites.
        let again = s.run(&["init"]);
        again.fails();
        assert!(
            again
                .stderr
                .contains("canaryplan init does not overwrite it"),
            "{}",
            again.stderr
        );
        assert_eq!(s.read("canaryplan.yaml"), plan);
    }
    // Istio's layout: one Service, a Deployment per version. init says so, picks with
    // --workload, and writes a versioned plan with an unused canary version.
    let s = Scratch::fixture("bookinfo-reviews");
    std::fs::remove_file(s.plan()).unwrap();
    let r = s.run(&["init"]);
    r.fails();
    assert!(
        r.stderr.contains(
            "Service reviews selects the pods of 3 Deployments: reviews-v1, reviews-v2, reviews-v3"
        ),
        "{}",
        r.stderr
    );
    s.run(&["init", "--service", "reviews", "--workload", "reviews-v1"])
        .ok();
    let plan = s.read("canaryplan.yaml");
    assert!(
        plan.contains("method: versioned\n") && plan.contains("version: v4"),
        "{plan}"
    );
    s.run(&["validate"]).ok();
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("base")).unwrap();
    std::fs::write(
        empty.path().join("base/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let r = run_in(empty.path(), &["init"], &[]);
    r.fails();
    assert!(
        r.stderr
            .contains("found no Service that selects a Deployment's pods"),
        "{}",
        r.stderr
    );
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let s = Scratch::fixture("runbook");
    let bash = s.run(&["completions", "bash"]).ok().stdout.clone();
    assert!(
        bash.contains("canaryplan") && bash.contains("promote") && bash.contains("--env"),
        "{bash}"
    );
    let zsh = s.run(&["completions", "zsh"]).ok().stdout.clone();
    assert!(zsh.starts_with("#compdef canaryplan"), "{zsh}");
    let man = s.run(&["man"]).ok().stdout.clone();
    assert!(
        man.contains(".TH canaryplan") && man.contains("advance"),
        "{man}"
    );
}
