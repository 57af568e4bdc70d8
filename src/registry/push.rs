//! Pushing an image: blobs (HEAD, mount, streaming upload, chunked and resumable), then manifests by
//! digest, then tags. A manifest goes up only once every blob it needs is confirmed on the registry,
//! so a failed push never leaves a tag on an incomplete image.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method, Response, Url};
use tokio::io::AsyncReadExt;

use super::client::{Host, pull_scope, push_scope};
use super::manifest::{ManifestRefs, RawManifest};
use super::progress::PushProgress;
use super::pull::header_str;
use super::transport::{Activity, strip_query};
use super::{Reference, Registry, RegistryError, Result};
use crate::digest::Digest;

/// A blob on local disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub path: PathBuf,
}

/// Everything one push needs.
#[derive(Clone, Debug)]
pub struct ImageToPush {
    /// The image manifest, or the index for a multi-platform image.
    pub manifest: RawManifest,
    /// For an index: its child manifests, pushed by digest before it.
    pub children: Vec<RawManifest>,
    /// Local blobs (configs and layers of the manifest and its children). A blob the manifests
    /// reference but that is not listed here must already be on the registry, in the target or in
    /// one of `mount_sources` (a base image's layers are then mounted, never downloaded).
    pub blobs: Vec<BlobRef>,
    /// Tags to set besides the target reference's own tag.
    pub tags: Vec<String>,
    /// Repositories (on any registry; only those on the target registry are used) that may hold
    /// some of the blobs: they are mounted from there instead of uploaded.
    pub mount_sources: Vec<Reference>,
}

impl ImageToPush {
    pub fn new(manifest: RawManifest, blobs: Vec<BlobRef>) -> Self {
        ImageToPush {
            manifest,
            children: vec![],
            blobs,
            tags: vec![],
            mount_sources: vec![],
        }
    }
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushReport {
    pub manifest_digest: Digest,
    /// Tags set, in order.
    pub tags: Vec<String>,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    pub blobs_uploaded: usize,
    /// Sizes of the uploaded blobs.
    pub bytes_uploaded: u64,
    /// Bytes actually sent, counting attempts that failed and were retried.
    pub bytes_sent: u64,
    /// The registry answered the manifest PUT with `OCI-Subject`: it indexed the manifest's
    /// `subject` itself (it has the referrers API), so no referrers tag is needed.
    pub subject_indexed: bool,
}

enum Outcome {
    Skipped,
    Mounted,
    Uploaded,
}

/// Tracks one blob's bytes for the progress callbacks and the report.
struct BlobMeter {
    digest: Digest,
    size: u64,
    pos: AtomicU64,
    sent: Arc<AtomicU64>,
    progress: Arc<dyn PushProgress>,
}

/// A streaming request body over `len` bytes of the file from `offset`. Opened per attempt, so a
/// retry never reuses a half-read stream; memory stays at one read buffer.
fn file_body(
    path: &std::path::Path,
    offset: u64,
    len: u64,
    act: Arc<Activity>,
    meter: Arc<BlobMeter>,
) -> Result<Body> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| RegistryError::io(format!("opening blob {}", path.display()), e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| RegistryError::io(format!("seeking in blob {}", path.display()), e))?;
    meter.pos.store(offset, Ordering::Relaxed);
    let reader = tokio::fs::File::from_std(f).take(len);
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10).inspect_ok(move |chunk| {
            act.touch();
            let n = chunk.len() as u64;
            meter.sent.fetch_add(n, Ordering::Relaxed);
            let pos = meter.pos.fetch_add(n, Ordering::Relaxed) + n;
            meter.progress.blob_progress(&meter.digest, pos, meter.size);
        });
    Ok(Body::wrap_stream(stream))
}

/// The next offset to send from an upload status's `Range: [bytes=]0-N` (N inclusive). `None`
/// when absent or not of that form, or when it starts elsewhere than 0 or ends past the blob:
/// numbers from the network never overflow and never point outside the blob.
pub(crate) fn parse_range(range: &str, blob_size: u64) -> Option<u64> {
    let r = range.trim();
    let r = r.strip_prefix("bytes=").unwrap_or(r);
    let (start, end) = r.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let end: u64 = end.trim().parse().ok()?;
    // distribution answers "0-0" for an empty session too; sending byte 0 again is harmless only
    // if it was not stored, so treat "0-0" as empty: a wrong guess fails the PATCH and restarts.
    let next = if end == 0 { 0 } else { end.checked_add(1)? };
    (next <= blob_size).then_some(next)
}

