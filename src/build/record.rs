//! What the last build of a recipe produced, kept in the cache for `verify`.

use std::path::Path;

use crate::cache::Cache;
use crate::digest::Digest;
use crate::output::StoredImage;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct BuildRecord {
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<RecordedLayer>,
}

/// One layer of a recorded build. Stored as a JSON array `[name, digest, media type]`, the
/// form records have always had.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "(String, Digest, String)", into = "(String, Digest, String)")]
pub(super) struct RecordedLayer {
    pub name: String,
    pub digest: Digest,
    pub media_type: String,
}

impl From<(String, Digest, String)> for RecordedLayer {
    fn from((name, digest, media_type): (String, Digest, String)) -> Self {
        RecordedLayer {
            name,
            digest,
            media_type,
        }
    }
}

impl From<RecordedLayer> for (String, Digest, String) {
    fn from(l: RecordedLayer) -> Self {
        (l.name, l.digest, l.media_type)
    }
}

/// The record's name in the cache: a digest of the recipe's canonical path.
pub(super) fn record_name(recipe_path: &Path) -> String {
    let canonical = recipe_path
        .canonicalize()
        .unwrap_or_else(|_| recipe_path.to_path_buf());
    format!(
        "build-{}",
        Digest::of(canonical.to_string_lossy().as_bytes()).hex()
    )
}

/// The record of the recipe's last build for one platform (a multi-platform build keeps one
/// per platform, which `verify --platform` compares with).
pub(super) fn platform_record_name(recipe_path: &Path, platform: &crate::oci::Platform) -> String {
    format!(
        "{}-{}",
        record_name(recipe_path),
        platform.to_string().replace('/', "-")
    )
}

/// Saves the record under the recipe's name and under its platform's.
pub(super) fn save(
    recipe_path: &Path,
    platform: &crate::oci::Platform,
    image: &StoredImage,
    names: &[String],
    cache: &Cache,
) {
    let record = BuildRecord {
        manifest_digest: image.manifest_digest.clone(),
        config_digest: image.config_digest.clone(),
        layers: image
            .layers
            .iter()
            .zip(names)
            .map(|(l, n)| RecordedLayer {
                name: n.clone(),
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            })
            .collect(),
    };
    if let Ok(json) = serde_json::to_vec(&record) {
        // Only an aid for `verify`: failing to save it must not fail the build.
        let _ = cache.put_named("builds", &record_name(recipe_path), &json);
        let _ = cache.put_named(
            "builds",
            &platform_record_name(recipe_path, platform),
            &json,
        );
    }
}
