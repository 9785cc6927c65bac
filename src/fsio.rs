//! Reading and writing an untrusted repository. canaryplan runs inside Argo CD's repo-server and
//! in hooks on whatever a repository holds, so every path it reads resolves (symbolic links
//! followed) inside the repository root, only regular files are read (never a FIFO or a device,
//! which would hang or never end), and every read is bounded by the bytes actually read, not by
//! what `stat` says. Every write goes through `WriteDir` (below): confined like a read, never
//! through a link, atomic. Nothing else in the crate creates, replaces or chmods a file.

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
        let (root, _) = Self::find(start, var)?;
        Ok(root)
    }

    /// The root for what `init` reads from `start` (its base, or the Rollout's folder): the
    /// repository holding `start`, found as `discover` finds it; with none, the current
    /// directory. Where the plan is written never widens it.
    pub fn of_sources(start: &Path) -> Result<Root> {
        // A base that does not exist (or a dangling link) is for the reader to report; its
        // repository is still found.
        let mut from = start;
        while !from.as_os_str().is_empty() && std::fs::canonicalize(from).is_err() {
            from = from.parent().unwrap_or(Path::new(""));
        }
        let (root, found) = Self::find(from, |k| std::env::var_os(k))?;
        if found {
            return Ok(root);
        }
        let cwd = std::env::current_dir()
            .and_then(std::fs::canonicalize)
            .map_err(|e| Error::io("resolve", Path::new("."), &e))?;
        Ok(Root { dir: cwd })
    }

    /// The root, and whether a repository was found (rather than `start` taken as it).
    fn find(
        start: &Path,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<(Root, bool)> {
        if let Some(dir) = var("CANARYPLAN_ROOT").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            return std::fs::canonicalize(&dir)
                .map(|dir| (Root { dir }, true))
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
        let start = canonical_dir(start).map_err(|e| Error::io("resolve", start, &e))?;
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
                return Ok((
                    Root {
                        dir: repo.to_path_buf(),
                    },
                    true,
                ));
            }
        }
        let git = start.ancestors().find(|d| holds_git(d));
        Ok((
            Root {
                dir: git.unwrap_or(&start).to_path_buf(),
            },
            git.is_some(),
        ))
    }

    /// `path` with every symbolic link resolved, refused when it leads outside the root or does
    /// not exist (a dangling link and a link loop each say so).
    pub fn resolve(&self, path: &Path) -> Result<PathBuf> {
        let resolved = canonical(path).map_err(|e| self.unresolvable(path, &e))?;
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

/// What this process learnt of directories: each one's canonical path (by the path as given:
/// the working directory never changes), and whether it holds `.git`. A monorepo's plans share
/// their parent directories, and a plan's files share theirs: each directory is resolved once
/// (a `realpath` costs a `readlink` per component), not once per file read below it.
#[derive(Default)]
struct Learnt {
    canonical: std::collections::HashMap<PathBuf, PathBuf>,
    git: std::collections::HashMap<PathBuf, bool>,
}

fn learnt() -> std::sync::MutexGuard<'static, Learnt> {
    static LEARNT: std::sync::OnceLock<std::sync::Mutex<Learnt>> = std::sync::OnceLock::new();
    LEARNT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `std::fs::canonicalize(dir)`, once per directory and process.
pub fn canonical_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Some(known) = learnt().canonical.get(dir) {
        return Ok(known.clone());
    }
    let resolved = std::fs::canonicalize(dir)?;
    learnt()
        .canonical
        .insert(dir.to_path_buf(), resolved.clone());
    Ok(resolved)
}

/// `std::fs::canonicalize(path)`: a name that is not a link, in a directory already resolved,
/// costs one `lstat`; anything else (a link, `..`, a missing file) goes to `canonicalize`.
fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    if let (Some(std::path::Component::Normal(name)), Some(parent)) =
        (path.components().next_back(), path.parent())
        && let Ok(dir) = canonical_dir(parent)
    {
        let candidate = dir.join(name);
        if std::fs::symlink_metadata(&candidate).is_ok_and(|m| !m.file_type().is_symlink()) {
            return Ok(candidate);
        }
    }
    std::fs::canonicalize(path)
}

