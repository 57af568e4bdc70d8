//! The state of a registry base image, read from its layers: the merged tree (every path's
//! kind, mode, owner and where its bytes are) and the dpkg database on it.
//!
//! Package layers and `[[users]]` over a registry base continue from this state the way a
//! recipe chain continues from the layers it built itself: the resolver starts from the
//! base's installed set, setup from its tree (accounts, alternatives, ucf, certificates, the
//! dpkg database), and new layers map paths through its symlinks (`/bin` → `usr/bin`).
//!
//! The layers are outside data: they arrive here as uncompressed tars already verified
//! against the config's diff_ids (the caller keeps them in the cache's blob store under their
//! diff_id), and every entry is still checked: a bounded number of entries, bounded path and
//! link lengths, no `..`, kinds we can represent. File contents are never copied: an entry
//! points at its bytes inside the verified tar ([`ContentSource::Range`]), read only when
//! setup or the layer writer needs them. Whiteouts (`.wh.NAME`) and opaque directories
//! (`.wh..wh..opq`) are applied layer by layer as the OCI image spec describes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::image_path::ImagePath;
use crate::layer::{ContentSource, Entry, EntryKind, FileContent, Meta};

/// More entries than any distribution image has (a full desktop is ~300k): a tar that claims
/// more is refused rather than filling memory.
const MAX_ENTRIES: usize = 2_000_000;
/// PATH_MAX: longer names cannot exist in a real root file system.
const MAX_PATH: usize = 4096;
/// The dpkg status of a large system is a few MB.
const MAX_STATUS: u64 = 64 << 20;

pub const DPKG_STATUS: &str = "var/lib/dpkg/status";

#[derive(Debug, thiserror::Error)]
pub enum BaseTreeError {
    #[error("reading base layer {}: {source}", .layer.display())]
    Io {
        layer: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("base layer {} is not a valid image layer: {detail}", .layer.display())]
    Bad { layer: PathBuf, detail: String },
    #[error(
        "the image has no /var/lib/dpkg/status: package layers and [[users]] need a Debian or Ubuntu base with its dpkg database"
    )]
    NoDpkgStatus,
    #[error("/var/lib/dpkg/status of the image: {detail}")]
    BadStatus { detail: String },
}

/// The merged tree of a base image and the dpkg database on it.
#[derive(Clone, Debug, Default)]
pub struct BaseTree {
    /// Every path of the merged tree, parents before children (tar order of a sorted tree).
    /// Hard links are resolved to the file they name.
    pub entries: Vec<(ImagePath, Entry)>,
    /// `/var/lib/dpkg/status` (empty when the image has none; see [`BaseTree::dpkg_status`]).
    pub status: Option<String>,
}

impl BaseTree {
    /// The base's dpkg status, or why package layers cannot go on it.
    pub fn dpkg_status(&self) -> Result<&str, BaseTreeError> {
        self.status.as_deref().ok_or(BaseTreeError::NoDpkgStatus)
    }

    /// Whether `/bin` is a symlink (a merged-/usr base).
    pub fn merged_usr(&self) -> bool {
        self.entries
            .iter()
            .any(|(p, e)| p.as_str() == "bin" && matches!(e.kind, EntryKind::Symlink { .. }))
    }
}

/// Reads the merged tree of `layers` (uncompressed, bottom first) and its dpkg status.
pub fn read(layers: &[PathBuf]) -> Result<BaseTree, BaseTreeError> {
    let mut merged: BTreeMap<ImagePath, Entry> = BTreeMap::new();
    for layer in layers {
        let own = read_layer(layer, &mut merged)?;
        for (path, entry) in own {
            merged.insert(path, entry);
        }
        if merged.len() > MAX_ENTRIES {
            return Err(BaseTreeError::Bad {
                layer: layer.clone(),
                detail: format!("more than {MAX_ENTRIES} paths"),
            });
        }
    }
    let status = match merged.get(&ImagePath::from_relative(DPKG_STATUS).expect("fixed path")) {
        Some(Entry {
            kind: EntryKind::File(c),
            ..
        }) => Some(read_status(c)?),
        _ => None,
    };
    Ok(BaseTree {
        entries: merged.into_iter().collect(),
        status,
    })
}

