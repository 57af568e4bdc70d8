//! The validated recipe: what the rest of the pipeline consumes. Every value here has been
//! checked; every item keeps its [`Location`] so later stages (which read the file system) can
//! still point at the recipe line that asked for it.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::image::{ContainerConfig, Healthcheck, ImageFormat, Platform};
pub use crate::image_path::ImagePath;
pub use crate::layer::Compression;

pub use super::diagnostic::Location;

/// One recipe and, through `from`, the chain of recipes below it.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The recipe file, as given (not canonicalised, so messages show what the user typed).
    pub path: PathBuf,
    /// The folder file sources are resolved against (`context`, default the recipe's), canonicalised.
    pub dir: PathBuf,
    pub from: Base,
    pub image: ImageSettings,
    pub config: ContainerConfig,
    /// apt sources for package layers (inherited from the base when the recipe has none).
    pub sources: Vec<AptSource>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub layers: Vec<LayerSpec>,
}

/// One apt archive: mirrors (fallbacks of each other), suites and components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub mirrors: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Absolute path of the keyring file. `None` without `allow_unsigned`: the mirrors are
    /// Debian's or Ubuntu's (checked when the recipe was read) and their built-in keyring
    /// verifies them ([`crate::apt::keyrings`]).
    pub keyring: Option<PathBuf>,
    pub allow_unsigned: bool,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub enum Base {
    Scratch,
    Recipe(Box<Recipe>),
    /// An image in a registry (`host[:port]/repo:tag[@sha256:…]`), resolved at build time.
    Image(ImageBase),
}

/// A registry image as the bottom of a chain.
#[derive(Clone, Debug)]
pub struct ImageBase {
    pub reference: crate::registry::Reference,
    /// The `from` value, for errors that must name the recipe line.
    pub location: Location,
}

impl Recipe {
    /// The chain from the bottom-most recipe to this one.
    pub fn chain(&self) -> Vec<&Recipe> {
        let mut out = vec![self];
        let mut cur = self;
        while let Base::Recipe(parent) = &cur.from {
            out.push(parent);
            cur = parent;
        }
        out.reverse();
        out
    }

    /// The recipe and its chain of base recipes, all for `platform` alone (the recipe the
    /// single-platform pipeline builds, once per platform of a multi-platform recipe).
    pub fn for_platform(&self, platform: &Platform) -> Recipe {
        let mut out = self.clone();
        out.set_platforms(std::slice::from_ref(platform));
        out
    }

    /// Sets the platforms of the recipe and the platform of every base recipe below it
    /// (`platforms` must not be empty; the caller checked them against
    /// [`Recipe::platform_conflict`]). A base recipe that names its platforms keeps that list
    /// (what a later `--platform` is checked against); one that names none follows.
    pub(crate) fn set_platforms(&mut self, platforms: &[Platform]) {
        self.image.platforms = platforms.to_vec();
        let mut cur = self;
        loop {
            cur.image.platform = platforms[0].clone();
            if !cur.image.platform_explicit {
                cur.image.platforms = platforms.to_vec();
            }
            match &mut cur.from {
                Base::Recipe(parent) => cur = parent,
                _ => return,
            }
        }
    }

    /// The first of `platforms` that a base recipe (not this one) which names its platforms
    /// does not build, with that recipe's path and platforms.
    pub fn platform_conflict(
        &self,
        platforms: &[Platform],
    ) -> Option<(Platform, PathBuf, Vec<Platform>)> {
        let chain = self.chain();
        let bases = &chain[..chain.len() - 1];
        bases
            .iter()
            .filter(|r| r.image.platform_explicit)
            .find_map(|r| {
                platforms
                    .iter()
                    .find(|p| {
                        !r.image
                            .platforms
                            .iter()
                            .any(|have| have.normalized() == p.normalized())
                    })
                    .map(|p| (p.clone(), r.path.clone(), r.image.platforms.clone()))
            })
    }

