//! `build --metadata-file FILE`: what a build made and where it went, as JSON for the next step
//! of a pipeline (schemas/metadata.schema.json).
//!
//! The keys a pipeline already reads from `docker buildx build --metadata-file` keep their
//! names and meaning: `containerimage.digest` (the manifest digest), `containerimage.config.digest`,
//! `containerimage.descriptor` (the manifest's descriptor) and `image.name` (the pushed
//! references, comma-separated, only when pushed). stevedore's own facts sit under
//! `stevedore.*`: tags, outputs, every layer (base, built or cached, with sizes), and for a
//! push each blob and whether it was uploaded, mounted from another repository or already there.
//!
//! The file is written only after the whole build (and push) succeeded, through a temp file in
//! the same folder renamed into place: a reader never sees half a file, nor one from a failed
//! run (a stale file from an earlier run is left as it was).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::build::{BuildResult, LayerStatus, MultiBuild};
use crate::digest::Digest;
use crate::output::OutputTarget;
use crate::registry::{PushReport, Reference};

#[derive(Debug, thiserror::Error)]
#[error("writing the metadata file {path}: {source}")]
pub struct MetadataError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What became of one blob in a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedBlob {
    pub digest: Digest,
    pub size: u64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Uploaded,
    /// Mounted from this repository of the same registry.
    Mounted(String),
    /// The registry had it already.
    Skipped,
}

/// Collects the blobs of a push as the registry client reports them (from its threads).
#[derive(Debug, Default)]
pub struct PushLog {
    blobs: Mutex<Vec<PushedBlob>>,
}

impl PushLog {
    pub fn record(&self, digest: &Digest, size: u64, outcome: Outcome) {
        self.blobs
            .lock()
            .expect("no panics hold this lock")
            .push(PushedBlob {
                digest: digest.clone(),
                size,
                outcome,
            });
    }

    /// The blobs so far, by digest.
    pub fn blobs(&self) -> Vec<PushedBlob> {
        let mut all = self.blobs.lock().expect("no panics hold this lock").clone();
        all.sort_by(|a, b| a.digest.cmp(&b.digest));
        all
    }
}

/// A finished push, for the metadata.
pub struct Pushed<'a> {
    pub target: &'a Reference,
    pub report: &'a PushReport,
    pub blobs: Vec<PushedBlob>,
}

/// The metadata document of a successful build.
pub fn document(result: &BuildResult, outputs: &[OutputTarget], push: Option<&Pushed>) -> Value {
    let image = &result.image;
    let layers = layers_json(result);
    let mut doc = json!({
        "containerimage.digest": image.manifest_digest.to_string(),
        "containerimage.config.digest": image.config_digest.to_string(),
        "containerimage.descriptor": {
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest_size,
        },
        "stevedore.tags": image.tags,
        "stevedore.outputs": outputs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "stevedore.layers": layers,
    });
    if let Some(p) = push {
        let names: Vec<String> = p
            .report
            .tags
            .iter()
            .map(|t| format!("{}:{t}", p.target.name()))
            .collect();
        doc["image.name"] = json!(names.join(","));
        doc["stevedore.push"] = push_json(p);
    }
    doc
}

/// The metadata of a multi-platform build: `containerimage.digest` and `.descriptor` are the
/// index's (as buildx writes them for a multi-platform build), `containerimage.config.digest`
/// the first platform's config; `stevedore.layers` lists every platform's layers, a layer the
/// platforms share once; `stevedore.platforms` each platform's manifest and config.
pub fn document_several(
    multi: &MultiBuild,
    outputs: &[OutputTarget],
    push: Option<&Pushed>,
) -> Value {
    let mut doc = document(&multi.images[0].1, outputs, push);
    let index = &multi.index;
    doc["containerimage.digest"] = json!(index.digest.to_string());
    doc["containerimage.descriptor"] = json!({
        "mediaType": index.media_type,
        "digest": index.digest.to_string(),
        "size": index.size,
    });
    let mut layers: Vec<Value> = Vec::new();
    for (_, built) in &multi.images {
        for l in layers_json(built) {
            if !layers.iter().any(|x| x["digest"] == l["digest"]) {
                layers.push(l);
            }
        }
    }
    doc["stevedore.layers"] = json!(layers);
    doc["stevedore.platforms"] = multi
        .images
        .iter()
        .map(|(platform, built)| {
            json!({
                "platform": platform.to_string(),
                "digest": built.image.manifest_digest.to_string(),
                "mediaType": built.image.manifest_media_type,
                "size": built.image.manifest_size,
                "configDigest": built.image.config_digest.to_string(),
            })
        })
        .collect();
    doc
}

/// Every layer of the image, bottom first: base, built or cached.
fn layers_json(result: &BuildResult) -> Vec<Value> {
    let image = &result.image;
    let base_layers = image.layers.len().saturating_sub(result.layers.len());
    image
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let own = i
                .checked_sub(base_layers)
                .and_then(|j| result.layers.get(j));
            let status = match own.map(|o| &o.status) {
                None => "base",
                Some(LayerStatus::Built) => "built",
                Some(_) => "cached",
            };
            json!({
                "name": own.map(|o| &o.name),
                "status": status,
                "digest": l.digest.to_string(),
                "size": l.size,
                "diffId": l.diff_id.to_string(),
                "diffSize": l.diff_size,
                "mediaType": l.media_type,
            })
        })
        .collect()
}

fn push_json(p: &Pushed) -> Value {
    let blobs: Vec<Value> = p
        .blobs
        .iter()
        .map(|b| {
            let (outcome, from) = match &b.outcome {
                Outcome::Uploaded => ("uploaded", None),
                Outcome::Mounted(from) => ("mounted", Some(from)),
                Outcome::Skipped => ("skipped", None),
            };
            json!({"digest": b.digest.to_string(), "size": b.size, "outcome": outcome, "from": from})
        })
        .collect();
    json!({
        "repository": p.target.name(),
        "tags": p.report.tags,
        "manifestDigest": p.report.manifest_digest.to_string(),
        "uploaded": p.report.blobs_uploaded,
        "mounted": p.report.blobs_mounted,
        "skipped": p.report.blobs_skipped,
        "bytesUploaded": p.report.bytes_uploaded,
        "blobs": blobs,
    })
}

/// Writes `doc` to `path` atomically: a temp file in the same folder, synced, renamed.
pub fn write(path: &Path, doc: &Value) -> Result<(), MetadataError> {
    let fail = |source| MetadataError {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    let mut text = serde_json::to_string_pretty(doc).expect("JSON values serialize");
    text.push('\n');
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_data().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
