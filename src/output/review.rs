//! What `diff` shows a reviewer: each overlay's unified diff (coloured on a terminal), GitHub
//! workflow annotations on the stale files, and a summary table for `$GITHUB_STEP_SUMMARY`.

use crate::output::diff::{self, ChangeKind, FileChange};
use crate::render::EnvironmentRender;

/// Every environment's changes on disk, in the order rendered.
pub struct Review<'a> {
    pub environments: Vec<(&'a EnvironmentRender, Vec<FileChange>)>,
}

impl<'a> Review<'a> {
    pub fn of(renders: &'a [EnvironmentRender]) -> crate::Result<Review<'a>> {
        let mut environments = Vec::new();
        for r in renders {
            environments.push((r, diff::changes(r)?));
        }
        Ok(Review { environments })
    }

    /// How many overlays differ from what `render` writes.
    pub fn stale(&self) -> usize {
        self.environments
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .count()
    }

    /// The unified diffs, coloured or not, each followed (`annotate`) by a GitHub annotation.
    pub fn diffs(&self, color: bool, annotate: bool) -> String {
        let mut out = String::new();
        for (r, changes) in &self.environments {
            for c in changes {
                let text = c.unified();
                out.push_str(&if color { paint(&text) } else { text });
                if annotate {
                    out.push_str(&file_annotation(r, c));
                    out.push('\n');
                }
            }
        }
        out
    }

    /// What each environment's render moves against what the cluster has: the record its
    /// overlay on disk keeps, or the base alone where no overlay is on disk yet. `against`
    /// says which; `None` for an overlay written before records existed.
    pub fn traffic(&self) -> Vec<Traffic<'a>> {
        self.environments
            .iter()
            .map(|(r, _)| {
                let (before, against) = match (&r.traffic_before, &r.on_disk) {
                    (Some(m), _) => (Some(m), "the overlay on disk"),
                    (None, None) => (r.base_model.as_ref(), "the base (no overlay on disk)"),
                    (None, Some(_)) => (None, "the overlay on disk, which has no traffic record"),
                };
                let delta = match (before, &r.model) {
                    (Some(b), Some(a)) => Some(crate::invariants::delta(b, a)),
                    _ => None,
                };
                Traffic {
                    render: r,
                    delta,
                    against,
                }
            })
            .collect()
    }

    /// The traffic change in words, per plan and environment: what a reviewer reads first.
    pub fn traffic_text(&self) -> String {
        let mut out = String::new();
        let mut last_plan = None;
        for t in self.traffic() {
            if last_plan != Some(&t.render.plan) {
                out.push_str(&format!(
                    "traffic change, {}:\n",
                    diff::shown(&t.render.plan)
                ));
                last_plan = Some(&t.render.plan);
            }
            match &t.delta {
                Some(d) => {
                    for line in d.to_text(&t.render.environment).lines() {
                        out.push_str(&format!("  {line}\n"));
                    }
                }
                None => out.push_str(&format!(
                    "  {}: not computed (compared with {}; render it once to record it)\n",
                    t.render.environment, t.against
                )),
            }
        }
        out
    }

    /// The traffic change as Markdown (a pull-request comment, `$GITHUB_STEP_SUMMARY`): one
    /// table per plan.
    pub fn traffic_markdown(&self) -> String {
        let mut out = String::from("## canaryplan: traffic change\n");
        let traffic = self.traffic();
        let mut plans: Vec<&std::path::PathBuf> = traffic.iter().map(|t| &t.render.plan).collect();
        plans.dedup();
        for plan in plans {
            out.push_str(&format!("\n### {}\n\n", diff::shown(plan)));
            let of_plan: Vec<&Traffic<'_>> =
                traffic.iter().filter(|t| &t.render.plan == plan).collect();
            let computed: Vec<(&str, &crate::invariants::Delta)> = of_plan
                .iter()
                .filter_map(|t| Some((t.render.environment.as_str(), t.delta.as_ref()?)))
                .collect();
            out.push_str(&crate::invariants::delta::to_markdown(&computed));
            for t in of_plan.iter().filter(|t| t.delta.is_none()) {
                out.push_str(&format!(
                    "\n{}: not computed (compared with {})\n",
                    t.render.environment, t.against
                ));
            }
        }
        out
    }

    /// `diff --format markdown`: the traffic change, then each overlay's diff in a fenced
    /// block.
    pub fn markdown(&self) -> String {
        let mut out = self.traffic_markdown();
        let diffs = self.diffs(false, false);
        if diffs.is_empty() {
            out.push_str("\nEvery overlay is up to date.\n");
        } else {
            out.push_str(&format!(
                "\n<details><summary>overlay diff</summary>\n\n```diff\n{diffs}```\n\n</details>\n"
            ));
        }
        out
    }

    /// The Markdown table for `$GITHUB_STEP_SUMMARY`.
    pub fn step_summary(&self) -> String {
        let mut s = self.traffic_markdown();
        s.push_str("\n## canaryplan: overlays\n");
        let mut last_plan = None;
        for (r, changes) in &self.environments {
            if last_plan != Some(&r.plan) {
                s.push_str(&format!(
                    "\n### {}\n\n| environment | stage | traffic | overlay |\n|---|---|---|---|\n",
                    diff::shown(&r.plan)
                ));
                last_plan = Some(&r.plan);
            }
            let files = if changes.is_empty() {
                "up to date".to_string()
            } else {
                let names: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "`{}`",
                            c.path
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                format!("{} file(s) changed: {}", changes.len(), names.join(", "))
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.environment, r.stage, r.traffic, files
            ));
        }
        s
    }
}

/// One environment's traffic change.
pub struct Traffic<'a> {
    pub render: &'a EnvironmentRender,
    pub delta: Option<crate::invariants::Delta>,
    /// What the render is compared with, in words.
    pub against: &'static str,
}

fn file_annotation(r: &EnvironmentRender, c: &FileChange) -> String {
    let kind = match c.kind {
        ChangeKind::Added => "missing",
        ChangeKind::Modified => "stale",
        ChangeKind::Removed => "no longer rendered",
    };
    let line = if c.kind == ChangeKind::Removed {
        1
    } else {
        c.first_changed_line()
    };
    let msg = format!(
        "{} is {kind} for environment {} (stage {}): run `canaryplan render` and commit the result",
        diff::shown(&c.path),
        r.environment,
        r.stage
    );
    annotation(Some((diff::shown(&c.path), line as u64, 0)), &msg)
}

/// A unified diff with ANSI colours.
pub fn paint(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.split_inclusive('\n') {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let body = line.trim_end_matches('\n');
            out.push_str(&format!("\x1b[{code}m{body}\x1b[0m"));
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// A GitHub Actions `::error` workflow command.
pub fn annotation(at: Option<(String, u64, u64)>, message: &str) -> String {
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut props = Vec::new();
    if let Some((file, line, col)) = at {
        props.push(format!("file={}", prop(&file)));
        if line > 0 {
            props.push(format!("line={line}"));
        }
        if col > 0 {
            props.push(format!("col={col}"));
        }
    }
    props.push("title=canaryplan".to_string());
    format!("::error {}::{}", props.join(","), data(message))
}
