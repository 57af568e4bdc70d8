//! The merged filesystem that setup reads: every entry of the package layers laid so far, with
//! file contents read lazily from where the layer writer would read them (the unpacked
//! packages in the cache, or bytes setup generated). Holding only paths and sources keeps it
//! small: a JDK + Tomcat tree is ~30k entries and a few MB, never the file data.

use std::collections::BTreeMap;
use std::io::Read;

use super::setup::{Effect, RootView, normalize};
use crate::image_path::ImagePath;
use crate::layer::{ContentSource, Entry, EntryKind, FileContent};

#[derive(Clone, Debug)]
enum Node {
    Dir,
    File(FileContent),
    Symlink(String),
}

/// A lazily-read [`RootView`] of layer entries plus applied setup effects.
#[derive(Clone, Debug, Default)]
pub struct TreeRoot {
    /// Keyed by absolute normalized path (`/usr/bin/java`).
    nodes: BTreeMap<String, Node>,
}

impl TreeRoot {
    pub fn new() -> TreeRoot {
        TreeRoot::default()
    }

    /// Lays a layer's entries over what is there (later layers win, as when unpacking).
    /// Hard links become the file they point at.
    pub fn add_entries<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a ImagePath, &'a Entry)>,
    ) {
        let mut links = Vec::new();
        for (path, entry) in entries {
            let key = format!("/{}", path.as_str());
            let node = match &entry.kind {
                EntryKind::Dir => Node::Dir,
                EntryKind::File(c) => Node::File(c.clone()),
                EntryKind::Symlink { target } => Node::Symlink(target.clone()),
                EntryKind::Hardlink { target } => {
                    links.push((key, format!("/{}", target.as_str())));
                    continue;
                }
            };
            self.nodes.insert(key, node);
        }
        for (path, target) in links {
            if let Some(node) = self.nodes.get(&target).cloned() {
                self.nodes.insert(path, node);
            }
        }
    }

    /// Records what an applied effect leaves in the tree (ownership is not part of the view).
    pub fn apply(&mut self, effect: &Effect) {
        match effect {
            Effect::WriteFile { path, bytes, .. } => {
                let bytes: std::sync::Arc<[u8]> = bytes.clone().into();
                self.nodes.insert(
                    self.resolve(path),
                    Node::File(FileContent {
                        size: bytes.len() as u64,
                        digest: None,
                        source: ContentSource::Bytes(bytes),
                    }),
                );
            }
            Effect::Symlink { path, target } => {
                self.nodes
                    .insert(self.resolve(path), Node::Symlink(target.clone()));
            }
            Effect::Dir { path, .. } => {
                let p = self.resolve(path);
                self.nodes.entry(p).or_insert(Node::Dir);
            }
            Effect::Chown { .. } | Effect::Chmod { .. } => {}
        }
    }

    /// The content source of a regular file (not following a final symlink).
    pub fn file(&self, path: &str) -> Option<&FileContent> {
        match self.nodes.get(&self.resolve(path)) {
            Some(Node::File(c)) => Some(c),
            _ => None,
        }
    }

    /// Whether `path` is a symlink, and where it points.
    pub fn symlink(&self, path: &str) -> Option<&str> {
        match self.nodes.get(&self.resolve(path)) {
            Some(Node::Symlink(t)) => Some(t),
            _ => None,
        }
    }

    /// All paths at or below `path` (resolved), in sorted order.
    pub fn subtree(&self, path: &str) -> Vec<String> {
        let root = self.resolve(path);
        let prefix = if root == "/" {
            "/".to_owned()
        } else {
            format!("{root}/")
        };
        self.nodes
            .range(root.clone()..)
            .take_while(|(p, _)| **p == root || p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// `path` resolved, final symlinks followed too (what `[ -d ]` and `ls` look at).
    fn follow(&self, path: &str) -> String {
        let mut p = self.resolve(path);
        for _ in 0..40 {
            let Some(Node::Symlink(t)) = self.nodes.get(&p) else {
                break;
            };
            let parent = p.rsplit_once('/').map_or("", |(a, _)| a);
            let joined = if t.starts_with('/') {
                t.clone()
            } else {
                format!("{parent}/{t}")
            };
            p = self.resolve(&format!("/{}", normalize_dots(&joined).join("/")));
        }
        p
    }

    /// `path` with every symlinked directory on the way followed (`/bin/sh` → `/usr/bin/sh`
    /// when `/bin` → `usr/bin`); the last component is kept as is.
    pub fn resolve(&self, path: &str) -> String {
        let path = normalize(path);
        let mut parts: Vec<String> = path[1..]
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let mut hops = 0;
        let mut i = 0;
        // Only parents are followed: the final component is what the caller asks about.
        while i + 1 < parts.len() {
            let prefix = format!("/{}", parts[..=i].join("/"));
            match self.nodes.get(&prefix) {
                Some(Node::Symlink(target)) if hops < 40 => {
                    hops += 1;
                    let base = if target.starts_with('/') {
                        String::new()
                    } else {
                        parts[..i].join("/")
                    };
                    let joined = normalize_dots(&format!("{base}/{target}"));
                    let mut next: Vec<String> = joined;
                    next.extend(parts[i + 1..].iter().cloned());
                    parts = next;
                    i = 0;
                }
                _ => i += 1,
            }
        }
        format!("/{}", parts.join("/"))
    }
}

/// Components of `path` with `.` and `..` applied (never above the root).
fn normalize_dots(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_owned()),
        }
    }
    out
}

