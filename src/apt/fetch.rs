//! Downloads into a content-addressed store: `<dir>/sha256/<hex>`.
//!
//! A file lands there only after its size and SHA-256 matched what a signed Release (or a
//! Packages index the Release vouched for) promised, via a temp file and an atomic rename; a
//! file already there is never downloaded again. Downloads run in parallel (bounded), are
//! retried with backoff on connection errors and 5xx, and resume a partial temp file with a
//! `Range` request.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use futures_util::stream::{self, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::digest::{Digest, Hasher};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: HTTP {status}{hint}")]
    Http {
        url: String,
        status: u16,
        hint: &'static str,
    },
    #[error("cannot download {url}: {detail}. Check the network and the mirror URL")]
    Network { url: String, detail: String },
    #[error(
        "{url}: sha256 mismatch: expected {expected}, got {actual}; the mirror is corrupt or was tampered with (nothing was stored)"
    )]
    HashMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{url}: size mismatch: expected {expected} bytes, got {actual} (nothing was stored)")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl FetchError {
    /// Worth another try: the network or the server hiccuped.
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Network { .. } => true,
            FetchError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    fn network(url: &str, e: reqwest::Error) -> FetchError {
        // reqwest's Display hides the cause ("error sending request"); show the chain.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        FetchError::Network {
            url: url.to_owned(),
            detail,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> FetchError {
        FetchError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Cap on files fetched before anything vouches for them (InRelease is ~250 KB), so a hostile
/// mirror cannot exhaust memory.
pub const MAX_UNVERIFIED: u64 = 32 << 20;

/// Told about download progress so a CLI can draw bars; every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A download starts (`total` is the expected size when known).
    fn started(&self, _url: &str, _total: Option<u64>) {}
    /// `bytes` more bytes of `url` arrived (including bytes found in a partial file).
    fn advanced(&self, _url: &str, _bytes: u64) {}
    /// `url` is verified and stored (or was already).
    fn finished(&self, _url: &str) {}
}

/// Progress that draws nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// One file to fetch and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub url: String,
    pub sha256: Digest,
    pub size: u64,
}

pub use crate::tls::install_crypto_provider;

/// Timeouts and retries of every mirror download in this process. Set once by the command line
/// (`--timeout`, `--retries`, which registries share) before any download; a process-wide
/// setting because the fetchers are made deep in planning, which has no network options of its
/// own to pass them through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorNetwork {
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// How long a response may move no byte.
    pub read_timeout: Duration,
    /// Retries after the first attempt.
    pub retries: usize,
}

impl Default for MirrorNetwork {
    fn default() -> Self {
        MirrorNetwork {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 4,
        }
    }
}

static MIRROR_NETWORK: std::sync::OnceLock<MirrorNetwork> = std::sync::OnceLock::new();

impl MirrorNetwork {
    /// Sets the process's mirror settings; false if they were set already (the first wins).
    pub fn set(self) -> bool {
        MIRROR_NETWORK.set(self).is_ok()
    }

    /// The process's settings (the defaults unless [`MirrorNetwork::set`] ran).
    pub fn current() -> MirrorNetwork {
        MIRROR_NETWORK.get().copied().unwrap_or_default()
    }
}

/// A download client bound to one store directory.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    store: PathBuf,
    parallel: usize,
    retries: usize,
    min_delay: Duration,
    progress: Arc<dyn Progress>,
}

