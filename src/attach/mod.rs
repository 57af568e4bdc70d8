//! Documents attached to an image as OCI 1.1 artifacts: SBOMs, provenance, signatures.
//!
//! An [`Attachment`] is any document with its types; [`artifact`] wraps it in an artifact
//! manifest (`artifactType`, the empty config `{}`, one layer holding the document, `subject` =
//! the image manifest) whose bytes are canonical JSON, so the same document attached to the same
//! image always gives the same artifact digest. Where they go (a registry's referrers, an OCI
//! layout's `index.json`) is decided in `build::attest`; this module only makes the bytes.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::oci::{self, Descriptor, Manifest, MediaType};

/// The annotation every artifact carries: when the image was made (its `created`, never the
/// clock), so listings can order them and the bytes stay reproducible.
pub const CREATED: &str = "org.opencontainers.image.created";

/// One document to attach. An SBOM document (`SbomDocument { format, media_type, bytes }`)
/// becomes `Attachment::new(media_type, media_type, bytes)`: for SPDX and CycloneDX the
/// artifact type is the document's own media type, as syft, trivy and oras attach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The manifest's `artifactType`: what clients filter referrers on.
    pub artifact_type: String,
    /// The layer's media type: the document's own.
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// Extra annotations on the artifact manifest (copied into the referrers list).
    pub annotations: BTreeMap<String, String>,
}

impl Attachment {
    pub fn new(artifact_type: &str, media_type: &str, bytes: Vec<u8>) -> Attachment {
        Attachment {
            artifact_type: artifact_type.to_owned(),
            media_type: media_type.to_owned(),
            bytes,
            annotations: BTreeMap::new(),
        }
    }
}

/// An artifact ready to be written: its manifest (canonical bytes and parsed) and its blobs.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    /// Every blob the manifest references (the empty config and the layers), as bytes.
    pub blobs: Vec<Vec<u8>>,
    /// Tags the artifact is also pushed under (cosign's `sha256-<hex>.sig`), none for most.
    pub tags: Vec<String>,
    /// An earlier manifest this one supersedes in the referrers list (an older `.sig`).
    pub replaces: Option<Digest>,
}

impl Artifact {
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest_bytes)
    }

    /// Builds an artifact from a finished manifest and the bytes of its layers.
    pub fn from_manifest(manifest: Manifest, layers: Vec<Vec<u8>>) -> Artifact {
        let manifest_bytes = manifest.to_canonical_json();
        let mut blobs = vec![oci::EMPTY_JSON.to_vec()];
        blobs.extend(layers);
        Artifact {
            manifest,
            manifest_bytes,
            blobs,
            tags: Vec::new(),
            replaces: None,
        }
    }

    /// The descriptor of the artifact's manifest, as a referrers list holds it.
    pub fn referrer_entry(&self) -> Descriptor {
        Descriptor::referrer(
            &self.manifest,
            self.digest(),
            self.manifest_bytes.len() as u64,
        )
    }
}

/// The artifact manifest of one attachment, for the image `subject`, made at `created`
/// (RFC 3339).
pub fn artifact(attachment: &Attachment, subject: &Descriptor, created: &str) -> Artifact {
    let layer = Descriptor::new(
        MediaType::from(attachment.media_type.as_str()),
        Digest::of(&attachment.bytes),
        attachment.bytes.len() as u64,
    );
    let mut manifest = Manifest::artifact(
        MediaType::from(attachment.artifact_type.as_str()),
        layer,
        subject.clone(),
    );
    manifest.annotations = attachment.annotations.clone();
    manifest
        .annotations
        .insert(CREATED.to_owned(), created.to_owned());
    Artifact::from_manifest(manifest, vec![attachment.bytes.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_document_gives_the_same_artifact() {
        let subject = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"image"), 5);
        let doc = Attachment::new(
            "application/spdx+json",
            "application/spdx+json",
            b"{}".into(),
        );
        let a = artifact(&doc, &subject, "2024-01-01T00:00:00Z");
        let b = artifact(&doc, &subject, "2024-01-01T00:00:00Z");
        assert_eq!(a.manifest_bytes, b.manifest_bytes);
        assert_eq!(a.manifest.subject.as_ref(), Some(&subject));
        assert_eq!(a.blobs.len(), 2);
        let entry = a.referrer_entry();
        assert_eq!(
            entry.artifact_type.as_ref().map(MediaType::as_str),
            Some("application/spdx+json")
        );
        assert_eq!(
            entry.annotations.get(CREATED).map(String::as_str),
            Some("2024-01-01T00:00:00Z")
        );
        let other = artifact(&doc, &subject, "2024-01-02T00:00:00Z");
        assert_ne!(a.digest(), other.digest());
    }
}
