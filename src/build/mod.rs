//! The pipeline end to end: recipe → plan → layers → image → output.
//!
//! This is the one place that strings the stages together; the CLI calls it and nothing else.
//! One file per use case: [`load_plan`] (plan without building), [`keep_set`] (what `cache gc`
//! keeps), [`lock`], [`build`], [`push_built`], [`push_layout`] and [`verify`]. Every one of
//! them holds the cache's shared lock while it reads or writes the cache, so `cache gc` (which
//! takes it exclusively) waits for them rather than removing what they use.

mod attest;
mod base;
mod build_image;
mod error;
mod fleet_hooks;
mod keep;
mod load;
mod lock;
mod platforms;
mod push_built;
mod push_layout;
mod record;
mod sbom;
mod verify;
mod verify_provenance;

pub use attest::{
    AttestOptions, ProvenanceReport, Referrer, attach_to_layout, attach_to_registry, attest,
    is_registry_reference, provenance_inputs, referrers, sbom_attachments, verify_provenance,
};
pub use base::ResolvedBase;
pub use build_image::build;
pub use error::{BuildError, classify};
pub use keep::keep_set;
pub use load::{load_plan, load_plans};
pub use lock::lock;
pub use platforms::{Built, MultiBuild, build_all, refuse_attest_for_several};
pub use push_built::{push_built, push_result, push_several};
pub use push_layout::push_layout;
pub use sbom::sbom;
pub use verify::{LayerVerdict, VerifyReport, verify};

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{CacheLock, LayerRecord};
use crate::digest::Digest;
use crate::output::{OutputTarget, StoredImage};
use crate::plan::{LockMode, PlannedLayer};
use crate::registry::{Reference, RegistryOptions};

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub cache_dir: PathBuf,
    pub outputs: Vec<OutputTarget>,
    /// Replaces the recipe's tags when not empty.
    pub tags: Vec<String>,
    /// Layers written at the same time.
    pub jobs: usize,
    /// How package sets are obtained (lockfile or fresh resolution).
    pub lock_mode: LockMode,
    /// Fail when a maintainer-script command is not covered by setup.
    pub strict: bool,
    /// How to reach the registry of a `from` image (only used by recipes that have one).
    pub registry: RegistryOptions,
    /// The fleet cache to read before building and publish to after (empty: none).
    pub fleet: crate::fleet::FleetOptions,
    /// `--platform`: the platforms to build instead of the recipe's (empty: the recipe's).
    pub platforms: Vec<crate::oci::Platform>,
}

/// Events for a progress display. All methods have empty defaults.
pub trait Progress: Sync {
    /// The registry image the recipe is built on, pinned to `digest`.
    fn base_resolved(&self, _reference: &str, _digest: &Digest, _layers: usize) {}
    fn layer_cached(&self, _layer: &PlannedLayer, _record: &LayerRecord) {}
    fn layer_started(&self, _layer: &PlannedLayer) {}
    fn layer_written(&self, _layer: &PlannedLayer, _record: &LayerRecord, _elapsed: Duration) {}
    fn output_written(&self, _target: &OutputTarget, _elapsed: Duration) {}
}

/// A progress sink that shows nothing.
pub struct Silent;
impl Progress for Silent {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerStatus {
    Cached,
    Built,
}

/// One of the recipe's layers as the build left it.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    pub name: String,
    pub status: LayerStatus,
    pub record: LayerRecord,
}

#[derive(Debug)]
pub struct BuildResult {
    pub image: StoredImage,
    /// The recipe's own layers (not the base's), bottom first.
    pub layers: Vec<BuiltLayer>,
    /// What became of the packages' maintainer scripts (`None` without package layers).
    pub coverage: Option<crate::rootfs::setup::coverage::Coverage>,
    /// The registry image the recipe is built on, pinned (its layers are `image.layers[..n]`).
    pub base: Option<ResolvedBase>,
    /// The package sets the build used (from the lockfile, or resolved): provenance material.
    pub lock: Option<crate::apt::Lockfile>,
    /// The image's `created`, seconds since the epoch (never the clock).
    pub created: u64,
    /// The plan the image was built from and its recipe (what [`BuildResult::sbom_input`]
    /// reads: the lock, the layers' entries and dpkg status).
    pub plan: crate::plan::Plan,
    pub recipe: crate::recipe::Recipe,
    /// Repositories of the fleet cache holding layers this build did not make locally: a push
    /// mounts them from there (or finds them by HEAD) instead of uploading them.
    pub fleet_sources: Vec<Reference>,
    /// The cache's shared lock, held while the result lives: `cache gc` cannot remove the
    /// blobs a push of this image reads.
    _cache_lock: CacheLock,
}

impl BuildResult {
    pub fn manifest_digest(&self) -> &Digest {
        &self.image.manifest_digest
    }
}

/// What to push where: the target reference names the tag, else the image's own tags are used.
struct PushTarget {
    reference: Reference,
    /// Tags added after the first.
    extra_tags: Vec<String>,
}

fn push_target(target: &Reference, image_tags: &[String]) -> PushTarget {
    let (reference, extra_tags) = match (&target.tag, image_tags.split_first()) {
        (Some(_), _) | (None, None) => (target.clone(), Vec::new()),
        (None, Some((first, rest))) => (
            target.with_tag(first).unwrap_or_else(|_| target.clone()),
            rest.to_vec(),
        ),
    };
    PushTarget {
        reference,
        extra_tags,
    }
}
