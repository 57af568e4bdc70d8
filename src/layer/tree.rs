//! The content of one layer as a sorted tree, built against a view of the layers below it.
//!
//! Two rules here keep images correct on every runtime:
//! - every entry's parent directories are in the layer, parents first; a parent that a lower
//!   layer already has is written with that layer's metadata, so stacking never changes it;
//! - a path is never written *through* a symlink of a lower layer as if it were a directory.
//!   If `/bin` is a symlink to `usr/bin` below, `/bin/sh` is written as `usr/bin/sh` and no
//!   `bin/` directory entry is emitted: runtimes would otherwise replace the symlink by an empty
//!   directory and hide everything under `/usr/bin` (environment.md, section 4d).

use std::collections::{BTreeMap, VecDeque};

use super::entry::{Entry, EntryKind, Meta};
use crate::image_path::ImagePath;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("{path}: {detail}")]
    Conflict { path: ImagePath, detail: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: ImagePath },
    #[error("hard link {path} -> {target}: {detail}")]
    Hardlink {
        path: ImagePath,
        target: ImagePath,
        detail: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewKind {
    Dir,
    File,
    Symlink(String),
}

/// What the layers below hold: enough to map paths through their symlinks and to copy the
/// metadata of their directories. Later layers overwrite earlier ones, as when unpacking.
#[derive(Clone, Debug, Default)]
pub struct LowerView {
    entries: BTreeMap<ImagePath, (ViewKind, Meta)>,
}

impl LowerView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, path: &ImagePath) -> Option<&(ViewKind, Meta)> {
        self.entries.get(path)
    }

    /// Adds a layer described by [`LayerContents::listing`] (a cached layer whose entries were
    /// not planned again). Malformed lines are an error: the listing came from our own cache.
    pub fn apply_listing(&mut self, listing: &str) -> Result<(), String> {
        for line in listing.lines() {
            let f: Vec<&str> = line.splitn(7, '\t').collect();
            let [kind, mode, uid, gid, mtime, path, target] = f[..] else {
                return Err(format!("bad listing line {line:?}"));
            };
            let num = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("bad number in {line:?}"))
            };
            let meta = Meta {
                mode: num(mode)? as u32,
                uid: num(uid)? as u32,
                gid: num(gid)? as u32,
                mtime: num(mtime)?,
            };
            let kind = match kind {
                "d" => ViewKind::Dir,
                "f" => ViewKind::File,
                "l" => ViewKind::Symlink(target.to_string()),
                _ => return Err(format!("bad kind in {line:?}")),
            };
            let path = ImagePath::from_relative(path).map_err(|e| e.to_string())?;
            self.entries.insert(path, (kind, meta));
        }
        Ok(())
    }

    pub fn apply(&mut self, layer: &LayerContents) {
        for (path, entry) in &layer.entries {
            let kind = match &entry.kind {
                EntryKind::Dir => ViewKind::Dir,
                EntryKind::File(_) | EntryKind::Hardlink { .. } => ViewKind::File,
                EntryKind::Symlink { target } => ViewKind::Symlink(target.clone()),
            };
            self.entries.insert(path.clone(), (kind, entry.meta));
        }
    }
}

/// A finished layer: entries in tar order, hard links pointing at earlier entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerContents {
    pub entries: Vec<(ImagePath, Entry)>,
}

impl LayerContents {
    /// A compact text listing (one line per entry: kind, mode, uid, gid, mtime, path, link
    /// target) that is enough to stack later layers on this one without planning it again.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (path, e) in &self.entries {
            let (kind, target) = match &e.kind {
                EntryKind::Dir => ("d", ""),
                EntryKind::File(_) | EntryKind::Hardlink { .. } => ("f", ""),
                EntryKind::Symlink { target } => ("l", target.as_str()),
            };
            if path.as_str().contains(['\t', '\n']) || target.contains(['\t', '\n']) {
                continue; // cannot be represented; such names do not occur in packages
            }
            let m = &e.meta;
            out.push_str(&format!(
                "{kind}\t{}\t{}\t{}\t{}\t{}\t{target}\n",
                m.mode,
                m.uid,
                m.gid,
                m.mtime,
                path.as_str()
            ));
        }
        out
    }
}

