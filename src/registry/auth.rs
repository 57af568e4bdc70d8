//! `WWW-Authenticate` challenges and bearer tokens.
//!
//! Hand-written because the parsing is 60 lines and no maintained crate covers the registry's token
//! dance (quoted scopes with commas, per-scope tokens, refresh tokens from `identitytoken`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};

use super::RegistryError;
use super::credentials::{Credential, Secret};
use super::transport::{Activity, Transport, strip_query, url_is_loopback};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the server asked for on this request (insufficient scope), if any.
        scope: Option<String>,
    },
}

/// Parses one challenge (registries send one). Unknown schemes give `None`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` with commas allowed inside quotes (scopes are `repository:x:pull,push`).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    out
}

/// Tokens per scope set, so a push (target pull,push + source pull) and a pull of another repository
/// never overwrite each other's token.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, (Secret, Instant)>>,
}

impl TokenCache {
    pub(crate) fn get(&self, key: &str) -> Option<Secret> {
        let map = self.tokens.lock().unwrap();
        let (tok, expires) = map.get(key)?;
        // Refresh a little early so a long upload does not start with a token about to die.
        (Instant::now() + Duration::from_secs(10) < *expires).then(|| tok.clone())
    }

    pub(crate) fn put(&self, key: &str, token: Secret, lifetime: Duration) {
        let now = Instant::now();
        // `token_lifetime` bounds it; checked anyway, a clock must never panic.
        let expires = now
            .checked_add(lifetime)
            .unwrap_or_else(|| now + Duration::from_secs(24 * 3600));
        self.tokens
            .lock()
            .unwrap()
            .insert(key.to_owned(), (token, expires));
    }

    /// Forgets the token for `key` only if it is still `token`.
    pub(crate) fn forget_if(&self, key: &str, token: &Secret) {
        let mut map = self.tokens.lock().unwrap();
        if map.get(key).is_some_and(|(t, _)| t == token) {
            map.remove(key);
        }
    }
}

/// Is `wanted` (`type:name:actions`) already granted by one of `scopes`? A registry's 401 names
/// the scope of that one request (`…:pull` for a HEAD), which our `…:pull,push` already covers;
/// adding it anyway would mint a needless second token.
pub(crate) fn scope_covered(scopes: &[String], wanted: &str) -> bool {
    let split = |s: &str| {
        let (rest, actions) = s.rsplit_once(':')?;
        Some((
            rest.to_owned(),
            actions.split(',').map(str::to_owned).collect::<Vec<_>>(),
        ))
    };
    let Some((target, want)) = split(wanted) else {
        return false;
    };
    scopes.iter().filter_map(|s| split(s)).any(|(name, have)| {
        name == target
            && want
                .iter()
                .all(|a| have.contains(a) || have.iter().any(|h| h == "*"))
    })
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// A token's lifetime from the server's `expires_in`: the spec's 60 s when absent, never less
/// than 10 s (the cache renews 10 s early) nor more than a day (any u64 is accepted from the
/// network; an absurd one must not overflow a clock).
pub(crate) fn token_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(60).clamp(10, 24 * 3600))
}

/// May a secret of the registry at `registry` (a password, a refresh token) go to the token
/// server `realm` it names?
///
/// The registry chooses its token server, and it may be another host (Docker Hub's is
/// auth.docker.io): that is the protocol, and it gives the registry nothing it could not get by
/// asking for Basic auth itself, since a credential is only ever that registry's own. What must
/// not happen is the secret crossing the network in clear: so HTTPS, or plain HTTP only when
/// realm and registry are both on loopback (the secret never leaves the machine, and a remote
/// registry cannot aim it at a local port), or with `--insecure`.
pub(crate) fn may_send_secret(registry: &Url, realm: &Url, insecure: bool) -> bool {
    match realm.scheme() {
        "https" => true,
        "http" => insecure || (url_is_loopback(realm) && url_is_loopback(registry)),
        _ => false,
    }
}

/// What to ask a token server.
pub(crate) struct TokenRequest<'a> {
    /// The registry, as written in references (for messages).
    pub(crate) registry: &'a str,
    /// The registry's base URL (its origin decides where its secrets may go).
    pub(crate) registry_base: &'a Url,
    pub(crate) realm: &'a str,
    pub(crate) service: Option<&'a str>,
    pub(crate) scopes: &'a [String],
    pub(crate) credential: Option<&'a Credential>,
}

