//! The plan editor from arbitrary input: the first byte picks the action, the second the
//! environment, the rest is the plan. An accepted edit must leave YAML that parses, every other
//! environment's stage and weight as they were, and every comment of the original.
//! Any panic is a bug. (tests/edit_property.rs checks the same on generated plans, on stable.)
#![no_main]

use std::path::Path;

use canaryplan::edit::Action;
use canaryplan::kinds::canary::edit::edit_text;
use libfuzzer_sys::fuzz_target;

fn checked(text: &str) -> Option<canaryplan::kinds::canary::CheckedPlan> {
    let source =
        canaryplan::yaml::Source::from_text(Path::new("canaryplan.yaml"), text.to_string());
    canaryplan::kinds::canary::check::check(canaryplan::kinds::canary::plan::Plan::parse(source).ok()?).ok()
}

fuzz_target!(|data: &[u8]| {
    let [a, e, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Some(plan) = checked(text) else { return };
    let action = match a % 4 {
        0 => Action::Promote { to: None, approve: false, force: false },
        1 => Action::Promote { to: Some(a / 2), approve: false, force: false },
        2 => Action::Abort,
        _ => Action::Advance,
    };
    let Some(env) = plan.environments.get(usize::from(*e) % plan.environments.len().max(1)) else {
        return;
    };
    let env = env.name.value.clone();
    let Ok(edit) = edit_text(&plan, &env, action) else { return };
    let source = canaryplan::yaml::Source::from_text(Path::new("canaryplan.yaml"), edit.new_text.clone());
    assert!(canaryplan::kinds::canary::plan::Plan::parse(source).is_ok(), "the edit broke the YAML:\n{}", edit.new_text);
    for line in text.lines() {
        if let Some(i) = line.find(" #") {
            assert!(edit.new_text.contains(line[i..].trim_end_matches('\r')), "a comment was lost");
        }
    }
    if let Some(after) = checked(&edit.new_text) {
        for (x, y) in plan.environments.iter().zip(&after.environments) {
            if x.name.value != env {
                assert_eq!((x.stage.value, x.weight.as_ref().map(|w| w.value)), (y.stage.value, y.weight.as_ref().map(|w| w.value)));
            }
        }
    }
});
