//! Packages → layer entries, without extracting to the host and without running scripts.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dpkg;
use super::setup::PackageScripts;
use crate::apt::Deb;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::image_path::ImagePath;
use crate::layer::{
    ContentSource, Entry, EntryKind, FileContent, LayerTree, LowerView, Meta, ViewKind,
};

/// One verified package to install: its name (for messages), sha256 and the `.deb` file.
#[derive(Clone, Debug)]
pub struct PackageFile {
    pub name: String,
    pub sha256: Digest,
    pub deb: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{package}: {message}")]
    Package { package: String, message: String },
    #[error(
        "file conflict: {path} is in both {first} and {second}, and neither Replaces the other"
    )]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("{0}")]
    Tree(#[from] crate::layer::TreeError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

/// The layer (not finished yet: setup adds to it) and the cumulative dpkg status it carries.
pub struct Installed<'a> {
    pub tree: LayerTree<'a>,
    pub status: String,
    /// The packages' maintainer scripts, in install order, for setup to reproduce.
    pub scripts: Vec<PackageScripts>,
}

/// Directories merged into `/usr` on Debian since bookworm and Ubuntu since 19.04.
const MERGED: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// A package opened, spooled and listed.
type Unpacked<'p> = (&'p PackageFile, Deb, Vec<DebEntry>);

struct DebEntry {
    path: String,
    kind: EntryKind,
    meta: Meta,
}

/// Installs `packages` on top of `lower`. `lower_status` is the dpkg status of the layers below;
/// `generated` is the mtime of the files stevedore writes itself (the dpkg database).
pub fn install<'a>(
    packages: &[PackageFile],
    lower: &'a LowerView,
    lower_status: &str,
    merged_usr: bool,
    generated: u64,
    cache: &Cache,
) -> Result<Installed<'a>, InstallError> {
    let implied = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: generated,
    };
    let mut tree = LayerTree::new(lower, implied);
    tree.keep_explicit_dir_times();
    if packages.is_empty() {
        // A setup-only step (accounts a recipe declares): no dpkg database to rewrite.
        return Ok(Installed {
            tree,
            status: lower_status.to_owned(),
            scripts: Vec::new(),
        });
    }

    let unpacked = unpack_all(packages, cache)?;
    if merged_usr {
        add_merged_usr_links(&mut tree, lower, &unpacked, implied)?;
    }
    let controls: Vec<String> = unpacked.iter().map(|(_, d, _)| d.control()).collect();
    lay_out(&mut tree, lower, &unpacked, &controls)?;
    let status = write_dpkg_database(&mut tree, &unpacked, &controls, lower_status, generated)?;
    let scripts = unpacked
        .iter()
        .map(|(p, deb, _)| {
            let text = |f: &str| {
                deb.control_file(f)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            PackageScripts {
                package: p.name.clone(),
                preinst: text("preinst"),
                postinst: text("postinst"),
                prerm: text("prerm"),
                postrm: text("postrm"),
            }
        })
        .collect();
    Ok(Installed {
        tree,
        status,
        scripts,
    })
}