impl Fetcher {
    /// Files are stored under `<cache_dir>/sha256/`. Timeouts and retries are the process's
    /// [`MirrorNetwork`] (the command line's `--timeout` and `--retries`).
    pub fn new(cache_dir: &Path) -> Result<Fetcher, FetchError> {
        install_crypto_provider();
        let net = MirrorNetwork::current();
        let client = reqwest::Client::builder()
            .user_agent(concat!("stevedore/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(net.connect_timeout)
            .read_timeout(net.read_timeout)
            .build()
            .map_err(|e| FetchError::network("(client setup)", e))?;
        let store = cache_dir.join("sha256");
        std::fs::create_dir_all(store.join(".partial")).map_err(|e| FetchError::io(&store, e))?;
        Ok(Fetcher {
            client,
            store,
            parallel: 6,
            retries: net.retries,
            min_delay: Duration::from_millis(300),
            progress: Arc::new(NoProgress),
        })
    }

    /// How many downloads run at once (default 6).
    pub fn with_parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }

    /// Retries after the first attempt, and the first backoff delay (default 4, 300 ms).
    pub fn with_retries(mut self, retries: usize, min_delay: Duration) -> Self {
        self.retries = retries;
        self.min_delay = min_delay;
        self
    }

    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Where a verified file with this digest lives (whether or not it is there yet).
    pub fn path_of(&self, sha256: &Digest) -> PathBuf {
        self.store.join(sha256.hex())
    }

    /// Where unfinished files live (same file system as the store, for atomic renames).
    pub fn partial_dir(&self) -> PathBuf {
        self.store.join(".partial")
    }

    /// Stores a file made from verified ones (a decompressed Packages index) under the digest
    /// a signed Release gives for it, with the same promise as a download: `write` fills a
    /// temp file, which is renamed into place only if its size and SHA-256 match. A file
    /// already there is trusted, as downloads are. `what` names the file in errors.
    pub fn store_derived(
        &self,
        what: &str,
        sha256: &Digest,
        size: u64,
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<PathBuf, FetchError> {
        use std::io::Write;
        let target = self.path_of(sha256);
        if target.exists() {
            return Ok(target);
        }
        let dir = self.partial_dir();
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| FetchError::io(&dir, e))?;
        let io_error = |e| FetchError::Io {
            path: what.to_owned(),
            source: e,
        };
        let mut out = crate::digest::HashingWriter::new(std::io::BufWriter::new(tmp.as_file()));
        write(&mut out).map_err(io_error)?;
        out.flush().map_err(io_error)?;
        let (_, actual, actual_size) = out.finish();
        if actual_size != size {
            return Err(FetchError::SizeMismatch {
                url: what.to_owned(),
                expected: size,
                actual: actual_size,
            });
        }
        if actual != *sha256 {
            return Err(FetchError::HashMismatch {
                url: what.to_owned(),
                expected: sha256.clone(),
                actual,
            });
        }
        // Another build may have stored the same file meanwhile: same bytes, either wins.
        tmp.persist(&target)
            .map_err(|e| FetchError::io(&target, e.error))?;
        Ok(target)
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.retries)
    }

