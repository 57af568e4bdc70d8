//! `push oci:DIR[:TAG] REF`: an image from an OCI layout to a registry.

use super::{BuildError, push_target};
use crate::digest::Digest;
use crate::image;
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
