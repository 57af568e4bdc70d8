//! Why a build (or lock, push, verify) failed: one variant per cause, each keeping the error
//! that caused it, and each with its [`ErrorClass`] (the CLI's exit code).

use std::path::PathBuf;

use crate::apt::lock::LockError;
use crate::cache::CacheError;
use crate::digest::Digest;
use crate::error::{Classify, ErrorClass};
use crate::image::ImageError;
use crate::layer::LayerError;
use crate::output::OutputError;
use crate::plan::PlanError;
use crate::plan::time::TimePolicyError;
use crate::recipe::{self, RecipeError};
use crate::registry::RegistryError;
use crate::rootfs::setup::coverage::StrictError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Strict(#[from] StrictError),
    #[error(transparent)]
    Time(#[from] TimePolicyError),
    #[error("layer `{name}` ({location}): {source}")]
    Layer {
        name: String,
        location: recipe::Location,
        #[source]
        source: Box<LayerError>,
    },
    /// A layer found in the cache when it was planned is gone when the build needs it. `cache
    /// gc` waits for builds, so only a hand-made change of the cache does this.
    #[error(
        "layer `{layer}` vanished from the cache during the build (was the cache changed by hand?); build again"
    )]
    LayerVanished { layer: String },
    #[error("{} has no package layers and no registry base: nothing to lock", .recipe.display())]
    NothingToLock { recipe: PathBuf },
    /// The lockfile (next to the recipe) could not be written.
    #[error("writing lockfile {}: {source}", .path.display())]
    WriteLockfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{target}: OCI layouts hold OCI manifests (skopeo and umoci ignore Docker ones); with format = \"docker\" write a docker-archive:FILE or push to a registry"
    )]
    DockerManifestInLayout { target: String },
    /// An output the command line names that cannot be written (checked before building).
    #[error("{source}")]
    BadTarget {
        #[source]
        source: OutputError,
    },
    /// A command that makes one image was given a recipe (or `--platform`) with several.
    #[error(
        "{} builds several platforms ({platforms}); this command takes one: add --platform with one of them",
        .recipe.display()
    )]
    SeveralPlatforms { recipe: PathBuf, platforms: String },
    /// `--provenance`, `--sbom` and `--sign-key` describe one image manifest.
    #[error(
        "--provenance, --sbom and --sign-key attach to one image and this build makes one per platform ({platforms}): build each platform with --platform to attest it"
    )]
    AttestOnePlatform { platforms: String },
    /// `docker-archive:` holds one image, and the build makes several.
    #[error(
        "{target} holds one image and this build makes one per platform ({platforms}): build it with --platform naming one of them, or write oci:DIR for all"
    )]
    ArchiveOnePlatform { target: String, platforms: String },
    #[error(
        "{} was not built with this cache yet: build it first, or pass --against oci:DIR",
        .recipe.display()
    )]
    NotBuiltYet { recipe: PathBuf },
    #[error("unreadable build record {name} in the cache: {source}")]
    BuildRecord {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// Resolving or fetching the registry image a recipe is built `from`.
    #[error("{location}: base image {reference}: {error}")]
    Base {
        location: recipe::Location,
        reference: String,
        #[source]
        error: Box<BuildError>,
    },
    /// The base's layers do not hold what package layers and accounts need (or are not valid
    /// layers).
    #[error(transparent)]
    BaseTree(#[from] crate::rootfs::base::BaseTreeError),
    /// The lockfile that pins the base image cannot be read.
    #[error("{source}")]
    BaseLockfile {
        #[source]
        source: LockError,
    },
    #[error("--locked: {problem}; run `stevedore lock {}` to pin the base image", .recipe.display())]
    BaseNotPinned { problem: String, recipe: PathBuf },
    #[error("unreadable manifest: {source}")]
    BaseManifest {
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest {digest} names no config blob")]
    BaseNoConfig { digest: Digest },
    #[error(
        "the image is {have}, the recipe builds {want}; set [image] platform, or pick the base's {want} variant"
    )]
    BasePlatform { have: String, want: String },
    #[error(
        "base layer {digest} of {reference} decompresses to {actual}, its config says {expected}"
    )]
    BaseLayerDiffId {
        digest: Digest,
        reference: String,
        actual: Digest,
        expected: Digest,
    },
    /// Reading the image a push or a verify starts from (`oci:DIR[:TAG]`).
    #[error("reading {source_ref}: {error}")]
    Source {
        source_ref: String,
        #[source]
        error: OutputError,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The manifest a build stored in the cache does not parse: the cache is damaged.
    #[error("manifest {digest} in the cache: {source}")]
    CachedManifest {
        digest: Digest,
        #[source]
        source: crate::oci::ParseError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing {target}: {source}")]
    Output {
        target: String,
        #[source]
        source: OutputError,
    },
    /// `--sign-key` / `STEVEDORE_SIGN_KEY` cannot be used (the message never holds the key).
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    /// `verify --provenance`: the image has no readable provenance.
    #[error("{reference}: {problem}")]
    Provenance { reference: String, problem: String },
    #[error("SBOM: {0}")]
    Sbom(#[from] crate::sbom::SbomError),
}

impl Classify for BuildError {
    fn class(&self) -> ErrorClass {
        use BuildError as E;
        match self {
            E::Plan(e) => e.class(),
            E::Registry(e) => e.class(),
            E::Fleet(e) => e.class(),
            E::Base { error, .. } => error.class(),
            E::Source { error, .. } => error.class(),
            E::Sign(e) => e.class(),
            E::Provenance { .. } => ErrorClass::Remote,
            E::Sbom(e) => e.class(),
            E::BaseTree(crate::rootfs::base::BaseTreeError::Io { .. }) => ErrorClass::Build,
            E::BaseTree(_) => ErrorClass::Input,
            E::Recipe(_)
            | E::Strict(_)
            | E::Time(_)
            | E::NothingToLock { .. }
            | E::DockerManifestInLayout { .. }
            | E::SeveralPlatforms { .. }
            | E::ArchiveOnePlatform { .. }
            | E::AttestOnePlatform { .. }
            | E::BadTarget { .. }
            | E::NotBuiltYet { .. }
            | E::BaseLockfile { .. }
            | E::BaseNotPinned { .. }
            | E::BasePlatform { .. } => ErrorClass::Input,
            // The registry served a base image that is not what it claims to be.
            E::BaseManifest { .. } | E::BaseNoConfig { .. } | E::BaseLayerDiffId { .. } => {
                ErrorClass::Remote
            }
            E::Layer { .. }
            | E::LayerVanished { .. }
            | E::WriteLockfile { .. }
            | E::BuildRecord { .. }
            | E::Cache(_)
            | E::CachedManifest { .. }
            | E::Image(_)
            | E::Output { .. } => ErrorClass::Build,
        }
    }
}

/// The class of the first error in `error`'s chain whose type is known; [`ErrorClass::Build`]
/// when none is (an unexpected failure is the tool's, not the user's).
pub fn classify(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(class) = known(e) {
            return class;
        }
        next = e.source();
    }
    ErrorClass::Build
}

fn known(e: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
    macro_rules! class_of {
        ($($t:ty),*) => {
            $(if let Some(x) = e.downcast_ref::<$t>() {
                return Some(x.class());
            })*
        };
    }
    class_of!(
        BuildError,
        crate::fleet::FleetError,
        PlanError,
        RecipeError,
        RegistryError,
        crate::apt::AptError,
        crate::apt::FetchError,
        crate::rootfs::InstallError,
        CacheError,
        OutputError,
        crate::sbom::SbomError
    );
    None
}
