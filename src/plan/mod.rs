//! From a validated recipe chain to the exact content of every layer and its cache key.
//!
//! Planning reads the sources (names, kinds, contents for hashing) but writes nothing. A layer's
//! cache key covers everything that decides its bytes — paths, kinds, modes, owners, times,
//! content digests, link targets, compression and the layer format version — and nothing else:
//! not the host path of the recipe, not the source files' own mtimes or owners.

mod accounts;
mod error;
pub mod git;
pub mod packages;
mod prefetch;
mod setup;
mod sources;
pub mod time;
mod war;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::PlanError;
pub use packages::{LockMode, lockfile_path};
pub use setup::StepError;
pub use time::{Clock, TimePolicy};

use crate::cache::Cache;

use crate::apt::LockedPackage;
use crate::digest::{Digest, Hasher};
use crate::image::{BaseImage, ContainerConfig};
use crate::layer::{Entry, EntryKind, LayerContents, LayerTree, LowerView, Meta};
use crate::recipe::{ImageSettings, LayerItem, LayerSpec, Location, Recipe, WarItem};
use crate::rootfs::base::BaseTree;
use crate::rootfs::setup::accounts::ExtraUser;

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

/// What names a planned layer and where it comes from.
struct LayerOrigin {
    name: String,
    recipe: PathBuf,
    location: Location,
    /// What the layer is made of, for `plan` to show.
    sources: Vec<String>,
}

/// What a package layer carries besides its entries.
struct PackageState {
    status: String,
    coverage: crate::rootfs::setup::coverage::Coverage,
}

impl PlannedLayer {
    /// The one constructor: every kind of layer is an origin, a key and (unless a cached
    /// package layer) its contents; package layers add their dpkg status and script coverage.
    fn new(
        origin: LayerOrigin,
        key: Digest,
        contents: Option<Arc<LayerContents>>,
        package: Option<PackageState>,
    ) -> PlannedLayer {
        let (status, coverage) = match package {
            Some(p) => (Some(p.status), Some(p.coverage)),
            None => (None, None),
        };
        PlannedLayer {
            name: origin.name,
            recipe: origin.recipe,
            location: origin.location,
            sources: origin.sources,
            contents,
            status,
            coverage,
            key,
        }
    }
}

/// The registry image a chain is built on, as planning sees it.
#[derive(Clone, Copy, Debug)]
pub struct PlanBase<'a> {
    pub image: &'a BaseImage,
    /// Its merged tree and dpkg database, read from its layers when the chain puts package
    /// layers or accounts on it: the resolver, setup and every layer above continue from it.
    pub tree: Option<&'a BaseTree>,
}

/// Plans the recipe's layers. `base` is the registry image the chain is built on (resolved by
/// the caller, see [`Recipe::image_base`]): its config is inherited, and its manifest digest
/// enters every layer key, so a new base never reuses layers planned over the old one.
pub fn plan(
    recipe: &Recipe,
    base: Option<PlanBase<'_>>,
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
    base: Option<PlanBase<'_>>,
    time: &TimePolicy,
    cache: &Cache,
    lock_mode: LockMode,
    ready: &mut dyn FnMut(usize, &PlannedLayer),
) -> Result<Plan, PlanError> {
    let lock = packages::lock_for(recipe, cache, lock_mode, packages::BaseState::of(base))?;
    let mut planner = Planner::new(recipe, base, cache, lock, ready);
    let mut config = base.map(|b| b.image.config.clone()).unwrap_or_default();
    let mut top_clock = None;
    for r in recipe.chain() {
        let at = RecipeAt::new(r, time)?;
        config.merge(&r.config);
        planner.accounts(&at)?;
        for spec in &r.layers {
            planner.layer(&at, spec)?;
        }
        top_clock = Some(at.clock);
    }
    let clock = top_clock.expect("a chain has at least one recipe");
    let mut plan = planner.finish(recipe, config, &clock)?;
    plan.base = base.map(|b| b.image.manifest_digest.clone());
    Ok(plan)
}

/// One recipe of the chain as the planner sees it: its clock, and the metadata of the folders
/// its layers imply.
struct RecipeAt<'r> {
    recipe: &'r Recipe,
    clock: Clock,
    implied_dir: Meta,
    /// The recipe's first line, for what concerns the recipe as a whole.
    start: Location,
}

