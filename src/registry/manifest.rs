//! The OCI documents the registry code reads: manifests and indexes as exact bytes, the
//! references inside them, and platforms.

use std::fmt;
use std::str::FromStr;

use super::{RegistryError, Result};
use crate::digest::Digest;

/// Media types the registry code needs to recognise.
pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";

    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }
}

/// Every manifest type we understand: distribution answers 404 to a manifest GET whose Accept lacks
/// the stored type, even by digest.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

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

/// The blob and manifest references inside a manifest or index.
#[derive(serde::Deserialize)]
pub(crate) struct ManifestRefs {
    #[serde(rename = "mediaType")]
    pub(crate) media_type: Option<String>,
    pub(crate) config: Option<Descriptor>,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

#[derive(serde::Deserialize, Clone)]
pub(crate) struct Descriptor {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) platform: Option<Platform>,
}

impl ManifestRefs {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::InvalidManifest(e.to_string()))
    }
}

/// An image platform as in an index (`linux/amd64`, `linux/arm64/v8`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// An index entry matches when os and architecture agree and, if we ask for a variant, the
    /// variant too (arm64's `v8` may be left out by either side).
    pub fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_owned),
        };
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || norm(self) == norm(other))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform::new(os, arch, Some(v)))
            }
            _ => Err(RegistryError::InvalidReference {
                input: s.to_owned(),
                reason: "platform must be OS/ARCH or OS/ARCH/VARIANT".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching() {
        let want: Platform = "linux/arm64".parse().unwrap();
        assert!(want.matches(&Platform::new("linux", "arm64", Some("v8"))));
        let want: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(want.matches(&Platform::new("linux", "arm64", None)));
        let want: Platform = "linux/arm/v7".parse().unwrap();
        assert!(!want.matches(&Platform::new("linux", "arm", Some("v6"))));
        assert!(!want.matches(&Platform::new("linux", "amd64", None)));
        assert!("linux".parse::<Platform>().is_err());
    }
}
