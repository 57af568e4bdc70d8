//! `build`: plan, write the layers that are not cached, assemble the image, write the outputs.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{
    BuildError, BuildOptions, BuildResult, BuiltLayer, LayerStatus, Progress, base, fleet_hooks,
    record,
};
use crate::cache::{Cache, LayerRecord};
use crate::image::{self, BaseImage, ImageDocuments, ImageLayer, ImageSpec};
use crate::layer;
use crate::output::{self, OutputTarget, StoredImage, StoredLayer};
use crate::plan::{self, Plan, PlannedLayer, TimePolicy};
use crate::recipe;

/// Builds the recipe into the cache and writes `opts.outputs`. Holds the cache's shared lock
/// from start to end (so `cache gc` waits); the result keeps holding it, so a push of the
/// result ([`super::push_built`]) finds every blob the build made.
///
/// The recipe (after `opts.platforms`) must build one platform; [`super::build_all`] builds
/// any number.
pub fn build(
    recipe_path: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildResult, BuildError> {
    let recipe = recipe::load_for_platforms(recipe_path, &opts.platforms)?;
    if recipe.image.platforms.len() > 1 {
        return Err(BuildError::SeveralPlatforms {
            recipe: recipe_path.to_path_buf(),
            platforms: recipe::list_platforms(&recipe.image.platforms),
        });
    }
    build_recipe(
        recipe_path,
        recipe,
        opts,
        !opts.outputs.is_empty(),
        progress,
    )
}

/// [`build`] of a recipe already loaded for one platform. `base_bytes`: fetch the registry
/// base's layers (local outputs need them; a multi-platform build writes its outputs after
/// every platform is built, so its platforms' builds have none of their own).
pub(super) fn build_recipe(
    recipe_path: &Path,
    recipe: recipe::Recipe,
    opts: &BuildOptions,
    base_bytes: bool,
    progress: &dyn Progress,
) -> Result<BuildResult, BuildError> {
    let time = TimePolicy::from_env()?;
    let cache = Cache::open(&opts.cache_dir)?;
    let lock = cache.lock_shared()?;
    check_outputs(&recipe.image.format, &opts.outputs)?;
    let registry = base::LazyRegistry::new(&opts.registry);
    let base = base::resolve(&recipe, &cache, opts.lock_mode, &registry)?;
    if let (Some(b), Some(from)) = (&base, recipe.image_base()) {
        progress.base_resolved(
            &from.reference.to_string(),
            &b.image.manifest_digest,
            b.image.layers.len(),
        );
    }
    let base_image = base.as_ref().map(|b| &b.image);
    let tree = base::tree(&recipe, base.as_ref(), &cache, &registry)?;
    let plan_base = || {
        base_image.map(|image| plan::PlanBase {
            image,
            tree: tree.as_ref(),
        })
    };
    let (cache, fleet) = fleet_hooks::open(recipe_path, opts, &cache)?;
    let (plan, written) =
        plan_and_build_layers(&recipe, plan_base(), &time, &cache, opts, progress)?;
    let (cache, plan, written) = match &fleet {
        Some(ctx) if fleet_hooks::needs_bytes(opts, ctx) => {
            let bad = fleet_hooks::fetch_remote_layers(&plan.layers, &cache, ctx)?;
            let cache = cache.with_remote_layers(fleet_hooks::remaining(&cache, ctx, &bad));
            if bad.is_empty() {
                (cache, plan, written)
            } else {
                // Planned again without the corrupt entries: their layers are built here.
                let (plan, written) =
                    plan_and_build_layers(&recipe, plan_base(), &time, &cache, opts, progress)?;
                (cache, plan, written)
            }
        }
        _ => (cache, plan, written),
    };
    let docs = assemble(&plan, &written, base_image, &cache)?;

    // Local outputs need the base layers' bytes (and, for docker archives, their sizes
    // uncompressed); a build without outputs never downloads them.
    let base_sizes = match &base {
        Some(b) if base_bytes => base::fetch_layers(b, &cache, &registry)?,
        Some(b) => vec![0; b.image.layers.len()],
        None => Vec::new(),
    };
    let tags = if opts.tags.is_empty() {
        plan.image.tags.clone()
    } else {
        opts.tags.clone()
    };
    let stored = stored_image(&docs, &plan, base_image, &base_sizes, &written, tags);
    let names: Vec<String> = base_image
        .iter()
        .flat_map(|b| &b.layers)
        .enumerate()
        .map(|(i, _)| format!("base-{}", i + 1))
        .chain(plan.layers.iter().map(|l| l.name.clone()))
        .collect();
    record::save(recipe_path, &recipe.image.platform, &stored, &names, &cache);
    write_outputs(&opts.outputs, &stored, &cache, progress)?;
    let own: Vec<_> = plan
        .layers
        .iter()
        .zip(&written)
        .map(|(l, w)| (l.key.clone(), w.record.clone()))
        .collect();
    fleet_hooks::publish(opts, fleet.as_ref(), &cache, &own, &stored)?;
    let coverage = plan.coverage();
    Ok(BuildResult {
        image: stored,
        layers: plan
            .layers
            .iter()
            .zip(written)
            .map(|(l, w)| BuiltLayer {
                name: l.name.clone(),
                status: w.status,
                record: w.record,
            })
            .collect(),
        coverage,
        base,
        fleet_sources: fleet_hooks::push_sources(opts, fleet.as_ref()),
        lock: plan.lock.clone(),
        created: plan.created,
        plan,
        recipe,
        _cache_lock: lock,
    })
}

/// A layer of the plan once written (or found in the cache).
struct Written {
    status: LayerStatus,
    record: LayerRecord,
}

/// The config and manifest of the image, stored in the cache.
fn assemble(
    plan: &Plan,
    written: &[Written],
    base: Option<&BaseImage>,
    cache: &Cache,
) -> Result<ImageDocuments, BuildError> {
    let image_layers: Vec<ImageLayer> = plan
        .layers
        .iter()
        .zip(written)
        .map(|(l, w)| ImageLayer {
            record: w.record.clone(),
            created_by: format!("stevedore layer {}", l.name),
        })
        .collect();
    let spec = ImageSpec {
        format: plan.image.format,
        compression: plan.image.compression,
        platform: &plan.image.platform,
        created: plan.created,
        config: &plan.config,
        layers: &image_layers,
        annotations: &plan.image.annotations,
        base,
    };
    let docs = image::assemble(&spec)?;
    cache.put_bytes(&docs.config)?;
    cache.put_bytes(&docs.manifest)?;
    Ok(docs)
}

/// The built image as outputs and pushes read it: base layers first, then the recipe's.
fn stored_image(
    docs: &ImageDocuments,
    plan: &Plan,
    base: Option<&BaseImage>,
    base_sizes: &[u64],
    written: &[Written],
    tags: Vec<String>,
) -> StoredImage {
    let base_layers = base
        .iter()
        .flat_map(|b| &b.layers)
        .zip(base_sizes)
        .map(|(l, diff_size)| StoredLayer {
            digest: l.digest.clone(),
            size: l.size,
            diff_id: l.diff_id.clone(),
            diff_size: *diff_size,
            media_type: String::new(),
        });
    let own_layers = written.iter().map(|w| StoredLayer {
        digest: w.record.digest.clone(),
        size: w.record.size,
        diff_id: w.record.diff_id.clone(),
        diff_size: w.record.diff_size,
        media_type: String::new(),
    });
    StoredImage {
        manifest_digest: docs.manifest_digest.clone(),
        manifest_size: docs.manifest.len() as u64,
        manifest_media_type: docs.manifest_media_type.to_string(),
        config_digest: docs.config_digest.clone(),
        layers: base_layers
            .chain(own_layers)
            .zip(&docs.layer_media_types)
            .map(|(l, media_type)| StoredLayer {
                media_type: media_type.clone(),
                ..l
            })
            .collect(),
        name: plan.image.name.clone(),
        tags,
    }
}

fn write_outputs(
    outputs: &[OutputTarget],
    stored: &StoredImage,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<(), BuildError> {
    for target in outputs {
        let started = Instant::now();
        output::write(target, stored, cache).map_err(|source| BuildError::Output {
            target: target.to_string(),
            source,
        })?;
        progress.output_written(target, started.elapsed());
    }
    Ok(())
}

/// Writes one planned layer and its side files (listing, dpkg status, script coverage); the
/// caller records it.
fn write_planned(
    layer: &PlannedLayer,
    compression: crate::layer::Compression,
    threads: usize,
    cache: &Cache,
) -> Result<LayerRecord, BuildError> {
    let contents = layer
        .contents
        .as_ref()
        .ok_or_else(|| BuildError::LayerVanished {
            layer: layer.name.clone(),
        })?;
    let record = layer::write_layer(contents, compression, threads, cache).map_err(|source| {
        BuildError::Layer {
            name: layer.name.clone(),
            location: layer.location.clone(),
            source: Box::new(source),
        }
    })?;
    cache.put_layer_file(&layer.key, "list", contents.listing().as_bytes())?;
    if let Some(status) = &layer.status {
        cache.put_layer_file(&layer.key, "status", status.as_bytes())?;
    }
    if let Some(coverage) = &layer.coverage {
        let json = serde_json::to_vec(coverage).expect("coverage serializes");
        cache.put_layer_file(&layer.key, "coverage", &json)?;
    }
    Ok(record)
}

/// Refuses output combinations that readers would not accept, before anything is written.
pub(super) fn check_outputs(
    format: &image::ImageFormat,
    outputs: &[OutputTarget],
) -> Result<(), BuildError> {
    let layout = outputs
        .iter()
        .find(|o| matches!(o, OutputTarget::OciLayout { .. }));
    if *format == image::ImageFormat::Docker
        && let Some(layout) = layout
    {
        return Err(BuildError::DockerManifestInLayout {
            target: layout.to_string(),
        });
    }
    for target in outputs {
        output::check_target(target).map_err(|source| BuildError::BadTarget { source })?;
    }
    Ok(())
}

/// A layer handed from the planner to the writers, with its place in the plan.
struct Job {
    index: usize,
    layer: PlannedLayer,
}

/// What a writer did with a [`Job`].
struct Done {
    index: usize,
    status: LayerStatus,
    result: Result<LayerRecord, BuildError>,
}

/// Finds a layer in the cache or writes it (and records it).
fn cached_or_written(
    layer: &PlannedLayer,
    compression: crate::layer::Compression,
    threads: usize,
    cache: &Cache,
    progress: &dyn Progress,
) -> (LayerStatus, Result<LayerRecord, BuildError>) {
    if let Some(record) = cache.known_layer(&layer.key) {
        progress.layer_cached(layer, &record);
        return (LayerStatus::Cached, Ok(record));
    }
    progress.layer_started(layer);
    let started = Instant::now();
    let result = write_planned(layer, compression, threads, cache).and_then(|record| {
        cache.put_layer_record(&layer.key, &record)?;
        progress.layer_written(layer, &record, started.elapsed());
        Ok(record)
    });
    (LayerStatus::Built, result)
}

/// Plans the recipe and writes the layers that are not cached, each as soon as it is planned:
/// compressing the base layer overlaps laying out and setting up the layers above it (on a
/// cold build, their downloads and decompression). Up to `jobs` layers are written at once
/// (each is one compression stream, itself spread over the cores).
///
/// `--strict` is checked once the plan is complete, before any output; layers already written
/// by then are valid cache entries, not output.
fn plan_and_build_layers(
    recipe: &recipe::Recipe,
    base: Option<plan::PlanBase<'_>>,
    time: &TimePolicy,
    cache: &Cache,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<(Plan, Vec<Written>), BuildError> {
    let compression = recipe.image.compression;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Mutex::new(rx);
    let failed = AtomicBool::new(false);
    let done: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let plan = std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = rx.lock().expect("no panics hold this lock").recv();
                    let Ok(Job { index, layer }) = next else {
                        return;
                    };
                    if failed.load(Ordering::Relaxed) {
                        continue; // the build fails anyway: drain without work
                    }
                    let (status, result) =
                        cached_or_written(&layer, compression, threads, cache, progress);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    done.lock().expect("no panics hold this lock").push(Done {
                        index,
                        status,
                        result,
                    });
                }
            });
        }
        let plan = plan::plan_with(
            recipe,
            base,
            time,
            cache,
            opts.lock_mode,
            &mut |index, layer| {
                let _ = tx.send(Job {
                    index,
                    layer: layer.clone(),
                });
            },
        );
        drop(tx);
        plan
    })?;
    let mut done = done.into_inner().expect("threads joined");
    done.sort_by_key(|d| d.index);
    let mut written = Vec::with_capacity(done.len());
    for d in done {
        written.push(Written {
            status: d.status,
            record: d.result?,
        });
    }
    if opts.strict
        && let Some(c) = &plan.coverage()
    {
        c.strict()?;
    }
    Ok((plan, written))
}
