//! `verify --provenance REF@DIGEST`: fetch the image's SLSA provenance, compare its materials
//! with the current checkout, rebuild the recipe it names in a fresh cache and say whether the
//! digest is the same.
//!
//! The rebuild reads the recipe at the provenance's path in the current checkout (the git work
//! tree of the working directory, else the working directory) with its lockfile
//! (`--locked` when the provenance lists packages). Before building, every material the
//! provenance lists is compared with the checkout: each recipe's sha256, each locked package
//! (version, architecture, sha256, URL; missing or extra), the base image digest and
//! `SOURCE_DATE_EPOCH`. A difference there is named even when the rebuild then fails (a changed
//! sha256 makes the download fail its check): the verdict is "different" either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{BuildError, BuildOptions, Silent, build};
use crate::apt::Lockfile;
use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::oci::{Manifest, names};
use crate::plan::LockMode;
use crate::provenance::{self, Statement, kind};
use crate::registry::{BlockingRegistry, Reference, RegistryOptions};

/// What `verify --provenance` found.
#[derive(Debug)]
pub struct ProvenanceReport {
    /// The image the provenance describes.
    pub reference: Digest,
    /// The rebuild's digest; `None` when it failed (`rebuild_error` says why).
    pub rebuilt: Option<Digest>,
    pub rebuild_error: Option<String>,
    /// Materials of the provenance that differ from the checkout, one line each.
    pub differences: Vec<String>,
    /// Facts that do not decide the digest (the git commit), for the reader.
    pub notes: Vec<String>,
}

impl ProvenanceReport {
    pub fn identical(&self) -> bool {
        self.rebuilt.as_ref() == Some(&self.reference)
    }
}

fn fail(reference: &Reference, problem: impl Into<String>) -> BuildError {
    BuildError::Provenance {
        reference: reference.to_string(),
        problem: problem.into(),
    }
}

/// The provenance statement of `digest` in `repo`: the first in-toto referrer that reads as
/// SLSA v1 provenance of it.
fn fetch_statement(
    registry: &BlockingRegistry,
    reference: &Reference,
    digest: &Digest,
    tmp: &Path,
) -> Result<Statement, BuildError> {
    let repo = Reference::new(&reference.registry, &reference.repository)?;
    let index = registry.referrers(&repo, digest)?;
    let mut problems = Vec::new();
    for entry in index.manifests.iter().filter(|d| {
        d.artifact_type
            .as_ref()
            .is_some_and(|t| *t == names::IN_TOTO)
    }) {
        let at = repo.with_digest(entry.digest.clone());
        let (raw, _) = registry.pull_manifest(&at, None)?;
        let m = match Manifest::parse(&raw.bytes) {
            Ok(m) if m.subject.as_ref().is_some_and(|s| s.digest == *digest) => m,
            Ok(_) => {
                problems.push(format!("{}: its subject is not the image", entry.digest));
                continue;
            }
            Err(e) => {
                problems.push(format!("{}: {e}", entry.digest));
                continue;
            }
        };
        let Some(layer) = m.layers.iter().find(|l| l.media_type == names::IN_TOTO) else {
            continue;
        };
        if layer.size > provenance::MAX_BYTES {
            problems.push(format!(
                "{}: {} bytes of provenance",
                entry.digest, layer.size
            ));
            continue;
        }
        let path = registry.fetch_blob(&at, &layer.digest, layer.size, tmp)?;
        let bytes = std::fs::read(&path).map_err(|source| CacheError { path, source })?;
        match Statement::parse(&bytes, digest) {
            Ok(s) => return Ok(s),
            Err(e) => problems.push(format!("{}: {e}", entry.digest)),
        }
    }
    Err(fail(
        reference,
        match problems.is_empty() {
            true => "no provenance is attached to this image (build it with --provenance)".into(),
            false => format!("no readable provenance: {}", problems.join("; ")),
        },
    ))
}

/// The root paths in the provenance are relative to: the working directory's git work tree,
/// else the working directory.
fn checkout_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    gix::discover(&cwd)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
        .unwrap_or(cwd)
}

