//! Turning one recipe item into layer entries: walking and hashing source files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{Clock, PlanError};
use crate::cache::{FileStamp, KnownDigests, StatCache};

/// What reading sources needs: the recipe's clock and the shared stat cache.
pub(super) struct SourceContext<'a> {
    pub clock: &'a Clock,
    pub stat: &'a StatCache,
}
use std::io::Read;

use super::git;
use crate::digest::{Digest, Hasher};
use crate::image_path::ImagePath;
use crate::layer::{ContentSource, Entry, EntryKind, FileContent, LayerTree, Meta};
use crate::recipe::{FilesItem, LayerItem, Location, SourceKind};

pub(super) fn add_item(
    tree: &mut LayerTree,
    item: &LayerItem,
    ctx: &SourceContext,
) -> Result<String, PlanError> {
    let mtime = ctx.clock.generated_time();
    match item {
        LayerItem::Files(f) => add_files(tree, f, ctx),
        LayerItem::Dir {
            path,
            mode,
            owner,
            location,
        } => {
            let meta = Meta {
                mode: *mode,
                uid: owner.uid,
                gid: owner.gid,
                mtime,
            };
            insert(tree, location, path, EntryKind::Dir, meta)?;
            Ok(format!("dir {path}"))
        }
        LayerItem::Symlink {
            path,
            target,
            owner,
            location,
        } => {
            let meta = Meta {
                mode: 0o777,
                uid: owner.uid,
                gid: owner.gid,
                mtime,
            };
            let kind = EntryKind::Symlink {
                target: target.clone(),
            };
            insert(tree, location, path, kind, meta)?;
            Ok(format!("symlink {path} -> {target}"))
        }
        LayerItem::Hardlink {
            path,
            target,
            location,
        } => {
            let meta = Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime,
            };
            let kind = EntryKind::Hardlink {
                target: target.clone(),
            };
            insert(tree, location, path, kind, meta)?;
            Ok(format!("hard link {path} => {target}"))
        }
    }
}

fn insert(
    tree: &mut LayerTree,
    location: &Location,
    path: &ImagePath,
    kind: EntryKind,
    meta: Meta,
) -> Result<ImagePath, PlanError> {
    tree.insert(path, Entry { kind, meta })
        .map_err(|e| PlanError::new(location, e.to_string()))
}

fn add_files(
    tree: &mut LayerTree,
    f: &FilesItem,
    ctx: &SourceContext,
) -> Result<String, PlanError> {
    let mtime = ctx.clock.generated_time();
    let dir_meta = Meta {
        mode: f.dir_mode.unwrap_or(0o755),
        uid: f.owner.uid,
        gid: f.owner.gid,
        mtime,
    };
    let excludes = compile(&f.exclude, &f.location)?;
    let mut count = 0usize;
    match &f.src_kind {
        SourceKind::File(host) => {
            let dest = if f.dest_is_dir {
                let name = host.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    PlanError::new(
                        &f.location,
                        format!("{} has no UTF-8 file name", host.display()),
                    )
                })?;
                ensure_dir(tree, f, &f.dest, dir_meta)?;
                join(&f.dest, name, &f.location)?
            } else {
                f.dest.clone()
            };
            add_path(tree, f, host, &dest, ctx)?;
            count += 1;
        }
        SourceKind::Dir(base) => {
            ensure_dir(tree, f, &f.dest, dir_meta)?;
            count += walk(tree, f, base, &f.dest, &excludes, None, dir_meta, ctx)?;
        }
        SourceKind::Glob { base, pattern } => {
            let matcher = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| PlanError::new(&f.location, e.to_string()))?
                .compile_matcher();
            ensure_dir(tree, f, &f.dest, dir_meta)?;
            count += walk(
                tree,
                f,
                base,
                &f.dest,
                &excludes,
                Some(&matcher),
                dir_meta,
                ctx,
            )?;
            if count == 0 {
                return Err(PlanError::new(
                    &f.location,
                    format!("glob `{}` matched no files", f.src),
                )
                .help("check the pattern; `*` stays within one folder, `**` crosses folders"));
            }
        }
    }
    Ok(format!("{} -> {} ({count} files)", f.src, f.dest))
}

fn compile(patterns: &[String], location: &Location) -> Result<GlobSet, PlanError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(
            GlobBuilder::new(p)
                .build()
                .map_err(|e| PlanError::new(location, e.to_string()))?,
        );
    }
    b.build()
        .map_err(|e| PlanError::new(location, e.to_string()))
}

/// Adds the directory `path` with the item's metadata unless something is already there.
fn ensure_dir(
    tree: &mut LayerTree,
    f: &FilesItem,
    path: &ImagePath,
    meta: Meta,
) -> Result<(), PlanError> {
    if path.is_root() {
        return Ok(());
    }
    let resolved = tree
        .resolve(path)
        .map_err(|e| PlanError::new(&f.location, e.to_string()))?;
    if tree.get(&resolved).is_some() {
        return Ok(());
    }
    insert(tree, &f.location, path, EntryKind::Dir, meta).map(|_| ())
}

fn join(dir: &ImagePath, name: &str, location: &Location) -> Result<ImagePath, PlanError> {
    dir.join(name)
        .map_err(|e| PlanError::new(location, format!("{dir}/{name}: {e}")))
}