struct TreeEntry {
    entry: Entry,
    /// An implied parent that copies a lower layer's directory: its metadata must stay as is.
    keeps_lower: bool,
    /// Added only as a parent of something else.
    implied: bool,
}

pub struct LayerTree<'a> {
    lower: &'a LowerView,
    entries: BTreeMap<ImagePath, TreeEntry>,
    implied_dir: Meta,
    date_explicit_dirs: bool,
}

impl<'a> LayerTree<'a> {
    /// `implied_dir` is the metadata of parent directories no layer declares.
    pub fn new(lower: &'a LowerView, implied_dir: Meta) -> Self {
        LayerTree {
            lower,
            entries: BTreeMap::new(),
            implied_dir,
            date_explicit_dirs: true,
        }
    }

    /// Keeps the mtimes of directories inserted explicitly (package directories carry their
    /// own); only implied parents are dated from their content.
    pub fn keep_explicit_dir_times(&mut self) {
        self.date_explicit_dirs = false;
    }

    fn kind_of(&self, path: &ImagePath) -> Option<ViewKind> {
        if let Some(t) = self.entries.get(path) {
            return Some(match &t.entry.kind {
                EntryKind::Dir => ViewKind::Dir,
                EntryKind::Symlink { target } => ViewKind::Symlink(target.clone()),
                _ => ViewKind::File,
            });
        }
        self.lower.get(path).map(|(k, _)| k.clone())
    }

