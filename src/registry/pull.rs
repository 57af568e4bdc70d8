//! Pulling: manifests by tag or digest (through an index to one platform), blobs to a directory,
//! existence checks. Everything fetched is verified against its digest.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use reqwest::Method;
use reqwest::header::ACCEPT;

use super::client::{Activity, expect_status, pull_scope};
use super::push::{ACCEPT_MANIFESTS, ManifestRefs, RawManifest, refine};
use super::{Reference, Registry, RegistryError, Result, media_types};
use crate::digest::{Digest, Hasher};

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
        if !media_types::is_index(&m.media_type) {
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

    async fn get_manifest(&self, r: &Reference, mref: &str) -> Result<(RawManifest, Digest)> {
        let host = self.host(&r.registry, r.api_host()).await?;
        let repo = r.repository.as_str();
        let scopes = [pull_scope(repo)];
        let url = host.url(&format!("v2/{repo}/manifests/{mref}"));
        let what = format!("{}/{repo}:{mref}", r.registry);
        let r = self
            .retry(|| async {
                let resp = self
                    .send(
                        &host,
                        &scopes,
                        Method::GET,
                        &url,
                        &|rb| Ok(rb.header(ACCEPT, ACCEPT_MANIFESTS)),
                        None,
                    )
                    .await?;
                if resp.status().as_u16() == 404 {
                    let e = expect_status(resp, &Method::GET, &[]).await.unwrap_err();
                    return Err(if e.has_code("NAME_UNKNOWN") {
                        refine(e, &host.name, repo, "pull")
                    } else {
                        RegistryError::ManifestNotFound {
                            reference: what.clone(),
                        }
                    });
                }
                let resp = expect_status(resp, &Method::GET, &[200]).await?;
                let ct = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.split(';').next().unwrap_or("").trim().to_owned());
                let hd = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = resp.bytes().await.map_err(|e| RegistryError::Transport {
                    method: "GET".into(),
                    url: what.clone(),
                    detail: super::client::error_chain(&e),
                })?;
                Ok((bytes.to_vec(), ct, hd))
            })
            .await
            .map_err(|e| refine(e, &host.name, repo, "pull"));
        let (bytes, media_type, header_digest) = match r {
            Ok(x) => x,
            // distribution answers MANIFEST_UNKNOWN even when the whole repository is missing;
            // its tag list tells the two apart, so the message can name the right culprit.
            Err(RegistryError::ManifestNotFound { reference }) => {
                let tags = host.url(&format!("v2/{repo}/tags/list?n=1"));
                let probe = self
                    .send(&host, &scopes, Method::GET, &tags, &|rb| Ok(rb), None)
                    .await;
                return Err(match probe {
                    Ok(resp) if resp.status().as_u16() == 404 => {
                        let e = expect_status(resp, &Method::GET, &[]).await.unwrap_err();
                        if e.has_code("NAME_UNKNOWN") {
                            refine(e, &host.name, repo, "pull")
                        } else {
                            RegistryError::ManifestNotFound { reference }
                        }
                    }
                    _ => RegistryError::ManifestNotFound { reference },
                });
            }
            Err(e) => return Err(e),
        };
        let digest = Digest::of(&bytes);
        // Pinned by digest: the bytes must hash to it. By tag: to what the registry says it served.
        let expected = match mref.parse::<Digest>() {
            Ok(d) => Some(d.to_string()),
            Err(_) => header_digest,
        };
        if let Some(exp) = expected
            && exp != digest.to_string()
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {what}"),
                expected: digest,
                actual: exp,
            });
        }
        // The body's own mediaType wins over a generic Content-Type.
        let body_type = ManifestRefs::parse(&bytes).ok().and_then(|m| m.media_type);
        let media_type = body_type
            .or(media_type)
            .unwrap_or_else(|| media_types::OCI_MANIFEST.to_owned());
        Ok((RawManifest { bytes, media_type }, digest))
    }

    /// The digest of the manifest `reference` names, if it exists (a HEAD, no download).
    pub async fn manifest_digest(&self, reference: &Reference) -> Result<Option<Digest>> {
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        self.manifest_digest_on(&host, repo, &[pull_scope(repo)], &reference.manifest_ref())
            .await
            .map_err(|e| refine(e, &host.name, repo, "pull"))
    }

    /// Does the repository `reference` names hold this blob?
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        let scopes = [pull_scope(repo)];
        self.retry(|| self.head_blob(&host, repo, &scopes, digest))
            .await
            .map(|s| s.is_some())
            .map_err(|e| refine(e, &host.name, repo, "pull"))
    }

    /// Downloads a blob into `dest_dir/<hex>` (temp file, verified, then renamed) and returns the
    /// path. An existing file of that name is trusted: the store is content-addressed.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        dest_dir: &Path,
    ) -> Result<PathBuf> {
        let dest = dest_dir.join(digest.hex());
        if dest.is_file() {
            return Ok(dest);
        }
        self.fetch_blob_to(reference, digest, dest_dir, &dest)
            .await?;
        Ok(dest)
    }

    /// Downloads a blob to `dest` through a temp file in `tmp_dir` (same file system), verified
    /// before the rename, readable by all (stores hard-link blobs into OCI layouts). For stores
    /// that keep temp files apart from named content, so a crash never leaves a trusted name.
    pub async fn fetch_blob_to(
        &self,
        reference: &Reference,
        digest: &Digest,
        tmp_dir: &Path,
        dest: &Path,
    ) -> Result<()> {
        let dest_dir = tmp_dir;
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        let scopes = [pull_scope(repo)];
        let url = host.url(&format!("v2/{repo}/blobs/{digest}"));
        let stall = self.inner.opts.stall_timeout;
        self.retry(|| async {
            let act = Activity::new();
            let resp = self
                .send(&host, &scopes, Method::GET, &url, &|rb| Ok(rb), Some(act))
                .await?;
            if resp.status().as_u16() == 404 {
                return Err(RegistryError::BlobNotFound {
                    registry: host.name.clone(),
                    repository: repo.to_owned(),
                    digest: digest.clone(),
                });
            }
            let mut resp = expect_status(resp, &Method::GET, &[200]).await?;
            let mut tmp = tempfile::NamedTempFile::new_in(dest_dir).map_err(|e| {
                RegistryError::io(format!("creating a temp file in {}", dest_dir.display()), e)
            })?;
            let mut hasher = Hasher::new();
            let transport = |detail: String| RegistryError::Transport {
                method: "GET".into(),
                url: super::client::strip_query(&url),
                detail,
            };
            loop {
                let chunk = match tokio::time::timeout(stall, resp.chunk()).await {
                    Err(_) => {
                        return Err(RegistryError::Stalled {
                            method: "GET".into(),
                            url: super::client::strip_query(&url),
                            after: stall,
                        });
                    }
                    Ok(Err(e)) => return Err(transport(super::client::error_chain(&e))),
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(c))) => c,
                };
                hasher.update(&chunk);
                // Small synchronous writes into the page cache; not worth a blocking-pool hop.
                tmp.write_all(&chunk).map_err(|e| {
                    RegistryError::io(format!("writing {}", tmp.path().display()), e)
                })?;
            }
            let (got, _) = hasher.finish();
            if &got != digest {
                // A corrupted transfer: retryable as a transport problem would be, but say what.
                return Err(transport(format!(
                    "downloaded bytes hash to {got}, not {digest}"
                )));
            }
            {
                use std::os::unix::fs::PermissionsExt;
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| {
                        RegistryError::io(
                            format!("setting the mode of {}", tmp.path().display()),
                            e,
                        )
                    })?;
            }
            tmp.persist(dest).map_err(|e| {
                RegistryError::io(format!("renaming to {}", dest.display()), e.error)
            })?;
            Ok(())
        })
        .await
        .map_err(|e| refine(e, &host.name, repo, "pull"))
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
