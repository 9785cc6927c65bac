//! Leaving Argo Rollouts, as a user does: an app's folder (fixtures/rollouts/*), `canaryplan
//! init --from-rollout base/rollout.yaml`, the printed objects committed in place of the
//! Rollout, `canaryplan validate`, and the plan exported back to a controller. For every app:
//! init refuses with exit 2 and what to do (nothing written), or writes a plan that validates;
//! the exports keep the Rollout's setWeight sequence; `--strict` passes exactly where nothing
//! was dropped. With `$CANARYPLAN_ARGO_ROLLOUTS_REPO` the same runs over every Rollout of the
//! Argo Rollouts repository's examples/ and test/e2e/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use common::rollouts::{self, Migrated, Outcome};
use common::*;
use serde_json::{Value, json};

/// What each app of fixtures/rollouts must give.
enum Want {
    /// Refused, the message containing this.
    Refused(&'static str),
    /// A plan; `strict`: nothing dropped, so `init --strict` passes; `export_strict`: the
    /// export expresses all of the plan, so `export argo-rollouts --strict` passes.
    Plan { strict: bool, export_strict: bool },
}

const CASES: [(&str, Want); 13] = [
    ("blue-green", Want::Refused("is blueGreen")),
    (
        "gateway-api",
        Want::Plan {
            strict: true,
            export_strict: true,
        },
    ),
    (
        "istio-host",
        Want::Plan {
            strict: true,
            export_strict: true,
        },
    ),
    // Its query measures the Service: both versions under subset routing (said by export).
    (
        "istio-subset",
        Want::Plan {
            strict: true,
            export_strict: false,
        },
    ),
    (
        "mirror-and-scale",
        Want::Plan {
            strict: false,
            export_strict: true,
        },
    ),
    (
        "missing-service",
        Want::Refused("Service orders, which is not in base"),
    ),
    ("nginx", Want::Refused("routes traffic with nginx")),
    ("ping-pong", Want::Refused("uses pingPong")),
    (
        "replicas-no-service",
        Want::Refused("holds no Service selecting its pods"),
    ),
    // No DestinationRule in base: canaryplan renders one, Argo Rollouts needs it (said).
    (
        "replicas-only",
        Want::Plan {
            strict: true,
            export_strict: false,
        },
    ),
    (
        "settings-dropped",
        Want::Plan {
            strict: false,
            export_strict: false,
        },
    ),
    (
        "weight-zero-first",
        Want::Plan {
            strict: true,
            export_strict: true,
        },
    ),
    (
        "workload-ref",
        Want::Plan {
            strict: true,
            export_strict: true,
        },
    ),
];

/// The exports keep the Rollout's weights.
fn weights_round_trip(m: &Migrated, what: &str) {
    let want = rollouts::set_weights(&m.rollout);
    for (target, run) in &m.exports {
        let objects = parse_stream(&run.stdout);
        let rollout = objects.iter().find(|o| o["kind"] == "Rollout").unwrap();
        let got = match *target {
            "kruise" => rollouts::kruise_weights(rollout),
            _ => rollouts::set_weights(rollout),
        };
        assert_eq!(got, want, "{what}: export {target}:\n{}", run.stdout);
    }
}

#[test]
fn every_app_of_the_corpus_migrates_or_is_refused_with_what_to_do() {
    let apps = rollouts::corpus();
    assert_eq!(
        apps.len(),
        CASES.len(),
        "list each app of fixtures/rollouts in CASES"
    );
    for app in apps {
        let name = app.file_name().unwrap().to_string_lossy().into_owned();
        let (_, want) = CASES.iter().find(|(n, _)| *n == name).unwrap();
        match (rollouts::migrate(&app), want) {
            (Outcome::Refused(r), Want::Refused(why)) => {
                assert!(r.stderr.contains(why), "{name}: {}", r.stderr);
            }
            (
                Outcome::Migrated(m),
                Want::Plan {
                    strict,
                    export_strict,
                },
            ) => {
                weights_round_trip(&m, &name);
                let s = tempfile::tempdir().unwrap();
                copy_tree(&app, s.path());
                let r = run_in(
                    s.path(),
                    &["init", "--from-rollout", "base/rollout.yaml", "--strict"],
                    &[],
                );
                if *strict {
                    assert!(m.dropped().is_empty(), "{name}: {:?}", m.dropped());
                    r.ok();
                } else {
                    r.fails();
                    assert!(!s.path().join("canaryplan.yaml").exists(), "{name}");
                    assert!(
                        r.stderr
                            .contains("--strict: the plan cannot carry over all of Rollout"),
                        "{name}: {}",
                        r.stderr
                    );
                }
                let mut args = vec!["export", "argo-rollouts", "--strict"];
                if m.host_routing {
                    args.extend(["--routing", "host"]);
                }
                let r = run_in(m.dir.path(), &args, &[]);
                let argo = &m.exports[0].1;
                if *export_strict {
                    assert!(
                        !argo.stderr.contains("not expressed"),
                        "{name}: {}",
                        argo.stderr
                    );
                    r.ok();
                } else {
                    assert!(
                        argo.stderr.contains("not expressed"),
                        "{name}: {}",
                        argo.stderr
                    );
                    r.fails();
                }
            }
            (Outcome::Refused(r), Want::Plan { .. }) => panic!("{name}: refused:\n{}", r.stderr),
            (Outcome::Migrated(m), Want::Refused(_)) => {
                panic!("{name}: migrated:\n{}", m.init.stderr)
            }
        }
    }
}

fn migrated(app: &str) -> Box<Migrated> {
    match rollouts::migrate(&root().join("fixtures/rollouts").join(app)) {
        Outcome::Migrated(m) => m,
        Outcome::Refused(r) => panic!("{app}: {}", r.stderr),
    }
}

fn plan_of(m: &Migrated) -> Value {
    let text = std::fs::read_to_string(m.dir.path().join("canaryplan.yaml")).unwrap();
    parse_stream(&text).remove(0)
}

#[test]
fn block_scalar_queries_and_namespace_arguments_come_out_as_plan_values() {
    let m = migrated("istio-subset");
    let plan = plan_of(&m);
    let analysis = &plan["spec"]["analysis"];
    let query = analysis["metrics"][0]["query"].as_str().unwrap();
    // The block scalar's lines, with Argo's arguments as the plan's variables.
    assert!(
        query.starts_with("sum(rate(istio_requests_total{destination_service_name=\"{{ service }}\",\n  destination_service_namespace=\"{{ namespace }}\","),
        "{query}"
    );
    assert_eq!(query.lines().count(), 5, "{query}");
    assert_eq!(analysis["startingStep"], 2);
    // Go durations kept as written, and accepted by validate (it ran in `migrate`).
    assert_eq!(
        plan["spec"]["steps"],
        json!([{"weight": 10, "pause": "manual"}, {"weight": 30, "pause": "2m30s"}, {"weight": 60, "pause": "1h2m3s"}, 100])
    );
    assert!(!m.init.stderr.contains("note:"), "{}", m.init.stderr);
    // Exported, the query takes Argo arguments again, declared by the template.
    let out = parse_stream(&m.exports[0].1.stdout);
    let template = out
        .iter()
        .find(|o| o["kind"] == "AnalysisTemplate")
        .unwrap();
    assert_eq!(
        template["spec"]["args"],
        json!([{"name": "service"}, {"name": "namespace"}])
    );
    assert_eq!(
        out[0]["spec"]["strategy"]["canary"]["analysis"]["startingStep"],
        2
    );
    assert_eq!(
        out[0]["spec"]["strategy"]["canary"]["steps"][3],
        json!({"pause": {"duration": "2m30s"}})
    );
    // The DestinationRule's subsets lose the labels Argo managed (the plan labels by version).
    assert!(m.init.stdout.contains("# In place of DestinationRule checkout: the labels of its subsets stable and canary removed"), "{}", m.init.stdout);
}

#[test]
fn a_mirror_with_a_held_pause_stays_a_staged_plan() {
    let m = migrated("mirror-and-scale");
    let plan = plan_of(&m);
    assert_eq!(plan["spec"]["mirror"], 40);
    assert_eq!(
        plan["spec"]["steps"],
        json!([{"weight": 0, "pause": "manual"}, 100])
    );
    assert_eq!(
        m.dropped(),
        [
            "note: not carried over: steps[0]: setCanaryScale {\"replicas\":1} (canaryplan runs the canary Deployment at its own replicas and the stable copy beside it; scale them in base)"
        ]
    );
    let out = parse_stream(&m.exports[0].1.stdout);
    assert_eq!(
        out[0]["spec"]["strategy"]["canary"]["steps"],
        json!([
            {"setMirrorRoute": {"name": "canary-mirror", "percentage": 40, "match": [{"path": {"prefix": "/"}}]}},
            {"setWeight": 0},
            {"pause": {}}
        ])
    );
}

#[test]
fn header_routes_and_host_routing_round_trip_with_their_names() {
    let m = migrated("istio-host");
    let plan = plan_of(&m);
    assert_eq!(plan["spec"]["service"], "search-stable");
    assert_eq!(
        plan["spec"]["match"],
        json!([{"headers": {"x-search-beta": {"exact": "on"}}}])
    );
    assert_eq!(
        plan["spec"]["steps"],
        json!([{"weight": 5, "pause": "30s"}, {"weight": 25, "pause": "90s"}, {"weight": 75, "pause": "manual"}, 100])
    );
    // The VirtualService printed without the canary Service; the note names both Services.
    let printed = parse_stream(&m.init.stdout);
    assert_eq!(
        printed[1]["spec"]["http"][0]["route"],
        json!([{"destination": {"host": "search-stable", "port": {"number": 8080}}}])
    );
    assert!(m.init.stderr.contains("the plan splits Service search-stable by subsets; Service search-canary is routed to no more"), "{}", m.init.stderr);
    // Exported by host: the same two Services, not `search-stable-stable`; both are in base.
    let out = parse_stream(&m.exports[0].1.stdout);
    let canary = &out[0]["spec"]["strategy"]["canary"];
    assert_eq!(canary["stableService"], "search-stable");
    assert_eq!(canary["canaryService"], "search-canary");
    let kinds: Vec<String> = out
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds, ["Rollout search", "VirtualService search"]);
    assert_eq!(
        canary["steps"][0],
        json!({"setHeaderRoute": {"name": "canary-header", "match": [{"headerName": "x-search-beta", "headerValue": {"exact": "on"}}]}})
    );
}

