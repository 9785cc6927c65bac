//! What `render` would change on disk, per overlay file: added, changed or removed, with a
//! unified diff. Used by `diff` (CI render-and-diff) and `status`.

use std::path::{Path, PathBuf};

use similar::TextDiff;

use crate::EnvironmentRender;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Rendered, not on disk.
    Added,
    /// On disk and rendered, with other text.
    Modified,
    /// On disk, no longer rendered.
    Removed,
}

#[derive(Debug, Clone)]
pub struct FileChange {
    /// The file, as `<output>/<environment>/<file>`.
    pub path: PathBuf,
    pub kind: ChangeKind,
    pub old: String,
    pub new: String,
}

impl FileChange {
    /// A unified diff with `---`/`+++` headers (`/dev/null` for a missing side).
    pub fn unified(&self) -> String {
        let shown = self.path.display().to_string();
        let (a, b) = match self.kind {
            ChangeKind::Added => ("/dev/null".to_string(), format!("b/{shown}")),
            ChangeKind::Removed => (format!("a/{shown}"), "/dev/null".to_string()),
            ChangeKind::Modified => (format!("a/{shown}"), format!("b/{shown}")),
        };
        TextDiff::from_lines(&self.old, &self.new)
            .unified_diff()
            .context_radius(3)
            .header(&a, &b)
            .to_string()
    }

    /// The first line of the new text that differs, for annotations (1-based).
    pub fn first_changed_line(&self) -> usize {
        let same = self
            .old
            .lines()
            .zip(self.new.lines())
            .take_while(|(a, b)| a == b)
            .count();
        same + 1
    }
}

/// The changes `render` would make to the overlay of `r`, in file-name order.
pub fn changes(r: &EnvironmentRender) -> Result<Vec<FileChange>> {
    let on_disk = &r.existing;
    let path = |name: &str| r.dir.join(name);
    let mut out = Vec::new();
    for f in &r.files {
        match on_disk.iter().find(|d| d.name == f.name) {
            None => out.push(FileChange {
                path: path(&f.name),
                kind: ChangeKind::Added,
                old: String::new(),
                new: f.text.clone(),
            }),
            Some(d) if d.text != f.text => out.push(FileChange {
                path: path(&f.name),
                kind: ChangeKind::Modified,
                old: d.text.clone(),
                new: f.text.clone(),
            }),
            Some(_) => {}
        }
    }
    for d in on_disk {
        if !r.files.iter().any(|f| f.name == d.name) {
            out.push(FileChange {
                path: path(&d.name),
                kind: ChangeKind::Removed,
                old: d.text.clone(),
                new: String::new(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `path` relative to `base` when it is below it, for shorter messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix("./")
        .unwrap_or(path)
        .display()
        .to_string()
}
