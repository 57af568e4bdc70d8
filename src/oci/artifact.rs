//! OCI 1.1 artifacts: manifests that carry a document (an SBOM, a provenance statement, a
//! signature) and point at the image they describe with `subject`, and the referrers index that
//! lists them (the referrers API's answer, or the `sha256-<hex>` tag of the distribution spec's
//! fallback).

use super::{Descriptor, Digest, Index, Manifest, MediaType, names};

/// The empty JSON object `{}`: the config of an artifact that has none (image-spec 1.1).
pub const EMPTY_JSON: &[u8] = b"{}";

impl Descriptor {
    /// The descriptor of [`EMPTY_JSON`] as `application/vnd.oci.empty.v1+json`.
    pub fn empty_json() -> Descriptor {
        Descriptor::new(
            MediaType::OCI_EMPTY,
            Digest::of(EMPTY_JSON),
            EMPTY_JSON.len() as u64,
        )
    }

    /// The entry for an artifact manifest in a referrers list, as the distribution spec asks:
    /// its `artifactType` (else its config's media type) and every annotation of the manifest.
    pub fn referrer(manifest: &Manifest, digest: Digest, size: u64) -> Descriptor {
        let mut d = Descriptor::new(manifest.effective_media_type(), digest, size);
        d.artifact_type = Some(
            manifest
                .artifact_type
                .clone()
                .unwrap_or_else(|| manifest.config.media_type.clone()),
        );
        d.annotations = manifest.annotations.clone();
        d
    }
}

impl Manifest {
    /// An artifact manifest: `artifactType`, the empty config, one layer holding the document,
    /// and `subject` = the image it describes.
    pub fn artifact(artifact_type: MediaType, layer: Descriptor, subject: Descriptor) -> Manifest {
        let mut m = Manifest::new(
            MediaType::OCI_MANIFEST,
            Descriptor::empty_json(),
            vec![layer],
        );
        m.artifact_type = Some(artifact_type);
        m.subject = Some(subject);
        m
    }
}

impl Index {
    /// Adds `entry` to a referrers list unless an entry of that digest is there already; drops
    /// the entries of `replaced` (a manifest the new one supersedes). True when it changed.
    pub fn add_referrer(&mut self, entry: Descriptor, replaced: Option<&Digest>) -> bool {
        let before = self.manifests.len();
        if let Some(old) = replaced.filter(|old| **old != entry.digest) {
            self.manifests.retain(|m| m.digest != *old);
        }
        let removed = before != self.manifests.len();
        if self.manifests.iter().any(|m| m.digest == entry.digest) {
            return removed;
        }
        self.manifests.push(entry);
        true
    }
}

/// The distribution spec's referrers tag of a digest: `sha256-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

/// cosign's signature tag of a digest: `sha256-<hex>.sig` (what containers/image reads with
/// `use-sigstore-attachments: true`).
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// The media type of in-toto statements (provenance).
pub fn in_toto() -> MediaType {
    MediaType::from_static(names::IN_TOTO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_manifest_round_trips_through_parse() {
        let subject = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"image"), 5);
        let layer = Descriptor::new(in_toto(), Digest::of(b"doc"), 3);
        let m = Manifest::artifact(in_toto(), layer, subject.clone());
        let bytes = m.to_canonical_json();
        let back = Manifest::parse(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.subject, Some(subject));
        assert_eq!(
            back.config.digest.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(r#""artifactType":"application/vnd.in-toto+json""#),
            "{text}"
        );
    }

    #[test]
    fn referrers_lists_have_no_duplicates_and_drop_what_was_replaced() {
        let subject = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"image"), 5);
        let layer = Descriptor::new(in_toto(), Digest::of(b"doc"), 3);
        let mut m = Manifest::artifact(in_toto(), layer, subject);
        m.annotations.insert("k".into(), "v".into());
        let entry = Descriptor::referrer(&m, Digest::of(b"m1"), 10);
        assert_eq!(entry.artifact_type, Some(in_toto()));
        assert_eq!(entry.annotations.get("k").map(String::as_str), Some("v"));
        let mut index = Index::new(vec![]);
        assert!(index.add_referrer(entry.clone(), None));
        assert!(!index.add_referrer(entry.clone(), None));
        let newer = Descriptor::referrer(&m, Digest::of(b"m2"), 10);
        assert!(index.add_referrer(newer, Some(&Digest::of(b"m1"))));
        assert_eq!(index.manifests.len(), 1);
        assert_eq!(index.manifests[0].digest, Digest::of(b"m2"));
        assert_eq!(
            referrers_tag(&Digest::of(b"m2")).len(),
            "sha256-".len() + 64
        );
        assert!(signature_tag(&Digest::of(b"m2")).ends_with(".sig"));
    }
}
