//! From a validated recipe chain to the exact content of every layer and its cache key.
//!
//! Planning reads the sources (names, kinds, contents for hashing) but writes nothing. A layer's
//! cache key covers everything that decides its bytes — paths, kinds, modes, owners, times,
//! content digests, link targets, compression and the layer format version — and nothing else:
//! not the host path of the recipe, not the source files' own mtimes or owners.

mod accounts;
pub mod git;
pub mod packages;
mod prefetch;
mod setup;
mod sources;
pub mod time;
mod war;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use packages::{LockMode, lockfile_path};
pub use time::{Clock, TimePolicy};

use crate::cache::Cache;

use crate::digest::{Digest, Hasher};
use crate::image::{BaseImage, ContainerConfig};
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
    /// The manifest digest of the registry image below `layers`, if any.
    pub base: Option<Digest>,
    pub layers: Vec<PlannedLayer>,
}

impl Plan {
    /// The coverage report of every package layer, base first; `None` without packages.
    pub fn coverage(&self) -> Option<crate::rootfs::setup::coverage::Coverage> {
        let mut all: Option<crate::rootfs::setup::coverage::Coverage> = None;
        for c in self.layers.iter().filter_map(|l| l.coverage.as_ref()) {
            let all = all.get_or_insert_with(Default::default);
            all.commands.extend(c.commands.iter().cloned());
            for n in &c.data_notes {
                if !all.data_notes.contains(n) {
                    all.data_notes.push(n.clone());
                }
            }
        }
        all
    }
}

/// The layers planned so far; pushing one tells the caller it is ready.
struct Ready<'a> {
    layers: Vec<PlannedLayer>,
    ready: &'a mut dyn FnMut(usize, &PlannedLayer),
}

impl Ready<'_> {
    fn push(&mut self, layer: PlannedLayer) {
        tracing::debug!("planned layer {}", layer.name);
        (self.ready)(self.layers.len(), &layer);
        self.layers.push(layer);
    }
}

impl std::ops::Deref for Ready<'_> {
    type Target = [PlannedLayer];
    fn deref(&self) -> &[PlannedLayer] {
        &self.layers
    }
}