/// Each recipe of the provenance against the checkout's file.
fn compare_recipes(s: &Statement, root: &Path, out: &mut Vec<String>) {
    for dep in s.dependencies(kind::RECIPE) {
        let rel = &dep.name[kind::RECIPE.len()..];
        let want = dep.digest.get("sha256").map(String::as_str).unwrap_or("?");
        match std::fs::read(root.join(rel)) {
            Ok(bytes) if Digest::of(&bytes).hex() == want => {}
            Ok(bytes) => out.push(format!(
                "recipe {rel}: sha256 {want} in the provenance, {} in the checkout",
                Digest::of(&bytes).hex()
            )),
            Err(e) => out.push(format!("recipe {rel}: not readable in the checkout ({e})")),
        }
    }
}

/// One locked package as both sides describe it.
#[derive(PartialEq, Eq)]
struct Pkg {
    version: String,
    architecture: String,
    sha256: String,
    url: String,
}

impl std::fmt::Display for Pkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} sha256 {}",
            self.version, self.architecture, &self.sha256
        )
    }
}

/// The provenance's packages and the checkout lock's, by `layer/package`: every difference.
fn compare_packages(s: &Statement, lock: Option<&Lockfile>, out: &mut Vec<String>) {
    let theirs: BTreeMap<String, Pkg> = s
        .dependencies(kind::DEB)
        .map(|d| {
            let a = |k: &str| d.annotations.get(k).cloned().unwrap_or_default();
            let key = format!("{}/{}", a("layer"), a("package"));
            let pkg = Pkg {
                version: a("version"),
                architecture: a("architecture"),
                sha256: d.digest.get("sha256").cloned().unwrap_or_default(),
                url: d.download_location.clone().unwrap_or_default(),
            };
            (key, pkg)
        })
        .collect();
    let ours: BTreeMap<String, Pkg> = lock
        .iter()
        .flat_map(|l| &l.layers)
        .flat_map(|l| l.packages.iter().map(move |p| (l, p)))
        .map(|(l, p)| {
            let pkg = Pkg {
                version: p.version.clone(),
                architecture: p.architecture.clone(),
                sha256: p.sha256.hex().to_owned(),
                url: p.url.clone(),
            };
            (format!("{}/{}", l.name, p.name), pkg)
        })
        .collect();
    for (key, t) in &theirs {
        match ours.get(key) {
            Some(o) if o == t => {}
            Some(o) => out.push(format!(
                "package {key}: {t} in the provenance, {o} in the checkout's lockfile"
            )),
            None => out.push(format!(
                "package {key}: {t} in the provenance, not in the checkout's lockfile"
            )),
        }
    }
    for (key, o) in ours.iter().filter(|(k, _)| !theirs.contains_key(*k)) {
        out.push(format!(
            "package {key}: {o} in the checkout's lockfile, not in the provenance"
        ));
    }
}

/// The base image and `SOURCE_DATE_EPOCH` against the checkout and the environment.
fn compare_settings(s: &Statement, lock: Option<&Lockfile>, out: &mut Vec<String>) {
    let base = s.dependencies(kind::BASE).next();
    let theirs = base.and_then(|b| b.digest.get("sha256").cloned());
    let ours = lock
        .and_then(|l| l.base.as_ref())
        .map(|b| b.digest.hex().to_owned());
    if let (Some(t), Some(o)) = (&theirs, &ours)
        && t != o
    {
        out.push(format!(
            "base image: sha256 {t} in the provenance, {o} in the checkout's lockfile"
        ));
    }
    let now = crate::plan::TimePolicy::from_env()
        .ok()
        .and_then(|t| t.source_date_epoch());
    let then = s
        .predicate
        .build_definition
        .external_parameters
        .source_date_epoch;
    if now != then {
        let show = |v: Option<u64>| v.map_or("unset".to_owned(), |v| v.to_string());
        out.push(format!(
            "SOURCE_DATE_EPOCH: {} in the provenance, {} now",
            show(then),
            show(now)
        ));
    }
}

