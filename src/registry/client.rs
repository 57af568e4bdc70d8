//! The registry client: one [`Host`] per registry (its scheme, challenge, credential and tokens),
//! and `send`, which attaches that registry's authorization to requests on its own origin only.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use super::auth::{self, Challenge, TokenCache, TokenRequest};
use super::credentials::{self, Credential, CredentialSource, HostCredential, Secret};
use super::options::RegistryOptions;
use super::transport::{
    Activity, Transport, is_loopback, same_origin, speaks_plain_http, strip_query,
};
use super::{RegistryError, Result};

/// An async registry client. Cheap to clone; share one per process so tokens and connections are reused.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: RegistryOptions,
    pub(crate) transport: Transport,
    hosts: tokio::sync::Mutex<HashMap<String, Arc<Host>>>,
}

/// What we learnt about one registry: its base URL (scheme), challenge, credentials and tokens.
pub(crate) struct Host {
    /// As the user wrote it (`docker.io`, `127.0.0.1:5000`): used in messages and credential lookups.
    pub(crate) name: String,
    /// The registry's origin: its credential and tokens go to requests on it, and nowhere else.
    pub(crate) base: Url,
    challenge: Mutex<Option<Challenge>>,
    /// Looked up when the ping asks for auth, or lazily at the first 401 (so a registry that
    /// never asks never runs a credential helper).
    credential: OnceLock<Option<Credential>>,
    /// The explicit credential given for this registry, if any.
    given: Vec<HostCredential>,
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
            .get_or_init(|| {
                credentials::resolve(&self.given, &self.source, &self.name)
                    .ok()
                    .flatten()
            })
            .as_ref()
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("registry paths are valid URL paths")
    }

    /// Resolves a `Location` header (absolute, or relative to the answering URL). It may name
    /// another origin (storage, a CDN): `send` follows it without this registry's authorization.
    pub(crate) fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Protocol(format!(
                    "{} answered {} without a Location header",
                    self.name,
                    resp.status()
                ))
            })?;
        // Relative to the URL that answered (which may be storage on another origin).
        resp.url().join(loc).map_err(|e| {
            RegistryError::Protocol(format!("{} sent a bad Location {loc:?}: {e}", self.name))
        })
    }
}

/// How long the HTTPS probe of a loopback registry (or an `--insecure` one) may take before
/// plain HTTP is tried: a local handshake takes milliseconds, and a port that accepts TCP but
/// never completes TLS must not cost minutes of retries.
const TLS_PROBE: Duration = Duration::from_secs(3);

