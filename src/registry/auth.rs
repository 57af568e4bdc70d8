//! `WWW-Authenticate` challenges and bearer tokens.
//!
//! Hand-written because the parsing is 60 lines and no maintained crate covers the registry's token
//! dance (quoted scopes with commas, per-scope tokens, refresh tokens from `identitytoken`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::RegistryError;
use super::credentials::{Credential, Secret};

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
        self.tokens
            .lock()
            .unwrap()
            .insert(key.to_owned(), (token, Instant::now() + lifetime));
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

/// Asks the token server for a token covering `scopes`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    registry: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<(Secret, Duration), RegistryError> {
    let mut url = reqwest::Url::parse(realm).map_err(|e| {
        RegistryError::Protocol(format!("{registry} sent a bad token realm {realm:?}: {e}"))
    })?;
    let req = match credential {
        Some(Credential::IdentityToken(refresh)) => {
            // OAuth2 refresh-token grant, form-encoded through Url's encoder (no extra crate).
            let mut form = reqwest::Url::parse("x:").expect("static url");
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("client_id", "stevedore");
                q.append_pair("refresh_token", refresh.expose());
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                q.append_pair("scope", &scopes.join(" "));
            }
            http.post(url.clone())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.query().unwrap_or_default().to_owned())
        }
        other => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            let r = http.get(url.clone());
            match other {
                Some(Credential::Basic { username, password }) => {
                    r.basic_auth(username, Some(password.expose()))
                }
                _ => r,
            }
        }
    };
    let resp = req
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| RegistryError::Unreachable {
            url: format!("token server {}", without_query(&url)),
            detail: super::client::error_chain(&e),
        })?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(if credential.is_some() {
            RegistryError::AuthFailed {
                registry: registry.to_owned(),
            }
        } else {
            RegistryError::NoCredentials {
                registry: registry.to_owned(),
            }
        });
    }
    if !resp.status().is_success() {
        return Err(RegistryError::Api {
            method: "GET".into(),
            url: format!("token server {}", without_query(&url)),
            status,
            codes: vec![],
            retry_after: super::client::retry_after(resp.headers()),
        });
    }
    let body: TokenResponse = resp.json().await.map_err(|e| {
        RegistryError::Protocol(format!("token server for {registry} sent bad JSON: {e}"))
    })?;
    let token = body.token.or(body.access_token).ok_or_else(|| {
        RegistryError::Protocol(format!("token server for {registry} sent no token"))
    })?;
    // The spec's default lifetime is 60 s.
    let lifetime = Duration::from_secs(body.expires_in.unwrap_or(60).max(10));
    Ok((Secret::new(token), lifetime))
}

fn without_query(u: &reqwest::Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
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
