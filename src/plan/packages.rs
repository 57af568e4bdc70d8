//! Package layers in the plan: which `.deb`s each layer gets (from the lockfile or a fresh
//! resolution against the signed indexes), and the layer's cache key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::PlanError;
use crate::apt::{self, AptError, InstalledPackage, LockedLayer, Lockfile, Request};
use crate::cache::Cache;
use crate::digest::{Digest, Hasher};
use crate::recipe::{AptSource, Location, Recipe};

/// A fingerprint of the code that lays out packages and reproduces their scripts (made by
/// build.rs): the cache key of every package layer includes it, so a layer made by older rules
/// is never reused.
pub const SETUP_RULES_VERSION: &str = concat!("rootfs-", env!("STEVEDORE_SETUP_RULES"));

/// How the plan may get package sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Use the lockfile when it is up to date, else resolve from the indexes.
    Prefer,
    /// Use only the lockfile; refuse when it is missing or out of date.
    Locked,
    /// Ignore the lockfile and resolve (for `stevedore lock`).
    Fresh,
}

/// Where a recipe's lockfile lives: next to it, `.lock` for `.toml`.
pub fn lockfile_path(recipe: &Path) -> PathBuf {
    recipe.with_extension("lock")
}

/// Name of a package layer in the lockfile: recipe file stem and layer name.
pub fn lock_layer_name(recipe: &Recipe, layer: &str) -> String {
    let stem = recipe
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}/{layer}")
}

/// The Debian architecture whose packages the recipe's image gets (`arm64`, `armhf`, ...).
/// The recipe was checked to name a platform Debian has a port for; the OCI name is the
/// fallback only for a recipe built in code without that check (and is the same name for
/// amd64, arm64, s390x and riscv64, which keeps their lockfiles' inputs hashes as they were).
pub fn debian_architecture(recipe: &Recipe) -> &str {
    recipe
        .image
        .platform
        .debian_architecture()
        .unwrap_or(&recipe.image.platform.architecture)
}

fn sources_desc(s: &AptSource) -> String {
    format!(
        "{:?} {:?} {:?} unsigned={}",
        s.mirrors, s.suites, s.components, s.allow_unsigned
    )
}

/// What the resolver starts from on a registry base whose tree was read.
#[derive(Clone, Copy, Debug)]
pub struct BaseState<'a> {
    /// The base's manifest digest: part of the lockfile's inputs (another base, another
    /// installed set).
    pub digest: &'a Digest,
    /// The base's `/var/lib/dpkg/status`: its installed set.
    pub status: &'a str,
}

