//! The three places canaryplan runs, each tested with the real thing: CI render-and-diff, the
//! pre-commit hook under the real `pre-commit` (PyPI), and the Argo CD config management
//! plugin's `generate` command run as the sidecar runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

// ---------------------------------------------------------------- CI render-and-diff

#[test]
fn diff_exit_codes_follow_diff1() {
    let s = Scratch::fixture("runbook");
    // Nothing rendered yet: every file is missing.
    let r = s.run(&["diff"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("--- /dev/null\n+++ b/gap/staging/kustomization.yaml\n"),
        "{}",
        r.stdout
    );
    s.run(&["render"]).ok();
    let r = s.run(&["diff"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("all 2 overlay(s) are up to date"),
        "{}",
        r.stderr
    );
    // A weight change: the changed lines, with file headers.
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    let r = s.run(&["diff", "--env", "production"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("--- a/gap/production/patch-virtualservice-relational-data-access--web.yaml\n+++ b/gap/production/patch-virtualservice-relational-data-access--web.yaml\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("-    weight: 95\n+    weight: 75\n"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains('\x1b'),
        "no colour when not on a terminal"
    );
    assert!(
        s.run(&["diff", "--color", "always", "--env", "production"])
            .stdout
            .contains("\x1b[32m+    weight: 75")
    );
    // The diff wrote nothing.
    assert!(
        s.read("gap/production/kustomization.yaml")
            .contains("canaryplan.io/weight: \"5\"")
    );
    // An extra file on disk differs too; a broken plan is exit 2.
    s.edit_plan(|t| t.replace("weight: 25\n", "weight: 5\n"));
    s.write("gap/staging/patch-old.yaml", "[]\n");
    let r = s.run(&["diff"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("--- a/gap/staging/patch-old.yaml\n+++ /dev/null\n"),
        "{}",
        r.stdout
    );
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: x\n"));
    s.run(&["diff"]).fails();
}

#[test]
fn diff_for_github_annotates_and_summarises() {
    let s = Scratch::fixture("runbook");
    s.run(&["render"]).ok();
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    let summary = s.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let r = run_in(
        s.path(),
        &["diff", "--format", "github"],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("::error file=gap/production/patch-virtualservice-relational-data-access--web.yaml,line=11,title=canaryplan::gap/production/patch-virtualservice-relational-data-access--web.yaml is stale for environment production (stage shift)"),
        "{}",
        r.stdout
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n## canaryplan\n"),
        "appends: {md}"
    );
    assert!(
        md.contains("| staging | shift | stable 0% / canary 100% | up to date |"),
        "{md}"
    );
    assert!(md.contains("| production | shift | stable 75% / canary 25% | 2 file(s) changed: `kustomization.yaml`, `patch-virtualservice-relational-data-access--web.yaml` |"), "{md}");
    // Plan errors become annotations at the plan's line and column.
    s.edit_plan(|t| t.replace("weight: 25\n", "weight: 250\n"));
    let r = s.run(&["diff", "--format", "github"]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("::error file=canaryplan.yaml,line=36,col=15,title=canaryplan::weight is 250, expected an integer from 0 to 100"), "{}", r.stdout);
}

#[test]
fn the_bundled_fixtures_outputs_are_current() {
    // Each fixture's rendered output is committed, as in a user's repository: CI's diff.
    let r = run_in(&root().join("fixtures"), &["diff", "--all"], &[]);
    assert_eq!(
        r.code, 0,
        "run `cargo run -- render --all` in fixtures/ and review the change:\n{}{}",
        r.stdout, r.stderr
    );
}

// ---------------------------------------------------------------- pre-commit

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pre_commit(dir: &Path) -> Run {
    let home = root().join("target/pre-commit-home");
    let mut cmd = Command::new("pre-commit");
    cmd.args([
        "try-repo",
        root().to_str().unwrap(),
        "canaryplan-render",
        "--all-files",
    ])
    .current_dir(dir)
    .env("PRE_COMMIT_HOME", &home)
    // Reuse compiled dependencies between runs of this test.
    .env("CARGO_TARGET_DIR", root().join("target/pre-commit-build"))
    .env("PRE_COMMIT_COLOR", "never");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("pre-commit is required for this test (pip install pre-commit): {e}")
    });
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn pre_commit_hook_renders_then_passes_then_catches_a_weight_change() {
    let s = Scratch::fixture("runbook");
    let dir = s.path();
    git(dir, &["init", "-q", "-b", "main"]);
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "add",
            "-A",
        ],
    );
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "plan",
        ],
    );

    let first = pre_commit(dir);
    assert_eq!(
        first.code, 1,
        "first run renders and fails:\n{}{}",
        first.stdout, first.stderr
    );
    assert!(
        first.stdout.contains("gap/production: created"),
        "{}",
        first.stdout
    );
    assert!(dir.join("gap/production/kustomization.yaml").is_file());

    git(dir, &["add", "-A"]);
    let second = pre_commit(dir);
    assert_eq!(
        second.code, 0,
        "second run passes:\n{}{}",
        second.stdout, second.stderr
    );

    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    git(dir, &["add", "-A"]);
    let third = pre_commit(dir);
    assert_eq!(
        third.code, 1,
        "a weight change fails again:\n{}{}",
        third.stdout, third.stderr
    );
    assert!(
        third.stdout.contains("gap/production: updated"),
        "{}",
        third.stdout
    );
    let changed = Command::new("git")
        .args(["diff", "--name-only"])
        .current_dir(dir)
        .output()
        .unwrap();
    let changed = String::from_utf8_lossy(&changed.stdout);
    assert!(
        changed.contains("gap/production/patch-virtualservice-relational-data-access--web.yaml"),
        "{changed}"
    );
    assert!(
        !changed.contains("gap/staging/"),
        "only production changed: {changed}"
    );

    // A broken plan: the same located error as every other entry point.
    s.edit_plan(|t| t.replace("weight: 25\n", "weight: 250\n"));
    git(dir, &["add", "-A"]);
    let broken = pre_commit(dir);
    assert_eq!(broken.code, 1);
    assert!(
        broken.stdout.contains(BROKEN_PLAN_ERROR),
        "{}",
        broken.stdout
    );
}