fn next_offset(resp: &Response, blob_size: u64) -> Option<u64> {
    parse_range(header_str(resp, "range")?, blob_size)
}

fn check_digest(resp: &Response, expected: &Digest, what: &str) -> Result<()> {
    match header_str(resp, "docker-content-digest") {
        Some(d) if d != expected.to_string() => Err(RegistryError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.clone(),
            actual: d.to_owned(),
        }),
        _ => Ok(()),
    }
}

impl Registry {
    /// Pushes an image (or an index and its children) to `target`, tagging it with the target's tag
    /// and `image.tags`. Returns the manifest digest and what happened to each blob.
    pub async fn push_image(&self, target: &Reference, image: &ImageToPush) -> Result<PushReport> {
        if let Some(d) = &target.digest
            && *d != image.manifest.digest()
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("push target {target}"),
                expected: d.clone(),
                actual: image.manifest.digest().to_string(),
            });
        }
        let tags = tags_to_set(target, image)?;
        let host = self.host(&target.registry, target.api_host()).await?;
        let repo = target.repository.as_str();
        let sources: Vec<String> = image
            .mount_sources
            .iter()
            .filter(|s| s.registry == target.registry && s.repository != target.repository)
            .map(|s| s.repository.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // One token for the whole push: push on the target, pull on every mount source, so the
        // registry can grant the mounts (a target-only token makes every mount fall back to 202).
        let mut scopes = vec![push_scope(repo)];
        scopes.extend(sources.iter().map(|s| pull_scope(s)));
        let refine = |e: RegistryError| e.refine(&host.name, repo, "push");

        let needed = self
            .needed_blobs(&host, repo, &scopes, image, target)
            .await
            .map_err(refine)?;
        let local = local_blobs(image, &needed)?;

        let sent = Arc::new(AtomicU64::new(0));
        let mut report = PushReport {
            manifest_digest: image.manifest.digest(),
            tags: vec![],
            blobs_skipped: 0,
            blobs_mounted: 0,
            blobs_uploaded: 0,
            bytes_uploaded: 0,
            bytes_sent: 0,
            subject_indexed: false,
        };
        let remote_only: Vec<(Digest, u64)> = needed
            .iter()
            .filter(|(d, _)| !local.contains_key(*d))
            .map(|(d, s)| (d.clone(), *s))
            .collect();
        let jobs = local
            .values()
            .map(|b| {
                let (host, scopes, sources, sent) = (&host, &scopes, &sources, sent.clone());
                async move {
                    let o = self
                        .push_blob(host, repo, scopes, sources, b, sent)
                        .await
                        .map_err(refine)?;
                    Ok::<_, RegistryError>((o, b.size))
                }
                .boxed()
            })
            .chain(remote_only.iter().map(|(d, size)| {
                let (host, scopes, sources) = (&host, &scopes, &sources);
                async move {
                    let o = self
                        .ensure_remote_blob(host, repo, scopes, sources, d, *size)
                        .await
                        .map_err(refine)?;
                    Ok((o, *size))
                }
                .boxed()
            }));
        let outcomes: Vec<(Outcome, u64)> = futures_util::stream::iter(jobs)
            .buffer_unordered(self.inner.opts.max_concurrent.max(1))
            .try_collect()
            .await?;
        for (o, size) in outcomes {
            match o {
                Outcome::Skipped => report.blobs_skipped += 1,
                Outcome::Mounted => report.blobs_mounted += 1,
                Outcome::Uploaded => {
                    report.blobs_uploaded += 1;
                    report.bytes_uploaded += size;
                }
            }
        }
        report.bytes_sent = sent.load(Ordering::Relaxed);

        // Every blob is confirmed: children by digest, then the manifest by digest, then tags.
        report.subject_indexed = self
            .put_manifests(&host, repo, &scopes, image, target, &tags)
            .await
            .map_err(refine)?;
        report.tags = tags;
        Ok(report)
    }

    /// Every blob the manifests need, by digest, with its size. An index's children must be
    /// among those given or already in the repository.
    async fn needed_blobs(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        image: &ImageToPush,
        target: &Reference,
    ) -> Result<BTreeMap<Digest, u64>> {
        let mut needed: BTreeMap<Digest, u64> = BTreeMap::new();
        let child_digests: BTreeSet<Digest> = image.children.iter().map(|c| c.digest()).collect();
        for m in std::iter::once(&image.manifest).chain(&image.children) {
            let refs = ManifestRefs::parse(&m.bytes)?;
            for d in refs.config.iter().chain(&refs.layers) {
                needed.insert(d.digest.clone(), d.size);
            }
            for c in &refs.manifests {
                if !child_digests.contains(&c.digest)
                    && self
                        .manifest_digest_on(host, repo, scopes, &c.digest.to_string())
                        .await?
                        .is_none()
                {
                    return Err(RegistryError::InvalidManifest(format!(
                        "the index references manifest {} which is neither among the children given nor in {}",
                        c.digest,
                        target.name()
                    )));
                }
            }
        }
        Ok(needed)
    }

    /// The children by digest, then the manifest by digest, then each tag: a tag only ever
    /// names an image whose every part is on the registry. True when the registry answered the
    /// manifest's PUT with `OCI-Subject`.
    async fn put_manifests(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        image: &ImageToPush,
        target: &Reference,
        tags: &[String],
    ) -> Result<bool> {
        let progress = &self.inner.opts.progress;
        for c in &image.children {
            let (d, _) = self
                .put_manifest(host, repo, scopes, c, &c.digest().to_string())
                .await?;
            progress.manifest_pushed(&format!("{}@{d}", target.name()), &d);
        }
        let digest = image.manifest.digest();
        let (_, subject_indexed) = self
            .put_manifest(host, repo, scopes, &image.manifest, &digest.to_string())
            .await?;
        progress.manifest_pushed(&format!("{}@{digest}", target.name()), &digest);
        for t in tags {
            self.put_manifest(host, repo, scopes, &image.manifest, t)
                .await?;
            progress.manifest_pushed(&format!("{}:{t}", target.name()), &digest);
        }
        Ok(subject_indexed)
    }

    /// A blob the image needs but that is not local: present, or mounted from a source.
    async fn ensure_remote_blob(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        sources: &[String],
        digest: &Digest,
        size: u64,
    ) -> Result<Outcome> {
        let progress = &self.inner.opts.progress;
        self.retry(|| async {
            if self.head_blob(host, repo, scopes, digest).await?.is_some() {
                progress.blob_skipped(digest, size);
                return Ok(Outcome::Skipped);
            }
            for src in sources {
                if self.head_blob(host, src, scopes, digest).await?.is_none() {
                    continue;
                }
                match self.mount(host, repo, scopes, src, digest).await? {
                    Ok(()) => {
                        progress.blob_mounted(digest, size, src);
                        return Ok(Outcome::Mounted);
                    }
                    // The registry would not mount: nothing to upload from, so close the session.
                    Err(session) => self.abandon(host, scopes, &session.0).await,
                }
            }
            Err(RegistryError::MissingBlob {
                registry: host.name.clone(),
                digest: digest.clone(),
            })
        })
        .await
    }

    /// `POST ?mount=&from=`: `Ok(Ok(()))` when mounted (201), `Ok(Err(session))` when the registry
    /// opened an upload session instead (202), which the caller must use or close.
    async fn mount(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        from: &str,
        digest: &Digest,
    ) -> Result<std::result::Result<(), (Url, Option<u64>)>> {
        let mut url = host.url(&format!("v2/{repo}/blobs/uploads/"));
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let resp = self.post_uploads(host, scopes, &url, &[201, 202]).await?;
        if resp.status().as_u16() == 201 {
            Ok(Ok(()))
        } else {
            Ok(Err((host.location(&resp)?, chunk_min(&resp))))
        }
    }

    async fn push_blob(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        sources: &[String],
        blob: &BlobRef,
        sent: Arc<AtomicU64>,
    ) -> Result<Outcome> {
        let progress = self.inner.opts.progress.clone();
        let len = std::fs::metadata(&blob.path)
            .map_err(|e| RegistryError::io(format!("blob {}", blob.path.display()), e))?
            .len();
        if len != blob.size {
            return Err(RegistryError::InvalidManifest(format!(
                "blob file {} has {len} bytes, the manifest says {}",
                blob.path.display(),
                blob.size
            )));
        }
        let meter = Arc::new(BlobMeter {
            digest: blob.digest.clone(),
            size: blob.size,
            pos: AtomicU64::new(0),
            sent,
            progress: progress.clone(),
        });
        progress.blob_started(&blob.digest, blob.size);
        let attempt = AtomicU64::new(0);
        let outcome = self
            .retry(|| async {
                if attempt.fetch_add(1, Ordering::Relaxed) > 0 {
                    progress.blob_retrying(&blob.digest, "restarting the upload");
                }
                // HEAD on every attempt: a dropped answer to a PUT that did land is a success.
                if let Some(size) = self.head_blob(host, repo, scopes, &blob.digest).await? {
                    if size != 0 && size != blob.size {
                        return Err(RegistryError::Protocol(format!(
                            "{} has blob {} with size {size}, expected {}",
                            host.name, blob.digest, blob.size
                        )));
                    }
                    progress.blob_skipped(&blob.digest, blob.size);
                    return Ok(Outcome::Skipped);
                }
                let mut session = None;
                for src in sources {
                    if self
                        .head_blob(host, src, scopes, &blob.digest)
                        .await?
                        .is_none()
                    {
                        continue;
                    }
                    match self.mount(host, repo, scopes, src, &blob.digest).await? {
                        Ok(()) => {
                            progress.blob_mounted(&blob.digest, blob.size, src);
                            return Ok(Outcome::Mounted);
                        }
                        // 202: the spec's fallback. Upload on this very session; opening a
                        // second one would leave this one dangling.
                        Err(s) => {
                            session = Some(s);
                            break;
                        }
                    }
                }
                let (loc, min_chunk) = match session {
                    Some(s) => s,
                    None => self.open_session(host, repo, scopes).await?,
                };
                let chunked = blob.size >= self.inner.opts.chunked_threshold
                    || host.prefer_chunked.load(Ordering::Relaxed);
                let first = loc.clone();
                let r = if chunked {
                    self.upload_chunked(host, scopes, blob, loc, min_chunk, &meter)
                        .await
                } else {
                    match self.upload_whole(host, scopes, blob, loc, &meter).await {
                        Err(RegistryError::Api { status: 413, .. }) => {
                            // Too large for one request (a proxy's body cap): chunks from now on.
                            host.prefer_chunked.store(true, Ordering::Relaxed);
                            self.abandon(host, scopes, &first).await;
                            let (loc, min_chunk) = self.open_session(host, repo, scopes).await?;
                            self.upload_chunked(host, scopes, blob, loc, min_chunk, &meter)
                                .await
                        }
                        r => r,
                    }
                };
                if r.is_err() {
                    // The retry opens a fresh session; do not leave this one on the registry.
                    self.abandon(host, scopes, &first).await;
                }
                r?;
                progress.blob_uploaded(&blob.digest, blob.size);
                Ok(Outcome::Uploaded)
            })
            .await?;
        Ok(outcome)
    }

    /// Best-effort DELETE of an upload session we are giving up on (a failure here changes nothing).
    async fn abandon(&self, host: &Host, scopes: &[String], session: &Url) {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.send(host, scopes, Method::DELETE, session, &|rb| Ok(rb), None),
        )
        .await;
        tracing::debug!(ok = matches!(r, Ok(Ok(_))), "abandoned upload session");
    }

    async fn open_session(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
    ) -> Result<(Url, Option<u64>)> {
        let url = host.url(&format!("v2/{repo}/blobs/uploads/"));
        let resp = self.post_uploads(host, scopes, &url, &[202]).await?;
        Ok((host.location(&resp)?, chunk_min(&resp)))
    }

    /// An empty `POST …/blobs/uploads/` (a new session, or a mount when `url` says so).
    async fn post_uploads(
        &self,
        host: &Host,
        scopes: &[String],
        url: &Url,
        accepted: &[u16],
    ) -> Result<reqwest::Response> {
        let resp = self
            .send(
                host,
                scopes,
                Method::POST,
                url,
                &|rb| Ok(rb.header(CONTENT_LENGTH, 0)),
                None,
            )
            .await?;
        self.transport()
            .expect_status(resp, &Method::POST, accepted)
            .await
    }

    /// One streaming `PUT <session>&digest=` with the whole file: the fastest path (distribution
    /// does not commit a `POST ?digest=` with a body, so POST-then-PUT it is).
    async fn upload_whole(
        &self,
        host: &Host,
        scopes: &[String],
        blob: &BlobRef,
        mut loc: Url,
        meter: &Arc<BlobMeter>,
    ) -> Result<()> {
        loc.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let act = Activity::new();
        let resp = self
            .send(
                host,
                scopes,
                Method::PUT,
                &loc,
                &|rb| {
                    Ok(rb
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, blob.size)
                        .body(file_body(
                            &blob.path,
                            0,
                            blob.size,
                            act.clone(),
                            meter.clone(),
                        )?))
                },
                Some(act.clone()),
            )
            .await?;
        let resp = self
            .transport()
            .expect_status(resp, &Method::PUT, &[201])
            .await?;
        check_digest(&resp, &blob.digest, &format!("upload of {}", blob.digest))
    }

    /// PATCH chunks, resuming from the registry's `Range` after a failed chunk, then `PUT ?digest=`.
    /// The registry's `Range` must move forward: after a few chunks in a row that it does not
    /// acknowledge, the upload fails rather than send the same bytes for ever.
    async fn upload_chunked(
        &self,
        host: &Host,
        scopes: &[String],
        blob: &BlobRef,
        mut loc: Url,
        min_chunk: Option<u64>,
        meter: &Arc<BlobMeter>,
    ) -> Result<()> {
        let chunk = self
            .inner
            .opts
            .chunk_size
            .max(min_chunk.unwrap_or(0))
            .max(1);
        let policy = self.inner.opts.retry.clone();
        let max_stuck = self.transport().limits.stuck_chunks.max(1);
        let mut offset = 0u64;
        let mut resumes = 0usize;
        let mut stuck = 0usize;
        while offset < blob.size {
            let len = chunk.min(blob.size - offset);
            match self
                .patch_chunk(host, scopes, blob, &loc, offset..offset + len, meter)
                .await
            {
                Ok(resp) => {
                    loc = host.location(&resp)?;
                    let next = next_offset(&resp, blob.size).unwrap_or(offset + len);
                    if next > offset {
                        stuck = 0;
                    } else {
                        stuck += 1;
                        if stuck >= max_stuck {
                            return Err(RegistryError::Protocol(format!(
                                "PATCH {}: the registry acknowledged none of {stuck} chunks in a row (its Range stays below byte {}); giving up on the upload of {}",
                                strip_query(&loc),
                                offset + 1,
                                blob.digest
                            )));
                        }
                    }
                    offset = next;
                }
                Err(e) if e.is_retryable() && resumes < policy.max_retries => {
                    if e.retry_after()
                        .is_some_and(|ra| ra > policy.max_retry_after)
                    {
                        return Err(e.with_wait_refused(policy.max_retry_after));
                    }
                    resumes += 1;
                    let shift = u32::try_from(resumes.min(10)).unwrap_or(10);
                    let backoff = policy
                        .min_delay
                        .saturating_mul(1 << shift)
                        .min(policy.max_delay);
                    let wait = e.retry_after().unwrap_or(backoff);
                    tracing::warn!(
                        "{e}; resuming the upload of {} in {:.1}s",
                        blob.digest,
                        wait.as_secs_f32()
                    );
                    self.inner
                        .opts
                        .progress
                        .blob_retrying(&blob.digest, "resuming the upload");
                    tokio::time::sleep(wait).await;
                    offset = self.resume_offset(host, scopes, blob, &mut loc).await?;
                    tracing::debug!(digest = %blob.digest, offset, "upload resumed");
                }
                Err(e) => return Err(e),
            }
        }
        loc.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let resp = self
            .send(
                host,
                scopes,
                Method::PUT,
                &loc,
                &|rb| Ok(rb.header(CONTENT_LENGTH, 0)),
                None,
            )
            .await?;
        let resp = self
            .transport()
            .expect_status(resp, &Method::PUT, &[201])
            .await?;
        check_digest(&resp, &blob.digest, &format!("upload of {}", blob.digest))
    }

    /// One PATCH of the bytes `chunk` of the blob.
    async fn patch_chunk(
        &self,
        host: &Host,
        scopes: &[String],
        blob: &BlobRef,
        loc: &Url,
        chunk: std::ops::Range<u64>,
        meter: &Arc<BlobMeter>,
    ) -> Result<Response> {
        let (offset, len) = (chunk.start, chunk.end - chunk.start);
        let act = Activity::new();
        let resp = self
            .send(
                host,
                scopes,
                Method::PATCH,
                loc,
                &|rb| {
                    Ok(rb
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("Content-Range", format!("{}-{}", offset, offset + len - 1))
                        .header(CONTENT_LENGTH, len)
                        .body(file_body(
                            &blob.path,
                            offset,
                            len,
                            act.clone(),
                            meter.clone(),
                        )?))
                },
                Some(act.clone()),
            )
            .await?;
        self.transport()
            .expect_status(resp, &Method::PATCH, &[202])
            .await
    }

    /// Asks the registry how much of the upload it has. If the session is gone (or, as
    /// distribution does after a partial chunk, invalidated), the error goes up and the whole
    /// blob starts over on a fresh session.
    async fn resume_offset(
        &self,
        host: &Host,
        scopes: &[String],
        blob: &BlobRef,
        loc: &mut Url,
    ) -> Result<u64> {
        let resp = self
            .send(host, scopes, Method::GET, loc, &|rb| Ok(rb), None)
            .await?;
        let resp = self
            .transport()
            .expect_status(resp, &Method::GET, &[204])
            .await?;
        if let Ok(l) = host.location(&resp) {
            *loc = l;
        }
        Ok(next_offset(&resp, blob.size).unwrap_or(0))
    }

    /// PUT a manifest under `reference` (a digest or a tag); checks the digest the registry
    /// computed. Also says whether the answer carried `OCI-Subject` (see [`PushReport`]).
    async fn put_manifest(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        m: &RawManifest,
        reference: &str,
    ) -> Result<(Digest, bool)> {
        let digest = m.digest();
        let url = host.url(&format!("v2/{repo}/manifests/{reference}"));
        self.retry(|| async {
            let resp = self
                .send(
                    host,
                    scopes,
                    Method::PUT,
                    &url,
                    &|rb| {
                        Ok(rb
                            .header(CONTENT_TYPE, m.media_type.as_str())
                            .body(m.bytes.clone()))
                    },
                    None,
                )
                .await?;
            let resp = self
                .transport()
                .expect_status(resp, &Method::PUT, &[201])
                .await?;
            check_digest(&resp, &digest, &format!("manifest {reference}"))?;
            Ok((digest.clone(), header_str(&resp, "oci-subject").is_some()))
        })
        .await
    }
}

