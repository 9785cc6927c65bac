//! Overlays are replaced all at once: a render killed at any point (SIGKILL) leaves the previous
//! overlay intact, and renders of the same plan running at once end with one consistent overlay.
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
