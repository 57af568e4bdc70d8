//! Software bills of materials: SPDX 2.3 JSON and CycloneDX 1.6 JSON, written from what the
//! build knows — never by scanning the image.
//!
//! A stage after `image`: it reads the plan (the lockfile, the cumulative dpkg status a package
//! layer carries, the entries of file and WAR layers), the stored image (digests) and the
//! cache (each package's unpacked data.tar, for its `copyright` file and `os-release`).
//!
//! - [`inventory`] gathers the facts: packages with source, Depends and license, files with
//!   sha256, Maven jars, the base image, the distribution;
//! - [`spdx`] and [`cyclonedx`] write them, each as one deterministic document: no wall clock
//!   (`created` is the image's own time, from `SOURCE_DATE_EPOCH` or the git commit), and the
//!   document's namespace / serial number derive from the manifest digest.
//!
//! Why typed serde structs and not a crate: `cyclonedx-bom` 0.8 writes CycloneDX 1.3–1.5 only
//! (no 1.6); `spdx-rs` 0.5 models SPDX 2.2.1 (no 2.3 fields such as `primaryPackagePurpose`)
//! and pulls chrono with the clock, uuid v4, nom 7 and thiserror 1; `serde-spdx` and
//! `serde-cyclonedx` generate their types in a build script (schemafy, syn) and failed to build
//! on docs.rs. The subset written here is small and its output is checked by the formats' own
//! validators in the tests (`pyspdxtools`, the CycloneDX 1.6 JSON schema) and by syft.

mod cyclonedx;
mod debian;
mod error;
pub mod inventory;
mod license;
mod maven;
mod purl;
mod spdx;

pub use error::SbomError;
pub use inventory::Inventory;

use crate::cache::Cache;
use crate::output::StoredImage;
use crate::plan::Plan;
use crate::recipe::Recipe;

/// The SBOM formats stevedore writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON.
    Spdx23Json,
    /// CycloneDX 1.6, JSON.
    CycloneDx16Json,
}

impl SbomFormat {
    pub const ALL: [SbomFormat; 2] = [SbomFormat::Spdx23Json, SbomFormat::CycloneDx16Json];

    /// The media type of the document (an OCI artifact's `artifactType` and layer type).
    pub const fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx23Json => "application/spdx+json",
            SbomFormat::CycloneDx16Json => "application/vnd.cyclonedx+json",
        }
    }
}

impl std::str::FromStr for SbomFormat {
    type Err = String;

    /// `spdx` or `cyclonedx` (as `--format` and `--sbom` spell them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "spdx" | "spdx-json" => Ok(SbomFormat::Spdx23Json),
            "cyclonedx" | "cyclonedx-json" | "cdx" => Ok(SbomFormat::CycloneDx16Json),
            other => Err(format!(
                "`{other}` is not an SBOM format; use spdx or cyclonedx"
            )),
        }
    }
}

/// One written SBOM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomDocument {
    pub format: SbomFormat,
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

/// What a build has once it is done, all the SBOM needs: fill it from `build::build`'s result
/// (`BuildResult { image, plan, recipe, .. }`) and the cache it built in; nothing is resolved
/// again and nothing is read from the network unless a package's `.deb` left the cache.
#[derive(Clone, Copy)]
pub struct SbomInput<'a> {
    /// The built image: manifest digest (the SBOM's subject), name and tags, layer digests
    /// (base layers first).
    pub image: &'a StoredImage,
    /// The plan the image was built from: lockfile, `created`, platform, every own layer with
    /// its entries (file and WAR layers) or dpkg status (package layers).
    pub plan: &'a Plan,
    /// The recipe: which layers are file, WAR or package layers, the apt sources (the
    /// distribution when no `os-release` says it), the registry base's reference.
    pub recipe: &'a Recipe,
    /// The cache the image was built in (unpacked packages).
    pub cache: &'a Cache,
}

/// Writes the SBOM of a built image in each of `formats` (in that order). The same input gives
/// the same bytes.
pub fn documents(
    input: &SbomInput<'_>,
    formats: &[SbomFormat],
) -> Result<Vec<SbomDocument>, SbomError> {
    let inventory = Inventory::gather(input)?;
    Ok(formats
        .iter()
        .map(|&format| SbomDocument {
            format,
            media_type: format.media_type(),
            bytes: match format {
                SbomFormat::Spdx23Json => spdx::write(&inventory),
                SbomFormat::CycloneDx16Json => cyclonedx::write(&inventory),
            },
        })
        .collect())
}
