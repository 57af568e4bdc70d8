//! The OCI model: media types, platforms, descriptors, image manifests, indexes and configs,
//! and the one [`parse`] that every reader of outside manifests and indexes goes through.
//!
//! # Why our own types, and where oci-spec fits
//!
//! oci-spec's `image` types serialise well, but as a *reading* model they fall short here:
//! its `MediaType` files every Docker v2.2 name under `Other(String)` (so `is_docker` and
//! `is_layer` would be a wrapper anyway); its `Digest` is any algorithm held as a string, where
//! stevedore's blob store and layouts are sha256-only and want the checked [`Digest`]; its
//! `Platform` has no matching and uses `Arch`/`Os` enums with `Other` catch-alls; it keeps
//! annotations in a `HashMap` (whose order varies per run); its config type has no Docker
//! `Healthcheck`/`Shell`/`OnBuild`; and it validates nothing (schema version, media type against
//! shape, size bounds). Wrapping each of its types would have cost more than these plain serde
//! structs, which follow the spec's field names one for one. Like oci-spec (it has no
//! `deny_unknown_fields`), unknown fields are accepted and dropped on reading.
//!
//! oci-spec stays where it fits best, as an independent reader: the tests check that it reads
//! what these types write back to the same document. The image config is written with
//! [`ImageConfig`] too (it was oci-spec's builder plus JSON patches for the Docker fields and
//! the base's history); the bytes are unchanged, golden digests included. (The one spelling
//! oci-spec changed, `armbe` written as `arm64be`, is no longer changed; Debian has no armbe.)
//!
//! # Validation ([`parse`])
//!
//! - at most [`MAX_MANIFEST_BYTES`] (4 MiB, containerd's limit) of input;
//! - JSON of the right shape; every digest `sha256:` + 64 lowercase hex;
//! - `schemaVersion` 2;
//! - a declared `mediaType` consistent with the document (a manifest type on a document with
//!   `manifests` is refused, as containerd does); without one, the shape decides;
//! - every descriptor size at most [`MAX_BLOB_SIZE`].
//!
//! Errors are a [`ParseError`] naming what is wrong; callers add the file or URL.
//!
//! Writers serialise with [`canonical_json`]: keys sorted at every level, no whitespace, so the
//! same document always gives the same bytes and digest.

mod artifact;
mod config;
mod descriptor;
mod media_type;
mod platform;

use serde::de::IgnoredAny;

pub use artifact::{EMPTY_JSON, in_toto, referrers_tag, signature_tag};
pub use config::{
    Empty, HealthConfig, History, ImageConfig, MAX_CONFIG_BYTES, RootFs, RuntimeConfig,
};
pub use descriptor::{Descriptor, Index, Manifest, REF_NAME};
pub use media_type::{LayerEncoding, MediaType, names};
pub use platform::{DEBIAN_ARCHITECTURES, Platform, PlatformParseError};

pub use crate::digest::Digest;

/// Largest manifest or index read (containerd's limit; also the distribution spec's advice).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Largest blob size a descriptor may declare: 1 TiB. Real layers are at most tens of GB; the
/// bound keeps sums of sizes (progress, totals) far from overflow and refuses absurd values
/// before anything is allocated or downloaded on their word.
pub const MAX_BLOB_SIZE: u64 = 1 << 40;

/// Which kind of document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Manifest => "image manifest",
            Kind::Index => "image index",
        })
    }
}

/// A parsed, validated manifest or index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    Manifest(Box<Manifest>),
    Index(Box<Index>),
}

impl Document {
    pub fn kind(&self) -> Kind {
        match self {
            Document::Manifest(_) => Kind::Manifest,
            Document::Index(_) => Kind::Index,
        }
    }