#[test]
fn hooks_file_declares_both_hooks() {
    let hooks =
        parse_stream(&std::fs::read_to_string(root().join(".pre-commit-hooks.yaml")).unwrap());
    let hooks = hooks[0].as_array().unwrap();
    for (id, entry) in [
        ("canaryplan-render", "canaryplan render"),
        ("canaryplan-diff", "canaryplan diff"),
    ] {
        let h = hooks.iter().find(|h| h["id"] == id).unwrap();
        assert_eq!(h["entry"], entry);
        assert_eq!(h["language"], "rust");
        assert_eq!(h["pass_filenames"], false);
        assert_eq!(h["require_serial"], true);
        let files = regex_lite(h["files"].as_str().unwrap());
        for path in [
            "canaryplan.yaml",
            "apps/a/canaryplan.yaml",
            "apps/a/base/deployment.yaml",
            "templates/stable-copy.yaml.j2",
        ] {
            assert!(files(path), "{id} must run for {path}");
        }
        assert!(!files("src/main.rs"));
    }
}

/// The hooks' `files` patterns are plain alternations of suffixes; enough to test them.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let inner = pattern
        .trim_start_matches('(')
        .trim_end_matches('$')
        .trim_end_matches(')')
        .to_string();
    move |path: &str| {
        inner.split('|').any(|alt| {
            let alt = alt.replace("\\.", ".");
            let (base, optional) = (alt.replace("ya?ml", "yaml"), alt.replace("ya?ml", "yml"));
            path.ends_with(&base) || path.ends_with(&optional)
        })
    }
}

// ---------------------------------------------------------------- Argo CD plugin

const BROKEN_PLAN_ERROR: &str =
    "canaryplan.yaml:36:15: error: weight is 250, expected an integer from 0 to 100";

fn plugin() -> serde_json::Value {
    parse_stream(&std::fs::read_to_string(root().join("deploy/argocd/plugin.yaml")).unwrap())
        .remove(0)
}