#[derive(Clone, Debug)]
pub struct PlannedLayer {
    pub name: String,
    /// The recipe that declares this layer.
    pub recipe: PathBuf,
    pub location: Location,
    /// What the layer is made of, for `plan` to show.
    pub sources: Vec<String>,
    /// The entries to write; `None` for a package layer already in the cache (its entries were
    /// not planned again: the cached listing stood in for them).
    pub contents: Option<Arc<LayerContents>>,
    /// The cumulative dpkg status a package layer carries (kept with it in the cache).
    pub status: Option<String>,
    /// For a package layer: what became of its packages' maintainer scripts.
    pub coverage: Option<crate::rootfs::setup::coverage::Coverage>,
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

/// Plans the recipe's layers. `base` is the registry image the chain is built on (resolved by
/// the caller, see [`Recipe::image_base`]): its config is inherited, and its manifest digest
/// enters every layer key, so a new base never reuses layers planned over the old one.
pub fn plan(
    recipe: &Recipe,
    base: Option<&BaseImage>,
    time: &TimePolicy,
    cache: &Cache,
    lock_mode: LockMode,
) -> Result<Plan, PlanError> {
    plan_with(recipe, base, time, cache, lock_mode, &mut |_, _| {})
}

/// [`plan`], telling `ready` about each layer (with its index) as soon as it is planned, so a
/// builder can write the base layer while the layers above are still being laid out.
pub fn plan_with(
    recipe: &Recipe,
    base: Option<&BaseImage>,
    time: &TimePolicy,
    cache: &Cache,
    lock_mode: LockMode,
    ready: &mut dyn FnMut(usize, &PlannedLayer),
) -> Result<Plan, PlanError> {
    let mut layers = Ready {
        layers: Vec::new(),
        ready,
    };
    let compression = recipe.image.compression;
    let key_tag = match base {
        Some(b) => format!("{} base={}", compression.cache_tag(), b.manifest_digest),
        None => compression.cache_tag(),
    };
    let lock = packages::lock_for(recipe, cache, lock_mode)?;
    let stat = crate::cache::StatCache::load(cache.root());
    let mut lower_status = String::new();
    let mut lower = LowerView::new();
    let mut config = base.map(|b| b.config.clone()).unwrap_or_default();
    let mut top_clock = None;
    let mut chain = setup::SetupChain::new(setup::merged_usr(recipe));
    if let Some(lock) = &lock {
        let mut seen = std::collections::HashSet::new();
        chain.expect(
            lock.layers
                .iter()
                .flat_map(|l| &l.packages)
                .filter(|p| seen.insert(p.sha256.clone()))
                .cloned()
                .collect(),
        );
    }
    let mut chain_users: Vec<crate::rootfs::setup::accounts::ExtraUser> = Vec::new();
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
            crate::recipe::Base::Scratch | crate::recipe::Base::Image(_) => Default::default(),
        };
        let accounts_changed =
            declares_accounts && (r.users.clone(), r.groups.clone()) != parent_accounts;
        if accounts_changed && lock.is_some() {
            // On a package base, accounts go through setup: added to base-passwd's and the
            // packages' accounts, in the recipe's own package layers or a layer of their own.
            for u in &r.users {
                let group = r
                    .groups
                    .iter()
                    .find(|g| g.gid == u.gid)
                    .map_or_else(|| u.name.clone(), |g| g.name.clone());
                chain_users.retain(|x| x.name != u.name);
                chain_users.push(crate::rootfs::setup::accounts::ExtraUser {
                    name: u.name.clone(),
                    uid: Some(u.uid),
                    group: Some(group),
                    gecos: String::new(),
                    home: u.home.clone(),
                    shell: u.shell.clone(),
                });
            }
            if !r.layers.iter().any(|l| l.packages.is_some()) {
                let step = setup::Step {
                    packages: Vec::new(),
                    users: chain_users.clone(),
                    generated: clock.generated_time(),
                    apt_sources: setup::sources_list(&r.sources),
                };
                let layer = setup_layer(
                    "accounts",
                    vec!["/etc/passwd, /etc/group and shadow files with [[users]] added".into()],
                    &recipe_start,
                    r,
                    step,
                    &key_tag,
                    &layers,
                    &mut lower,
                    &mut lower_status,
                    &mut chain,
                    cache,
                )?;
                layers.push(layer);
            }
        } else if accounts_changed {
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
                key: layer_key(&contents, &key_tag),
                contents: Some(Arc::new(contents)),
                status: None,
                coverage: None,
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
                let mut sorted = locked.packages.clone();
                sorted.sort();
                // One line per package, with why it is in (as the lock recorded it).
                let mut shown = vec![format!("{} packages", sorted.len())];
                shown.extend(sorted.iter().map(|p| {
                    let why = if p.why.is_empty() { "locked" } else { &p.why };
                    format!("{}={} ({why})", p.name, p.version)
                }));
                let step = setup::Step {
                    packages: sorted,
                    users: chain_users.clone(),
                    generated: clock.generated_time(),
                    apt_sources: setup::sources_list(&r.sources),
                };
                let layer = setup_layer(
                    &spec.name,
                    shown,
                    &spec.location,
                    r,
                    step,
                    &key_tag,
                    &layers,
                    &mut lower,
                    &mut lower_status,
                    &mut chain,
                    cache,
                )?;
                layers.push(layer);
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
                        key: layer_key(&part.contents, &key_tag),
                        contents: Some(Arc::new(part.contents)),
                        status: None,
                        coverage: None,
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
            if base.is_some() {
                refuse_merged_usr_links(&contents, &spec.location)?;
            }
            lower.apply(&contents);
            let key = layer_key(&contents, &key_tag);
            layers.push(PlannedLayer {
                name: spec.name.clone(),
                recipe: r.path.clone(),
                location: spec.location.clone(),
                sources: shown,
                contents: Some(Arc::new(contents)),
                status: None,
                coverage: None,
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
        // A label the recipes set wins; one inherited from a registry base describes the base's
        // own source, so this build's git facts replace it.
        let set_by_recipes: std::collections::BTreeSet<&String> = recipe
            .chain()
            .iter()
            .flat_map(|r| r.config.labels.keys())
            .collect();
        let mut add = |k: &str, v: String| {
            if !set_by_recipes.contains(&k.to_string()) {
                config.labels.insert(k.to_string(), v);
            }
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
        base: base.map(|b| b.manifest_digest.clone()),
        layers: layers.layers,
    })
}

/// A package layer (or a setup-only accounts layer) of a package chain: its key from what
/// decides its bytes, its contents from the cache's listing on a hit, else built with setup.
#[allow(clippy::too_many_arguments)]
fn setup_layer(
    name: &str,
    shown: Vec<String>,
    location: &Location,
    recipe: &Recipe,
    step: setup::Step,
    compression_tag: &str,
    below: &[PlannedLayer],
    lower: &mut LowerView,
    lower_status: &mut String,
    chain: &mut setup::SetupChain,
    cache: &Cache,
) -> Result<PlannedLayer, PlanError> {
    let mut h = Hasher::new();
    h.update(
        format!(
            "{LAYER_FORMAT_VERSION}\n{}\n{compression_tag}\n{}\nmerged-usr={}\n",
            packages::SETUP_RULES_VERSION,
            step.generated,
            chain.merged()
        )
        .as_bytes(),
    );
    // What lies below decides mapped paths, parents, the cumulative status and setup's input.
    for b in below.iter() {
        h.update(b.key.to_string().as_bytes());
    }
    for p in &step.packages {
        h.update(format!("{} {} {}\n", p.name, p.version, p.sha256).as_bytes());
    }
    h.update(format!("{:?}\n", step.users).as_bytes());
    h.update(step.apt_sources.as_bytes());
    let key = h.finish().0;
    let cached = cache.layer_record(&key).and_then(|_| {
        let coverage = serde_json::from_str(&cache.layer_file(&key, "coverage")?).ok()?;
        Some((
            cache.layer_file(&key, "list")?,
            cache.layer_file(&key, "status")?,
            coverage,
        ))
    });
    let (contents, status, coverage) = match cached {
        Some((listing, status, coverage)) => {
            lower
                .apply_listing(&listing)
                .map_err(|e| PlanError::new(location, format!("cache: {e}")))?;
            chain.defer(step);
            (None, status, coverage)
        }
        None => {
            let built = chain
                .build(&step, lower, lower_status, cache)
                .map_err(|e| PlanError::new(location, e))?;
            lower.apply(&built.contents);
            (Some(Arc::new(built.contents)), built.status, built.coverage)
        }
    };
    *lower_status = status.clone();
    Ok(PlannedLayer {
        name: name.to_owned(),
        recipe: recipe.path.clone(),
        location: location.clone(),
        sources: shown,
        contents,
        status: Some(status),
        coverage: Some(coverage),
        key,
    })
}

/// Over a registry base, whose tree is not read, a layer must not write below `/bin`, `/sbin`
/// or `/lib*`: on merged-/usr bases those are symlinks, and a directory entry in our layer would
/// replace the link and hide `/usr/bin` (with the tree known, the path would be followed).
fn refuse_merged_usr_links(contents: &LayerContents, at: &Location) -> Result<(), PlanError> {
    const LINKS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
    for (path, _) in &contents.entries {
        let p = path.as_str().trim_start_matches('/');
        let top = p.split('/').next().unwrap_or("");
        if LINKS.contains(&top) {
            return Err(PlanError::new(
                at,
                format!("/{p}: writing below /{top} over a registry base is not supported yet"),
            )
            .help(format!(
                "write the /usr/{top}/… path: on merged-/usr bases /{top} is a symlink, and the base's tree is not read"
            )));
        }
    }
    Ok(())
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
