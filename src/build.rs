//! The pipeline end to end: recipe → plan → layers → image → output.
//!
//! This is the one place that strings the stages together; the CLI calls it and nothing else.

mod base;

pub use base::ResolvedBase;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::apt;
use crate::cache::{Cache, CacheError, LayerRecord};
use crate::digest::Digest;
use crate::image::{self, ImageError, ImageLayer, ImageSpec};
use crate::layer::{self, LayerError};
use crate::output::{self, OutputError, OutputTarget, StoredImage, StoredLayer};
use crate::plan::{self, LockMode, Plan, PlanError, PlannedLayer, TimePolicy};
use crate::recipe::{self, RecipeError};
use crate::registry::{
    BlobRef, BlockingRegistry, ImageToPush, PushReport, RawManifest, Reference, RegistryError,
    RegistryOptions,
};

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub cache_dir: PathBuf,
    pub outputs: Vec<OutputTarget>,
    /// Replaces the recipe's tags when not empty.
    pub tags: Vec<String>,
    /// Layers written at the same time.
    pub jobs: usize,
    /// How package sets are obtained (lockfile or fresh resolution).
    pub lock_mode: LockMode,
    /// Fail when a maintainer-script command is not covered by setup.
    pub strict: bool,
    /// How to reach the registry of a `from` image (only used by recipes that have one).
    pub registry: RegistryOptions,
}

/// Events for a progress display. All methods have empty defaults.
pub trait Progress: Sync {
    /// The registry image the recipe is built on, pinned to `digest`.
    fn base_resolved(&self, _reference: &str, _digest: &Digest, _layers: usize) {}
    fn layer_cached(&self, _layer: &PlannedLayer, _record: &LayerRecord) {}
    fn layer_started(&self, _layer: &PlannedLayer) {}
    fn layer_written(&self, _layer: &PlannedLayer, _record: &LayerRecord, _elapsed: Duration) {}
    fn output_written(&self, _target: &OutputTarget, _elapsed: Duration) {}
}

