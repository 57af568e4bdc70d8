//! `lock`: resolve afresh and write the recipe's lockfile.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BuildError, base};
use crate::apt;
use crate::cache::Cache;
use crate::oci::Platform;
use crate::plan::{self, LockMode};
use crate::recipe::{self, Recipe};
use crate::registry::RegistryOptions;

/// Resolves the recipe's package layers and registry base afresh and writes its lockfile
/// (atomically) next to it; returns the lockfile's path. Holds the cache's shared lock while it
/// resolves (the indexes and the kept resolution live in the cache).
///
/// A recipe with several platforms (or several `platforms`) gets one entry per platform
/// ([`apt::MultiLockfile`]); one platform keeps the one-platform form. Returns each platform's
/// lock.
pub fn lock(
    recipe_path: &Path,
    platforms: &[Platform],
    cache_dir: &Path,
    registry: &RegistryOptions,
) -> Result<(PathBuf, Vec<(Platform, apt::Lockfile)>), BuildError> {
    let recipe = recipe::load_for_platforms(recipe_path, platforms)?;
    let mut locks = Vec::new();
    for p in &recipe.image.platforms {
        let lock = lock_one(recipe_path, &recipe.for_platform(p), cache_dir, registry)?;
        locks.push((p.clone(), lock));
    }
    let text = match &locks[..] {
        [(_, one)] => one.to_toml(),
        _ => apt::MultiLockfile::new(locks.clone()).to_toml(),
    };
    let path = plan::lockfile_path(recipe_path);
    write_lockfile(&path, &text).map_err(|source| BuildError::WriteLockfile {
        path: path.clone(),
        source,
    })?;
    Ok((path, locks))
}

/// The lock of a recipe loaded for one platform.
fn lock_one(
    recipe_path: &Path,
    recipe: &Recipe,
    cache_dir: &Path,
    registry: &RegistryOptions,
) -> Result<apt::Lockfile, BuildError> {
    let cache = Cache::open(cache_dir)?;
    let cache_lock = cache.lock_shared()?;
    let registry = base::LazyRegistry::new(registry);
    let base = base::resolve(recipe, &cache, LockMode::Fresh, &registry)?;
    // Packages over a registry base resolve from its installed set (read from its layers).
    let tree = base::tree(recipe, base.as_ref(), &cache, &registry)?;
    let state = match (&base, &tree) {
        (Some(b), Some(t)) => t.status.as_deref().map(|status| plan::packages::BaseState {
            digest: &b.image.manifest_digest,
            status,
        }),
        _ => None,
    };
    let packages = plan::packages::lock_for(recipe, &cache, LockMode::Fresh, state)?;
    drop(cache_lock);
    let mut lock = match (packages, &base) {
        (Some(lock), _) => lock,
        (None, Some(_)) => {
            apt::Lockfile::new(plan::packages::inputs_hash(recipe, None)?, Vec::new())
        }
        (None, None) => {
            return Err(BuildError::NothingToLock {
                recipe: recipe_path.to_path_buf(),
            });
        }
    };
    if let (Some(b), Some(from)) = (&base, recipe.image_base()) {
        lock.base = Some(apt::LockedBase {
            reference: from.reference.to_string(),
            digest: b.image.manifest_digest.clone(),
        });
    }
    Ok(lock)
}

/// Temp file in the same folder, synced, renamed: a crash leaves the old lockfile or the new
/// one, never half of one.
fn write_lockfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
