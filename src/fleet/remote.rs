//! Reading and writing fleet cache artifacts in a registry, through the registry client and
//! the one OCI model. Every read is bounded: one tag-list page, [`MAX_ARTIFACTS`] manifests,
//! index documents of at most [`MAX_INDEX_BYTES`], side files of at most
//! [`MAX_SIDE_FILE_BYTES`]; every blob is checked against its digest by the client.

use std::collections::{BTreeMap, BTreeSet};

use super::FleetError;
use super::index::{
    self, ARTIFACT_TYPE, Entry, INDEX_MEDIA_TYPE, MAX_ARTIFACTS, MAX_INDEX_BYTES,
    SIDE_FILE_MEDIA_TYPE, SideFile, TAG_PREFIX,
};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest, MediaType, names};
use crate::registry::{BlobRef, BlockingRegistry, ImageToPush, RawManifest, Reference, Registry};

/// An entry read from a cache, with the repository that holds its blobs.
#[derive(Clone, Debug)]
pub struct Found {
    pub entry: Entry,
    pub from: Reference,
}

/// The merged entries of the newest artifacts under each of `refs` (later refs lose to
/// earlier ones only by publication time, like any duplicate key). An artifact that cannot be
/// read or is not ours is skipped with a warning: the cache only ever saves work.
pub fn read(
    registry: &BlockingRegistry,
    refs: &[Reference],
    cache: &Cache,
    now: u64,
) -> Result<BTreeMap<Digest, Found>, FleetError> {
    let mut merged: BTreeMap<Digest, Found> = BTreeMap::new();
    for r in refs {
        let r = &super::repo_of(r);
        let tags = registry.list_tags(r, TAG_PREFIX, MAX_ARTIFACTS * 4)?;
        let newest = index::newest_tags(&tags, now);
        let docs = registry.block_on(futures_util::future::join_all(
            newest
                .iter()
                .map(|t| read_artifact(registry.registry(), r, t, cache, now)),
        ));
        let mut entries = Vec::new();
        for (tag, doc) in newest.iter().zip(docs) {
            match doc {
                Ok(e) => entries.push(e),
                Err(e) => tracing::warn!("fleet cache {}:{tag} skipped: {e}", r.name()),
            }
        }
        for (key, entry) in index::merge(entries) {
            let newer = merged
                .get(&key)
                .is_none_or(|f| f.entry.published < entry.published);
            if newer {
                merged.insert(
                    key,
                    Found {
                        entry,
                        from: r.clone(),
                    },
                );
            }
        }
    }
    Ok(merged)
}

/// One artifact's entries: its manifest by tag, then its index document.
async fn read_artifact(
    registry: &Registry,
    repo: &Reference,
    tag: &str,
    cache: &Cache,
    now: u64,
) -> Result<Vec<Entry>, FleetError> {
    let reference = repo.with_tag(tag)?;
    let (raw, _) = registry.pull_manifest(&reference, None).await?;
    let manifest = Manifest::parse(&raw.bytes).map_err(|e| FleetError::Artifact {
        reference: reference.to_string(),
        detail: e.to_string(),
    })?;
    let not_ours = |detail: String| FleetError::Artifact {
        reference: reference.to_string(),
        detail,
    };
    if manifest.artifact_type.as_ref().map(MediaType::as_str) != Some(ARTIFACT_TYPE) {
        return Err(not_ours(format!("artifactType is not {ARTIFACT_TYPE}")));
    }
    let doc = manifest
        .layers
        .iter()
        .find(|l| l.media_type.as_str() == INDEX_MEDIA_TYPE)
        .ok_or_else(|| not_ours(format!("no {INDEX_MEDIA_TYPE} layer")))?;
    if doc.size > MAX_INDEX_BYTES {
        return Err(not_ours(format!(
            "index of {} bytes, over the {MAX_INDEX_BYTES}-byte limit",
            doc.size
        )));
    }
    let bytes = fetch_small(registry, repo, &doc.digest, doc.size, cache).await?;
    index::parse(&bytes, now).map_err(|e| not_ours(e.to_string()))
}

/// A small blob (index document, side file) through the local store: fetched once, checked
/// against its digest, then read.
pub async fn fetch_small(
    registry: &Registry,
    repo: &Reference,
    digest: &Digest,
    size: u64,
    cache: &Cache,
) -> Result<Vec<u8>, FleetError> {
    if !cache.has_blob(digest) {
        registry
            .fetch_blob_to(
                repo,
                digest,
                size,
                &cache.tmp_dir(),
                &cache.blob_path(digest),
            )
            .await?;
    }
    Ok(cache.read_blob(digest)?)
}

/// A layer this build publishes.
pub struct OwnLayer {
    pub key: Digest,
    pub record: crate::cache::LayerRecord,
    pub media_type: String,
}

/// What a writer publishes and where.
pub struct Publish<'a> {
    pub to: &'a Reference,
    pub layers: Vec<OwnLayer>,
    /// sha256 of the lockfile the build used.
    pub lock: Option<Digest>,
    /// Repositories on the same registry that may hold the layer blobs (mounted, not uploaded).
    pub mount_from: Vec<Reference>,
}