fn read_status(c: &FileContent) -> Result<String, BaseTreeError> {
    if c.size > MAX_STATUS {
        return Err(BaseTreeError::BadStatus {
            detail: format!("{} bytes, more than the {MAX_STATUS} allowed", c.size),
        });
    }
    let bytes = super::read_content(c).map_err(|e| BaseTreeError::BadStatus {
        detail: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| BaseTreeError::BadStatus {
        detail: "not UTF-8".into(),
    })
}

/// One layer's own entries; its whiteouts are applied to `lower` on the way.
fn read_layer(
    layer: &Path,
    lower: &mut BTreeMap<ImagePath, Entry>,
) -> Result<Vec<(ImagePath, Entry)>, BaseTreeError> {
    let io = |source| BaseTreeError::Io {
        layer: layer.to_path_buf(),
        source,
    };
    let bad = |detail: String| BaseTreeError::Bad {
        layer: layer.to_path_buf(),
        detail,
    };
    let shared = Arc::new(layer.to_path_buf());
    let file = std::fs::File::open(layer).map_err(io)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut own: BTreeMap<ImagePath, Entry> = BTreeMap::new();
    for (count, entry) in archive.entries().map_err(io)?.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let entry = entry.map_err(io)?;
        let raw = entry.path_bytes();
        if raw.len() > MAX_PATH {
            return Err(bad(format!("a path of {} bytes", raw.len())));
        }
        let name = std::str::from_utf8(&raw)
            .map_err(|_| bad(format!("a path that is not UTF-8: {:?}", raw)))?
            .to_owned();
        let path = ImagePath::from_relative(&name).map_err(|e| bad(format!("{name:?}: {e}")))?;
        if path.is_root() {
            continue; // `./`: the root's own metadata is the runtime's
        }
        if whiteout(&path, lower, &mut own) {
            continue;
        }
        let Some(kind) = kind_of(&entry, &path, &own, &shared, &bad)? else {
            continue;
        };
        let h = entry.header();
        let num = |v: std::io::Result<u64>, what: &str| {
            v.map_err(|e| bad(format!("{name}: {what}: {e}")))
        };
        let meta = Meta {
            mode: (num(h.mode().map(u64::from), "mode")? & 0o7777) as u32,
            uid: u32::try_from(num(h.uid(), "uid")?)
                .map_err(|_| bad(format!("{name}: uid out of range")))?,
            gid: u32::try_from(num(h.gid(), "gid")?)
                .map_err(|_| bad(format!("{name}: gid out of range")))?,
            mtime: num(h.mtime(), "mtime")?,
        };
        own.insert(path, Entry { kind, meta });
    }
    Ok(own.into_iter().collect())
}

/// Applies a whiteout entry (true) to the lower layers: `.wh.NAME` deletes `NAME` and what is
/// below it, `.wh..wh..opq` empties its directory of everything the lower layers put there.
fn whiteout(
    path: &ImagePath,
    lower: &mut BTreeMap<ImagePath, Entry>,
    own: &mut BTreeMap<ImagePath, Entry>,
) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    let Some(hidden) = name.strip_prefix(".wh.") else {
        return false;
    };
    let parent = path.parent().unwrap_or_else(ImagePath::root);
    if hidden == ".wh..opq" {
        lower.retain(|p, _| !(p.starts_with(&parent) && *p != parent));
        return true;
    }
    if let Ok(gone) = parent.join(hidden) {
        lower.retain(|p, _| !p.starts_with(&gone));
        own.retain(|p, _| !p.starts_with(&gone));
    }
    true
}

/// The kind of a tar entry; `None` for what a layer cannot hold (devices, fifos): skipped, as
/// builds never run inside the tree.
fn kind_of(
    entry: &tar::Entry<'_, impl std::io::Read>,
    path: &ImagePath,
    own: &BTreeMap<ImagePath, Entry>,
    layer: &Arc<PathBuf>,
    bad: &dyn Fn(String) -> BaseTreeError,
) -> Result<Option<EntryKind>, BaseTreeError> {
    let link = || -> Result<String, BaseTreeError> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| bad(format!("{}: a link without a target", path.as_str())))?;
        if raw.len() > MAX_PATH {
            return Err(bad(format!(
                "{}: a link target of {} bytes",
                path.as_str(),
                raw.len()
            )));
        }
        String::from_utf8(raw.into_owned()).map_err(|_| {
            bad(format!(
                "{}: a link target that is not UTF-8",
                path.as_str()
            ))
        })
    };
    use tar::EntryType as T;
    Ok(match entry.header().entry_type() {
        T::Directory => Some(EntryKind::Dir),
        T::Regular | T::Continuous => Some(EntryKind::File(FileContent {
            size: entry.size(),
            digest: None,
            source: ContentSource::Range {
                path: layer.clone(),
                offset: entry.raw_file_position(),
            },
        })),
        T::Symlink => Some(EntryKind::Symlink { target: link()? }),
        T::Link => {
            // A hard link names a file of the same layer: it becomes that file (same bytes).
            let target = link()?;
            let to = ImagePath::from_relative(&target)
                .map_err(|e| bad(format!("{}: link to {target:?}: {e}", path.as_str())))?;
            match own.get(&to) {
                Some(Entry {
                    kind: k @ EntryKind::File(_),
                    ..
                }) => Some(k.clone()),
                _ => {
                    return Err(bad(format!(
                        "{}: hard link to {target:?}, which the layer has no file at",
                        path.as_str()
                    )));
                }
            }
        }
        T::GNUSparse => return Err(bad(format!("{}: a sparse file", path.as_str()))),
        _ => None,
    })
}

