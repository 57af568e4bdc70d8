//! The vocabulary setup is written in: the read-only tree it reads ([`RootView`], and the
//! in-memory [`MemRoot`] the tests build), the maintainer scripts it is given, and the
//! [`Effect`]s it returns. Nothing here knows any mechanism.

use std::collections::{BTreeMap, BTreeSet};

/// The merged filesystem after the packages' files are laid out (scripts not run). Paths are
/// absolute (`/usr/share/base-passwd/passwd.master`); symlinks are not followed.
pub trait RootView {
    /// Content of a regular file, `None` when absent or not a regular file.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Whether anything (file, dir, symlink) exists at `path`.
    fn exists(&self, path: &str) -> bool;
    /// Names (not paths) of the entries directly in directory `path`, sorted; empty when absent.
    fn list_dir(&self, path: &str) -> Vec<String>;
    /// Whether `path` is a directory. The default derives it from [`RootView::list_dir`] and
    /// [`RootView::read`], which is enough for trees without empty directories.
    fn is_dir(&self, path: &str) -> bool {
        self.exists(path) && self.read(path).is_none()
    }
    /// `path` with every symlink on the way followed, the last one too: two names of one
    /// directory (`/lib/x` and `/usr/lib/x` on merged /usr) give the same answer. The default
    /// knows no symlinks.
    fn canonical(&self, path: &str) -> String {
        normalize(path)
    }
}

/// An in-memory [`RootView`]: files by absolute path, plus explicit directories and symlinks.
/// Used by the tests, and handy for the pipeline to build from layer trees.
#[derive(Debug, Clone, Default)]
pub struct MemRoot {
    files: BTreeMap<String, Vec<u8>>,
    /// Directories and symlinks; parents of files are added implicitly.
    others: BTreeSet<String>,
}

impl MemRoot {
    pub fn new() -> MemRoot {
        MemRoot::default()
    }

    /// Adds a regular file (and its parent directories).
    pub fn file(&mut self, path: &str, bytes: impl Into<Vec<u8>>) -> &mut Self {
        let path = normalize(path);
        self.add_parents(&path);
        self.files.insert(path, bytes.into());
        self
    }

    /// Adds a directory or symlink (anything that is not a regular file).
    pub fn other(&mut self, path: &str) -> &mut Self {
        let path = normalize(path);
        self.add_parents(&path);
        self.others.insert(path);
        self
    }

    fn add_parents(&mut self, path: &str) {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            self.others.insert(parent.to_owned());
            p = parent;
        }
    }

    pub fn len(&self) -> usize {
        self.files.len() + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `./usr/x`, `usr/x/`, `/usr//x` → `/usr/x`.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl RootView for MemRoot {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(&normalize(path)).cloned()
    }
    fn exists(&self, path: &str) -> bool {
        let p = normalize(path);
        self.files.contains_key(&p) || self.others.contains(&p)
    }
    fn list_dir(&self, path: &str) -> Vec<String> {
        let dir = normalize(path);
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        let mut names = BTreeSet::new();
        for p in self.files.keys().chain(self.others.iter()) {
            if let Some(rest) = p.strip_prefix(&prefix)
                && !rest.is_empty()
                && !rest.contains('/')
            {
                names.insert(rest.to_owned());
            }
        }
        names.into_iter().collect()
    }
    fn is_dir(&self, path: &str) -> bool {
        let p = normalize(path);
        !self.files.contains_key(&p) && !self.list_dir(&p).is_empty()
            || (self.others.contains(&p) && !self.files.contains_key(&p))
    }
}

/// One package's maintainer scripts, as found in its control tarball.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageScripts {
    pub package: String,
    pub preinst: Option<String>,
    pub postinst: Option<String>,
    pub prerm: Option<String>,
    pub postrm: Option<String>,
}

impl PackageScripts {
    /// The scripts that exist, with their names, in the order dpkg runs them on install
    /// (`prerm`/`postrm` never run on a fresh install, but are reported).
    pub fn scripts(&self) -> Vec<(&'static str, &str)> {
        [
            ("preinst", &self.preinst),
            ("postinst", &self.postinst),
            ("prerm", &self.prerm),
            ("postrm", &self.postrm),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.as_deref().map(|s| (n, s)))
        .collect()
    }
}

/// A change to the image filesystem. Paths are absolute; modes are permission bits only
/// (incl. setuid/setgid/sticky).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Create or replace a regular file.
    WriteFile {
        path: String,
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Create a symlink (replacing whatever is there).
    Symlink { path: String, target: String },
    /// Create a directory, or set owner and mode of an existing one.
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Change owner (and mode when given) of an existing entry; `recursive` for `chown -R`
    /// (every entry below `path` that exists when the effect is applied).
    Chown {
        path: String,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
        recursive: bool,
    },
    /// Change the mode of an existing entry (`chmod`), keeping its owner.
    Chmod {
        path: String,
        mode: u32,
        recursive: bool,
    },
}

impl Effect {
    pub fn path(&self) -> &str {
        match self {
            Effect::WriteFile { path, .. }
            | Effect::Symlink { path, .. }
            | Effect::Dir { path, .. }
            | Effect::Chown { path, .. }
            | Effect::Chmod { path, .. } => path,
        }
    }

    pub(crate) fn file(path: &str, bytes: Vec<u8>, mode: u32) -> Effect {
        Effect::WriteFile {
            path: path.to_owned(),
            bytes,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub(crate) fn symlink(path: &str, target: &str) -> Effect {
        Effect::Symlink {
            path: path.to_owned(),
            target: target.to_owned(),
        }
    }

    pub(crate) fn dir(path: &str, mode: u32, uid: u32, gid: u32) -> Effect {
        Effect::Dir {
            path: path.to_owned(),
            mode,
            uid,
            gid,
        }
    }

    /// Creates something (file, link, directory), as opposed to changing an existing entry.
    pub fn creates(&self) -> bool {
        matches!(
            self,
            Effect::WriteFile { .. } | Effect::Symlink { .. } | Effect::Dir { .. }
        )
    }
}

/// The order to apply effects in: everything that creates entries first, sorted by path
/// (parents before children), then ownership and mode changes sorted by path, so a
/// recursive `chown` sees the files created before it. Duplicates are removed.
pub fn sort_effects(effects: &mut Vec<Effect>) {
    effects.sort_by(|a, b| {
        b.creates()
            .cmp(&a.creates())
            .then_with(|| a.path().cmp(b.path()))
            .then_with(|| a.cmp(b))
    });
    effects.dedup();
}
