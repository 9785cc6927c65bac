//! `promote`, `abort` and `advance`: change one environment's weight or stage in the plan
//! file in place (each kind says what its verbs change; this is the text work they share). Only the value that moves changes; comments, key order, quoting and blank
//! lines stay byte for byte. The edited plan is checked and rendered in memory (with the
//! overlay on disk) before anything is written, so a refused step changes nothing.

use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, Result};
use crate::yaml::Pos;

pub use crate::kinds::{Action, Edit};

/// A plan's text after an edit, and how to say what changed.
#[derive(Debug, Clone)]
pub struct TextEdit {
    pub new_text: String,
    /// What changed, e.g. `production: weight 5 → 25`.
    pub change: String,
    pub commit_message: String,
}

/// Writes the edited plan atomically (a sibling file renamed over it). A plan that is a
/// symbolic link is edited where it points (inside the repository, as loading checked), so the
/// link stays a link.
pub fn write(edit: &Edit) -> Result<()> {
    replace(&edit.path, &edit.new_text)
}

/// Puts the plan's text back as it was before `write` (when the rest of a `--render` step
/// failed: the plan and its overlay change together or not at all).
pub fn restore(edit: &Edit) -> Result<()> {
    replace(&edit.path, &edit.old_text)
}

/// Replaces a file inside the repository atomically (a link is replaced where it points).
pub fn replace_file(path: &Path, text: &str) -> Result<()> {
    replace(path, text)
}

fn replace(path: &Path, text: &str) -> Result<()> {
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = crate::fsio::Root::discover(&parent(path))?;
    // A plan that is a link is replaced where it points; otherwise it is named as the user did.
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        root.resolve(path)?
    } else {
        path.to_path_buf()
    };
    let name = target
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = root.open_dir(&parent(&target), false)?;
    dir.write(
        &name,
        text.as_bytes(),
        crate::fsio::Existing::Replace { ours: &|_| Ok(()) },
    )
}

/// Removes the mapping entry `key: <value>` whose value starts at `at`: the whole line in
/// block style (a trailing comment goes with it), the entry and its comma in flow style.
/// `None` when the text is not laid out that way.
pub fn remove_entry(text: &str, key: &str, at: Pos) -> Option<String> {
    let (_, value_end) = scalar_range(text, at)?;
    let line_start = text
        .get(..value_end)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let key_at = line_start + text.get(line_start..value_end)?.rfind(key)?;
    let before = text.get(line_start..key_at)?;
    if before.trim().is_empty() {
        let line_end = text
            .get(value_end..)
            .and_then(|t| t.find('\n'))
            .map_or(text.len(), |i| value_end + i + 1);
        let rest = text.get(value_end..line_end)?;
        if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
            return None;
        }
        return Some(format!(
            "{}{}",
            text.get(..line_start)?,
            text.get(line_end..)?
        ));
    }
    let head = text.get(..key_at)?.trim_end();
    if let Some(head) = head.strip_suffix(',') {
        return Some(format!("{head}{}", text.get(value_end..)?));
    }
    let after = text.get(value_end..)?.trim_start().strip_prefix(',')?;
    Some(format!("{}{}", text.get(..key_at)?, after.trim_start()))
}

/// Held while a plan is read, edited and written: two `promote` runs at once take turns, so
/// neither loses the other's step. The lock is on the plan's directory (the plan file itself
/// is replaced by a rename, which a lock on it would not survive) and ends with the process.
pub struct Lock {
    #[cfg(unix)]
    _dir: std::fs::File,
}

