//! `verify`: rebuild in a fresh cache and compare with a reference image, file by file.

use std::path::{Path, PathBuf};

use super::{BuildError, BuildOptions, BuildResult, Silent, build, record};
use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::image;
use crate::oci;
use crate::output::{self, StoredLayer};
use crate::plan::LockMode;
use crate::registry::RegistryOptions;

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

/// The image the rebuild is compared with.
struct ReferenceImage {
    manifest_digest: Digest,
    config: PathBuf,
    layers: Vec<ReferenceLayer>,
}

struct ReferenceLayer {
    name: String,
    /// Where its blob is (it may be absent: a base layer never downloaded).
    path: PathBuf,
    digest: Digest,
    media_type: String,
}

/// Rebuilds the recipe in a fresh, empty cache (downloads are shared: they are verified by
/// sha256 anyway) and compares the result with the reference image: `against` (an OCI layout),
/// else the last build of this recipe recorded in the cache. Differences are named per file.
/// Holds the cache's shared lock, so `cache gc` cannot remove the reference meanwhile.
pub fn verify(
    recipe_path: &Path,
    cache_dir: &Path,
    against: Option<&str>,
    lock_mode: LockMode,
    platforms: &[crate::oci::Platform],
) -> Result<VerifyReport, BuildError> {
    let cache = Cache::open(cache_dir)?;
    let _lock = cache.lock_shared()?;
    let reference = match against {
        Some(source) => reference_from_layout(source, platforms.first())?,
        None => reference_from_record(recipe_path, platforms, &cache)?,
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
        fleet: Default::default(),
        platforms: platforms.to_vec(),
    };
    let fresh = build(recipe_path, &opts, &Silent)?;
    let fresh_cache = Cache::open(fresh_dir.path())?;
    let layers = compare_layers(&reference, &fresh, &fresh_cache);
    let config_differences = compare_configs(&reference.config, &fresh, &fresh_cache)?;
    Ok(VerifyReport {
        reference: reference.manifest_digest,
        rebuilt: fresh.image.manifest_digest.clone(),
        layers,
        config_differences,
    })
}

/// The image of an OCI layout, its layers named by the config's history.
/// Through an image index, the image for `platform` (else the first).
fn reference_from_layout(
    source: &str,
    platform: Option<&crate::oci::Platform>,
) -> Result<ReferenceImage, BuildError> {
    let (dir, image) =
        output::read_layout_platform(source, platform).map_err(|error| BuildError::Source {
            source_ref: source.to_string(),
            error,
        })?;
    let blob = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
    // Layer names from the config's history (entries that made a layer), when it parses: they
    // only name layers the rebuild does not have.
    let history: Vec<String> = std::fs::read(blob(&image.config_digest))
        .ok()
        .and_then(|bytes| oci::ImageConfig::parse(&bytes).ok())
        .map(|c| c.layer_history().map(str::to_string).collect())
        .unwrap_or_default();
    let layers = image
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let digest: Digest = l.id.parse().ok()?;
            Some(ReferenceLayer {
                name: history.get(i).cloned().unwrap_or_default(),
                path: blob(&digest),
                digest,
                media_type: l.media_type.clone(),
            })
        })
        .collect();
    Ok(ReferenceImage {
        manifest_digest: image
            .manifest_digest
            .clone()
            .expect("layouts have manifests"),
        config: blob(&image.config_digest),
        layers,
    })
}

