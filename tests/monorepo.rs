//! A monorepo: many plans rendered by one `render` call. The checks across plans (one overlay
//! directory per plan, no patched selector reaching another app's pods) look at what collides,
//! by namespace, and let apart what is apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;

/// `apps/<name>`: the no-virtualservice fixture renamed to `name`, its base in `namespace`
/// (none: the base sets no namespace). Every app patches its Service selector to
/// `canary: enabled` and carries `team: payments` on its pods: label values apps share.
fn app(mono: &Path, name: &str, namespace: Option<&str>) {
    let dir = mono.join("apps").join(name);
    copy_fixture("no-virtualservice", &dir);
    for f in [
        "canaryplan.yaml",
        "base/ledger.yaml",
        "base/kustomization.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        let text = text.replace("ledger", name).replace(
            "labels: {app: ledger}",
            "labels: {app: ledger, team: payments}",
        );
        std::fs::write(dir.join(f), text).unwrap();
    }
    std::fs::rename(
        dir.join("base/ledger.yaml"),
        dir.join(format!("base/{name}.yaml")),
    )
    .unwrap();
    if let Some(ns) = namespace {
        let k = dir.join("base/kustomization.yaml");
        let text = std::fs::read_to_string(&k).unwrap();
        std::fs::write(&k, format!("namespace: {ns}\n{text}")).unwrap();
    }
}

#[test]
fn apps_in_their_own_namespaces_may_share_selector_labels() {
    let mono = tempfile::tempdir().unwrap();
    for name in ["billing", "ledger", "payouts"] {
        app(mono.path(), name, Some(name));
    }
    run_in(mono.path(), &["render", "--all", "--from-scratch"], &[]).ok();
    for name in ["billing", "ledger", "payouts"] {
        assert!(
            mono.path()
                .join(format!("apps/{name}/rendered/dev/kustomization.yaml"))
                .is_file()
        );
    }
}

#[test]
fn apps_in_one_namespace_with_overlapping_selectors_are_refused() {
    let mono = tempfile::tempdir().unwrap();
    app(mono.path(), "billing", Some("payments"));
    app(mono.path(), "ledger", Some("payments"));
    // Its own namespace: apart from the other two.
    app(mono.path(), "payouts", Some("payouts"));
    let r = run_in(mono.path(), &["render", "--all", "--from-scratch"], &[]);
    r.fails();
    assert!(
        r.stderr.contains("apps/billing/canaryplan.yaml:20:10: error: in environment `dev` the patched selector of Service billing (canary=enabled) also selects the pods of Deployment ledger of apps/ledger/canaryplan.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("apps/ledger/canaryplan.yaml:20:10: error: in environment `dev` the patched selector of Service ledger (canary=enabled) also selects the pods of Deployment billing of apps/billing/canaryplan.yaml"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("payouts"), "{}", r.stderr);
    assert!(!mono.path().join("apps/payouts/rendered").exists());
}

#[test]
fn a_base_without_a_namespace_may_land_in_any_and_is_compared_with_all() {
    let mono = tempfile::tempdir().unwrap();
    app(mono.path(), "billing", None);
    app(mono.path(), "ledger", Some("ledger"));
    let r = run_in(mono.path(), &["render", "--all", "--from-scratch"], &[]);
    r.fails();
    // Both ways: billing's selector reaches ledger's namespace, and ledger's reaches billing's
    // pods, which may be applied to it.
    assert!(
        r.stderr.contains("the patched selector of Service billing (canary=enabled) also selects the pods of Deployment ledger of apps/ledger/canaryplan.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the patched selector of Service ledger (canary=enabled) also selects the pods of Deployment billing of apps/billing/canaryplan.yaml"),
        "{}",
        r.stderr
    );
}

#[test]
fn plans_sharing_an_overlay_directory_are_each_reported_once() {
    let mono = tempfile::tempdir().unwrap();
    for name in ["billing", "ledger", "payouts"] {
        app(mono.path(), name, Some(name));
        // All three write to apps/billing/rendered, spelled from each plan's folder.
        let plan = mono.path().join(format!("apps/{name}/canaryplan.yaml"));
        let text = std::fs::read_to_string(&plan).unwrap();
        std::fs::write(
            &plan,
            text.replace("output: rendered", "output: ../billing/rendered"),
        )
        .unwrap();
    }
    // The repository is the monorepo (each plan's folder would be its own root otherwise).
    std::fs::create_dir(mono.path().join(".git")).unwrap();
    let r = run_in(mono.path(), &["render", "--all", "--from-scratch"], &[]);
    r.fails();
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("write their overlays to the same directory"))
        .collect();
    assert_eq!(
        lines,
        [
            "apps/ledger/canaryplan.yaml:26:14: error: environment `dev` of this plan and environment `dev` of apps/billing/canaryplan.yaml write their overlays to the same directory apps/ledger/../billing/rendered/dev",
            "apps/payouts/canaryplan.yaml:26:14: error: environment `dev` of this plan and environment `dev` of apps/billing/canaryplan.yaml write their overlays to the same directory apps/payouts/../billing/rendered/dev",
        ],
        "{}",
        r.stderr
    );
    assert!(!mono.path().join("apps/billing/rendered").exists());
}
