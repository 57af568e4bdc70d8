//! The OCI image model: config, manifest and index, serialised canonically.
//!
//! The JSON documents are built with oci-spec's types, then written with sorted keys and no
//! insignificant whitespace, so the same inputs always give the same bytes (oci-spec keeps labels
//! in a `HashMap`, whose order would otherwise vary from run to run). Docker v2.2 media types are
//! available for registries that predate OCI.

mod base;
mod config;

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageManifestBuilder, MediaType};
use serde_json::Value;

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

/// Which compression a layer media type implies, for reading blobs back.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        Some(Compression::Zstd {
            level: Compression::DEFAULT_ZSTD_LEVEL,
        })
    } else if media_type.ends_with("gzip") {
        Some(Compression::Gzip {
            level: Compression::DEFAULT_GZIP_LEVEL,
        })
    } else {
        None
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
#[error("building the image documents: {0}")]
pub struct ImageError(String);

/// The last second [`rfc3339`] can write (9999-12-31T23:59:59Z: the year has four digits);
/// times past it are refused where they come in (`SOURCE_DATE_EPOCH`, git commit times).
pub const LAST_TIME: u64 = 253_402_300_799;

pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

pub fn assemble(spec: &ImageSpec) -> Result<ImageDocuments, ImageError> {
    let config = config::config_json(spec)?;
    let config = canonical_json(&config);
    let config_digest = Digest::of(&config);

    let descriptor =
        |media_type: &str, digest: &Digest, size: u64| -> Result<Descriptor, ImageError> {
            DescriptorBuilder::default()
                .media_type(MediaType::from(media_type))
                .digest(oci_digest(digest)?)
                .size(size)
                .build()
                .map_err(|e| ImageError(e.to_string()))
        };
    let layer_type = spec.format.layer_media_type(spec.compression);
    let mut layers = Vec::new();
    let mut layer_media_types = Vec::new();
    for l in spec.base.iter().flat_map(|b| &b.layers) {
        let media_type = base::layer_type_for(spec.format, &l.media_type)?;
        layers.push(descriptor(&media_type, &l.digest, l.size)?);
        layer_media_types.push(media_type);
    }
    for l in spec.layers {
        layers.push(descriptor(layer_type, &l.record.digest, l.record.size)?);
        layer_media_types.push(layer_type.to_string());
    }
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::from(spec.format.manifest_media_type()))
        .config(descriptor(
            spec.format.config_media_type(),
            &config_digest,
            config.len() as u64,
        )?)
        .layers(layers);
    // Docker v2.2 manifests have no annotations field.
    if spec.format == ImageFormat::Oci && !spec.annotations.is_empty() {
        builder = builder.annotations(
            spec.annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let manifest = builder.build().map_err(|e| ImageError(e.to_string()))?;
    let manifest =
        canonical_json(&serde_json::to_value(&manifest).map_err(|e| ImageError(e.to_string()))?);
    Ok(ImageDocuments {
        manifest_digest: Digest::of(&manifest),
        manifest,
        config,
        config_digest,
        manifest_media_type: spec.format.manifest_media_type(),
        layer_media_types,
    })
}

pub fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, ImageError> {
    d.to_string()
        .parse()
        .map_err(|e: oci_spec::OciSpecError| ImageError(e.to_string()))
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sort(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sort(value)).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let v: Value =
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
