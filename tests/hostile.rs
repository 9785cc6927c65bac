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