/// On a merged-/usr layout, the `bin`, `sbin`, `lib*` links into `/usr` the packages need that
/// the layers below do not have yet.
fn add_merged_usr_links(
    tree: &mut LayerTree<'_>,
    lower: &LowerView,
    unpacked: &[Unpacked<'_>],
    implied: Meta,
) -> Result<(), InstallError> {
    let used: Vec<&str> = MERGED
        .into_iter()
        .filter(|top| {
            unpacked.iter().any(|(_, _, es)| {
                es.iter()
                    .any(|e| e.path == *top || e.path.starts_with(&format!("{top}/")))
            })
        })
        .collect();
    for top in used {
        let path = ImagePath::from_relative(top).expect("fixed names");
        if lower.get(&path).is_none() {
            let link = Entry {
                kind: EntryKind::Symlink {
                    target: format!("usr/{top}"),
                },
                meta: Meta {
                    mode: 0o777,
                    ..implied
                },
            };
            tree.insert(&path, link)?;
        }
    }
    Ok(())
}

/// Puts every package's entries in the layer, following dpkg's rules for paths two packages
/// ship (`Replaces`) and refusing the others.
fn lay_out(
    tree: &mut LayerTree<'_>,
    lower: &LowerView,
    unpacked: &[Unpacked<'_>],
    controls: &[String],
) -> Result<(), InstallError> {
    // Which package put each non-directory path (after mapping), for dpkg's conflict rules.
    let mut owners: HashMap<ImagePath, usize> = HashMap::new();
    for (i, (p, _, entries)) in unpacked.iter().enumerate() {
        for e in entries {
            let path = ImagePath::from_relative(&e.path).map_err(|err| InstallError::Package {
                package: p.name.clone(),
                message: format!("bad path {:?}: {err}", e.path),
            })?;
            let is_dir = matches!(e.kind, EntryKind::Dir);
            if !is_dir {
                let mapped = tree.resolve(&path.parent().unwrap_or_else(ImagePath::root))?;
                let mapped = mapped
                    .join(path.file_name().unwrap_or(""))
                    .unwrap_or_else(|_| path.clone());
                if let Some(&j) = owners.get(&mapped)
                    && j != i
                {
                    let (mine, theirs) = (&controls[i], &controls[j]);
                    let other = &unpacked[j].0.name;
                    if dpkg::replaces(theirs).iter().any(|r| r == &p.name) {
                        continue; // the earlier package replaces this one: keep its file
                    }
                    if !dpkg::replaces(mine).iter().any(|r| r == other) {
                        return Err(InstallError::Conflict {
                            path: format!("/{}", mapped.as_str()),
                            first: other.clone(),
                            second: p.name.clone(),
                        });
                    }
                }
                owners.insert(mapped, i);
            } else if let Some((ViewKind::File, _)) = lower.get(&path) {
                return Err(InstallError::Package {
                    package: p.name.clone(),
                    message: format!("directory /{} is a file in a lower layer", e.path),
                });
            }
            tree.insert(
                &path,
                Entry {
                    kind: e.kind.clone(),
                    meta: e.meta,
                },
            )
            .map_err(|err| InstallError::Package {
                package: p.name.clone(),
                message: err.to_string(),
            })?;
        }
    }
    Ok(())
}

/// The dpkg database of the packages: their info files, lists, and the status merged with
/// the layers' below, which is returned.
fn write_dpkg_database(
    tree: &mut LayerTree<'_>,
    unpacked: &[Unpacked<'_>],
    controls: &[String],
    lower_status: &str,
    generated: u64,
) -> Result<String, InstallError> {
    // The dpkg database.
    let mut paragraphs = Vec::new();
    let file_meta = Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: generated,
    };
    let add_file = |tree: &mut LayerTree, path: &str, bytes: Vec<u8>, mode: u32| {
        let bytes: Arc<[u8]> = bytes.into();
        tree.insert(
            &ImagePath::from_relative(path).expect("generated paths are clean"),
            Entry {
                kind: EntryKind::File(FileContent {
                    size: bytes.len() as u64,
                    digest: Some(Digest::of(&bytes)),
                    source: ContentSource::Bytes(bytes),
                }),
                meta: Meta { mode, ..file_meta },
            },
        )
    };
    for ((_, deb, entries), control) in unpacked.iter().zip(controls) {
        let name = dpkg::info_name(control);
        let text = |f: &str| {
            deb.control_file(f)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let conffiles = text("conffiles");
        let mut conffile_md5 = std::collections::BTreeMap::new();
        for c in dpkg::conffile_paths(conffiles.as_deref()) {
            let rel = c.trim_start_matches('/');
            if let Some(EntryKind::File(f)) =
                entries.iter().find(|e| e.path == rel).map(|e| &e.kind)
            {
                let sum = md5_of(f).map_err(|e| InstallError::Package {
                    package: dpkg::info_name(control),
                    message: format!("reading conffile {c}: {e}"),
                })?;
                conffile_md5.insert(c.to_string(), sum);
            }
        }
        paragraphs.push(dpkg::status_paragraph(
            control,
            conffiles.as_deref(),
            text("md5sums").as_deref(),
            &conffile_md5,
        ));
        let mut list = String::from("/.\n");
        for e in entries {
            list.push('/');
            list.push_str(&e.path);
            list.push('\n');
        }
        add_file(
            tree,
            &format!("var/lib/dpkg/info/{name}.list"),
            list.into_bytes(),
            0o644,
        )?;
        for (file, bytes) in deb.control_files() {
            if file == "control" || file.contains('/') || file.is_empty() {
                continue;
            }
            let mode =
                if ["preinst", "postinst", "prerm", "postrm", "config"].contains(&file.as_str()) {
                    0o755
                } else {
                    0o644
                };
            add_file(
                tree,
                &format!("var/lib/dpkg/info/{name}.{file}"),
                bytes.clone(),
                mode,
            )?;
        }
    }
    // Info database format 1: multi-arch names (`libc6:amd64.list`); without this file dpkg
    // assumes the old layout and reports the lists of `Multi-Arch: same` packages as missing.
    add_file(tree, "var/lib/dpkg/info/format", b"1\n".to_vec(), 0o644)?;
    let status = dpkg::merge_status(lower_status, &paragraphs);
    add_file(
        tree,
        "var/lib/dpkg/status",
        status.clone().into_bytes(),
        0o644,
    )?;
    Ok(status)
}

/// Conffiles are small: read whole.
fn md5_of(f: &FileContent) -> std::io::Result<String> {
    use md5::Digest as _;
    Ok(hex::encode(md5::Md5::digest(super::read_content(f)?)))
}

/// Opens, spools and lists every package, several at once (xz decoding is most of a cold
/// build's CPU after compression); results in `packages`' order, the first error wins.
fn unpack_all<'p>(
    packages: &'p [PackageFile],
    cache: &Cache,
) -> Result<Vec<Unpacked<'p>>, InstallError> {
    let one = |p: &PackageFile| -> Result<(Deb, Vec<DebEntry>), InstallError> {
        let deb = Deb::open(&p.deb).map_err(|e| InstallError::Package {
            package: p.name.clone(),
            message: e.to_string(),
        })?;
        let spool = spool(p, &deb, cache)?;
        let entries = read_entries(p, &spool)?;
        Ok((deb, entries))
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Slot = std::sync::Mutex<Option<Result<(Deb, Vec<DebEntry>), InstallError>>>;
    let results: Vec<Slot> = packages.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(packages.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = packages.get(i) else { return };
                    let result = one(p);
                    let failed = result.is_err();
                    *results[i].lock().expect("no panics hold this lock") = Some(result);
                    if failed {
                        next.store(packages.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut out = Vec::with_capacity(packages.len());
    for (p, r) in packages.iter().zip(results) {
        match r.into_inner().expect("threads joined") {
            Some(Ok((deb, entries))) => out.push((p, deb, entries)),
            Some(Err(e)) => return Err(e),
            // Not reached: work stopped after an earlier failure, which was returned above.
            None => unreachable!("unpacking stops only after a failure"),
        }
    }
    Ok(out)
}

/// Keeps a package's data.tar decompressed in the cache (once per package sha256), so its
/// entries can be read in any order, and returns where. Safe to call for the same package
/// from several threads and builds at once: one decompresses (under a lock file), the others
/// wait and find it done. Temp file + rename: a killed build leaves no partial spool.
pub fn spool_deb(
    name: &str,
    sha256: &Digest,
    deb: &Path,
    cache: &Cache,
) -> Result<Arc<PathBuf>, InstallError> {
    let path = cache.unpacked_deb_path(sha256);
    if cache.unpacked_deb_complete(sha256) {
        return Ok(Arc::new(path));
    }
    let deb = Deb::open(deb).map_err(|e| InstallError::Package {
        package: name.to_owned(),
        message: e.to_string(),
    })?;
    spool(
        &PackageFile {
            name: name.to_owned(),
            sha256: sha256.clone(),
            deb: PathBuf::new(),
        },
        &deb,
        cache,
    )
}

fn spool(p: &PackageFile, deb: &Deb, cache: &Cache) -> Result<Arc<PathBuf>, InstallError> {
    let path = cache.unpacked_deb_path(&p.sha256);
    if cache.unpacked_deb_complete(&p.sha256) {
        return Ok(Arc::new(path));
    }
    let dir = path.parent().expect("spool paths have a parent");
    let fail = |message: String| InstallError::Package {
        package: p.name.clone(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(format!("{}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| fail(format!("{}: {e}", lock_path.display())))?;
    if cache.unpacked_deb_complete(&p.sha256) {
        return Ok(Arc::new(path)); // done by another thread or build while we waited
    }
    if path.exists() {
        tracing::warn!(
            "{}: the unpacked package {} is incomplete; unpacking it again",
            p.name,
            path.display()
        );
    }
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(e.to_string()))?;
    deb.unpack_data_tar_to(tmp.as_file())
        .map_err(|e| fail(e.to_string()))?;
    // Synced before the rename, and its length recorded after: a spool is trusted only when
    // both agree (see `Cache::unpacked_deb_complete`).
    tmp.as_file().sync_data().map_err(|e| fail(e.to_string()))?;
    let len = tmp
        .as_file()
        .metadata()
        .map_err(|e| fail(e.to_string()))?
        .len();
    tmp.persist(&path).map_err(|e| fail(e.error.to_string()))?;
    cache.mark_unpacked_deb(&p.sha256, len)?;
    // Waiters hold the old inode and re-check the spool once they get it.
    let _ = std::fs::remove_file(&lock_path);
    Ok(Arc::new(path))
}

fn read_entries(p: &PackageFile, spool: &Arc<PathBuf>) -> Result<Vec<DebEntry>, InstallError> {
    let fail = |message: String| InstallError::Package {
        package: p.name.clone(),
        message,
    };
    let file = File::open(spool.as_path()).map_err(|e| fail(e.to_string()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(64 * 1024, file));
    let mut out = Vec::new();
    // With seek: file data is skipped, not read (a JDK spool is 200 MB of it).
    for entry in archive
        .entries_with_seek()
        .map_err(|e| fail(e.to_string()))?
    {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        let raw = entry.path().map_err(|e| fail(e.to_string()))?;
        let raw = raw
            .to_str()
            .ok_or_else(|| fail("non-UTF-8 path".into()))?
            .to_string();
        let Some(path) = clean(&raw) else {
            return Err(fail(format!("refusing path {raw:?} (absolute or with ..)")));
        };
        if path.is_empty() {
            continue; // the archive's own "./"
        }
        let h = entry.header();
        let meta = Meta {
            mode: h.mode().map_err(|e| fail(e.to_string()))? & 0o7777,
            uid: h.uid().map_err(|e| fail(e.to_string()))? as u32,
            gid: h.gid().map_err(|e| fail(e.to_string()))? as u32,
            mtime: h.mtime().map_err(|e| fail(e.to_string()))?,
        };
        let link = || -> Result<String, InstallError> {
            let l = entry
                .link_name()
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("{raw}: link without target")))?;
            Ok(l.to_str()
                .ok_or_else(|| fail("non-UTF-8 link".into()))?
                .to_string())
        };
        let kind = match h.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File(FileContent {
                source: ContentSource::Range {
                    path: Arc::clone(spool),
                    offset: entry.raw_file_position(),
                },
                size: entry.size(),
                digest: None,
            }),
            tar::EntryType::Symlink => EntryKind::Symlink { target: link()? },
            tar::EntryType::Link => {
                let target = link()?;
                let target = clean(&target)
                    .and_then(|t| ImagePath::from_relative(&t).ok())
                    .ok_or_else(|| fail(format!("bad hard link target {target:?}")))?;
                EntryKind::Hardlink { target }
            }
            other => {
                return Err(fail(format!("{raw}: unsupported entry type {other:?}")));
            }
        };
        out.push(DebEntry { path, kind, meta });
    }
    Ok(out)
}

/// `./usr/bin/` → `usr/bin`; `None` for absolute paths or `..`.
fn clean(raw: &str) -> Option<String> {
    if raw.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}