/// A progress sink that shows nothing.
pub struct Silent;
impl Progress for Silent {}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Strict(#[from] crate::rootfs::setup::coverage::StrictError),
    #[error(transparent)]
    Time(#[from] plan::time::TimePolicyError),
    #[error("layer `{name}` ({location}): {source}")]
    Layer {
        name: String,
        location: recipe::Location,
        #[source]
        source: Box<LayerError>,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Resolving or fetching the registry image a recipe is built `from`.
    // `error` is shown inline, not as a `source`: the CLI prints sources after the message,
    // which would say it twice.
    #[error("{location}: base image {reference}: {error}")]
    Base {
        location: recipe::Location,
        reference: String,
        error: Box<BuildError>,
    },
    #[error("reading {source_ref}: {error}")]
    Source {
        source_ref: String,
        error: OutputError,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing {target}: {source}")]
    Output {
        target: String,
        #[source]
        source: OutputError,
    },
}

impl BuildError {
    /// True when the user's input is at fault (recipe, sources, environment settings) rather
    /// than the machine; the CLI maps this to its own exit code.
    /// True when a registry refused or failed (the CLI's registry exit code).
    pub fn is_registry_error(&self) -> bool {
        match self {
            BuildError::Registry(_) => true,
            BuildError::Base { error, .. } => error.is_registry_error(),
            _ => false,
        }
    }

    pub fn is_input_error(&self) -> bool {
        if let BuildError::Base { error, .. } = self {
            return error.is_input_error();
        }
        matches!(
            self,
            BuildError::Recipe(_)
                | BuildError::Plan(_)
                | BuildError::Strict(_)
                | BuildError::Time(_)
                | BuildError::Unsupported(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerStatus {
    Cached,
    Built,
}

#[derive(Debug)]
pub struct BuildResult {
    pub image: StoredImage,
    pub layers: Vec<(String, LayerStatus, LayerRecord)>,
    /// What became of the packages' maintainer scripts (`None` without package layers).
    pub coverage: Option<crate::rootfs::setup::coverage::Coverage>,
    /// The registry image the recipe is built on, pinned (its layers are `image.layers[..n]`).
    pub base: Option<ResolvedBase>,
}

impl BuildResult {
    pub fn manifest_digest(&self) -> &Digest {
        &self.image.manifest_digest
    }
}

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
    let base = base::resolve(
        &recipe,
        cache,
        lock_mode,
        &base::LazyRegistry::new(registry),
    )?;
    Ok(plan::plan(
        &recipe,
        base.as_ref().map(|b| &b.image),
        &time,
        cache,
        lock_mode,
    )?)
}

/// What `cache gc --keep` must not remove: every layer the recipes use and their packages.
pub fn keep_set(recipes: &[PathBuf], cache: &Cache) -> Result<crate::cache::Keep, BuildError> {
    let mut keep = crate::cache::Keep::default();
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

/// Resolves the recipe's package layers and registry base afresh and writes its lockfile
/// (atomically) next to it; returns the lockfile's path.
pub fn lock(
    recipe_path: &Path,
    cache_dir: &Path,
    registry: &RegistryOptions,
) -> Result<(PathBuf, apt::Lockfile), BuildError> {
    let recipe = recipe::load(recipe_path)?;
    let cache = Cache::open(cache_dir)?;
    let packages = plan::packages::lock_for(&recipe, &cache, LockMode::Fresh)?;
    let base = base::resolve(
        &recipe,
        &cache,
        LockMode::Fresh,
        &base::LazyRegistry::new(registry),
    )?;
    let mut lock = match (packages, &base) {
        (Some(lock), _) => lock,
        (None, Some(_)) => apt::Lockfile::new(plan::packages::inputs_hash(&recipe)?, Vec::new()),
        (None, None) => {
            return Err(BuildError::Unsupported(format!(
                "{} has no package layers and no registry base: nothing to lock",
                recipe_path.display()
            )));
        }
    };
    if let (Some(b), Some(from)) = (&base, recipe.image_base()) {
        lock.base = Some(apt::LockedBase {
            reference: from.reference.to_string(),
            digest: b.image.manifest_digest.clone(),
        });
    }
    let path = plan::lockfile_path(recipe_path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io = |source| CacheError {
        path: path.clone(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, lock.to_toml().as_bytes()).map_err(io)?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    tmp.persist(&path).map_err(|e| io(e.error))?;
    Ok((path, lock))
}

pub fn build(
    recipe_path: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildResult, BuildError> {
    let recipe = recipe::load(recipe_path)?;
    let time = TimePolicy::from_env()?;
    let cache = Cache::open(&opts.cache_dir)?;
    let _lock = cache.lock_shared()?;
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
    let (plan, records) =
        plan_and_build_layers(&recipe, base_image, &time, &cache, opts, progress)?;
    let coverage = plan.coverage();

    let image_layers: Vec<ImageLayer> = plan
        .layers
        .iter()
        .zip(&records)
        .map(|(l, (_, record))| ImageLayer {
            record: record.clone(),
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
        base: base_image,
    };
    let docs = image::assemble(&spec)?;
    cache.put_bytes(&docs.config)?;
    cache.put_bytes(&docs.manifest)?;

    // Local outputs need the base layers' bytes (and, for docker archives, their sizes
    // uncompressed); a build without outputs never downloads them.
    let base_sizes = match &base {
        Some(b) if !opts.outputs.is_empty() => base::fetch_layers(b, &cache, &registry)?,
        Some(b) => vec![0; b.image.layers.len()],
        None => Vec::new(),
    };
    let base_layers = base_image
        .iter()
        .flat_map(|b| &b.layers)
        .zip(base_sizes)
        .map(|(l, diff_size)| StoredLayer {
            digest: l.digest.clone(),
            size: l.size,
            diff_id: l.diff_id.clone(),
            diff_size,
            media_type: String::new(),
        });
    let own_layers = records.iter().map(|(_, r)| StoredLayer {
        digest: r.digest.clone(),
        size: r.size,
        diff_id: r.diff_id.clone(),
        diff_size: r.diff_size,
        media_type: String::new(),
    });
    let stored = StoredImage {
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
        tags: if opts.tags.is_empty() {
            plan.image.tags.clone()
        } else {
            opts.tags.clone()
        },
    };
    let names: Vec<String> = base_image
        .iter()
        .flat_map(|b| &b.layers)
        .enumerate()
        .map(|(i, _)| format!("base-{}", i + 1))
        .chain(plan.layers.iter().map(|l| l.name.clone()))
        .collect();
    save_build_record(recipe_path, &stored, &names, &cache);
    for target in &opts.outputs {
        let started = Instant::now();
        output::write(target, &stored, &cache).map_err(|source| BuildError::Output {
            target: target.to_string(),
            source,
        })?;
        progress.output_written(target, started.elapsed());
    }
    Ok(BuildResult {
        image: stored,
        layers: plan
            .layers
            .iter()
            .zip(records)
            .map(|(l, (status, r))| (l.name.clone(), status, r))
            .collect(),
        coverage,
        base,
    })
}

/// Writes one planned layer and its side files (listing, dpkg status, script coverage); the
/// caller records it.
fn write_planned(
    layer: &PlannedLayer,
    compression: crate::layer::Compression,
    threads: usize,
    cache: &Cache,
) -> Result<LayerRecord, BuildError> {
    let contents = layer.contents.as_ref().ok_or_else(|| {
        BuildError::Unsupported(format!(
            "layer `{}` vanished from the cache during the build (a concurrent `cache gc`?); build again",
            layer.name
        ))
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
fn check_outputs(format: &image::ImageFormat, outputs: &[OutputTarget]) -> Result<(), BuildError> {
    let layout = outputs
        .iter()
        .find(|o| matches!(o, OutputTarget::OciLayout { .. }));
    if *format == image::ImageFormat::Docker
        && let Some(layout) = layout
    {
        return Err(BuildError::Unsupported(format!(
            "{layout}: OCI layouts hold OCI manifests (skopeo and umoci ignore Docker ones); \
             with format = \"docker\" write a docker-archive:FILE or push to a registry"
        )));
    }
    for target in outputs {
        output::check_target(target).map_err(|e| BuildError::Unsupported(e.to_string()))?;
    }
    Ok(())
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
    base: Option<&image::BaseImage>,
    time: &TimePolicy,
    cache: &Cache,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<(Plan, Vec<(LayerStatus, LayerRecord)>), BuildError> {
    let compression = recipe.image.compression;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = std::sync::mpsc::channel::<(usize, PlannedLayer)>();
    let rx = Mutex::new(rx);
    let failed = std::sync::atomic::AtomicBool::new(false);
    type Written = (usize, LayerStatus, Result<LayerRecord, BuildError>);
    let done: Mutex<Vec<Written>> = Mutex::new(Vec::new());
    let plan = std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = rx.lock().expect("no panics hold this lock").recv();
                    let Ok((i, layer)) = next else { return };
                    if failed.load(std::sync::atomic::Ordering::Relaxed) {
                        continue; // the build fails anyway: drain without work
                    }
                    let (status, result) = match cache.layer_record(&layer.key) {
                        Some(record) => {
                            progress.layer_cached(&layer, &record);
                            (LayerStatus::Cached, Ok(record))
                        }
                        None => {
                            progress.layer_started(&layer);
                            let started = Instant::now();
                            let result = write_planned(&layer, compression, threads, cache)
                                .and_then(|record| {
                                    cache.put_layer_record(&layer.key, &record)?;
                                    progress.layer_written(&layer, &record, started.elapsed());
                                    Ok(record)
                                });
                            (LayerStatus::Built, result)
                        }
                    };
                    if result.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    done.lock()
                        .expect("no panics hold this lock")
                        .push((i, status, result));
                }
            });
        }
        let plan = plan::plan_with(
            recipe,
            base,
            time,
            cache,
            opts.lock_mode,
            &mut |i, layer| {
                let _ = tx.send((i, layer.clone()));
            },
        );
        drop(tx);
        plan
    })?;
    let mut done = done.into_inner().expect("threads joined");
    done.sort_by_key(|(i, _, _)| *i);
    let mut records = Vec::with_capacity(done.len());
    for (_, status, result) in done {
        records.push((status, result?));
    }
    if opts.strict
        && let Some(c) = &plan.coverage()
    {
        c.strict()?;
    }
    Ok((plan, records))
}

/// What to push where: the target reference names the tag, else the image's own tags are used.
fn tags_for(target: &Reference, image_tags: &[String]) -> (Reference, Vec<String>) {
    match (&target.tag, image_tags.split_first()) {
        (Some(_), _) | (None, None) => (target.clone(), Vec::new()),
        (None, Some((first, rest))) => (
            target.with_tag(first).unwrap_or_else(|_| target.clone()),
            rest.to_vec(),
        ),
    }
}

/// Pushes a built image from the cache. Blobs go up first; the manifest and tags only after
/// every blob is confirmed (the registry client guarantees the order).
///
/// Base layers the cache does not hold stay remote when the target is on the base's registry
/// (the push finds them there or mounts them from the base's repository); for another registry
/// they are downloaded into the cache first, since they must be uploaded.
pub fn push_built(
    image: &StoredImage,
    base: Option<&ResolvedBase>,
    cache: &Cache,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    let same_registry = base.is_some_and(|b| b.reference.registry == target.registry);
    let mut blobs: Vec<BlobRef> = Vec::new();
    for l in &image.layers {
        let from_base = base.filter(|b| b.image.layers.iter().any(|x| x.digest == l.digest));
        if let Some(b) = from_base
            && !cache.has_blob(&l.digest)
        {
            if same_registry {
                continue;
            }
            tracing::info!("downloading base layer {} from {}", l.digest, b.reference);
            registry.fetch_blob_to(
                &b.reference,
                &l.digest,
                &cache.tmp_dir(),
                &cache.blob_path(&l.digest),
            )?;
        }
        blobs.push(BlobRef {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            path: cache.blob_path(&l.digest),
        });
    }
    let config_path = cache.blob_path(&image.config_digest);
    let config_size = std::fs::metadata(&config_path)
        .map_err(|source| CacheError {
            path: config_path.clone(),
            source,
        })?
        .len();
    let manifest = cache.read_blob(&image.manifest_digest)?;
    let config_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|m| m["config"]["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| image::OCI_CONFIG.to_string());
    blobs.push(BlobRef {
        digest: image.config_digest.clone(),
        size: config_size,
        media_type: config_type,
        path: config_path,
    });
    let (target, tags) = tags_for(target, &image.tags);
    let mut to_push = ImageToPush::new(
        RawManifest {
            bytes: manifest,
            media_type: image.manifest_media_type.clone(),
        },
        blobs,
    );
    to_push.tags = tags;
    to_push.mount_sources = base.iter().map(|b| b.reference.clone()).collect();
    Ok(registry.push_image(&target, &to_push)?)
}

/// Pushes an image read from an OCI layout (`oci:DIR[:TAG]`).
pub fn push_layout(
    source: &str,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    let wrap = |error| BuildError::Source {
        source_ref: source.to_string(),
        error,
    };
    let (dir, image) = output::read_layout_for_push(source).map_err(wrap)?;
    let blob = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
    let manifest_digest = image
        .manifest_digest
        .clone()
        .expect("layouts always have a manifest");
    let manifest_json = image.manifest.clone().unwrap_or_default();
    let manifest_bytes = std::fs::read(blob(&manifest_digest)).map_err(|e| {
        wrap(OutputError::Io {
            path: blob(&manifest_digest),
            source: e,
        })
    })?;
    let mut blobs: Vec<BlobRef> = Vec::new();
    let descriptors = std::iter::once(&manifest_json["config"]).chain(
        manifest_json["layers"]
            .as_array()
            .map(|a| a.iter())
            .into_iter()
            .flatten(),
    );
    for d in descriptors {
        let digest: Digest = d["digest"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                wrap(OutputError::Target {
                    path: dir.clone(),
                    message: format!("bad descriptor {d}"),
                })
            })?;
        blobs.push(BlobRef {
            path: blob(&digest),
            size: d["size"].as_u64().unwrap_or_default(),
            media_type: d["mediaType"].as_str().unwrap_or_default().to_string(),
            digest,
        });
    }
    let media_type = manifest_json["mediaType"]
        .as_str()
        .unwrap_or(image::OCI_MANIFEST)
        .to_string();
    let tags = if target.tag.is_some() {
        Vec::new()
    } else {
        image.tag.clone().into_iter().collect()
    };
    let (target, tags) = tags_for(target, &tags);
    let mut to_push = ImageToPush::new(
        RawManifest {
            bytes: manifest_bytes,
            media_type,
        },
        blobs,
    );
    to_push.tags = tags;
    Ok(registry.push_image(&target, &to_push)?)
}

/// What the last build of a recipe produced, kept in the cache for `verify`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct BuildRecord {
    manifest_digest: Digest,
    config_digest: Digest,
    layers: Vec<(String, Digest, String)>,
}

fn build_record_name(recipe_path: &Path) -> String {
    let canonical = recipe_path
        .canonicalize()
        .unwrap_or_else(|_| recipe_path.to_path_buf());
    format!(
        "build-{}",
        Digest::of(canonical.to_string_lossy().as_bytes()).hex()
    )
}

fn save_build_record(recipe_path: &Path, image: &StoredImage, names: &[String], cache: &Cache) {
    let record = BuildRecord {
        manifest_digest: image.manifest_digest.clone(),
        config_digest: image.config_digest.clone(),
        layers: image
            .layers
            .iter()
            .zip(names)
            .map(|(l, n)| (n.clone(), l.digest.clone(), l.media_type.clone()))
            .collect(),
    };
    if let Ok(json) = serde_json::to_vec(&record) {
        // Only an aid for `verify`: failing to save it must not fail the build.
        let _ = cache.put_named("builds", &build_record_name(recipe_path), &json);
    }
}

/// One layer's verdict in [`VerifyReport`].
#[derive(Debug)]
pub struct LayerVerdict {
    pub name: String,
    pub reference: Option<Digest>,
    pub rebuilt: Option<Digest>,
    /// The reference blob's bytes do not hash to its name.
    pub corrupt: Option<String>,
    pub differences: Vec<crate::layer::Difference>,
}

#[derive(Debug)]
pub struct VerifyReport {
    pub reference: Digest,
    pub rebuilt: Digest,
    pub layers: Vec<LayerVerdict>,
    pub config_differences: Vec<String>,
}

impl VerifyReport {
    /// Same manifest, and every reference blob's bytes still hash to its name.
    pub fn identical(&self) -> bool {
        self.reference == self.rebuilt && self.layers.iter().all(|l| l.corrupt.is_none())
    }
}

/// Rebuilds the recipe in a fresh, empty cache (downloads are shared: they are verified by
/// sha256 anyway) and compares the result with the reference image: `against` (an OCI layout),
/// else the last build of this recipe recorded in the cache. Differences are named per file.
pub fn verify(
    recipe_path: &Path,
    cache_dir: &Path,
    against: Option<&str>,
    lock_mode: LockMode,
) -> Result<VerifyReport, BuildError> {
    let cache = Cache::open(cache_dir)?;
    // The reference: (name, blob path, digest, media type) per layer, and its config.
    type RefLayer = (String, PathBuf, Digest, String);
    let (reference, ref_config, ref_layers): (Digest, Option<PathBuf>, Vec<RefLayer>) =
        match against {
            Some(source) => {
                let wrap = |error| BuildError::Source {
                    source_ref: source.to_string(),
                    error,
                };
                let (dir, image) = output::read_layout_for_push(source).map_err(wrap)?;
                let blob = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
                let history: Vec<String> = image.config["history"]
                    .as_array()
                    .map(|h| {
                        h.iter()
                            .map(|e| e["created_by"].as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let layers = image
                    .layers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        let d: Digest = l.id.parse().ok()?;
                        let name = history.get(i).cloned().unwrap_or_default();
                        Some((name, blob(&d), d, l.media_type.clone()))
                    })
                    .collect();
                (
                    image
                        .manifest_digest
                        .clone()
                        .expect("layouts have manifests"),
                    Some(blob(&image.config_digest)),
                    layers,
                )
            }
            None => {
                let bytes = cache
                    .read_named("builds", &build_record_name(recipe_path))
                    .ok_or_else(|| {
                        BuildError::Unsupported(format!(
                            "{} was not built with this cache yet: build it first, or pass --against oci:DIR",
                            recipe_path.display()
                        ))
                    })?;
                let record: BuildRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    BuildError::Unsupported(format!("unreadable build record: {e}"))
                })?;
                let layers = record
                    .layers
                    .iter()
                    .map(|(n, d, m)| (n.clone(), cache.blob_path(d), d.clone(), m.clone()))
                    .collect();
                (
                    record.manifest_digest,
                    Some(cache.blob_path(&record.config_digest)),
                    layers,
                )
            }
        };

    let fresh_dir = tempfile::Builder::new()
        .prefix("stevedore-verify-")
        .tempdir()
        .map_err(|source| CacheError {
            path: std::env::temp_dir(),
            source,
        })?;
    let _ = std::fs::create_dir_all(cache.apt_dir());
    let _ = std::os::unix::fs::symlink(cache.apt_dir(), fresh_dir.path().join("apt"));
    let opts = BuildOptions {
        cache_dir: fresh_dir.path().to_path_buf(),
        outputs: Vec::new(),
        tags: Vec::new(),
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        lock_mode,
        strict: false,
        registry: RegistryOptions::default(),
    };
    let fresh = build(recipe_path, &opts, &Silent)?;
    let fresh_cache = Cache::open(fresh_dir.path())?;

    let mut layers = Vec::new();
    let count = ref_layers.len().max(fresh.image.layers.len());
    let base_count = fresh.base.as_ref().map_or(0, |b| b.image.layers.len());
    for i in 0..count {
        let r = ref_layers.get(i);
        let f = fresh.image.layers.get(i);
        let name = (i < base_count)
            .then(|| format!("base-{}", i + 1))
            .or_else(|| fresh.layers.get(i - base_count).map(|(n, _, _)| n.clone()))
            .or_else(|| r.map(|x| x.0.clone()))
            .unwrap_or_default();
        let mut verdict = LayerVerdict {
            name,
            reference: r.map(|x| x.2.clone()),
            rebuilt: f.map(|x| x.digest.clone()),
            corrupt: None,
            differences: Vec::new(),
        };
        // A base layer that was never downloaded: pinned by the same digest, nothing to read.
        let remote_base = r.is_some_and(|(_, path, digest, _)| {
            !path.exists() && f.is_some_and(|f| f.digest == *digest)
        });
        if let (false, Some((_, path, digest, media)), Some(f)) = (remote_base, r, f) {
            let actual = std::fs::File::open(path)
                .and_then(crate::digest::digest_reader)
                .map(|(d, _)| d);
            match actual {
                Ok(d) if d != *digest => {
                    verdict.corrupt = Some(format!("its bytes hash to {d}"));
                }
                Err(e) => verdict.corrupt = Some(format!("cannot read {}: {e}", path.display())),
                _ => {}
            }
            if verdict.corrupt.is_some() || *digest != f.digest {
                let compression = image::layer_compression(media)
                    .unwrap_or(crate::layer::Compression::Gzip { level: 6 });
                let open = |p: &Path| std::fs::File::open(p).map(std::io::BufReader::new);
                let diffs = open(path)
                    .and_then(|a| open(&fresh_cache.blob_path(&f.digest)).map(|b| (a, b)))
                    .and_then(|(a, b)| {
                        crate::layer::diff_layers(
                            a,
                            b,
                            compression,
                            ("the reference", "the rebuild"),
                        )
                    });
                match diffs {
                    Ok(d) => verdict.differences = d,
                    Err(e) => {
                        verdict
                            .corrupt
                            .get_or_insert_with(|| format!("layer unreadable: {e}"));
                    }
                }
            }
        }
        layers.push(verdict);
    }
    let mut config_differences = Vec::new();
    if let Some(ref_config) = ref_config {
        let a: serde_json::Value = std::fs::read(&ref_config)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_slice(&fresh_cache.read_blob(&fresh.image.config_digest)?)
                .unwrap_or_default();
        for key in ["created", "architecture", "os", "config", "history"] {
            if a[key] != b[key] {
                config_differences.push(format!("config `{key}`: {} vs {}", a[key], b[key]));
            }
        }
    }
    Ok(VerifyReport {
        reference,
        rebuilt: fresh.image.manifest_digest,
        layers,
        config_differences,
    })
}
