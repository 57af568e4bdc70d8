//! Build provenance: an in-toto Statement v1 whose predicate is SLSA Provenance v1.
//!
//! - `subject`: the image manifest digest;
//! - `buildDefinition.externalParameters`: the recipe (its path in the repository) and the
//!   options that change the image (`--locked`, `--strict`, `SOURCE_DATE_EPOCH`);
//! - `buildDefinition.resolvedDependencies`: every recipe of the chain and the lockfile with
//!   their sha256, the git commit, the base image digest, and every locked `.deb` (package,
//!   version, architecture, sha256, URL, size, layer);
//! - `runDetails.builder.id`: stevedore and its version.
//!
//! The bytes are canonical JSON (sorted keys, no whitespace) and hold no time and no host path:
//! the same inputs give the same document on any machine, byte for byte. The statement is
//! read back through the same types by `verify --provenance`, which rebuilds from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apt::Lockfile;
use crate::digest::Digest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is (a TypeURI, as SLSA asks): a stevedore recipe.
pub const BUILD_TYPE: &str = "urn:stevedore:buildtype:recipe:v1";
/// Largest provenance document `verify --provenance` reads.
pub const MAX_BYTES: u64 = 16 << 20;

/// The `name` prefixes of the resolved dependencies.
pub mod kind {
    pub const RECIPE: &str = "recipe:";
    pub const LOCKFILE: &str = "lockfile:";
    pub const GIT: &str = "git";
    pub const BASE: &str = "base";
    pub const DEB: &str = "deb:";
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Provenance,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// The parameters a user chose: what `verify --provenance` needs to build the same again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    /// The top recipe, relative to the root of its git work tree (else as given).
    pub recipe: String,
    pub locked: bool,
    pub strict: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
}

/// SLSA's ResourceDescriptor (the fields stevedore uses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

/// A file the build read, by its path in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMaterial {
    pub path: String,
    pub sha256: Digest,
}

/// Everything the statement says, gathered by the build.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The image's name (the recipe's `image.name`, else the recipe path).
    pub subject_name: String,
    pub image_digest: Digest,
    pub parameters: ExternalParameters,
    /// Every recipe of the chain, top first.
    pub recipes: Vec<FileMaterial>,
    pub lockfile: Option<FileMaterial>,
    /// The package sets the build used (from the lockfile, or resolved).
    pub lock: Option<Lockfile>,
    /// HEAD of the recipe's repository, and `origin` without credentials.
    pub git: Option<(String, Option<String>)>,
    /// The registry base image: reference as written, and its manifest digest.
    pub base: Option<(String, Digest)>,
}

fn sha256(d: &Digest) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_owned(), d.hex().to_owned())])
}

/// The builder's id: stevedore and its version, as a package URL.
pub fn builder_id() -> String {
    format!("pkg:cargo/stevedore@{}", env!("CARGO_PKG_VERSION"))
}

fn file(kind: &str, f: &FileMaterial) -> ResourceDescriptor {
    ResourceDescriptor {
        name: format!("{kind}{}", f.path),
        digest: sha256(&f.sha256),
        ..Default::default()
    }
}

/// The locked packages, layer by layer, as resolved dependencies.
fn packages(lock: &Lockfile) -> impl Iterator<Item = ResourceDescriptor> + '_ {
    lock.layers.iter().flat_map(|layer| {
        layer.packages.iter().map(|p| ResourceDescriptor {
            name: format!("{}{}/{}", kind::DEB, layer.name, p.name),
            uri: Some(p.url.clone()),
            digest: sha256(&p.sha256),
            download_location: Some(p.url.clone()),
            annotations: BTreeMap::from([
                ("layer".to_owned(), layer.name.clone()),
                ("package".to_owned(), p.name.clone()),
                ("version".to_owned(), p.version.clone()),
                ("architecture".to_owned(), p.architecture.clone()),
                ("size".to_owned(), p.size.to_string()),
            ]),
        })
    })
}

/// The resolved dependencies, in a fixed order: recipes, lockfile, git, base, packages.
fn dependencies(inputs: &Inputs) -> Vec<ResourceDescriptor> {
    let mut deps: Vec<ResourceDescriptor> = inputs
        .recipes
        .iter()
        .map(|f| file(kind::RECIPE, f))
        .collect();
    deps.extend(inputs.lockfile.iter().map(|f| file(kind::LOCKFILE, f)));
    if let Some((commit, remote)) = &inputs.git {
        deps.push(ResourceDescriptor {
            name: kind::GIT.to_owned(),
            uri: remote.clone(),
            digest: BTreeMap::from([("gitCommit".to_owned(), commit.clone())]),
            ..Default::default()
        });
    }
    if let Some((reference, digest)) = &inputs.base {
        deps.push(ResourceDescriptor {
            name: kind::BASE.to_owned(),
            uri: Some(reference.clone()),
            digest: sha256(digest),
            ..Default::default()
        });
    }
    if let Some(lock) = &inputs.lock {
        deps.extend(packages(lock));
    }
    deps
}