/// Publishes one new artifact: this build's entries over the newest ones already under
/// `to` (read just before), under a tag no other writer uses. Never rewrites or deletes
/// another writer's artifact, so concurrent writers cannot lose each other's entries.
/// Returns the tag and how many entries the artifact lists.
pub fn publish(
    registry: &BlockingRegistry,
    cache: &Cache,
    p: &Publish<'_>,
    now: u64,
) -> Result<(String, usize), FleetError> {
    let to = super::repo_of(p.to);
    let read: BTreeMap<Digest, Entry> = read(registry, std::slice::from_ref(&to), cache, now)?
        .into_iter()
        .map(|(k, f)| (k, f.entry))
        .collect();
    let mut blobs: BTreeMap<Digest, BlobRef> = BTreeMap::new();
    let mut own = Vec::new();
    for l in &p.layers {
        let side_files = side_files(cache, &l.key, &mut blobs)?;
        if cache.has_blob(&l.record.digest) {
            blobs.insert(
                l.record.digest.clone(),
                blob_ref(cache, &l.record.digest, l.record.size, &l.media_type),
            );
        }
        own.push(Entry {
            key: l.key.clone(),
            digest: l.record.digest.clone(),
            diff_id: l.record.diff_id.clone(),
            size: l.record.size,
            diff_size: l.record.diff_size,
            media_type: l.media_type.clone(),
            lock: p.lock.clone(),
            published: now,
            side_files,
        });
    }
    let doc = index::document(read, own, now);
    let doc_bytes = serde_json::to_vec(&doc).expect("index documents serialize");
    let doc_digest = cache.put_bytes(&doc_bytes)?;
    blobs.insert(
        doc_digest.clone(),
        blob_ref(cache, &doc_digest, doc_bytes.len() as u64, INDEX_MEDIA_TYPE),
    );
    let empty = cache.put_bytes(b"{}")?;
    blobs.insert(empty.clone(), blob_ref(cache, &empty, 2, names::OCI_EMPTY));
    let manifest = artifact_manifest(&doc_digest, doc_bytes.len() as u64, p, &blobs, now);
    let tag = index::tag_for(now, &doc_digest);
    let mut image = ImageToPush::new(
        RawManifest {
            bytes: manifest.to_canonical_json(),
            media_type: names::OCI_MANIFEST.into(),
        },
        blobs.into_values().collect(),
    );
    image.mount_sources = p.mount_from.clone();
    push_retrying(registry, &to.with_tag(&tag)?, &image)?;
    Ok((tag, doc.entries.len()))
}

/// Pushes the artifact, again when the registry says a blob it needs is unknown although the
/// push just confirmed it. Concurrent writers upload the same blobs (the empty config, shared
/// layers) at the same moment, and distribution then answers a manifest PUT with
/// MANIFEST_BLOB_UNKNOWN for a blob another writer is committing (seen with eight writers on
/// loopback). The push is idempotent (blobs by digest, a tag of our own), so trying again is
/// safe; the second attempt finds the blobs by HEAD.
fn push_retrying(
    registry: &BlockingRegistry,
    target: &Reference,
    image: &ImageToPush,
) -> Result<(), FleetError> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match registry.push_image(target, image) {
            Ok(_) => return Ok(()),
            Err(e) if attempt < ATTEMPTS && e.has_code("MANIFEST_BLOB_UNKNOWN") => {
                tracing::debug!("fleet cache: {e}; pushing {target} again");
                std::thread::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The artifact's manifest: an empty config, the index document first, then the side files and
/// the layer blobs of this build's entries (so the registry keeps them while the artifact
/// lives, and they can be mounted from this repository).
fn artifact_manifest(
    doc_digest: &Digest,
    doc_size: u64,
    p: &Publish<'_>,
    blobs: &BTreeMap<Digest, BlobRef>,
    now: u64,
) -> Manifest {
    let mut layers = vec![Descriptor::new(
        MediaType::from(INDEX_MEDIA_TYPE),
        doc_digest.clone(),
        doc_size,
    )];
    let mut seen: BTreeSet<Digest> = BTreeSet::from([doc_digest.clone()]);
    let side = blobs
        .values()
        .filter(|b| b.media_type == SIDE_FILE_MEDIA_TYPE)
        .map(|b| (b.digest.clone(), b.size, b.media_type.clone()));
    let own = p
        .layers
        .iter()
        .map(|l| (l.record.digest.clone(), l.record.size, l.media_type.clone()));
    for (digest, size, media_type) in side.chain(own) {
        if seen.insert(digest.clone()) {
            layers.push(Descriptor::new(
                MediaType::from(media_type.as_str()),
                digest,
                size,
            ));
        }
    }
    let empty = Digest::of(b"{}");
    let mut m = Manifest::new(
        MediaType::OCI_MANIFEST,
        Descriptor::new(MediaType::OCI_EMPTY, empty, 2),
        layers,
    );
    m.artifact_type = Some(MediaType::from(ARTIFACT_TYPE));
    m.annotations.insert(
        "org.opencontainers.image.created".into(),
        crate::image::rfc3339(now),
    );
    m
}

/// A package layer's side files from the local cache, stored as blobs for the push.
fn side_files(
    cache: &Cache,
    key: &Digest,
    blobs: &mut BTreeMap<Digest, BlobRef>,
) -> Result<BTreeMap<String, SideFile>, FleetError> {
    let mut out = BTreeMap::new();
    for kind in index::SIDE_FILES {
        let Some(text) = cache.layer_file(key, kind) else {
            continue;
        };
        let digest = cache.put_bytes(text.as_bytes())?;
        let size = text.len() as u64;
        blobs.insert(
            digest.clone(),
            blob_ref(cache, &digest, size, SIDE_FILE_MEDIA_TYPE),
        );
        out.insert(kind.to_string(), SideFile { digest, size });
    }
    Ok(out)
}

fn blob_ref(cache: &Cache, digest: &Digest, size: u64, media_type: &str) -> BlobRef {
    BlobRef {
        digest: digest.clone(),
        size,
        media_type: media_type.to_string(),
        path: cache.blob_path(digest),
    }
}
