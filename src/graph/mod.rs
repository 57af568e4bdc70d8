//! `stevedore graph`: the layer graph of one or several recipes, without building anything.
//!
//! Each recipe is planned as `stevedore plan` plans it ([`crate::build::load_plan`]); which
//! layers are cached, and their blob digests and sizes, come from the cache's layer records.
//! The graph has two kinds of nodes:
//! - **layers**, each a layer *at its place in a stack*: its id is derived from the chain of
//!   cache keys (or, for a registry base, blob digests) from the bottom up to it, as OCI's
//!   ChainID is from diff_ids. Two apps on one base share the base's nodes because their stacks
//!   start with the same keys; the same blob on two different parents is two nodes, so every
//!   layer has one parent and the graph is the stacking tree `docker images -viz` drew.
//! - **images**: every recipe of each chain (an intermediate recipe is an image of its own
//!   that other recipes are built `from`) and the registry image a chain starts from, by its
//!   pinned manifest digest. An image points at its top layer and at the image it is `from`.
//!
//! Ids are short hex digests of what identifies the node, so the output is the same for the
//! same inputs whatever order things were found in; nodes and edges are written sorted.
//!
//! Output: DOT ([`to_dot`]), JSON (the [`Graph`] serialised), or SVG through graphviz's `dot`
//! ([`to_svg`]).

mod dot;
mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::build::{self, BuildError};
use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::image::{BaseImage, ImageError};
use crate::plan::{LockMode, PlannedLayer};
use crate::recipe::{self, Recipe, RecipeError};
use crate::registry::RegistryOptions;

pub use dot::to_dot;
pub use svg::to_svg;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{0}")]
    Recipe(#[from] RecipeError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("{0}")]
    Cache(#[from] CacheError),
    /// The plan named a base manifest that the cache does not hold (planning stores it).
    #[error("base image {digest}: its {document} is not in the cache {}; run `stevedore plan` again", .cache.display())]
    BaseNotCached {
        digest: Digest,
        document: &'static str,
        cache: PathBuf,
    },
    #[error("{0}")]
    BaseImage(#[from] ImageError),
    #[error(
        "--format svg needs graphviz's `dot`, which is not installed: install it with `apt-get install graphviz` (or use --format dot and render it elsewhere)"
    )]
    DotMissing,
    #[error("graphviz's `dot` failed: {detail}")]
    Dot { detail: String },
}

/// How the graph is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Dot,
    Json,
    Svg,
}

impl Format {
    /// The names `--format` takes.
    pub const NAMES: [&'static str; 3] = ["dot", "json", "svg"];
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "dot" => Ok(Format::Dot),
            "json" => Ok(Format::Json),
            "svg" => Ok(Format::Svg),
            other => Err(format!("unknown graph format `{other}` (dot, json or svg)")),
        }
    }
}

/// Whether a layer's blob exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerState {
    /// Built before: the cache has its record and blob.
    Cached,
    /// A build would make it.
    ToBuild,
    /// A layer of a registry base: never built, pulled or mounted from the registry.
    Registry,
}

/// One layer at its place in a stack.
#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    pub id: String,
    /// The recipe's layer name; `layer N` for a registry base's layers.
    pub name: String,
    /// The recipe that declares it (as given on the command line or reached by `from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// The layer's cache key (recipe layers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The layer below it.
    pub parent: Option<String>,
    pub state: LayerState,
    /// The blob's digest and compressed size, when known (cached and registry layers).
    pub digest: Option<String>,
    pub size: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    Recipe,
    Registry,
}

/// An image: a recipe of a chain, or the registry image a chain starts from.
#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub id: String,
    pub kind: ImageKind,
    /// `name:tag` of each tag (recipe images; empty when the recipe names no image), or the
    /// registry reference as the recipe wrote it.
    pub names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// The registry image's manifest digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Given on the command line (not only reached through `from`).
    pub requested: bool,
    /// The image it is built `from`.
    pub from: Option<String>,
    /// Its whole stack, bottom first.
    pub layers: Vec<String>,
}

/// The layer graph of some recipes.
#[derive(Debug, Default, Serialize)]
pub struct Graph {
    pub images: Vec<Image>,
    pub layers: Vec<Layer>,
}

/// The graph of `recipes`, planned against `cache` (nothing is built).
pub fn graph(
    recipes: &[PathBuf],
    cache: &Cache,
    registry: &RegistryOptions,
) -> Result<Graph, GraphError> {
    let mut b = Builder::default();
    for path in recipes {
        b.add(path, cache, registry)?;
    }
    Ok(Graph {
        images: b.images.into_values().collect(),
        layers: b.layers.into_values().collect(),
    })
}

/// Plans `recipes` and writes their graph in `format`: what `stevedore graph` prints.
pub fn render(
    recipes: &[PathBuf],
    cache: &Cache,
    registry: &RegistryOptions,
    format: Format,
) -> Result<Vec<u8>, GraphError> {
    let g = graph(recipes, cache, registry)?;
    match format {
        Format::Dot => Ok(to_dot(&g).into_bytes()),
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(&g).expect("the graph always serialises");
            v.push(b'\n');
            Ok(v)
        }
        Format::Svg => to_svg(&to_dot(&g)),
    }
}

/// A short id: a letter for the kind of node, then 16 hex digits of what identifies it.
fn node_id(kind: char, identity: &str) -> String {
    format!("{kind}{}", &Digest::of(identity.as_bytes()).hex()[..16])
}

