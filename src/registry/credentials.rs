//! Where credentials come from: explicit `user:pass` (CI, `--creds`), docker's `config.json`
//! (`DOCKER_CONFIG`, credential helpers `credsStore`/`credHelpers`), containers' `auth.json`
//! (`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`). Parsing and helper calls are the
//! `docker_credential` crate's; the lookup order is ours.

use std::fmt;
use std::path::PathBuf;

use super::RegistryError;

/// A password or token. `Debug` and `Display` print `***` so it can never leak through logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The only way to the value: grep for it when auditing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the client looks up credentials for a registry that has no [`HostCredential`]. Every
/// lookup is keyed by that registry's own host, so a registry only ever gets what was stored for
/// it.
#[derive(Clone, Debug, Default)]
pub enum CredentialSource {
    /// Look in the usual files and helpers (see the module docs); anonymous if nothing is found.
    #[default]
    Auto,
    /// Never send credentials.
    Anonymous,
    /// Auto, but with an explicit docker `config.json` or containers `auth.json` file.
    File(PathBuf),
}

/// A username and password given explicitly (`--creds`, `--from-creds`), tied to the one
/// registry (`host[:port]` as references write it) it was given for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCredential {
    pub registry: String,
    pub username: String,
    pub password: Secret,
}

impl HostCredential {
    /// `user:password` (the password may itself contain `:`) for `registry`.
    pub fn from_user_pass(registry: &str, s: &str) -> Result<Self, RegistryError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(HostCredential {
                registry: registry_key(registry),
                username: u.to_owned(),
                password: Secret::new(p),
            }),
            _ => Err(RegistryError::Credentials {
                registry: registry.to_owned(),
                detail: "expected USER:PASSWORD".into(),
            }),
        }
    }

    /// `host[:port]=user:password` (`--from-creds`).
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        match s.split_once('=') {
            Some((host, up)) if valid_host(host) => Self::from_user_pass(host, up),
            _ => Err(RegistryError::Credentials {
                registry: "(none)".into(),
                detail: "expected HOST[:PORT]=USER:PASSWORD".into(),
            }),
        }
    }

    /// Is this credential for `registry`?
    pub(crate) fn is_for(&self, registry: &str) -> bool {
        self.registry == registry_key(registry)
    }
}

/// A registry name as credentials are keyed: lower case, Docker Hub's aliases as `docker.io`.
/// The port is kept: `host:5000` and `host` are different registries.
fn registry_key(registry: &str) -> String {
    let r = registry.to_ascii_lowercase();
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            super::reference::DOCKER_HUB.to_owned()
        }
        _ => r,
    }
}

/// `host`, `host:port` or `[v6]:port`: nothing that could smuggle a path, user or query.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// What was found for one registry.
#[derive(Clone, Debug)]
pub(crate) enum Credential {
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json), exchanged at the token endpoint.
    IdentityToken(Secret),
}

/// Credentials for `registry` (as written in the reference, e.g. `docker.io`, `host:5000`): the
/// explicit one given for it, else what `source` holds for it.
pub(crate) fn resolve(
    explicit: &[HostCredential],
    source: &CredentialSource,
    registry: &str,
) -> Result<Option<Credential>, RegistryError> {
    if let Some(c) = explicit.iter().find(|c| c.is_for(registry)) {
        return Ok(Some(Credential::Basic {
            username: c.username.clone(),
            password: c.password.clone(),
        }));
    }
    source.resolve(registry)
}