/// Whether the canonical directory `dir` holds `.git`, once per directory.
fn holds_git(dir: &Path) -> bool {
    if let Some(known) = learnt().git.get(dir) {
        return *known;
    }
    let git = dir.join(".git").exists();
    learnt().git.insert(dir.to_path_buf(), git);
    git
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
    // Read-only: the one `OpenOptions::open` outside the write primitive.
    #[allow(clippy::disallowed_methods)]
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

// Writing. A repository can plant links where canaryplan writes (its output folders, the
// names of its temporary files), and Argo CD and CI reuse small PIDs, so a predictable name or
// a call that follows links lets a repository overwrite any file the user can write. Every
// write therefore resolves its directory inside the root, opens it component by component
// without following links, and works relative to that handle: temporary files get random names
// and are created exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`), modes are set on the open file,
// and the result is renamed over the target, which is never a link.

pub use write::{Entry, Existing, Kept, WriteDir, append_to_runner_file, process_alive};

// The write primitive: the only code allowed the calls clippy.toml forbids elsewhere.
#[allow(clippy::disallowed_methods)]
mod write {
    use std::io::{Read, Write as _};
    use std::os::fd::OwnedFd;
    use std::path::{Path, PathBuf};

    use super::{MAX_FILE_BYTES, Root};
    use crate::error::{Diagnostic, Error, Result};

    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

    /// Marks canaryplan's temporary names: `.<target>.canaryplan-<pid>-<random>`.
    const TEMP_MARK: &str = ".canaryplan-";

    /// A directory canaryplan writes into: resolved and confined to the root like a read, then
    /// opened without following any link. Every write is relative to this handle, so a link
    /// swapped in afterwards cannot move it elsewhere.
    #[derive(Debug)]
    pub struct WriteDir {
        fd: OwnedFd,
        /// The directory as the user named it, for messages.
        shown: PathBuf,
    }

    /// What `WriteDir::write` may find at its target.
    pub enum Existing<'a> {
        /// Nothing, not even a dangling link (`init`): what exists is refused with this message
        /// and hint, and the file is created only if nothing appeared meanwhile.
        Nothing { refusal: &'a str, hint: &'a str },
        /// A regular file, replaced when `ours` accepts its bytes (else its diagnostic, which
        /// `write` locates at the file). Its mode is kept.
        Replace {
            ours: &'a dyn Fn(&[u8]) -> std::result::Result<(), Diagnostic>,
        },
    }

    impl Root {
        /// Opens the directory `dir` for writing: resolved inside the root (links on the way must
        /// stay inside; a dangling one is refused), then opened component by component without
        /// following links. With `create`, missing directories are made (never through a link).
        pub fn open_dir(&self, dir: &Path, create: bool) -> Result<WriteDir> {
            let shown = dir.to_path_buf();
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // The deepest part of `dir` that exists (a dangling link counts: `resolve` names it).
            let mut existing = dir;
            let mut missing: Vec<&std::ffi::OsStr> = Vec::new();
            while std::fs::symlink_metadata(existing).is_err() {
                match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        missing.push(name);
                        existing = if parent.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            parent
                        };
                    }
                    // `..` or `.` that does not exist: let `resolve` say so.
                    _ => break,
                }
            }
            missing.reverse();
            let resolved =
                std::fs::canonicalize(existing).map_err(|e| self.unresolvable(existing, &e))?;
            if !resolved.starts_with(&self.dir) {
                return Err(outside(existing, &resolved, &self.dir));
            }
            if !std::fs::metadata(&resolved).is_ok_and(|m| m.is_dir()) {
                return Err(Diagnostic::new(
                    "exists and is not a directory; canaryplan writes into a directory there",
                )
                .in_file(existing)
                .hint(
                    "name a directory (canaryplan creates it when missing), or move the file away",
                )
                .into());
            }
            let mut fd =
                open_no_follow(&self.dir, None).map_err(|e| Error::io("open", &self.dir, &e))?;
            let below = resolved.strip_prefix(&self.dir).unwrap_or(Path::new(""));
            let mut at = self.dir.clone();
            for c in below.components() {
                at.push(c);
                fd = open_no_follow(c.as_os_str(), Some(&fd)).map_err(|e| changed(&at, &e))?;
            }
            // Named as the user did (not `./sub` for `sub`).
            let mut at = if existing == Path::new(".") && dir != Path::new(".") {
                PathBuf::new()
            } else {
                existing.to_path_buf()
            };
            for name in missing {
                at.push(name);
                if !create {
                    return Err(Diagnostic::new("does not exist").in_file(&at).into());
                }
                match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(Error::io("create", &at, &e.into())),
                }
                fd = open_no_follow(name, Some(&fd)).map_err(|e| changed(&at, &e))?;
            }
            let meta = rustix::fs::fstat(&fd).map_err(|e| Error::io("open", dir, &e.into()))?;
            if FileType::from_raw_mode(meta.st_mode) != FileType::Directory {
                return Err(Diagnostic::new("exists and is not a directory")
                    .in_file(dir)
                    .hint("move the file away, or name a directory")
                    .into());
            }
            Ok(WriteDir { fd, shown })
        }
    }

    /// Opens the directory `name` (relative to `parent`, or a path) without following a link.
    fn open_no_follow(
        name: impl AsRef<Path>,
        parent: Option<&OwnedFd>,
    ) -> std::io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match parent {
            Some(p) => rustix::fs::openat(p, name.as_ref(), flags, Mode::empty()),
            None => rustix::fs::openat(rustix::fs::CWD, name.as_ref(), flags, Mode::empty()),
        };
        fd.map_err(std::io::Error::from)
    }

    fn outside(path: &Path, resolved: &Path, root: &Path) -> Error {
        Diagnostic::new(format!(
            "resolves to {}, outside the repository root {}; canaryplan writes only inside the repository",
            resolved.display(),
            root.display()
        ))
        .in_file(path)
        .hint("write inside the repository (a symbolic link on the way must point inside too), or set CANARYPLAN_ROOT to a directory holding both")
        .into()
    }

    fn changed(at: &Path, e: &std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() || code == rustix::io::Errno::NOTDIR.raw_os_error() => {
                Diagnostic::new("became a symbolic link or a file while canaryplan wrote; nothing was written there")
                    .in_file(at)
                    .hint("something else is changing the repository; look at it, then run the command again")
                    .into()
            }
            _ => Error::io("open", at, e),
        }
    }

    fn is_temp_of(entry: &str, name: &str) -> bool {
        entry
            .strip_prefix('.')
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.starts_with(TEMP_MARK))
    }

    impl WriteDir {
        /// The path of `name` in this directory, as the user would name it.
        pub fn path(&self, name: &str) -> PathBuf {
            self.shown.join(name)
        }

        /// Writes `bytes` to the file `name` in this directory, atomically: a temporary sibling
        /// with a random name, created exclusively and without following links, written, given
        /// the replaced file's mode (and owner, where allowed) and synced, then renamed over
        /// `name`. What `check` refuses is refused; a killed run leaves the previous file whole.
        pub fn write(&self, name: &str, bytes: &[u8], existing: Existing<'_>) -> Result<()> {
            let path = self.path(name);
            let kept = self.check(name, &existing)?;
            let (tmp, file) = self.create_temp(name, kept)?;
            let written = write_synced(file, bytes);
            let placed = written.and_then(|()| match existing {
                Existing::Nothing { .. } => self.rename_no_replace(&tmp, name),
                Existing::Replace { .. } => {
                    rustix::fs::renameat(&self.fd, &tmp, &self.fd, name).map_err(Into::into)
                }
            });
            if let Err(e) = placed {
                let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
                if let Existing::Nothing { refusal, hint } = existing
                    && e.kind() == std::io::ErrorKind::AlreadyExists
                {
                    return Err(Diagnostic::new(refusal).in_file(&path).hint(hint).into());
                }
                return Err(Error::io("write", &path, &e));
            }
            let _ = rustix::fs::fsync(&self.fd);
            Ok(())
        }

        /// Whether `write` may write `name`, without writing (a command writing several files
        /// checks them all first). Refused: a link at `name` (even a dangling one), anything but
        /// a regular file, what `existing` does not allow, and anything but a regular file under
        /// canaryplan's temporary names for `name` (temporary files of killed runs are removed).
        /// Returns what a replaced file's successor keeps.
        pub fn check(&self, name: &str, existing: &Existing<'_>) -> Result<Option<Kept>> {
            let path = self.path(name);
            self.sweep(name)?;
            match self.entry(name)? {
                Entry::Missing => Ok(None),
                Entry::Link(target) => Err(Diagnostic::new(format!(
                    "is a symbolic link to {}; canaryplan does not write through links",
                    target.display()
                ))
                .in_file(&path)
                .hint(
                    "remove the link (canaryplan writes a regular file there), or write elsewhere",
                )
                .into()),
                Entry::Dir => Err(not_replaced(&path, "a directory")),
                Entry::Other(what) => Err(not_replaced(&path, what)),
                Entry::File(_) => match existing {
                    Existing::Nothing { refusal, hint } => {
                        Err(Diagnostic::new(*refusal).in_file(&path).hint(*hint).into())
                    }
                    Existing::Replace { ours } => {
                        let file = self
                            .open_file(name)
                            .map_err(|e| Error::io("read", &path, &e))?;
                        let stat = rustix::fs::fstat(&file)
                            .map_err(|e| Error::io("read", &path, &e.into()))?;
                        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                            return Err(not_replaced(&path, "not a regular file"));
                        }
                        ours(&read_regular_file(&path, file)?)
                            .map_err(|d| Error::one(d.in_file(&path)))?;
                        Ok(Some(Kept {
                            mode: stat.st_mode & 0o7777,
                            uid: stat.st_uid,
                            gid: stat.st_gid,
                        }))
                    }
                },
            }
        }

        /// Creates the file `name`, which must not exist, and writes `bytes` to it (in a directory
        /// canaryplan has just made, where no one else writes: an overlay being staged).
        pub fn create_file(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
            let fd = rustix::fs::openat(
                &self.fd,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            )?;
            write_synced(std::fs::File::from(fd), bytes)
        }

        /// Makes the directory `name`, which must not exist, and opens it (without following a
        /// link, should one replace it meanwhile).
        pub fn create_dir(&self, name: &str) -> std::io::Result<WriteDir> {
            rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o777))?;
            let fd = open_no_follow(name, Some(&self.fd))?;
            Ok(WriteDir {
                fd,
                shown: self.path(name),
            })
        }

        /// Renames `from` to `to`, both in this directory; fails when `to` exists.
        pub fn rename_new(&self, from: &str, to: &str) -> std::io::Result<()> {
            self.rename_no_replace(from, to)
        }

        /// Swaps the entries `a` and `b` of this directory at once.
        pub fn exchange(&self, a: &str, b: &str) -> std::io::Result<()> {
            rustix::fs::renameat_with(&self.fd, a, &self.fd, b, RenameFlags::EXCHANGE)
                .map_err(Into::into)
        }

        /// What `name` is, without following a link.
        pub fn entry(&self, name: &str) -> Result<Entry> {
            let path = self.path(name);
            let stat = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => s,
                Err(rustix::io::Errno::NOENT) => return Ok(Entry::Missing),
                Err(e) => return Err(Error::io("read", &path, &e.into())),
            };
            Ok(match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())
                        .map(|t| PathBuf::from(t.to_string_lossy().into_owned()))
                        .unwrap_or_default();
                    Entry::Link(target)
                }
                FileType::RegularFile => Entry::File(stat.st_mode & 0o7777),
                FileType::Directory => Entry::Dir,
                FileType::Fifo => Entry::Other("a FIFO (named pipe)"),
                FileType::CharacterDevice | FileType::BlockDevice => Entry::Other("a device"),
                FileType::Socket => Entry::Other("a socket"),
                FileType::Unknown => Entry::Other("not a regular file"),
            })
        }

        /// Removes the directory tree `name` canaryplan made (or moved aside), making it writable
        /// first when it is read-only. Links inside are removed, never followed. True when gone.
        pub fn remove_tree(&self, name: &str) -> bool {
            let path = self.path(name);
            if matches!(self.entry(name), Ok(Entry::Missing)) {
                return true;
            }
            if remove_tree_at(&path) {
                return true;
            }
            if let Ok(fd) = open_no_follow(name, Some(&self.fd)) {
                let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700));
            }
            remove_tree_at(&path)
        }

        /// The names in this directory that start with `prefix`.
        pub fn names_starting(&self, prefix: &str) -> Vec<String> {
            let Ok(dir) = rustix::fs::Dir::read_from(&self.fd) else {
                return Vec::new();
            };
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        }

        /// The bytes of the regular file `name` (a link is not followed), bounded like reads.
        pub fn read(&self, name: &str) -> Result<Vec<u8>> {
            let path = self.path(name);
            let file = self
                .open_file(name)
                .map_err(|e| Error::io("read", &path, &e))?;
            let meta = file.metadata().map_err(|e| Error::io("read", &path, &e))?;
            if !meta.is_file() {
                return Err(super::not_regular(&path, &meta));
            }
            read_regular_file(&path, file)
        }

        fn open_file(&self, name: &str) -> std::io::Result<std::fs::File> {
            rustix::fs::openat(
                &self.fd,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(std::fs::File::from)
            .map_err(Into::into)
        }

        /// A new temporary sibling of `name`: a random name, created exclusively, never through a
        /// link. With `mode` (the target's, kept on replace), created private and set to it once
        /// open; without, created with the usual mode (the umask applies).
        fn create_temp(&self, name: &str, kept: Option<Kept>) -> Result<(String, std::fs::File)> {
            let path = self.path(name);
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let mut last = None;
            for _ in 0..16 {
                let tmp = format!(".{name}{TEMP_MARK}{}-{:016x}", std::process::id(), random());
                let created = rustix::fs::openat(
                    &self.fd,
                    tmp.as_str(),
                    flags,
                    Mode::from_raw_mode(if kept.is_some() { 0o600 } else { 0o666 }),
                );
                match created {
                    Ok(fd) => {
                        if let Some(k) = kept {
                            // The owner where allowed (root editing a user's checkout), then
                            // the mode (a change of owner clears set-id bits).
                            let _ = rustix::fs::fchown(
                                &fd,
                                Some(rustix::fs::Uid::from_raw(k.uid)),
                                Some(rustix::fs::Gid::from_raw(k.gid)),
                            );
                            if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(k.mode)) {
                                let _ =
                                    rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
                                return Err(Error::io("write", &path, &e.into()));
                            }
                        }
                        return Ok((tmp, std::fs::File::from(fd)));
                    }
                    Err(rustix::io::Errno::EXIST) => last = Some(rustix::io::Errno::EXIST),
                    Err(e) => return Err(Error::io("write", &path, &e.into())),
                }
            }
            Err(Error::io(
                "write",
                &path,
                &last.unwrap_or(rustix::io::Errno::EXIST).into(),
            ))
        }

        fn rename_no_replace(&self, from: &str, to: &str) -> std::io::Result<()> {
            match rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
                // A file system without RENAME_NOREPLACE: a hard link fails the same way.
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                    rustix::fs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty())?;
                    let _ = rustix::fs::unlinkat(&self.fd, from, AtFlags::empty());
                    Ok(())
                }
                r => r.map_err(Into::into),
            }
        }

        /// Before writing `name`: temporary files of runs that were killed are removed, and
        /// anything else under canaryplan's temporary names (a planted link, a FIFO) is refused.
        fn sweep(&self, name: &str) -> Result<()> {
            for entry in self.names_starting(&format!(".{name}")) {
                if !is_temp_of(&entry, name) {
                    continue;
                }
                let path = self.path(&entry);
                match self.entry(&entry)? {
                    Entry::Missing => {}
                    Entry::File(_) => {
                        let pid = entry
                            .rsplit_once(TEMP_MARK)
                            .and_then(|(_, r)| r.split('-').next())
                            .and_then(|p| p.parse::<u32>().ok());
                        if pid.is_some_and(|p| p != std::process::id() && !process_alive(p)) {
                            let _ =
                                rustix::fs::unlinkat(&self.fd, entry.as_str(), AtFlags::empty());
                        }
                    }
                    Entry::Link(_) | Entry::Dir | Entry::Other(_) => {
                        let what = match self.entry(&entry)? {
                            Entry::Link(t) => format!("a symbolic link to {}", t.display()),
                            Entry::Other(w) => w.to_string(),
                            _ => "a directory".to_string(),
                        };
                        return Err(Diagnostic::new(format!(
                            "is {what} named like canaryplan's temporary files for {name}; refusing to write beside it"
                        ))
                        .in_file(&path)
                        .hint("remove it: canaryplan's temporary files are regular files it creates and removes itself, and a link under their name is an attempt to redirect a write")
                        .into());
                    }
                }
            }
            Ok(())
        }
    }

    /// What the file replacing another keeps of it.
    #[derive(Debug, Clone, Copy)]
    pub struct Kept {
        mode: u32,
        uid: u32,
        gid: u32,
    }

    fn not_replaced(path: &Path, what: &str) -> Error {
        Diagnostic::new(format!(
            "is {what}; canaryplan writes a regular file there and never replaces anything else"
        ))
        .in_file(path)
        .hint("move it away, or write elsewhere")
        .into()
    }

    /// What is at a name in a `WriteDir`, links not followed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Entry {
        Missing,
        /// A symbolic link, and where it points.
        Link(PathBuf),
        /// A regular file, and its permission bits.
        File(u32),
        Dir,
        Other(&'static str),
    }

    fn write_synced(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn read_regular_file(path: &Path, file: std::fs::File) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", path, &e))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Diagnostic::new(format!(
                "file is more than the {MAX_FILE_BYTES} bytes canaryplan reads"
            ))
            .in_file(path)
            .into());
        }
        Ok(bytes)
    }

    /// Removes a tree by path: `remove_dir_all` removes links inside it, never following them.
    fn remove_tree_at(path: &Path) -> bool {
        std::fs::remove_dir_all(path).is_ok()
    }

    /// 64 random bits for a temporary name (the system's generator; a clock-derived value if it
    /// fails, which `O_EXCL` still makes safe).
    fn random() -> u64 {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 8];
        if ring::rand::SystemRandom::new().fill(&mut b).is_ok() {
            return u64::from_le_bytes(b);
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }

    /// Whether process `pid` still runs (a temporary file of a live run is never removed).
    pub fn process_alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Appends `text` to a file the CI runner names (`$GITHUB_STEP_SUMMARY`): outside the
    /// repository by design, named by the environment, never by the repository's files.
    pub fn append_to_runner_file(path: &Path, text: &str) -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
    }
}