impl<'a> BaseState<'a> {
    pub fn of(base: Option<super::PlanBase<'a>>) -> Option<BaseState<'a>> {
        let base = base?;
        Some(BaseState {
            digest: &base.image.manifest_digest,
            status: base.tree?.status.as_deref()?,
        })
    }
}

/// A digest of everything resolution depends on: sources (keyring contents included),
/// architecture, each package layer's request, and the registry base the packages go on (its
/// installed set is where resolution starts). A lockfile made from other inputs is stale.
pub fn inputs_hash(recipe: &Recipe, base: Option<&Digest>) -> Result<Digest, PlanError> {
    let mut h = Hasher::new();
    h.update(debian_architecture(recipe).as_bytes());
    if let Some(d) = base {
        h.update(format!("\nbase {d}\n").as_bytes());
    }
    for r in recipe.chain() {
        for l in &r.layers {
            let Some(p) = &l.packages else { continue };
            h.update(format!("\nlayer {}\n", lock_layer_name(r, &l.name)).as_bytes());
            h.update(
                format!(
                    "{:?} minbase={} recommends={}\n",
                    p.names, p.minbase, p.recommends
                )
                .as_bytes(),
            );
            for s in &r.sources {
                h.update(sources_desc(s).as_bytes());
                if let Some(digest) = keyring_digest(s)? {
                    h.update(&digest.to_string().into_bytes());
                }
            }
        }
    }
    Ok(h.finish().0)
}

/// The digest of the keyring that verifies a source: its file's, or the built-in keyring's
/// (the same bytes as the file in keyrings/, so a recipe that drops its `keyring` line for
/// Debian or Ubuntu keeps its inputs hash and its lockfile). `None` for an unsigned source
/// without a keyring.
fn keyring_digest(s: &AptSource) -> Result<Option<Digest>, PlanError> {
    if s.keyring.is_none() && s.allow_unsigned {
        return Ok(None);
    }
    match apt::keyrings::keyring_for(s.keyring.as_deref(), &s.mirrors) {
        Ok(apt::KeyringSource::File(k)) => {
            let bytes = std::fs::read(k).map_err(|source| PlanError::Keyring {
                location: s.location.clone(),
                path: k.to_path_buf(),
                source,
            })?;
            Ok(Some(Digest::of(&bytes)))
        }
        Ok(apt::KeyringSource::Builtin(k)) => Ok(Some(Digest::of(k.bytes))),
        // The recipe was checked for this; verification names the mirror if it happens.
        Err(_) => Ok(None),
    }
}

fn has_packages(recipe: &Recipe) -> bool {
    recipe
        .chain()
        .iter()
        .any(|r| r.layers.iter().any(|l| l.packages.is_some()))
}

/// The locked package set of every package layer in the chain (empty when there is none).
pub fn lock_for(
    recipe: &Recipe,
    cache: &Cache,
    mode: LockMode,
    base: Option<BaseState<'_>>,
) -> Result<Option<Lockfile>, PlanError> {
    if !has_packages(recipe) {
        return Ok(None);
    }
    let at = Location {
        file: recipe.path.clone(),
        line: 1,
        column: 1,
    };
    let inputs = inputs_hash(recipe, base.map(|b| b.digest))?;
    let path = lockfile_path(&recipe.path);
    if mode != LockMode::Fresh {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let lock = Lockfile::from_toml_for(
                    &text,
                    &path.display().to_string(),
                    &recipe.image.platform,
                )
                .map_err(|source| PlanError::Lockfile {
                    location: at.clone(),
                    source: Box::new(source),
                })?;
                // A multi-platform lockfile without this platform is as stale as a lock made
                // from other inputs.
                if let Some(lock) = lock.filter(|l| l.inputs == inputs) {
                    return Ok(Some(lock));
                }
                if mode == LockMode::Locked {
                    return Err(PlanError::StaleLockfile {
                        location: at,
                        path,
                        recipe: recipe.path.clone(),
                    });
                }
                tracing::warn!(
                    "{} is out of date; resolving from the indexes",
                    path.display()
                );
            }
            Err(_) if mode == LockMode::Locked => {
                return Err(PlanError::NoLockfile {
                    location: at,
                    path,
                    recipe: recipe.path.clone(),
                });
            }
            Err(_) => {}
        }
    }
    resolve_chain(recipe, cache, inputs, base).map(Some)
}

