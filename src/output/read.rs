//! Reading images back from an OCI layout or a docker archive, for `inspect` (and `push` later).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{OutputError, OutputTarget, io_err};
use crate::digest::Digest;
use crate::image::{DOCKER_MANIFEST_LIST, OCI_INDEX, REF_NAME};

#[derive(Clone, Debug)]
pub struct InspectedImage {
    /// Where it was read from, as the user would write it.
    pub source: String,
    /// Digest of the manifest; docker archives carry no manifest, so `None` there.
    pub manifest_digest: Option<Digest>,
    pub manifest: Option<Value>,
    pub config_digest: Digest,
    pub config: Value,
    pub layers: Vec<InspectedLayer>,
    /// The tag it was found under, for layouts.
    pub tag: Option<String>,
}

#[derive(Clone, Debug)]
pub struct InspectedLayer {
    /// The blob digest (layouts) or the file name in the archive.
    pub id: String,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Option<Digest>,
}

fn bad(path: &Path, message: impl Into<String>) -> OutputError {
    OutputError::Target {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Opens `oci:DIR[:TAG]`, `docker-archive:FILE`, or a bare path (a directory is read as a
/// layout, a file as an archive).
pub fn read_image(target: &str) -> Result<InspectedImage, OutputError> {
    let parsed = match target.parse::<OutputTarget>() {
        Ok(t) => t,
        Err(_) if Path::new(target).is_dir() => OutputTarget::OciLayout {
            dir: target.into(),
            tag: None,
        },
        Err(_) => OutputTarget::DockerArchive {
            file: target.into(),
        },
    };
    match parsed {
        OutputTarget::OciLayout { dir, tag } => read_layout(&dir, tag.as_deref(), target),
        OutputTarget::DockerArchive { file } => read_archive(&file, target),
    }
}

fn read_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, OutputError> {
    let path = dir.join("blobs/sha256").join(digest.hex());
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    if Digest::of(&bytes) != *digest {
        return Err(bad(&path, "blob content does not match its digest"));
    }
    Ok(bytes)
}

fn parse_json(path: &Path, bytes: &[u8]) -> Result<Value, OutputError> {
    serde_json::from_slice(bytes).map_err(|e| bad(path, format!("invalid JSON: {e}")))
}

fn digest_field(path: &Path, v: &Value) -> Result<Digest, OutputError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(path, format!("bad digest {v}")))
}

fn read_layout(dir: &Path, tag: Option<&str>, source: &str) -> Result<InspectedImage, OutputError> {
    let index_path = dir.join("index.json");
    if !dir.join("oci-layout").is_file() {
        return Err(bad(dir, "not an OCI image layout (no oci-layout file)"));
    }
    let index = parse_json(
        &index_path,
        &fs::read(&index_path).map_err(io_err(&index_path))?,
    )?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let chosen = match tag {
        Some(t) => manifests
            .iter()
            .find(|m| m["annotations"][REF_NAME].as_str() == Some(t))
            .ok_or_else(|| {
                let tags: Vec<&str> = manifests
                    .iter()
                    .filter_map(|m| m["annotations"][REF_NAME].as_str())
                    .collect();
                bad(
                    dir,
                    format!("no image tagged `{t}` (tags: {})", tags.join(", ")),
                )
            })?,
        None if manifests.len() == 1 => &manifests[0],
        None => {
            let tags: Vec<&str> = manifests
                .iter()
                .filter_map(|m| m["annotations"][REF_NAME].as_str())
                .collect();
            return Err(bad(
                dir,
                format!(
                    "holds {} images; name one as oci:{}:TAG (tags: {})",
                    manifests.len(),
                    dir.display(),
                    tags.join(", ")
                ),
            ));
        }
    };
    let chosen_tag = chosen["annotations"][REF_NAME].as_str().map(str::to_string);
    let mut digest = digest_field(&index_path, &chosen["digest"])?;
    let mut media_type = chosen["mediaType"].as_str().unwrap_or_default().to_string();
    let mut manifest_bytes = read_blob(dir, &digest)?;
    // An index inside the layout: follow it to the first (or only) image manifest.
    for _ in 0..4 {
        if media_type != OCI_INDEX && media_type != DOCKER_MANIFEST_LIST {
            break;
        }
        let nested = parse_json(&index_path, &manifest_bytes)?;
        let first = nested["manifests"]
            .get(0)
            .ok_or_else(|| bad(&index_path, "empty image index"))?
            .clone();
        digest = digest_field(&index_path, &first["digest"])?;
        media_type = first["mediaType"].as_str().unwrap_or_default().to_string();
        manifest_bytes = read_blob(dir, &digest)?;
    }
    let manifest_path = dir.join("blobs/sha256").join(digest.hex());
    let manifest = parse_json(&manifest_path, &manifest_bytes)?;
    let config_digest = digest_field(&manifest_path, &manifest["config"]["digest"])?;
    let config = parse_json(&manifest_path, &read_blob(dir, &config_digest)?)?;
    let diff_ids = diff_ids(&config);
    let layers = manifest["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, l)| InspectedLayer {
            id: l["digest"].as_str().unwrap_or_default().to_string(),
            size: l["size"].as_u64().unwrap_or_default(),
            media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
            diff_id: diff_ids.get(i).cloned(),
        })
        .collect();
    Ok(InspectedImage {
        source: source.to_string(),
        manifest_digest: Some(digest),
        manifest: Some(manifest),
        config_digest,
        config,
        layers,
        tag: chosen_tag,
    })
}

