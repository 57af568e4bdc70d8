//! A minimal bearer-token server for distribution's `auth.token`: checks Basic credentials, grants
//! the requested scopes, and signs ES256 JWTs whose `x5c` header carries the signing certificate
//! (distribution 2.8 needs `x5c` or a libtrust `kid`; `x5c` needs no key-id computation).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

use super::run;

/// The refresh token (`identitytoken` in config.json) this server accepts for the test user.
pub const REFRESH_TOKEN: &str = "refresh-s3cr3t-never-printed";

pub struct TokenServer {
    pub port: u16,
    /// The next this-many tokens are issued already expired (the registry then answers 401).
    pub expire_next: Arc<std::sync::atomic::AtomicUsize>,
    pub cert_pem: PathBuf,
    /// Every token request: `user scopes…` (user `-` when anonymous).
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key_pem = dir.join("token.key");
        let key_der = dir.join("token.p8");
        let cert_pem = dir.join("token.pem");
        let cert_der = dir.join("token.der");
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key_pem)
            .stderr(Stdio::piped()));
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key_pem)
            .arg("-out")
            .arg(&key_der)
            .stderr(Stdio::piped()));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-days",
                "2",
                "-subj",
                "/CN=token-issuer",
                "-key",
            ])
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert_pem)
            .stderr(Stdio::piped()));
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert_pem)
            .arg("-out")
            .arg(&cert_der)
            .stderr(Stdio::piped()));
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &std::fs::read(&key_der).unwrap(),
            &rng,
        )
        .expect("openssl's PKCS#8 P-256 key");
        let x5c = STANDARD.encode(std::fs::read(&cert_der).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(vec![]));
        let (user, password) = (user.to_owned(), password.to_owned());
        let log = requests.clone();
        let expire_next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let expire = expire_next.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut auth = None;
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_owned());
                        } else if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let post = line.starts_with("POST");
                let mut body = vec![0u8; len];
                if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                    continue;
                }
                // GET: scopes in the query. POST (OAuth2 refresh-token grant): a form body.
                let form = if post {
                    String::from_utf8_lossy(&body).into_owned()
                } else {
                    target.split_once('?').map(|x| x.1).unwrap_or("").to_owned()
                };
                let field = |name: &str| -> Vec<String> {
                    form.split('&')
                        .filter_map(|kv| kv.strip_prefix(&format!("{name}=")))
                        .map(percent_decode)
                        .collect()
                };
                let scopes: Vec<String> = field("scope")
                    .iter()
                    .flat_map(|s| s.split(' ').map(str::to_owned).collect::<Vec<_>>())
                    .filter(|s| !s.is_empty())
                    .collect();
                let who = match &auth {
                    None if post => (field("grant_type") == ["refresh_token"]
                        && field("refresh_token") == [REFRESH_TOKEN])
                    .then(|| format!("{user}(refresh)")),
                    None => Some("-".to_owned()),
                    Some(a) => a
                        .strip_prefix("Basic ")
                        .and_then(|b| STANDARD.decode(b).ok())
                        .and_then(|b| String::from_utf8(b).ok())
                        .filter(|up| *up == format!("{user}:{password}"))
                        .map(|_| user.clone()),
                };
                log.lock().unwrap().push(format!(
                    "{} {}",
                    who.as_deref().unwrap_or("!bad"),
                    scopes.join(" ")
                ));
                let resp = match who {
                    None => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                    Some(who) => {
                        // Anonymous callers get a token with no access at all.
                        let access: Vec<_> = if who == "-" {
                            vec![]
                        } else {
                            scopes
                                .iter()
                                .filter_map(|s| {
                                    let mut p = s.splitn(3, ':');
                                    let (t, n, a) = (p.next()?, p.next()?, p.next()?);
                                    // `readonly/…` repositories: pull only, whatever is asked.
                                    let actions: Vec<&str> = a
                                        .split(',')
                                        .filter(|a| !n.starts_with("readonly/") || *a == "pull")
                                        .collect();
                                    Some(json!({"type": t, "name": n, "actions": actions}))
                                })
                                .collect()
                        };
                        let expired = expire
                            .fetch_update(
                                std::sync::atomic::Ordering::SeqCst,
                                std::sync::atomic::Ordering::SeqCst,
                                |n| n.checked_sub(1),
                            )
                            .is_ok();
                        let token = sign(&key, &rng, &x5c, &who, access, expired);
                        let body = if post {
                            json!({"access_token": token, "expires_in": 300})
                        } else {
                            json!({"token": token, "expires_in": 300})
                        }
                        .to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        TokenServer {
            port,
            expire_next,
            cert_pem,
            requests,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

fn sign(
    key: &EcdsaKeyPair,
    rng: &SystemRandom,
    x5c: &str,
    sub: &str,
    access: Vec<serde_json::Value>,
    expired: bool,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = json!({
        "iss": "test-issuer", "sub": sub, "aud": "test-registry",
        "exp": if expired { now - 60 } else { now + 300 }, "nbf": now - 120, "iat": now - 120,
        "jti": format!("{now}-{}", rand_u64(rng)), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(rng, signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn rand_u64(rng: &SystemRandom) -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(rng, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