/// Resolves every package layer of the chain in order, each on top of what the layers below
/// installed.
///
/// The result is kept in the cache under the recipe's inputs and the digests of the signed
/// Releases: while the mirror publishes nothing new, an unlocked rebuild verifies the InRelease
/// files (one small request per suite) and reuses the resolution instead of loading indexes.
fn resolve_chain(
    recipe: &Recipe,
    cache: &Cache,
    inputs: Digest,
    base: Option<BaseState<'_>>,
) -> Result<Lockfile, PlanError> {
    let fetcher = apt::Fetcher::new(&cache.apt_dir()).map_err(|e| PlanError::Apt {
        location: Location {
            file: recipe.path.clone(),
            line: 1,
            column: 1,
        },
        source: Box::new(e.into()),
    })?;
    let arch = debian_architecture(recipe).to_owned();
    // Every distinct set of sources in the chain, verified, in chain order.
    let mut verified: Vec<(String, apt::VerifiedSources, Location)> = Vec::new();
    for r in recipe.chain() {
        for l in &r.layers {
            if l.packages.is_none() {
                continue;
            }
            let key: String = r.sources.iter().map(sources_desc).collect();
            if verified.iter().any(|(k, _, _)| *k == key) {
                continue;
            }
            let sources: Vec<apt::Sources> = r
                .sources
                .iter()
                .map(|s| apt::Sources {
                    mirrors: s.mirrors.clone(),
                    suites: s.suites.clone(),
                    components: s.components.clone(),
                    architecture: arch.clone(),
                    keyring: s.keyring.clone(),
                    allow_unsigned: s.allow_unsigned,
                })
                .collect();
            if sources.iter().any(|s| s.allow_unsigned) {
                tracing::warn!(
                    "allow-unsigned is set: package signatures are NOT checked (only for local test repositories)"
                );
            }
            let at = r.sources.first().map_or(&l.location, |s| &s.location);
            let v =
                apt::verify_sources(&sources, &fetcher, SystemTime::now()).map_err(|source| {
                    PlanError::Apt {
                        location: at.clone(),
                        source: Box::new(source),
                    }
                })?;
            verified.push((key, v, at.clone()));
        }
    }
    let mut h = Hasher::new();
    h.update(format!("resolution 1\n{inputs}\n").as_bytes());
    for (_, v, _) in &verified {
        h.update(format!("{}\n", v.release_digest()).as_bytes());
    }
    let saved = cache
        .root()
        .join("resolutions")
        .join(format!("{}.lock", h.finish().0.hex()));
    if let Some(lock) = std::fs::read_to_string(&saved)
        .ok()
        .and_then(|text| Lockfile::from_toml(&text, &saved.display().to_string()).ok())
        .filter(|lock| lock.inputs == inputs)
    {
        tracing::debug!(
            "the mirror published nothing new: reusing {}",
            saved.display()
        );
        return Ok(lock);
    }

    let mut indexes: HashMap<String, apt::LoadedIndex> = HashMap::new();
    for (key, v, at) in verified {
        let loaded = apt::load_verified(v, &fetcher).map_err(|source| PlanError::Apt {
            location: at.clone(),
            source: Box::new(source),
        })?;
        tracing::debug!("loaded the index of {} packages", loaded.index.len());
        indexes.insert(key, loaded);
    }
    // On a registry base, apt inside that container would see its installed packages: they
    // satisfy dependencies and are never installed again.
    let mut installed: Vec<InstalledPackage> = match base {
        Some(b) => InstalledPackage::from_dpkg_status(b.status, "/var/lib/dpkg/status of the base")
            .map_err(|e| PlanError::Apt {
                location: recipe.image_base().map_or_else(
                    || Location {
                        file: recipe.path.clone(),
                        line: 1,
                        column: 1,
                    },
                    |from| from.location.clone(),
                ),
                source: Box::new(AptError::Index(e)),
            })?,
        None => Vec::new(),
    };
    let mut layers = Vec::new();
    for r in recipe.chain() {
        for l in &r.layers {
            let Some(p) = &l.packages else { continue };
            let key: String = r.sources.iter().map(sources_desc).collect();
            let index = &indexes[&key].index;
            let request = Request {
                packages: p.names.clone(),
                minbase: p.minbase,
                recommends: p.recommends,
            };
            let resolution =
                apt::resolve(index, &request, &installed).map_err(|e| PlanError::Apt {
                    location: l.location.clone(),
                    source: Box::new(AptError::Resolve(Box::new(e))),
                })?;
            installed = resolution.installed_after(&installed);
            layers.push(LockedLayer::from_resolution(
                &lock_layer_name(r, &l.name),
                &resolution,
            ));
        }
    }
    let lock = Lockfile::new(inputs, layers);
    if let Err(e) = save_resolution(&saved, &lock) {
        tracing::warn!("could not keep the resolution in the cache: {e}");
    }
    Ok(lock)
}

/// Writes a resolution atomically (temp file + rename): a killed build leaves none half-written.
fn save_resolution(path: &Path, lock: &Lockfile) -> std::io::Result<()> {
    let dir = path.parent().expect("resolution paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, lock.to_toml().as_bytes())?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