/// The target's tag and the image's other tags, each validated before anything is sent.
fn tags_to_set(target: &Reference, image: &ImageToPush) -> Result<Vec<String>> {
    let mut tags: Vec<String> = target.tag.iter().cloned().collect();
    for t in &image.tags {
        if !tags.contains(t) {
            target.with_tag(t)?;
            tags.push(t.clone());
        }
    }
    Ok(tags)
}

/// The local blobs by digest, each the size the manifests say.
fn local_blobs<'a>(
    image: &'a ImageToPush,
    needed: &BTreeMap<Digest, u64>,
) -> Result<BTreeMap<Digest, &'a BlobRef>> {
    let mut local = BTreeMap::new();
    for b in &image.blobs {
        if let Some(&size) = needed.get(&b.digest)
            && size != b.size
        {
            return Err(RegistryError::InvalidManifest(format!(
                "blob {} has size {} in the manifest but {} in the blob list",
                b.digest, size, b.size
            )));
        }
        local.insert(b.digest.clone(), b);
    }
    Ok(local)
}

fn chunk_min(resp: &Response) -> Option<u64> {
    header_str(resp, "oci-chunk-min-length").and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(parse_range("0-99", 1000), Some(100));
        assert_eq!(parse_range("bytes=0-99", 1000), Some(100));
        assert_eq!(parse_range("0-0", 1000), Some(0));
        assert_eq!(parse_range("0-999", 1000), Some(1000));
        // Past the blob, overflowing, not from 0, garbage: ignored.
        assert_eq!(parse_range("0-1000", 1000), None);
        assert_eq!(parse_range("0-18446744073709551615", u64::MAX), None);
        assert_eq!(parse_range("5-10", 1000), None);
        assert_eq!(parse_range("0--1", 1000), None);
        assert_eq!(parse_range("", 1000), None);
    }
}
