//! OCI image layout (image-spec `image-layout.md`): `oci-layout`, `blobs/sha256/*`, `index.json`.
//! An existing layout is extended, not replaced: other images in it stay, and an entry with the
//! same tag is replaced, as skopeo and umoci do.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::{OutputError, StoredImage, io_err};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::image::{OCI_INDEX, REF_NAME, canonical_json};

pub(super) fn check(dir: &Path) -> Result<(), OutputError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(OutputError::Target {
                path: dir.to_path_buf(),
                message: "is a file; an OCI layout is a directory".into(),
            });
        }
        let empty = fs::read_dir(dir).map_err(io_err(dir))?.next().is_none();
        if !empty && !dir.join("oci-layout").exists() {
            return Err(OutputError::Target {
                path: dir.to_path_buf(),
                message: "exists and is not an OCI image layout (no oci-layout file); choose an empty or new directory".into(),
            });
        }
    }
    Ok(())
}

pub(super) fn write(
    dir: &Path,
    tags: &[String],
    image: &StoredImage,
    cache: &Cache,
) -> Result<(), OutputError> {
    check(dir)?;
    let layout_file = dir.join("oci-layout");
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;

    let mut wanted: Vec<(&Digest, u64)> =
        image.layers.iter().map(|l| (&l.digest, l.size)).collect();
    let config_size = fs::metadata(cache.blob_path(&image.config_digest))
        .map_err(io_err(&cache.blob_path(&image.config_digest)))?
        .len();
    wanted.push((&image.config_digest, config_size));
    wanted.push((&image.manifest_digest, image.manifest_size));
    for (digest, size) in wanted {
        place_blob(cache, digest, size, &blobs.join(digest.hex()))?;
    }

    if !layout_file.exists() {
        atomic_write(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let index_path = dir.join("index.json");
    let mut manifests: Vec<Value> = match fs::read(&index_path) {
        Ok(bytes) => {
            let index: Value = serde_json::from_slice(&bytes).map_err(|e| OutputError::Target {
                path: index_path.clone(),
                message: format!("unreadable index.json: {e}"),
            })?;
            index["manifests"].as_array().cloned().unwrap_or_default()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&index_path)(e)),
    };
    manifests.retain(|m| {
        m["annotations"][REF_NAME]
            .as_str()
            .is_none_or(|t| !tags.iter().any(|x| x == t))
    });
    for tag in tags {
        manifests.push(json!({
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest_size,
            "annotations": { REF_NAME: tag },
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    atomic_write(&index_path, &canonical_json(&index))
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

pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io_err(parent))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    set_readable(tmp.as_file(), path)?;
    tmp.as_file().sync_data().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// Temp files are created 0600; outputs are meant to be shared like any file the user writes.
pub(super) fn set_readable(file: &fs::File, path: &Path) -> Result<(), OutputError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(path))
}
