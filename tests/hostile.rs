//! A repository is untrusted input: canaryplan runs on whatever it holds (in Argo CD's
//! repo-server, in hooks). Each test builds a hostile or unlucky repository (symlinks out of it,
//! FIFOs, /dev/zero, loops, files where directories go) and checks that the tool refuses it
//! promptly with exit 2, the path, why and the fix, and that nothing on disk is damaged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(unix)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs canaryplan, killing it if it has not finished in 10 s (a read that never ends).
fn bounded(dir: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("CANARYPLAN_ROOT")
        .env_remove("ARGOCD_APP_SOURCE_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("canaryplan {args:?} did not finish in 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn refused(r: &Run, needles: &[&str]) {
    r.fails();
    for n in needles {
        assert!(r.stderr.contains(n), "expected {n:?} in:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
}

/// Makes a path unwritable, for root too (`chattr +i`; plain permissions bind only other
/// users), until dropped.
struct Unwritable(std::path::PathBuf);

impl Unwritable {
    fn new(p: &Path) -> Option<Unwritable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success());
        available(
            "chattr (e2fsprogs) on an ext2/3/4 file system",
            ok,
            "These tests make a path immutable to make a write fail, even for root",
        )
        .then(|| Unwritable(p.to_path_buf()))
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

#[test]
fn an_absolute_base_is_refused() {
    let s = Scratch::fixture("runbook");
    s.edit_plan(|t| t.replace("  base: base\n", "  base: /dev/zero\n"));
    refused(
        &bounded(s.path(), &["validate"]),
        &["canaryplan.yaml:7:9: error: the base `/dev/zero` is an absolute path"],
    );
}

#[test]
fn a_plan_linked_to_dev_zero_is_refused_without_reading_it() {
    let s = Scratch::fixture("runbook");
    std::fs::create_dir(s.path().join("evil")).unwrap();
    symlink("/dev/zero", s.path().join("evil/canaryplan.yaml")).unwrap();
    refused(
        &bounded(s.path(), &["validate", "--all"]),
        &["evil/canaryplan.yaml: error: resolves to /dev/zero, outside the repository root"],
    );
}

#[test]
fn base_files_linked_out_of_the_repository_are_refused() {
    // /dev/zero (never ends), a secret beside the repository, and a loop.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("token"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: stolen-token}\n",
    )
    .unwrap();
    for (target, expected) in [
        (
            "/dev/zero".to_string(),
            "resolves to /dev/zero, outside the repository root".to_string(),
        ),
        (
            outside.path().join("token").display().to_string(),
            "outside the repository root".to_string(),
        ),
        ("loop.yaml".to_string(), "symlink loop".to_string()),
        (
            "missing.yaml".to_string(),
            "is a symbolic link to missing.yaml, which does not exist".to_string(),
        ),
    ] {
        let s = Scratch::fixture("no-virtualservice");
        symlink(&target, s.path().join("base/x.yaml")).unwrap();
        if target == "loop.yaml" {
            symlink("x.yaml", s.path().join("base/loop.yaml")).unwrap();
        }
        s.write(
            "base/kustomization.yaml",
            &s.read("base/kustomization.yaml")
                .replace("- ledger.yaml\n", "- ledger.yaml\n- x.yaml\n"),
        );
        let r = bounded(s.path(), &["render", "--stdout"]);
        refused(&r, &["base/x.yaml", &expected]);
        assert!(!r.stderr.contains("stolen-token"));
        // A plain directory base (no kustomization) lists the link too (or its loop partner).
        std::fs::remove_file(s.path().join("base/kustomization.yaml")).unwrap();
        refused(
            &bounded(s.path(), &["render", "--stdout"]),
            &["base/", &expected],
        );
    }
}

#[test]
fn a_fifo_in_the_base_is_refused_not_waited_on() {
    let s = Scratch::fixture("no-virtualservice");
    mkfifo(&s.path().join("base/pipe.yaml"));
    std::fs::remove_file(s.path().join("base/kustomization.yaml")).unwrap();
    refused(
        &bounded(s.path(), &["render", "--stdout"]),
        &["base/pipe.yaml: error: is a FIFO (named pipe), not a regular file"],
    );
    // Named as the base itself.
    s.edit_plan(|t| t.replace("  base: base\n", "  base: base/pipe.yaml\n"));
    refused(
        &bounded(s.path(), &["render", "--stdout"]),
        &["is a FIFO (named pipe), not a regular file"],
    );
}

#[test]
fn reads_are_bounded_by_bytes_read() {
    let s = Scratch::fixture("no-virtualservice");
    // 9 MiB of valid YAML (a comment): over the limit however stat reports it.
    let big = format!("# {}\n", "x".repeat(9 * 1024 * 1024));
    s.write("base/big.yaml", &big);
    std::fs::remove_file(s.path().join("base/kustomization.yaml")).unwrap();
    refused(
        &bounded(s.path(), &["render", "--stdout"]),
        &["base/big.yaml: error: file is more than the 8388608 bytes canaryplan reads"],
    );
}

#[test]
fn canaryplan_root_widens_the_repository() {
    // A base shared from beside the repository, allowed by CANARYPLAN_ROOT.
    let top = tempfile::tempdir().unwrap();
    copy_fixture("no-virtualservice", &top.path().join("app"));
    std::fs::rename(top.path().join("app/base"), top.path().join("shared-base")).unwrap();
    symlink("../shared-base", top.path().join("app/base")).unwrap();
    std::fs::create_dir(top.path().join("app/.git")).unwrap();
    let app = top.path().join("app");
    refused(
        &bounded(&app, &["render", "--stdout"]),
        &["outside the repository root", "CANARYPLAN_ROOT"],
    );
    let r = run_in(
        &app,
        &["render", "--stdout"],
        &[("CANARYPLAN_ROOT", top.path().to_str().unwrap())],
    );
    r.ok();
}

#[test]
fn overlays_are_never_written_through_links_or_over_a_users_file() {
    // The output directory is a link elsewhere.
    let s = Scratch::fixture("no-virtualservice");
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), s.path().join("rendered")).unwrap();
    refused(
        &s.run(&["render", "--from-scratch"]),
        &["rendered: error: is a symbolic link; canaryplan does not write overlays through links"],
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    // `<output>/<env>` is a user's file: refused, and the file stays where it is.
    let s = Scratch::fixture("no-virtualservice");
    s.write("rendered/dev", "my notes\n");
    refused(
        &s.run(&["render", "--from-scratch"]),
        &["rendered/dev: error: exists and is not a directory"],
    );
    assert_eq!(s.read("rendered/dev"), "my notes\n");
    assert_eq!(
        std::fs::read_dir(s.path().join("rendered"))
            .unwrap()
            .count(),
        1
    );

    // A link inside an overlay is not followed when reading it.
    let s = Scratch::fixture("no-virtualservice");
    s.run(&["render", "--from-scratch"]).ok();
    symlink("/dev/zero", s.path().join("rendered/dev/zero.yaml")).unwrap();
    refused(
        &bounded(s.path(), &["render"]),
        &["holds files canaryplan did not write"],
    );

    // `spec.output` climbing out of the repository.
    let s = Scratch::fixture("no-virtualservice");
    s.edit_plan(|t| t.replace("  output: rendered\n", "  output: ../../outside\n"));
    refused(
        &s.run(&["render", "--from-scratch"]),
        &["outside the repository root"],
    );
}

#[test]
fn a_read_only_previous_overlay_is_removed_or_reported() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    // Read-only for its owner: canaryplan makes it writable to remove it.
    let prod = s.path().join("gap/production");
    std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o555)).unwrap();
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    let r = s.run(&["render"]);
    r.ok();
    assert!(r.stderr.contains("gap/production: updated"), "{}", r.stderr);
    let debris = |s: &Scratch| -> Vec<String> {
        std::fs::read_dir(s.path().join("gap"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    };
    assert!(debris(&s).is_empty(), "left behind: {:?}", debris(&s));

    // A file no one may remove: the render succeeds and names what it left.
    let Some(guard) = Unwritable::new(&prod.join("kustomization.yaml")) else {
        return;
    };
    s.edit_plan(|t| t.replace("weight: 25\n", "weight: 50\n"));
    let r = s.run(&["render"]);
    let left = debris(&s);
    let _ = Command::new("chattr")
        .arg("-i")
        .args(
            left.iter()
                .map(|l| s.path().join("gap").join(l).join("kustomization.yaml")),
        )
        .status();
    drop(guard);
    r.ok();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        r.stderr.contains(&format!(
            "warning: canaryplan could not remove gap/{} (the previous overlay, moved aside): remove it",
            left[0]
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn two_plans_writing_one_overlay_directory_are_refused() {
    let s = Scratch::fixture("runbook");
    let other = s
        .read("canaryplan.yaml")
        .replace("name: my-service\n", "name: other\n");
    s.write("other.yaml", &other);
    let r = s.run(&["render", "--from-scratch", "canaryplan.yaml", "other.yaml"]);
    refused(
        &r,
        &[
            "other.yaml:30:14: error: environment `staging` of this plan and environment `staging` of canaryplan.yaml write their overlays to the same directory",
        ],
    );
    assert!(!s.path().join("gap").exists());
}

#[test]
fn a_failed_write_in_a_multi_plan_render_says_what_is_new_and_what_is_old() {
    let mono = tempfile::tempdir().unwrap();
    copy_fixture("runbook", &mono.path().join("a"));
    copy_fixture("no-virtualservice", &mono.path().join("b"));
    // b's output cannot be created.
    let Some(guard) = Unwritable::new(&mono.path().join("b")) else {
        return;
    };
    let r = run_in(
        mono.path(),
        &[
            "render",
            "--from-scratch",
            "a/canaryplan.yaml",
            "b/canaryplan.yaml",
        ],
        &[],
    );
    drop(guard);
    refused(
        &r,
        &["overlays written: a/gap/staging, a/gap/production; left as they were: b/rendered/dev"],
    );
    assert!(
        mono.path()
            .join("a/gap/production/kustomization.yaml")
            .is_file()
    );
    assert!(!mono.path().join("b/rendered").exists());
}

#[test]
fn a_fresh_render_past_prepare_must_be_asked_for() {
    let s = Scratch::fixture("runbook");
    refused(
        &s.run(&["render"]),
        &[
            "canaryplan.yaml:30:14: error: environment `staging` has no overlay on disk at gap/staging, and the plan starts it at stage shift",
            "--from-scratch",
        ],
    );
    assert!(!s.path().join("gap").exists());
    s.run(&["render", "--from-scratch"]).ok();
    // With the overlay on disk the one-stage rule holds again: deleting it and jumping is refused.
    std::fs::remove_dir_all(s.path().join("gap/production")).unwrap();
    s.set_stage("route");
    refused(
        &s.run(&["render"]),
        &["environment `production` has no overlay on disk at gap/production"],
    );
}

#[test]
fn plan_edits_keep_tab_comments_and_refuse_shared_anchors() {
    let s = Scratch::fixture("runbook");
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 5\t# five\n"));
    s.run(&["promote", "--env", "production"]).ok();
    assert!(s.read("canaryplan.yaml").contains("weight: 25\t# five\n"));

    let s = Scratch::fixture("runbook");
    s.edit_plan(|t| {
        t.replace("weight: 100\n", "weight: &w 5\n")
            .replace("weight: 5\n", "weight: *w\n")
    });
    let before = s.read("canaryplan.yaml");
    for env in ["staging", "production"] {
        refused(
            &s.run(&["promote", "--env", env]),
            &["is shared through the YAML anchor `&w` by environments `staging`, `production`"],
        );
    }
    assert_eq!(s.read("canaryplan.yaml"), before);
}

#[test]
fn a_symlinked_plan_is_edited_where_it_points() {
    let s = Scratch::fixture("runbook");
    std::fs::rename(s.plan(), s.path().join("real.yaml")).unwrap();
    symlink("real.yaml", s.plan()).unwrap();
    s.run(&["promote", "--env", "production"]).ok();
    assert!(
        std::fs::symlink_metadata(s.plan())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(s.read("real.yaml").contains("weight: 25\n"));
}

#[test]
fn promote_render_edits_the_plan_only_when_the_overlay_is_written() {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    // The overlay cannot be replaced: its parent is immutable.
    let Some(guard) = Unwritable::new(&s.path().join("gap")) else {
        return;
    };
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", "production", "--render"]);
    drop(guard);
    refused(&r, &["canaryplan.yaml is unchanged"]);
    assert_eq!(s.read("canaryplan.yaml"), before);
}

#[test]
fn concurrent_promotes_take_turns() {
    let s = Scratch::fixture("runbook");
    s.edit_plan(|t| {
        t.replace(
            "steps: [1, 5, 25, 50, 100]",
            "steps: [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 100]",
        )
    });
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(bin())
                .args(["promote", "--env", "production"])
                .current_dir(s.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut changes: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    changes.sort();
    // Six steps from 5: each run saw the previous one's result; none was lost.
    assert!(
        s.read("canaryplan.yaml").contains("      weight: 35\n"),
        "{changes:?}"
    );
    changes.dedup();
    assert_eq!(changes.len(), 6, "{changes:?}");
}

#[test]
fn messages_are_in_canaryplans_words() {
    for (edit, expected) in [
        ("multi", "the file holds more than one YAML document"),
        ("null", "this is empty (null) where text is expected"),
        (
            "1e400",
            "this number is too large to be a number canaryplan reads",
        ),
    ] {
        let s = Scratch::fixture("runbook");
        s.edit_plan(|t| match edit {
            "multi" => format!("{t}---\n"),
            "null" => t.replace("  output: gap\n", "  output: gap\n  null: x\n"),
            _ => t.replace("weight: 5\n", "weight: 1e400\n"),
        });
        let r = s.run(&["validate"]);
        refused(&r, &[expected]);
        for leak in ["from_str", "Option<", "configured policy"] {
            assert!(!r.stderr.contains(leak), "{}", r.stderr);
        }
    }
}

#[test]
fn base_keys_kustomize_refuses_are_refused_by_the_stream_too() {
    let s = Scratch::fixture("runbook");
    s.write(
        "base/service.yaml",
        &s.read("base/service.yaml").replace(
            "metadata:\n  name: my-service-web\n",
            "metadata:\n  name: my-service-web\n  annotations:\n    0755: mode\n",
        ),
    );
    refused(
        &s.run(&["render", "--stdout", "--env", "staging"]),
        &[
            "base/service.yaml:6:5: error: this mapping key is read as a number, boolean or null (`755`), not as text",
            "quote the key",
        ],
    );
    if !have_kubectl() {
        return;
    }
    // kustomize refuses the same base.
    let out = Command::new("kubectl")
        .args(["kustomize", "base"])
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn in_an_argo_cd_plugin_the_checkout_is_the_root() {
    // Argo CD runs the plugin in <checkout>/<source path>; a base shared elsewhere in the same
    // checkout is inside the repository, one outside it is not.
    let checkout = tempfile::tempdir().unwrap();
    copy_fixture("no-virtualservice", &checkout.path().join("apps/ledger"));
    std::fs::rename(
        checkout.path().join("apps/ledger/base"),
        checkout.path().join("shared-base"),
    )
    .unwrap();
    symlink(
        "../../shared-base",
        checkout.path().join("apps/ledger/base"),
    )
    .unwrap();
    let app = checkout.path().join("apps/ledger");
    let argo = [("ARGOCD_APP_SOURCE_PATH", "apps/ledger")];
    run_in(&app, &["render", "--stdout"], &argo).ok();
    // Without the plugin's variable the root is the plan's directory: the link leads out.
    refused(
        &bounded(&app, &["render", "--stdout"]),
        &["outside the repository root"],
    );
}

// Writes are as safe as reads (issue 21). Each test plants links in a repository, aimed at a
// file outside it, and checks that the command refuses with exit 2 and a located message, the
// outside file keeps its text and mode, the repository's files stay regular files, and
// nothing is half-written (no file changed, no temporary file left).

/// A file outside the repository that a hostile repository aims its links at.
struct Outside {
    dir: tempfile::TempDir,
}

const SECRET: &str = "token: do-not-overwrite\n";

impl Outside {
    fn new() -> Outside {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        std::fs::set_permissions(
            dir.path().join("secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        Outside { dir }
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("secret")
    }

    /// A name beside the secret that does not exist (for dangling links).
    fn missing(&self) -> std::path::PathBuf {
        self.dir.path().join("created-by-canaryplan")
    }

    #[track_caller]
    fn untouched(&self) {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::read_to_string(self.file()).unwrap(), SECRET);
        let mode = std::fs::metadata(self.file()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the outside file's mode changed");
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["secret"],
            "something was created outside the repository"
        );
    }
}

#[track_caller]
fn regular_file(p: &Path) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        m.file_type().is_file(),
        "{} is not a regular file",
        p.display()
    );
}

/// canaryplan's temporary files in `dir` (`.<name>.canaryplan-…`, regular files only: what
/// a test planted is not counted).
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".canaryplan-"))
        .collect()
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

const EXPORT: [&str; 5] = ["export", "argo-rollouts", "--env", "production", "--output"];

#[test]
fn export_never_writes_through_a_planted_temporary_name_or_target() {
    // 1. The old temporary name, and the target itself, planted as links to a file outside.
    let outside = Outside::new();
    let s = Scratch::fixture("runbook");
    std::fs::create_dir(s.path().join("exported")).unwrap();
    let tmp = s
        .path()
        .join("exported/.rollout-my-service.yaml.canaryplan-tmp");
    symlink(outside.file(), &tmp).unwrap();
    let r = bounded(s.path(), &[&EXPORT[..], &["exported"]].concat());
    refused(
        &r,
        &[
            "exported/.rollout-my-service.yaml.canaryplan-tmp: error: is a symbolic link to",
            "named like canaryplan's temporary files for rollout-my-service.yaml; refusing to write beside it",
            "hint: remove it",
        ],
    );
    outside.untouched();
    assert!(!s.path().join("exported/rollout-my-service.yaml").exists());
    std::fs::remove_file(&tmp).unwrap();

    let target = s.path().join("exported/rollout-my-service.yaml");
    symlink(outside.file(), &target).unwrap();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported"]].concat()),
        &[
            "exported/rollout-my-service.yaml: error: is a symbolic link to",
            "canaryplan does not write through links",
        ],
    );
    outside.untouched();
    // Dangling: nothing is created where it points either.
    std::fs::remove_file(&target).unwrap();
    symlink(outside.missing(), &target).unwrap();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported"]].concat()),
        &["exported/rollout-my-service.yaml: error: is a symbolic link to"],
    );
    outside.untouched();
    assert!(temporaries(&s.path().join("exported")).is_empty());

    // Several files: all are checked before the first is written.
    let lanes = Scratch::fixture("lanes");
    std::fs::create_dir(lanes.path().join("kruise")).unwrap();
    symlink(
        outside.file(),
        lanes.path().join("kruise/rollout-mockc.yaml"),
    )
    .unwrap();
    refused(
        &bounded(lanes.path(), &["export", "kruise", "--output", "kruise"]),
        &["kruise/rollout-mockc.yaml: error: is a symbolic link to"],
    );
    outside.untouched();
    assert!(!lanes.path().join("kruise/rollout-mocka.yaml").exists());

    // With the links gone, the export is written: a regular file, and nothing else.
    std::fs::remove_file(&target).unwrap();
    s.run(&[&EXPORT[..], &["exported"]].concat()).ok();
    regular_file(&target);
    assert!(temporaries(&s.path().join("exported")).is_empty());
}

#[test]
fn plan_edits_never_write_through_planted_temporary_names() {
    // 2. What PIDs in CI and Argo CD containers make likely, planted as links.
    use std::os::unix::fs::PermissionsExt;
    let outside = Outside::new();
    let s = Scratch::fixture("runbook");
    std::fs::set_permissions(s.plan(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = s.read("canaryplan.yaml");
    for pid in 1..=300 {
        symlink(
            outside.file(),
            s.path().join(format!(".canaryplan.yaml.canaryplan-{pid}")),
        )
        .unwrap();
    }
    for (verb, env) in [
        ("promote", "production"),
        ("abort", "production"),
        ("advance", "staging"),
    ] {
        let r = bounded(s.path(), &[verb, "--env", env]);
        refused(
            &r,
            &[
                ".canaryplan.yaml.canaryplan-",
                "is a symbolic link to",
                "named like canaryplan's temporary files for canaryplan.yaml",
            ],
        );
        outside.untouched();
        assert_eq!(s.read("canaryplan.yaml"), before, "{verb} changed the plan");
        regular_file(&s.plan());
        assert_eq!(mode_of(&s.plan()), 0o640);
        assert!(temporaries(s.path()).is_empty());
    }
    // Without them the edit is written in place, as a regular file with the plan's mode.
    for pid in 1..=300 {
        std::fs::remove_file(s.path().join(format!(".canaryplan.yaml.canaryplan-{pid}"))).unwrap();
    }
    s.run(&["promote", "--env", "production"]).ok();
    assert!(s.read("canaryplan.yaml").contains("weight: 25\n"));
    regular_file(&s.plan());
    assert_eq!(mode_of(&s.plan()), 0o640);
    assert!(temporaries(s.path()).is_empty());
}

#[test]
fn init_refuses_an_existing_or_dangling_plan() {
    // 3. A dangling `canaryplan.yaml` aimed outside, for `init` and `init --from-rollout`.
    let outside = Outside::new();
    let s = Scratch::fixture("no-virtualservice");
    std::fs::remove_file(s.plan()).unwrap();
    s.write(
        "rollout/rollout.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: ledger\nspec:\n  template:\n    spec:\n      containers:\n      - name: ledger\n        image: registry.example/ledger:1.0.0\n  strategy:\n    canary:\n      steps:\n      - setWeight: 10\n",
    );
    symlink(outside.missing(), s.plan()).unwrap();
    for args in [
        vec!["init"],
        vec!["init", "--from-rollout", "rollout/rollout.yaml"],
    ] {
        refused(
            &bounded(s.path(), &args),
            &[
                "canaryplan.yaml: error: is a symbolic link to",
                "canaryplan init never writes through a link, even one to nothing",
                "hint: remove the link, or choose another path with --output",
            ],
        );
        outside.untouched();
        assert!(temporaries(s.path()).is_empty());
    }
    // A link to the outside file itself, and a plan that exists, are refused alike.
    std::fs::remove_file(s.plan()).unwrap();
    symlink(outside.file(), s.plan()).unwrap();
    refused(&bounded(s.path(), &["init"]), &["is a symbolic link to"]);
    outside.untouched();
    std::fs::remove_file(s.plan()).unwrap();
    s.write("canaryplan.yaml", "# mine\n");
    refused(
        &bounded(s.path(), &["init"]),
        &[
            "canaryplan.yaml: error: a plan already exists here; canaryplan init does not overwrite it",
        ],
    );
    assert_eq!(s.read("canaryplan.yaml"), "# mine\n");
    // Nothing there: the plan is created, a regular file.
    std::fs::remove_file(s.plan()).unwrap();
    s.run(&["init"]).ok();
    regular_file(&s.plan());
    assert!(temporaries(s.path()).is_empty());
    s.run(&["validate"]).ok();
}

#[test]
fn export_output_is_confined_to_the_repository() {
    // 4. `--output` a link to a directory outside, or a path outside.
    let outside = Outside::new();
    let s = Scratch::fixture("runbook");
    symlink(outside.dir.path(), s.path().join("exported")).unwrap();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported"]].concat()),
        &[
            "exported: error: resolves to",
            "outside the repository root",
            "canaryplan writes only inside the repository",
            "CANARYPLAN_ROOT",
        ],
    );
    outside.untouched();
    // A link to a subdirectory that does not exist yet: not created through the link.
    std::fs::remove_file(s.path().join("exported")).unwrap();
    symlink(outside.dir.path().join("new"), s.path().join("exported")).unwrap();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported/sub"]].concat()),
        &[
            "exported: error: is a symbolic link to",
            "which does not exist",
        ],
    );
    outside.untouched();
    let elsewhere = outside.dir.path().display().to_string();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &[&elsewhere]].concat()),
        &["outside the repository root"],
    );
    outside.untouched();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["../outside"]].concat()),
        &["outside the repository root"],
    );
    assert!(!s.path().join("../outside").exists());
    // A link inside the repository is followed, like a read.
    std::fs::remove_file(s.path().join("exported")).unwrap();
    std::fs::create_dir(s.path().join("real")).unwrap();
    symlink("real", s.path().join("exported")).unwrap();
    s.run(&[&EXPORT[..], &["exported"]].concat()).ok();
    regular_file(&s.path().join("real/rollout-my-service.yaml"));
}

