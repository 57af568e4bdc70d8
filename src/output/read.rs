//! Reading images back from an OCI layout or a docker archive, for `inspect` (and `push` later).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{OutputError, OutputTarget, io_err};
use crate::digest::Digest;
use crate::oci::{self, Descriptor, Document, ImageConfig, Manifest, ParseError, Platform};

/// How many nested indexes a layout entry may go through to reach an image manifest.
const MAX_INDEX_DEPTH: usize = 4;

#[derive(Clone, Debug)]
pub struct InspectedImage {
    /// Where it was read from, as the user would write it.
    pub source: String,
    /// Digest of the manifest; docker archives carry no manifest, so `None` there.
    pub manifest_digest: Option<Digest>,
    /// The manifest, parsed and validated; `None` for docker archives.
    pub manifest_doc: Option<Manifest>,
    pub config_digest: Digest,
    /// The config, parsed and validated.
    pub image_config: ImageConfig,
    /// The manifest and config exactly as stored, for display only (`inspect --json`
    /// shows them with every field, also those the typed model drops). Never read fields from
    /// them: use `manifest_doc` and `image_config`.
    pub manifest: Option<Value>,
    pub config: Value,
    pub layers: Vec<InspectedLayer>,
    /// The tag it was found under, for layouts.
    pub tag: Option<String>,
    /// The image index the layout's entry names (a multi-platform image), whose entry for the
    /// requested platform (else the first) is the image above.
    pub index: Option<InspectedIndex>,
}

/// An image index read from a layout.
#[derive(Clone, Debug)]
pub struct InspectedIndex {
    pub digest: Digest,
    pub media_type: String,
    /// Each entry: its platform (if it names one) and manifest digest.
    pub manifests: Vec<(Option<Platform>, Digest)>,
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

fn invalid(path: &Path, what: &str) -> impl FnOnce(ParseError) -> OutputError {
    move |e| bad(path, format!("invalid {what}: {e}"))
}

/// A document's JSON for display; it parsed as its typed form already, so this cannot fail.
fn display_json(path: &Path, bytes: &[u8]) -> Result<Value, OutputError> {
    serde_json::from_slice(bytes).map_err(|e| bad(path, format!("invalid JSON: {e}")))
}

/// The tags (`org.opencontainers.image.ref.name`) of a layout's entries.
fn tags(index: &oci::Index) -> String {
    let tags: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(Descriptor::ref_name)
        .collect();
    tags.join(", ")
}

fn images(index: &oci::Index) -> impl Iterator<Item = &Descriptor> {
    index.manifests.iter().filter(|m| m.artifact_type.is_none())
}

/// The entry `tag` names, or the only image entry.
fn choose<'a>(
    dir: &Path,
    index: &'a oci::Index,
    tag: Option<&str>,
) -> Result<&'a Descriptor, OutputError> {
    match tag {
        Some(t) => index.find_ref_name(t).ok_or_else(|| {
            bad(
                dir,
                format!("no image tagged `{t}` (tags: {})", tags(index)),
            )
        }),
        // Attached artifacts (entries with an `artifactType`) are not images to choose from.
        None if images(index).count() == 1 => Ok(images(index).next().expect("counted")),
        None => Err(bad(
            dir,
            format!(
                "holds {} images; name one as oci:{}:TAG (tags: {})",
                images(index).count(),
                dir.display(),
                tags(index)
            ),
        )),
    }
}

/// Follows an entry (through nested indexes, to the first manifest of each) to an image
/// manifest: its digest, bytes and parsed form.
fn follow_to_manifest(
    dir: &Path,
    entry: &Descriptor,
    platform: Option<&Platform>,
) -> Result<(Digest, Vec<u8>, Manifest), OutputError> {
    let mut digest = entry.digest.clone();
    for _ in 0..=MAX_INDEX_DEPTH {
        let bytes = read_blob(dir, &digest)?;
        let path = dir.join("blobs/sha256").join(digest.hex());
        match oci::parse(&bytes).map_err(invalid(&path, "manifest"))? {
            Document::Manifest(m) => return Ok((digest, bytes, *m)),
            Document::Index(i) => {
                let chosen = match platform {
                    Some(p) => i.find_platform(p).ok_or_else(|| {
                        bad(
                            &path,
                            format!(
                                "the image index has no image for {p} (it has: {})",
                                index_platforms(&i)
                            ),
                        )
                    })?,
                    None => i
                        .manifests
                        .first()
                        .ok_or_else(|| bad(&path, "empty image index"))?,
                };
                digest = chosen.digest.clone();
            }
        }
    }
    Err(bad(
        dir,
        format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
    ))
}

/// The platforms of an index's entries, for messages.
fn index_platforms(index: &oci::Index) -> String {
    let all: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
        .collect();
    all.join(", ")
}

/// An image index a layout entry names (a multi-platform build).
#[derive(Clone, Debug)]
pub struct LayoutIndex {
    pub digest: Digest,
    /// As stored (its digest checked).
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// Each entry's platform (entries without one are left out).
    pub platforms: Vec<Platform>,
    /// The tag it was found under.
    pub tag: Option<String>,
}

/// The image index the layout entry `oci:DIR[:TAG]` names; `None` when it names an image
/// manifest.
pub fn layout_index(target: &str) -> Result<Option<LayoutIndex>, OutputError> {
    let (dir, tag) = layout_dir_tag(target)?;
    let index = read_layout_index(&dir)?;
    let chosen = choose(&dir, &index, tag.as_deref())?;
    let bytes = read_blob(&dir, &chosen.digest)?;
    let path = dir.join("blobs/sha256").join(chosen.digest.hex());
    Ok(
        match oci::parse(&bytes).map_err(invalid(&path, "manifest"))? {
            Document::Manifest(_) => None,
            Document::Index(i) => Some(LayoutIndex {
                digest: chosen.digest.clone(),
                media_type: i.effective_media_type().as_str().to_owned(),
                platforms: i
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.clone())
                    .collect(),
                tag: chosen.ref_name().map(str::to_owned),
                bytes,
            }),
        },
    )
}

