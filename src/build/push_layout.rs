//! `push oci:DIR[:TAG] REF`: an image from an OCI layout to a registry.

use super::{BuildError, push_target};
use crate::digest::Digest;
use crate::oci;
use crate::output::{self, OutputError};
use crate::registry::{BlobRef, BlockingRegistry, ImageToPush, PushReport, RawManifest, Reference};

/// Pushes an image read from an OCI layout (`oci:DIR[:TAG]`); an entry that names an image
/// index (a multi-platform build) pushes the index and every image it lists.
pub fn push_layout(
    source: &str,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    let wrap = |error| BuildError::Source {
        source_ref: source.to_string(),
        error,
    };
    if let Some(index) = output::layout_index(source).map_err(wrap)? {
        return push_layout_index(source, &index, target, registry);
    }
    let (raw, blobs, tag) = layout_image(source, None)?;
    let tags = if target.tag.is_some() {
        Vec::new()
    } else {
        tag.into_iter().collect()
    };
    let target = push_target(target, &tags);
    let mut to_push = ImageToPush::new(raw, blobs);
    to_push.tags = target.extra_tags;
    Ok(registry.push_image(&target.reference, &to_push)?)
}

/// The manifest of the layout's image (for `platform`, through an index), its bytes and the
/// blobs it names.
fn layout_image(
    source: &str,
    platform: Option<&oci::Platform>,
) -> Result<(RawManifest, Vec<BlobRef>, Option<String>), BuildError> {
    let wrap = |error| BuildError::Source {
        source_ref: source.to_string(),
        error,
    };
    let (dir, image) = output::read_layout_platform(source, platform).map_err(wrap)?;
    let blob = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
    let manifest_digest = image
        .manifest_digest
        .clone()
        .expect("layouts always have a manifest");
    let manifest_path = blob(&manifest_digest);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| {
        wrap(OutputError::Io {
            path: manifest_path.clone(),
            source: e,
        })
    })?;
    // Validated as a manifest: a descriptor without a size or media type is refused here
    // rather than pushed as 0 bytes of no type.
    let manifest = oci::Manifest::parse(&manifest_bytes).map_err(|e| {
        wrap(OutputError::Target {
            path: manifest_path.clone(),
            message: format!("manifest {manifest_digest}: {e}"),
        })
    })?;
    let blobs: Vec<BlobRef> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .map(|d| BlobRef {
            path: blob(&d.digest),
            size: d.size,
            media_type: d.media_type.to_string(),
            digest: d.digest.clone(),
        })
        .collect();
    let raw = RawManifest {
        bytes: manifest_bytes,
        media_type: manifest.effective_media_type().to_string(),
    };
    Ok((raw, blobs, image.tag))
}

/// Pushes an image index from a layout (a multi-platform build): each platform's manifest by
/// digest, then the index and its tags; a blob several platforms share is uploaded once.
fn push_layout_index(
    source: &str,
    index: &output::LayoutIndex,
    target: &Reference,
    registry: &BlockingRegistry,
) -> Result<PushReport, BuildError> {
    let mut children = Vec::new();
    let mut blobs: Vec<BlobRef> = Vec::new();
    for platform in &index.platforms {
        let (raw, own, _) = layout_image(source, Some(platform))?;
        for b in own {
            if !blobs.iter().any(|x| x.digest == b.digest) {
                blobs.push(b);
            }
        }
        children.push(raw);
    }
    let tags = if target.tag.is_some() {
        Vec::new()
    } else {
        index.tag.clone().into_iter().collect()
    };
    let target = push_target(target, &tags);
    let mut to_push = ImageToPush::new(
        RawManifest {
            bytes: index.bytes.clone(),
            media_type: index.media_type.clone(),
        },
        blobs,
    );
    to_push.children = children;
    to_push.tags = target.extra_tags;
    Ok(registry.push_image(&target.reference, &to_push)?)
}