/// A stack being walked up: its layer ids and the chain digest of its top.
#[derive(Default)]
struct Stack {
    ids: Vec<String>,
    chain: String,
}

impl Stack {
    /// Puts a layer identified by `what` (a key or blob digest) on top; returns its id and
    /// the id of the layer below.
    fn push(&mut self, what: &str) -> (String, Option<String>) {
        self.chain = Digest::of(format!("{}\n{what}", self.chain).as_bytes()).to_string();
        let id = node_id('l', &self.chain);
        let parent = self.ids.last().cloned();
        self.ids.push(id.clone());
        (id, parent)
    }
}

#[derive(Default)]
struct Builder {
    images: BTreeMap<String, Image>,
    layers: BTreeMap<String, Layer>,
}

impl Builder {
    fn add(
        &mut self,
        path: &Path,
        cache: &Cache,
        registry: &RegistryOptions,
    ) -> Result<(), GraphError> {
        let recipe = recipe::load(path)?;
        let plan = build::load_plan(path, cache, LockMode::Prefer, registry)?;
        let mut stack = Stack::default();
        let mut from = match (&plan.base, recipe.image_base()) {
            (Some(digest), Some(base)) => {
                Some(self.registry_base(&base.reference.to_string(), digest, cache, &mut stack)?)
            }
            _ => None,
        };
        let chain = recipe.chain();
        let top = chain.len() - 1;
        for (i, r) in chain.into_iter().enumerate() {
            for l in plan.layers.iter().filter(|l| l.recipe == r.path) {
                self.recipe_layer(l, r, &mut stack, cache);
            }
            from = Some(self.recipe_image(r, &stack, from.take(), i == top));
        }
        Ok(())
    }

    fn recipe_layer(&mut self, l: &PlannedLayer, r: &Recipe, stack: &mut Stack, cache: &Cache) {
        let (id, parent) = stack.push(&format!("key {}", l.key));
        let record = cache.layer_record(&l.key);
        self.layers.entry(id.clone()).or_insert_with(|| Layer {
            id,
            name: l.name.clone(),
            recipe: Some(r.path.display().to_string()),
            key: Some(l.key.to_string()),
            parent,
            state: if record.is_some() {
                LayerState::Cached
            } else {
                LayerState::ToBuild
            },
            digest: record.as_ref().map(|r| r.digest.to_string()),
            size: record.map(|r| r.size),
        });
    }

    /// The image node of one recipe of a chain, on top of `stack`. Its id covers the recipe
    /// file and its stack: the same recipe reached twice is one node, unless its stack differs
    /// (a registry base pinned differently by two lockfiles).
    fn recipe_image(
        &mut self,
        r: &Recipe,
        stack: &Stack,
        from: Option<String>,
        requested: bool,
    ) -> String {
        let file = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
        let id = node_id('i', &format!("{}\n{}", file.display(), stack.chain));
        let image = self.images.entry(id.clone()).or_insert_with(|| Image {
            id: id.clone(),
            kind: ImageKind::Recipe,
            names: r
                .image
                .name
                .iter()
                .flat_map(|n| r.image.tags.iter().map(move |t| format!("{n}:{t}")))
                .collect(),
            recipe: Some(r.path.display().to_string()),
            digest: None,
            requested: false,
            from,
            layers: stack.ids.clone(),
        });
        image.requested |= requested;
        id
    }

    /// The registry image a chain starts from, and its layers (from the manifest and config
    /// that planning put in the cache).
    fn registry_base(
        &mut self,
        reference: &str,
        digest: &Digest,
        cache: &Cache,
        stack: &mut Stack,
    ) -> Result<String, GraphError> {
        let image = cached_base(digest, cache)?;
        for (n, l) in image.layers.iter().enumerate() {
            let (id, parent) = stack.push(&format!("blob {}", l.digest));
            self.layers.entry(id.clone()).or_insert_with(|| Layer {
                id,
                name: format!("layer {}", n + 1),
                recipe: None,
                key: None,
                parent,
                state: LayerState::Registry,
                digest: Some(l.digest.to_string()),
                size: Some(l.size),
            });
        }
        let id = node_id('r', &digest.to_string());
        self.images.entry(id.clone()).or_insert_with(|| Image {
            id: id.clone(),
            kind: ImageKind::Registry,
            names: vec![reference.to_string()],
            recipe: None,
            digest: Some(digest.to_string()),
            requested: false,
            from: None,
            layers: stack.ids.clone(),
        });
        Ok(id)
    }
}

/// The base image's manifest and config as planning left them in the cache, re-verified.
fn cached_base(digest: &Digest, cache: &Cache) -> Result<BaseImage, GraphError> {
    let read = |d: &Digest, document| {
        cache
            .read_blob(d)
            .ok()
            .filter(|b| Digest::of(b) == *d)
            .ok_or_else(|| GraphError::BaseNotCached {
                digest: digest.clone(),
                document,
                cache: cache.root().to_path_buf(),
            })
    };
    let manifest = read(digest, "manifest")?;
    let parsed =
        crate::oci::Manifest::parse(&manifest).map_err(|source| ImageError::BaseDocument {
            digest: digest.clone(),
            document: "manifest",
            source,
        })?;
    let config = read(&parsed.config.digest, "config")?;
    Ok(BaseImage::parse(digest.clone(), &manifest, &config)?)
}
