//! The fuzz target's corpus (`fuzz/corpus/render`), replayed on the stable toolchain: every
//! input either renders or comes back as an error, never a panic. The fuzzer itself runs with
//! `cargo +nightly fuzz run render` (see BENCHMARKS.md for the last run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const SEPARATOR: &str = "\n#--base--\n";

#[test]
fn every_corpus_input_renders_or_errors_without_panicking() {
    let base_dir = fixture_dir("runbook").join("base");
    let runbook_base = [
        "deployment.yaml",
        "service.yaml",
        "virtualservice.yaml",
        "authorizationpolicy.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(base_dir.join(f)).unwrap())
    .collect::<Vec<_>>()
    .join("---\n");
    let templates = canaryplan::Templates::builtin();
    let mut inputs: Vec<_> = std::fs::read_dir(root().join("fuzz/corpus/render"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5);
    let (mut rendered, mut refused) = (0, 0);
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let (plan, base) = text
            .split_once(SEPARATOR)
            .unwrap_or((text, runbook_base.as_str()));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            canaryplan::render_text(plan, base, &templates).map_err(|e| e.to_string())
        }));
        let seed = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"));
        match result {
            Ok(Ok(_)) => rendered += 1,
            // A seed is a fixture's plan and base: it renders.
            Ok(Err(message)) if seed => panic!("{} is refused: {message}", path.display()),
            Ok(Err(message)) => {
                assert!(!message.is_empty(), "{}", path.display());
                refused += 1;
            }
            Err(_) => panic!("{} panicked", path.display()),
        }
    }
    assert!(rendered >= 2, "the seeds render ({rendered} did)");
    assert!(refused > 0);
}

/// The `edit` target's corpus (`fuzz/corpus/edit`): the first byte picks the action, the
/// second the environment, the rest is the plan; an accepted edit leaves YAML that parses.
#[test]
fn every_edit_corpus_input_edits_or_refuses_without_panicking() {
    use canaryplan::edit::Action;
    use canaryplan::kinds::canary::edit::edit_text;
    use std::path::Path;
    let parse = |text: &str| {
        let source =
            canaryplan::yaml::Source::from_text(Path::new("canaryplan.yaml"), text.to_string());
        canaryplan::kinds::canary::plan::Plan::parse(source)
    };
    let mut edited = 0;
    for entry in std::fs::read_dir(root().join("fuzz/corpus/edit")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let [a, e, rest @ ..] = bytes.as_slice() else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            continue;
        };
        let Ok(plan) = parse(text).and_then(canaryplan::kinds::canary::check::check) else {
            continue;
        };
        let action = match a % 4 {
            0 => Action::Promote {
                to: None,
                approve: false,
                force: false,
            },
            1 => Action::Promote {
                to: Some(a / 2),
                approve: false,
                force: false,
            },
            2 => Action::Abort,
            _ => Action::Advance,
        };
        let env = &plan.environments[usize::from(*e) % plan.environments.len()];
        if let Ok(edit) = edit_text(&plan, &env.name.value, action) {
            assert!(parse(&edit.new_text).is_ok(), "{}", edit.new_text);
            edited += 1;
        }
    }
    assert!(edited >= 5, "only {edited} seeds edited");
}
