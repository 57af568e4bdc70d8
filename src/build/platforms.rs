//! Multi-platform builds (`[image] platforms`, `--platform a,b`): one image per platform,
//! each made by the single-platform pipeline exactly as a one-platform build makes it, then an
//! image index over them (a Docker manifest list for `format = "docker"`).
//!
//! Nothing is shared between the platforms' builds but the cache, and the cache is what makes
//! them cheap: a file or WAR layer has the same key on every platform (its contents do not
//! depend on the architecture), so the second platform finds it built; `Architecture: all`
//! packages have one URL and one sha256, so their .debs are downloaded once. A recipe with one
//! platform never comes here: its build, digests and stdout are the single-platform ones.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use super::build_image::{build_recipe, check_outputs};
use super::{BuildError, BuildOptions, BuildResult, Progress};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::image::ImageFormat;
use crate::oci::{Descriptor, Index, MediaType, Platform};
use crate::output::{self, OutputTarget, StoredIndex};
use crate::recipe::{self, Recipe, WarItem};

/// What `build` made: one image, or one per platform and an index over them.
#[derive(Debug)]
pub enum Built {
    One(Box<BuildResult>),
    Several(MultiBuild),
}

impl Built {
    /// The digest `build` prints: the image manifest's, or the index's.
    pub fn digest(&self) -> &Digest {
        match self {
            Built::One(r) => r.manifest_digest(),
            Built::Several(m) => &m.index.digest,
        }
    }
}

/// A multi-platform build.
#[derive(Debug)]
pub struct MultiBuild {
    /// Each platform's build, in the recipe's order (the index's order).
    pub images: Vec<(Platform, BuildResult)>,
    pub index: StoredIndex,
}

/// Builds the recipe for each of its platforms (or `opts.platforms`), then the index; writes
/// `opts.outputs` (an OCI layout tags the index). One platform: [`super::build`]'s result.
pub fn build_all(
    recipe_path: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<Built, BuildError> {
    let recipe = recipe::load_for_platforms(recipe_path, &opts.platforms)?;
    let base_bytes = !opts.outputs.is_empty();
    if recipe.image.platforms.len() == 1 {
        let one = build_recipe(recipe_path, recipe, opts, base_bytes, progress)?;
        return Ok(Built::One(Box::new(one)));
    }
    refuse_archives(&recipe, &opts.outputs)?;
    check_outputs(&recipe.image.format, &opts.outputs)?;
    let each = BuildOptions {
        outputs: Vec::new(),
        ..opts.clone()
    };
    let mut images = Vec::new();
    for platform in &recipe.image.platforms {
        tracing::info!("building for {platform}");
        let built = build_recipe(
            recipe_path,
            recipe.for_platform(platform),
            &each,
            base_bytes,
            progress,
        )?;
        images.push((platform.clone(), built));
    }
    check_shared_layers(&recipe, &images);
    let cache = Cache::open(&opts.cache_dir)?;
    let index = assemble_index(recipe.image.format, &images, &cache)?;
    for target in &opts.outputs {
        let started = Instant::now();
        output::write_index(target, &index, &cache).map_err(|source| BuildError::Output {
            target: target.to_string(),
            source,
        })?;
        progress.output_written(target, started.elapsed());
    }
    Ok(Built::Several(MultiBuild { images, index }))
}

/// `--provenance`, `--sbom` and `--sign-key` describe one image manifest: with several
/// platforms they are refused before anything is built, not after minutes of building.
pub fn refuse_attest_for_several(
    recipe_path: &Path,
    platforms: &[Platform],
) -> Result<(), BuildError> {
    let recipe = recipe::load_for_platforms(recipe_path, platforms)?;
    if recipe.image.platforms.len() > 1 {
        return Err(BuildError::AttestOnePlatform {
            platforms: recipe::list_platforms(&recipe.image.platforms),
        });
    }
    Ok(())
}

/// A docker archive holds one image: refused, before anything is built, for several platforms.
fn refuse_archives(recipe: &Recipe, outputs: &[OutputTarget]) -> Result<(), BuildError> {
    match outputs
        .iter()
        .find(|o| matches!(o, OutputTarget::DockerArchive { .. }))
    {
        Some(target) => Err(BuildError::ArchiveOnePlatform {
            target: target.to_string(),
            platforms: recipe::list_platforms(&recipe.image.platforms),
        }),
        None => Ok(()),
    }
}

/// The index over the platforms' manifests, each entry with its platform; stored in the cache.
fn assemble_index(
    format: ImageFormat,
    images: &[(Platform, BuildResult)],
    cache: &Cache,
) -> Result<StoredIndex, BuildError> {
    let manifests = images
        .iter()
        .map(|(platform, built)| {
            let mut d = Descriptor::new(
                MediaType::from(built.image.manifest_media_type.as_str()),
                built.image.manifest_digest.clone(),
                built.image.manifest_size,
            );
            d.platform = Some(platform.clone());
            d
        })
        .collect();
    let mut index = Index::new(manifests);
    if format == ImageFormat::Docker {
        index.media_type = Some(MediaType::DOCKER_MANIFEST_LIST);
    }
    let bytes = index.to_canonical_json();
    let digest = cache.put_bytes(&bytes)?;
    let first = &images[0].1.image;
    Ok(StoredIndex {
        digest,
        size: bytes.len() as u64,
        media_type: index.effective_media_type().as_str().to_owned(),
        images: images.iter().map(|(_, b)| b.image.clone()).collect(),
        name: first.name.clone(),
        tags: first.tags.clone(),
    })
}

/// The names of the chain's layers that hold files or an exploded WAR: their contents do not
/// depend on the platform.
pub fn platform_independent_layers(recipe: &Recipe) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for r in recipe.chain() {
        for l in r.layers.iter().filter(|l| l.packages.is_none()) {
            if l.war.is_some() {
                names.extend(
                    WarItem::LAYER_SUFFIXES
                        .iter()
                        .map(|s| format!("{}-{s}", l.name)),
                );
            } else {
                names.insert(l.name.clone());
            }
        }
    }
    names
}

/// File and WAR layers must come out byte-identical on every platform (then they are stored,
/// pushed and mounted once). They do by construction, as their keys leave the platform out;
/// a difference is a bug, said loudly, but the images are still correct.
fn check_shared_layers(recipe: &Recipe, images: &[(Platform, BuildResult)]) {
    for name in platform_independent_layers(recipe) {
        let digests: BTreeSet<&Digest> = images
            .iter()
            .flat_map(|(_, b)| b.layers.iter().filter(|l| l.name == name))
            .map(|l| &l.record.digest)
            .collect();
        if digests.len() > 1 {
            tracing::warn!(
                "layer `{name}` differs between platforms ({} versions): a bug in stevedore, please report it",
                digests.len()
            );
        }
    }
}
