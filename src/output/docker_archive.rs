//! `docker load` / `podman load` archives, in the layout `docker save` and skopeo write:
//! `manifest.json`, `<config hex>.json`, one uncompressed `<diff_id hex>.tar` per layer, and the
//! legacy `repositories` file. Layers are decompressed from the cache as they are copied, and
//! checked against their diff_id on the way.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use super::oci_layout::set_readable;
use super::{OutputError, StoredImage, io_err};
use crate::cache::Cache;
use crate::digest::HashingReader;
use crate::image::layer_compression;
use crate::image_path::ImagePath;
use crate::layer::{Meta, TarWriter, decompress};
use crate::oci::canonical_json;

const META: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
};

/// One image in the archive's `manifest.json` (Docker's field names).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest<'a> {
    config: &'a str,
    repo_tags: Vec<String>,
    layers: &'a [String],
}

enum Member<'a> {
    Bytes(Vec<u8>),
    Layer(&'a super::StoredLayer),
}

pub(super) fn write(file: &Path, image: &StoredImage, cache: &Cache) -> Result<(), OutputError> {
    let config = cache.read_blob(&image.config_digest)?;
    let config_name = format!("{}.json", image.config_digest.hex());
    let layer_names: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("{}.tar", l.diff_id.hex()))
        .collect();
    let repo_tags: Vec<String> = match &image.name {
        Some(name) => image.tags.iter().map(|t| format!("{name}:{t}")).collect(),
        None => Vec::new(),
    };
    let manifest = [ArchiveManifest {
        config: &config_name,
        repo_tags,
        layers: &layer_names,
    }];
    let mut members: BTreeMap<ImagePath, Member> = BTreeMap::new();
    let path = |s: &str| ImagePath::from_relative(s).expect("fixed member names are clean");
    members.insert(path(&config_name), Member::Bytes(config));
    members.insert(
        path("manifest.json"),
        Member::Bytes(canonical_json(&manifest)),
    );
    if let Some(name) = &image.name {
        // The legacy `repositories` file: name → tag → image id.
        let tags: BTreeMap<&String, String> = image
            .tags
            .iter()
            .map(|t| (t, image.config_digest.hex()))
            .collect();
        let repos = BTreeMap::from([(name, tags)]);
        members.insert(path("repositories"), Member::Bytes(canonical_json(&repos)));
    }
    for (layer, name) in image.layers.iter().zip(&layer_names) {
        members.insert(path(name), Member::Layer(layer));
    }

    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(io_err(parent))?;
    let out =
        BufWriter::with_capacity(256 * 1024, tmp.as_file().try_clone().map_err(io_err(file))?);
    let mut tar = TarWriter::new(out);
    for (name, member) in &members {
        match member {
            Member::Bytes(b) => tar
                .append_file(name, &META, b.len() as u64, &b[..])
                .map_err(io_err(file))?,
            Member::Layer(layer) => {
                let blob = cache.blob_path(&layer.digest);
                let reader = BufReader::new(fs::File::open(&blob).map_err(io_err(&blob))?);
                let compression =
                    layer_compression(&layer.media_type).ok_or_else(|| OutputError::Target {
                        path: blob.clone(),
                        message: format!("unsupported layer media type {}", layer.media_type),
                    })?;
                let mut hashing =
                    HashingReader::new(decompress(reader, compression).map_err(io_err(&blob))?);
                tar.append_file(name, &META, layer.diff_size, &mut hashing)
                    .map_err(io_err(&blob))?;
                let (_, diff_id, _) = hashing.finish();
                if diff_id != layer.diff_id {
                    return Err(OutputError::Corrupt {
                        digest: layer.digest.clone(),
                    });
                }
            }
        }
    }
    let out = tar.finish().map_err(io_err(file))?;
    out.into_inner().map_err(|e| io_err(file)(e.into_error()))?;
    set_readable(tmp.as_file(), file)?;
    tmp.as_file().sync_data().map_err(io_err(file))?;
    tmp.persist(file).map_err(|e| io_err(file)(e.error))?;
    Ok(())
}
