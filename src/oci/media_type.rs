//! Media types: one definition of every OCI and Docker v2.2 name stevedore reads or writes.

use std::borrow::Cow;
use std::fmt;

/// The media type strings, for code that needs a `&str` (HTTP `Accept` headers, matches).
/// [`MediaType`]'s associated constants are built from these, so each name is written once.
pub mod names {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// An in-toto attestation statement (SLSA provenance).
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";
    /// cosign's simple-signing payload, the layer of a `sha256-<hex>.sig` manifest.
    pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
    /// The `artifactType` cosign gives signatures stored as OCI 1.1 referrers.
    pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    /// Docker's foreign (Windows base) layers: not distributable, never stacked on here.
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

/// A media type. Known names have constants; any other string is kept as it was written (an
/// artifact's type, a vendor's layer), so reading and writing it back loses nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct MediaType(Cow<'static, str>);

/// How a layer blob is encoded, as its media type says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerEncoding {
    Tar,
    Gzip,
    Zstd,
}

impl MediaType {
    pub const OCI_MANIFEST: MediaType = MediaType::from_static(names::OCI_MANIFEST);
    pub const OCI_INDEX: MediaType = MediaType::from_static(names::OCI_INDEX);
    pub const OCI_CONFIG: MediaType = MediaType::from_static(names::OCI_CONFIG);
    pub const OCI_LAYER: MediaType = MediaType::from_static(names::OCI_LAYER);
    pub const OCI_LAYER_GZIP: MediaType = MediaType::from_static(names::OCI_LAYER_GZIP);
    pub const OCI_LAYER_ZSTD: MediaType = MediaType::from_static(names::OCI_LAYER_ZSTD);
    pub const OCI_EMPTY: MediaType = MediaType::from_static(names::OCI_EMPTY);
    pub const DOCKER_MANIFEST: MediaType = MediaType::from_static(names::DOCKER_MANIFEST);
    pub const DOCKER_MANIFEST_LIST: MediaType = MediaType::from_static(names::DOCKER_MANIFEST_LIST);
    pub const DOCKER_CONFIG: MediaType = MediaType::from_static(names::DOCKER_CONFIG);
    pub const DOCKER_LAYER: MediaType = MediaType::from_static(names::DOCKER_LAYER);
    pub const DOCKER_LAYER_GZIP: MediaType = MediaType::from_static(names::DOCKER_LAYER_GZIP);
    pub const DOCKER_LAYER_ZSTD: MediaType = MediaType::from_static(names::DOCKER_LAYER_ZSTD);

