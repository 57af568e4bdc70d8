//! The layer under the client: the HTTP client and its TLS roots, which URLs may be used at all,
//! sending with stall detection, retries with backoff, statuses and error bodies, and body reads
//! bounded in size and time. It knows nothing of registry auth, pushes or pulls.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, Url};

use super::options::{Limits, RegistryOptions, RetryPolicy};
use super::{RegistryError, Result};

pub use crate::tls::install_crypto_provider;

/// One HTTP client for every registry, token server and storage host a run talks to, with the
/// rules and limits of [`RegistryOptions`].
pub(crate) struct Transport {
    /// Redirects are never followed by reqwest: the client follows them itself (GET and HEAD
    /// only), deciding per hop whether credentials may go along.
    http: reqwest::Client,
    pub(crate) insecure: bool,
    /// No byte moved for this long: the request is abandoned.
    pub(crate) idle: Duration,
    pub(crate) connect: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) limits: Limits,
}

impl Transport {
    pub(crate) fn new(opts: &RegistryOptions) -> Result<Self> {
        install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stevedore/", env!("CARGO_PKG_VERSION")));
        if opts.insecure {
            // --insecure: any certificate (and plain HTTP anywhere, see `check_url`).
            b = b.danger_accept_invalid_certs(true);
        } else if let Some(ca) = &opts.ca_file {
            b = b.tls_backend_preconfigured(tls_config_with_ca(ca)?);
        }
        let http = b
            .build()
            .map_err(|e| RegistryError::Setup(error_chain(&e)))?;
        Ok(Transport {
            http,
            insecure: opts.insecure,
            idle: opts.stall_timeout,
            connect: opts.connect_timeout,
            retry: opts.retry.clone(),
            limits: opts.limits.clone(),
        })
    }

    pub(crate) fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        self.http.request(method, url.clone())
    }

    /// May anything be sent to `url`? HTTPS always; plain HTTP only to loopback or with
    /// `--insecure` (a realm, an upload `Location` or a redirect named by a registry included).
    pub(crate) fn check_url(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.insecure || url_is_loopback(url) => Ok(()),
            "http" => Err(RegistryError::PlainHttp {
                host: host_port(url),
            }),
            other => Err(RegistryError::Protocol(format!(
                "refusing {}: scheme {other:?} is neither https nor http",
                strip_query(url)
            ))),
        }
    }

    /// Sends a request; a request whose `activity` shows no byte moving for the idle timeout is
    /// abandoned (an upload touches `activity` as its body streams).
    pub(crate) async fn send(
        &self,
        rb: RequestBuilder,
        activity: &Activity,
        method: &Method,
        url: &Url,
    ) -> Result<Response> {
        activity.touch();
        let tick = (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let fut = rb.send();
        tokio::pin!(fut);
        // Wakes every `tick` to look at the activity clock; the send itself is never dropped
        // and restarted, only polled again.
        loop {
            match tokio::time::timeout(tick, &mut fut).await {
                Ok(r) => return r.map_err(|e| map_send_error(method, url, &e)),
                Err(_) if activity.idle() > self.idle => {
                    return Err(RegistryError::Stalled {
                        method: method.to_string(),
                        url: strip_query(url),
                        after: self.idle,
                    });
                }
                Err(_) => {}
            }
        }
    }

    /// Retries `op` on retryable errors with exponential backoff and jitter, honouring
    /// `Retry-After` up to the policy's cap. A server asking for a longer wait is not retried:
    /// the error says how long it asked for.
    pub(crate) async fn retry<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        use backon::Retryable;
        let p = &self.retry;
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(p.min_delay)
            .with_max_delay(p.max_delay)
            .with_max_times(p.max_retries)
            .with_jitter();
        let cap = p.max_retry_after;
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &RegistryError| {
                e.is_retryable() && e.retry_after().is_none_or(|ra| ra <= cap)
            })
            // Only while the schedule still allows a retry (`d` is None once it is used up).
            .adjust(move |e: &RegistryError, d| d.map(|d| e.retry_after().unwrap_or(d)))
            .notify(|e: &RegistryError, d| {
                tracing::warn!("{e}; retrying in {:.1}s", d.as_secs_f32())
            })
            .await
            .map_err(|e| e.with_wait_refused(cap))
    }

    /// Turns an unexpected status into an error carrying the registry's error codes.
    pub(crate) async fn expect_status(
        &self,
        resp: Response,
        method: &Method,
        ok: &[u16],
    ) -> Result<Response> {
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        Err(self.api_error(resp, method).await)
    }

    /// The error an unexpected answer stands for, with the `{"errors":[…]}` codes of its body
    /// (read up to the error-body limit, for a short while: a stalled, endless or garbled body
    /// must not hang or hide the status).
    pub(crate) async fn api_error(&self, resp: Response, method: &Method) -> RegistryError {
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
        let wait = self.idle.min(Duration::from_secs(10));
        let body = self
            .read_within(resp, self.limits.error_body, wait, "error body")
            .await
            .unwrap_or_default();
        let codes = serde_json::from_slice::<Errors>(&body)
            .map(|e| {
                e.errors
                    .into_iter()
                    .take(16)
                    .map(|e| (clip(e.code, 100), clip(e.message, 400)))
                    .collect()
            })
            .unwrap_or_default();
        RegistryError::Api {
            method: method.to_string(),
            url,
            status,
            codes,
            retry_after,
        }
    }

    /// The whole body of a document (manifest, token answer), at most `limit` bytes: refused as
    /// soon as its `Content-Length` or its bytes go past. Each read waits at most the idle
    /// timeout, the whole body at most 4 times it.
    pub(crate) async fn read_body(
        &self,
        resp: Response,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        self.read_within(resp, limit, self.idle.saturating_mul(4), what)
            .await
    }

    async fn read_within(
        &self,
        mut resp: Response,
        limit: u64,
        total: Duration,
        what: &str,
    ) -> Result<Vec<u8>> {
        let url = resp.url().clone();
        let too_large = || RegistryError::TooLarge {
            what: what.to_owned(),
            url: strip_query(&url),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let start = Instant::now();
        let mut body = Vec::new();
        loop {
            let left = total.saturating_sub(start.elapsed());
            let chunk = match tokio::time::timeout(self.idle.min(left), resp.chunk()).await {
                Err(_) => {
                    return Err(RegistryError::Stalled {
                        method: "GET".into(),
                        url: strip_query(&url),
                        after: start.elapsed(),
                    });
                }
                Ok(Err(e)) => {
                    return Err(RegistryError::Transport {
                        method: "GET".into(),
                        url: strip_query(&url),
                        detail: error_chain(&e),
                    });
                }
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(c))) => c,
            };
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }
}

