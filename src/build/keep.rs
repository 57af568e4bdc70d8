//! What `cache gc --keep RECIPE` must not remove.

use std::path::PathBuf;

use super::{BuildError, load_plan};
use crate::cache::{Cache, Keep};
use crate::plan::LockMode;
use crate::registry::RegistryOptions;

/// Every layer the recipes use and their packages. Each recipe is planned under the shared
/// lock, released before the collection takes the exclusive one.
pub fn keep_set(recipes: &[PathBuf], cache: &Cache) -> Result<Keep, BuildError> {
    let mut keep = Keep::default();
    for r in recipes {
        let plan = load_plan(r, cache, LockMode::Prefer, &RegistryOptions::default())?;
        keep.layer_keys
            .extend(plan.layers.iter().map(|l| l.key.clone()));
        if let Some(lock) = &plan.lock {
            for layer in &lock.layers {
                keep.debs
                    .extend(layer.packages.iter().map(|p| p.sha256.clone()));
            }
        }
    }
    Ok(keep)
}
