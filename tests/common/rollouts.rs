//! Migrating an app from Argo Rollouts as a user does: a copy of its folder, `canaryplan init
//! --from-rollout`, the printed objects committed in place of the Rollout, `validate`, then
//! the plan exported back to the controllers. Shared by tests/migrate.rs (the outcomes) and
//! tests/schemas.rs (the exports against the CRDs).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Run, copy_tree, parse_stream, run_in};

/// `$CANARYPLAN_ARGO_ROLLOUTS_REPO`: a checkout (or snapshot) of argoproj/argo-rollouts.
pub const UPSTREAM_ENV: &str = "CANARYPLAN_ARGO_ROLLOUTS_REPO";

/// The folders of fixtures/rollouts, each an app with its Rollout in `base/rollout.yaml`.
pub fn corpus() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(super::root().join("fixtures/rollouts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Every file of the upstream snapshot's `examples/` and `test/e2e/` holding a Rollout.
pub fn upstream_rollout_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["examples", "test/e2e"] {
        walk_yaml(&repo.join(top), &mut out);
    }
    out.retain(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| t.lines().any(|l| l.trim_end() == "kind: Rollout"))
    });
    out.sort();
    out
}

fn walk_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk_yaml(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// A scratch app folder for one upstream file: `base/` with the file and a kustomization
/// listing it (how Argo CD would apply it).
pub fn upstream_app(file: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::copy(file, base.join("rollout.yaml")).unwrap();
    std::fs::write(
        base.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- rollout.yaml\n",
    )
    .unwrap();
    dir
}

/// What happened to one app.
pub enum Outcome {
    /// `init` refused (exit 2) and wrote nothing.
    Refused(Run),
    Migrated(Box<Migrated>),
}

pub struct Migrated {
    pub dir: tempfile::TempDir,
    pub init: Run,
    /// The Rollout as it was.
    pub rollout: Value,
    /// `--routing host` when the Rollout routed by host.
    pub host_routing: bool,
    /// (target, its run): `export argo-rollouts` and `export kruise`.
    pub exports: Vec<(&'static str, Run)>,
}

impl Migrated {
    /// What init said it could not carry over.
    pub fn dropped(&self) -> Vec<&str> {
        self.init
            .stderr
            .lines()
            .filter(|l| l.starts_with("note: not carried over:"))
            .collect()
    }
}

/// The Rollout of a file.
pub fn rollout_of(file: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(file).ok()?;
    serde_saphyr::from_multiple::<Value>(&text)
        .ok()?
        .into_iter()
        .find(|d| d["kind"] == "Rollout")
}

/// The app folder (a copy) migrated: `init`; on success the printed objects replace the
/// Rollout (and the routes) in base, `validate` must pass, and both exports must succeed.
pub fn migrate(app: &Path) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(app, dir.path());
    let rollout = rollout_of(&dir.path().join("base/rollout.yaml")).unwrap_or(Value::Null);
    let init = run_in(
        dir.path(),
        &["init", "--from-rollout", "base/rollout.yaml"],
        &[],
    );
    let plan = dir.path().join("canaryplan.yaml");
    if init.code == 2 {
        assert!(
            !plan.exists(),
            "a refused init wrote the plan:\n{}",
            init.stderr
        );
        assert!(init.stdout.is_empty(), "{}", init.stdout);
        assert!(
            init.stderr.contains("hint:"),
            "a refusal says what to do:\n{}",
            init.stderr
        );
        assert!(!init.stderr.contains("panicked"), "{}", init.stderr);
        return Outcome::Refused(init);
    }
    assert_eq!(init.code, 0, "init: {}\n{}", init.stderr, init.stdout);
    // The plan parses (it was written by the serializer).
    let written = std::fs::read_to_string(&plan).unwrap();
    assert_eq!(parse_stream(&written).len(), 1, "{written}");
    replace_in_base(&dir.path().join("base"), &init.stdout, &rollout);
    let validate = run_in(dir.path(), &["validate"], &[]);
    assert_eq!(
        validate.code, 0,
        "the plan init wrote does not validate with the printed objects in place:\n{}\n--- plan:\n{written}\n--- printed:\n{}",
        validate.stderr, init.stdout
    );
    let host_routing = rollout
        .pointer("/spec/strategy/canary/trafficRouting/istio")
        .is_some_and(|i| i.get("destinationRule").is_none());
    let mut argo = vec!["export", "argo-rollouts"];
    if host_routing {
        argo.extend(["--routing", "host"]);
    }
    let mut exports = Vec::new();
    for (target, args) in [
        ("argo-rollouts", argo),
        ("kruise", vec!["export", "kruise"]),
    ] {
        let r = run_in(dir.path(), &args, &[]);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        exports.push((target, r));
    }
    Outcome::Migrated(Box::new(Migrated {
        dir,
        init,
        rollout,
        host_routing,
        exports,
    }))
}

/// Commits the printed objects: each replaces the object of its kind and name in the base's
/// files; the Rollout becomes the Deployment, or goes when it had a workloadRef.
fn replace_in_base(base: &Path, printed: &str, rollout: &Value) {
    let mut replacements = parse_stream(printed);
    let rollout_name = rollout["metadata"]["name"].clone();
    let by_ref = rollout.pointer("/spec/workloadRef").is_some();
    for e in std::fs::read_dir(base).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.starts_with("kustomization") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = parse_stream(&text);
        let mut out = Vec::new();
        for d in docs {
            let is_rollout = d["kind"] == "Rollout" && d["metadata"]["name"] == rollout_name;
            if is_rollout && by_ref {
                continue;
            }
            let (kind, name) = if is_rollout {
                (Value::from("Deployment"), d["metadata"]["name"].clone())
            } else {
                (d["kind"].clone(), d["metadata"]["name"].clone())
            };
            match replacements
                .iter()
                .position(|r| r["kind"] == kind && r["metadata"]["name"] == name)
            {
                Some(i) => out.push(replacements.remove(i)),
                None => out.push(d),
            }
        }
        let text: Vec<String> = out
            .iter()
            .map(|d| serde_saphyr::to_string(d).unwrap())
            .collect();
        std::fs::write(&path, text.join("---\n")).unwrap();
    }
    assert!(
        replacements.is_empty(),
        "printed objects replace nothing in base: {replacements:?}"
    );
}

/// The setWeight values of a Rollout's steps, without a leading 0 (the weight a Rollout
/// starts at) and a final 100 (where it ends).
pub fn set_weights(rollout: &Value) -> Vec<u64> {
    let mut w: Vec<u64> = rollout
        .pointer("/spec/strategy/canary/steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("setWeight").and_then(Value::as_u64))
        .collect();
    if w.first() == Some(&0) {
        w.remove(0);
    }
    if w.last() == Some(&100) {
        w.pop();
    }
    w
}

/// The weights of a Kruise Rollout's steps, the same way.
pub fn kruise_weights(rollout: &Value) -> Vec<u64> {
    let mut w: Vec<u64> = rollout
        .pointer("/spec/strategy/canary/steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s["traffic"].as_str()?.trim_end_matches('%').parse().ok())
        .collect();
    if w.last() == Some(&100) {
        w.pop();
    }
    w
}