#[test]
fn every_dropped_setting_is_named_once() {
    let m = migrated("settings-dropped");
    let dropped = m.dropped();
    for field in [
        "spec.strategy.canary.dynamicStableScale",
        "spec.strategy.canary.canaryMetadata",
        "spec.strategy.canary.stableMetadata",
        "spec.strategy.canary.abortScaleDownDelaySeconds",
        "spec.strategy.canary.scaleDownDelaySeconds",
        "spec.strategy.canary.antiAffinity",
        "metric `p95-ms`: count 5",
        "metric `p95-ms`: failureLimit 1",
        "metric `p95-ms`: failureCondition",
    ] {
        assert_eq!(
            dropped.iter().filter(|d| d.contains(field)).count(),
            1,
            "{field}: {dropped:#?}"
        );
    }
    assert_eq!(dropped.len(), 9, "{dropped:#?}");
    // The pause before the first weight is carried: a held step at 0.
    let plan = plan_of(&m);
    assert_eq!(
        plan["spec"]["steps"][0],
        json!({"weight": 0, "pause": "10m"})
    );
    // And the plan says the same in its header, for the review.
    let text = std::fs::read_to_string(m.dir.path().join("canaryplan.yaml")).unwrap();
    assert!(
        text.contains("# Not carried over: spec.strategy.canary.dynamicStableScale"),
        "{text}"
    );
}

