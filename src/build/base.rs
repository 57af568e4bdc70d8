//! A registry image as the base of a build (`from = "host/repo:tag"`).
//!
//! Resolution turns the reference into one image manifest — through an index to the recipe's
//! platform — pinned by digest: the lockfile's when it has one for this `from`, else what the
//! tag names now (one manifest HEAD). Manifests and the config are kept in the cache's blob store
//! by digest and checked against it when read back, so a pinned rebuild with a warm cache talks
//! to no registry at all. Base *layers* are downloaded to build only when the chain puts
//! package layers or `[[users]]` on the base ([`tree`]: their state is read from the layers);
//! otherwise they are only needed as bytes by local outputs and pushes to another registry
//! ([`fetch_layers`]); a push to the base's own registry mounts them.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::BuildError;
use crate::apt::Lockfile;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::image::{BaseImage, ImageError};
use crate::oci::{self, Document, Manifest, Platform};
use crate::plan::{self, LockMode};
use crate::recipe::{ImageBase, Recipe};
use crate::registry::{BlockingRegistry, Reference, RegistryError, RegistryOptions};
use crate::rootfs::base::BaseTree;

/// A base image resolved for one build.
#[derive(Clone, Debug)]
pub struct ResolvedBase {
    /// The recipe's reference, pinned to the manifest digest (the tag kept for display). Base
    /// blobs are fetched and mounted from its repository.
    pub reference: Reference,
    pub image: BaseImage,
}

/// A registry client made on first use: builds that need no registry never start one.
pub(crate) struct LazyRegistry<'a> {
    opts: &'a RegistryOptions,
    cell: OnceLock<BlockingRegistry>,
}

