//! Pulling: manifests by tag or digest (through an index to one platform), blobs to a directory,
//! existence checks. Everything fetched is bounded in size and verified against its digest.

use std::io::Write;
use std::path::{Path, PathBuf};

use reqwest::header::ACCEPT;
use reqwest::{Method, Response, Url};

use super::client::{Host, pull_scope};
use super::manifest::{ManifestRefs, RawManifest, accept_manifests};
use super::transport::{Activity, error_chain, strip_query};
use super::{Reference, Registry, RegistryError, Result};
use crate::digest::{Digest, Hasher};
use crate::oci::{MediaType, Platform, names};

pub(crate) fn header_str<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A manifest as served: its bytes (bounded), its `Content-Type` and `Docker-Content-Digest`.
struct Served {
    bytes: Vec<u8>,
    content_type: Option<String>,
    header_digest: Option<String>,
}

impl Registry {
    /// Fetches the manifest `reference` names. If it is an index and `platform` is given, follows it
    /// to that platform's manifest. Returns the bytes as served and their (verified) digest.
    pub async fn pull_manifest(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<(RawManifest, Digest)> {
        let (m, d) = self
            .get_manifest(reference, &reference.manifest_ref())
            .await?;
        let Some(platform) = platform else {
            return Ok((m, d));
        };
        if !MediaType::from(m.media_type.as_str()).is_index() {
            return Ok((m, d));
        }
        let index = ManifestRefs::parse(&m.bytes)?;
        let chosen = index
            .manifests
            .iter()
            .find(|c| c.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| RegistryError::NoMatchingPlatform {
                reference: reference.to_string(),
                platform: platform.to_string(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let (child, cd) = self
            .get_manifest(reference, &chosen.digest.to_string())
            .await?;
        if child.bytes.len() as u64 != chosen.size {
            return Err(RegistryError::InvalidManifest(format!(
                "manifest {} is {} bytes, the index says {}",
                cd,
                child.bytes.len(),
                chosen.size
            )));
        }
        Ok((child, cd))
    }

    /// One GET of a manifest, its body bounded by the manifest limit.
    async fn get_manifest_once(
        &self,
        host: &Host,
        repo: &str,
        url: &Url,
        what: &str,
    ) -> Result<Served> {
        let t = self.transport();
        let scopes = [pull_scope(repo)];
        let accept = |rb: reqwest::RequestBuilder| -> Result<reqwest::RequestBuilder> {
            Ok(rb.header(ACCEPT, accept_manifests()))
        };
        let resp = self
            .send(host, &scopes, Method::GET, url, &accept, None)
            .await?;
        if resp.status().as_u16() == 404 {
            let e = t.api_error(resp, &Method::GET).await;
            return Err(if e.has_code("NAME_UNKNOWN") {
                e.refine(&host.name, repo, "pull")
            } else {
                RegistryError::ManifestNotFound {
                    reference: what.to_owned(),
                }
            });
        }
        let resp = t.expect_status(resp, &Method::GET, &[200]).await?;
        let content_type = header_str(&resp, "content-type")
            .map(|s| s.split(';').next().unwrap_or("").trim().to_owned());
        let header_digest = header_str(&resp, "docker-content-digest").map(str::to_owned);
        let bytes = t.read_body(resp, t.limits.manifest, "manifest").await?;
        Ok(Served {
            bytes,
            content_type,
            header_digest,
        })
    }

    pub(crate) async fn get_manifest(
        &self,
        r: &Reference,
        mref: &str,
    ) -> Result<(RawManifest, Digest)> {
        let host = self.host(&r.registry, r.api_host()).await?;
        let repo = r.repository.as_str();
        let url = host.url(&format!("v2/{repo}/manifests/{mref}"));
        let what = format!("{}/{repo}:{mref}", r.registry);
        let served = self
            .retry(|| self.get_manifest_once(&host, repo, &url, &what))
            .await
            .map_err(|e| e.refine(&host.name, repo, "pull"));
        let served = match served {
            Ok(s) => s,
            Err(RegistryError::ManifestNotFound { reference }) => {
                return Err(self.not_found_culprit(&host, repo, reference).await);
            }
            Err(e) => return Err(e),
        };
        let digest = Digest::of(&served.bytes);
        // Pinned by digest: the bytes must hash to it. By tag: to what the registry says it served.
        let expected = match mref.parse::<Digest>() {
            Ok(d) => Some(d.to_string()),
            Err(_) => served.header_digest,
        };
        if let Some(exp) = expected
            && exp != digest.to_string()
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {}", strip_query(&url)),
                expected: exp.parse().unwrap_or_else(|_| digest.clone()),
                actual: digest.to_string(),
            });
        }
        // The body's own mediaType wins over a generic Content-Type.
        let body_type = ManifestRefs::parse(&served.bytes)
            .ok()
            .and_then(|m| m.media_type);
        let media_type = body_type
            .or(served.content_type)
            .unwrap_or_else(|| names::OCI_MANIFEST.to_owned());
        Ok((
            RawManifest {
                bytes: served.bytes,
                media_type,
            },
            digest,
        ))
    }

    /// distribution answers MANIFEST_UNKNOWN even when the whole repository is missing; its tag
    /// list tells the two apart, so the message can name the right culprit.
    async fn not_found_culprit(&self, host: &Host, repo: &str, reference: String) -> RegistryError {
        let t = self.transport();
        let tags = host.url(&format!("v2/{repo}/tags/list?n=1"));
        let probe = self
            .send(
                host,
                &[pull_scope(repo)],
                Method::GET,
                &tags,
                &|rb| Ok(rb),
                None,
            )
            .await;
        match probe {
            Ok(resp) if resp.status().as_u16() == 404 => {
                let e = t.api_error(resp, &Method::GET).await;
                if e.has_code("NAME_UNKNOWN") {
                    e.refine(&host.name, repo, "pull")
                } else {
                    RegistryError::ManifestNotFound { reference }
                }
            }
            _ => RegistryError::ManifestNotFound { reference },
        }
    }

    /// The digest of the manifest `reference` names, if it exists (a HEAD, no download).
    pub async fn manifest_digest(&self, reference: &Reference) -> Result<Option<Digest>> {
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        self.manifest_digest_on(&host, repo, &[pull_scope(repo)], &reference.manifest_ref())
            .await
            .map_err(|e| e.refine(&host.name, repo, "pull"))
    }

    /// HEAD a manifest: its digest if present.
    pub(crate) async fn manifest_digest_on(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        reference: &str,
    ) -> Result<Option<Digest>> {
        let url = host.url(&format!("v2/{repo}/manifests/{reference}"));
        self.retry(|| async {
            let resp = self
                .send(
                    host,
                    scopes,
                    Method::HEAD,
                    &url,
                    &|rb| Ok(rb.header(ACCEPT, accept_manifests())),
                    None,
                )
                .await?;
            match resp.status().as_u16() {
                200 => Ok(header_str(&resp, "docker-content-digest").and_then(|d| d.parse().ok())),
                404 => Ok(None),
                _ => Err(self.transport().api_error(resp, &Method::HEAD).await),
            }
        })
        .await
    }

    /// Does the repository `reference` names hold this blob?
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        let scopes = [pull_scope(repo)];
        self.retry(|| self.head_blob(&host, repo, &scopes, digest))
            .await
            .map(|s| s.is_some())
            .map_err(|e| e.refine(&host.name, repo, "pull"))
    }

