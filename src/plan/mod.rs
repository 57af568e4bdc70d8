//! From a validated recipe chain to the exact content of every layer and its cache key.
//!
//! Planning reads the sources (names, kinds, contents for hashing) but writes nothing. A layer's
//! cache key covers everything that decides its bytes — paths, kinds, modes, owners, times,
//! content digests, link targets, compression and the layer format version — and nothing else:
//! not the host path of the recipe, not the source files' own mtimes or owners.

mod accounts;
pub mod git;
pub mod packages;
mod sources;
pub mod time;
mod war;

use std::fmt;
use std::path::PathBuf;

pub use packages::{LockMode, lockfile_path};
pub use time::{Clock, TimePolicy};

use crate::cache::Cache;

use crate::digest::{Digest, Hasher};
use crate::image::ContainerConfig;
use crate::layer::{Entry, EntryKind, LayerContents, LayerTree, LowerView, Meta};
use crate::recipe::{ImageSettings, LayerItem, Location, Recipe};

/// Bumped whenever the tar writer's output for the same entries changes.
pub const LAYER_FORMAT_VERSION: &str = "stevedore-layer-v1";

#[derive(Debug)]
pub struct Plan {
    /// The package sets, when the chain has package layers.
    pub lock: Option<crate::apt::Lockfile>,
    /// Settings of the top recipe (the image being built).
    pub image: ImageSettings,
    /// The config after merging the chain, base first.
    pub config: ContainerConfig,
    /// The image's `created` time, seconds since the epoch.
    pub created: u64,
    pub layers: Vec<PlannedLayer>,
}

#[derive(Debug)]
pub struct PlannedLayer {
    pub name: String,
    /// The recipe that declares this layer.
    pub recipe: PathBuf,
    pub location: Location,
    /// What the layer is made of, for `plan` to show.
    pub sources: Vec<String>,
    /// The entries to write; `None` for a package layer already in the cache (its entries were
    /// not planned again: the cached listing stood in for them).
    pub contents: Option<LayerContents>,
    /// The cumulative dpkg status a package layer carries (kept with it in the cache).
    pub status: Option<String>,
    pub key: Digest,
}