    pub const fn from_static(s: &'static str) -> Self {
        MediaType(Cow::Borrowed(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An image index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        matches!(
            self.as_str(),
            names::OCI_INDEX | names::DOCKER_MANIFEST_LIST
        )
    }

    /// An image manifest (OCI or Docker v2.2); OCI artifacts use the OCI manifest type too.
    pub fn is_manifest(&self) -> bool {
        matches!(self.as_str(), names::OCI_MANIFEST | names::DOCKER_MANIFEST)
    }

    /// An image config (OCI or Docker).
    pub fn is_config(&self) -> bool {
        matches!(self.as_str(), names::OCI_CONFIG | names::DOCKER_CONFIG)
    }

    /// A layer stevedore knows how to read (tar, gzip or zstd; OCI or Docker names).
    pub fn is_layer(&self) -> bool {
        self.layer_encoding().is_some()
    }

    /// One of Docker's `application/vnd.docker.*` names.
    pub fn is_docker(&self) -> bool {
        self.as_str().starts_with("application/vnd.docker.")
    }

    /// The encoding of a layer type, from its suffix as containerd reads it (so the
    /// non-distributable and foreign variants are read too); `None` for anything that is not
    /// an OCI or Docker layer type (configs, manifests, artifacts).
    pub fn layer_encoding(&self) -> Option<LayerEncoding> {
        let s = self.as_str();
        if !s.starts_with("application/vnd.oci.image.layer.")
            && !s.starts_with("application/vnd.docker.image.rootfs.")
        {
            return None;
        }
        if s.ends_with("+gzip") || s.ends_with(".gzip") {
            Some(LayerEncoding::Gzip)
        } else if s.ends_with("+zstd") || s.ends_with(".zstd") {
            Some(LayerEncoding::Zstd)
        } else if s.ends_with(".tar") {
            Some(LayerEncoding::Tar)
        } else {
            None
        }
    }

    /// The same layer bytes under the other family's name (as `skopeo copy --format` renames
    /// them); `None` when that family has no name for the encoding. Non-layers are returned
    /// unchanged when already in the family.
    pub fn layer_in_family(&self, docker: bool) -> Option<MediaType> {
        if self.is_docker() == docker {
            return Some(self.clone());
        }
        Some(match (self.layer_encoding()?, docker) {
            (LayerEncoding::Tar, true) => MediaType::DOCKER_LAYER,
            (LayerEncoding::Gzip, true) => MediaType::DOCKER_LAYER_GZIP,
            // Docker v2.2 has no zstd layer name that Docker itself accepts.
            (LayerEncoding::Zstd, true) => return None,
            (LayerEncoding::Tar, false) => MediaType::OCI_LAYER,
            (LayerEncoding::Gzip, false) => MediaType::OCI_LAYER_GZIP,
            (LayerEncoding::Zstd, false) => MediaType::OCI_LAYER_ZSTD,
        })
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        MediaType(Cow::Owned(s.to_owned()))
    }
}

impl From<String> for MediaType {
    fn from(s: String) -> Self {
        MediaType(Cow::Owned(s))
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_known_name() {
        assert!(MediaType::OCI_INDEX.is_index() && MediaType::DOCKER_MANIFEST_LIST.is_index());
        assert!(MediaType::OCI_MANIFEST.is_manifest() && MediaType::DOCKER_MANIFEST.is_manifest());
        assert!(!MediaType::OCI_INDEX.is_manifest() && !MediaType::OCI_MANIFEST.is_index());
        assert!(MediaType::DOCKER_CONFIG.is_config() && MediaType::OCI_CONFIG.is_config());
        for l in [
            MediaType::OCI_LAYER,
            MediaType::OCI_LAYER_GZIP,
            MediaType::OCI_LAYER_ZSTD,
            MediaType::DOCKER_LAYER,
            MediaType::DOCKER_LAYER_GZIP,
        ] {
            assert!(l.is_layer(), "{l}");
            assert!(!l.is_index() && !l.is_manifest() && !l.is_config());
        }
        assert_eq!(
            MediaType::from(names::DOCKER_FOREIGN_LAYER_GZIP).layer_encoding(),
            Some(LayerEncoding::Gzip)
        );
        assert_eq!(
            MediaType::OCI_LAYER_ZSTD.layer_encoding(),
            Some(LayerEncoding::Zstd)
        );
        assert_eq!(
            MediaType::DOCKER_LAYER.layer_encoding(),
            Some(LayerEncoding::Tar)
        );
        assert!(!MediaType::from("application/vnd.example.tar+gzip").is_layer());
        assert!(MediaType::DOCKER_CONFIG.is_docker() && !MediaType::OCI_CONFIG.is_docker());
    }

    #[test]
    fn unknown_types_are_kept_verbatim() {
        let t: MediaType = serde_json::from_str(r#""application/vnd.example+json""#).unwrap();
        assert_eq!(t, "application/vnd.example+json");
        assert!(!t.is_layer() && !t.is_index() && !t.is_manifest());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""application/vnd.example+json""#
        );
        assert_eq!(MediaType::from(names::OCI_INDEX), MediaType::OCI_INDEX);
    }

    #[test]
    fn layers_change_family_as_skopeo_does() {
        assert_eq!(
            MediaType::DOCKER_LAYER_GZIP.layer_in_family(false),
            Some(MediaType::OCI_LAYER_GZIP)
        );
        assert_eq!(
            MediaType::OCI_LAYER_GZIP.layer_in_family(true),
            Some(MediaType::DOCKER_LAYER_GZIP)
        );
        assert_eq!(MediaType::OCI_LAYER_ZSTD.layer_in_family(true), None);
        assert_eq!(
            MediaType::OCI_LAYER_ZSTD.layer_in_family(false),
            Some(MediaType::OCI_LAYER_ZSTD)
        );
    }
}