    /// The registry image the whole chain is built on, if its bottom recipe names one.
    pub fn image_base(&self) -> Option<&ImageBase> {
        match &self.chain()[0].from {
            Base::Image(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ImageSettings {
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub format: ImageFormat,
    pub compression: Compression,
    /// The platform this recipe's layers are built for: the first of `platforms`.
    pub platform: Platform,
    /// Every platform the recipe is built for (one image each; with several, an image index
    /// over them). Never empty; `platform` is its first.
    pub platforms: Vec<Platform>,
    /// `platform(s)` was written in this recipe or inherited from a base recipe that wrote it:
    /// a recipe built on it must stay within its set. A recipe that never names one follows
    /// the recipe built on it (default: the host's platform).
    pub platform_explicit: bool,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub name: String,
    pub location: Location,
    pub items: Vec<LayerItem>,
    /// Set for a package layer (which then has no file items).
    pub packages: Option<PackageSet>,
    /// Set for an exploded WAR (which then has no other items): it becomes up to four layers.
    pub war: Option<WarItem>,
}

/// A WAR unzipped under `dest`. Its entries are split into `<layer>-libs`,
/// `<layer>-snapshots`, `<layer>-resources` and `<layer>-classes` (see `plan::war`).
#[derive(Clone, Debug)]
pub struct WarItem {
    /// As written in the recipe, relative to the recipe's folder.
    pub src: String,
    /// The WAR's absolute host path.
    pub path: PathBuf,
    pub dest: ImagePath,
    /// Mode of every file.
    pub mode: u32,
    /// Mode of the folders the WAR creates (`dest` and below).
    pub dir_mode: u32,
    pub owner: Owner,
    /// Largest total uncompressed size of its entries (`max-size`).
    pub max_size: u64,
    pub location: Location,
}

impl WarItem {
    /// The layers a WAR can become, in order, as suffixes of the recipe layer's name.
    pub const LAYER_SUFFIXES: [&str; 4] = ["libs", "snapshots", "resources", "classes"];
    /// The default `max-size`: 4 GiB uncompressed. Real WARs are tens to hundreds of MiB (a
    /// large enterprise one about 1 GiB), and 4 GiB is what a zip without its 64-bit extension
    /// can declare; a WAR over it is far more likely a mistake or a bomb than an application,
    /// and the recipe can raise the limit for one that is not.
    pub const DEFAULT_MAX_SIZE: u64 = 4 << 30;
}

/// What a package layer asks apt for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSet {
    pub names: Vec<String>,
    pub minbase: bool,
    pub recommends: bool,
    /// `/bin`, `/sbin`, `/lib*` → `usr/…` (the first package layer of a chain decides).
    pub merged_usr: bool,
}

#[derive(Clone, Debug)]
pub enum LayerItem {
    Files(FilesItem),
    Dir {
        path: ImagePath,
        mode: u32,
        owner: Owner,
        location: Location,
    },
    Symlink {
        path: ImagePath,
        target: String,
        owner: Owner,
        location: Location,
    },
    Hardlink {
        path: ImagePath,
        target: ImagePath,
        location: Location,
    },
}

/// Files copied from the recipe's folder into the image.
#[derive(Clone, Debug)]
pub struct FilesItem {
    /// As written in the recipe, relative to the recipe's folder.
    pub src: String,
    pub src_kind: SourceKind,
    pub dest: ImagePath,
    /// The recipe wrote `dest` with a trailing `/`: a single file goes *into* it.
    pub dest_is_dir: bool,
    pub mode: Option<u32>,
    pub dir_mode: Option<u32>,
    pub owner: Owner,
    pub exclude: Vec<String>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub enum SourceKind {
    /// One file (or a symlink inside the recipe folder), absolute host path.
    File(PathBuf),
    /// A directory whose contents go under `dest`.
    Dir(PathBuf),
    /// A glob: `base` is the longest literal directory prefix; matches keep their path below it.
    Glob { base: PathBuf, pattern: String },
}
