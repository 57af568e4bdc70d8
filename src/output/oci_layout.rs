//! OCI image layout (image-spec `image-layout.md`): `oci-layout`, `blobs/sha256/*`, `index.json`.
//! An existing layout is extended, not replaced: other images in it stay, and an entry with the
//! same tag is replaced, as skopeo and umoci do.
//!
//! Several builds may write into one layout at once (CI jobs tagging into a shared directory).
//! Each write holds an exclusive flock on [`LOCK_FILE`] in the layout for its whole
//! read-modify-write of `index.json`, so no build's tag is lost; `index.json` itself is replaced
//! by temp file, fsync and rename (then the directory is fsynced), so a crash leaves the old or
//! the new index, never a torn one. Blobs are content-addressed and placed atomically, so they
//! need no lock, but placing them under it costs little and keeps the order simple.
//!
//! Artifacts attached to an image (OCI 1.1 referrers: SBOMs, provenance, signatures) are listed
//! in `index.json` too, untagged, each with its `artifactType` ([`write_artifacts`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{OutputError, StoredImage, StoredIndex, io_err};
use crate::attach::Artifact;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::oci::{Descriptor, Index, MediaType, REF_NAME};

/// The lock file writers of a layout take (stevedore's own; other tools ignore unknown files).
pub(super) const LOCK_FILE: &str = ".stevedore-index.lock";

/// The prefix of the temp files a writer renames into place: a concurrent writer's `oci-layout`
/// may be one of these for a moment, which [`check`] must not take for foreign content.
const TMP_PREFIX: &str = ".stevedore-tmp-";

/// How long a write waits for another writer of the same layout before giving up. A write
/// holds the lock for the time it takes to link or copy one image's blobs: seconds.
const LOCK_WAIT: Duration = Duration::from_secs(120);

pub(super) fn check(dir: &Path) -> Result<(), OutputError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(OutputError::Target {
                path: dir.to_path_buf(),
                message: "is a file; an OCI layout is a directory".into(),
            });
        }
        // A concurrent writer's lock and temp files may be there before its `oci-layout` is.
        let ours = |name: &std::ffi::OsStr| {
            name == LOCK_FILE || name.to_string_lossy().starts_with(TMP_PREFIX)
        };
        let foreign = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(Result::ok)
            .any(|e| !ours(&e.file_name()));
        if foreign && !dir.join("oci-layout").exists() {
            return Err(OutputError::Target {
                path: dir.to_path_buf(),
                message: "exists and is not an OCI image layout (no oci-layout file); choose an empty or new directory".into(),
            });
        }
    }
    Ok(())
}

/// Holds the layout's write lock until dropped.
struct LayoutLock(fs::File);

impl Drop for LayoutLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Takes the layout's exclusive lock, waiting at most [`LOCK_WAIT`] for another writer.
fn lock(dir: &Path) -> Result<LayoutLock, OutputError> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(LayoutLock(file)),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(OutputError::Target {
                    path,
                    message: format!(
                        "another process has held this layout's lock for {}s; is a build stuck?",
                        LOCK_WAIT.as_secs()
                    ),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
    }
}

pub(super) fn write(
    dir: &Path,
    tags: &[String],
    image: &StoredImage,
    cache: &Cache,
) -> Result<(), OutputError> {
    let (_lock, blobs) = open_for_write(dir)?;
    place_image(image, cache, &blobs)?;
    let entry = Descriptor::new(
        MediaType::from(image.manifest_media_type.as_str()),
        image.manifest_digest.clone(),
        image.manifest_size,
    );
    tag_entry(dir, tags, &entry)
}

/// A multi-platform build: every image's blobs (a layer shared by several platforms is one
/// file), the index itself, then the tags naming the index.
pub(super) fn write_index(
    dir: &Path,
    tags: &[String],
    index: &StoredIndex,
    cache: &Cache,
) -> Result<(), OutputError> {
    let (_lock, blobs) = open_for_write(dir)?;
    for image in &index.images {
        place_image(image, cache, &blobs)?;
    }
    place_blob(
        cache,
        &index.digest,
        index.size,
        &blobs.join(index.digest.hex()),
    )?;
    let entry = Descriptor::new(
        MediaType::from(index.media_type.as_str()),
        index.digest.clone(),
        index.size,
    );
    tag_entry(dir, tags, &entry)
}