impl<'r> RecipeAt<'r> {
    fn new(recipe: &'r Recipe, time: &TimePolicy) -> Result<Self, PlanError> {
        let start = Location {
            file: recipe.path.clone(),
            line: 1,
            column: 1,
        };
        let clock = Clock::for_dir(time, &recipe.dir).map_err(|source| PlanError::Git {
            location: start.clone(),
            source,
        })?;
        let implied_dir = Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: clock.generated_time(),
        };
        Ok(RecipeAt {
            recipe,
            clock,
            implied_dir,
            start,
        })
    }

    fn origin(&self, name: &str, location: &Location, sources: Vec<String>) -> LayerOrigin {
        LayerOrigin {
            name: name.to_owned(),
            recipe: self.recipe.path.clone(),
            location: location.clone(),
            sources,
        }
    }

    /// A setup step of this recipe: its packages, the accounts so far, its sources list.
    fn step(&self, packages: Vec<LockedPackage>, users: &[ExtraUser]) -> setup::Step {
        setup::Step {
            packages,
            users: users.to_vec(),
            generated: self.clock.generated_time(),
            apt_sources: setup::sources_list(&self.recipe.sources),
        }
    }
}

/// The state of planning a chain, layer by layer: what lies below, setup's running state, and
/// the layers planned so far. One method per kind of layer.
struct Planner<'a> {
    over_registry_base: bool,
    /// The registry base's tree is known (`lower` holds it): paths map through its symlinks,
    /// and accounts go through setup over its `/etc/passwd`.
    base_tree: bool,
    cache: &'a Cache,
    /// The compression (and base image) every layer key includes.
    key_tag: String,
    lock: Option<crate::apt::Lockfile>,
    stat: crate::cache::StatCache,
    /// The layers below, as far as mapping paths needs.
    lower: LowerView,
    /// The cumulative dpkg status of the package layers below.
    lower_status: String,
    chain: setup::SetupChain,
    /// The users the recipes declare so far, for setup (on a package base).
    chain_users: Vec<ExtraUser>,
    layers: Ready<'a>,
}

impl<'a> Planner<'a> {
    fn new(
        recipe: &Recipe,
        base: Option<PlanBase<'_>>,
        cache: &'a Cache,
        lock: Option<crate::apt::Lockfile>,
        ready: &'a mut dyn FnMut(usize, &PlannedLayer),
    ) -> Self {
        let compression = recipe.image.compression;
        let key_tag = match base {
            Some(b) => format!(
                "{} base={}",
                compression.cache_tag(),
                b.image.manifest_digest
            ),
            None => compression.cache_tag(),
        };
        let tree = base.and_then(|b| b.tree);
        let mut chain = setup::SetupChain::new(setup::merged_usr(recipe));
        let mut lower = LowerView::new();
        let mut lower_status = String::new();
        if let Some(t) = tree {
            // The base's tree is the first "layer below": its symlinks and parents' metadata
            // shape every layer above, and its dpkg status is where the database continues.
            lower.apply(&LayerContents {
                entries: t.entries.clone(),
            });
            lower_status = t.status.clone().unwrap_or_default();
            chain.start_from(t);
        }
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
        Planner {
            over_registry_base: base.is_some(),
            base_tree: tree.is_some(),
            cache,
            key_tag,
            lock,
            stat: crate::cache::StatCache::load(cache.root()),
            lower,
            lower_status,
            chain,
            chain_users: Vec::new(),
            layers: Ready {
                layers: Vec::new(),
                ready,
            },
        }
    }

    /// One `[[layers]]` entry of a recipe.
    fn layer(&mut self, at: &RecipeAt, spec: &LayerSpec) -> Result<(), PlanError> {
        if spec.packages.is_some() {
            return self.packages(at, spec);
        }
        if let Some(war) = &spec.war {
            return self.war(at, spec, war);
        }
        self.files(at, spec)
    }

    /// The accounts a recipe declares, when they differ from its parent's: through setup on a
    /// package base (added to base-passwd's and the packages' accounts, in the recipe's own
    /// package layers or a layer of their own), else as a small layer of `/etc/passwd` and
    /// `/etc/group`.
    fn accounts(&mut self, at: &RecipeAt) -> Result<(), PlanError> {
        let r = at.recipe;
        let declares_accounts = !r.users.is_empty() || !r.groups.is_empty();
        let parent_accounts = match &r.from {
            crate::recipe::Base::Recipe(p) => (p.users.clone(), p.groups.clone()),
            crate::recipe::Base::Scratch | crate::recipe::Base::Image(_) => Default::default(),
        };
        let changed = declares_accounts && (r.users.clone(), r.groups.clone()) != parent_accounts;
        match (changed, self.lock.is_some() || self.base_tree) {
            (false, _) => Ok(()),
            (true, true) => self.setup_accounts(at),
            (true, false) => self.account_files(at),
        }
    }

