//! Errors that say what to do next. None of them ever carries a password or a token: request URLs
//! hold only repository names, digests and the registry's upload state, never credentials.

use std::time::Duration;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("authentication failed for {registry} (check --creds / --from-creds / docker login)")]
    AuthFailed { registry: String },

    #[error(
        "{registry} requires authentication and no credentials were found for it (pass --creds USER:PASS when it is the push destination, --from-creds {registry}=USER:PASS for a base image, or docker login {registry})"
    )]
    NoCredentials { registry: String },

    #[error(
        "{registry} names the token server {realm}, which is plain HTTP: credentials go to a token server only over HTTPS (or HTTP when both are on loopback, or with --insecure)"
    )]
    InsecureRealm { registry: String, realm: String },

    #[error(
        "access to {repository} on {registry} denied: {message} (do these credentials have {action} rights on it?)"
    )]
    Denied {
        registry: String,
        repository: String,
        action: &'static str,
        message: String,
    },

    #[error(
        "repository {repository} not found on {registry} (check the name; some registries need the repository created before a push)"
    )]
    RepositoryNotFound {
        registry: String,
        repository: String,
    },

    #[error("{registry} rejected the repository name {repository:?}: {message}")]
    NameInvalid {
        registry: String,
        repository: String,
        message: String,
    },

    #[error("manifest {reference} not found")]
    ManifestNotFound { reference: String },

    #[error("blob {digest} not found in {repository} on {registry}")]
    BlobNotFound {
        registry: String,
        repository: String,
        digest: Digest,
    },

    #[error(
        "TLS connection to {host} failed: {detail} (if the registry uses a private CA, pass --ca-file CA.pem or set SSL_CERT_FILE)"
    )]
    Tls { host: String, detail: String },

    #[error(
        "{host} speaks plain HTTP, not HTTPS; plain HTTP is only used for loopback registries or with --insecure"
    )]
    PlainHttp { host: String },

    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },

    #[error("{method} {url}: connection failed: {detail}")]
    Transport {
        method: String,
        url: String,
        detail: String,
    },

    #[error("{method} {url}: no progress for {}s (stalled connection)", .after.as_secs_f32())]
    Stalled {
        method: String,
        url: String,
        after: Duration,
    },

    /// An error status from the registry, with its error codes and messages.
    #[error("{method} {url}: registry answered {status}{}", fmt_codes(.codes))]
    Api {
        method: String,
        url: String,
        status: u16,
        /// `(code, message)` pairs from the `{"errors":[…]}` body.
        codes: Vec<(String, String)>,
        retry_after: Option<Duration>,
    },

    #[error("{url}: {what} is larger than {limit} bytes; refused")]
    TooLarge {
        what: String,
        url: String,
        limit: u64,
    },

    #[error(
        "{method} {url}: registry answered {status} and asks to retry after {}s, longer than the {}s stevedore waits", .asked.as_secs(), .max.as_secs()
    )]
    WaitRefused {
        method: String,
        url: String,
        status: u16,
        asked: Duration,
        max: Duration,
    },

    #[error("{what}: registry sent {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: String,
    },

    #[error(
        "blob {digest} is referenced by the manifest but is neither in the image's blobs nor on {registry} (nor mountable from the given sources)"
    )]
    MissingBlob { registry: String, digest: Digest },

    #[error("{0}")]
    Protocol(String),

    #[error("invalid manifest: {0}")]
    InvalidManifest(String),

    #[error("no manifest for platform {platform} in index {reference} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("registry client setup: {0}")]
    Setup(String),

    #[error("reading credentials for {registry}: {detail}")]
    Credentials { registry: String, detail: String },
}

fn fmt_codes(codes: &[(String, String)]) -> String {
    codes
        .iter()
        .map(|(c, m)| {
            if m.is_empty() {
                format!(": {c}")
            } else {
                format!(": {c}: {m}")
            }
        })
        .collect()
}

impl RegistryError {
    /// Worth another attempt: connection trouble, stalls, 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { .. } | RegistryError::Stalled { .. } => true,
            RegistryError::Api { status, codes, .. } => {
                matches!(*status, 408 | 429 | 500..=599)
                    // the upload session died under us (dropped connection, registry restart):
                    // the blob operation starts over with a fresh session
                    || codes.iter().any(|(c, _)| c == "BLOB_UPLOAD_UNKNOWN" || c == "BLOB_UPLOAD_INVALID")
            }
            _ => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn has_code(&self, code: &str) -> bool {
        matches!(self, RegistryError::Api { codes, .. } if codes.iter().any(|(c, _)| c == code))
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A retryable error the retry gave up on because the server asked for a longer wait than
    /// `max`: say so rather than show the bare status.
    pub(crate) fn with_wait_refused(self, max: Duration) -> Self {
        match self {
            RegistryError::Api {
                method,
                url,
                status,
                retry_after: Some(asked),
                ..
            } if asked > max && matches!(status, 408 | 429 | 500..=599) => {
                RegistryError::WaitRefused {
                    method,
                    url,
                    status,
                    asked,
                    max,
                }
            }
            e => e,
        }
    }

    /// Turns registry error codes into errors that say what to do.
    pub(crate) fn refine(self, registry: &str, repo: &str, action: &'static str) -> Self {
        let message = |code: &str| match &self {
            RegistryError::Api { codes, .. } => codes
                .iter()
                .find(|(c, _)| c == code)
                .map(|(_, m)| m.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        if self.has_code("NAME_UNKNOWN") {
            RegistryError::RepositoryNotFound {
                registry: registry.to_owned(),
                repository: repo.to_owned(),
            }
        } else if self.has_code("NAME_INVALID") {
            RegistryError::NameInvalid {
                registry: registry.to_owned(),
                repository: repo.to_owned(),
                message: message("NAME_INVALID"),
            }
        } else if self.has_code("DENIED") || self.status() == Some(403) {
            RegistryError::Denied {
                registry: registry.to_owned(),
                repository: repo.to_owned(),
                action,
                message: message("DENIED"),
            }
        } else {
            self
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RegistryError::Io {
            what: what.into(),
            source,
        }
    }
}