/// Checks and creates the layout and takes its lock; returns the lock and `blobs/sha256`.
fn open_for_write(dir: &Path) -> Result<(LayoutLock, PathBuf), OutputError> {
    check(dir)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let lock = lock(dir)?;
    // Checked again under the lock: nothing but a stevedore writer changes it meanwhile.
    check(dir)?;
    let layout_file = dir.join("oci-layout");
    if !layout_file.exists() {
        atomic_write(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    Ok((lock, blobs))
}

/// An image's layers, config and manifest under `blobs`.
fn place_image(image: &StoredImage, cache: &Cache, blobs: &Path) -> Result<(), OutputError> {
    let mut wanted: Vec<(&Digest, u64)> =
        image.layers.iter().map(|l| (&l.digest, l.size)).collect();
    let config_path = cache.blob_path(&image.config_digest);
    let config_size = fs::metadata(&config_path)
        .map_err(io_err(&config_path))?
        .len();
    wanted.push((&image.config_digest, config_size));
    wanted.push((&image.manifest_digest, image.manifest_size));
    for (digest, size) in wanted {
        place_blob(cache, digest, size, &blobs.join(digest.hex()))?;
    }
    Ok(())
}

/// `index.json` with one entry per tag for `entry` (replacing the entries of those tags).
fn tag_entry(dir: &Path, tags: &[String], entry: &Descriptor) -> Result<(), OutputError> {
    let index_path = dir.join("index.json");
    let mut index = read_index(&index_path)?;
    index
        .manifests
        .retain(|m| m.ref_name().is_none_or(|t| !tags.iter().any(|x| x == t)));
    for tag in tags {
        let mut entry = entry.clone();
        entry.annotations.insert(REF_NAME.to_string(), tag.clone());
        index.manifests.push(entry);
    }
    atomic_write(&index_path, &index.to_canonical_json())
}

/// Adds artifacts (SBOMs, provenance, signatures: manifests with a `subject`) to the layout:
/// their blobs and manifests under `blobs/`, then one untagged entry each in `index.json` (with
/// its `artifactType` and annotations, as a referrers list holds it), as oras does; an entry of
/// the same digest is not repeated and the entry an artifact `replaces` is dropped. Under the
/// layout's lock, like an image write.
pub(super) fn write_artifacts(dir: &Path, artifacts: &[Artifact]) -> Result<(), OutputError> {
    check(dir)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let _lock = lock(dir)?;
    check(dir)?;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for a in artifacts {
        for bytes in a.blobs.iter().chain(std::iter::once(&a.manifest_bytes)) {
            let path = blobs.join(Digest::of(bytes).hex());
            if !fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
                atomic_write(&path, bytes)?;
            }
        }
    }
    let index_path = dir.join("index.json");
    let mut index = read_index(&index_path)?;
    for a in artifacts {
        index.add_referrer(a.referrer_entry(), a.replaces.as_ref());
    }
    atomic_write(&index_path, &index.to_canonical_json())
}

/// The artifacts in a layout whose `subject` is `image`: the untagged entries of `index.json`
/// that carry an `artifactType`, each manifest read (verified against its digest) and its
/// subject checked.
pub(super) fn referrers(dir: &Path, image: &Digest) -> Result<Vec<Descriptor>, OutputError> {
    let index_path = dir.join("index.json");
    let index = read_index(&index_path)?;
    let mut found = Vec::new();
    for entry in index.manifests.iter().filter(|m| m.artifact_type.is_some()) {
        let path = dir.join("blobs/sha256").join(entry.digest.hex());
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        if Digest::of(&bytes) != entry.digest {
            return Err(OutputError::Target {
                path,
                message: "blob content does not match its digest".into(),
            });
        }
        let subject = crate::oci::Manifest::parse(&bytes)
            .ok()
            .and_then(|m| m.subject);
        if subject.is_some_and(|s| s.digest == *image) {
            found.push(entry.clone());
        }
    }
    Ok(found)
}

/// The layout's index, or an empty one for a new layout. Written back as an OCI index whatever
/// media type (or none) it had.
fn read_index(path: &Path) -> Result<Index, OutputError> {
    let mut index = match fs::read(path) {
        Ok(bytes) => Index::parse(&bytes).map_err(|e| OutputError::Target {
            path: path.to_path_buf(),
            message: format!("unreadable index.json: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::new(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    index.media_type = Some(MediaType::OCI_INDEX);
    Ok(index)
}

/// Puts a cache blob into the layout: a hard link when the file systems allow (no copy of large
/// layers), else a copy through a temp file. An existing blob of the right size is kept.
fn place_blob(cache: &Cache, digest: &Digest, size: u64, dest: &Path) -> Result<(), OutputError> {
    if fs::metadata(dest).is_ok_and(|m| m.len() == size) {
        return Ok(());
    }
    let src = cache.blob_path(digest);
    let _ = fs::remove_file(dest);
    if fs::hard_link(&src, dest).is_ok() {
        return Ok(());
    }
    let parent = dest.parent().expect("blob paths have a parent");
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io_err(parent))?;
    let mut f = fs::File::open(&src).map_err(io_err(&src))?;
    std::io::copy(&mut f, &mut tmp).map_err(io_err(dest))?;
    set_readable(tmp.as_file(), dest)?;
    tmp.persist(dest).map_err(|e| io_err(dest)(e.error))?;
    Ok(())
}

/// Replaces `path` by temp file, fsync and rename, then fsyncs the directory so the rename
/// itself survives a crash.
pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let parent: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(&parent)
        .map_err(io_err(&parent))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    set_readable(tmp.as_file(), path)?;
    tmp.as_file().sync_data().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&parent))
}

/// Temp files are created 0600; outputs are meant to be shared like any file the user writes.
pub(super) fn set_readable(file: &fs::File, path: &Path) -> Result<(), OutputError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_a_layout_and_a_lone_lock_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("l");
        check(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(LOCK_FILE), b"").unwrap();
        fs::write(dir.join(format!("{TMP_PREFIX}x")), b"").unwrap();
        check(&dir).unwrap();
        fs::write(dir.join("other"), b"").unwrap();
        assert!(check(&dir).is_err(), "a foreign directory is refused");
        fs::write(dir.join("oci-layout"), b"{}").unwrap();
        check(&dir).unwrap();
    }

    #[test]
    fn a_second_writer_waits_for_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock(tmp.path()).unwrap();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(tmp.path().join(LOCK_FILE))
            .unwrap();
        assert!(matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)));
        drop(held);
        f.try_lock().expect("free once the writer is done");
    }

    #[test]
    fn a_new_layout_index_is_written_as_before() {
        let index = Index::new(vec![{
            let mut d = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"m"), 3);
            d.annotations.insert(REF_NAME.into(), "v1".into());
            d
        }]);
        let text = String::from_utf8(index.to_canonical_json()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"manifests":[{{"annotations":{{"{REF_NAME}":"v1"}},"digest":"{}","mediaType":"{}","size":3}}],"mediaType":"{}","schemaVersion":2}}"#,
                Digest::of(b"m"),
                crate::oci::names::OCI_MANIFEST,
                crate::oci::names::OCI_INDEX
            )
        );
    }
}
