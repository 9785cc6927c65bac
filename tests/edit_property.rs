//! The plan editor under random plans and random steps: thousands of plans written every way a
//! person writes YAML (block and flow environments, quoted stages, comments after values with a
//! space or a tab, comment lines, blank lines, CRLF) and a random promote/abort/advance on a
//! random environment. When the edit is accepted: the result parses and checks, only the
//! intended value changed (every other environment's stage and weight, every other line, every
//! comment kept). The same property is the cargo-fuzz target `edit` (fuzz/fuzz_targets/edit.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use canaryplan::edit::Action;
use canaryplan::kinds::canary::edit::edit_text;
use canaryplan::ladder::Stage;

/// xorshift64*: a small, seeded generator (the same plans on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Env {
    name: String,
    stage: Stage,
    weight: Option<u8>,
}

fn comment(rng: &mut Rng, n: usize) -> String {
    if rng.chance(35) {
        let sep = if rng.chance(50) { " " } else { "\t" };
        format!("{sep}# note {n}")
    } else {
        String::new()
    }
}

/// A random plan, its environments, and its steps.
fn plan(rng: &mut Rng) -> (String, Vec<Env>) {
    let steps = *rng.pick(&[
        &[10u8, 25, 50, 100][..],
        &[1, 5, 25, 50, 100],
        &[50, 100],
        &[100],
    ]);
    let mut envs = Vec::new();
    for i in 0..=rng.below(3) {
        let stage = *rng.pick(&Stage::ALL);
        let weight = match stage {
            Stage::Shift => Some(if rng.chance(30) { 0 } else { *rng.pick(steps) }),
            Stage::Cleanup1 | Stage::Cleanup2 | Stage::Cleanup3 | Stage::Done if rng.chance(50) => {
                Some(100)
            }
            _ => None,
        };
        envs.push(Env {
            name: format!("env-{i}"),
            stage,
            weight,
        });
    }
    let mut n = 0;
    let mut c = |rng: &mut Rng| {
        n += 1;
        comment(rng, n)
    };
    let mut t = String::new();
    if rng.chance(30) {
        t.push_str("# a plan written by hand\n");
    }
    t.push_str(
        "apiVersion: canaryplan.io/v1alpha1\nkind: CanaryPlan\nmetadata:\n  name: app\nspec:\n",
    );
    t.push_str(&format!("  base: base{}\n", c(rng)));
    t.push_str("  service: app\n  workload: app\n  stable:\n    version: v1\n    image: registry.example/app@sha256:00\n    labels: {app: app-v1}\n  canary:\n    version: v2\n");
    t.push_str(&format!(
        "  steps: [{}]{}\n",
        steps
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        c(rng)
    ));
    t.push_str("  environments:\n");
    for e in &envs {
        if rng.chance(20) {
            t.push_str("\n    # the next environment\n");
        }
        let stage = match rng.below(3) {
            0 => format!("'{}'", e.stage),
            1 => format!("\"{}\"", e.stage),
            _ => e.stage.to_string(),
        };
        if rng.chance(40) {
            let weight = e
                .weight
                .map(|w| format!(", weight: {w}"))
                .unwrap_or_default();
            t.push_str(&format!(
                "    {}: {{stage: {stage}{weight}}}{}\n",
                e.name,
                c(rng)
            ));
        } else {
            t.push_str(&format!("    {}:{}\n", e.name, c(rng)));
            let weight_first = rng.chance(30);
            let weight = e.weight.map(|w| format!("      weight: {w}{}\n", c(rng)));
            if weight_first && let Some(w) = &weight {
                t.push_str(w);
            }
            t.push_str(&format!("      stage: {stage}{}\n", c(rng)));
            if !weight_first && let Some(w) = &weight {
                t.push_str(w);
            }
        }
    }
    if rng.chance(25) {
        t = t.replace('\n', "\r\n");
    }
    (t, envs)
}

fn checked(text: &str) -> Result<canaryplan::kinds::canary::CheckedPlan, canaryplan::Error> {
    let source =
        canaryplan::yaml::Source::from_text(Path::new("canaryplan.yaml"), text.to_string());
    canaryplan::kinds::canary::check::check(canaryplan::kinds::canary::plan::Plan::parse(source)?)
}

fn state(p: &canaryplan::kinds::canary::CheckedPlan) -> Vec<(String, Stage, Option<u8>)> {
    p.environments
        .iter()
        .map(|e| {
            (
                e.name.value.clone(),
                e.stage.value,
                e.weight.as_ref().map(|w| w.value),
            )
        })
        .collect()
}

fn comments(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.find("# ").map(|i| l[i..].trim_end_matches('\r')))
        .collect()
}

