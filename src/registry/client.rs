//! Transport: scheme choice, TLS roots, auth on every request, retries, stall detection.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use super::auth::{self, Challenge, TokenCache};
use super::credentials::{Credential, CredentialSource, Secret};
use super::push::{NoProgress, PushProgress};
use super::{RegistryError, Result};

/// Retry schedule for one request or one blob upload.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Further attempts after the first one.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A server's `Retry-After` is honoured up to this long.
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

/// How to talk to registries.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Allow plain HTTP (and unverified TLS) to non-loopback hosts. Loopback may always use HTTP.
    pub insecure: bool,
    /// Extra CA certificates (PEM) trusted besides the system store (`SSL_CERT_FILE` also works).
    pub ca_file: Option<PathBuf>,
    pub credentials: CredentialSource,
    /// Blobs in flight at once.
    pub max_concurrent: usize,
    /// Blobs at least this large go up in PATCH chunks (resumable) instead of one streaming PUT.
    pub chunked_threshold: u64,
    /// PATCH size; raised to the registry's `OCI-Chunk-Min-Length` when it asks for more.
    pub chunk_size: u64,
    pub retry: RetryPolicy,
    /// A request that moves no byte for this long is abandoned (and retried).
    pub stall_timeout: Duration,
    pub connect_timeout: Duration,
    pub progress: Arc<dyn PushProgress>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            ca_file: None,
            credentials: CredentialSource::Auto,
            max_concurrent: 4,
            chunked_threshold: 512 << 20,
            chunk_size: 32 << 20,
            retry: RetryPolicy::default(),
            stall_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            progress: Arc::new(NoProgress),
        }
    }
}

impl fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("credentials", &self.credentials)
            .field("max_concurrent", &self.max_concurrent)
            .field("chunked_threshold", &self.chunked_threshold)
            .field("chunk_size", &self.chunk_size)
            .field("retry", &self.retry)
            .field("stall_timeout", &self.stall_timeout)
            .finish_non_exhaustive()
    }
}

pub use crate::tls::install_crypto_provider;

/// An async registry client. Cheap to clone; share one per process so tokens and connections are reused.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: RegistryOptions,
    http: reqwest::Client,
    /// Accepts any certificate: only ever used with `insecure`.
    http_unverified: reqwest::Client,
    hosts: tokio::sync::Mutex<HashMap<String, Arc<Host>>>,
}

/// What we learnt about one registry: its base URL (scheme), challenge, credentials and tokens.
pub(crate) struct Host {
    /// As the user wrote it (`docker.io`, `127.0.0.1:5000`): used in messages and credential lookups.
    pub(crate) name: String,
    pub(crate) base: Url,
    http: reqwest::Client,
    challenge: Mutex<Option<Challenge>>,
    /// Looked up when the ping asks for auth, or lazily at the first 401 (so a registry that
    /// never asks never runs a credential helper).
    credential: OnceLock<Option<Credential>>,
    source: CredentialSource,
    tokens: TokenCache,
    /// One token fetch at a time, so parallel blob uploads do not all ask for the same token.
    token_fetch: tokio::sync::Mutex<()>,
    /// Set after a 413: this registry wants chunks.
    pub(crate) prefer_chunked: AtomicBool,
}

impl Host {
    fn credential(&self) -> Option<&Credential> {
        self.credential
            .get_or_init(|| self.source.resolve(&self.name).ok().flatten())
            .as_ref()
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("registry paths are valid URL paths")
    }

    /// Resolves a `Location` header (absolute or relative) against this host.
    pub(crate) fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Protocol(format!(
                    "{} answered {} without a Location header",
                    self.name,
                    resp.status()
                ))
            })?;
        self.base.join(loc).map_err(|e| {
            RegistryError::Protocol(format!("{} sent a bad Location {loc:?}: {e}", self.name))
        })
    }
}

fn build_http(opts: &RegistryOptions, accept_invalid: bool) -> Result<reqwest::Client> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .user_agent(concat!("stevedore/", env!("CARGO_PKG_VERSION")));
    if accept_invalid {
        b = b.danger_accept_invalid_certs(true);
    } else if let Some(ca) = &opts.ca_file {
        b = b.tls_backend_preconfigured(tls_config_with_ca(ca)?);
    }
    b.build().map_err(|e| RegistryError::Setup(error_chain(&e)))
}

