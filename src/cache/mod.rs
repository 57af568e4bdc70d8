//! The content-addressed store every build shares.
//!
//! Layout under the cache root:
//! - `blobs/sha256/<hex>`: layer, config and manifest blobs, named by their digest;
//! - `layers/<key>.json`: which blob a layer cache key produced ([`LayerRecord`]);
//! - `tmp/`: files being written. A blob or record enters its final place only by an atomic
//!   rename after it is complete, so a build killed at any point leaves nothing a later build
//!   would trust — at most a stray temp file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

mod gc;
mod stat;
pub use gc::{CacheLock, GcReport, Keep, Usage};
pub use stat::{FileStamp, KnownDigests, StatCache};

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
#[error("cache {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError {
        path: path.to_path_buf(),
        source,
    }
}

/// The cache directory used when neither `--cache-dir` nor `STEVEDORE_CACHE` is given:
/// `$XDG_CACHE_HOME/stevedore`, else `~/.cache/stevedore`.
pub fn default_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("stevedore");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(h).join(".cache").join("stevedore");
    }
    std::env::temp_dir().join("stevedore-cache")
}

#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
    /// Layers known from a fleet cache index (`build --cache-from`): their blobs live in a
    /// registry, not here. In memory only, for one build: never trusted by a later one.
    remote: std::sync::Arc<std::collections::BTreeMap<Digest, LayerRecord>>,
}

/// What a layer cache key produced. Stored as JSON; only trusted if its blob is present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: Digest,
    pub digest: Digest,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed (tar) size.
    pub diff_size: u64,
}

impl Cache {
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        for sub in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(err(&p))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            remote: std::sync::Arc::default(),
        })
    }

    /// This cache, also knowing the layers of a fleet cache index (see [`Cache::known_layer`]).
    pub fn with_remote_layers(
        &self,
        layers: std::collections::BTreeMap<Digest, LayerRecord>,
    ) -> Cache {
        Cache {
            root: self.root.clone(),
            remote: std::sync::Arc::new(layers),
        }
    }

    /// A layer key known from the fleet cache index but not held here.
    pub fn remote_layer(&self, key: &Digest) -> Option<LayerRecord> {
        self.remote.get(key).cloned()
    }

    /// The record of a layer key held here, else one known from the fleet cache index: what
    /// planning asks (it never needs a layer's bytes, only its listing and status).
    pub fn known_layer(&self, key: &Digest) -> Option<LayerRecord> {
        self.layer_record(key).or_else(|| self.remote_layer(key))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Where files being written live until they are renamed into place (same file system).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A temp file on the same file system as the store, for a blob being written.
    pub fn temp_file(&self) -> Result<NamedTempFile, CacheError> {
        let dir = self.root.join("tmp");
        NamedTempFile::new_in(&dir).map_err(err(&dir))
    }

    /// Moves a finished temp file into the store under `digest`. The caller computed `digest`
    /// from the bytes it wrote; the data is synced before the rename so a crash cannot leave a
    /// named blob with missing content.
    pub fn commit_blob(&self, tmp: NamedTempFile, digest: &Digest) -> Result<PathBuf, CacheError> {
        let dest = self.blob_path(digest);
        // Blobs are hard-linked into OCI layouts, so they get ordinary file permissions.
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(err(tmp.path()))?;
        }
        tmp.as_file().sync_data().map_err(err(tmp.path()))?;
        tmp.persist(&dest).map_err(|e| CacheError {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// Stores small blobs (configs, manifests) held in memory.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(err(tmp.path()))?;
        self.commit_blob(tmp, &digest)?;
        Ok(digest)
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        let p = self.blob_path(digest);
        fs::read(&p).map_err(err(&p))
    }

    fn record_path(&self, key: &Digest) -> PathBuf {
        self.root.join("layers").join(format!("{}.json", key.hex()))
    }

    /// The record for a layer key, if it exists, parses, and its blob is present.
    pub fn layer_record(&self, key: &Digest) -> Option<LayerRecord> {
        let bytes = fs::read(self.record_path(key)).ok()?;
        let record: LayerRecord = serde_json::from_slice(&bytes).ok()?;
        let meta = fs::metadata(self.blob_path(&record.digest)).ok()?;
        if meta.len() != record.size {
            return None;
        }
        // Last use, for `cache gc --older-than`.
        gc::touch(&self.record_path(key));
        gc::touch(&self.blob_path(&record.digest));
        Some(record)
    }

    /// Side files of a layer key (`list`: its entries for stacking, `status`: the dpkg status it
    /// carries). Written before the record, so a record implies its side files.
    pub fn put_layer_file(&self, key: &Digest, kind: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let dest = self
            .root
            .join("layers")
            .join(format!("{}.{kind}", key.hex()));
        self.put_file(&dest, bytes)
    }

    /// Writes a small file atomically and durably: a temp file, synced, renamed into place.
    /// Without the sync a crash (power loss) can leave the new name pointing at empty content,
    /// which a later build would trust.
    fn put_file(&self, dest: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(err(tmp.path()))?;
        tmp.as_file().sync_data().map_err(err(tmp.path()))?;
        tmp.persist(dest).map_err(|e| CacheError {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    pub fn layer_file(&self, key: &Digest, kind: &str) -> Option<String> {
        fs::read_to_string(
            self.root
                .join("layers")
                .join(format!("{}.{kind}", key.hex())),
        )
        .ok()
    }

    /// Small named records (`builds/<name>.json`), written atomically.
    pub fn put_named(&self, dir: &str, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let d = self.root.join(dir);
        fs::create_dir_all(&d).map_err(err(&d))?;
        self.put_file(&d.join(format!("{name}.json")), bytes)
    }

    pub fn read_named(&self, dir: &str, name: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join(dir).join(format!("{name}.json"))).ok()
    }

    /// Where the unpacked (decompressed) data.tar of a package with this sha256 is kept.
    pub fn unpacked_deb_path(&self, deb_sha256: &Digest) -> PathBuf {
        self.root
            .join("debs-unpacked")
            .join(format!("{}.tar", deb_sha256.hex()))
    }

    /// The apt download store (indexes and .debs, by sha256).
    pub fn apt_dir(&self) -> PathBuf {
        self.root.join("apt")
    }

    pub fn put_layer_record(&self, key: &Digest, record: &LayerRecord) -> Result<(), CacheError> {
        let json = serde_json::to_vec(record).expect("layer records serialize");
        self.put_file(&self.record_path(key), &json)
    }

    /// Whether the unpacked data.tar of a package is complete: its length is the one recorded
    /// when it was unpacked ([`Cache::mark_unpacked_deb`]). A spool that is empty, short (a
    /// crash, a full disk, a hand edit) or from before the record existed is not trusted: it
    /// is unpacked again.
    pub fn unpacked_deb_complete(&self, deb_sha256: &Digest) -> bool {
        let path = self.unpacked_deb_path(deb_sha256);
        let recorded = fs::read_to_string(Self::unpacked_size_path(&path))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        let actual = fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        recorded.is_some() && recorded == actual
    }

    /// Records the length of a package's unpacked data.tar, once it is in place (synced).
    pub fn mark_unpacked_deb(&self, deb_sha256: &Digest, len: u64) -> Result<(), CacheError> {
        let path = self.unpacked_deb_path(deb_sha256);
        self.put_file(&Self::unpacked_size_path(&path), len.to_string().as_bytes())
    }

    /// `<sha256>.size` next to `<sha256>.tar` (same stem, so `cache gc --keep` keeps both).
    fn unpacked_size_path(spool: &Path) -> PathBuf {
        spool.with_extension("size")
    }
}
