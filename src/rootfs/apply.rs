//! Setup effects → entries of the layer being built.
//!
//! An effect on something a lower layer holds (a `chown` of a directory another package
//! shipped) copies that entry into this layer with the new owner and mode: layers can only
//! replace entries, never edit them in place.

use std::sync::Arc;

use super::setup::Effect;
use super::view::TreeRoot;
use crate::digest::Digest;
use crate::image_path::ImagePath;
use crate::layer::{ContentSource, Entry, EntryKind, FileContent, LayerTree, Meta, ViewKind};

#[derive(Debug, thiserror::Error)]
#[error("setup: {path}: {detail}")]
pub struct ApplyError {
    pub path: String,
    pub detail: String,
}

/// Applies `effects` (in [`super::setup::sort_effects`] order) to `tree`. `view` is the merged
/// tree (lower layers and this one) that supplies the content of lower files being re-owned;
/// `touches` limits the effects to the (resolved) paths it accepts; `mtime` dates what setup
/// creates.
pub fn apply_effects(
    tree: &mut LayerTree<'_>,
    view: &TreeRoot,
    effects: &[Effect],
    touches: &dyn Fn(&str) -> bool,
    mtime: u64,
) -> Result<(), ApplyError> {
    for effect in effects {
        if effect.creates() && !touches(&view.resolve(effect.path())) {
            continue;
        }
        match effect {
            Effect::WriteFile {
                path,
                bytes,
                mode,
                uid,
                gid,
            } => {
                let bytes: Arc<[u8]> = bytes.clone().into();
                let entry = Entry {
                    kind: EntryKind::File(FileContent {
                        size: bytes.len() as u64,
                        digest: Some(Digest::of(&bytes)),
                        source: ContentSource::Bytes(bytes),
                    }),
                    meta: Meta {
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                        mtime,
                    },
                };
                insert(tree, path, entry)?;
            }
            Effect::Symlink { path, target } => {
                // base-files ships /var/run and /var/lock as directories and its postinst
                // replaces them with symlinks (`rmdir` + `ln -s`); do the same.
                let at = resolved(tree, path)?;
                if let Some((ViewKind::Dir, _)) = tree.current(&at) {
                    tree.remove_empty_dir(&at);
                }
                let entry = Entry {
                    kind: EntryKind::Symlink {
                        target: target.clone(),
                    },
                    meta: Meta {
                        mode: 0o777,
                        uid: 0,
                        gid: 0,
                        mtime,
                    },
                };
                insert(tree, path, entry)?;
            }
            Effect::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let at = resolved(tree, path)?;
                // An existing directory keeps its time; a new one is dated like other output.
                let time = match tree.current(&at) {
                    Some((ViewKind::Dir, m)) => m.mtime,
                    _ => mtime,
                };
                let meta = Meta {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    mtime: time,
                };
                insert(
                    tree,
                    path,
                    Entry {
                        kind: EntryKind::Dir,
                        meta,
                    },
                )?;
            }
            Effect::Chown {
                path,
                uid,
                gid,
                mode,
                recursive,
            } => {
                for p in targets(view, path, *recursive) {
                    if touches(&p) {
                        change(tree, view, &p, |m| {
                            m.uid = *uid;
                            m.gid = *gid;
                            if let Some(mode) = mode {
                                m.mode = *mode;
                            }
                        })?;
                    }
                }
            }
            Effect::Chmod {
                path,
                mode,
                recursive,
            } => {
                for p in targets(view, path, *recursive) {
                    if touches(&p) {
                        change(tree, view, &p, |m| m.mode = *mode)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn targets(view: &TreeRoot, path: &str, recursive: bool) -> Vec<String> {
    if recursive {
        view.subtree(path)
    } else {
        vec![view.resolve(path)]
    }
}

fn image_path(path: &str) -> Result<ImagePath, ApplyError> {
    ImagePath::from_absolute(path).map_err(|e| ApplyError {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// `path` with its parents resolved through the symlinks of the tree.
fn resolved(tree: &LayerTree<'_>, path: &str) -> Result<ImagePath, ApplyError> {
    let p = image_path(path)?;
    let fail = |e: crate::layer::TreeError| ApplyError {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let parent = tree
        .resolve(&p.parent().unwrap_or_else(ImagePath::root))
        .map_err(fail)?;
    parent
        .join(p.file_name().unwrap_or(""))
        .map_err(|e| ApplyError {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

fn insert(tree: &mut LayerTree<'_>, path: &str, entry: Entry) -> Result<(), ApplyError> {
    let p = image_path(path)?;
    tree.insert(&p, entry).map(|_| ()).map_err(|e| ApplyError {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Re-inserts the entry at `path` (this layer's or a lower one's) with changed metadata.
fn change(
    tree: &mut LayerTree<'_>,
    view: &TreeRoot,
    path: &str,
    edit: impl Fn(&mut Meta),
) -> Result<(), ApplyError> {
    let at = resolved(tree, path)?;
    let entry = match tree.get(&at) {
        // A hard link shares its target's inode: re-owning the link is re-owning the file.
        Some(Entry {
            kind: EntryKind::Hardlink { target },
            ..
        }) => {
            let target = format!("/{}", target.as_str());
            return change(tree, view, &target, edit);
        }
        Some(e) => e.clone(),
        None => match tree.current(&at) {
            Some((ViewKind::Dir, meta)) => Entry {
                kind: EntryKind::Dir,
                meta,
            },
            Some((ViewKind::Symlink(target), meta)) => Entry {
                kind: EntryKind::Symlink { target },
                meta,
            },
            Some((ViewKind::File, meta)) => {
                let content = view.file(path).ok_or_else(|| ApplyError {
                    path: path.to_owned(),
                    detail: "a lower layer's file whose content setup cannot read".into(),
                })?;
                Entry {
                    kind: EntryKind::File(content.clone()),
                    meta,
                }
            }
            None => return Ok(()), // gone: nothing to re-own
        },
    };
    let mut changed = entry.clone();
    edit(&mut changed.meta);
    if changed.meta != entry.meta {
        insert(tree, &format!("/{}", at.as_str()), changed)?;
    }
    Ok(())
}
