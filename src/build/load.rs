//! `plan`: a recipe planned without building any layer.

use std::path::Path;

use super::{BuildError, base};
use crate::cache::Cache;
use crate::plan::{self, LockMode, Plan, TimePolicy};
use crate::recipe;
use crate::registry::RegistryOptions;

/// Loads and plans a recipe without building any layer (package layers not in the cache are
/// laid out, which downloads their packages).
pub fn load_plan(
    recipe_path: &Path,
    cache: &Cache,
    lock_mode: LockMode,
    registry: &RegistryOptions,
) -> Result<Plan, BuildError> {
    let recipe = recipe::load(recipe_path)?;
    let time = TimePolicy::from_env()?;
    let _lock = cache.lock_shared()?;
    let registry = base::LazyRegistry::new(registry);
    let base = base::resolve(&recipe, cache, lock_mode, &registry)?;
    let tree = base::tree(&recipe, base.as_ref(), cache, &registry)?;
    Ok(plan::plan(
        &recipe,
        base.as_ref().map(|b| plan::PlanBase {
            image: &b.image,
            tree: tree.as_ref(),
        }),
        &time,
        cache,
        lock_mode,
    )?)
}
