//! Errors that point at the exact place in a recipe and say how to fix it.
//!
//! Rendered like a compiler error: `file:line:col`, the offending line with a caret under the
//! span, and a `help:` line. Every mistake in a recipe goes through this type, so a user never
//! has to guess which of several files or tables is wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a recipe file: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The text of one recipe file, kept to turn byte spans into locations and snippets.
#[derive(Clone, Debug)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl SourceText {
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }

    pub fn diagnostic(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let location = self.location(span.start);
        let offset = span.start.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line_text = self.text[line_start..line_end].to_string();
        let width = self.text[offset..span.end.clamp(offset, line_end)]
            .chars()
            .count()
            .max(1);
        Diagnostic {
            location,
            message: message.into(),
            help: None,
            snippet: Some(Snippet { line_text, width }),
        }
    }
}

#[derive(Clone, Debug)]
struct Snippet {
    line_text: String,
    width: usize,
}

/// One problem at one place.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub help: Option<String>,
    snippet: Option<Snippet>,
}

impl Diagnostic {
    /// A diagnostic about a whole file (unreadable, for instance), with no span.
    pub fn at_file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            location: Location {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
            },
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if let Some(snippet) = &self.snippet {
            let number = self.location.line.to_string();
            let pad = " ".repeat(number.len());
            let caret_pad: String = snippet
                .line_text
                .chars()
                .take(self.location.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{pad} |\n{number} | {}\n{pad} | {caret_pad}{}",
                snippet.line_text,
                "^".repeat(snippet.width)
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// All the problems found in a recipe chain. Validation collects every problem it can find
/// before failing, so one run shows them all.
#[derive(Debug)]
pub struct RecipeError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for RecipeError {
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

impl std::error::Error for RecipeError {}

impl From<Diagnostic> for RecipeError {
    fn from(d: Diagnostic) -> Self {
        RecipeError {
            diagnostics: vec![d],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_chars() {
        let src = SourceText {
            path: "r.toml".into(),
            text: "a = 1\nname = \"é x\"\n".into(),
        };
        let at = src.text.find('x').unwrap();
        let loc = src.location(at);
        assert_eq!((loc.line, loc.column), (2, 11));
        let d = src.diagnostic(at..at + 1, "bad").help("fix it");
        let shown = d.to_string();
        assert!(shown.starts_with("r.toml:2:11: bad"), "{shown}");
        assert!(shown.contains("2 | name = \"é x\""), "{shown}");
        assert!(shown.ends_with("help: fix it"), "{shown}");
    }
}