/// Walks `base` in name order and adds what passes the filters below `dest`. With a glob, a
/// matched directory brings its whole subtree.
#[allow(clippy::too_many_arguments)]
fn walk(
    tree: &mut LayerTree,
    f: &FilesItem,
    base: &Path,
    dest: &ImagePath,
    excludes: &GlobSet,
    glob: Option<&globset::GlobMatcher>,
    dir_meta: Meta,
    ctx: &SourceContext,
) -> Result<usize, PlanError> {
    let mut count = 0;
    let mut matched_dirs: Vec<String> = Vec::new();
    let mut it = walkdir::WalkDir::new(base)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(next) = it.next() {
        let entry = next
            .map_err(|e| PlanError::new(&f.location, format!("reading {}: {e}", base.display())))?;
        let rel_path = entry
            .path()
            .strip_prefix(base)
            .expect("walkdir stays below its root");
        let rel = rel_path.to_str().ok_or_else(|| {
            PlanError::new(
                &f.location,
                format!("{} is not a UTF-8 path", entry.path().display()),
            )
            .help("rename the file; image paths must be valid UTF-8")
        })?;
        let is_dir = entry.file_type().is_dir();
        if excludes.is_match(rel) {
            if is_dir {
                it.skip_current_dir();
            }
            continue;
        }
        if let Some(glob) = glob {
            let inside_match = matched_dirs
                .iter()
                .any(|d| rel.starts_with(d.as_str()) && rel.as_bytes().get(d.len()) == Some(&b'/'));
            if !inside_match {
                if !glob.is_match(rel) {
                    continue;
                }
                if is_dir {
                    matched_dirs.push(rel.to_string());
                }
            }
        }
        let target = join(dest, rel, &f.location)?;
        if is_dir {
            insert(tree, &f.location, &target, EntryKind::Dir, dir_meta)?;
        } else {
            // With a glob, folders between dest and the match get the item's owner and mode.
            if glob.is_some() {
                for a in target.ancestors() {
                    if a.starts_with(dest) && a != *dest {
                        ensure_dir(tree, f, &a, dir_meta)?;
                    }
                }
            }
            add_path(tree, f, entry.path(), &target, ctx)?;
            count += 1;
        }
    }
    Ok(count)
}

/// Adds one non-directory host path: a regular file (hashed now) or a symlink (kept as a link).
fn add_path(
    tree: &mut LayerTree,
    f: &FilesItem,
    host: &Path,
    dest: &ImagePath,
    ctx: &SourceContext,
) -> Result<(), PlanError> {
    let io = |e: std::io::Error| PlanError::new(&f.location, format!("{}: {e}", host.display()));
    let md = fs::symlink_metadata(host).map_err(io)?;
    let ft = md.file_type();
    let tracked = ctx.clock.tracked(host).is_some();
    let (kind, mode, git_id) = if ft.is_symlink() {
        let target = fs::read_link(host).map_err(io)?;
        let target = target.to_str().ok_or_else(|| {
            PlanError::new(
                &f.location,
                format!("{}: link target is not UTF-8", host.display()),
            )
        })?;
        let git_id = tracked.then(|| {
            let mut h = git::blob_id(target.len() as u64);
            h.update(target.as_bytes());
            h.try_finalize().ok()
        });
        (
            EntryKind::Symlink {
                target: target.to_string(),
            },
            0o777,
            git_id.flatten(),
        )
    } else if ft.is_file() {
        // The stat cache spares reading files that did not change since they were hashed.
        let stamp = FileStamp::of(&md);
        let known = ctx
            .stat
            .get(host, &stamp)
            .filter(|k| !tracked || k.git_blob.is_some());
        let (digest, size, git_id) = match known {
            Some(k) => (
                k.sha256,
                md.len(),
                k.git_blob
                    .and_then(|g| gix::ObjectId::from_hex(g.as_bytes()).ok()),
            ),
            None => {
                let file = fs::File::open(host).map_err(io)?;
                let (digest, size, git_id) = hash_file(file, md.len(), tracked).map_err(io)?;
                if size == md.len() {
                    ctx.stat.put(
                        host,
                        stamp,
                        KnownDigests {
                            sha256: digest.clone(),
                            git_blob: git_id.map(|g| g.to_string()),
                        },
                    );
                }
                (digest, size, git_id)
            }
        };
        // Without an explicit mode only the executable bit survives, as in git: a checkout's
        // umask must not change the image.
        let mode = f.mode.unwrap_or(if md.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        });
        (
            EntryKind::File(FileContent {
                source: ContentSource::Host(host.to_path_buf()),
                size,
                digest: Some(digest),
            }),
            mode,
            git_id,
        )
    } else {
        return Err(PlanError::new(
            &f.location,
            format!("{} is a device, socket or pipe", host.display()),
        )
        .help("only regular files, directories and symlinks can be copied; add it to `exclude`"));
    };
    let meta = Meta {
        mode,
        uid: f.owner.uid,
        gid: f.owner.gid,
        mtime: ctx.clock.source_time(host, git_id),
    };
    insert(tree, &f.location, dest, kind, meta).map(|_| ())
}

/// SHA-256 and size of a file, and its git blob id when `with_git_id` (one read for both).
pub(super) fn hash_file(
    mut file: fs::File,
    expected_len: u64,
    with_git_id: bool,
) -> std::io::Result<(Digest, u64, Option<gix::ObjectId>)> {
    let mut sha = Hasher::new();
    let mut git = with_git_id.then(|| git::blob_id(expected_len));
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        if let Some(g) = git.as_mut() {
            g.update(&buf[..n]);
        }
    }
    let (digest, size) = sha.finish();
    // A file that changed size while being read cannot match the header hashed up front.
    let git_id = match git {
        Some(g) if size == expected_len => g.try_finalize().ok(),
        _ => None,
    };
    Ok((digest, size, git_id))
}