    /// Resolves every component of `path` through the symlinks of this layer and those below,
    /// the way the kernel would inside the image (absolute targets are relative to the image
    /// root, `..` stops at the root).
    pub fn resolve(&self, path: &ImagePath) -> Result<ImagePath, TreeError> {
        let mut pending: VecDeque<String> = path.components().map(str::to_string).collect();
        let mut resolved = ImagePath::root();
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved = resolved.parent().unwrap_or_else(ImagePath::root);
                    continue;
                }
                _ => {}
            }
            let candidate = resolved
                .join(&c)
                .map_err(|_| TreeError::SymlinkLoop { path: path.clone() })?;
            if let Some(ViewKind::Symlink(target)) = self.kind_of(&candidate) {
                hops += 1;
                if hops > 40 {
                    return Err(TreeError::SymlinkLoop { path: path.clone() });
                }
                if target.starts_with('/') {
                    resolved = ImagePath::root();
                }
                for t in target.split('/').rev() {
                    pending.push_front(t.to_string());
                }
            } else {
                resolved = candidate;
            }
        }
        Ok(resolved)
    }

    /// Adds an entry and returns the path it landed at (different from `path` when a parent is a
    /// symlink). Parents are implied as needed.
    pub fn insert(&mut self, path: &ImagePath, entry: Entry) -> Result<ImagePath, TreeError> {
        let parent = path.parent().unwrap_or_else(ImagePath::root);
        let name = path.file_name().unwrap_or("");
        let mut target = self
            .resolve(&parent)?
            .join(name)
            .map_err(|_| TreeError::SymlinkLoop { path: path.clone() })?;
        if entry.is_dir() && matches!(self.kind_of(&target), Some(ViewKind::Symlink(_))) {
            target = self.resolve(&target)?;
        }
        if target.is_root() {
            return Err(TreeError::Conflict {
                path: path.clone(),
                detail: "resolves to the image root".into(),
            });
        }
        self.imply_parents(&target)?;
        let entry = match entry.kind {
            EntryKind::Hardlink { target: link } => {
                let link_parent = link.parent().unwrap_or_else(ImagePath::root);
                let mapped = self
                    .resolve(&link_parent)?
                    .join(link.file_name().unwrap_or(""))
                    .map_err(|_| TreeError::SymlinkLoop { path: link.clone() })?;
                Entry {
                    kind: EntryKind::Hardlink { target: mapped },
                    meta: entry.meta,
                }
            }
            _ => entry,
        };

        if let Some(existing) = self.entries.get_mut(&target) {
            match (existing.entry.is_dir(), entry.is_dir()) {
                (true, true) => {
                    existing.entry.meta = entry.meta;
                    existing.keeps_lower = false;
                    existing.implied = false;
                    return Ok(target);
                }
                (false, false) => {
                    existing.entry = entry;
                    return Ok(target);
                }
                (is_dir, _) => {
                    return Err(TreeError::Conflict {
                        path: target,
                        detail: format!(
                            "already a {} in this layer, cannot also be a {}",
                            if is_dir {
                                "directory"
                            } else {
                                existing.entry.kind_name()
                            },
                            entry.kind_name()
                        ),
                    });
                }
            }
        }
        if !entry.is_dir()
            && let Some((ViewKind::Dir, _)) = self.lower.get(&target)
        {
            return Err(TreeError::Conflict {
                path: target,
                detail: format!(
                    "a lower layer has a directory here; a {} cannot replace it",
                    entry.kind_name()
                ),
            });
        }
        self.entries.insert(
            target.clone(),
            TreeEntry {
                entry,
                keeps_lower: false,
                implied: false,
            },
        );
        Ok(target)
    }

    fn imply_parents(&mut self, path: &ImagePath) -> Result<(), TreeError> {
        for ancestor in path.ancestors() {
            if let Some(existing) = self.entries.get(&ancestor) {
                if !existing.entry.is_dir() {
                    return Err(TreeError::Conflict {
                        path: path.clone(),
                        detail: format!(
                            "its parent {ancestor} is a {} in this layer",
                            existing.entry.kind_name()
                        ),
                    });
                }
                continue;
            }
            let (meta, keeps_lower) = match self.lower.get(&ancestor) {
                Some((ViewKind::Dir, meta)) => (*meta, true),
                Some((ViewKind::File, _)) => {
                    return Err(TreeError::Conflict {
                        path: path.clone(),
                        detail: format!("its parent {ancestor} is a file in a lower layer"),
                    });
                }
                // `resolve` already followed every symlink on the way.
                Some((ViewKind::Symlink(_), _)) | None => (self.implied_dir, false),
            };
            self.entries.insert(
                ancestor,
                TreeEntry {
                    entry: Entry {
                        kind: EntryKind::Dir,
                        meta,
                    },
                    keeps_lower,
                    implied: true,
                },
            );
        }
        Ok(())
    }

    pub fn get(&self, path: &ImagePath) -> Option<&Entry> {
        self.entries.get(path).map(|t| &t.entry)
    }

    /// Kind and metadata of what is at `path` (already resolved) in this layer, else below.
    pub fn current(&self, path: &ImagePath) -> Option<(ViewKind, Meta)> {
        if let Some(t) = self.entries.get(path) {
            let kind = self.kind_of(path).expect("the entry exists");
            return Some((kind, t.entry.meta));
        }
        self.lower.get(path).cloned()
    }

    /// Removes a directory this layer added that holds nothing (not in a lower layer either),
    /// so something else can take its place — what `rmdir` followed by `ln -s` does. Returns
    /// whether it was removed.
    pub fn remove_empty_dir(&mut self, path: &ImagePath) -> bool {
        let is_dir = self.entries.get(path).is_some_and(|t| t.entry.is_dir());
        let has_children = self
            .entries
            .range(path.clone()..)
            .nth(1)
            .is_some_and(|(p, _)| p.starts_with(path));
        if !is_dir || has_children || self.lower.get(path).is_some() {
            return false;
        }
        self.entries.remove(path);
        true
    }

    /// Every entry of this layer so far, implied parents included.
    pub fn all_entries(&self) -> impl Iterator<Item = (&ImagePath, &Entry)> {
        self.entries.iter().map(|(p, t)| (p, &t.entry))
    }

    /// The entries this layer declares (not the parents it only implies).
    pub fn explicit_entries(&self) -> impl Iterator<Item = (&ImagePath, &Entry)> {
        self.entries
            .iter()
            .filter(|(_, t)| !t.implied)
            .map(|(p, t)| (p, &t.entry))
    }

    /// Directories this layer creates take the newest mtime of what they hold in this layer, so
    /// a directory's time moves only when its content does (not, say, with every commit).
    fn date_directories(&mut self) {
        let mut newest: BTreeMap<ImagePath, u64> = BTreeMap::new();
        for (path, t) in &self.entries {
            if t.entry.is_dir() {
                continue;
            }
            for a in path.ancestors() {
                let slot = newest.entry(a).or_insert(0);
                *slot = (*slot).max(t.entry.meta.mtime);
            }
        }
        for (path, t) in self.entries.iter_mut() {
            if t.entry.is_dir()
                && !t.keeps_lower
                && (self.date_explicit_dirs || t.implied)
                && let Some(m) = newest.get(path)
            {
                t.entry.meta.mtime = *m;
            }
        }
    }

    /// Checks hard links and orders each hard-link group so the content sits on the first path
    /// in tar order (a tar hard link must point backwards).
    pub fn finish(mut self) -> Result<LayerContents, TreeError> {
        self.date_directories();
        let links: Vec<(ImagePath, ImagePath)> = self
            .entries
            .iter()
            .filter_map(|(p, t)| match &t.entry.kind {
                EntryKind::Hardlink { target } => Some((p.clone(), target.clone())),
                _ => None,
            })
            .collect();
        // Group links by the regular file they end at.
        let mut groups: BTreeMap<ImagePath, Vec<ImagePath>> = BTreeMap::new();
        for (path, target) in &links {
            let mut end = target.clone();
            let mut hops = 0;
            loop {
                let Some(t) = self.entries.get(&end) else {
                    return Err(TreeError::Hardlink {
                        path: path.clone(),
                        target: target.clone(),
                        detail: "the target is not in this layer (hard links cannot cross layers)"
                            .into(),
                    });
                };
                match &t.entry.kind {
                    EntryKind::File(_) => break,
                    EntryKind::Hardlink { target } if hops < 64 => {
                        end = target.clone();
                        hops += 1;
                    }
                    _ => {
                        return Err(TreeError::Hardlink {
                            path: path.clone(),
                            target: target.clone(),
                            detail: format!(
                                "the target is a {}, not a regular file",
                                t.entry.kind_name()
                            ),
                        });
                    }
                }
            }
            groups.entry(end).or_default().push(path.clone());
        }
        for (file, mut members) in groups {
            members.push(file.clone());
            members.sort();
            let first = members[0].clone();
            let content = self.entries[&file].entry.clone();
            for m in &members {
                let slot = self.entries.get_mut(m).expect("member exists");
                slot.entry = if *m == first {
                    content.clone()
                } else {
                    Entry {
                        kind: EntryKind::Hardlink {
                            target: first.clone(),
                        },
                        meta: content.meta,
                    }
                };
            }
        }
        Ok(LayerContents {
            entries: self
                .entries
                .into_iter()
                .map(|(p, t)| (p, t.entry))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::layer::entry::{ContentSource, FileContent};

    const META: Meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 1,
    };

    fn p(s: &str) -> ImagePath {
        ImagePath::from_absolute(s).unwrap()
    }

    fn file(data: &'static [u8]) -> Entry {
        Entry {
            kind: EntryKind::File(FileContent {
                source: ContentSource::Bytes(data.into()),
                size: data.len() as u64,
                digest: Some(Digest::of(data)),
            }),
            meta: Meta {
                mode: 0o644,
                ..META
            },
        }
    }

    fn symlink(t: &str) -> Entry {
        Entry {
            kind: EntryKind::Symlink { target: t.into() },
            meta: Meta {
                mode: 0o777,
                ..META
            },
        }
    }

    fn dir() -> Entry {
        Entry {
            kind: EntryKind::Dir,
            meta: META,
        }
    }

    fn base_with_merged_usr() -> LowerView {
        let lower = LowerView::new();
        let mut t = LayerTree::new(&lower, META);
        t.insert(&p("/usr/bin"), dir()).unwrap();
        t.insert(&p("/bin"), symlink("usr/bin")).unwrap();
        t.insert(&p("/lib64"), symlink("/usr/lib64")).unwrap();
        let mut view = LowerView::new();
        view.apply(&t.finish().unwrap());
        view
    }

    #[test]
    fn paths_through_lower_symlinks_are_mapped_and_no_dir_shadows_them() {
        let view = base_with_merged_usr();
        let mut t = LayerTree::new(&view, META);
        assert_eq!(
            t.insert(&p("/bin/sh"), file(b"x")).unwrap(),
            p("/usr/bin/sh")
        );
        assert_eq!(
            t.insert(&p("/lib64/ld.so"), file(b"y")).unwrap(),
            p("/usr/lib64/ld.so")
        );
        // A declared directory at a symlink's path lands on the target.
        assert_eq!(t.insert(&p("/bin"), dir()).unwrap(), p("/usr/bin"));
        let out = t.finish().unwrap();
        let paths: Vec<_> = out
            .entries
            .iter()
            .map(|(p, _)| p.as_str().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "usr",
                "usr/bin",
                "usr/bin/sh",
                "usr/lib64",
                "usr/lib64/ld.so"
            ]
        );
    }

    #[test]
    fn implied_parents_copy_lower_metadata() {
        let lower = LowerView::new();
        let mut t = LayerTree::new(&lower, META);
        let special = Meta {
            mode: 0o700,
            uid: 7,
            gid: 8,
            mtime: 1,
        };
        t.insert(
            &p("/opt/app"),
            Entry {
                kind: EntryKind::Dir,
                meta: special,
            },
        )
        .unwrap();
        let mut view = LowerView::new();
        view.apply(&t.finish().unwrap());
        let mut t = LayerTree::new(&view, META);
        t.insert(&p("/opt/app/x"), file(b"1")).unwrap();
        assert_eq!(t.get(&p("/opt/app")).unwrap().meta, special);
    }

    #[test]
    fn hard_links_point_backwards_whatever_the_declaration() {
        let lower = LowerView::new();
        let mut t = LayerTree::new(&lower, META);
        t.insert(&p("/z/file"), file(b"data")).unwrap();
        t.insert(
            &p("/a/link"),
            Entry {
                kind: EntryKind::Hardlink {
                    target: p("/z/file"),
                },
                meta: META,
            },
        )
        .unwrap();
        let out = t.finish().unwrap();
        let get = |s: &str| &out.entries.iter().find(|(q, _)| *q == p(s)).unwrap().1.kind;
        assert!(matches!(get("/a/link"), EntryKind::File(_)));
        assert_eq!(
            get("/z/file"),
            &EntryKind::Hardlink {
                target: p("/a/link")
            }
        );
    }

    #[test]
    fn conflicts_and_bad_links_are_errors() {
        let lower = LowerView::new();
        let mut t = LayerTree::new(&lower, META);
        t.insert(&p("/a"), file(b"x")).unwrap();
        assert!(matches!(
            t.insert(&p("/a/b"), file(b"y")),
            Err(TreeError::Conflict { .. })
        ));
        t.insert(
            &p("/l"),
            Entry {
                kind: EntryKind::Hardlink {
                    target: p("/missing"),
                },
                meta: META,
            },
        )
        .unwrap();
        assert!(matches!(t.finish(), Err(TreeError::Hardlink { .. })));

        let mut t = LayerTree::new(&lower, META);
        t.insert(&p("/loop"), symlink("/loop")).unwrap();
        assert!(matches!(
            t.insert(&p("/loop/x"), file(b"z")),
            Err(TreeError::SymlinkLoop { .. })
        ));
    }
}
