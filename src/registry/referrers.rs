//! OCI 1.1 referrers: pushing an artifact whose `subject` is an image, and listing an image's
//! referrers.
//!
//! A registry with the referrers API says so by answering the artifact's manifest PUT with
//! `OCI-Subject`, and lists referrers at `GET /v2/<name>/referrers/<digest>`. Any other
//! registry (Debian's `docker-registry`, CNCF distribution 2.8, has no referrers API) gets the
//! distribution spec's fallback: an image index under the tag `sha256-<hex>` listing the
//! referrers, which each writer reads, extends and puts back.
//!
//! The fallback is a read-modify-write with no lock on the registry's side, so two writers at
//! the same moment can each put an index without the other's entry. distribution 2.8 ignores
//! conditional requests (`If-Match`) on manifests, so they cannot prevent it; instead, after
//! its put, a writer reads the tag again and, if its entry is missing (a concurrent writer put
//! an index read before ours), adds it again, up to [`TAG_ATTEMPTS`] times. A writer that
//! finishes before a slower one reads still loses nothing; what remains possible is an entry
//! removed by a writer that read before our put and wrote after our check: that writer's own
//! check passes, ours has ended. The artifact itself is never lost (it is pushed by digest and
//! names its subject), so running the attach again restores the entry.

use reqwest::Method;
use reqwest::header::ACCEPT;

use super::client::pull_scope;
use super::manifest::RawManifest;
use super::push::ImageToPush;
use super::{Reference, Registry, RegistryError, Result};
use crate::digest::Digest;
use crate::oci::{self, Descriptor, Index, Manifest, names};

/// How many times a writer puts the fallback index before giving up on a concurrent writer.
pub const TAG_ATTEMPTS: usize = 4;

/// Where a referrer was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferrersVia {
    /// The registry indexed the `subject` itself (it answered with `OCI-Subject`).
    Api,
    /// The `sha256-<hex>` fallback tag's index lists it.
    Tag,
}

/// What pushing one referrer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedReferrer {
    pub digest: Digest,
    pub via: ReferrersVia,
}

fn invalid(what: &str) -> impl FnOnce(oci::ParseError) -> RegistryError + '_ {
    move |e| RegistryError::InvalidManifest(format!("{what}: {e}"))
}

impl Registry {
    /// Pushes an artifact (its blobs, then its manifest by digest, and `artifact.tags` if any)
    /// into `repo`'s repository and records it as a referrer of its `subject`: through the
    /// referrers API when the registry has one, else in the fallback tag's index, where the
    /// entry of `replaces` (an earlier manifest this one supersedes) is dropped.
    pub async fn push_referrer(
        &self,
        repo: &Reference,
        artifact: &ImageToPush,
        replaces: Option<&Digest>,
    ) -> Result<PushedReferrer> {
        let bytes = &artifact.manifest.bytes;
        let manifest = Manifest::parse(bytes).map_err(invalid("artifact manifest"))?;
        let subject = manifest.subject.clone().ok_or_else(|| {
            RegistryError::InvalidManifest("an artifact manifest without `subject`".into())
        })?;
        let digest = artifact.manifest.digest();
        let target = match artifact.tags.split_first() {
            Some((first, _)) => repo.with_tag(first)?,
            None => Reference {
                tag: None,
                ..repo.with_digest(digest.clone())
            },
        };
        let mut image = artifact.clone();
        image.tags = artifact.tags.iter().skip(1).cloned().collect();
        let report = self.push_image(&target, &image).await?;
        if report.subject_indexed {
            return Ok(PushedReferrer {
                digest,
                via: ReferrersVia::Api,
            });
        }
        let entry = Descriptor::referrer(&manifest, digest.clone(), bytes.len() as u64);
        self.add_to_referrers_tag(repo, &subject.digest, entry, replaces)
            .await?;
        Ok(PushedReferrer {
            digest,
            via: ReferrersVia::Tag,
        })
    }

