//! Where `build` meets the fleet cache ([`crate::fleet`]): read the index before planning, get
//! (and check) the bytes of cached layers a local output needs, publish after the build.

use std::collections::{BTreeMap, BTreeSet};

use super::{BuildError, BuildOptions};
use crate::cache::{Cache, LayerRecord};
use crate::digest::Digest;
use crate::fleet::{self, Found, bytes::Checked};
use crate::output::StoredImage;
use crate::plan::PlannedLayer;
use crate::registry::{BlockingRegistry, Reference};

/// The fleet cache as one build sees it.
pub(super) struct FleetContext {
    registry: BlockingRegistry,
    found: BTreeMap<Digest, Found>,
    lock: Option<Digest>,
}

impl FleetContext {
    /// The repositories holding cached blobs this build may use (mount sources for a push).
    pub(super) fn sources(&self) -> Vec<Reference> {
        let mut sources: Vec<Reference> = Vec::new();
        for f in self.found.values() {
            if !sources.contains(&f.from) {
                sources.push(f.from.clone());
            }
        }
        sources
    }
}

/// Where a push of this build's image may mount layers from: the repositories of the cached
/// layers it used and the one it published to (same registry only; the client checks).
pub(super) fn push_sources(opts: &BuildOptions, ctx: Option<&FleetContext>) -> Vec<Reference> {
    let mut sources = ctx.map(FleetContext::sources).unwrap_or_default();
    if let (Some(_), Some(to)) = (ctx, &opts.fleet.to) {
        let to = fleet::repo_of(to);
        if !sources.contains(&to) {
            sources.push(to);
        }
    }
    sources
}

/// Reads the `--cache-from` caches and returns the cache planning should see: the local one,
/// also knowing every listed key. A cache that cannot be read is a warning (the build goes on
/// without it), never a failure: the fleet cache only ever saves work.
pub(super) fn open(
    recipe_path: &std::path::Path,
    opts: &BuildOptions,
    cache: &Cache,
) -> Result<(Cache, Option<FleetContext>), BuildError> {
    if opts.fleet.is_empty() {
        return Ok((cache.clone(), None));
    }
    let registry = BlockingRegistry::new(opts.registry.clone())?;
    let lock = fleet::lock_digest(recipe_path);
    let found = if opts.fleet.from.is_empty() {
        BTreeMap::new()
    } else {
        fleet::remote::read(&registry, &opts.fleet.from, cache, fleet::now()).unwrap_or_else(|e| {
            tracing::warn!("{e}; building without it");
            BTreeMap::new()
        })
    };
    let remote = fleet::hydrate(&registry, &found, cache, lock.as_ref()).unwrap_or_else(|e| {
        tracing::warn!("{e}; building without it");
        BTreeMap::new()
    });
    if !opts.fleet.from.is_empty() {
        tracing::info!(
            "fleet cache: {} layer keys listed, {} not held locally",
            found.len(),
            remote.len()
        );
    }
    let ctx = FleetContext {
        registry,
        found,
        lock,
    };
    Ok((cache.with_remote_layers(remote), Some(ctx)))
}

/// Whether the cached layers' bytes must be local: a local output writes them, a push to
/// another registry than the one holding them uploads them.
pub(super) fn needs_bytes(opts: &BuildOptions, ctx: &FleetContext) -> bool {
    !opts.outputs.is_empty()
        || opts
            .fleet
            .push_registry
            .as_ref()
            .is_some_and(|push| ctx.found.values().any(|f| &f.from.registry != push))
}

/// Downloads the bytes of the planned layers that only the fleet cache holds, each checked
/// against its entry's diff_id. Returns the keys whose bytes are not what their entry claims:
/// the caller builds those locally.
pub(super) fn fetch_remote_layers(
    layers: &[PlannedLayer],
    cache: &Cache,
    ctx: &FleetContext,
) -> Result<BTreeSet<Digest>, BuildError> {
    let mut bad = BTreeSet::new();
    for l in layers {
        let Some(found) = ctx.found.get(&l.key) else {
            continue;
        };
        if cache.layer_record(&l.key).is_some() || cache.remote_layer(&l.key).is_none() {
            continue;
        }
        match fleet::bytes::fetch_layer(&ctx.registry, found, cache)? {
            Checked::Stored => tracing::info!(
                "fleet cache: layer {} downloaded from {} ({} bytes)",
                l.name,
                found.from.name(),
                found.entry.size
            ),
            Checked::Mismatch { actual } => {
                tracing::warn!(
                    "fleet cache entry for layer {} is corrupt: blob {} of {} decompresses to {actual}, the entry says {}; building it locally",
                    l.name,
                    found.entry.digest,
                    found.from.name(),
                    found.entry.diff_id
                );
                bad.insert(l.key.clone());
            }
        }
    }
    Ok(bad)
}

/// The records planning should still take from the fleet cache: all but `bad` and those now
/// held locally.
pub(super) fn remaining(
    cache: &Cache,
    ctx: &FleetContext,
    bad: &BTreeSet<Digest>,
) -> BTreeMap<Digest, LayerRecord> {
    ctx.found
        .iter()
        .filter(|(k, _)| !bad.contains(*k) && cache.layer_record(k).is_none())
        .map(|(k, f)| (k.clone(), f.entry.record()))
        .collect()
}

/// Publishes this build's layers to `--cache-to`, if given; `bad` keys (whose cached bytes
/// were not their entry's) are published as rebuilt here, never as they were.
pub(super) fn publish(
    opts: &BuildOptions,
    ctx: Option<&FleetContext>,
    cache: &Cache,
    layers: &[(Digest, LayerRecord)],
    stored: &StoredImage,
) -> Result<(), BuildError> {
    let (Some(ctx), Some(to)) = (ctx, &opts.fleet.to) else {
        return Ok(());
    };
    let own_types = &stored.layers[stored.layers.len() - layers.len()..];
    let publish = fleet::remote::Publish {
        to,
        layers: layers
            .iter()
            .zip(own_types)
            .map(|((key, record), l)| fleet::remote::OwnLayer {
                key: key.clone(),
                record: record.clone(),
                media_type: l.media_type.clone(),
            })
            .collect(),
        lock: ctx.lock.clone(),
        mount_from: ctx.sources(),
    };
    let (tag, entries) = fleet::remote::publish(&ctx.registry, cache, &publish, fleet::now())?;
    tracing::info!(
        "fleet cache: published {}:{tag} ({entries} entries)",
        fleet::repo_of(to).name()
    );
    Ok(())
}