    /// The declared media type, or the OCI one for its kind when none is declared.
    pub fn media_type(&self) -> MediaType {
        match self {
            Document::Manifest(m) => m.effective_media_type(),
            Document::Index(i) => i.effective_media_type(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("schemaVersion {}, expected 2", .0.map_or("missing".to_string(), |v| v.to_string()))]
    SchemaVersion(Option<u64>),
    #[error("media type `{0}` is not an image manifest or index")]
    UnsupportedMediaType(MediaType),
    #[error("media type `{media_type}` says {declared}, but the document has `{field}`")]
    MediaTypeMismatch {
        media_type: MediaType,
        declared: Kind,
        field: &'static str,
    },
    #[error("neither an image manifest (no `config`) nor an index (no `manifests`)")]
    UnknownShape,
    #[error("has both `config` and `manifests` and no mediaType to tell which it is")]
    Ambiguous,
    #[error("expected an {expected}, found an {found}")]
    WrongKind { expected: Kind, found: Kind },
    #[error("descriptor {digest} declares {size} bytes, over the {limit}-byte limit")]
    SizeOutOfRange {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("rootfs type `{0}`, expected `layers`")]
    RootFsType(String),
}

/// What is looked at before the full parse: enough to tell a manifest from an index and to
/// refuse a schema 1 manifest with a clear word rather than "missing field config".
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u64>,
    media_type: Option<MediaType>,
    config: Option<IgnoredAny>,
    manifests: Option<IgnoredAny>,
}

/// Parses and validates a manifest or index (the rules are in the module comment).
pub fn parse(bytes: &[u8]) -> Result<Document, ParseError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(ParseError::Json)?;
    if probe.schema_version != Some(2) {
        return Err(ParseError::SchemaVersion(probe.schema_version));
    }
    let kind = kind_of(&probe)?;
    let document = match kind {
        Kind::Manifest => Document::Manifest(Box::new(
            serde_json::from_slice(bytes).map_err(ParseError::Json)?,
        )),
        Kind::Index => Document::Index(Box::new(
            serde_json::from_slice(bytes).map_err(ParseError::Json)?,
        )),
    };
    check_sizes(&document)?;
    Ok(document)
}

/// The kind a document is, from its media type when it declares one, else from its shape.
fn kind_of(probe: &Probe) -> Result<Kind, ParseError> {
    let (has_config, has_manifests) = (probe.config.is_some(), probe.manifests.is_some());
    match &probe.media_type {
        Some(mt) if mt.is_manifest() && has_manifests => Err(ParseError::MediaTypeMismatch {
            media_type: mt.clone(),
            declared: Kind::Manifest,
            field: "manifests",
        }),
        Some(mt) if mt.is_index() && has_config => Err(ParseError::MediaTypeMismatch {
            media_type: mt.clone(),
            declared: Kind::Index,
            field: "config",
        }),
        Some(mt) if mt.is_manifest() => Ok(Kind::Manifest),
        Some(mt) if mt.is_index() => Ok(Kind::Index),
        Some(mt) => Err(ParseError::UnsupportedMediaType(mt.clone())),
        None => match (has_config, has_manifests) {
            (true, false) => Ok(Kind::Manifest),
            (false, true) => Ok(Kind::Index),
            (true, true) => Err(ParseError::Ambiguous),
            (false, false) => Err(ParseError::UnknownShape),
        },
    }
}

fn check_sizes(document: &Document) -> Result<(), ParseError> {
    let mut descriptors: Box<dyn Iterator<Item = &Descriptor>> = match document {
        Document::Manifest(m) => Box::new(m.descriptors()),
        Document::Index(i) => Box::new(i.descriptors()),
    };
    match descriptors.find(|d| d.size > MAX_BLOB_SIZE) {
        Some(d) => Err(ParseError::SizeOutOfRange {
            digest: d.digest.clone(),
            size: d.size,
            limit: MAX_BLOB_SIZE,
        }),
        None => Ok(()),
    }
}

/// JSON with object keys sorted at every level and no whitespace: the bytes stevedore hashes.
pub fn canonical_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    use serde_json::Value;
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let value = serde_json::to_value(value).expect("OCI documents have string keys only");
    serde_json::to_vec(&sort(value)).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests;
