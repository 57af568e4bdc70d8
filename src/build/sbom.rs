//! `sbom`: the SBOM of a recipe's image, built first if it is not (a cached build only plans,
//! which reads the lockfile or the cached resolution and the layers' records).

use std::path::Path;

use super::{BuildError, BuildOptions, BuildResult, Progress, build};
use crate::cache::Cache;
use crate::sbom::{SbomDocument, SbomFormat, SbomInput};

impl BuildResult {
    /// What the SBOM of this image is written from; `cache` is the one it was built in.
    pub fn sbom_input<'a>(&'a self, cache: &'a Cache) -> SbomInput<'a> {
        SbomInput {
            image: &self.image,
            plan: &self.plan,
            recipe: &self.recipe,
            cache,
        }
    }
}

/// Builds the recipe (writing `opts.outputs`, if any) and writes its SBOM in each of `formats`.
pub fn sbom(
    recipe_path: &Path,
    opts: &BuildOptions,
    formats: &[SbomFormat],
    progress: &dyn Progress,
) -> Result<Vec<SbomDocument>, BuildError> {
    let result = build(recipe_path, opts, progress)?;
    let cache = Cache::open(&opts.cache_dir)?;
    Ok(crate::sbom::documents(&result.sbom_input(&cache), formats)?)
}
