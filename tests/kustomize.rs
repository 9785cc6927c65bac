//! `kubectl kustomize` builds every rendered overlay of every fixture at every stage, and what
//! it prints is, object for object and field for field, what `render --stdout` prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

fn kustomize(dir: &std::path::Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is required for this test (it is how Argo CD builds overlays): {e}")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kustomize_builds_what_render_stdout_prints() {
    if !have_kubectl() {
        return;
    }
    let mut checked = 0;
    for (fixture, stage, scratch) in every_stage() {
        for env in environments(&scratch) {
            let overlay = scratch
                .overlays()
                .into_iter()
                .find(|d| d.ends_with(&env))
                .unwrap();
            let built = parse_stream(&kustomize(&overlay));
            let streamed = parse_stream(
                &scratch
                    .run(&["render", "--stdout", "--env", &env])
                    .ok()
                    .stdout,
            );
            let ids = |v: &[serde_json::Value]| {
                v.iter()
                    .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                ids(&built),
                ids(&streamed),
                "{fixture} {stage} {env}: objects or their order differ"
            );
            for (b, s) in built.iter().zip(&streamed) {
                assert_eq!(
                    b, s,
                    "{fixture} {stage} {env}: {} differs",
                    b["metadata"]["name"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 28, "only {checked} overlays were checked");
}
