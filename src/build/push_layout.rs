//! `push oci:DIR[:TAG] REF`: an image from an OCI layout to a registry.

use super::{BuildError, push_target};
use crate::digest::Digest;
use crate::oci;
use crate::output::{self, OutputError};
use crate::registry::{BlobRef, BlockingRegistry, ImageToPush, PushReport, RawManifest, Reference};

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
    let media_type = manifest.effective_media_type().to_string();
    let tags = if target.tag.is_some() {
        Vec::new()
    } else {
        image.tag.clone().into_iter().collect()
    };
    let target = push_target(target, &tags);
    let mut to_push = ImageToPush::new(
        RawManifest {
            bytes: manifest_bytes,
            media_type,
        },
        blobs,
    );
    to_push.tags = target.extra_tags;
    Ok(registry.push_image(&target.reference, &to_push)?)
}