/// Checks the property for one plan text and one action; the message says what broke.
pub fn property(text: &str, env: &str, action: Action) -> Result<bool, String> {
    let Ok(before) = checked(text) else {
        return Ok(false);
    };
    let Ok(edit) = edit_text(&before, env, action.clone()) else {
        return Ok(false); // refused: nothing to check
    };
    let after = match checked(&edit.new_text) {
        Ok(p) => p,
        // The editor's own checks refuse such results (plan_edit re-checks); the text must
        // still be YAML that parses.
        Err(e) => {
            let source = canaryplan::yaml::Source::from_text(
                Path::new("canaryplan.yaml"),
                edit.new_text.clone(),
            );
            return canaryplan::kinds::canary::plan::Plan::parse(source)
                .map(|_| false)
                .map_err(|_| {
                    format!(
                        "the edited plan is not valid YAML any more: {e}\n{}",
                        edit.new_text
                    )
                });
        }
    };
    let (old, new) = (state(&before), state(&after));
    for ((name, s0, w0), (_, s1, w1)) in old.iter().zip(&new) {
        if name != env && (s0, w0) != (s1, w1) {
            return Err(format!(
                "environment {name} changed: {s0:?}/{w0:?} → {s1:?}/{w1:?}"
            ));
        }
        if name == env {
            let ok = match &action {
                Action::PromoteLane { .. } => false,
                Action::Promote { to, .. } => {
                    *s1 == Stage::Shift
                        && Some(to.unwrap_or_else(|| {
                            *before.steps.iter().find(|s| Some(**s) > *w0).unwrap_or(&0)
                        })) == *w1
                }
                Action::Abort => *s1 == Stage::Shift && *w1 == Some(0),
                Action::Advance => {
                    Some(*s1) == s0.next() && (*w1 == *w0 || (*w0).is_none() && *w1 == Some(0))
                }
            };
            if !ok {
                return Err(format!(
                    "{action:?} on {env}: {s0:?}/{w0:?} → {s1:?}/{w1:?}"
                ));
            }
        }
    }
    for c in comments(text) {
        if !edit.new_text.contains(c) {
            return Err(format!("comment {c:?} lost:\n{}", edit.new_text));
        }
    }
    // `abort` writes `aborted: true` (a line of its own in block style), `promote` removes it:
    // set those aside, then only the target's stage/weight lines differ (or one weight line
    // was inserted).
    let strip = |t: &str| -> String {
        t.lines()
            .filter(|l| l.trim() != "aborted: true")
            .map(|l| {
                l.replace(", aborted: true", "")
                    .replace("aborted: true, ", "")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    match &action {
        Action::Abort if !(edit.new_text.contains("aborted: true")) => {
            return Err(format!(
                "abort wrote no `aborted: true`:\n{}",
                edit.new_text
            ));
        }
        Action::Promote { .. } if edit.new_text.contains("aborted: true") => {
            return Err(format!("promote left `aborted: true`:\n{}", edit.new_text));
        }
        _ => {}
    }
    let (text, new_text) = (strip(text), strip(&edit.new_text));
    let (a, b): (Vec<&str>, Vec<&str>) = (text.lines().collect(), new_text.lines().collect());
    if b.len() < a.len() || b.len() > a.len() + 1 {
        return Err(format!("{} lines became {}", a.len(), b.len()));
    }
    let mismatches = |b: &[&str]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    let changed = if b.len() == a.len() {
        mismatches(&b)
    } else {
        // The inserted `weight:` line may be anywhere: the rest must match but the stage line.
        (0..b.len())
            .map(|k| {
                let mut without = b.clone();
                without.remove(k);
                mismatches(&without) + 1
            })
            .min()
            .unwrap_or(usize::MAX)
    };
    if changed > 2 {
        return Err(format!("{changed} lines changed:\n{text}\n---\n{new_text}"));
    }
    Ok(true)
}

#[test]
fn random_edits_change_only_the_intended_value() {
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let mut accepted = 0;
    for i in 0..3000 {
        let (text, envs) = plan(&mut rng);
        let env = &rng.pick(&envs).name.clone();
        let action = match rng.below(4) {
            0 => Action::Promote {
                to: None,
                approve: false,
                force: false,
            },
            1 => Action::Promote {
                to: Some(rng.below(101) as u8),
                approve: false,
                force: false,
            },
            2 => Action::Abort,
            _ => Action::Advance,
        };
        match property(&text, env, action) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(e) => panic!("case {i}: {e}\nplan:\n{text}"),
        }
    }
    assert!(accepted > 800, "only {accepted} edits were accepted");
}
