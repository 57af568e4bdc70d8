//! Where a finished image goes: an OCI image layout directory or a `docker load` archive, and
//! reading both back for `inspect`.
//!
//! Both writers put complete blobs in place before the file that names them (`index.json`, the
//! archive itself) appears, by temp file and rename; an interrupted write leaves the previous
//! state, never a half-written image.

mod docker_archive;
mod oci_layout;
mod read;

use std::path::PathBuf;
use std::str::FromStr;

pub use read::{
    InspectedImage, InspectedIndex, InspectedLayer, LayoutIndex, layout_index, read_image,
    read_layout_for_push, read_layout_platform,
};

use crate::cache::{Cache, CacheError};
use crate::digest::Digest;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// `oci:DIR[:TAG]`
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE`
    DockerArchive { file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an output; use oci:DIR[:TAG] or docker-archive:FILE")]
pub struct OutputParseError(String);

impl FromStr for OutputTarget {
    type Err = OutputParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_tag(rest);
            if dir.is_empty() {
                return Err(OutputParseError(s.into()));
            }
            return Ok(OutputTarget::OciLayout {
                dir: dir.into(),
                tag: tag.map(str::to_string),
            });
        }
        if let Some(file) = s.strip_prefix("docker-archive:") {
            if file.is_empty() {
                return Err(OutputParseError(s.into()));
            }
            return Ok(OutputTarget::DockerArchive { file: file.into() });
        }
        Err(OutputParseError(s.into()))
    }
}

impl std::fmt::Display for OutputTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputTarget::OciLayout { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            OutputTarget::OciLayout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            OutputTarget::DockerArchive { file } => write!(f, "docker-archive:{}", file.display()),
        }
    }
}

/// `DIR:TAG` → (DIR, TAG) when the part after the last `:` looks like a tag, not a path.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once(':') {
        Some((dir, tag)) if !tag.is_empty() && !tag.contains('/') => (dir, Some(tag)),
        _ => (s, None),
    }
}

/// A built image whose blobs are all in the cache.
#[derive(Clone, Debug)]
pub struct StoredImage {
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    pub layers: Vec<StoredLayer>,
    /// `name:tag` references for archives, and the tags for layouts.
    pub name: Option<String>,
    pub tags: Vec<String>,
}

/// A multi-platform build whose blobs are all in the cache: its image index (OCI, or a Docker
/// manifest list) and the images it lists, in the index's order.
#[derive(Clone, Debug)]
pub struct StoredIndex {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub images: Vec<StoredImage>,
    pub name: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct StoredLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub diff_size: u64,
    pub media_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {message}")]
    Target { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "layer {digest} in the cache does not match its diff_id (cache corrupt; run `stevedore cache gc` and rebuild)"
    )]
    Corrupt { digest: Digest },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks, before anything is built, that a target can be written without clobbering anything
/// that is not ours.
pub fn check_target(target: &OutputTarget) -> Result<(), OutputError> {
    match target {
        OutputTarget::OciLayout { dir, .. } => oci_layout::check(dir),
        OutputTarget::DockerArchive { file } => {
            if file.is_dir() {
                return Err(OutputError::Target {
                    path: file.clone(),
                    message: "is a directory; docker-archive needs a file name".into(),
                });
            }
            Ok(())
        }
    }
}

pub fn write(target: &OutputTarget, image: &StoredImage, cache: &Cache) -> Result<(), OutputError> {
    match target {
        OutputTarget::OciLayout { dir, tag } => {
            oci_layout::write(dir, &layout_tags(tag.as_ref(), &image.tags), image, cache)
        }
        OutputTarget::DockerArchive { file } => docker_archive::write(file, image, cache),
    }
}

/// Writes a multi-platform build. Only an OCI layout holds an index; the build refuses a
/// `docker-archive:` target before building (this error is the last guard).
pub fn write_index(
    target: &OutputTarget,
    index: &StoredIndex,
    cache: &Cache,
) -> Result<(), OutputError> {
    match target {
        OutputTarget::OciLayout { dir, tag } => {
            oci_layout::write_index(dir, &layout_tags(tag.as_ref(), &index.tags), index, cache)
        }
        OutputTarget::DockerArchive { file } => Err(OutputError::Target {
            path: file.clone(),
            message: "a docker archive holds one platform's image, not an index".into(),
        }),
    }
}

/// `oci:DIR:TAG` names one tag; a bare `oci:DIR` gets every tag of the image.
fn layout_tags(tag: Option<&String>, image_tags: &[String]) -> Vec<String> {
    match tag {
        Some(t) => vec![t.clone()],
        None if image_tags.is_empty() => vec!["latest".to_string()],
        None => image_tags.to_vec(),
    }
}

/// Adds attached artifacts (manifests with a `subject`) to the OCI layout in `dir`.
pub fn write_artifacts(
    dir: &std::path::Path,
    artifacts: &[crate::attach::Artifact],
) -> Result<(), OutputError> {
    oci_layout::write_artifacts(dir, artifacts)
}

/// The artifacts of the OCI layout in `dir` whose `subject` is the manifest `image`.
pub fn layout_referrers(
    dir: &std::path::Path,
    image: &Digest,
) -> Result<Vec<crate::oci::Descriptor>, OutputError> {
    oci_layout::referrers(dir, image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            "oci:out/dir:v1".parse::<OutputTarget>().unwrap(),
            OutputTarget::OciLayout {
                dir: "out/dir".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            "oci:/tmp/x".parse::<OutputTarget>().unwrap(),
            OutputTarget::OciLayout {
                dir: "/tmp/x".into(),
                tag: None
            }
        );
        assert_eq!(
            "docker-archive:a.tar".parse::<OutputTarget>().unwrap(),
            OutputTarget::DockerArchive {
                file: "a.tar".into()
            }
        );
        assert!("tarball:x".parse::<OutputTarget>().is_err());
        assert!("oci:".parse::<OutputTarget>().is_err());
    }
}
