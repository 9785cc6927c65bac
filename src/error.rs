//! User-facing errors: every problem a user can cause is a `Diagnostic` with a location in the
//! file that caused it (when there is one), what is wrong, and how to fix it. The library only
//! builds them; the binary decides how to print them and maps them to exit code 2.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in an input file. Lines and columns count from 1, columns in characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: u64,
    pub column: u64,
}

impl Location {
    pub fn new(file: &Arc<PathBuf>, line: u64, column: u64) -> Self {
        Location {
            file: Arc::clone(file),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem, as the user should see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where it is; `None` for problems without a place in a file (a missing file, say).
    pub location: Option<Location>,
    /// The file when there is no line to point at.
    pub file: Option<PathBuf>,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the location points at, for a snippet.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            location: None,
            file: None,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The path the diagnostic is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Some(l) => Some(l.file.as_path()),
            None => self.file.as_deref(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.location, &self.file) {
            (Some(l), _) => write!(f, "{l}: error: {}", self.message)?,
            (None, Some(p)) => write!(f, "{}: error: {}", p.display(), self.message)?,
            (None, None) => write!(f, "error: {}", self.message)?,
        }
        if let (Some(l), Some(line)) = (&self.location, &self.source_line) {
            let number = l.line.to_string();
            let pad = " ".repeat(number.len());
            let caret_at = line
                .chars()
                .take(l.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect::<String>();
            write!(f, "\n{pad} |\n{number} | {line}\n{pad} | {caret_at}^")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the library. `Diagnostics` are the user's to fix (exit 2).
#[derive(Debug)]
pub struct Error {
    pub diagnostics: Vec<Diagnostic>,
}

impl Error {
    pub fn one(d: Diagnostic) -> Self {
        Error {
            diagnostics: vec![d],
        }
    }

    pub fn io(action: &str, path: &Path, err: &std::io::Error) -> Self {
        Error::one(Diagnostic::new(format!("cannot {action}: {err}")).in_file(path))
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::one(d)
    }
}

impl From<Vec<Diagnostic>> for Error {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Error { diagnostics }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects diagnostics so that a check reports every problem at once, not only the first.
#[derive(Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Keeps the error of `r` and returns its value, if any.
    pub fn take<T>(&mut self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.diagnostics);
                None
            }
        }
    }

    /// `Err` with every diagnostic once (environments sharing a base report its problems
    /// once), in the order found.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut unique: Vec<Diagnostic> = Vec::with_capacity(self.0.len());
        for d in self.0 {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        Err(Error {
            diagnostics: unique,
        })
    }
}
