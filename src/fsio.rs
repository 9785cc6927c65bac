//! Reading an untrusted repository. canaryplan runs inside Argo CD's repo-server and in hooks on
//! whatever a repository holds, so every path it reads resolves (symbolic links followed) inside
//! the repository root, only regular files are read (never a FIFO or a device, which would hang
//! or never end), and every read is bounded by the bytes actually read, not by what `stat` says.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, Result};

/// Largest input file read, in bytes. Manifests and plans are small; a larger file is a mistake
/// or an attack, and refusing it early keeps every run fast and bounded in memory.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The directory every read must stay inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Canonical (symbolic links resolved).
    pub dir: PathBuf,
}

/// What a path is, once resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Dir,
}

impl Root {
    /// The root for files found from `start` (a plan's directory): `$CANARYPLAN_ROOT` when set;
    /// else, in an Argo CD plugin, the repository checkout (the working directory without
    /// `$ARGOCD_APP_SOURCE_PATH`); else the nearest directory above `start` holding `.git`; else
    /// `start` itself.
    pub fn discover(start: &Path) -> Result<Root> {
        Self::discover_with(start, |k| std::env::var_os(k))
    }

    pub fn discover_with(
        start: &Path,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Root> {
        if let Some(dir) = var("CANARYPLAN_ROOT").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            return std::fs::canonicalize(&dir)
                .map(|dir| Root { dir })
                .map_err(|e| {
                    Diagnostic::new(format!("CANARYPLAN_ROOT cannot be used: {e}"))
                        .in_file(&dir)
                        .hint("set CANARYPLAN_ROOT to the repository's top directory, or unset it")
                        .into()
                });
        }
        let start = if start.as_os_str().is_empty() {
            Path::new(".")
        } else {
            start
        };
        let start = std::fs::canonicalize(start).map_err(|e| Error::io("resolve", start, &e))?;
        if let (Some(source_path), Ok(cwd)) = (
            var("ARGOCD_APP_SOURCE_PATH").filter(|v| !v.is_empty()),
            std::env::current_dir(),
        ) {
            let source_path = PathBuf::from(source_path);
            let depth = source_path
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .count();
            if let Ok(cwd) = std::fs::canonicalize(cwd)
                && cwd.ends_with(&source_path)
                && let Some(repo) = cwd.ancestors().nth(depth)
                && start.starts_with(repo)
            {
                return Ok(Root {
                    dir: repo.to_path_buf(),
                });
            }
        }
        let git = start.ancestors().find(|d| d.join(".git").exists());
        Ok(Root {
            dir: git.unwrap_or(&start).to_path_buf(),
        })
    }

    /// `path` with every symbolic link resolved, refused when it leads outside the root or does
    /// not exist (a dangling link and a link loop each say so).
    pub fn resolve(&self, path: &Path) -> Result<PathBuf> {
        let resolved = std::fs::canonicalize(path).map_err(|e| self.unresolvable(path, &e))?;
        if !resolved.starts_with(&self.dir) {
            return Err(Diagnostic::new(format!(
                "resolves to {}, outside the repository root {}",
                resolved.display(),
                self.dir.display()
            ))
            .in_file(path)
            .hint("canaryplan reads only files inside the repository it renders: move the file into it (a symbolic link must point inside too), or set CANARYPLAN_ROOT to a directory holding both")
            .into());
        }
        Ok(resolved)
    }

    fn unresolvable(&self, path: &Path, e: &std::io::Error) -> Error {
        #[cfg(unix)]
        const ELOOP: i32 = 40;
        #[cfg(not(unix))]
        const ELOOP: i32 = -1;
        if e.raw_os_error() == Some(ELOOP) {
            return Diagnostic::new("symlink loop: its symbolic links point at each other")
                .in_file(path)
                .hint("fix the symbolic links so they end at a file")
                .into();
        }
        if e.kind() == std::io::ErrorKind::NotFound {
            // Which component is the dangling link, if any.
            for p in path.ancestors() {
                if let Ok(target) = std::fs::read_link(p)
                    && std::fs::metadata(p).is_err()
                {
                    return Diagnostic::new(format!(
                        "is a symbolic link to {}, which does not exist",
                        target.display()
                    ))
                    .in_file(p)
                    .hint("point the link at an existing file, or remove it")
                    .into();
                }
            }
            return Diagnostic::new("does not exist").in_file(path).into();
        }
        Error::io("resolve", path, e)
    }

    /// Whether `path` is a directory or a regular file, resolved inside the root; anything else
    /// (a FIFO, a device, a socket) is refused.
    pub fn kind(&self, path: &Path) -> Result<PathKind> {
        let resolved = self.resolve(path)?;
        let meta = std::fs::metadata(&resolved).map_err(|e| Error::io("read", path, &e))?;
        if meta.is_dir() {
            Ok(PathKind::Dir)
        } else if meta.is_file() {
            Ok(PathKind::File)
        } else {
            Err(not_regular(path, &meta))
        }
    }

    /// The bytes of the regular file at `path`, resolved inside the root, at most
    /// `MAX_FILE_BYTES` of them.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let resolved = self.resolve(path)?;
        read_regular(path, &resolved)
    }
}

/// Reads `resolved` (shown as `path`) when it is a regular file, bounded by bytes read. The file
/// is opened without blocking, so a FIFO swapped in after a check cannot hang the read either.
pub fn read_regular(path: &Path, resolved: &Path) -> Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options
        .open(resolved)
        .map_err(|e| Error::io("read", path, &e))?;
    let meta = file.metadata().map_err(|e| Error::io("read", path, &e))?;
    if meta.is_dir() {
        return Err(Diagnostic::new("is a directory, expected a YAML file")
            .in_file(path)
            .into());
    }
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_FILE_BYTES) as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, &e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::new(format!(
            "file is more than the {MAX_FILE_BYTES} bytes canaryplan reads"
        ))
        .in_file(path)
        .hint("split the manifests into several files")
        .into());
    }
    Ok(bytes)
}

fn not_regular(path: &Path, meta: &std::fs::Metadata) -> Error {
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        }
    };
    #[cfg(not(unix))]
    let what = {
        let _ = meta;
        "not a regular file"
    };
    Diagnostic::new(format!("is {what}, not a regular file"))
        .in_file(path)
        .hint("canaryplan reads manifests and plans from regular files only; replace it with one")
        .into()
}