    /// Adds `entry` to the fallback index of `subject`, checking afterwards that it is there
    /// (see the module comment for the concurrent writer).
    async fn add_to_referrers_tag(
        &self,
        repo: &Reference,
        subject: &Digest,
        entry: Descriptor,
        replaces: Option<&Digest>,
    ) -> Result<()> {
        let tag = repo.with_tag(&oci::referrers_tag(subject))?;
        for attempt in 1..=TAG_ATTEMPTS {
            let mut index = self
                .referrers_tag_index(&tag, true)
                .await?
                .unwrap_or_else(|| Index::new(Vec::new()));
            if index.add_referrer(entry.clone(), replaces) {
                let raw = RawManifest {
                    bytes: index.to_canonical_json(),
                    media_type: names::OCI_INDEX.to_owned(),
                };
                self.push_image(&tag, &ImageToPush::new(raw, Vec::new()))
                    .await?;
            }
            let now = self.referrers_tag_index(&tag, true).await?;
            if now.is_some_and(|i| i.manifests.iter().any(|m| m.digest == entry.digest)) {
                return Ok(());
            }
            tracing::warn!(
                "{tag}: another writer replaced the referrers index (attempt {attempt} of {TAG_ATTEMPTS}); adding {} again",
                entry.digest
            );
        }
        Err(RegistryError::Protocol(format!(
            "{tag}: the referrers index lost the entry of {} {TAG_ATTEMPTS} times in a row to concurrent writers; push again",
            entry.digest
        )))
    }

    /// The index under a referrers tag; `None` when the tag does not exist. A tag holding
    /// something else is an error when `strict` (a writer must not replace it, as the spec
    /// says), else no referrers (as the spec says for readers).
    async fn referrers_tag_index(&self, tag: &Reference, strict: bool) -> Result<Option<Index>> {
        let raw = match self.get_manifest(tag, &tag.manifest_ref()).await {
            Ok((raw, _)) => raw,
            Err(RegistryError::ManifestNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match Index::parse(&raw.bytes) {
            Ok(i) => Ok(Some(i)),
            Err(e) if strict => Err(invalid(&format!("{tag} (the referrers tag)"))(e)),
            Err(_) => Ok(None),
        }
    }

    /// The referrers of `subject` in `repo`'s repository: the referrers API's list, or the
    /// fallback tag's when the registry answers 404 there (no such API). Only the first page of
    /// a paginated answer is read.
    pub async fn referrers(&self, repo: &Reference, subject: &Digest) -> Result<Index> {
        let host = self.host(&repo.registry, repo.api_host()).await?;
        let name = repo.repository.as_str();
        let url = host.url(&format!("v2/{name}/referrers/{subject}"));
        let scopes = [pull_scope(name)];
        let t = self.transport();
        let listed = self
            .retry(|| async {
                let resp = self
                    .send(
                        &host,
                        &scopes,
                        Method::GET,
                        &url,
                        &|rb| Ok(rb.header(ACCEPT, names::OCI_INDEX)),
                        None,
                    )
                    .await?;
                match resp.status().as_u16() {
                    200 => Ok(Some(
                        t.read_body(resp, t.limits.manifest, "referrers list")
                            .await?,
                    )),
                    404 => Ok(None),
                    _ => Err(t.api_error(resp, &Method::GET).await),
                }
            })
            .await
            .map_err(|e| e.refine(&host.name, name, "pull"))?;
        match listed {
            Some(bytes) => Index::parse(&bytes).map_err(invalid(url.as_str())),
            None => {
                let tag = repo.with_tag(&oci::referrers_tag(subject))?;
                Ok(self
                    .referrers_tag_index(&tag, false)
                    .await?
                    .unwrap_or_else(|| Index::new(Vec::new())))
            }
        }
    }

    /// The manifest a tag or digest names, if it exists (`None` on 404).
    pub async fn manifest_if_exists(&self, reference: &Reference) -> Result<Option<RawManifest>> {
        match self
            .get_manifest(reference, &reference.manifest_ref())
            .await
        {
            Ok((raw, _)) => Ok(Some(raw)),
            Err(RegistryError::ManifestNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl super::BlockingRegistry {
    pub fn push_referrer(
        &self,
        repo: &Reference,
        artifact: &ImageToPush,
        replaces: Option<&Digest>,
    ) -> Result<PushedReferrer> {
        self.block_on(self.registry().push_referrer(repo, artifact, replaces))
    }

    pub fn referrers(&self, repo: &Reference, subject: &Digest) -> Result<Index> {
        self.block_on(self.registry().referrers(repo, subject))
    }

    pub fn manifest_if_exists(&self, reference: &Reference) -> Result<Option<RawManifest>> {
        self.block_on(self.registry().manifest_if_exists(reference))
    }
}