/// The maintainer scripts of the base's installed packages, from `/var/lib/dpkg/info`: setup
/// reads them to know what the base's packages set up (so a child's setup continues from it).
pub fn installed_scripts(
    status: &str,
    view: &super::TreeRoot,
) -> Vec<super::setup::PackageScripts> {
    use super::setup::RootView;
    let mut out = Vec::new();
    for paragraph in status.split("\n\n") {
        let installed = super::dpkg::field(paragraph, "Status")
            .is_some_and(|s| s.split_whitespace().last() == Some("installed"));
        if !installed {
            continue;
        }
        let key = super::dpkg::info_name(paragraph);
        let script = |kind: &str| {
            view.read(&format!("/var/lib/dpkg/info/{key}.{kind}"))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        out.push(super::setup::PackageScripts {
            package: super::dpkg::field(paragraph, "Package")
                .unwrap_or_default()
                .to_owned(),
            preinst: script("preinst"),
            postinst: script("postinst"),
            prerm: script("prerm"),
            postrm: script("postrm"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(3);
            h.set_gid(4);
            h.set_size(data.len() as u64);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, path, *data).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        f
    }

    fn find<'a>(t: &'a BaseTree, p: &str) -> Option<&'a Entry> {
        t.entries
            .iter()
            .find(|(x, _)| x.as_str() == p)
            .map(|(_, e)| e)
    }

    #[test]
    fn merges_layers_with_whiteouts_and_reads_status() {
        use tar::EntryType as T;
        let one = tar_of(&[
            ("bin", T::Symlink, b"", "usr/bin"),
            ("usr/bin/sh", T::Regular, b"dash", ""),
            ("usr/bin/dash", T::Link, b"", "usr/bin/sh"),
            ("etc/gone", T::Regular, b"x", ""),
            ("opt/a/old", T::Regular, b"x", ""),
            (
                "var/lib/dpkg/status",
                T::Regular,
                b"Package: a\nStatus: install ok installed\n",
                "",
            ),
        ]);
        let two = tar_of(&[
            ("etc/.wh.gone", T::Regular, b"", ""),
            ("opt/a/.wh..wh..opq", T::Regular, b"", ""),
            ("opt/a/new", T::Regular, b"y", ""),
        ]);
        let t = read(&[one.path().to_path_buf(), two.path().to_path_buf()]).unwrap();
        assert!(t.merged_usr());
        assert!(find(&t, "etc/gone").is_none() && find(&t, "opt/a/old").is_none());
        assert!(find(&t, "opt/a/new").is_some());
        let dash = find(&t, "usr/bin/dash").unwrap();
        let EntryKind::File(c) = &dash.kind else {
            panic!("a hard link becomes its file")
        };
        assert_eq!(super::super::read_content(c).unwrap(), b"dash");
        assert_eq!((dash.meta.uid, dash.meta.gid), (3, 4));
        assert!(t.dpkg_status().unwrap().starts_with("Package: a"));
    }

    #[test]
    fn refuses_escapes_and_reports_a_missing_status() {
        use tar::EntryType as T;
        let ok = tar_of(&[("etc/passwd", T::Regular, b"root:x:0:0::/root:/bin/sh\n", "")]);
        let t = read(&[ok.path().to_path_buf()]).unwrap();
        assert!(matches!(t.dpkg_status(), Err(BaseTreeError::NoDpkgStatus)));
        // A hard link to a file the layer lacks is refused, never followed out of the tree.
        let bad = tar_of(&[("etc/x", T::Link, b"", "etc/nothing")]);
        let err = read(&[bad.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("hard link"), "{err}");
        // A name climbing out of the root (written raw: tar::Builder refuses it) is refused.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..10].copy_from_slice(b"../etc/out");
        h.set_entry_type(T::Regular);
        h.set_mode(0o644);
        h.set_size(1);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &b.into_inner().unwrap()).unwrap();
        let err = read(&[f.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("../etc/out"), "{err}");
    }
}
