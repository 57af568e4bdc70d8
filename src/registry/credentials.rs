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

/// How the client finds credentials for a registry.
#[derive(Clone, Debug, Default)]
pub enum CredentialSource {
    /// Look in the usual files and helpers (see the module docs); anonymous if nothing is found.
    #[default]
    Auto,
    /// Never send credentials.
    Anonymous,
    /// These, for every registry (CI: `--creds user:pass`).
    Basic { username: String, password: Secret },
    /// Auto, but with an explicit docker `config.json` or containers `auth.json` file.
    File(PathBuf),
}

impl CredentialSource {
    /// Parses `user:password` (the password may itself contain `:`).
    pub fn from_user_pass(s: &str) -> Result<Self, RegistryError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(CredentialSource::Basic {
                username: u.to_owned(),
                password: Secret::new(p),
            }),
            _ => Err(RegistryError::Credentials {
                registry: "(any)".into(),
                detail: "expected USER:PASSWORD".into(),
            }),
        }
    }
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

impl CredentialSource {
    /// Credentials for `registry` (as written in the reference, e.g. `docker.io`, `host:5000`).
    pub(crate) fn resolve(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        match self {
            CredentialSource::Anonymous => Ok(None),
            CredentialSource::Basic { username, password } => Ok(Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            })),
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
        let src = CredentialSource::from_user_pass("bob:hunter2:x").unwrap();
        let dbg = format!("{src:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let c = src.resolve("r.io").unwrap().unwrap();
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