/// The last build of the recipe with this cache.
/// With one `--platform`, that platform's last build (of a multi-platform build) when there is
/// one.
fn reference_from_record(
    recipe_path: &Path,
    platforms: &[crate::oci::Platform],
    cache: &Cache,
) -> Result<ReferenceImage, BuildError> {
    let mut name = record::record_name(recipe_path);
    if let [platform] = platforms {
        let named = record::platform_record_name(recipe_path, platform);
        if cache.read_named("builds", &named).is_some() {
            name = named;
        }
    }
    let bytes = cache
        .read_named("builds", &name)
        .ok_or_else(|| BuildError::NotBuiltYet {
            recipe: recipe_path.to_path_buf(),
        })?;
    let record: record::BuildRecord = serde_json::from_slice(&bytes)
        .map_err(|source| BuildError::BuildRecord { name, source })?;
    let layers = record
        .layers
        .into_iter()
        .map(|l| ReferenceLayer {
            name: l.name,
            path: cache.blob_path(&l.digest),
            digest: l.digest,
            media_type: l.media_type,
        })
        .collect();
    Ok(ReferenceImage {
        manifest_digest: record.manifest_digest,
        config: cache.blob_path(&record.config_digest),
        layers,
    })
}

/// A verdict per layer, pairing the reference's and the rebuild's by position.
fn compare_layers(
    reference: &ReferenceImage,
    fresh: &BuildResult,
    fresh_cache: &Cache,
) -> Vec<LayerVerdict> {
    let count = reference.layers.len().max(fresh.image.layers.len());
    let base_count = fresh.base.as_ref().map_or(0, |b| b.image.layers.len());
    (0..count)
        .map(|i| {
            let r = reference.layers.get(i);
            let f = fresh.image.layers.get(i);
            let name = (i < base_count)
                .then(|| format!("base-{}", i + 1))
                .or_else(|| fresh.layers.get(i - base_count).map(|l| l.name.clone()))
                .or_else(|| r.map(|x| x.name.clone()))
                .unwrap_or_default();
            let mut verdict = LayerVerdict {
                name,
                reference: r.map(|x| x.digest.clone()),
                rebuilt: f.map(|x| x.digest.clone()),
                corrupt: None,
                differences: Vec::new(),
            };
            if let (Some(r), Some(f)) = (r, f) {
                compare_layer(r, f, fresh_cache, &mut verdict);
            }
            verdict
        })
        .collect()
}

/// Checks the reference blob against its name and, when it differs from the rebuild, names
/// the files that differ.
fn compare_layer(
    r: &ReferenceLayer,
    f: &StoredLayer,
    fresh_cache: &Cache,
    verdict: &mut LayerVerdict,
) {
    // A base layer that was never downloaded: pinned by the same digest, nothing to read.
    if !r.path.exists() && f.digest == r.digest {
        return;
    }
    let actual = std::fs::File::open(&r.path)
        .and_then(crate::digest::digest_reader)
        .map(|(d, _)| d);
    match actual {
        Ok(d) if d != r.digest => verdict.corrupt = Some(format!("its bytes hash to {d}")),
        Err(e) => verdict.corrupt = Some(format!("cannot read {}: {e}", r.path.display())),
        _ => {}
    }
    if verdict.corrupt.is_none() && r.digest == f.digest {
        return;
    }
    let compression = image::layer_compression(&r.media_type)
        .unwrap_or(crate::layer::Compression::Gzip { level: 6 });
    let open = |p: &Path| std::fs::File::open(p).map(std::io::BufReader::new);
    let diffs = open(&r.path)
        .and_then(|a| open(&fresh_cache.blob_path(&f.digest)).map(|b| (a, b)))
        .and_then(|(a, b)| {
            crate::layer::diff_layers(a, b, compression, ("the reference", "the rebuild"))
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

/// The config fields that differ between the reference and the rebuild. Compared as JSON
/// values key by key (not through `oci::ImageConfig`): a field the typed model drops must
/// still show as a difference.
fn compare_configs(
    reference: &Path,
    fresh: &BuildResult,
    fresh_cache: &Cache,
) -> Result<Vec<String>, BuildError> {
    let a: serde_json::Value = std::fs::read(reference)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let b: serde_json::Value =
        serde_json::from_slice(&fresh_cache.read_blob(&fresh.image.config_digest)?)
            .unwrap_or_default();
    Ok(["created", "architecture", "os", "config", "history"]
        .into_iter()
        .filter(|key| a[key] != b[key])
        .map(|key| format!("config `{key}`: {} vs {}", a[key], b[key]))
        .collect())
}