#[test]
fn init_reads_only_the_repository_of_its_base() {
    // 5. No `.git`: `--output` beside the repository must not widen what is read.
    let outside = Outside::new();
    let top = tempfile::tempdir().unwrap();
    let app = top.path().join("app");
    copy_fixture("no-virtualservice", &app);
    std::fs::remove_file(app.join("canaryplan.yaml")).unwrap();
    // A Deployment beside the repository, linked into the base.
    std::fs::write(
        top.path().join("beside.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: read-from-beside}\n",
    )
    .unwrap();
    symlink("../../beside.yaml", app.join("base/beside.yaml")).unwrap();
    std::fs::remove_file(app.join("base/kustomization.yaml")).unwrap();
    let r = bounded(&app, &["init", "--output", "../canaryplan.yaml"]);
    refused(
        &r,
        &[
            "outside the repository root",
            "canaryplan writes only inside the repository",
        ],
    );
    assert!(!r.stderr.contains("read-from-beside"));
    assert!(!top.path().join("canaryplan.yaml").exists());
    // The same through a link planted as the output's directory.
    symlink(outside.dir.path(), app.join("plans")).unwrap();
    refused(
        &bounded(&app, &["init", "--output", "plans/canaryplan.yaml"]),
        &["plans: error: resolves to", "outside the repository root"],
    );
    outside.untouched();
    // Written inside, the read boundary is still the repository: the linked file is refused.
    refused(
        &bounded(&app, &["init"]),
        &[
            "base/beside.yaml: error: resolves to",
            "outside the repository root",
        ],
    );
    assert!(!app.join("canaryplan.yaml").exists());
}

#[test]
fn export_replaces_only_its_own_unedited_files() {
    // 6. A file with a forged header (here a hard link to a file outside), one edited after
    // export, and a regular file given as --output.
    let outside = Outside::new();
    let s = Scratch::fixture("runbook");
    let target = s.path().join("exported/rollout-my-service.yaml");
    s.write(
        "exported/rollout-my-service.yaml",
        "# Exported by canaryplan from canaryplan.yaml for argo-rollouts: a forged header.\nkind: Rollout\n",
    );
    let forged = s.read("exported/rollout-my-service.yaml");
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported"]].concat()),
        &[
            "exported/rollout-my-service.yaml: error: exists and was not exported by canaryplan, or was edited since",
            "`--force` replaces it",
        ],
    );
    assert_eq!(s.read("exported/rollout-my-service.yaml"), forged);

    std::fs::remove_file(&target).unwrap();
    std::fs::write(
        outside.file(),
        format!(
            "# Exported by canaryplan from canaryplan.yaml for argo-rollouts: forged.\n{SECRET}"
        ),
    )
    .unwrap();
    std::fs::hard_link(outside.file(), &target).unwrap();
    let linked = std::fs::read_to_string(outside.file()).unwrap();
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported"]].concat()),
        &["exists and was not exported by canaryplan"],
    );
    // --force replaces the name, never the file it shared with the outside.
    s.run(&[&EXPORT[..], &["exported", "--force"]].concat())
        .ok();
    assert_eq!(std::fs::read_to_string(outside.file()).unwrap(), linked);
    assert_eq!(mode_of(&outside.file()), 0o600);
    regular_file(&target);
    let exported = s.read("exported/rollout-my-service.yaml");
    assert!(exported.contains("kind: Rollout\n"));
    // Its own file, unedited, is replaced; once edited, it is kept.
    s.run(&[&EXPORT[..], &["exported"]].concat()).ok();
    s.write(
        "exported/rollout-my-service.yaml",
        &exported.replace("kind: Rollout\n", "kind: Rollout\n# tuned by hand\n"),
    );
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["exported"]].concat()),
        &["was edited since (its sha256 line does not match)"],
    );
    assert!(
        s.read("exported/rollout-my-service.yaml")
            .contains("# tuned by hand")
    );
    assert!(temporaries(&s.path().join("exported")).is_empty());

    // --output naming a regular file.
    s.write("notes.txt", "mine\n");
    refused(
        &bounded(s.path(), &[&EXPORT[..], &["notes.txt"]].concat()),
        &[
            "notes.txt: error: exists and is not a directory; canaryplan writes into a directory there",
            "hint: name a directory",
        ],
    );
    assert_eq!(s.read("notes.txt"), "mine\n");
}