impl<'a> LazyRegistry<'a> {
    pub(crate) fn new(opts: &'a RegistryOptions) -> Self {
        LazyRegistry {
            opts,
            cell: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> Result<&BlockingRegistry, RegistryError> {
        if let Some(r) = self.cell.get() {
            return Ok(r);
        }
        let r = BlockingRegistry::new(self.opts.clone())?;
        Ok(self.cell.get_or_init(|| r))
    }
}

/// Wraps an error so it names the recipe line and the reference.
fn at(base: &ImageBase, e: impl Into<BuildError>) -> BuildError {
    BuildError::Base {
        location: base.location.clone(),
        reference: base.reference.to_string(),
        error: Box::new(e.into()),
    }
}

/// The digest the lockfile pins this `from` to, or why there is none. `Locked` refuses a lock
/// without one; `Prefer` takes it when it is for this very reference; `Fresh` ignores it.
fn pinned_by_lock(
    recipe: &Recipe,
    base: &ImageBase,
    mode: LockMode,
) -> Result<Option<Digest>, BuildError> {
    if mode == LockMode::Fresh {
        return Ok(None);
    }
    let path = plan::lockfile_path(&recipe.path);
    let wanted = base.reference.to_string();
    let problem = match std::fs::read_to_string(&path) {
        Ok(text) => {
            // A multi-platform lockfile pins each platform's manifest of the base.
            let lock =
                Lockfile::from_toml_for(&text, &path.display().to_string(), &recipe.image.platform)
                    .map_err(|source| BuildError::BaseLockfile { source })?;
            match lock.and_then(|l| l.base) {
                Some(b) if b.reference == wanted => return Ok(Some(b.digest)),
                Some(b) => format!(
                    "{} pins the base `{}`, but the recipe is now built from `{wanted}`",
                    path.display(),
                    b.reference
                ),
                None => format!("{} has no pinned base image", path.display()),
            }
        }
        Err(_) => format!("no lockfile {}", path.display()),
    };
    if mode == LockMode::Locked {
        return Err(BuildError::BaseNotPinned {
            problem,
            recipe: recipe.path.clone(),
        });
    }
    tracing::debug!("{problem}; resolving {wanted}");
    Ok(None)
}

/// Resolves the chain's registry base, if it has one.
pub(crate) fn resolve(
    recipe: &Recipe,
    cache: &Cache,
    mode: LockMode,
    registry: &LazyRegistry,
) -> Result<Option<ResolvedBase>, BuildError> {
    let Some(base) = recipe.image_base() else {
        return Ok(None);
    };
    let pinned = pinned_by_lock(recipe, base, mode).map_err(|e| at(base, e))?;
    resolve_image(base, pinned, recipe, cache, registry)
        .map(Some)
        .map_err(|e| at(base, e))
}

fn resolve_image(
    base: &ImageBase,
    pinned: Option<Digest>,
    recipe: &Recipe,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<ResolvedBase, BuildError> {
    let reference = &base.reference;
    let want = &recipe.image.platform;
    // The top digest: the lock's, the reference's own, else what the tag names now.
    let top = match pinned.or_else(|| reference.digest.clone()) {
        Some(d) => d,
        None => registry.get()?.manifest_digest(reference)?.ok_or_else(|| {
            RegistryError::ManifestNotFound {
                reference: reference.to_string(),
            }
        })?,
    };
    let (mut digest, mut bytes) = (
        top.clone(),
        manifest_bytes(reference, &top, cache, registry)?,
    );
    if let Some(child) = platform_child(&bytes, want, reference)? {
        bytes = manifest_bytes(reference, &child, cache, registry)?;
        digest = child;
    }
    let manifest = Manifest::parse(&bytes).map_err(|source| ImageError::BaseDocument {
        digest: digest.clone(),
        document: "manifest",
        source,
    })?;
    let config = blob_bytes(
        reference,
        &manifest.config.digest,
        manifest.config.size,
        cache,
        registry,
    )?;
    let image = BaseImage::parse(digest.clone(), &bytes, &config)?;
    if !want.matches(&image.platform) {
        return Err(BuildError::BasePlatform {
            have: image.platform.to_string(),
            want: want.to_string(),
        });
    }
    Ok(ResolvedBase {
        reference: reference.with_digest(digest),
        image,
    })
}

/// For an index: the digest of the manifest for `platform`. `None` for an image manifest.
fn platform_child(
    bytes: &[u8],
    platform: &Platform,
    reference: &Reference,
) -> Result<Option<Digest>, BuildError> {
    let document = oci::parse(bytes)
        .map_err(|source| RegistryError::InvalidManifest(format!("{reference}: {source}")))?;
    let Document::Index(index) = document else {
        return Ok(None);
    };
    match index.find_platform(platform) {
        Some(entry) => Ok(Some(entry.digest.clone())),
        None => Err(RegistryError::NoMatchingPlatform {
            reference: reference.to_string(),
            platform: platform.to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into()),
    }
}

/// A cached blob, if present and its bytes still hash to its name.
fn cached(cache: &Cache, digest: &Digest) -> Option<Vec<u8>> {
    cache
        .read_blob(digest)
        .ok()
        .filter(|b| Digest::of(b) == *digest)
}

/// A manifest by digest: from the cache, else from the registry (verified, then cached).
fn manifest_bytes(
    reference: &Reference,
    digest: &Digest,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<Vec<u8>, BuildError> {
    if let Some(b) = cached(cache, digest) {
        return Ok(b);
    }
    let (raw, got) = registry
        .get()?
        .pull_manifest(&reference.with_digest(digest.clone()), None)?;
    if got != *digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest of {reference}"),
            expected: digest.clone(),
            actual: got.to_string(),
        }
        .into());
    }
    cache.put_bytes(&raw.bytes)?;
    Ok(raw.bytes)
}

/// A small blob (the config) by digest: from the cache, else downloaded into it.
fn blob_bytes(
    reference: &Reference,
    digest: &Digest,
    size: u64,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<Vec<u8>, BuildError> {
    if let Some(b) = cached(cache, digest) {
        return Ok(b);
    }
    fetch_blob(reference, digest, size, cache, registry)?;
    Ok(cache.read_blob(digest)?)
}

fn fetch_blob(
    reference: &Reference,
    digest: &Digest,
    size: u64,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<(), BuildError> {
    registry.get()?.fetch_blob_to(
        reference,
        digest,
        size,
        &cache.tmp_dir(),
        &cache.blob_path(digest),
    )?;
    Ok(())
}

/// What decompressing a base layer showed, kept so it is done once per layer.
#[derive(Serialize, Deserialize)]
struct LayerFacts {
    diff_id: Digest,
    diff_size: u64,
}

/// Puts every base layer's blob in the cache (downloaded, verified by sha256) for outputs that
/// need the bytes, checks each against its diff_id, and returns the uncompressed sizes.
pub(crate) fn fetch_layers(
    base: &ResolvedBase,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<Vec<u64>, BuildError> {
    let mut sizes = Vec::new();
    for l in &base.image.layers {
        ensure_layer_blob(base, l, cache, registry)?;
        let name = l.digest.hex();
        let known = cache
            .read_named("base-layers", &name)
            .and_then(|b| serde_json::from_slice::<LayerFacts>(&b).ok())
            .filter(|f| f.diff_id == l.diff_id);
        let facts = match known {
            Some(f) => f,
            None => {
                let reader = open_decompressed(l, cache)?;
                let (diff_id, diff_size) = crate::digest::digest_reader(reader)
                    .map_err(io_at(cache.blob_path(&l.digest)))?;
                record_facts(base, l, cache, diff_id, diff_size)?
            }
        };
        sizes.push(facts.diff_size);
    }
    Ok(sizes)
}

/// Whether the chain needs the base's tree: package layers or `[[users]]`/`[[groups]]` over
/// it (they continue what the base's packages set up), or a path the recipe names below
/// `/bin`, `/sbin` or `/lib*` (on a merged-/usr base those are symlinks the path must follow).
/// Other file layers keep the base's layers undownloaded: a push to the base's registry
/// mounts them and the build never reads them.
pub(crate) fn needs_tree(recipe: &Recipe) -> bool {
    recipe.chain().iter().any(|r| {
        !r.users.is_empty()
            || !r.groups.is_empty()
            || r.layers.iter().any(|l| {
                l.packages.is_some() || l.items.iter().any(|i| below_usr_links(item_path(i)))
            })
    })
}

fn item_path(item: &crate::recipe::LayerItem) -> &crate::image_path::ImagePath {
    use crate::recipe::LayerItem as I;
    match item {
        I::Files(f) => &f.dest,
        I::Dir { path, .. } | I::Symlink { path, .. } | I::Hardlink { path, .. } => path,
    }
}

/// Whether `path` is at or below one of the tops merged-/usr systems link into `/usr`.
fn below_usr_links(path: &crate::image_path::ImagePath) -> bool {
    const LINKS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
    path.components()
        .next()
        .is_some_and(|top| LINKS.contains(&top))
}

/// The base's merged tree and dpkg database, when the chain needs them ([`needs_tree`]); a base
/// without a dpkg database is refused at the recipe's `from` line.
pub(crate) fn tree(
    recipe: &Recipe,
    base: Option<&ResolvedBase>,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<Option<BaseTree>, BuildError> {
    let (Some(base), Some(from)) = (base, recipe.image_base()) else {
        return Ok(None);
    };
    if !needs_tree(recipe) {
        return Ok(None);
    }
    let packages_or_accounts = recipe.chain().iter().any(|r| {
        !r.users.is_empty() || !r.groups.is_empty() || r.layers.iter().any(|l| l.packages.is_some())
    });
    let read = || -> Result<BaseTree, BuildError> {
        let tars = layer_tars(base, cache, registry)?;
        let tree = crate::rootfs::base::read(&tars)?;
        if packages_or_accounts {
            tree.dpkg_status()?;
        }
        Ok(tree)
    };
    read().map(Some).map_err(|e| at(from, e))
}

/// A base layer's (compressed) blob in the cache: there already, else downloaded and verified.
fn ensure_layer_blob(
    base: &ResolvedBase,
    l: &crate::image::BaseLayer,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<(), BuildError> {
    if !cache.has_blob(&l.digest) {
        tracing::info!(
            "downloading base layer {} from {}",
            l.digest,
            base.reference
        );
        fetch_blob(&base.reference, &l.digest, l.size, cache, registry)?;
    }
    Ok(())
}

/// Every base layer as an uncompressed tar in the cache's blob store, named by its diff_id:
/// downloaded (verified by digest) and decompressed (verified against the config's diff_id)
/// once, then read in place by [`crate::rootfs::base`] — file contents stay in these tars.
fn layer_tars(
    base: &ResolvedBase,
    cache: &Cache,
    registry: &LazyRegistry,
) -> Result<Vec<std::path::PathBuf>, BuildError> {
    let mut out = Vec::new();
    for l in &base.image.layers {
        if !cache.has_blob(&l.diff_id) {
            ensure_layer_blob(base, l, cache, registry)?;
            decompress_layer(base, l, cache)?;
        }
        out.push(cache.blob_path(&l.diff_id));
    }
    Ok(out)
}

/// Decompresses a cached base layer into the blob store under its diff_id, refusing bytes
/// that do not hash to it; records the facts [`fetch_layers`] would otherwise compute again.
fn decompress_layer(
    base: &ResolvedBase,
    l: &crate::image::BaseLayer,
    cache: &Cache,
) -> Result<(), BuildError> {
    let mut reader = open_decompressed(l, cache)?;
    let io = io_at(cache.blob_path(&l.digest));
    let tmp = cache.temp_file()?;
    let mut writer = crate::digest::HashingWriter::new(std::io::BufWriter::new(tmp));
    std::io::copy(&mut reader, &mut writer).map_err(&io)?;
    let (buffered, diff_id, diff_size) = writer.finish();
    let tmp = buffered.into_inner().map_err(|e| io(e.into_error()))?;
    let facts = record_facts(base, l, cache, diff_id, diff_size)?;
    cache.commit_blob(tmp, &facts.diff_id)?;
    Ok(())
}

/// How an I/O error on the cache file at `path` is reported.
fn io_at(path: std::path::PathBuf) -> impl Fn(std::io::Error) -> crate::cache::CacheError {
    move |source| crate::cache::CacheError {
        path: path.clone(),
        source,
    }
}

/// A cached base layer's bytes, decompressed.
fn open_decompressed(
    l: &crate::image::BaseLayer,
    cache: &Cache,
) -> Result<Box<dyn std::io::Read>, crate::cache::CacheError> {
    let io = io_at(cache.blob_path(&l.digest));
    let compression = crate::image::layer_compression(l.media_type.as_str())
        .expect("base layer media types were checked when parsed");
    let file =
        std::io::BufReader::new(std::fs::File::open(cache.blob_path(&l.digest)).map_err(&io)?);
    Ok(Box::new(
        crate::layer::decompress(file, compression).map_err(&io)?,
    ))
}

/// Refuses a layer whose decompressed bytes are not its diff_id; otherwise records its facts
/// (diff_id and size) so they are not computed again.
fn record_facts(
    base: &ResolvedBase,
    l: &crate::image::BaseLayer,
    cache: &Cache,
    diff_id: Digest,
    diff_size: u64,
) -> Result<LayerFacts, BuildError> {
    if diff_id != l.diff_id {
        return Err(BuildError::BaseLayerDiffId {
            digest: l.digest.clone(),
            reference: base.reference.to_string(),
            actual: diff_id,
            expected: l.diff_id.clone(),
        });
    }
    let facts = LayerFacts { diff_id, diff_size };
    let json = serde_json::to_vec(&facts).expect("facts serialize");
    cache.put_named("base-layers", &l.digest.hex(), &json)?;
    Ok(facts)
}
