//! Errors of the map stage. Loading is the only fallible part: mapping a submission never fails,
//! it reports what it could not map.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a mapping or catalogue file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong with the mapping files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why the catalogue or the mapping rules could not be loaded. Start-up stops on any of these.
#[derive(Debug, thiserror::Error)]
pub enum MapLoadError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, each with file and line, so one start shows them all.
    #[error("{} problem(s) in the mapping files:\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
}

impl MapLoadError {
    /// The problems, when the files were read but are wrong.
    pub fn problems(&self) -> &[Problem] {
        match self {
            MapLoadError::Invalid(p) => p,
            MapLoadError::Io { .. } => &[],
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// A loaded source file: its path and text, to turn byte spans into lines.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path: path.to_owned(),
            text,
            line_starts,
        }
    }

    pub fn read(path: &Path) -> Result<SourceFile, MapLoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| MapLoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(SourceFile::new(path, text))
    }

    pub fn location(&self, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }

    pub fn problem(&self, span: &Range<usize>, message: impl Into<String>) -> Problem {
        Problem {
            at: self.location(span.start),
            message: message.into(),
        }
    }

    /// Parse TOML into `T`; a syntax or shape error becomes a located problem.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        toml::from_str(&self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            self.problem(&span, e.message().trim_end().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let f = SourceFile::new(Path::new("x.toml"), "a = 1\nbb = 2\n".to_owned());
        assert_eq!((f.location(0).line, f.location(0).column), (1, 1));
        assert_eq!((f.location(6).line, f.location(6).column), (2, 1));
        assert_eq!((f.location(9).line, f.location(9).column), (2, 4));
    }
}