/// Reads `oci:DIR[:TAG]` (or a bare directory) for pushing: the layout directory and the image.
pub fn read_layout_for_push(target: &str) -> Result<(PathBuf, InspectedImage), OutputError> {
    let (dir, tag) = match target.parse::<OutputTarget>() {
        Ok(OutputTarget::OciLayout { dir, tag }) => (dir, tag),
        Ok(OutputTarget::DockerArchive { file }) => {
            return Err(bad(
                &file,
                "docker archives carry no manifest to push; push the OCI layout or build with --push",
            ));
        }
        Err(_) => (PathBuf::from(target), None),
    };
    let image = read_layout(&dir, tag.as_deref(), target)?;
    Ok((dir, image))
}

fn diff_ids(config: &Value) -> Vec<Digest> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn read_archive(file: &Path, source: &str) -> Result<InspectedImage, OutputError> {
    let f = fs::File::open(file).map_err(io_err(file))?;
    let mut archive = tar::Archive::new(f);
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for entry in archive.entries().map_err(io_err(file))? {
        let mut entry = entry.map_err(io_err(file))?;
        let name = entry
            .path()
            .map_err(io_err(file))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        sizes.insert(name.clone(), entry.size());
        if name.ends_with(".json") && entry.size() < 16 << 20 {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(io_err(file))?;
            small.insert(name, buf);
        }
    }
    let manifest = small
        .get("manifest.json")
        .ok_or_else(|| bad(file, "not a docker archive (no manifest.json)"))?;
    let manifest = parse_json(file, manifest)?;
    let first = manifest
        .get(0)
        .ok_or_else(|| bad(file, "manifest.json lists no image"))?;
    let config_name = first["Config"]
        .as_str()
        .ok_or_else(|| bad(file, "manifest.json has no Config"))?;
    let config_bytes = small.get(config_name).ok_or_else(|| {
        bad(
            file,
            format!("config {config_name} missing from the archive"),
        )
    })?;
    let config_digest = Digest::of(config_bytes);
    let config = parse_json(&PathBuf::from(config_name), config_bytes)?;
    let diff_ids = diff_ids(&config);
    let layers = first["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let name = l.as_str().unwrap_or_default().to_string();
            InspectedLayer {
                size: sizes.get(&name).copied().unwrap_or_default(),
                id: name,
                media_type: "application/x-tar".into(),
                diff_id: diff_ids.get(i).cloned(),
            }
        })
        .collect();
    Ok(InspectedImage {
        source: source.to_string(),
        manifest_digest: None,
        manifest: None,
        config_digest,
        config,
        layers,
        tag: None,
    })
}