    fn setup_accounts(&mut self, at: &RecipeAt) -> Result<(), PlanError> {
        let r = at.recipe;
        for u in &r.users {
            let group = r
                .groups
                .iter()
                .find(|g| g.gid == u.gid)
                .map_or_else(|| u.name.clone(), |g| g.name.clone());
            self.chain_users.retain(|x| x.name != u.name);
            self.chain_users.push(ExtraUser {
                name: u.name.clone(),
                uid: Some(u.uid),
                group: Some(group),
                gecos: String::new(),
                home: u.home.clone(),
                shell: u.shell.clone(),
            });
        }
        if r.layers.iter().any(|l| l.packages.is_some()) {
            return Ok(()); // setup adds them in the recipe's own package layers
        }
        let origin = at.origin(
            "accounts",
            &at.start,
            vec!["/etc/passwd, /etc/group and shadow files with [[users]] added".into()],
        );
        let step = at.step(Vec::new(), &self.chain_users);
        let layer = self.setup_layer(origin, step)?;
        self.layers.push(layer);
        Ok(())
    }

    fn account_files(&mut self, at: &RecipeAt) -> Result<(), PlanError> {
        let r = at.recipe;
        let tree_err = |source| PlanError::Tree {
            location: at.start.clone(),
            source: Box::new(source),
        };
        let mut tree = LayerTree::new(&self.lower, at.implied_dir);
        for (path, entry) in accounts::account_files(&r.users, &r.groups, at.clock.generated_time())
        {
            tree.insert(&path, entry).map_err(tree_err)?;
        }
        let contents = tree.finish().map_err(tree_err)?;
        self.lower.apply(&contents);
        let origin = at.origin(
            "accounts",
            &at.start,
            vec!["/etc/passwd and /etc/group from [[users]] and [[groups]]".into()],
        );
        self.push_files(origin, contents);
        Ok(())
    }

    /// A package layer: the lockfile's packages for it, laid out and set up.
    fn packages(&mut self, at: &RecipeAt, spec: &LayerSpec) -> Result<(), PlanError> {
        let name = packages::lock_layer_name(at.recipe, &spec.name);
        let locked = self
            .lock
            .as_ref()
            .and_then(|l| l.layers.iter().find(|x| x.name == name))
            .ok_or_else(|| PlanError::NotLocked {
                location: spec.location.clone(),
            })?;
        let mut sorted = locked.packages.clone();
        sorted.sort();
        // One line per package, with why it is in (as the lock recorded it).
        let mut shown = vec![format!("{} packages", sorted.len())];
        shown.extend(sorted.iter().map(|p| {
            let why = if p.why.is_empty() { "locked" } else { &p.why };
            format!("{}={} ({why})", p.name, p.version)
        }));
        let step = at.step(sorted, &self.chain_users);
        let layer = self.setup_layer(at.origin(&spec.name, &spec.location, shown), step)?;
        self.layers.push(layer);
        Ok(())
    }

    /// The layers of an exploded WAR (each applied to `lower` as it is planned).
    fn war(&mut self, at: &RecipeAt, spec: &LayerSpec, war: &WarItem) -> Result<(), PlanError> {
        let ctx = sources::SourceContext {
            clock: &at.clock,
            stat: &self.stat,
        };
        for part in war::layers(war, &spec.name, &mut self.lower, at.implied_dir, &ctx)? {
            let origin = at.origin(&part.name, &spec.location, part.sources);
            self.push_files(origin, part.contents);
        }
        Ok(())
    }

    /// A layer of the files, folders and links the recipe lists.
    fn files(&mut self, at: &RecipeAt, spec: &LayerSpec) -> Result<(), PlanError> {
        let ctx = sources::SourceContext {
            clock: &at.clock,
            stat: &self.stat,
        };
        let mut tree = LayerTree::new(&self.lower, at.implied_dir);
        let mut shown = Vec::new();
        for item in &spec.items {
            shown.push(sources::add_item(&mut tree, item, &ctx)?);
        }
        let contents = tree.finish().map_err(|source| {
            // A hard link's target is what can be missing: name its line.
            let location = spec
                .items
                .iter()
                .find_map(|i| match i {
                    LayerItem::Hardlink { location, .. } => Some(location),
                    _ => None,
                })
                .unwrap_or(&spec.location)
                .clone();
            PlanError::Tree {
                location,
                source: Box::new(source),
            }
        })?;
        if self.over_registry_base && !self.base_tree {
            refuse_merged_usr_links(&contents, &spec.location)?;
        }
        self.lower.apply(&contents);
        self.push_files(at.origin(&spec.name, &spec.location, shown), contents);
        Ok(())
    }

