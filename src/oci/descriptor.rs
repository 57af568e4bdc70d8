//! Descriptors, image manifests and image indexes: the typed documents [`super::parse`] returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{MediaType, Platform};
use crate::digest::Digest;

/// The annotation an OCI layout's index uses to name a manifest (the `:TAG` of `oci:DIR:TAG`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor: what a blob or manifest is, its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: MediaType,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// Embedded content, base64 (kept as written; stevedore never reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type,
            digest,
            size,
            urls: None,
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation (a layout's tag).
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

/// An image manifest, OCI or Docker v2.2 (same shape); also an OCI 1.1 artifact manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2 once parsed.
    pub schema_version: u32,
    /// Optional in OCI, required in Docker v2.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// A manifest of `media_type` (which also says OCI or Docker) with no annotations.
    pub fn new(media_type: MediaType, config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Manifest {
            schema_version: 2,
            media_type: Some(media_type),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The media type it declares, or OCI's when it declares none (as the OCI spec allows).
    pub fn effective_media_type(&self) -> MediaType {
        self.media_type.clone().unwrap_or(MediaType::OCI_MANIFEST)
    }

    /// Parses and validates bytes that must be an image manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, super::ParseError> {
        match super::parse(bytes)? {
            super::Document::Manifest(m) => Ok(*m),
            super::Document::Index(_) => Err(super::ParseError::WrongKind {
                expected: super::Kind::Manifest,
                found: super::Kind::Index,
            }),
        }
    }

    /// Canonical bytes: keys sorted, no whitespace (what stevedore hashes and writes).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        super::canonical_json(self)
    }

    /// Every descriptor it holds: config, layers, subject.
    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config)
            .chain(&self.layers)
            .chain(&self.subject)
    }
}

/// An image index (OCI) or manifest list (Docker), and an OCI layout's `index.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    #[serde(deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An OCI image index over `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MediaType::OCI_INDEX),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Parses and validates bytes that must be an image index or manifest list.
    pub fn parse(bytes: &[u8]) -> Result<Index, super::ParseError> {
        match super::parse(bytes)? {
            super::Document::Index(i) => Ok(*i),
            super::Document::Manifest(_) => Err(super::ParseError::WrongKind {
                expected: super::Kind::Index,
                found: super::Kind::Manifest,
            }),
        }
    }

    pub fn effective_media_type(&self) -> MediaType {
        self.media_type.clone().unwrap_or(MediaType::OCI_INDEX)
    }

    pub fn to_canonical_json(&self) -> Vec<u8> {
        super::canonical_json(self)
    }

    /// The first entry for `platform` (see [`Platform::matches`]).
    pub fn find_platform(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
    }

    /// The entry a layout names `tag` (its `org.opencontainers.image.ref.name`).
    pub fn find_ref_name(&self, tag: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| d.ref_name() == Some(tag))
    }

    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().chain(&self.subject)
    }
}

/// `null` reads as the empty value: Go writers may emit `null` for an empty map or list.
pub(super) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
