//! Image references: `[host[:port]/]repo[/more][:tag][@sha256:…]`, with Docker Hub defaults.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

use super::RegistryError;

pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's API lives on another host than the name users write.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference. `tag` and `digest` may both be set (`repo:tag@sha256:…`): the digest wins
/// for fetching, the tag is kept for humans and for pushing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// As written, with Docker Hub spelled `docker.io` (`host` or `host:port`).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    pub fn new(registry: &str, repository: &str) -> Result<Self, RegistryError> {
        let input = format!("{registry}/{repository}");
        validate_repository(&input, repository)?;
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: None,
            digest: None,
        })
    }

    /// Same repository, another tag (no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Self, RegistryError> {
        validate_tag(&format!("{self}"), tag)?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// Same repository, pinned to a digest (keeps the tag for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The host (and port) to talk to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What goes after `/manifests/`: the digest if pinned, else the tag, else `latest`.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| RegistryError::InvalidReference {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let s = input.strip_prefix("docker://").unwrap_or(input);
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // The first component is a registry host only if it looks like one (a dot, a port, or
        // `localhost`), exactly as docker decides; otherwise the image is on Docker Hub.
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path)
            }
            _ => (DOCKER_HUB.to_owned(), rest),
        };
        if registry.is_empty() || registry.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad("bad registry host"));
        }
        // A tag is a `:` after the last `/`.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match path[last_slash..].find(':') {
            Some(i) => (
                &path[..last_slash + i],
                Some(path[last_slash + i + 1..].to_owned()),
            ),
            None => (path, None),
        };
        let repository = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_owned()
        };
        validate_repository(input, &repository)?;
        if let Some(t) = &tag {
            validate_tag(input, t)?;
        }
        Ok(Reference {
            registry: if registry == "index.docker.io" || registry == DOCKER_HUB_API {
                DOCKER_HUB.to_owned()
            } else {
                registry
            },
            repository,
            tag,
            digest,
        })
    }
}

/// Distribution's grammar: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` per path component.
fn validate_repository(input: &str, repo: &str) -> Result<(), RegistryError> {
    let bad = |reason: String| RegistryError::InvalidReference {
        input: input.to_owned(),
        reason,
    };
    if repo.is_empty() {
        return Err(bad("empty repository name".into()));
    }
    if repo.len() > 255 {
        return Err(bad("repository name longer than 255 characters".into()));
    }
    for comp in repo.split('/') {
        let ok = !comp.is_empty()
            && comp.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && comp.as_bytes()[0].is_ascii_alphanumeric()
            && comp.as_bytes()[comp.len() - 1].is_ascii_alphanumeric()
            && !comp.contains("..")
            && !comp.contains("___");
        if !ok {
            return Err(bad(format!(
                "repository component {comp:?} must be lowercase letters and digits, \
                 separated by '.', '_', '__' or '-'"
            )));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn validate_tag(input: &str, tag: &str) -> Result<(), RegistryError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.as_bytes()[0] == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidReference {
            input: input.to_owned(),
            reason: format!("tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_defaults() {
        let r = p("debian");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/debian");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = p("bitnami/tomcat:10");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "bitnami/tomcat")
        );
        assert_eq!(r.tag.as_deref(), Some("10"));
        assert_eq!(p("index.docker.io/library/debian").registry, "docker.io");
    }

    #[test]
    fn host_port_tag_and_digest() {
        let d = crate::digest::Digest::of(b"x");
        let r = p(&format!("127.0.0.1:5000/a/b-c:v1.2@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b-c");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.manifest_ref(), d.to_string());
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/a/b-c:v1.2@{d}"));
        let r = p("localhost/x");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "x")
        );
        let r = p("registry.local:5000/app");
        assert_eq!(r.api_host(), "registry.local:5000");
        assert_eq!(r.tag, None);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "Upper/case",
            "reg.io/UPPER",
            "reg.io/a//b",
            "reg.io/a:",
            "reg.io/a:-x",
            "reg.io/a@sha256:12",
            "reg.io/-a",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} parsed");
        }
    }
}
