//! From a validated recipe chain to the exact content of every layer and its cache key.
//!
//! Planning reads the sources (names, kinds, contents for hashing) but writes nothing. A layer's
//! cache key covers everything that decides its bytes — paths, kinds, modes, owners, times,
//! content digests, link targets, compression and the layer format version — and nothing else:
//! not the host path of the recipe, not the source files' own mtimes or owners.

mod accounts;
mod sources;
pub mod time;

use std::fmt;
use std::path::PathBuf;

pub use time::TimePolicy;

use crate::digest::{Digest, Hasher};
use crate::image::ContainerConfig;
use crate::layer::{Entry, EntryKind, LayerContents, LayerTree, LowerView, Meta};
use crate::recipe::{ImageSettings, LayerItem, Location, Recipe};

/// Bumped whenever the tar writer's output for the same entries changes.
pub const LAYER_FORMAT_VERSION: &str = "stevedore-layer-v1";

#[derive(Debug)]
pub struct Plan {
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
    pub contents: LayerContents,
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

pub fn plan(recipe: &Recipe, time: &TimePolicy) -> Result<Plan, PlanError> {
    let compression = recipe.image.compression;
    let mut lower = LowerView::new();
    let mut config = ContainerConfig::default();
    let mut layers = Vec::new();
    let implied_dir = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: time.epoch(),
    };
    for r in recipe.chain() {
        config.merge(&r.config);
        let declares_accounts = !r.users.is_empty() || !r.groups.is_empty();
        let parent_accounts = match &r.from {
            crate::recipe::Base::Recipe(p) => (p.users.clone(), p.groups.clone()),
            crate::recipe::Base::Scratch => Default::default(),
        };
        if declares_accounts && (r.users.clone(), r.groups.clone()) != parent_accounts {
            let mut tree = LayerTree::new(&lower, implied_dir);
            let location = Location {
                file: r.path.clone(),
                line: 1,
                column: 1,
            };
            for (path, entry) in accounts::account_files(&r.users, &r.groups, time.epoch()) {
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
                contents,
            });
        }
        for spec in &r.layers {
            let mut tree = LayerTree::new(&lower, implied_dir);
            let mut shown = Vec::new();
            for item in &spec.items {
                shown.push(sources::add_item(&mut tree, item, time)?);
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
                contents,
                key,
            });
        }
    }
    Ok(Plan {
        image: recipe.image.clone(),
        config,
        created: time.epoch(),
        layers,
    })
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
        EntryKind::File(c) => format!("f {} {}", c.size, c.digest),
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
