//! The registry as the shared cache of a fleet of CI workers (`build --cache-from/--cache-to`).
//!
//! # Why this shape
//!
//! A layer's cache key ([`crate::plan`]) is an exact content key: it covers everything that
//! decides the layer's bytes and nothing about the machine (no paths, hostnames, users or
//! clock: file times come from git or `SOURCE_DATE_EPOCH`, source files are keyed by content).
//! So a worker that knows "key K produced blob D with diff_id X" from another worker can skip
//! building K exactly as if its own cache held it. The fleet cache is that knowledge, kept in
//! the registry next to the blobs it names.
//!
//! **What is stored.** One OCI artifact per publishing build: an image manifest with
//! `artifactType` [`index::ARTIFACT_TYPE`], the empty config, and as layers (1) a JSON index
//! document (layer key → digest, diff_id, sizes, media type, the sha256 of the lockfile the
//! build resolved its packages from, when it was published; the document names its format and
//! stevedore's layer format version, and readers skip other versions), (2) each package layer's
//! side files (its listing, dpkg status and script coverage: what planning the layers above a
//! cached package layer needs without its bytes), (3) the build's layer blobs themselves, so the
//! registry keeps them while the artifact lives and they can be mounted from the cache
//! repository into any image repository of the same registry.
//!
//! **Many writers.** The distribution API has no compare-and-swap on tags, so an index rewritten
//! in place by read-merge-write loses entries whenever two writers interleave, and a check after
//! the write only narrows the window. Instead every writer pushes a *new* artifact under its own
//! tag (`fleet-v1-<inverted time>-<digest of the document>`) and never rewrites or deletes
//! another's: concurrent writers cannot lose each other's entries, and readers merge the newest
//! artifacts on read (per key, the most recently published entry wins). Tags rather than the
//! referrers API because a tag list is served by every registry and needs no subject image; the
//! inverted time makes the registry's lexical tag order list the newest first, so a reader needs
//! one bounded tag-list page.
//!
//! **Bounds and expiry.** A reader reads one tag-list page and at most
//! [`index::MAX_ARTIFACTS`] (16) artifacts, each index at most 4 MiB and 1024 entries, side files
//! at most 32 MiB each; artifacts and entries older than 14 days are ignored. So that entries
//! outlive the newest 16 builds, a writer carries forward what it read under its `--cache-to`
//! (entries only, keeping their publication time) before adding its own, keeping the newest
//! 1024 and dropping those older than 14 days: a layer still in use is republished by every
//! build that uses it and never expires; one nobody builds any more falls out after 14 days.
//! Old artifact tags are left in the registry (deleting them is the registry's retention policy:
//! any tag older than 14 days can go).
//!
//! **Trust.** An entry is trusted only as far as the registry is: whoever can push to the cache
//! repository can make workers assemble images from its blobs. Hence `--cache-from` is
//! read-only and safe to give untrusted jobs (pull requests: they read, never write), and only
//! trusted jobs get `--cache-to`. `stevedore verify` stays the check that an image is what its
//! recipe builds. Blobs are always checked against their digest; a layer's bytes are checked
//! against the entry's diff_id whenever they are downloaded (a local output or a push to another
//! registry needs them): a mismatch is reported, the layer is built locally, and the bad blob is
//! never stored, pushed or republished. When nothing needs the bytes (a push to the cache's own
//! registry), the blob is mounted or found by HEAD and never downloaded; the manifest's diff_id
//! then comes from the entry, which is exactly the registry-trust case `verify` covers.

pub mod bytes;
pub mod index;
pub mod remote;

use std::collections::BTreeMap;
use std::path::Path;

use crate::cache::{Cache, CacheError, LayerRecord};
use crate::digest::Digest;
use crate::error::{Classify, ErrorClass};
use crate::registry::{BlockingRegistry, Reference, RegistryError};

pub use remote::Found;

/// Where a build reads and writes the fleet cache.
#[derive(Clone, Debug, Default)]
pub struct FleetOptions {
    /// Read-only caches (`--cache-from`, repeatable; `STEVEDORE_CACHE_FROM`).
    pub from: Vec<Reference>,
    /// The cache this build publishes to (`--cache-to`; `STEVEDORE_CACHE_TO`).
    pub to: Option<Reference>,
    /// The registry the image will be pushed to, if any: cached layers whose blobs live on
    /// another registry must then be downloaded (and checked) to be uploaded there.
    pub push_registry: Option<String>,
}

impl FleetOptions {
    pub fn is_empty(&self) -> bool {
        self.from.is_empty() && self.to.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet cache: {0}")]
    Registry(#[from] RegistryError),
    #[error("fleet cache: {0}")]
    Cache(#[from] CacheError),
    #[error("fleet cache artifact {reference}: {detail}")]
    Artifact { reference: String, detail: String },
}

impl Classify for FleetError {
    fn class(&self) -> ErrorClass {
        match self {
            FleetError::Registry(e) => e.class(),
            FleetError::Artifact { .. } => ErrorClass::Remote,
            FleetError::Cache(_) => ErrorClass::Build,
        }
    }
}

/// The repository a reference names (cache references' tags and digests are not used).
pub fn repo_of(r: &Reference) -> Reference {
    Reference {
        tag: None,
        digest: None,
        ..r.clone()
    }
}

/// Seconds since the epoch: artifact tags and expiry only, never a layer key.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// sha256 of the recipe's lockfile, if it has one: the resolution its package layers came
/// from, recorded in each entry.
pub fn lock_digest(recipe: &Path) -> Option<Digest> {
    std::fs::read(crate::plan::lockfile_path(recipe))
        .ok()
        .map(|b| Digest::of(&b))
}

/// Makes the entries usable by planning: the side files of package-layer entries (those of
/// this build's lock, or all when it has none) are fetched into the local cache, and the
/// records of every entry are returned for [`Cache::with_remote_layers`]. Keys the local cache
/// holds are left out: local blobs win.
pub fn hydrate(
    registry: &BlockingRegistry,
    found: &BTreeMap<Digest, Found>,
    cache: &Cache,
    lock: Option<&Digest>,
) -> Result<BTreeMap<Digest, LayerRecord>, FleetError> {
    let wanted = found.values().filter(|f| {
        !f.entry.side_files.is_empty()
            && cache.layer_record(&f.entry.key).is_none()
            && (lock.is_none() || f.entry.lock.as_ref() == lock)
    });
    let jobs = wanted.flat_map(|f| {
        f.entry.side_files.iter().filter_map(move |(kind, file)| {
            cache
                .layer_file(&f.entry.key, kind)
                .is_none()
                .then_some((f, kind, file))
        })
    });
    let fetched = registry.block_on(futures_util::future::join_all(jobs.map(
        |(f, kind, file)| async move {
            let bytes =
                remote::fetch_small(registry.registry(), &f.from, &file.digest, file.size, cache)
                    .await?;
            cache.put_layer_file(&f.entry.key, kind, &bytes)?;
            Ok::<(), FleetError>(())
        },
    )));
    for r in fetched {
        r?;
    }
    Ok(found
        .iter()
        .filter(|(k, _)| cache.layer_record(k).is_none())
        .map(|(k, f)| (k.clone(), f.entry.record()))
        .collect())
}