fn read_layout_index(dir: &Path) -> Result<oci::Index, OutputError> {
    let index_path = dir.join("index.json");
    if !dir.join("oci-layout").is_file() {
        return Err(bad(dir, "not an OCI image layout (no oci-layout file)"));
    }
    let index_bytes = fs::read(&index_path).map_err(io_err(&index_path))?;
    oci::Index::parse(&index_bytes).map_err(invalid(&index_path, "index.json"))
}

fn read_layout(dir: &Path, tag: Option<&str>, source: &str) -> Result<InspectedImage, OutputError> {
    read_layout_for(dir, tag, source, None)
}

/// Reads a layout entry; through an image index, the image for `platform` (else the first).
fn read_layout_for(
    dir: &Path,
    tag: Option<&str>,
    source: &str,
    platform: Option<&Platform>,
) -> Result<InspectedImage, OutputError> {
    let index = read_layout_index(dir)?;
    let chosen = choose(dir, &index, tag)?;
    let (digest, manifest_bytes, manifest) = follow_to_manifest(dir, chosen, platform)?;
    let image_index = (digest != chosen.digest)
        .then(|| {
            let bytes = read_blob(dir, &chosen.digest).ok()?;
            let i = oci::Index::parse(&bytes).ok()?;
            Some(InspectedIndex {
                digest: chosen.digest.clone(),
                media_type: i.effective_media_type().as_str().to_owned(),
                manifests: i
                    .manifests
                    .iter()
                    .map(|m| (m.platform.clone(), m.digest.clone()))
                    .collect(),
            })
        })
        .flatten();
    let manifest_path = dir.join("blobs/sha256").join(digest.hex());
    let config_digest = manifest.config.digest.clone();
    let config_bytes = read_blob(dir, &config_digest)?;
    let config_path = dir.join("blobs/sha256").join(config_digest.hex());
    let image_config =
        ImageConfig::parse(&config_bytes).map_err(invalid(&config_path, "config"))?;
    let diff_ids = &image_config.rootfs.diff_ids;
    let layers = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| InspectedLayer {
            id: l.digest.to_string(),
            size: l.size,
            media_type: l.media_type.to_string(),
            diff_id: diff_ids.get(i).cloned(),
        })
        .collect();
    Ok(InspectedImage {
        source: source.to_string(),
        manifest_digest: Some(digest),
        manifest: Some(display_json(&manifest_path, &manifest_bytes)?),
        manifest_doc: Some(manifest),
        config_digest,
        config: display_json(&config_path, &config_bytes)?,
        image_config,
        layers,
        tag: chosen.ref_name().map(str::to_string),
        index: image_index,
    })
}

/// Reads `oci:DIR[:TAG]` (or a bare directory) for pushing: the layout directory and the image.
pub fn read_layout_for_push(target: &str) -> Result<(PathBuf, InspectedImage), OutputError> {
    read_layout_platform(target, None)
}

/// [`read_layout_for_push`]; through an image index, the image for `platform`.
pub fn read_layout_platform(
    target: &str,
    platform: Option<&Platform>,
) -> Result<(PathBuf, InspectedImage), OutputError> {
    let (dir, tag) = layout_dir_tag(target)?;
    let image = read_layout_for(&dir, tag.as_deref(), target, platform)?;
    Ok((dir, image))
}

/// `oci:DIR[:TAG]` or a bare directory.
fn layout_dir_tag(target: &str) -> Result<(PathBuf, Option<String>), OutputError> {
    match target.parse::<OutputTarget>() {
        Ok(OutputTarget::OciLayout { dir, tag }) => Ok((dir, tag)),
        Ok(OutputTarget::DockerArchive { file }) => Err(bad(
            &file,
            "docker archives carry no manifest to push; push the OCI layout or build with --push",
        )),
        Err(_) => Ok((PathBuf::from(target), None)),
    }
}

/// One image in a docker archive's `manifest.json` (Docker's field names).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
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
    let entries: Vec<ArchiveEntry> = serde_json::from_slice(manifest)
        .map_err(|e| bad(file, format!("invalid manifest.json: {e}")))?;
    let first = entries
        .first()
        .ok_or_else(|| bad(file, "manifest.json lists no image"))?;
    let config_name = first.config.as_str();
    let config_bytes = small.get(config_name).ok_or_else(|| {
        bad(
            file,
            format!("config {config_name} missing from the archive"),
        )
    })?;
    let config_digest = Digest::of(config_bytes);
    let config_path = PathBuf::from(config_name);
    let image_config = ImageConfig::parse(config_bytes).map_err(invalid(&config_path, "config"))?;
    let diff_ids = &image_config.rootfs.diff_ids;
    let layers = first
        .layers
        .iter()
        .enumerate()
        .map(|(i, name)| InspectedLayer {
            size: sizes.get(name).copied().unwrap_or_default(),
            id: name.clone(),
            media_type: "application/x-tar".into(),
            diff_id: diff_ids.get(i).cloned(),
        })
        .collect();
    Ok(InspectedImage {
        source: source.to_string(),
        manifest_digest: None,
        manifest: None,
        manifest_doc: None,
        config_digest,
        config: display_json(&config_path, config_bytes)?,
        image_config,
        layers,
        tag: None,
        index: None,
    })
}