/// At most `max` characters of a registry's message (it is printed).
fn clip(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
    s
}

pub(crate) fn host_port(url: &Url) -> String {
    url.host_str().unwrap_or("?").to_owned()
        + &url.port().map(|p| format!(":{p}")).unwrap_or_default()
}

/// TLS config trusting the system roots plus the certificates of `ca_file`.
fn tls_config_with_ca(ca: &Path) -> Result<rustls::ClientConfig> {
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
pub(crate) fn is_loopback(host_port: &str) -> bool {
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

/// Is the URL's host loopback (`localhost`, 127.0.0.0/8, `[::1]`)?
pub(crate) fn url_is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Do two URLs share an origin (scheme, host and port)? Credentials of a registry go only to its
/// own origin.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Last activity of a request, touched as body bytes move; `send` abandons idle requests.
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
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
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

/// `Retry-After` in seconds. Registries send seconds; an HTTP date (or anything else) counts as
/// absent rather than pulling in a date parser. Any u64 is fine: the retry caps it.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
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
    u.set_fragment(None);
    // Never print a user:password someone put in a URL.
    let _ = u.set_username("");
    let _ = u.set_password(None);
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
pub(crate) fn speaks_plain_http(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("invalidcontenttype") || d.contains("corrupt message")
}

pub(crate) fn map_send_error(method: &Method, url: &Url, e: &reqwest::Error) -> RegistryError {
    let chain = error_chain(e);
    if url.scheme() == "https" && looks_like_tls_error(&chain) {
        return RegistryError::Tls {
            host: host_port(url),
            detail: chain,
        };
    }
    RegistryError::Transport {
        method: method.to_string(),
        url: strip_query(url),
        detail: chain,
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
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(url_is_loopback(&u("http://127.0.0.2:1/")));
        assert!(url_is_loopback(&u("http://[::1]:1/")));
        assert!(url_is_loopback(&u("http://LOCALHOST/")));
        assert!(!url_is_loopback(&u("http://127.0.0.1.evil/")));
    }

    #[test]
    fn origins_and_allowed_urls() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://r.io/v2/"),
            &u("https://r.io:443/v2/x?y")
        ));
        assert!(!same_origin(&u("https://r.io/"), &u("http://r.io/")));
        assert!(!same_origin(&u("https://r.io/"), &u("https://r.io:444/")));
        assert!(!same_origin(
            &u("http://127.0.0.1:5000/"),
            &u("http://127.0.0.2:5000/")
        ));
        let t = Transport::new(&RegistryOptions::default()).unwrap();
        assert!(t.check_url(&u("https://r.io/x")).is_ok());
        assert!(t.check_url(&u("http://127.0.0.1:9/x")).is_ok());
        assert!(matches!(
            t.check_url(&u("http://r.io/x")),
            Err(RegistryError::PlainHttp { .. })
        ));
        assert!(t.check_url(&u("file:///etc/passwd")).is_err());
        let insecure = Transport::new(&RegistryOptions {
            insecure: true,
            ..Default::default()
        })
        .unwrap();
        assert!(insecure.check_url(&u("http://r.io/x")).is_ok());
    }

    #[test]
    fn printed_urls_carry_no_userinfo_or_query() {
        let u = Url::parse("https://user:pw@r.io/v2/a?_state=x&token=y#f").unwrap();
        assert_eq!(strip_query(&u), "https://r.io/v2/a");
    }

    /// What rustls says when a plain-HTTP server answers the ClientHello, as Go's server does.
    #[test]
    fn plain_http_answer_to_tls_is_recognised() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(plain_http_answer_to_tls());
    }

    async fn plain_http_answer_to_tls() {
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
        let t = Transport::new(&RegistryOptions::default()).unwrap();
        let url = Url::parse(&format!("https://127.0.0.1:{port}/v2/")).unwrap();
        let e = t.request(Method::GET, &url).send().await.unwrap_err();
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
        h.insert("retry-after", "18446744073709551615".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(u64::MAX)));
        h.insert("retry-after", "18446744073709551616".parse().unwrap());
        assert_eq!(retry_after(&h), None);
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

    #[test]
    fn long_messages_are_clipped() {
        assert_eq!(clip("abc".into(), 5), "abc");
        assert_eq!(clip("é".repeat(10), 3), "ééé…");
    }
}