    /// HEAD a blob: `Some(size)` when present (0 when the registry did not say).
    pub(crate) async fn head_blob(
        &self,
        host: &Host,
        repo: &str,
        scopes: &[String],
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let url = host.url(&format!("v2/{repo}/blobs/{digest}"));
        let resp = self
            .send(host, scopes, Method::HEAD, &url, &|rb| Ok(rb), None)
            .await?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                header_str(&resp, "content-length")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(self.transport().api_error(resp, &Method::HEAD).await),
        }
    }

    /// Downloads a blob of `size` bytes (as its descriptor says) into `dest_dir/<hex>` (temp
    /// file, verified, then renamed) and returns the path. An existing file of that name is
    /// trusted: the store is content-addressed.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        dest_dir: &Path,
    ) -> Result<PathBuf> {
        let dest = dest_dir.join(digest.hex());
        if dest.is_file() {
            return Ok(dest);
        }
        self.fetch_blob_to(reference, digest, size, dest_dir, &dest)
            .await?;
        Ok(dest)
    }

    /// Downloads a blob of `size` bytes to `dest` through a temp file in `tmp_dir` (same file
    /// system), verified before the rename, readable by all (stores hard-link blobs into OCI
    /// layouts). For stores that keep temp files apart from named content, so a crash never
    /// leaves a trusted name. The download stops at `size` bytes: a registry sending more, or
    /// announcing another size, is refused.
    pub async fn fetch_blob_to(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        tmp_dir: &Path,
        dest: &Path,
    ) -> Result<()> {
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        let url = host.url(&format!("v2/{repo}/blobs/{digest}"));
        let blob = BlobDownload {
            digest,
            size,
            tmp_dir,
            dest,
        };
        self.retry(|| self.fetch_blob_once(&host, repo, &url, &blob))
            .await
            .map_err(|e| e.refine(&host.name, repo, "pull"))
    }

    async fn fetch_blob_once(
        &self,
        host: &Host,
        repo: &str,
        url: &Url,
        blob: &BlobDownload<'_>,
    ) -> Result<()> {
        let t = self.transport();
        let act = Activity::new();
        let resp = self
            .send(
                host,
                &[pull_scope(repo)],
                Method::GET,
                url,
                &|rb| Ok(rb),
                Some(act),
            )
            .await?;
        if resp.status().as_u16() == 404 {
            return Err(RegistryError::BlobNotFound {
                registry: host.name.clone(),
                repository: repo.to_owned(),
                digest: blob.digest.clone(),
            });
        }
        let resp = t.expect_status(resp, &Method::GET, &[200]).await?;
        // The final URL: a redirect may have taken the download to storage.
        let url = resp.url().clone();
        if let Some(n) = resp.content_length()
            && n != blob.size
        {
            return Err(RegistryError::Protocol(format!(
                "GET {}: the registry announces {n} bytes for blob {}, its descriptor says {}",
                strip_query(&url),
                blob.digest,
                blob.size
            )));
        }
        blob.receive(t.idle, resp, &url).await
    }
}

