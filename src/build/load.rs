//! `plan`: a recipe planned without building any layer.

use std::path::Path;

use super::{BuildError, base};
use crate::cache::Cache;
use crate::oci::Platform;
use crate::plan::{self, LockMode, Plan, TimePolicy};
use crate::recipe::{self, Recipe};
use crate::registry::RegistryOptions;

/// Loads and plans a recipe without building any layer (package layers not in the cache are
/// laid out, which downloads their packages). A multi-platform recipe is planned for its first
/// platform; [`load_plans`] plans every one.
pub fn load_plan(
    recipe_path: &Path,
    cache: &Cache,
    lock_mode: LockMode,
    registry: &RegistryOptions,
) -> Result<Plan, BuildError> {
    let recipe = recipe::load(recipe_path)?;
    let first = recipe.image.platform.clone();
    plan_recipe(&recipe.for_platform(&first), cache, lock_mode, registry)
}

/// [`load_plan`] for each platform of the recipe, or of `platforms` when not empty.
pub fn load_plans(
    recipe_path: &Path,
    platforms: &[Platform],
    cache: &Cache,
    lock_mode: LockMode,
    registry: &RegistryOptions,
) -> Result<Vec<(Platform, Plan)>, BuildError> {
    let recipe = recipe::load_for_platforms(recipe_path, platforms)?;
    recipe
        .image
        .platforms
        .iter()
        .map(|p| {
            let plan = plan_recipe(&recipe.for_platform(p), cache, lock_mode, registry)?;
            Ok((p.clone(), plan))
        })
        .collect()
}

fn plan_recipe(
    recipe: &Recipe,
    cache: &Cache,
    lock_mode: LockMode,
    registry: &RegistryOptions,
) -> Result<Plan, BuildError> {
    let time = TimePolicy::from_env()?;
    let _lock = cache.lock_shared()?;
    let registry = base::LazyRegistry::new(registry);
    let base = base::resolve(recipe, cache, lock_mode, &registry)?;
    let tree = base::tree(recipe, base.as_ref(), cache, &registry)?;
    Ok(plan::plan(
        recipe,
        base.as_ref().map(|b| plan::PlanBase {
            image: &b.image,
            tree: tree.as_ref(),
        }),
        &time,
        cache,
        lock_mode,
    )?)
}
