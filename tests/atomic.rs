//! Writes are all or nothing: a render killed at any point (SIGKILL) leaves the previous
//! overlay intact, renders of the same plan running at once end with one consistent overlay,
//! a killed `export --output` or `init` leaves each file old or new (or absent), and on a full
//! disk every command that writes fails with exit 2 and leaves the repository as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The overlays' files (hidden staging directories left out), as the next reader sees them.
fn overlays(root: &Path) -> BTreeMap<String, String> {
    ["staging", "production"]
        .into_iter()
        .flat_map(|env| overlay(root, env))
        .collect()
}

fn overlay(root: &Path, env: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root.join("gap").join(env)).unwrap() {
        let p = e.unwrap().path();
        out.insert(
            format!("{env}/{}", p.file_name().unwrap().to_string_lossy()),
            std::fs::read_to_string(&p).unwrap(),
        );
    }
    out
}

fn hidden(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("gap"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_render_killed_at_any_point_leaves_the_previous_overlay_intact() {
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    let at_5 = overlays(s.path());
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    s.run(&["render", "--from-scratch"]).ok();
    let at_25 = overlays(s.path());
    assert_ne!(at_5, at_25);
    let mut killed_midway = 0;
    for i in 0..150u64 {
        let (from, to) = if i % 2 == 0 {
            ("weight: 25\n", "weight: 5\n")
        } else {
            ("weight: 5\n", "weight: 25\n")
        };
        s.edit_plan(|t| t.replace(from, to));
        let mut child = Command::new(bin())
            .args(["render", "--from-scratch"])
            .current_dir(s.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the whole run (a render takes a few milliseconds).
        std::thread::sleep(Duration::from_micros((i * 7919) % 12_000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        killed_midway += usize::from(!status.success());
        let now = overlays(s.path());
        assert!(
            now == at_5 || now == at_25,
            "after kill {i}, the overlay is a mix of two renders"
        );
        // The next, uninterrupted render always completes.
        if i % 10 == 9 {
            s.run(&["render", "--from-scratch"]).ok();
        }
    }
    assert!(
        killed_midway > 10,
        "only {killed_midway} renders were killed before they finished"
    );
    // Staging directories of killed renders are cleaned up by the next render.
    s.edit_plan(|t| t.replace("weight: 25\n", "weight: 5\n"));
    s.run(&["render", "--from-scratch"]).ok();
    assert_eq!(overlays(s.path()), at_5);
    assert_eq!(hidden(s.path()), Vec::<String>::new());
}

#[test]
fn renders_at_once_end_with_a_consistent_overlay() {
    // The same plan, eight times at once.
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    let expected = overlays(s.path());
    std::fs::remove_dir_all(s.path().join("gap")).unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(bin())
                .args(["render", "--from-scratch"])
                .current_dir(s.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(overlays(s.path()), expected);
    assert_eq!(hidden(s.path()), Vec::<String>::new());
}

#[test]
fn racing_renders_of_two_versions_leave_each_overlay_whole() {
    let s = Scratch::fixture("runbook");
    let other = s
        .read("canaryplan.yaml")
        .replace("weight: 5\n", "weight: 25\n");
    s.write("other.yaml", &other);
    s.run(&["render", "--from-scratch", "other.yaml"]).ok();
    let b = overlays(s.path());
    s.run(&["render", "--from-scratch"]).ok();
    let a = overlays(s.path());
    for round in 0..5 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                let mut cmd = Command::new(bin());
                cmd.args(["render", "--from-scratch"])
                    .current_dir(s.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                if i % 2 == 1 {
                    cmd.arg("other.yaml");
                }
                cmd.spawn().unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Each environment's overlay is entirely one render's.
        for env in ["staging", "production"] {
            let now = overlay(s.path(), env);
            let whole = |all: &BTreeMap<String, String>| {
                all.iter()
                    .filter(|(k, _)| k.starts_with(env))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            assert!(
                now == whole(&a) || now == whole(&b),
                "round {round}: the {env} overlay mixes two renders"
            );
        }
        assert_eq!(
            hidden(s.path()),
            Vec::<String>::new(),
            "round {round}: no staging directory is left behind"
        );
    }
}

/// canaryplan's temporary files and staging directories in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".canaryplan-"))
        .collect()
}

/// Runs canaryplan in `dir` and kills it (SIGKILL) after `micros`; true when it was killed
/// before it finished.
fn killed_after(dir: &Path, args: &[&str], micros: u64) -> bool {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_micros(micros));
    child.kill().unwrap();
    !child.wait().unwrap().success()
}

const EXPORT: [&str; 6] = [
    "export",
    "argo-rollouts",
    "--env",
    "production",
    "--output",
    "exported",
];

#[test]
fn an_export_killed_at_any_point_leaves_its_file_old_or_new() {
    let s = Scratch::fixture("runbook");
    let file = "exported/rollout-my-service.yaml";
    let (a_steps, b_steps) = ("steps: [1, 5, 25, 50, 100]", "steps: [1, 5, 25, 75, 100]");
    s.run(&EXPORT).ok();
    let a = s.read(file);
    s.edit_plan(|t| t.replace(a_steps, b_steps));
    s.run(&EXPORT).ok();
    let b = s.read(file);
    assert_ne!(a, b);
    let mut killed_midway = 0;
    for i in 0..120u64 {
        let (from, to) = if i % 2 == 0 {
            (b_steps, a_steps)
        } else {
            (a_steps, b_steps)
        };
        s.edit_plan(|t| t.replace(from, to));
        killed_midway += usize::from(killed_after(s.path(), &EXPORT, (i * 7919) % 9_000));
        let now = s.read(file);
        assert!(
            now == a || now == b,
            "after kill {i}, the file is half-written:\n{now}"
        );
        // The next export completes: what a killed one left is its own, swept, not refused.
        if i % 10 == 9 {
            s.run(&EXPORT).ok();
        }
    }
    assert!(
        killed_midway > 10,
        "only {killed_midway} exports were killed before they finished"
    );
    s.run(&EXPORT).ok();
    assert_eq!(
        temporaries(&s.path().join("exported")),
        Vec::<String>::new()
    );
}

#[test]
fn an_init_killed_at_any_point_leaves_no_plan_or_a_whole_one() {
    let s = Scratch::fixture("no-virtualservice");
    std::fs::remove_file(s.plan()).unwrap();
    s.run(&["init"]).ok();
    let whole = s.read("canaryplan.yaml");
    let mut killed_midway = 0;
    for i in 0..120u64 {
        let _ = std::fs::remove_file(s.plan());
        killed_midway += usize::from(killed_after(s.path(), &["init"], (i * 7919) % 9_000));
        if s.plan().exists() {
            assert_eq!(s.read("canaryplan.yaml"), whole, "after kill {i}");
        }
        if i % 10 == 9 {
            let _ = std::fs::remove_file(s.plan());
            s.run(&["init"]).ok();
        }
    }
    assert!(
        killed_midway > 10,
        "only {killed_midway} inits were killed before they finished"
    );
    std::fs::remove_file(s.plan()).unwrap();
    s.run(&["init"]).ok();
    assert_eq!(s.read("canaryplan.yaml"), whole);
    assert_eq!(temporaries(s.path()), Vec::<String>::new());
}

/// Every file below `dir` (hidden ones too) and its bytes.
fn files_below(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(top: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.strip_prefix(top).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(format!("{name}/"), Vec::new());
                walk(top, &p, out);
            } else {
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn on_a_full_disk_every_write_fails_whole() {
    // The repository on a tmpfs of its own, filled up: in a user and mount namespace
    // (`unshare -rm`), so no privilege is needed.
    let works = Command::new("unshare")
        .args(["-rm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !available(
        "unshare with user namespaces",
        works,
        "The disk-full test mounts a small tmpfs in a namespace of its own (util-linux `unshare -rm`)",
    ) {
        return;
    }
    // The overlay at weight 5, the plan already at 25 (so `render` writes), an export, and a
    // folder for `init`.
    let s = Scratch::fixture("runbook");
    s.run(&["render", "--from-scratch"]).ok();
    s.run(&EXPORT).ok();
    s.edit_plan(|t| t.replace("weight: 5\n", "weight: 25\n"));
    copy_tree(&s.path().join("base"), &s.path().join("fresh/base"));
    let before = files_below(s.path());
    let work = tempfile::tempdir().unwrap();
    let (full, after) = (work.path().join("full"), work.path().join("after"));
    std::fs::create_dir(&full).unwrap();
    std::fs::create_dir(&after).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size=1m tmpfs "$FULL"
        cp -a "$SRC/." "$FULL/"
        cd "$FULL"
        head -c 4000000 /dev/zero > .filler 2>/dev/null || true
        run() {
            name=$1; shift
            set +e
            "$BIN" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
            echo $? > "$OUT/$name.code"
            set -e
        }
        run render render
        run promote promote --env production --render
        run export export argo-rollouts --env production --output exported
        (cd fresh && run init init)
        rm .filler
        cp -a "$FULL/." "$OUT/after/"
    "#;
    let status = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("FULL", &full)
        .env("SRC", s.path())
        .env("OUT", work.path())
        .env("BIN", bin())
        .status()
        .unwrap();
    assert!(status.success());
    for (name, path) in [
        ("render", "gap/production/"),
        ("promote", "canaryplan.yaml"),
        ("export", "exported/rollout-my-service.yaml"),
        ("init", "canaryplan.yaml"),
    ] {
        let read =
            |ext: &str| std::fs::read_to_string(work.path().join(format!("{name}.{ext}"))).unwrap();
        let err = read("err");
        assert_eq!(read("code").trim(), "2", "{name}: {err}");
        assert!(
            err.lines().any(|l| l.starts_with(path)
                && l.contains("error: cannot write: No space left on device")),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Nothing changed, nothing half-written, no temporary file or staging directory left.
    assert_eq!(files_below(&after), before);
}
