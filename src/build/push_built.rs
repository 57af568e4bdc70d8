//! `build --push`: a built image, from the cache to a registry.

use super::{BuildError, BuildResult, ResolvedBase, push_target};
use crate::cache::{Cache, CacheError};
use crate::oci;
use crate::output::StoredImage;
use crate::registry::{BlobRef, BlockingRegistry, ImageToPush, PushReport, RawManifest, Reference};

/// Pushes a built image from the cache. Blobs go up first; the manifest and tags only after
/// every blob is confirmed (the registry client guarantees the order). Holds the cache's
/// shared lock, so `cache gc` waits until the push is done.
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
    push_with_sources(image, base, &[], cache, target, registry)
}

/// [`push_built`] for a build's result: layers the build took from the fleet cache without
/// downloading them stay remote, mounted from the cache's repository (or found by HEAD).
pub fn push_result(
    result: &BuildResult,
    cache: &Cache,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    push_with_sources(
        &result.image,
        result.base.as_ref(),
        &result.fleet_sources,
        cache,
        target,
        registry,
    )
}

fn push_with_sources(
    image: &StoredImage,
    base: Option<&ResolvedBase>,
    fleet_sources: &[Reference],
    cache: &Cache,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    let _lock = cache.lock_shared()?;
    let mut blobs = layer_blobs(image, base, cache, target, registry)?;
    if !fleet_sources.is_empty() {
        // Not local: taken from the fleet cache on this registry (see `needs_bytes`).
        blobs.retain(|b| b.path.is_file());
    }
    let manifest = cache.read_blob(&image.manifest_digest)?;
    blobs.push(config_blob(image, &manifest, cache)?);
    let target = push_target(target, &image.tags);
    let mut to_push = ImageToPush::new(
        RawManifest {
            bytes: manifest,
            media_type: image.manifest_media_type.clone(),
        },
        blobs,
    );
    to_push.tags = target.extra_tags;
    to_push.mount_sources = base
        .iter()
        .map(|b| b.reference.clone())
        .chain(fleet_sources.iter().cloned())
        .collect();
    Ok(registry.push_image(&target.reference, &to_push)?)
}

/// The layer blobs to upload: all of the image's, but base layers that stay on the target's
/// registry (downloading those that must go to another one).
fn layer_blobs(
    image: &StoredImage,
    base: Option<&ResolvedBase>,
    cache: &Cache,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<Vec<BlobRef>, BuildError> {
    let same_registry = base.is_some_and(|b| b.reference.registry == target.registry);
    let mut blobs = Vec::new();
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
                l.size,
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
    Ok(blobs)
}

/// `build --push` of a multi-platform build: every platform's manifest by digest, then the
/// index, then its tags (one push, so the registry client uploads a blob that several
/// platforms share once: it keeps one entry per digest).
pub fn push_several(
    multi: &super::MultiBuild,
    cache: &Cache,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    let _lock = cache.lock_shared()?;
    let mut blobs: Vec<BlobRef> = Vec::new();
    let mut children = Vec::new();
    let mut mount_sources = Vec::new();
    for (_, built) in &multi.images {
        let image = &built.image;
        let mut own = layer_blobs(image, built.base.as_ref(), cache, target, registry)?;
        if !built.fleet_sources.is_empty() {
            own.retain(|b| b.path.is_file());
        }
        let manifest = cache.read_blob(&image.manifest_digest)?;
        own.push(config_blob(image, &manifest, cache)?);
        for b in own {
            if !blobs.iter().any(|x| x.digest == b.digest) {
                blobs.push(b);
            }
        }
        children.push(RawManifest {
            bytes: manifest,
            media_type: image.manifest_media_type.clone(),
        });
        mount_sources.extend(built.base.iter().map(|b| b.reference.clone()));
        mount_sources.extend(built.fleet_sources.iter().cloned());
    }
    let target = push_target(target, &multi.index.tags);
    let mut to_push = ImageToPush::new(
        RawManifest {
            bytes: cache.read_blob(&multi.index.digest)?,
            media_type: multi.index.media_type.clone(),
        },
        blobs,
    );
    to_push.children = children;
    to_push.tags = target.extra_tags;
    to_push.mount_sources = mount_sources;
    Ok(registry.push_image(&target.reference, &to_push)?)
}

/// The config blob of a stored image (its media type read from the manifest).
fn config_blob(image: &StoredImage, manifest: &[u8], cache: &Cache) -> Result<BlobRef, BuildError> {
    let config_path = cache.blob_path(&image.config_digest);
    let size = std::fs::metadata(&config_path)
        .map_err(|source| CacheError {
            path: config_path.clone(),
            source,
        })?
        .len();
    let media_type = oci::Manifest::parse(manifest)
        .map_err(|source| BuildError::CachedManifest {
            digest: image.manifest_digest.clone(),
            source,
        })?
        .config
        .media_type
        .to_string();
    Ok(BlobRef {
        digest: image.config_digest.clone(),
        size,
        media_type,
        path: config_path,
    })
}