/// A problem found while reading a recipe's sources, pointing at the recipe line.
#[derive(Debug)]
pub struct PlanError {
    pub location: Location,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanError {}

impl PlanError {
    pub(crate) fn new(location: &Location, message: impl Into<String>) -> Self {
        PlanError {
            location: location.clone(),
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

pub fn plan(
    recipe: &Recipe,
    time: &TimePolicy,
    cache: &Cache,
    lock_mode: LockMode,
) -> Result<Plan, PlanError> {
    let compression = recipe.image.compression;
    let lock = packages::lock_for(recipe, cache, lock_mode)?;
    let stat = crate::cache::StatCache::load(cache.root());
    let mut lower_status = String::new();
    let mut lower = LowerView::new();
    let mut config = ContainerConfig::default();
    let mut layers = Vec::new();
    let mut top_clock = None;
    for r in recipe.chain() {
        let recipe_start = Location {
            file: r.path.clone(),
            line: 1,
            column: 1,
        };
        let clock = Clock::for_dir(time, &r.dir)
            .map_err(|e| PlanError::new(&recipe_start, e.to_string()))?;
        let implied_dir = Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: clock.generated_time(),
        };
        config.merge(&r.config);
        let declares_accounts = !r.users.is_empty() || !r.groups.is_empty();
        let parent_accounts = match &r.from {
            crate::recipe::Base::Recipe(p) => (p.users.clone(), p.groups.clone()),
            crate::recipe::Base::Scratch => Default::default(),
        };
        if declares_accounts && (r.users.clone(), r.groups.clone()) != parent_accounts {
            let mut tree = LayerTree::new(&lower, implied_dir);
            let location = recipe_start.clone();
            for (path, entry) in
                accounts::account_files(&r.users, &r.groups, clock.generated_time())
            {
                tree.insert(&path, entry)
                    .map_err(|e| PlanError::new(&location, e.to_string()))?;
            }
            let contents = tree
                .finish()
                .map_err(|e| PlanError::new(&location, e.to_string()))?;
            lower.apply(&contents);
            layers.push(PlannedLayer {
                name: "accounts".into(),
                recipe: r.path.clone(),
                location,
                sources: vec!["/etc/passwd and /etc/group from [[users]] and [[groups]]".into()],
                key: layer_key(&contents, &compression.cache_tag()),
                contents: Some(contents),
                status: None,
            });
        }
        for spec in &r.layers {
            if spec.packages.is_some() {
                let locked = lock
                    .as_ref()
                    .and_then(|l| {
                        let name = packages::lock_layer_name(r, &spec.name);
                        l.layers.iter().find(|x| x.name == name)
                    })
                    .ok_or_else(|| {
                        PlanError::new(&spec.location, "the lockfile has no entry for this layer")
                            .help("run `stevedore lock` for this recipe")
                    })?;
                let mut h = Hasher::new();
                h.update(
                    format!(
                        "{LAYER_FORMAT_VERSION}\n{}\n{}\n{}\n",
                        packages::SETUP_RULES_VERSION,
                        compression.cache_tag(),
                        clock.generated_time()
                    )
                    .as_bytes(),
                );
                // What lies below decides mapped paths, parents and the cumulative status.
                for below in &layers {
                    let below: &PlannedLayer = below;
                    h.update(below.key.to_string().as_bytes());
                }
                let mut sorted = locked.packages.clone();
                sorted.sort();
                for p in &sorted {
                    h.update(format!("{} {} {}\n", p.name, p.version, p.sha256).as_bytes());
                }
                let key = h.finish().0;
                // One line per package, with why it is in (as the lock recorded it).
                let mut shown = vec![format!("{} packages", sorted.len())];
                shown.extend(sorted.iter().map(|p| {
                    let why = if p.why.is_empty() { "locked" } else { &p.why };
                    format!("{}={} ({why})", p.name, p.version)
                }));
                let cached = cache.layer_record(&key).and_then(|_| {
                    Some((
                        cache.layer_file(&key, "list")?,
                        cache.layer_file(&key, "status")?,
                    ))
                });
                let (contents, status) = match cached {
                    Some((listing, status)) => {
                        lower
                            .apply_listing(&listing)
                            .map_err(|e| PlanError::new(&spec.location, format!("cache: {e}")))?;
                        (None, status)
                    }
                    None => {
                        let installed =
                            install_locked(&sorted, &lower, &lower_status, &clock, cache)
                                .map_err(|e| PlanError::new(&spec.location, e))?;
                        lower.apply(&installed.contents);
                        (Some(installed.contents), installed.status)
                    }
                };
                lower_status = status.clone();
                layers.push(PlannedLayer {
                    name: spec.name.clone(),
                    recipe: r.path.clone(),
                    location: spec.location.clone(),
                    sources: shown,
                    contents,
                    status: Some(status),
                    key,
                });
                continue;
            }
            if let Some(war) = &spec.war {
                let ctx = sources::SourceContext {
                    clock: &clock,
                    stat: &stat,
                };
                for part in war::layers(war, &spec.name, &mut lower, implied_dir, &ctx)? {
                    layers.push(PlannedLayer {
                        name: part.name,
                        recipe: r.path.clone(),
                        location: spec.location.clone(),
                        sources: part.sources,
                        key: layer_key(&part.contents, &compression.cache_tag()),
                        contents: Some(part.contents),
                        status: None,
                    });
                }
                continue;
            }
            let mut tree = LayerTree::new(&lower, implied_dir);
            let mut shown = Vec::new();
            for item in &spec.items {
                let ctx = sources::SourceContext {
                    clock: &clock,
                    stat: &stat,
                };
                shown.push(sources::add_item(&mut tree, item, &ctx)?);
            }
            let contents = tree.finish().map_err(|e| {
                let at = spec
                    .items
                    .iter()
                    .find_map(|i| match i {
                        LayerItem::Hardlink { location, .. } => Some(location),
                        _ => None,
                    })
                    .unwrap_or(&spec.location);
                PlanError::new(at, e.to_string())
            })?;
            lower.apply(&contents);
            let key = layer_key(&contents, &compression.cache_tag());
            layers.push(PlannedLayer {
                name: spec.name.clone(),
                recipe: r.path.clone(),
                location: spec.location.clone(),
                sources: shown,
                contents: Some(contents),
                status: None,
                key,
            });
        }
        top_clock = Some(clock);
    }
    let clock = top_clock.expect("a chain has at least one recipe");
    let created = clock.default_time();
    let mut image = recipe.image.clone();
    let at = Location {
        file: recipe.path.clone(),
        line: 1,
        column: 1,
    };
    image.tags = image
        .tags
        .iter()
        .map(|t| expand_tag(t, clock.git.as_ref()).map_err(|m| PlanError::new(&at, m)))
        .collect::<Result<_, _>>()?;
    if let Some(git) = &clock.git {
        let mut add = |k: &str, v: String| {
            config.labels.entry(k.to_string()).or_insert(v);
        };
        add("org.opencontainers.image.revision", git.head.to_string());
        add(
            "org.opencontainers.image.created",
            crate::image::rfc3339(created),
        );
        if let Some(url) = &git.remote_url {
            add("org.opencontainers.image.source", url.clone());
        }
    }
    if let Err(e) = stat.save() {
        tracing::warn!("could not save the stat cache: {e}");
    }
    Ok(Plan {
        lock,
        image,
        config,
        created,
        layers,
    })
}

/// Fetches (or finds in the cache) the locked `.deb`s and lays them out as a layer.
fn install_locked(
    packages: &[crate::apt::LockedPackage],
    lower: &LowerView,
    lower_status: &str,
    clock: &Clock,
    cache: &Cache,
) -> Result<crate::rootfs::Installed, String> {
    let fetcher = crate::apt::Fetcher::new(&cache.apt_dir()).map_err(|e| e.to_string())?;
    let wanted: Vec<_> = packages.iter().map(|p| p.wanted()).collect();
    let paths = fetcher
        .fetch_all_blocking(&wanted)
        .map_err(|e| e.to_string())?;
    let files: Vec<crate::rootfs::PackageFile> = packages
        .iter()
        .zip(paths)
        .map(|(p, deb)| crate::rootfs::PackageFile {
            name: p.name.clone(),
            sha256: p.sha256.clone(),
            deb,
        })
        .collect();
    crate::rootfs::install(
        &files,
        lower,
        lower_status,
        true,
        clock.generated_time(),
        cache,
    )
    .map_err(|e| e.to_string())
}

/// Fills `{git.sha}`, `{git.short}`, `{git.branch}` and `{git.tag}` in a tag, and checks the
/// result is a valid tag (branch names may hold `/`, which becomes `-`).
fn expand_tag(tag: &str, git: Option<&git::GitInfo>) -> Result<String, String> {
    if !tag.contains('{') {
        return Ok(tag.to_string());
    }
    let git = git.ok_or_else(|| {
        format!(
            "tag `{tag}` uses git values, but the recipe is not in a git repository with commits"
        )
    })?;
    let mut out = tag.to_string();
    for (name, value) in [
        ("{git.sha}", Some(git.head.to_string())),
        ("{git.short}", Some(git.short())),
        ("{git.branch}", git.branch.clone()),
        ("{git.tag}", git.tag.clone()),
    ] {
        if out.contains(name) {
            let value = value
                .ok_or_else(|| format!("tag `{tag}`: HEAD has no {}", &name[5..name.len() - 1]))?;
            out = out.replace(name, &value.replace('/', "-"));
        }
    }
    let ok = !out.is_empty()
        && out.len() <= 128
        && !out.starts_with(['.', '-'])
        && out
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(out)
    } else {
        Err(format!(
            "tag `{tag}` expands to `{out}`, which is not a valid tag"
        ))
    }
}

/// The cache key of a layer: a digest of a canonical description of its entries.
pub fn layer_key(contents: &LayerContents, compression_tag: &str) -> Digest {
    let mut h = Hasher::new();
    h.update(LAYER_FORMAT_VERSION.as_bytes());
    h.update(b"\n");
    h.update(compression_tag.as_bytes());
    h.update(b"\n");
    for (path, entry) in &contents.entries {
        describe(&mut h, path.as_str(), entry);
    }
    h.finish().0
}

fn describe(h: &mut Hasher, path: &str, entry: &Entry) {
    let m = &entry.meta;
    let kind = match &entry.kind {
        EntryKind::Dir => "d".to_string(),
        EntryKind::File(c) => format!(
            "f {} {}",
            c.size,
            c.digest
                .as_ref()
                .map_or_else(|| "-".to_string(), |d| d.to_string())
        ),
        EntryKind::Symlink { target } => format!("l {}", target.len()),
        EntryKind::Hardlink { target } => format!("h {}", target.as_str().len()),
    };
    // Lengths before free-form strings keep the encoding unambiguous.
    h.update(format!("{} {path}\0{kind}\0", path.len()).as_bytes());
    match &entry.kind {
        EntryKind::Symlink { target } => h.update(target.as_bytes()),
        EntryKind::Hardlink { target } => h.update(target.as_str().as_bytes()),
        _ => {}
    }
    h.update(format!("\0{:o} {} {} {}\n", m.mode, m.uid, m.gid, m.mtime).as_bytes());
}