impl Registry {
    pub fn new(opts: RegistryOptions) -> Result<Self> {
        let transport = Transport::new(&opts)?;
        Ok(Registry {
            inner: Arc::new(Inner {
                opts,
                transport,
                hosts: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.inner.opts
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
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

    /// Finds the registry's scheme: HTTPS, or plain HTTP where allowed (loopback, `--insecure`)
    /// and the HTTPS probe failed. There the probe is one attempt of at most [`TLS_PROBE`].
    async fn find_base(&self, registry: &str, api_host: &str) -> Result<(Url, Response)> {
        let t = self.transport();
        let https = Url::parse(&format!("https://{api_host}/")).map_err(|e| {
            RegistryError::InvalidReference {
                input: registry.to_owned(),
                reason: e.to_string(),
            }
        })?;
        if !(t.insecure || is_loopback(api_host)) {
            return match self.ping(&https, None).await {
                // A plain-HTTP registry elsewhere than loopback: say how to allow it.
                Err(RegistryError::Tls { host, detail }) if speaks_plain_http(&detail) => {
                    Err(RegistryError::PlainHttp { host })
                }
                r => r.map(|resp| (https, resp)),
            };
        }
        let probe_err = match self.ping(&https, Some(TLS_PROBE.min(t.connect))).await {
            Ok(resp) => return Ok((https, resp)),
            // TLS works and the registry answered, unwell: the usual retries, over HTTPS.
            Err(RegistryError::Api { .. }) => {
                return self.ping(&https, None).await.map(|resp| (https, resp));
            }
            Err(e) => e,
        };
        let http = Url::parse(&format!("http://{api_host}/")).expect("valid above");
        match self.ping(&http, None).await {
            Ok(resp) if matches!(resp.status(), StatusCode::OK | StatusCode::UNAUTHORIZED) => {
                Ok((http, resp))
            }
            // A certificate problem must surface as one, not as a confusing HTTP 400.
            _ if matches!(probe_err, RegistryError::Tls { .. }) => Err(probe_err),
            Ok(resp) => Ok((http, resp)),
            Err(e) => Err(e),
        }
    }

    async fn connect(&self, registry: &str, api_host: &str) -> Result<Host> {
        let opts = &self.inner.opts;
        let (base, resp) = self.find_base(registry, api_host).await?;
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
        let given: Vec<HostCredential> = opts
            .host_credentials
            .iter()
            .filter(|c| c.is_for(registry))
            .cloned()
            .collect();
        // Some registries only challenge per repository, so credentials are looked up even when
        // the ping needed none; a broken helper only matters if auth is actually asked for.
        let credential = OnceLock::new();
        if challenge.is_some() {
            let _ = credential.set(credentials::resolve(&given, &opts.credentials, registry)?);
        }
        tracing::debug!(registry, %base, challenge = ?challenge.as_ref().map(|c| match c {
            Challenge::Basic => "basic",
            Challenge::Bearer { .. } => "bearer",
        }), "registry contacted");
        Ok(Host {
            name: registry.to_owned(),
            base,
            challenge: Mutex::new(challenge),
            credential,
            given,
            source: opts.credentials.clone(),
            tokens: TokenCache::default(),
            token_fetch: tokio::sync::Mutex::new(()),
            prefer_chunked: AtomicBool::new(false),
        })
    }

    /// `GET /v2/`, retried; with `probe`, one attempt bounded by that time.
    async fn ping(&self, base: &Url, probe: Option<Duration>) -> Result<Response> {
        let t = self.transport();
        let url = base.join("v2/").expect("static path");
        let once = || async {
            let mut rb = t.request(Method::GET, &url);
            if let Some(limit) = probe {
                rb = rb.timeout(limit);
            }
            let resp = t.send(rb, &Activity::new(), &Method::GET, &url).await?;
            if matches!(resp.status().as_u16(), 408 | 429 | 500..=599) {
                return Err(t.api_error(resp, &Method::GET).await);
            }
            Ok(resp)
        };
        let r = match probe {
            Some(_) => once().await,
            None => t.retry(once).await,
        };
        match r {
            Err(RegistryError::Transport { detail, .. }) => Err(RegistryError::Unreachable {
                url: url.to_string(),
                detail,
            }),
            r => r,
        }
    }

    /// Retries `op` on retryable errors (see [`Transport::retry`]).
    pub(crate) async fn retry<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.transport().retry(op).await
    }

    /// Sends one request for `host`: with its authorization when `url` is on its origin (see
    /// [`Self::send_on`]), without any elsewhere. A GET or HEAD follows redirects (up to the
    /// limit), each hop checked and authorized afresh: a redirect to storage or a CDN never
    /// carries the registry's token or password. `build` is called per attempt, so bodies are
    /// fresh streams.
    pub(crate) async fn send(
        &self,
        host: &Host,
        scopes: &[String],
        method: Method,
        url: &Url,
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder> + Sync),
        activity: Option<Arc<Activity>>,
    ) -> Result<Response> {
        let t = self.transport();
        let follows = method == Method::GET || method == Method::HEAD;
        let mut url = url.clone();
        let mut hops = 0;
        loop {
            t.check_url(&url)?;
            let act = activity.clone().unwrap_or_else(Activity::new);
            let resp = if same_origin(&url, &host.base) {
                self.send_on(host, scopes, method.clone(), &url, build, &act)
                    .await?
            } else {
                let rb = build(t.request(method.clone(), &url))?;
                t.send(rb, &act, &method, &url).await?
            };
            if !(follows && resp.status().is_redirection()) {
                return Ok(resp);
            }
            let Some(next) = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Ok(resp);
            };
            hops += 1;
            if hops > t.limits.redirects {
                return Err(RegistryError::Protocol(format!(
                    "{method} {}: more than {} redirects",
                    strip_query(&url),
                    t.limits.redirects
                )));
            }
            tracing::debug!(from = %strip_query(&url), to = %strip_query(&next), "redirect");
            url = next;
        }
    }

    /// A request on the registry's own origin: attaches the token for `scopes` (or Basic), and
    /// on a 401 refreshes the token once (adding any scope the server asked for).
    async fn send_on(
        &self,
        host: &Host,
        scopes: &[String],
        method: Method,
        url: &Url,
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder> + Sync),
        act: &Activity,
    ) -> Result<Response> {
        let t = self.transport();
        let mut scopes: Vec<String> = scopes.to_vec();
        for attempt in 0..2 {
            let rb = t.request(method.clone(), url);
            let (rb, used_token) = self.authorize(host, &scopes, rb).await?;
            let rb = build(rb)?;
            let resp = t.send(rb, act, &method, url).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            if attempt == 0 && self.learn(host, &mut scopes, used_token.as_ref(), challenge) {
                continue;
            }
            let _ = t.api_error(resp, &method).await;
            return Err(unauthorized(host, &scopes, &method));
        }
        unreachable!("the loop returns on its second pass")
    }

    /// After a first 401: takes in the server's challenge; true when another try may succeed.
    fn learn(
        &self,
        host: &Host,
        scopes: &mut Vec<String>,
        used_token: Option<&Secret>,
        challenge: Option<Challenge>,
    ) -> bool {
        match challenge {
            Some(Challenge::Bearer { ref scope, .. }) => {
                // Drop the token only if it is still the one that failed: a parallel request
                // may already have fetched a fresh one.
                if let Some(t) = used_token {
                    host.tokens.forget_if(&scope_key(scopes), t);
                }
                if let Some(s) = scope
                    && !auth::scope_covered(scopes, s)
                {
                    scopes.push(s.clone());
                }
                *host.challenge.lock().unwrap() = challenge.clone();
                true
            }
            Some(Challenge::Basic) if host.challenge.lock().unwrap().is_none() => {
                // The ping did not ask for auth but this request does.
                *host.challenge.lock().unwrap() = Some(Challenge::Basic);
                host.credential().is_some()
            }
            _ => false,
        }
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
                let key = scope_key(scopes);
                let cached = host.tokens.get(&key);
                let _guard = match cached {
                    Some(_) => None,
                    None => Some(host.token_fetch.lock().await),
                };
                let token = match cached.or_else(|| host.tokens.get(&key)) {
                    Some(t) => t,
                    None => {
                        let req = TokenRequest {
                            registry: &host.name,
                            registry_base: &host.base,
                            realm: &realm,
                            service: service.as_deref(),
                            scopes,
                            credential: host.credential(),
                        };
                        let t = self.transport();
                        let (token, life) = t.retry(|| auth::fetch_token(t, &req)).await?;
                        host.tokens.put(&key, token.clone(), life);
                        token
                    }
                };
                Ok((rb.bearer_auth(token.expose()), Some(token)))
            }
        }
    }
}

