//! Paths inside an image, normalised once so that every later stage can compare and sort them.
//!
//! An [`ImagePath`] is relative to the image root, uses `/` separators, and has no empty, `.` or
//! `..` components; the root itself is the empty path. Ordering is component by component, so a
//! directory always sorts right before its own children (`a`, `a/b`, `a-c`): the order the tar
//! writer needs.

use std::cmp::Ordering;
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImagePath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImagePathError {
    #[error("path must be absolute in the image (start with `/`)")]
    NotAbsolute,
    #[error("path may not contain `..`")]
    ParentComponent,
    #[error("path may not contain NUL bytes")]
    Nul,
}

impl ImagePath {
    pub fn root() -> Self {
        ImagePath(String::new())
    }

    /// Parses an absolute path as written in a recipe (`/opt/app/`); `.` and repeated or trailing
    /// slashes are dropped, `..` is refused rather than resolved (it would hide mistakes).
    pub fn from_absolute(s: &str) -> Result<Self, ImagePathError> {
        if !s.starts_with('/') {
            return Err(ImagePathError::NotAbsolute);
        }
        Self::from_relative(s)
    }

    /// Parses a path relative to the image root (as found in tar entries: `./usr/bin/`).
    pub fn from_relative(s: &str) -> Result<Self, ImagePathError> {
        if s.contains('\0') {
            return Err(ImagePathError::Nul);
        }
        let mut out = String::with_capacity(s.len());
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(ImagePathError::ParentComponent),
                p => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(p);
                }
            }
        }
        Ok(ImagePath(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    pub fn parent(&self) -> Option<ImagePath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => ImagePath(self.0[..i].to_string()),
            None => ImagePath::root(),
        })
    }

    /// Appends one or more `/`-separated components (already known to be clean).
    pub fn join(&self, rel: &str) -> Result<ImagePath, ImagePathError> {
        let joined = if self.is_root() {
            rel.to_string()
        } else {
            format!("{}/{}", self.0, rel)
        };
        Self::from_relative(&joined)
    }

    /// All proper ancestors, outermost first, excluding the root.
    pub fn ancestors(&self) -> Vec<ImagePath> {
        let mut out = Vec::new();
        let mut acc = String::new();
        let comps: Vec<&str> = self.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            out.push(ImagePath(acc.clone()));
        }
        out
    }

    pub fn starts_with(&self, other: &ImagePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl Ord for ImagePath {
    fn cmp(&self, other: &Self) -> Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for ImagePath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", format!("/{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::from_absolute(s).unwrap()
    }

    #[test]
    fn normalises_and_refuses() {
        assert_eq!(p("/a//b/./c/").as_str(), "a/b/c");
        assert!(p("/").is_root());
        assert_eq!(
            ImagePath::from_absolute("a"),
            Err(ImagePathError::NotAbsolute)
        );
        assert_eq!(
            ImagePath::from_absolute("/a/../b"),
            Err(ImagePathError::ParentComponent)
        );
    }

    #[test]
    fn parents_sort_before_children() {
        let mut v = [p("/a-c"), p("/a/b"), p("/a"), p("/a/b/c"), p("/a.b")];
        v.sort();
        let s: Vec<_> = v.iter().map(|x| x.as_str()).collect();
        assert_eq!(s, ["a", "a/b", "a/b/c", "a-c", "a.b"]);
    }

    #[test]
    fn ancestors_and_prefix() {
        let a: Vec<_> = p("/x/y/z").ancestors().into_iter().map(|x| x.0).collect();
        assert_eq!(a, ["x", "x/y"]);
        assert!(p("/x/y").starts_with(&p("/x")));
        assert!(!p("/xy").starts_with(&p("/x")));
        assert_eq!(p("/x/y").parent().unwrap(), p("/x"));
        assert_eq!(p("/x").parent().unwrap(), ImagePath::root());
    }
}