#[test]
fn the_printed_deployment_keeps_the_rollouts_deployment_settings() {
    let m = migrated("replicas-only");
    let d = &parse_stream(&m.init.stdout)[0];
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 300);
    assert_eq!(d["spec"]["minReadySeconds"], 10);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    assert_eq!(plan_of(&m)["spec"]["service"], "billing");
    // A workloadRef: the Deployment it names, with the Rollout's replicas.
    let m = migrated("workload-ref");
    let d = &parse_stream(&m.init.stdout)[0];
    assert_eq!(d["metadata"]["name"], "inventory");
    assert_eq!(d["spec"]["replicas"], 3);
    assert!(m.init.stdout.starts_with("# Delete the Rollout inventory in base/rollout.yaml; its workloadRef, Deployment inventory, takes over"), "{}", m.init.stdout);
}

#[test]
fn a_folder_init_cannot_make_work_is_refused_and_nothing_is_touched() {
    // No kustomization: an overlay could not reference the base.
    let s = tempfile::tempdir().unwrap();
    copy_tree(&root().join("fixtures/rollouts/istio-subset"), s.path());
    std::fs::remove_file(s.path().join("base/kustomization.yaml")).unwrap();
    let r = run_in(
        s.path(),
        &["init", "--from-rollout", "base/rollout.yaml"],
        &[],
    );
    r.fails();
    assert!(
        r.stderr.contains("is not a kustomize directory"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("with `resources: [rollout.yaml]`"),
        "{}",
        r.stderr
    );
    assert!(!s.path().join("canaryplan.yaml").exists());
    // A Rollout name with a dot is a name Kubernetes takes and a plan does not: validate's
    // words, located at the Rollout, and nothing written.
    let s = tempfile::tempdir().unwrap();
    copy_tree(&root().join("fixtures/rollouts/istio-subset"), s.path());
    let text = std::fs::read_to_string(s.path().join("base/rollout.yaml")).unwrap();
    std::fs::write(
        s.path().join("base/rollout.yaml"),
        text.replacen(
            "  name: checkout\n  namespace: shop\nspec:\n  replicas",
            "  name: checkout.v2\n  namespace: shop\nspec:\n  replicas",
            1,
        ),
    )
    .unwrap();
    let r = run_in(
        s.path(),
        &["init", "--from-rollout", "base/rollout.yaml"],
        &[],
    );
    r.fails();
    assert!(
        r.stderr.contains(
            "base/rollout.yaml: error: the plan init would write fails `validate` at stage prepare"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("init wrote nothing"), "{}", r.stderr);
    assert!(!s.path().join("canaryplan.yaml").exists());
    // An existing plan is never overwritten.
    std::fs::write(s.path().join("canaryplan.yaml"), "# mine\n").unwrap();
    run_in(
        s.path(),
        &["init", "--from-rollout", "base/rollout.yaml"],
        &[],
    )
    .fails();
    assert_eq!(
        std::fs::read_to_string(s.path().join("canaryplan.yaml")).unwrap(),
        "# mine\n"
    );
}

/// The Argo Rollouts repository's own Rollouts, from a snapshot named by the environment.
#[test]
fn the_argo_rollouts_repository_examples_migrate_or_are_refused() {
    let repo = std::env::var_os(rollouts::UPSTREAM_ENV).map(std::path::PathBuf::from);
    let Some(repo) = repo.filter(|r| r.join("examples").is_dir()) else {
        let _ = std::io::stderr().write_all(format!("\nSKIPPED (the_argo_rollouts_repository_examples_migrate_or_are_refused): ${} is not set to a checkout of argoproj/argo-rollouts; the committed corpus (fixtures/rollouts) ran instead\n", rollouts::UPSTREAM_ENV).as_bytes());
        return;
    };
    let files = rollouts::upstream_rollout_files(&repo);
    assert!(!files.is_empty(), "no Rollouts under {}", repo.display());
    let (mut migrated, mut refused, mut strict) = (0, 0, 0);
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for f in &files {
        let app = rollouts::upstream_app(f);
        match rollouts::migrate(app.path()) {
            Outcome::Migrated(m) => {
                migrated += 1;
                weights_round_trip(&m, &f.display().to_string());
                strict += usize::from(m.dropped().is_empty());
            }
            Outcome::Refused(r) => {
                refused += 1;
                let first = r.stderr.lines().next().unwrap_or_default();
                let why = first.split(": error: ").nth(1).unwrap_or(first);
                // Grouped without the Rollout's name.
                let why = match why.strip_prefix("Rollout ") {
                    Some(rest) => {
                        format!("Rollout … {}", rest.split_once(' ').map_or("", |(_, r)| r))
                    }
                    None => why.to_string(),
                };
                *reasons.entry(why.chars().take(90).collect()).or_default() += 1;
            }
        }
    }
    let mut report = format!(
        "\nargo-rollouts corpus ({}): {} files with a Rollout: {migrated} migrated ({strict} with nothing dropped), {refused} refused\n",
        repo.display(),
        files.len()
    );
    for (why, n) in reasons {
        report.push_str(&format!("  {n:3} × {why}\n"));
    }
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(migrated > 0);
}

#[test]
fn the_base_is_what_its_kustomization_lists() {
    // The Service lives in a shared kustomization the app's base includes.
    let s = tempfile::tempdir().unwrap();
    copy_tree(&root().join("fixtures/rollouts/istio-subset"), s.path());
    let text = std::fs::read_to_string(s.path().join("base/rollout.yaml")).unwrap();
    let (service, rest): (Vec<&str>, Vec<&str>) = text
        .split("\n---\n")
        .partition(|d| d.starts_with("apiVersion: v1\nkind: Service\n"));
    std::fs::write(s.path().join("base/rollout.yaml"), rest.join("\n---\n")).unwrap();
    std::fs::create_dir_all(s.path().join("shared")).unwrap();
    std::fs::write(s.path().join("shared/service.yaml"), service.join("")).unwrap();
    std::fs::write(
        s.path().join("shared/kustomization.yaml"),
        "resources:\n- service.yaml\n",
    )
    .unwrap();
    std::fs::write(
        s.path().join("base/kustomization.yaml"),
        "resources:\n- rollout.yaml\n- ../shared\n",
    )
    .unwrap();
    let r = run_in(
        s.path(),
        &["init", "--from-rollout", "base/rollout.yaml"],
        &[],
    );
    r.ok();
    let plan = parse_stream(&std::fs::read_to_string(s.path().join("canaryplan.yaml")).unwrap());
    assert_eq!(plan[0]["spec"]["service"], "checkout");
}