pub fn lock(path: &Path) -> Result<Lock> {
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    #[cfg(unix)]
    {
        let file = std::fs::File::open(&dir).map_err(|e| Error::io("lock", &dir, &e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", &dir, &std::io::Error::from(e)))?;
        Ok(Lock { _dir: file })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(Lock {})
    }
}

/// The byte range of the scalar starting at `pos`.
pub fn scalar_range(text: &str, pos: Pos) -> Option<(usize, usize)> {
    let line_start = text
        .split_inclusive('\n')
        .take(pos.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum::<usize>();
    let line = text.get(line_start..)?.split('\n').next()?;
    let col = line
        .char_indices()
        .nth(pos.column.saturating_sub(1) as usize)
        .map(|(i, _)| i)?;
    let rest = line.get(col..)?;
    let end = match rest.chars().next()? {
        q @ ('"' | '\'') => rest.get(1..)?.find(q)? + 2,
        _ => {
            let stop = rest.find([',', '}', ']', '\r']).unwrap_or(rest.len());
            // A comment starts at `#` after a space or a tab.
            let comment = rest
                .char_indices()
                .find(|(i, c)| {
                    *c == '#' && *i > 0 && rest.get(..*i).is_some_and(|b| b.ends_with([' ', '\t']))
                })
                .map(|(i, _)| i);
            let stop = comment.map_or(stop, |c| c.min(stop));
            rest.get(..stop)?.trim_end().len()
        }
    };
    Some((line_start + col, line_start + col + end))
}

/// The anchor (`&name`) or alias (`*name`) a value at `pos` is written with, if any.
pub fn anchor_at(text: &str, pos: Pos) -> Option<String> {
    let line = text.lines().nth(pos.line.saturating_sub(1) as usize)?;
    let col = line
        .char_indices()
        .nth(pos.column.saturating_sub(1) as usize)
        .map_or(line.len(), |(i, _)| i);
    let name = |s: &str| {
        s.chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']'))
            .collect::<String>()
    };
    let (before, at) = line.split_at(col);
    if let Some(alias) = at.strip_prefix('*') {
        return Some(name(alias));
    }
    // `key: &name value`: the anchor stands between the key's colon and the value.
    let value_part = before.rsplit_once(':').map_or(before, |(_, v)| v);
    value_part
        .split_whitespace()
        .find_map(|w| w.strip_prefix('&'))
        .map(name)
}

/// `text` with the scalar at `pos` replaced by `value`.
pub fn replace_at(text: &str, pos: Pos, value: &str) -> Option<String> {
    let (a, b) = scalar_range(text, pos)?;
    Some(format!("{}{value}{}", text.get(..a)?, text.get(b..)?))
}

/// A plan of a kind whose environments only name a stage of its ladder.
pub struct LadderPlan<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub name: &'a str,
    pub environment: &'a str,
    pub stage: Option<&'a crate::yaml::At<String>>,
    pub ladder: &'a [&'a str],
    pub summary: fn(&str) -> &'static str,
    pub diag: &'a dyn Fn(Pos, String) -> Diagnostic,
}

/// `advance` for such a plan: the next stage of its ladder (it has no weight to promote or
/// abort); `reload` checks and renders the edited text.
pub fn ladder_edit(
    p: LadderPlan<'_>,
    action: Action,
    reload: impl FnOnce(String) -> Result<crate::kinds::AnyPlan>,
) -> Result<Edit> {
    let Some(stage) = p.stage else {
        return Err(Error::one(
            Diagnostic::new(format!("the plan has no environment `{}`", p.environment))
                .in_file(p.path),
        ));
    };
    if action != Action::Advance {
        return Err((p.diag)(
            stage.pos,
            format!(
                "this plan moves by stages only: `advance` (its stages are {})",
                p.ladder.join(", ")
            ),
        )
        .hint("go back a stage by editing `stage:` (the rollback)")
        .into());
    }
    let Some(next) = crate::ladder::next(p.ladder, &stage.value) else {
        return Err((p.diag)(
            stage.pos,
            format!("environment `{}` is done", p.environment),
        )
        .hint("delete the plan once every environment is done")
        .into());
    };
    let new_text = replace_at(p.text, stage.pos, next).ok_or_else(|| -> Error {
        (p.diag)(stage.pos, "cannot edit this value in place".into())
            .hint("write it as a plain scalar and try again")
            .into()
    })?;
    let plan = reload(new_text.clone())?;
    Ok(Edit {
        path: p.path.to_path_buf(),
        old_text: p.text.to_string(),
        new_text,
        change: format!("{}: stage {} → {next}", p.environment, stage.value),
        commit_message: format!(
            "{}: {} to {next}: {}",
            p.name,
            p.environment,
            (p.summary)(next)
        ),
        notes: Vec::new(),
        plan,
    })
}
