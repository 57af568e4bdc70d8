//! `lock`: resolve afresh and write the recipe's lockfile.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BuildError, base};
use crate::apt;
use crate::cache::Cache;
use crate::plan::{self, LockMode};
use crate::recipe;
use crate::registry::RegistryOptions;

/// Resolves the recipe's package layers and registry base afresh and writes its lockfile
/// (atomically) next to it; returns the lockfile's path. Holds the cache's shared lock while it
/// resolves (the indexes and the kept resolution live in the cache).
pub fn lock(
    recipe_path: &Path,
    cache_dir: &Path,
    registry: &RegistryOptions,
) -> Result<(PathBuf, apt::Lockfile), BuildError> {
    let recipe = recipe::load(recipe_path)?;
    let cache = Cache::open(cache_dir)?;
    let cache_lock = cache.lock_shared()?;
    let registry = base::LazyRegistry::new(registry);
    let base = base::resolve(&recipe, &cache, LockMode::Fresh, &registry)?;
    // Packages over a registry base resolve from its installed set (read from its layers).
    let tree = base::tree(&recipe, base.as_ref(), &cache, &registry)?;
    let state = match (&base, &tree) {
        (Some(b), Some(t)) => t.status.as_deref().map(|status| plan::packages::BaseState {
            digest: &b.image.manifest_digest,
            status,
        }),
        _ => None,
    };
    let packages = plan::packages::lock_for(&recipe, &cache, LockMode::Fresh, state)?;
    drop(cache_lock);
    let mut lock = match (packages, &base) {
        (Some(lock), _) => lock,
        (None, Some(_)) => {
            apt::Lockfile::new(plan::packages::inputs_hash(&recipe, None)?, Vec::new())
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
    let path = plan::lockfile_path(recipe_path);
    write_lockfile(&path, &lock).map_err(|source| BuildError::WriteLockfile {
        path: path.clone(),
        source,
    })?;
    Ok((path, lock))
}

/// Temp file in the same folder, synced, renamed: a crash leaves the old lockfile or the new
/// one, never half of one.
fn write_lockfile(path: &Path, lock: &apt::Lockfile) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(lock.to_toml().as_bytes())?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