/// TLS config trusting the system roots plus the certificates of `ca_file`.
fn tls_config_with_ca(ca: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca)
        .map_err(|e| RegistryError::io(format!("reading CA file {}", ca.display()), e))?;
    let bad = |e: String| RegistryError::Setup(format!("CA file {}: {e}", ca.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner =
        rustls_platform_verifier::Verifier::new_with_extra_roots(certs.clone(), provider.clone())
            .map_err(|e| bad(e.to_string()))?;
    let verifier = PinnedOrPlatform {
        pinned: certs,
        inner,
        provider: provider.clone(),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // A preconfigured config is used as is: offer h2 ourselves.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// webpki refuses a CA certificate as a server's own (`CaUsedAsEndEntity`), yet `openssl req -x509`
/// makes exactly that and hand-made registries use it. When the server presents the very
/// certificate the user gave as `--ca-file`, it is accepted (its name still checked, and the
/// handshake still proves the server holds its key); anything else goes to the platform verifier.
#[derive(Debug)]
struct PinnedOrPlatform {
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
    inner: rustls_platform_verifier::Verifier,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Hosts that may use plain HTTP without `--insecure`.
fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Last activity of a request, touched as body bytes move; the watchdog abandons idle requests.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start.elapsed() - Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Flattens an error and its sources into one line (reqwest's Display hides the cause). reqwest's
/// own "error sending request for url (…)" is dropped: our messages already name the URL.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let top = e.to_string();
    let (mut s, mut cur) = match e.source() {
        Some(src) if top.starts_with("error sending request") => (src.to_string(), src.source()),
        _ => (top, e.source()),
    };
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    // Seconds only: registries send seconds, and an HTTP date would need a date parser for nothing.
    h.get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

pub(crate) fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}

fn looks_like_tls_error(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    c.contains("certificate")
        || c.contains("tls")
        || c.contains("handshake")
        || c.contains("invalidcontenttype")
        || c.contains("corrupt message")
}

/// rustls' complaint when the server answered the ClientHello with plain HTTP.
fn speaks_plain_http(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("invalidcontenttype") || d.contains("corrupt message")
}

fn map_send_error(method: &Method, url: &Url, e: &reqwest::Error) -> RegistryError {
    let chain = error_chain(e);
    if url.scheme() == "https" && looks_like_tls_error(&chain) {
        return RegistryError::Tls {
            host: url.host_str().unwrap_or("?").to_owned()
                + &url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            detail: chain,
        };
    }
    RegistryError::Transport {
        method: method.to_string(),
        url: strip_query(url),
        detail: chain,
    }
}

/// Turns an unexpected status into an error carrying the registry's error codes.
pub(crate) async fn expect_status(resp: Response, method: &Method, ok: &[u16]) -> Result<Response> {
    let status = resp.status().as_u16();
    if ok.contains(&status) {
        return Ok(resp);
    }
    Err(api_error(resp, method).await)
}

pub(crate) async fn api_error(resp: Response, method: &Method) -> RegistryError {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorBody>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = resp.status().as_u16();
    let url = strip_query(resp.url());
    let retry_after = retry_after(resp.headers());
    // A stalled or dropped error body must not hang or hide the status.
    let body = tokio::time::timeout(Duration::from_secs(10), resp.bytes())
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let codes = serde_json::from_slice::<Errors>(&body)
        .map(|e| e.errors.into_iter().map(|e| (e.code, e.message)).collect())
        .unwrap_or_default();
    RegistryError::Api {
        method: method.to_string(),
        url,
        status,
        codes,
        retry_after,
    }
}

impl Registry {
    pub fn new(opts: RegistryOptions) -> Result<Self> {
        let http = build_http(&opts, false)?;
        let http_unverified = build_http(&opts, true)?;
        Ok(Registry {
            inner: Arc::new(Inner {
                opts,
                http,
                http_unverified,
                hosts: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.inner.opts
    }

    /// The host state for `registry`, pinging `/v2/` on first use to learn its scheme and challenge.
    pub(crate) async fn host(&self, registry: &str, api_host: &str) -> Result<Arc<Host>> {
        let mut hosts = self.inner.hosts.lock().await;
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let h = Arc::new(self.connect(registry, api_host).await?);
        hosts.insert(registry.to_owned(), h.clone());
        Ok(h)
    }

    async fn connect(&self, registry: &str, api_host: &str) -> Result<Host> {
        let opts = &self.inner.opts;
        let https = Url::parse(&format!("https://{api_host}/")).map_err(|e| {
            RegistryError::InvalidReference {
                input: registry.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let tls_client = if opts.insecure {
            &self.inner.http_unverified
        } else {
            &self.inner.http
        };
        let (base, client, resp) = match self.ping(tls_client, &https).await {
            Ok(resp) => (https, tls_client.clone(), resp),
            // Plain HTTP only where allowed, and only when the port does not speak TLS at all: a
            // certificate problem must surface as one, not as a confusing HTTP 400.
            Err(tls_err @ RegistryError::Tls { .. }) if opts.insecure || is_loopback(api_host) => {
                let http_url = Url::parse(&format!("http://{api_host}/")).expect("valid above");
                match self.ping(&self.inner.http, &http_url).await {
                    Ok(resp)
                        if resp.status() == StatusCode::OK
                            || resp.status() == StatusCode::UNAUTHORIZED =>
                    {
                        (http_url, self.inner.http.clone(), resp)
                    }
                    _ => return Err(tls_err),
                }
            }
            // A plain-HTTP registry elsewhere than loopback: say how to allow it.
            Err(RegistryError::Tls { host, detail }) if speaks_plain_http(&detail) => {
                return Err(RegistryError::PlainHttp { host });
            }
            Err(e) => return Err(e),
        };
        let challenge = match resp.status() {
            StatusCode::OK => None,
            StatusCode::UNAUTHORIZED => resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge),
            s => {
                return Err(RegistryError::Protocol(format!(
                    "{} does not look like an OCI registry: GET {}v2/ answered {s}",
                    registry, base
                )));
            }
        };
        // Some registries only challenge per repository, so credentials are looked up even when
        // the ping needed none; a broken helper only matters if auth is actually asked for.
        let credential = OnceLock::new();
        if challenge.is_some() {
            let _ = credential.set(opts.credentials.resolve(registry)?);
        }
        tracing::debug!(registry, %base, challenge = ?challenge.as_ref().map(|c| match c {
            Challenge::Basic => "basic",
            Challenge::Bearer { .. } => "bearer",
        }), "registry contacted");
        Ok(Host {
            name: registry.to_owned(),
            base,
            http: client,
            challenge: Mutex::new(challenge),
            credential,
            source: opts.credentials.clone(),
            tokens: TokenCache::default(),
            token_fetch: tokio::sync::Mutex::new(()),
            prefer_chunked: AtomicBool::new(false),
        })
    }

    async fn ping(&self, client: &reqwest::Client, base: &Url) -> Result<Response> {
        let url = base.join("v2/").expect("static path");
        let stall = self.inner.opts.stall_timeout;
        let r = self
            .retry(|| async {
                let resp = client
                    .get(url.clone())
                    .timeout(stall)
                    .send()
                    .await
                    .map_err(|e| map_send_error(&Method::GET, &url, &e))?;
                if matches!(resp.status().as_u16(), 408 | 429 | 500..=599) {
                    return Err(api_error(resp, &Method::GET).await);
                }
                Ok(resp)
            })
            .await;
        match r {
            Ok(resp) => Ok(resp),
            Err(RegistryError::Transport { detail, .. }) => Err(RegistryError::Unreachable {
                url: url.to_string(),
                detail,
            }),
            Err(e) => Err(e),
        }
    }

    /// Retries `op` on retryable errors with exponential backoff and jitter, honouring `Retry-After`.
    pub(crate) async fn retry<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        use backon::Retryable;
        let p = &self.inner.opts.retry;
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(p.min_delay)
            .with_max_delay(p.max_delay)
            .with_max_times(p.max_retries)
            .with_jitter();
        let cap = p.max_retry_after;
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &RegistryError| e.is_retryable())
            // Only while the schedule still allows a retry (`d` is None once it is used up).
            .adjust(move |e: &RegistryError, d| {
                d.map(|d| e.retry_after().map_or(d, |ra| ra.min(cap)))
            })
            .notify(|e: &RegistryError, d| {
                tracing::warn!("{e}; retrying in {:.1}s", d.as_secs_f32())
            })
            .await
    }

    /// Sends one request with auth: attaches the token for `scopes` (or Basic), and on a 401
    /// refreshes the token once (adding any scope the server asked for). `build` is called per
    /// attempt, so bodies are fresh streams. A stalled request (no byte moved through `activity`
    /// for `stall_timeout`) is abandoned.
    pub(crate) async fn send(
        &self,
        host: &Host,
        scopes: &[String],
        method: Method,
        url: &Url,
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder> + Sync),
        activity: Option<Arc<Activity>>,
    ) -> Result<Response> {
        let mut scopes: Vec<String> = scopes.to_vec();
        for attempt in 0..2 {
            let rb = host.http.request(method.clone(), url.clone());
            let (rb, used_token) = self.authorize(host, &scopes, rb).await?;
            let rb = build(rb)?;
            let act = activity.clone().unwrap_or_else(Activity::new);
            act.touch();
            let resp = self.watch(rb.send(), &act, &method, url).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            if attempt == 0 {
                match challenge {
                    Some(Challenge::Bearer { ref scope, .. }) => {
                        // Drop the token only if it is still the one that failed: a parallel
                        // request may already have fetched a fresh one.
                        if let Some(t) = &used_token {
                            host.tokens.forget_if(&Self::scope_key(&scopes), t);
                        }
                        if let Some(s) = scope
                            && !auth::scope_covered(&scopes, s)
                        {
                            scopes.push(s.clone());
                        }
                        *host.challenge.lock().unwrap() = challenge.clone();
                        continue;
                    }
                    Some(Challenge::Basic) if host.challenge.lock().unwrap().is_none() => {
                        // The ping did not ask for auth but this request does.
                        *host.challenge.lock().unwrap() = Some(Challenge::Basic);
                        if host.credential().is_some() {
                            continue;
                        }
                    }
                    _ => {}
                }
            }
            let body_err = api_error(resp, &method).await;
            return Err(
                match (host.credential(), host.challenge.lock().unwrap().clone()) {
                    (None, _) => RegistryError::NoCredentials {
                        registry: host.name.clone(),
                    },
                    // The token server took our credentials (or fetch_token would have failed),
                    // yet the token does not open this door: a missing right, not a bad password.
                    (Some(_), Some(Challenge::Bearer { .. })) => {
                        let _ = body_err;
                        RegistryError::Denied {
                            registry: host.name.clone(),
                            repository: scopes
                                .first()
                                .and_then(|s| s.split(':').nth(1))
                                .unwrap_or("?")
                                .to_owned(),
                            action: if method == Method::GET || method == Method::HEAD {
                                "pull"
                            } else {
                                "push"
                            },
                            message: "the token server did not grant the requested scope".into(),
                        }
                    }
                    (Some(_), _) => RegistryError::AuthFailed {
                        registry: host.name.clone(),
                    },
                },
            );
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn watch(
        &self,
        fut: impl Future<Output = reqwest::Result<Response>>,
        act: &Activity,
        method: &Method,
        url: &Url,
    ) -> Result<Response> {
        let stall = self.inner.opts.stall_timeout;
        let tick = (stall / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => return r.map_err(|e| map_send_error(method, url, &e)),
                _ = tokio::time::sleep(tick) => {
                    if act.idle() > stall {
                        return Err(RegistryError::Stalled {
                            method: method.to_string(),
                            url: strip_query(url),
                            after: stall,
                        });
                    }
                }
            }
        }
    }

    fn scope_key(scopes: &[String]) -> String {
        let mut s = scopes.to_vec();
        s.sort();
        s.join(" ")
    }

    /// Attaches credentials; returns the bearer token used, if any (to drop it after a 401).
    async fn authorize(
        &self,
        host: &Host,
        scopes: &[String],
        rb: RequestBuilder,
    ) -> Result<(RequestBuilder, Option<Secret>)> {
        let challenge = host.challenge.lock().unwrap().clone();
        match challenge {
            None => Ok((rb, None)),
            Some(Challenge::Basic) => Ok((
                match host.credential() {
                    Some(Credential::Basic { username, password }) => {
                        rb.basic_auth(username, Some(password.expose()))
                    }
                    _ => rb,
                },
                None,
            )),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = Self::scope_key(scopes);
                let cached = host.tokens.get(&key);
                let _guard = match cached {
                    Some(_) => None,
                    None => Some(host.token_fetch.lock().await),
                };
                let token = match cached.or_else(|| host.tokens.get(&key)) {
                    Some(t) => t,
                    None => {
                        let (t, life) = self
                            .retry(|| {
                                auth::fetch_token(
                                    &host.http,
                                    &host.name,
                                    &realm,
                                    service.as_deref(),
                                    scopes,
                                    host.credential(),
                                )
                            })
                            .await?;
                        host.tokens.put(&key, t.clone(), life);
                        t
                    }
                };
                Ok((rb.bearer_auth(token.expose()), Some(token)))
            }
        }
    }
}

/// Scope strings for the token server.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// A [`Registry`] with its own tokio runtime, for synchronous callers (the build pipeline).
/// Do not call it from inside an async runtime.
pub struct BlockingRegistry {
    rt: tokio::runtime::Runtime,
    registry: Registry,
}

impl BlockingRegistry {
    pub fn new(opts: RegistryOptions) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stevedore-registry")
            .enable_all()
            .build()
            .map_err(|e| RegistryError::io("starting the registry runtime", e))?;
        let registry = Registry::new(opts)?;
        Ok(BlockingRegistry { rt, registry })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs any async registry call to completion.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn push_image(
        &self,
        target: &super::Reference,
        image: &super::ImageToPush,
    ) -> Result<super::PushReport> {
        self.rt.block_on(self.registry.push_image(target, image))
    }

    pub fn pull_manifest(
        &self,
        reference: &super::Reference,
        platform: Option<&super::Platform>,
    ) -> Result<(super::RawManifest, crate::digest::Digest)> {
        self.rt
            .block_on(self.registry.pull_manifest(reference, platform))
    }

    pub fn fetch_blob(
        &self,
        reference: &super::Reference,
        digest: &crate::digest::Digest,
        dest_dir: &std::path::Path,
    ) -> Result<PathBuf> {
        self.rt
            .block_on(self.registry.fetch_blob(reference, digest, dest_dir))
    }

    pub fn fetch_blob_to(
        &self,
        reference: &super::Reference,
        digest: &crate::digest::Digest,
        tmp_dir: &std::path::Path,
        dest: &std::path::Path,
    ) -> Result<()> {
        self.rt.block_on(
            self.registry
                .fetch_blob_to(reference, digest, tmp_dir, dest),
        )
    }

    pub fn blob_exists(
        &self,
        reference: &super::Reference,
        digest: &crate::digest::Digest,
    ) -> Result<bool> {
        self.rt
            .block_on(self.registry.blob_exists(reference, digest))
    }

    pub fn manifest_digest(
        &self,
        reference: &super::Reference,
    ) -> Result<Option<crate::digest::Digest>> {
        self.rt.block_on(self.registry.manifest_digest(reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:80"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("127.3.4.5"));
        assert!(!is_loopback("registry.local:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    /// What rustls says when a plain-HTTP server answers the ClientHello, as Go's server does.
    #[tokio::test]
    async fn plain_http_answer_to_tls_is_recognised() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf).await;
            let _ = c
                .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                .await;
        });
        let http = build_http(&RegistryOptions::default(), false).unwrap();
        let url = Url::parse(&format!("https://127.0.0.1:{port}/v2/")).unwrap();
        let e = http.get(url.clone()).send().await.unwrap_err();
        match map_send_error(&Method::GET, &url, &e) {
            RegistryError::Tls { detail, .. } => assert!(speaks_plain_http(&detail), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn api_errors_are_classified() {
        let e = |status, code: &str| RegistryError::Api {
            method: "PUT".into(),
            url: "u".into(),
            status,
            codes: vec![(code.into(), "m".into())],
            retry_after: None,
        };
        assert!(e(503, "").is_retryable());
        assert!(e(429, "TOOMANYREQUESTS").is_retryable());
        assert!(e(404, "BLOB_UPLOAD_UNKNOWN").is_retryable());
        assert!(!e(400, "MANIFEST_BLOB_UNKNOWN").is_retryable());
        assert!(
            e(400, "MANIFEST_BLOB_UNKNOWN")
                .to_string()
                .contains("MANIFEST_BLOB_UNKNOWN: m")
        );
    }
}