/// Reads a file's bytes from its source (what the layer writer would copy).
pub fn read_content(c: &FileContent) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(c.size as usize);
    c.source.open()?.take(c.size).read_to_end(&mut buf)?;
    if buf.len() as u64 != c.size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{}: short read",
                c.source
                    .host_path()
                    .map_or("bytes".into(), |p| p.display().to_string())
            ),
        ));
    }
    Ok(buf)
}

impl RootView for TreeRoot {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let c = self.file(path)?;
        match read_content(c) {
            Ok(b) => Some(b),
            Err(e) => {
                // The sources were verified when the layer was planned; a failure here means
                // the cache changed under us. Setup then sees the file as absent, and the
                // layer writer fails on the same source with the full error.
                tracing::warn!("reading {path} for setup: {e}");
                None
            }
        }
    }

    fn exists(&self, path: &str) -> bool {
        let p = self.resolve(path);
        p == "/" || self.nodes.contains_key(&p)
    }

    fn list_dir(&self, path: &str) -> Vec<String> {
        // A directory reached through a final symlink (`/lib` → `usr/lib`): list the target.
        let dir = self.follow(path);
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| {
                let rest = &p[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
            })
            .collect()
    }

    fn is_dir(&self, path: &str) -> bool {
        let p = self.follow(path);
        p == "/" || matches!(self.nodes.get(&p), Some(Node::Dir))
    }

    fn canonical(&self, path: &str) -> String {
        self.follow(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Meta;

    fn entry(kind: EntryKind) -> Entry {
        Entry {
            kind,
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
        }
    }

    fn bytes(b: &[u8]) -> EntryKind {
        EntryKind::File(FileContent {
            size: b.len() as u64,
            digest: None,
            source: ContentSource::Bytes(b.into()),
        })
    }

    #[test]
    fn reads_through_merged_usr_and_lists_sorted() {
        let p = |s: &str| ImagePath::from_relative(s).unwrap();
        let es = [
            (
                p("bin"),
                entry(EntryKind::Symlink {
                    target: "usr/bin".into(),
                }),
            ),
            (p("usr"), entry(EntryKind::Dir)),
            (p("usr/bin"), entry(EntryKind::Dir)),
            (p("usr/bin/sh"), entry(bytes(b"dash"))),
            (p("usr/bin/b"), entry(bytes(b"b"))),
            (
                p("usr/bin/a"),
                entry(EntryKind::Hardlink {
                    target: p("usr/bin/b"),
                }),
            ),
        ];
        let mut root = TreeRoot::new();
        root.add_entries(es.iter().map(|(p, e)| (p, e)));
        assert_eq!(root.read("/bin/sh").unwrap(), b"dash");
        assert_eq!(root.read("/usr/bin/a").unwrap(), b"b");
        assert!(root.exists("/bin/sh") && root.is_dir("/bin/") && !root.is_dir("/bin/sh"));
        assert_eq!(root.list_dir("/bin"), ["a", "b", "sh"]);
        assert_eq!(root.subtree("/usr/bin").len(), 4);
        root.apply(&Effect::file("/bin/new", b"x".to_vec(), 0o644));
        assert_eq!(root.read("/usr/bin/new").unwrap(), b"x");
    }
}
