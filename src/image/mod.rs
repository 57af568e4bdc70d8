//! An image's documents: the config and manifest of a build, serialised canonically.
//!
//! The documents are the OCI model's types ([`crate::oci`]), written with sorted keys and no
//! insignificant whitespace, so the same inputs always give the same bytes. Docker v2.2 media
//! types are available for registries that predate OCI.

mod base;
mod config;

use std::collections::BTreeMap;

use crate::oci::{Descriptor, LayerEncoding, Manifest, MediaType};

pub use base::{BaseImage, BaseLayer};
pub use config::{ContainerConfig, Healthcheck};

use crate::cache::LayerRecord;
use crate::digest::Digest;
use crate::layer::Compression;

// The media types and the platform live in the OCI model; re-exported for existing callers.
pub use crate::oci::names::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX,
    OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
pub use crate::oci::{Platform, REF_NAME};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Oci,
    /// Docker image manifest v2, schema 2.
    Docker,
}

impl ImageFormat {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ImageFormat::Oci => OCI_MANIFEST,
            ImageFormat::Docker => DOCKER_MANIFEST,
        }
    }

    pub fn config_media_type(self) -> &'static str {
        match self {
            ImageFormat::Oci => OCI_CONFIG,
            ImageFormat::Docker => DOCKER_CONFIG,
        }
    }

    pub fn layer_media_type(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (ImageFormat::Docker, _) => DOCKER_LAYER_GZIP,
            (ImageFormat::Oci, Compression::Gzip { .. }) => OCI_LAYER_GZIP,
            (ImageFormat::Oci, Compression::Zstd { .. }) => OCI_LAYER_ZSTD,
        }
    }
}

/// Which compression a layer media type implies, for reading blobs back (`None` for
/// uncompressed tar and anything that is not a layer).
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match MediaType::from(media_type).layer_encoding()? {
        LayerEncoding::Zstd => Some(Compression::Zstd {
            level: Compression::DEFAULT_ZSTD_LEVEL,
        }),
        LayerEncoding::Gzip => Some(Compression::Gzip {
            level: Compression::DEFAULT_GZIP_LEVEL,
        }),
        LayerEncoding::Tar => None,
    }
}

/// One layer as the image sees it.
#[derive(Clone, Debug)]
pub struct ImageLayer {
    pub record: LayerRecord,
    /// History line, e.g. `stevedore layer app`.
    pub created_by: String,
}

/// Everything that decides an image's config and manifest bytes.
#[derive(Clone, Debug)]
pub struct ImageSpec<'a> {
    pub format: ImageFormat,
    pub compression: Compression,
    pub platform: &'a Platform,
    /// Seconds since the epoch; never the wall clock (see the build's time policy).
    pub created: u64,
    pub config: &'a ContainerConfig,
    /// The image's own layers, above the base's.
    pub layers: &'a [ImageLayer],
    pub annotations: &'a BTreeMap<String, String>,
    /// A base image made elsewhere: its layers come first, with their own descriptors.
    pub base: Option<&'a BaseImage>,
}

/// The serialised documents of one image, ready to store.
#[derive(Clone, Debug)]
pub struct ImageDocuments {
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_media_type: &'static str,
    /// Media type of every layer in the manifest, base layers first.
    pub layer_media_types: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A base image's manifest or config that does not parse.
    #[error("base image {digest}: its {document}: {source}")]
    BaseDocument {
        digest: Digest,
        document: &'static str,
        #[source]
        source: crate::oci::ParseError,
    },
    /// A base image whose documents parse but do not fit together or cannot be built on.
    #[error("base image {digest}: {problem}")]
    Base { digest: Digest, problem: String },
    #[error(
        "a base layer has media type {0}, which Docker v2.2 images cannot carry; use format = \"oci\""
    )]
    NotInDocker(MediaType),
    #[error("healthcheck {field} of {nanos} ns does not fit an image config (at most 292 years)")]
    Duration { field: &'static str, nanos: u64 },
}

/// The last second [`rfc3339`] can write (9999-12-31T23:59:59Z: the year has four digits);
/// times past it are refused where they come in (`SOURCE_DATE_EPOCH`, git commit times).
pub const LAST_TIME: u64 = 253_402_300_799;

pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

pub fn assemble(spec: &ImageSpec) -> Result<ImageDocuments, ImageError> {
    let config = canonical_json(&config::image_config(spec)?);
    let config_digest = Digest::of(&config);

    let layer_type = MediaType::from_static(spec.format.layer_media_type(spec.compression));
    let mut layers = Vec::new();
    for l in spec.base.iter().flat_map(|b| &b.layers) {
        let media_type = base::layer_type_for(spec.format, &l.media_type)?;
        layers.push(Descriptor::new(media_type, l.digest.clone(), l.size));
    }
    for l in spec.layers {
        layers.push(Descriptor::new(
            layer_type.clone(),
            l.record.digest.clone(),
            l.record.size,
        ));
    }
    let config_descriptor = Descriptor::new(
        MediaType::from_static(spec.format.config_media_type()),
        config_digest.clone(),
        config.len() as u64,
    );
    let mut manifest = Manifest::new(
        MediaType::from_static(spec.format.manifest_media_type()),
        config_descriptor,
        layers,
    );
    // Docker v2.2 manifests have no annotations field.
    if spec.format == ImageFormat::Oci {
        manifest.annotations = spec.annotations.clone();
    }
    let layer_media_types = manifest
        .layers
        .iter()
        .map(|l| l.media_type.to_string())
        .collect();
    let manifest = manifest.to_canonical_json();
    Ok(ImageDocuments {
        manifest_digest: Digest::of(&manifest),
        manifest,
        config,
        config_digest,
        manifest_media_type: spec.format.manifest_media_type(),
        layer_media_types,
    })
}

/// JSON with object keys sorted at every level and no whitespace (see [`crate::oci`]).
pub fn canonical_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    crate::oci::canonical_json(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"c":null}}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(1735689600), "2025-01-01T00:00:00Z");
    }
}