/// One blob download: what it must be and where it goes.
struct BlobDownload<'a> {
    digest: &'a Digest,
    size: u64,
    tmp_dir: &'a Path,
    dest: &'a Path,
}

impl BlobDownload<'_> {
    /// Streams the body into a temp file: no more than `size` bytes, no read idle for longer
    /// than `idle`, the digest checked before the rename.
    async fn receive(
        &self,
        idle: std::time::Duration,
        mut resp: Response,
        url: &Url,
    ) -> Result<()> {
        let transport = |detail: String| RegistryError::Transport {
            method: "GET".into(),
            url: strip_query(url),
            detail,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(self.tmp_dir).map_err(|e| {
            RegistryError::io(
                format!("creating a temp file in {}", self.tmp_dir.display()),
                e,
            )
        })?;
        let mut hasher = Hasher::new();
        let mut received = 0u64;
        loop {
            let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => {
                    return Err(RegistryError::Stalled {
                        method: "GET".into(),
                        url: strip_query(url),
                        after: idle,
                    });
                }
                Ok(Err(e)) => return Err(transport(error_chain(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            received = received.saturating_add(chunk.len() as u64);
            if received > self.size {
                return Err(RegistryError::TooLarge {
                    what: format!(
                        "blob {} (its descriptor says {} bytes)",
                        self.digest, self.size
                    ),
                    url: strip_query(url),
                    limit: self.size,
                });
            }
            hasher.update(&chunk);
            // Small synchronous writes into the page cache; not worth a blocking-pool hop.
            tmp.write_all(&chunk)
                .map_err(|e| RegistryError::io(format!("writing {}", tmp.path().display()), e))?;
        }
        if received < self.size {
            return Err(transport(format!(
                "the body ended after {received} of {} bytes",
                self.size
            )));
        }
        let (got, _) = hasher.finish();
        if &got != self.digest {
            // A corrupted transfer: retryable as a transport problem would be, but say what.
            return Err(transport(format!(
                "downloaded bytes hash to {got}, not {}",
                self.digest
            )));
        }
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| {
                    RegistryError::io(format!("setting the mode of {}", tmp.path().display()), e)
                })?;
        }
        tmp.persist(self.dest).map_err(|e| {
            RegistryError::io(format!("renaming to {}", self.dest.display()), e.error)
        })?;
        Ok(())
    }
}
