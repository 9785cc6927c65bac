//! The README and `docs/` as a reader meets them: every relative link and anchor leads somewhere,
//! the README stays a few screens long, and its "Review what a commit moves" transcript is what
//! canaryplan prints on the bundled runbook. (The reference examples of the pages are asserted
//! where their feature is tested: docs/gate.md in tests/gate.rs, docs/gateway-api.md in
//! tests/gateway_api.rs, docs/lanes.md in tests/lanes.rs, docs/mesh-upgrades.md in
//! tests/mesh_upgrades.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds the reference pages");
    pages.extend(docs);
    pages
}

/// The text outside fenced code blocks, with inline code spans blanked, line by line (1-based).
fn prose(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut kept = String::new();
        for (j, piece) in line.split('`').enumerate() {
            if j % 2 == 0 {
                kept.push_str(piece);
            }
        }
        out.push((i + 1, kept));
    }
    out
}

/// The targets of the inline links `[text](target)` of a page, with their line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            out.push((n, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_points_at_a_file_that_exists() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let shown = page.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{shown}:{line}: {target}: no such file"));
                continue;
            }
            if !anchor.is_empty() {
                let Ok(target_text) = std::fs::read_to_string(&path) else {
                    broken.push(format!(
                        "{shown}:{line}: {target}: an anchor into a directory"
                    ));
                    continue;
                };
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!("{shown}:{line}: {target}: no heading `#{anchor}`"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 20, "only {checked} relative links found");
}

#[test]
fn the_readme_links_every_docs_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked: Vec<String> = links(&readme).into_iter().map(|(_, t)| t).collect();
    for page in pages().iter().skip(1) {
        let name = format!("docs/{}", page.file_name().unwrap().to_string_lossy());
        assert!(
            linked.iter().any(|t| t == &name),
            "README.md does not link {name}"
        );
    }
}

#[test]
fn the_readme_stays_short() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines: reference material goes to a page of docs/"
    );
    for section in [
        "## Try it",
        "## Review what a commit moves",
        "## Commands",
        "## Documentation",
    ] {
        assert!(
            readme.lines().any(|l| l == section),
            "README.md lost {section}"
        );
    }
}

/// The console blocks of a README section: each `$ command` with the lines shown after it.
fn transcript(section: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for block in section.split("```console\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        for line in block.lines() {
            if let Some(command) = line.strip_prefix("$ ") {
                out.push((command.to_string(), Vec::new()));
            } else {
                out.last_mut().unwrap().1.push(line.to_string());
            }
        }
    }
    out
}

fn git_init(dir: &Path) {
    let out = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_traffic_change_is_what_diff_prints_after_a_promote() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("## Review what a commit moves").unwrap();
    let end = readme[start..].find("\n## Commands").unwrap() + start;
    let steps = transcript(&readme[start..end]);
    // The set-up the README shows: the runbook as committed (its overlays included), in a
    // repository of its own.
    let (setup, _) = &steps[0];
    assert!(
        setup.contains("cp -r fixtures/runbook") && setup.contains("git init"),
        "{setup}"
    );
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("runbook");
    copy_tree(&fixture_dir("runbook"), &runbook);
    git_init(&runbook);
    let mut ran = Vec::new();
    for (command, shown) in &steps[1..] {
        let command = command.split("  #").next().unwrap().trim();
        let args: Vec<&str> = command
            .strip_prefix("canaryplan ")
            .unwrap_or_else(|| panic!("not a canaryplan command: {command}"))
            .split_whitespace()
            .collect();
        let r = run_in(&runbook, &args, &[]);
        assert!(r.code == 0 || r.code == 1, "{command}: {r:?}");
        // What a terminal shows first: standard output, or standard error when nothing is
        // printed there. `...` ends an excerpt.
        let out = if r.stdout.is_empty() {
            &r.stderr
        } else {
            &r.stdout
        };
        let excerpt = shown.iter().position(|l| l == "...");
        let expected: String = shown[..excerpt.unwrap_or(shown.len())]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        if excerpt.is_some() {
            assert!(
                out.starts_with(&expected),
                "{command}: the README shows\n{expected}\nit prints\n{out}"
            );
        } else {
            assert_eq!(out, &expected, "{command}");
        }
        ran.push((command.to_string(), r));
    }
    let diff = ran
        .iter()
        .find(|(c, _)| c == "canaryplan diff --env production")
        .expect("the README shows `canaryplan diff --env production`");
    assert_eq!(diff.1.code, 1, "the overlay is not re-rendered yet");
    assert!(
        diff.1
            .stdout
            .starts_with("traffic change, canaryplan.yaml:\n  production: "),
        "{}",
        diff.1.stdout
    );
    assert!(
        ran.iter().any(|(c, r)| c.ends_with("--format markdown")
            && r.stdout.starts_with("## canaryplan: traffic change\n")),
        "the README shows the Markdown form"
    );
}