    /// Downloads a small file whose trust comes from elsewhere (InRelease: its signature),
    /// retried like everything else, at most [`MAX_UNVERIFIED`] bytes. Not stored.
    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        (|| async {
            let response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| FetchError::network(url, e))?;
            check_status(url, response.status())?;
            let mut body = response.bytes_stream();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                bytes.extend_from_slice(&chunk.map_err(|e| FetchError::network(url, e))?);
                if bytes.len() as u64 > MAX_UNVERIFIED {
                    return Err(FetchError::SizeMismatch {
                        url: url.to_owned(),
                        expected: MAX_UNVERIFIED,
                        actual: bytes.len() as u64,
                    });
                }
            }
            Ok(bytes)
        })
        .retry(self.backoff())
        .when(FetchError::is_transient)
        .await
    }

    /// Returns the store path of `wanted`, downloading and verifying it unless it is there.
    pub async fn fetch(&self, wanted: &Wanted) -> Result<PathBuf, FetchError> {
        let target = self.path_of(&wanted.sha256);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            self.progress.finished(&wanted.url);
            return Ok(target);
        }
        let partial = self.store.join(".partial").join(wanted.sha256.hex());
        // One writer per digest, across threads and processes (builds share the cache): the
        // others wait, then find the verified file in place.
        let lock_path = partial.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| FetchError::io(&lock_path, e))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .expect("lock task panicked")
            .map_err(|e| FetchError::io(&lock_path, e))?;
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            self.progress.finished(&wanted.url);
            return Ok(target);
        }
        self.progress.started(&wanted.url, Some(wanted.size));
        // A partial file left by an earlier run may hold bytes of another (broken) transfer;
        // if the resumed result does not verify, start over once from scratch.
        let mut resumed_old = tokio::fs::try_exists(&partial).await.unwrap_or(false);
        loop {
            (|| self.download_once(wanted, &partial))
                .retry(self.backoff())
                .when(FetchError::is_transient)
                .await?;
            // Verify the whole partial file (it may span several resumed attempts).
            let (actual, size) = hash_file(&partial).await?;
            if size == wanted.size && actual == wanted.sha256 {
                break;
            }
            let _ = tokio::fs::remove_file(&partial).await;
            if resumed_old {
                resumed_old = false;
                continue;
            }
            return Err(if size != wanted.size {
                FetchError::SizeMismatch {
                    url: wanted.url.clone(),
                    expected: wanted.size,
                    actual: size,
                }
            } else {
                FetchError::HashMismatch {
                    url: wanted.url.clone(),
                    expected: wanted.sha256.clone(),
                    actual,
                }
            });
        }
        tokio::fs::rename(&partial, &target)
            .await
            .map_err(|e| FetchError::io(&target, e))?;
        // Waiters hold the old inode and re-check the target once they get it.
        let _ = tokio::fs::remove_file(&lock_path).await;
        drop(lock);
        self.progress.finished(&wanted.url);
        Ok(target)
    }

    /// One attempt: appends to the partial file, resuming with `Range` when it has bytes.
    async fn download_once(&self, wanted: &Wanted, partial: &Path) -> Result<(), FetchError> {
        let have = tokio::fs::metadata(partial)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if have >= wanted.size && have > 0 {
            return Ok(()); // complete from an earlier attempt; the caller verifies it
        }
        let mut request = self.client.get(&wanted.url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::network(&wanted.url, e))?;
        let status = response.status();
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            // The partial file is bigger than the remote one or otherwise stale: start over.
            let _ = tokio::fs::remove_file(partial).await;
            return Err(FetchError::Network {
                url: wanted.url.clone(),
                detail: "resume refused (416); restarting".into(),
            });
        }
        check_status(&wanted.url, status)?;
        let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(partial)
            .await
            .map_err(|e| FetchError::io(partial, e))?;
        if resumed {
            self.progress.advanced(&wanted.url, have);
        }
        let mut body = response.bytes_stream();
        let mut written = if resumed { have } else { 0 };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FetchError::network(&wanted.url, e))?;
            written += chunk.len() as u64;
            if written > wanted.size {
                // Never let a hostile mirror fill the disk.
                drop(file);
                let _ = tokio::fs::remove_file(partial).await;
                return Err(FetchError::SizeMismatch {
                    url: wanted.url.clone(),
                    expected: wanted.size,
                    actual: written,
                });
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| FetchError::io(partial, e))?;
            self.progress.advanced(&wanted.url, chunk.len() as u64);
        }
        file.flush().await.map_err(|e| FetchError::io(partial, e))?;
        file.sync_all()
            .await
            .map_err(|e| FetchError::io(partial, e))?;
        Ok(())
    }

    /// Fetches everything (at most `parallel` at once, each digest once); store paths in the
    /// order of `wanted`. The first error stops the rest.
    pub async fn fetch_all(&self, wanted: &[Wanted]) -> Result<Vec<PathBuf>, FetchError> {
        let mut seen = HashSet::new();
        let unique: Vec<&Wanted> = wanted
            .iter()
            .filter(|w| seen.insert(w.sha256.clone()))
            .collect();
        stream::iter(unique)
            .map(|w| self.fetch(w))
            .buffer_unordered(self.parallel)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(wanted.iter().map(|w| self.path_of(&w.sha256)).collect())
    }

    /// [`Fetcher::fetch_all`] for synchronous callers: runs its own tokio runtime (so never
    /// call it from inside one).
    pub fn fetch_all_blocking(&self, wanted: &[Wanted]) -> Result<Vec<PathBuf>, FetchError> {
        block_on(self.fetch_all(wanted))
    }

    /// [`Fetcher::get_bytes`] for synchronous callers.
    pub fn get_bytes_blocking(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        block_on(self.get_bytes(url))
    }
}

/// Runs a future to completion on a fresh multi-thread runtime (the build pipeline is
/// synchronous; network concurrency lives only inside this call).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
        .block_on(future)
}

fn check_status(url: &str, status: reqwest::StatusCode) -> Result<(), FetchError> {
    if status.is_success() {
        return Ok(());
    }
    Err(FetchError::Http {
        url: url.to_owned(),
        status: status.as_u16(),
        hint: if status == reqwest::StatusCode::NOT_FOUND {
            " (not found: check the mirror URL, suite, component and architecture)"
        } else {
            ""
        },
    })
}

async fn hash_file(path: &Path) -> Result<(Digest, u64), FetchError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| FetchError::io(path, e))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| FetchError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}