/// The statement for `inputs`.
pub fn statement(inputs: &Inputs) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![ResourceDescriptor {
            name: inputs.subject_name.clone(),
            digest: sha256(&inputs.image_digest),
            ..Default::default()
        }],
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: Provenance {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.to_owned(),
                external_parameters: inputs.parameters.clone(),
                resolved_dependencies: dependencies(inputs),
            },
            run_details: RunDetails {
                builder: Builder {
                    id: builder_id(),
                    version: BTreeMap::from([(
                        "stevedore".to_owned(),
                        env!("CARGO_PKG_VERSION").to_owned(),
                    )]),
                },
            },
        },
    }
}

/// The statement's bytes: canonical JSON.
pub fn to_bytes(statement: &Statement) -> Vec<u8> {
    crate::oci::canonical_json(statement)
}

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("not an in-toto statement: {0}")]
    Json(#[source] serde_json::Error),
    #[error("statement type `{0}`, expected {STATEMENT_TYPE}")]
    StatementType(String),
    #[error("predicate type `{0}`, expected {PREDICATE_TYPE}")]
    PredicateType(String),
    #[error("its subject is not sha256:{0}")]
    Subject(String),
}

impl Statement {
    /// Reads a statement and checks that it is SLSA v1 provenance of `image`.
    pub fn parse(bytes: &[u8], image: &Digest) -> Result<Statement, ProvenanceError> {
        let s: Statement = serde_json::from_slice(bytes).map_err(ProvenanceError::Json)?;
        if s.statement_type != STATEMENT_TYPE {
            return Err(ProvenanceError::StatementType(s.statement_type));
        }
        if s.predicate_type != PREDICATE_TYPE {
            return Err(ProvenanceError::PredicateType(s.predicate_type));
        }
        if !s
            .subject
            .iter()
            .any(|x| x.digest.get("sha256") == Some(&image.hex()))
        {
            return Err(ProvenanceError::Subject(image.hex().to_owned()));
        }
        Ok(s)
    }

    /// The resolved dependencies whose name starts with `prefix`.
    pub fn dependencies<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a ResourceDescriptor> + 'a {
        self.predicate
            .build_definition
            .resolved_dependencies
            .iter()
            .filter(move |d| d.name.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::{LockedLayer, LockedPackage};

    fn inputs() -> Inputs {
        let mut lock = Lockfile::new(
            Digest::of(b"inputs"),
            vec![LockedLayer {
                name: "app/base".into(),
                packages: vec![LockedPackage {
                    name: "hello".into(),
                    version: "2.10-3".into(),
                    architecture: "amd64".into(),
                    url: "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
                        .into(),
                    size: 10,
                    sha256: Digest::of(b"deb"),
                    why: "requested".into(),
                }],
            }],
        );
        lock.base = None;
        Inputs {
            subject_name: "app".into(),
            image_digest: Digest::of(b"image"),
            parameters: ExternalParameters {
                recipe: "recipes/app.toml".into(),
                locked: true,
                ..Default::default()
            },
            recipes: vec![FileMaterial {
                path: "recipes/app.toml".into(),
                sha256: Digest::of(b"recipe"),
            }],
            lockfile: None,
            lock: Some(lock),
            git: Some(("0123456789abcdef0123456789abcdef01234567".into(), None)),
            base: Some(("r.local/base:1".into(), Digest::of(b"base"))),
        }
    }

    #[test]
    fn the_statement_is_slsa_v1_and_reads_back() {
        let s = statement(&inputs());
        let bytes = to_bytes(&s);
        assert_eq!(bytes, to_bytes(&statement(&inputs())), "deterministic");
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","predicate":"#));
        assert!(text.contains(r#""predicateType":"https://slsa.dev/provenance/v1""#));
        assert!(text.contains(r#""builder":{"id":"pkg:cargo/stevedore@"#));
        let back = Statement::parse(&bytes, &Digest::of(b"image")).unwrap();
        assert_eq!(back, s);
        let debs: Vec<_> = back.dependencies(kind::DEB).collect();
        assert_eq!(debs.len(), 1);
        assert_eq!(debs[0].name, "deb:app/base/hello");
        assert_eq!(debs[0].annotations["version"], "2.10-3");
        assert!(matches!(
            Statement::parse(&bytes, &Digest::of(b"other")),
            Err(ProvenanceError::Subject(_))
        ));
    }
}