/// The checkout's git facts against the provenance's: another commit is a note (it does not
/// decide the digest by itself; the files it changed are compared above or show in the
/// rebuild), another `origin` a difference (it is the image's `org.opencontainers.image.source`
/// label).
fn compare_git(s: &Statement, root: &Path, differences: &mut Vec<String>) -> Option<String> {
    let dep = s.dependencies(kind::GIT).next()?;
    let theirs = dep.digest.get("gitCommit")?.clone();
    let repo = gix::discover(root).ok();
    let ours = repo
        .as_ref()
        .and_then(|r| r.head_id().ok().map(|id| id.detach().to_string()));
    let remote = repo.as_ref().and_then(|r| {
        let remote = r.find_remote("origin").ok()?;
        crate::plan::git::source_url(remote.url(gix::remote::Direction::Fetch)?)
    });
    if remote != dep.uri {
        let show = |v: Option<&String>| v.map_or("none".to_owned(), |v| v.clone());
        differences.push(format!(
            "git remote origin: {} in the provenance, {} in the checkout",
            show(dep.uri.as_ref()),
            show(remote.as_ref())
        ));
    }
    match ours {
        Some(o) if o == theirs => None,
        Some(o) => Some(format!(
            "git commit: {theirs} in the provenance, {o} checked out"
        )),
        None => Some(format!(
            "git commit: {theirs} in the provenance; the checkout is not a git work tree"
        )),
    }
}

/// Fetches the provenance of `reference` (which must name a digest, or a tag resolved to
/// one), compares its materials with the checkout and rebuilds in a fresh cache.
pub fn verify_provenance(
    reference: &Reference,
    cache_dir: &Path,
    registry_opts: &RegistryOptions,
) -> Result<ProvenanceReport, BuildError> {
    let registry = BlockingRegistry::new(registry_opts.clone())?;
    let digest = match &reference.digest {
        Some(d) => d.clone(),
        None => registry
            .manifest_digest(reference)?
            .ok_or_else(|| fail(reference, "no such image"))?,
    };
    let fresh = tempfile::Builder::new()
        .prefix("stevedore-verify-")
        .tempdir()
        .map_err(|source| CacheError {
            path: std::env::temp_dir(),
            source,
        })?;
    let statement = fetch_statement(&registry, reference, &digest, fresh.path())?;
    let params = &statement.predicate.build_definition.external_parameters;
    let root = checkout_root();
    let recipe = root.join(&params.recipe);
    let lock_path = crate::plan::lockfile_path(&recipe);
    let lock = std::fs::read_to_string(&lock_path)
        .ok()
        .and_then(|t| Lockfile::from_toml(&t, &lock_path.display().to_string()).ok());
    let mut differences = Vec::new();
    compare_recipes(&statement, &root, &mut differences);
    compare_packages(&statement, lock.as_ref(), &mut differences);
    compare_settings(&statement, lock.as_ref(), &mut differences);
    let notes = compare_git(&statement, &root, &mut differences)
        .into_iter()
        .collect();
    let (rebuilt, rebuild_error) =
        match rebuild(&recipe, &statement, cache_dir, fresh.path(), registry_opts) {
            Ok(d) => (Some(d), None),
            // A rebuild that fails after a material was found to differ is still a verdict.
            Err(e) if !differences.is_empty() => (None, Some(e.to_string())),
            Err(e) => return Err(e),
        };
    Ok(ProvenanceReport {
        reference: digest,
        rebuilt,
        rebuild_error,
        differences,
        notes,
    })
}

/// Builds the recipe into the empty cache `fresh` (downloads shared with `cache_dir`'s: they
/// are checked against their sha256 anyway) with the provenance's options.
fn rebuild(
    recipe: &Path,
    statement: &Statement,
    cache_dir: &Path,
    fresh: &Path,
    registry: &RegistryOptions,
) -> Result<Digest, BuildError> {
    let cache = Cache::open(cache_dir)?;
    let fresh_cache = fresh.join("cache");
    std::fs::create_dir_all(&fresh_cache).map_err(|source| CacheError {
        path: fresh_cache.clone(),
        source,
    })?;
    let _ = std::fs::create_dir_all(cache.apt_dir());
    let _ = std::os::unix::fs::symlink(cache.apt_dir(), fresh_cache.join("apt"));
    let params = &statement.predicate.build_definition.external_parameters;
    let has_packages = statement.dependencies(kind::DEB).next().is_some();
    let opts = BuildOptions {
        cache_dir: fresh_cache,
        outputs: Vec::new(),
        tags: Vec::new(),
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        lock_mode: if params.locked || has_packages {
            LockMode::Locked
        } else {
            LockMode::Prefer
        },
        strict: params.strict,
        registry: registry.clone(),
        fleet: Default::default(),
        platforms: Vec::new(),
    };
    let result = build(recipe, &opts, &Silent)?;
    Ok(result.image.manifest_digest.clone())
}
