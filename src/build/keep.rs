//! What `cache gc --keep RECIPE` must not remove.

use std::path::PathBuf;

use super::{BuildError, load_plans};
use crate::cache::{Cache, Keep};
use crate::plan::LockMode;
use crate::registry::RegistryOptions;

/// Every layer the recipes use and their packages. Each recipe is planned under the shared
/// lock, released before the collection takes the exclusive one.
pub fn keep_set(recipes: &[PathBuf], cache: &Cache) -> Result<Keep, BuildError> {
    let mut keep = Keep::default();
    for r in recipes {
        // Every platform of a multi-platform recipe.
        let plans = load_plans(r, &[], cache, LockMode::Prefer, &RegistryOptions::default())?;
        for (_, plan) in plans {
            keep_plan(&mut keep, &plan);
        }
    }
    Ok(keep)
}

/// The plan's layers and the .debs of its packages.
fn keep_plan(keep: &mut Keep, plan: &crate::plan::Plan) {
    keep.layer_keys
        .extend(plan.layers.iter().map(|l| l.key.clone()));
    if let Some(lock) = &plan.lock {
        for layer in &lock.layers {
            keep.debs
                .extend(layer.packages.iter().map(|p| p.sha256.clone()));
        }
    }
}
