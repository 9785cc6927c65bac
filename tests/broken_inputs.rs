//! A corpus of broken plans and bases (`tests/broken/<case>/`, each over the shared
//! `tests/broken/_base/`): every one exits 2 with a located message and a hint (snapshotted),
//! prints nothing on stdout, and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn every_broken_input_is_refused_with_a_located_error_and_writes_nothing() {
    let corpus = root().join("tests/broken");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("_base"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "the corpus has {} cases", cases.len());
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        // Each case sits in its own directory inside a parent that must stay empty too
        // (a path-like environment name must not escape the output directory).
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("app");
        copy_tree(&corpus.join("_base"), &dir.join("base"));
        copy_tree(&case, &dir);
        let before = files(outer.path());
        for args in [&["render", "--from-scratch"][..], &["validate"][..]] {
            let r = run_in(&dir, args, &[]);
            assert_eq!(r.code, 2, "{name} {args:?}: expected exit 2\n{}", r.stderr);
            assert!(r.stdout.is_empty(), "{name}: stdout must stay empty");
            assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
            assert!(
                r.stderr.contains("error:") && r.stderr.contains("hint:"),
                "{name}: every error says what and how to fix it:\n{}",
                r.stderr
            );
            assert!(
                r.stderr
                    .lines()
                    .next()
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap()
                    .ends_with(".yaml"),
                "{name}: names the file:\n{}",
                r.stderr
            );
            assert_eq!(
                files(outer.path()),
                before,
                "{name}: nothing may be written"
            );
            if args == ["render"] {
                insta::assert_snapshot!(name.clone(), r.stderr);
            }
        }
    }
}
