//! The OCI documents the registry code reads: manifests and indexes as exact bytes and the
//! references inside them. Their types, media types and platforms are the one model of
//! [`crate::oci`].

use super::{RegistryError, Result};
use crate::digest::Digest;
use crate::oci::{self, Descriptor};

/// Every manifest type we understand: distribution answers 404 to a manifest GET whose Accept lacks
/// the stored type, even by digest.
pub(crate) fn accept_manifests() -> String {
    [
        oci::names::OCI_MANIFEST,
        oci::names::OCI_INDEX,
        oci::names::DOCKER_MANIFEST,
        oci::names::DOCKER_MANIFEST_LIST,
    ]
    .join(", ")
}

/// Manifest bytes exactly as hashed: they are pushed as-is, never re-serialised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
}

impl RawManifest {
    pub fn digest(&self) -> Digest {
        Digest::of(&self.bytes)
    }
}

/// The blob and manifest references inside a manifest or index, read through the one OCI
/// model ([`crate::oci::parse`]: size-bounded, schema version, digests and media type checked).
pub(crate) struct ManifestRefs {
    /// The type the document declares, if any.
    pub(crate) media_type: Option<String>,
    pub(crate) config: Option<Descriptor>,
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) manifests: Vec<Descriptor>,
}

impl ManifestRefs {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self> {
        let doc = oci::parse(bytes).map_err(|e| RegistryError::InvalidManifest(e.to_string()))?;
        Ok(match doc {
            oci::Document::Manifest(m) => ManifestRefs {
                media_type: m.media_type.map(|t| t.as_str().to_owned()),
                config: Some(m.config),
                layers: m.layers,
                manifests: Vec::new(),
            },
            oci::Document::Index(i) => ManifestRefs {
                media_type: i.media_type.map(|t| t.as_str().to_owned()),
                config: None,
                layers: Vec::new(),
                manifests: i.manifests,
            },
        })
    }
}