/// Asks the token server for a token covering the scopes.
pub(crate) async fn fetch_token(
    t: &Transport,
    req: &TokenRequest<'_>,
) -> Result<(Secret, Duration), RegistryError> {
    let registry = req.registry;
    let mut url = Url::parse(req.realm).map_err(|e| {
        RegistryError::Protocol(format!(
            "{registry} sent a bad token realm {:?}: {e}",
            req.realm
        ))
    })?;
    if req.credential.is_some() && !may_send_secret(req.registry_base, &url, t.insecure) {
        return Err(RegistryError::InsecureRealm {
            registry: registry.to_owned(),
            realm: strip_query(&url),
        });
    }
    t.check_url(&url)?;
    let (method, rb) = match req.credential {
        Some(Credential::IdentityToken(refresh)) => {
            // OAuth2 refresh-token grant, form-encoded through Url's encoder (no extra crate).
            let mut form = Url::parse("x:").expect("static url");
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("client_id", "stevedore");
                q.append_pair("refresh_token", refresh.expose());
                if let Some(s) = req.service {
                    q.append_pair("service", s);
                }
                q.append_pair("scope", &req.scopes.join(" "));
            }
            let rb = t
                .request(Method::POST, &url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.query().unwrap_or_default().to_owned());
            (Method::POST, rb)
        }
        other => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = req.service {
                    q.append_pair("service", s);
                }
                for s in req.scopes {
                    q.append_pair("scope", s);
                }
            }
            let rb = t.request(Method::GET, &url);
            let rb = match other {
                Some(Credential::Basic { username, password }) => {
                    rb.basic_auth(username, Some(password.expose()))
                }
                _ => rb,
            };
            (Method::GET, rb)
        }
    };
    let resp = t.send(rb, &Activity::new(), &method, &url).await?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(if req.credential.is_some() {
            RegistryError::AuthFailed {
                registry: registry.to_owned(),
            }
        } else {
            RegistryError::NoCredentials {
                registry: registry.to_owned(),
            }
        });
    }
    let resp = t.expect_status(resp, &method, &[200]).await?;
    let body = t
        .read_body(resp, t.limits.token, "token server answer")
        .await?;
    parse_token_answer(&body).map_err(|e| {
        RegistryError::Protocol(format!(
            "token server {} for {registry}: {e}",
            strip_query(&url)
        ))
    })
}

/// A token server's JSON answer: the token and its lifetime (bounded, see [`token_lifetime`]).
pub(crate) fn parse_token_answer(body: &[u8]) -> Result<(Secret, Duration), String> {
    let body: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON answer: {e}"))?;
    let token = body
        .token
        .or(body.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("no token in the answer")?;
    Ok((Secret::new(token), token_lifetime(body.expires_in)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_comma_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
    }

    #[test]
    fn parses_basic_and_unquoted() {
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("bearer realm=http://x/t, service=s"),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("s".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn scopes_cover_narrower_ones() {
        let have = vec![
            "repository:a/b:pull,push".to_owned(),
            "repository:c:pull".to_owned(),
        ];
        assert!(scope_covered(&have, "repository:a/b:pull"));
        assert!(scope_covered(&have, "repository:a/b:push,pull"));
        assert!(scope_covered(&have, "repository:c:pull"));
        assert!(!scope_covered(&have, "repository:c:push"));
        assert!(!scope_covered(&have, "repository:d:pull"));
        assert!(!scope_covered(&have, "registry:catalog:*"));
    }

    #[test]
    fn absurd_lifetimes_are_bounded() {
        assert_eq!(token_lifetime(None), Duration::from_secs(60));
        assert_eq!(token_lifetime(Some(0)), Duration::from_secs(10));
        assert_eq!(token_lifetime(Some(u64::MAX)), Duration::from_secs(86400));
        let c = TokenCache::default();
        c.put("k", Secret::new("t"), token_lifetime(Some(u64::MAX)));
        c.put("k2", Secret::new("t"), Duration::MAX);
        assert!(c.get("k").is_some() && c.get("k2").is_some());
    }

    #[test]
    fn secrets_go_to_a_realm_over_https_or_loopback_http_only() {
        let u = |s: &str| Url::parse(s).unwrap();
        let remote = u("https://registry.example/");
        let local = u("http://127.0.0.1:5000/");
        // HTTPS: anywhere the registry names, as docker does.
        assert!(may_send_secret(
            &remote,
            &u("https://auth.example/token"),
            false
        ));
        assert!(may_send_secret(
            &local,
            &u("https://auth.example/token"),
            false
        ));
        // Plain HTTP to another machine: never without --insecure.
        assert!(!may_send_secret(
            &remote,
            &u("http://auth.example/token"),
            false
        ));
        assert!(!may_send_secret(
            &local,
            &u("http://auth.example/token"),
            false
        ));
        assert!(may_send_secret(
            &remote,
            &u("http://auth.example/token"),
            true
        ));
        // Plain HTTP on loopback: only for a loopback registry.
        assert!(may_send_secret(
            &local,
            &u("http://127.0.0.2:9000/token"),
            false
        ));
        assert!(may_send_secret(
            &local,
            &u("http://localhost:9000/t"),
            false
        ));
        assert!(may_send_secret(&local, &u("http://[::1]:9000/t"), false));
        assert!(!may_send_secret(
            &remote,
            &u("http://127.0.0.1:9000/token"),
            false
        ));
        // Other schemes: never.
        assert!(!may_send_secret(&local, &u("ftp://127.0.0.1/token"), true));
        assert!(!may_send_secret(&local, &u("file:///etc/passwd"), true));
    }

    #[test]
    fn token_cache_expires_early() {
        let c = TokenCache::default();
        c.put("a", Secret::new("t"), Duration::from_secs(5));
        assert!(
            c.get("a").is_none(),
            "a token within 10 s of expiry is not reused"
        );
        c.put("a", Secret::new("t"), Duration::from_secs(300));
        assert_eq!(c.get("a").unwrap().expose(), "t");
        c.forget_if("a", &Secret::new("other"));
        assert!(c.get("a").is_some(), "a newer token is kept");
        c.forget_if("a", &Secret::new("t"));
        assert!(c.get("a").is_none());
    }
}
