//! What can go wrong when loading a config, with file positions.

use std::fmt;

/// A position in the config file: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    /// The start of a file.
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config: every problem found, in file order.
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] error (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            ConfigError::Io { .. } => &[],
        }
    }
}

/// One problem in a config file, where it is and what is wrong.
///
/// Displays as `origin:line:column: path: message` (without `path: ` when the path is empty).
/// Messages never contain secret values: they name the key or the `${VAR}` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the text came from, usually the file path.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Key path of the offending value, like `routes[1].upstream`; empty for the whole document.
    pub path: String,
    /// What is wrong, and how to fix it when that is known.
    pub message: String,
}

impl Problem {
    /// A problem at `pos` in `origin`.
    pub(crate) fn new(origin: &str, pos: Pos, path: &str, message: impl Into<String>) -> Problem {
        Problem {
            origin: origin.to_owned(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Renders problems one per line, as [`ConfigError::Invalid`] displays them.
pub fn display_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Collects problems for one origin, in the order they are found.
#[derive(Debug)]
pub(crate) struct Problems {
    origin: String,
    list: Vec<Problem>,
    /// Key paths whose value was reported and replaced by a stand-in (a failed `${VAR}`, a
    /// wrong type): later stages say nothing more about them or anything below them.
    quiet: Vec<String>,
}

impl Problems {
    pub(crate) fn new(origin: &str) -> Problems {
        Problems {
            origin: origin.to_owned(),
            list: Vec::new(),
            quiet: Vec::new(),
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn push(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        let problem = Problem::new(&self.origin, pos, path, message);
        self.list.push(problem);
    }

    /// Marks `path` (and everything below it) as already reported.
    pub(crate) fn quiet(&mut self, path: &str) {
        self.quiet.push(path.to_owned());
    }

    /// Whether `path` or one of its ancestors was marked with [`Problems::quiet`].
    pub(crate) fn is_quiet(&self, path: &str) -> bool {
        self.quiet
            .iter()
            .any(|q| match path.strip_prefix(q.as_str()) {
                Some(rest) => q.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
                None => false,
            })
    }

    /// Whether `path` or anything below it was marked with [`Problems::quiet`].
    pub(crate) fn is_quiet_within(&self, path: &str) -> bool {
        self.quiet.iter().any(|q| {
            q.strip_prefix(path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems sorted by position (stable, so equal positions keep their order).
    pub(crate) fn into_sorted(mut self) -> Vec<Problem> {
        self.list.sort_by_key(|p| (p.line, p.column));
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_displays_origin_position_path_and_message() {
        let p = Problem::new(
            "conf/v.yaml",
            Pos {
                line: 14,
                column: 15,
            },
            "routes[1].upstream",
            "bad",
        );
        assert_eq!(p.to_string(), "conf/v.yaml:14:15: routes[1].upstream: bad");
        let p = Problem::new("f", Pos::START, "", "empty");
        assert_eq!(p.to_string(), "f:1:1: empty");
    }

    #[test]
    fn invalid_error_lists_every_problem_on_its_own_line() {
        let err = ConfigError::Invalid(vec![
            Problem::new("f", Pos { line: 1, column: 2 }, "a", "x"),
            Problem::new("f", Pos { line: 3, column: 4 }, "b", "y"),
        ]);
        assert_eq!(err.to_string(), "f:1:2: a: x\nf:3:4: b: y");
        assert_eq!(err.problems().len(), 2);
    }

    #[test]
    fn quiet_paths_cover_their_descendants_only() {
        let mut ps = Problems::new("f");
        ps.quiet("routes[1]");
        assert!(ps.is_quiet("routes[1]"));
        assert!(ps.is_quiet("routes[1].upstream"));
        assert!(ps.is_quiet("routes[1].models[0]"));
        assert!(!ps.is_quiet("routes[10]"));
        assert!(!ps.is_quiet("routes"));
        ps.quiet("");
        assert!(ps.is_quiet("anything"));
    }

    #[test]
    fn problems_sort_by_position_stably() {
        let mut ps = Problems::new("f");
        ps.push(Pos { line: 5, column: 1 }, "", "late");
        ps.push(Pos { line: 2, column: 9 }, "", "first");
        ps.push(Pos { line: 2, column: 9 }, "", "second");
        let msgs: Vec<String> = ps.into_sorted().into_iter().map(|p| p.message).collect();
        assert_eq!(msgs, ["first", "second", "late"]);
    }
}