/// Runs the plugin's `generate` command in `app` the way the CMP sidecar does: `canaryplan`
/// found on PATH, the Argo CD build environment, and the app's plugin env and parameters.
fn generate(app: &Path, extra: &[(&str, &str)]) -> Run {
    let p = plugin();
    let command: Vec<String> = p["spec"]["generate"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .current_dir(app)
        .env_clear()
        .env("PATH", path)
        .env("HOME", app);
    let build_env = [
        ("ARGOCD_APP_NAME", "my-service-production"),
        ("ARGOCD_APP_NAMESPACE", "my-service"),
        (
            "ARGOCD_APP_REVISION",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        ),
        ("ARGOCD_APP_REVISION_SHORT", "0f1e2d3"),
        ("ARGOCD_APP_SOURCE_PATH", "apps/my-service"),
        (
            "ARGOCD_APP_SOURCE_REPO_URL",
            "https://git.example.com/platform/gitops.git",
        ),
        ("ARGOCD_APP_SOURCE_TARGET_REVISION", "main"),
        ("KUBE_VERSION", "1.34.1"),
        (
            "KUBE_API_VERSIONS",
            "v1,apps/v1,networking.istio.io/v1,security.istio.io/v1",
        ),
    ];
    cmd.envs(build_env).envs(extra.iter().copied());
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn plugin_discovers_plans_and_generates_the_final_stream() {
    let p = plugin();
    assert_eq!(p["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(p["kind"], "ConfigManagementPlugin");
    assert_eq!(p["spec"]["discover"]["fileName"], "./canaryplan.yaml");
    assert_eq!(p["spec"]["parameters"]["static"][0]["name"], "environment");

    let s = Scratch::fixture("runbook");
    assert!(
        s.path()
            .join(p["spec"]["discover"]["fileName"].as_str().unwrap())
            .is_file(),
        "discovery matches the app"
    );
    let expected = s
        .run(&["render", "--stdout", "--env", "production"])
        .ok()
        .stdout
        .clone();

    // The Application's plugin env: spec.source.plugin.env → ARGOCD_ENV_CANARYPLAN_ENV.
    let r = generate(s.path(), &[("ARGOCD_ENV_CANARYPLAN_ENV", "production")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, expected);
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    // The plugin parameter, as PARAM_ENVIRONMENT and in ARGOCD_APP_PARAMETERS; it wins over env.
    let r = generate(
        s.path(),
        &[
            ("PARAM_ENVIRONMENT", "production"),
            ("ARGOCD_ENV_CANARYPLAN_ENV", "staging"),
        ],
    );
    assert_eq!(r.stdout, expected, "{}", r.stderr);
    let params = r#"[{"name":"environment","string":"production"}]"#;
    let r = generate(
        s.path(),
        &[
            ("ARGOCD_APP_PARAMETERS", params),
            ("ARGOCD_ENV_CANARYPLAN_ENV", "staging"),
        ],
    );
    assert_eq!(r.stdout, expected, "{}", r.stderr);

    // No choice and several environments: a clear error and an empty stdout (an empty stream
    // with auto-prune would delete the app).
    let r = generate(s.path(), &[]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("choose one with --env"), "{}", r.stderr);
    let r = generate(s.path(), &[("ARGOCD_ENV_CANARYPLAN_ENV", "prod")]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("the plan has no environment `prod`")
            && r.stderr.contains("did you mean `production`?"),
        "{}",
        r.stderr
    );

    // A plan with one environment needs no choice.
    let one = Scratch::fixture("multi-route");
    let r = generate(one.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("name: checkout-api-v1\n"));

    // A broken plan: non-zero, nothing on stdout, the same located error.
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 250\n"));
    let r = generate(s.path(), &[("ARGOCD_ENV_CANARYPLAN_ENV", "production")]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains(BROKEN_PLAN_ERROR), "{}", r.stderr);
    let diff = s.run(&["diff"]);
    assert!(diff.stderr.contains(BROKEN_PLAN_ERROR), "{}", diff.stderr);
}

#[test]
fn sidecar_patch_builds_with_kustomize() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&root().join("deploy/argocd"), dir.path());
    // A stand-in for the Argo CD install manifest: the repo-server as Argo CD ships it.
    std::fs::write(
        dir.path().join("argo-cd-install.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: argocd-repo-server\nspec:\n  selector:\n    matchLabels: {app.kubernetes.io/name: argocd-repo-server}\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: argocd-repo-server}\n    spec:\n      containers:\n      - name: argocd-repo-server\n        image: quay.io/argoproj/argocd:v3.2.0\n      volumes:\n      - {name: var-files, emptyDir: {}}\n      - {name: plugins, emptyDir: {}}\n",
    )
    .unwrap();
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir.path())
        .output()
        .expect("kubectl is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = parse_stream(&String::from_utf8(out.stdout).unwrap());
    let cm = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["name"], "canaryplan-plugin");
    assert!(
        cm["data"]["plugin.yaml"]
            .as_str()
            .unwrap()
            .contains("kind: ConfigManagementPlugin")
    );
    let repo_server = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let containers = repo_server["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(
        containers.len(),
        2,
        "the sidecar is added beside the repo-server"
    );
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "canaryplan")
        .unwrap();
    assert_eq!(sidecar["command"][0], "/var/run/argocd/argocd-cmp-server");
    assert_eq!(sidecar["securityContext"]["runAsUser"], 999);
    let mounts: Vec<&str> = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(
        mounts.contains(&"/tmp") && mounts.contains(&"/home/argocd/cmp-server/config/plugin.yaml"),
        "{mounts:?}"
    );
}