    /// A layer of files (already applied to `lower`): its key from its entries.
    fn push_files(&mut self, origin: LayerOrigin, contents: LayerContents) {
        let key = layer_key(&contents, &self.key_tag);
        let layer = PlannedLayer::new(origin, key, Some(Arc::new(contents)), None);
        self.layers.push(layer);
    }

    /// A package layer (or a setup-only accounts layer) of a package chain: its key from what
    /// decides its bytes, its contents from the cache's listing on a hit, else built with setup.
    fn setup_layer(
        &mut self,
        origin: LayerOrigin,
        step: setup::Step,
    ) -> Result<PlannedLayer, PlanError> {
        let key = self.setup_key(&step);
        let cached = self.cache.known_layer(&key).and_then(|_| {
            let coverage = serde_json::from_str(&self.cache.layer_file(&key, "coverage")?).ok()?;
            Some((
                self.cache.layer_file(&key, "list")?,
                self.cache.layer_file(&key, "status")?,
                coverage,
            ))
        });
        let (contents, state) = match cached {
            Some((listing, status, coverage)) => {
                self.lower
                    .apply_listing(&listing)
                    .map_err(|detail| PlanError::CachedListing {
                        location: origin.location.clone(),
                        detail,
                    })?;
                self.chain.defer(step);
                (None, PackageState { status, coverage })
            }
            None => {
                let built = self
                    .chain
                    .build(&step, &self.lower, &self.lower_status, self.cache)
                    .map_err(|source| PlanError::Packages {
                        location: origin.location.clone(),
                        source: Box::new(source),
                    })?;
                self.lower.apply(&built.contents);
                let state = PackageState {
                    status: built.status,
                    coverage: built.coverage,
                };
                (Some(Arc::new(built.contents)), state)
            }
        };
        self.lower_status = state.status.clone();
        Ok(PlannedLayer::new(origin, key, contents, Some(state)))
    }

    /// The cache key of a setup step: the rules, times and layout, every layer below (mapped
    /// paths, parents, the cumulative status and setup's input depend on them), the packages,
    /// the accounts and the sources list.
    fn setup_key(&self, step: &setup::Step) -> Digest {
        let mut h = Hasher::new();
        h.update(
            format!(
                "{LAYER_FORMAT_VERSION}\n{}\n{}\n{}\nmerged-usr={}\n",
                packages::SETUP_RULES_VERSION,
                self.key_tag,
                step.generated,
                self.chain.merged()
            )
            .as_bytes(),
        );
        for b in self.layers.iter() {
            h.update(b.key.to_string().as_bytes());
        }
        for p in &step.packages {
            h.update(format!("{} {} {}\n", p.name, p.version, p.sha256).as_bytes());
        }
        h.update(format!("{:?}\n", step.users).as_bytes());
        h.update(step.apt_sources.as_bytes());
        h.finish().0
    }

    /// The plan once every recipe is planned: the top recipe's image settings with its tags
    /// filled in, and the config with the build's git facts.
    fn finish(
        self,
        recipe: &Recipe,
        mut config: ContainerConfig,
        clock: &Clock,
    ) -> Result<Plan, PlanError> {
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
            .map(|t| {
                expand_tag(t, clock.git.as_ref()).map_err(|message| PlanError::Tag {
                    location: at.clone(),
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        if let Some(git) = &clock.git {
            add_git_labels(recipe, &mut config, git, created);
        }
        if let Err(e) = self.stat.save() {
            tracing::warn!("could not save the stat cache: {e}");
        }
        Ok(Plan {
            lock: self.lock,
            image,
            config,
            created,
            base: None,
            layers: self.layers.layers,
        })
    }
}

/// The OCI labels of the build's git facts. A label the recipes set wins; one inherited from a
/// registry base describes the base's own source, so this build's git facts replace it.
fn add_git_labels(recipe: &Recipe, config: &mut ContainerConfig, git: &git::GitInfo, created: u64) {
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

/// Over a registry base, whose tree is not read, a layer must not write below `/bin`, `/sbin`
/// or `/lib*`: on merged-/usr bases those are symlinks, and a directory entry in our layer would
/// replace the link and hide `/usr/bin` (with the tree known, the path would be followed).
fn refuse_merged_usr_links(contents: &LayerContents, at: &Location) -> Result<(), PlanError> {
    const LINKS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
    for (path, _) in &contents.entries {
        let p = path.as_str().trim_start_matches('/');
        let top = p.split('/').next().unwrap_or("");
        if LINKS.contains(&top) {
            return Err(PlanError::MergedUsrLink {
                location: at.clone(),
                path: p.to_string(),
                top: top.to_string(),
            });
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