/// The error for a request still refused after the challenge was answered.
fn unauthorized(host: &Host, scopes: &[String], method: &Method) -> RegistryError {
    match (host.credential(), host.challenge.lock().unwrap().clone()) {
        (None, _) => RegistryError::NoCredentials {
            registry: host.name.clone(),
        },
        // The token server took our credentials (or fetch_token would have failed), yet the
        // token does not open this door: a missing right, not a bad password.
        (Some(_), Some(Challenge::Bearer { .. })) => RegistryError::Denied {
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
        },
        (Some(_), _) => RegistryError::AuthFailed {
            registry: host.name.clone(),
        },
    }
}

fn scope_key(scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.join(" ")
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
        platform: Option<&crate::oci::Platform>,
    ) -> Result<(super::RawManifest, crate::digest::Digest)> {
        self.rt
            .block_on(self.registry.pull_manifest(reference, platform))
    }

    pub fn fetch_blob(
        &self,
        reference: &super::Reference,
        digest: &crate::digest::Digest,
        size: u64,
        dest_dir: &std::path::Path,
    ) -> Result<PathBuf> {
        self.rt
            .block_on(self.registry.fetch_blob(reference, digest, size, dest_dir))
    }

    pub fn fetch_blob_to(
        &self,
        reference: &super::Reference,
        digest: &crate::digest::Digest,
        size: u64,
        tmp_dir: &std::path::Path,
        dest: &std::path::Path,
    ) -> Result<()> {
        self.rt.block_on(
            self.registry
                .fetch_blob_to(reference, digest, size, tmp_dir, dest),
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
