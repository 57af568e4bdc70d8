//! How to talk to registries: credentials, TLS, concurrency, retries, and the limits and
//! deadlines every network read and wait is held to.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::credentials::{CredentialSource, HostCredential};
use super::progress::{NoProgress, PushProgress};

/// Retry schedule for one request or one blob upload.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Further attempts after the first one.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A server's `Retry-After` is honoured up to this long; a server asking for a longer wait
    /// is not retried at all (waiting less than it asked would only be refused again).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(15),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Sizes a registry's answers may have. Past them the read stops and the request fails, naming
/// the URL: a hostile or broken registry costs bounded memory.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A manifest or index (containerd's limit: 4 MiB).
    pub manifest: u64,
    /// A token server's answer.
    pub token: u64,
    /// An error body (read for its error codes only).
    pub error_body: u64,
    /// Redirects followed by a GET or HEAD.
    pub redirects: usize,
    /// PATCHes in a row whose answer's `Range` does not move forward before a chunked upload
    /// gives up.
    pub stuck_chunks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest: 4 << 20,
            token: 64 << 10,
            error_body: 64 << 10,
            redirects: 5,
            stuck_chunks: 3,
        }
    }
}

/// How to talk to registries.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Allow plain HTTP (and unverified TLS) to non-loopback hosts. Loopback may always use HTTP.
    pub insecure: bool,
    /// Extra CA certificates (PEM) trusted besides the system store (`SSL_CERT_FILE` also works).
    pub ca_file: Option<PathBuf>,
    /// Credentials given explicitly (`--creds` for the push destination, `--from-creds`), each
    /// for its own registry only; they win over `credentials` for that registry.
    pub host_credentials: Vec<HostCredential>,
    /// Where credentials of every other registry are looked up (docker/containers config and
    /// helpers, by that registry's own host).
    pub credentials: CredentialSource,
    /// Blobs in flight at once.
    pub max_concurrent: usize,
    /// Blobs at least this large go up in PATCH chunks (resumable) instead of one streaming PUT.
    pub chunked_threshold: u64,
    /// PATCH size; raised to the registry's `OCI-Chunk-Min-Length` when it asks for more.
    pub chunk_size: u64,
    pub retry: RetryPolicy,
    /// A request that moves no byte for this long is abandoned (and retried). A manifest, token
    /// or error body must also arrive whole within 4 times this.
    pub stall_timeout: Duration,
    pub connect_timeout: Duration,
    pub limits: Limits,
    pub progress: Arc<dyn PushProgress>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            ca_file: None,
            host_credentials: vec![],
            credentials: CredentialSource::Auto,
            max_concurrent: 4,
            chunked_threshold: 512 << 20,
            chunk_size: 32 << 20,
            retry: RetryPolicy::default(),
            stall_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            limits: Limits::default(),
            progress: Arc::new(NoProgress),
        }
    }
}

impl fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("host_credentials", &self.host_credentials)
            .field("credentials", &self.credentials)
            .field("max_concurrent", &self.max_concurrent)
            .field("chunked_threshold", &self.chunked_threshold)
            .field("chunk_size", &self.chunk_size)
            .field("retry", &self.retry)
            .field("stall_timeout", &self.stall_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