impl CredentialSource {
    /// What the files and helpers hold for `registry`.
    fn resolve(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        match self {
            CredentialSource::Anonymous => Ok(None),
            CredentialSource::File(path) => {
                let f = std::fs::File::open(path).map_err(|e| RegistryError::Credentials {
                    registry: registry.into(),
                    detail: format!("{}: {e}", path.display()),
                })?;
                from_docker(
                    registry,
                    docker_credential::get_credential_from_reader(
                        std::io::BufReader::new(f),
                        &server_key(registry),
                    ),
                )
            }
            CredentialSource::Auto => {
                let key = server_key(registry);
                // An explicit REGISTRY_AUTH_FILE is the user's choice for this run: it goes first.
                if std::env::var_os("REGISTRY_AUTH_FILE").is_some()
                    && let Some(c) =
                        from_docker(registry, docker_credential::get_podman_credential(&key))?
                {
                    return Ok(Some(c));
                }
                if let Some(c) = from_docker(registry, docker_credential::get_credential(&key))? {
                    return Ok(Some(c));
                }
                from_docker(registry, docker_credential::get_podman_credential(&key))
            }
        }
    }
}

/// Docker keys Docker Hub as `https://index.docker.io/v1/`; everything else by `host[:port]`.
fn server_key(registry: &str) -> String {
    if registry == super::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    }
}

fn from_docker(
    registry: &str,
    r: Result<docker_credential::DockerCredential, docker_credential::CredentialRetrievalError>,
) -> Result<Option<Credential>, RegistryError> {
    use docker_credential::CredentialRetrievalError as E;
    match r {
        Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
            Ok(Some(Credential::Basic {
                username: u,
                password: Secret::new(p),
            }))
        }
        Ok(docker_credential::DockerCredential::IdentityToken(t)) => {
            Ok(Some(Credential::IdentityToken(Secret::new(t))))
        }
        Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => Ok(None),
        // A helper's stdout may hold a secret: name the helper only.
        Err(E::HelperFailure { helper, .. }) => Err(RegistryError::Credentials {
            registry: registry.into(),
            detail: format!("credential helper docker-credential-{helper} failed"),
        }),
        Err(e) => Err(RegistryError::Credentials {
            registry: registry.into(),
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let given = vec![HostCredential::from_user_pass("r.io", "bob:hunter2:x").unwrap()];
        let dbg = format!("{given:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let c = resolve(&given, &CredentialSource::Anonymous, "r.io")
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        match c {
            Credential::Basic { username, password } => {
                assert_eq!(username, "bob");
                assert_eq!(password.expose(), "hunter2:x");
            }
            _ => panic!(),
        }
    }

    #[test]
    fn a_given_credential_is_for_its_registry_only() {
        let given = vec![
            HostCredential::from_user_pass("Push.example:5000", "ci:pw").unwrap(),
            HostCredential::parse("index.docker.io=hub:pw2").unwrap(),
        ];
        let user = |r: &str| match resolve(&given, &CredentialSource::Anonymous, r).unwrap() {
            Some(Credential::Basic { username, .. }) => Some(username),
            _ => None,
        };
        assert_eq!(user("push.example:5000").as_deref(), Some("ci"));
        assert_eq!(user("docker.io").as_deref(), Some("hub"));
        // Another port, another host, a look-alike: nothing.
        assert_eq!(user("push.example"), None);
        assert_eq!(user("push.example:5001"), None);
        assert_eq!(user("push.example:5000.evil"), None);
        assert_eq!(user("base.example"), None);
    }

    #[test]
    fn from_creds_syntax() {
        let c = HostCredential::parse("127.0.0.1:5000=u:p:q").unwrap();
        assert_eq!(
            (
                c.registry.as_str(),
                c.username.as_str(),
                c.password.expose()
            ),
            ("127.0.0.1:5000", "u", "p:q")
        );
        for bad in ["u:p", "=u:p", "h=u", "h=:p", "h/x=u:p", "u@h=u:p"] {
            assert!(HostCredential::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // "u:p4ss" in base64
        std::fs::write(&path, r#"{"auths":{"127.0.0.1:5001":{"auth":"dTpwNHNz"}}}"#).unwrap();
        let src = CredentialSource::File(path);
        match src.resolve("127.0.0.1:5001").unwrap() {
            Some(Credential::Basic { username, password }) => {
                assert_eq!((username.as_str(), password.expose()), ("u", "p4ss"))
            }
            other => panic!("{other:?}"),
        }
        assert!(src.resolve("other:1").unwrap().is_none());
    }
}
