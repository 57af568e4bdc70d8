//! Supply chain for a built image: its provenance, signature and other documents (SBOMs),
//! attached as OCI 1.1 artifacts to the pushed image or to an OCI layout; and listing an
//! image's referrers for `inspect`.

use std::path::Path;

use super::{BuildError, BuildResult};
use crate::attach::{self, Artifact, Attachment};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::oci::{self, Descriptor, Manifest, MediaType, names};
use crate::output::{self, OutputTarget};
use crate::provenance::{self, ExternalParameters, FileMaterial, Inputs};
use crate::recipe;
use crate::registry::{
    BlobRef, BlockingRegistry, ImageToPush, PushedReferrer, RawManifest, Reference, RegistryOptions,
};
use crate::sbom::SbomFormat;
use crate::sign::{self, SigningKey};

pub use super::verify_provenance::{ProvenanceReport, verify_provenance};

/// What to attach to a built image.
#[derive(Debug, Default)]
pub struct AttestOptions {
    /// Attach SLSA provenance.
    pub provenance: bool,
    /// Sign the manifest digest (pushes only: a signature names a repository).
    pub sign_key: Option<SigningKey>,
    /// Documents made elsewhere (SBOMs, see [`sbom_attachments`]).
    pub attachments: Vec<Attachment>,
    /// The build options provenance records.
    pub locked: bool,
    pub strict: bool,
}

impl AttestOptions {
    pub fn is_empty(&self) -> bool {
        !self.provenance && self.sign_key.is_none() && self.attachments.is_empty()
    }
}

/// `--sbom FORMATS`: the SBOM documents of the built image (written from the lock and the
/// layers the build just used, never by scanning) as attachments, one per format.
pub fn sbom_attachments(
    formats: &[SbomFormat],
    result: &BuildResult,
    cache_dir: &Path,
) -> Result<Vec<Attachment>, BuildError> {
    if formats.is_empty() {
        return Ok(Vec::new());
    }
    let cache = Cache::open(cache_dir)?;
    let documents = crate::sbom::documents(&result.sbom_input(&cache), formats)?;
    Ok(documents
        .into_iter()
        .map(|d| Attachment::new(d.media_type, d.media_type, d.bytes))
        .collect())
}

/// The image manifest as a `subject` descriptor.
fn subject(result: &BuildResult) -> Descriptor {
    let image = &result.image;
    Descriptor::new(
        MediaType::from(image.manifest_media_type.as_str()),
        image.manifest_digest.clone(),
        image.manifest_size,
    )
}

/// The recipe's repository: its work tree (canonical) and HEAD with `origin`'s URL, if any.
fn git_of(dir: &Path) -> Option<(std::path::PathBuf, String, Option<String>)> {
    let repo = gix::discover(dir).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let head = repo.head_id().ok()?.detach().to_string();
    let remote = repo.find_remote("origin").ok().and_then(|r| {
        r.url(gix::remote::Direction::Fetch)
            .and_then(crate::plan::git::source_url)
    });
    Some((workdir, head, remote))
}

/// A file's path relative to the work tree (`/`-separated), else as given.
fn repo_path(path: &Path, workdir: Option<&Path>) -> String {
    let rel = workdir.and_then(|w| {
        let full = path.canonicalize().ok()?;
        full.strip_prefix(w).ok().map(Path::to_path_buf)
    });
    rel.as_deref()
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn material(path: &Path, workdir: Option<&Path>) -> Result<FileMaterial, BuildError> {
    let bytes = std::fs::read(path).map_err(|source| crate::cache::CacheError {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(FileMaterial {
        path: repo_path(path, workdir),
        sha256: Digest::of(&bytes),
    })
}

/// The provenance statement of a build of `recipe_path`.
pub fn provenance_inputs(
    recipe_path: &Path,
    result: &BuildResult,
    opts: &AttestOptions,
) -> Result<Inputs, BuildError> {
    let recipe = recipe::load(recipe_path)?;
    let git = git_of(&recipe.dir);
    let workdir = git.as_ref().map(|g| g.0.as_path());
    let recipes = recipe
        .chain()
        .iter()
        .rev()
        .map(|r| material(&r.path, workdir))
        .collect::<Result<Vec<_>, _>>()?;
    let lock_path = crate::plan::lockfile_path(recipe_path);
    let lockfile = match lock_path.is_file() {
        true => Some(material(&lock_path, workdir)?),
        false => None,
    };
    let path = repo_path(recipe_path, workdir);
    Ok(Inputs {
        subject_name: result.image.name.clone().unwrap_or_else(|| path.clone()),
        image_digest: result.image.manifest_digest.clone(),
        parameters: ExternalParameters {
            recipe: path,
            locked: opts.locked,
            strict: opts.strict,
            source_date_epoch: crate::plan::TimePolicy::from_env()?.source_date_epoch(),
        },
        recipes,
        lockfile,
        lock: result.lock.clone(),
        git: git.map(|(_, head, remote)| (head, remote)),
        base: result
            .base
            .as_ref()
            .map(|b| (b.reference.name(), b.image.manifest_digest.clone())),
    })
}

/// The artifacts of every document: provenance first, then the given attachments.
fn documents(
    recipe_path: &Path,
    result: &BuildResult,
    opts: &AttestOptions,
) -> Result<Vec<Artifact>, BuildError> {
    let mut docs = Vec::new();
    if opts.provenance {
        let statement = provenance::statement(&provenance_inputs(recipe_path, result, opts)?);
        docs.push(Attachment::new(
            names::IN_TOTO,
            names::IN_TOTO,
            provenance::to_bytes(&statement),
        ));
    }
    docs.extend(opts.attachments.iter().cloned());
    let subject = subject(result);
    let created = crate::image::rfc3339(result.created);
    Ok(docs
        .iter()
        .map(|d| attach::artifact(d, &subject, &created))
        .collect())
}

/// Attaches the documents (and the signature) to the image pushed to `target`: every artifact
/// goes into the target's repository, recorded as a referrer of the image (referrers API, else
/// the `sha256-<hex>` tag); the signature also under cosign's `sha256-<hex>.sig` tag.
pub fn attach_to_registry(
    recipe_path: &Path,
    result: &BuildResult,
    opts: &AttestOptions,
    target: &Reference,
    registry: &BlockingRegistry,
    cache: &Cache,
) -> Result<Vec<PushedReferrer>, BuildError> {
    let repo = Reference::new(&target.registry, &target.repository)?;
    let mut artifacts = documents(recipe_path, result, opts)?;
    if let Some(key) = &opts.sign_key {
        artifacts.push(signature(key, &repo, &subject(result), registry, cache)?);
    }
    let mut pushed = Vec::new();
    for a in &artifacts {
        let mut blobs = Vec::new();
        for (bytes, d) in a.blobs.iter().zip(a.manifest.descriptors()) {
            let digest = cache.put_bytes(bytes)?;
            blobs.push(BlobRef {
                path: cache.blob_path(&digest),
                size: bytes.len() as u64,
                media_type: d.media_type.to_string(),
                digest,
            });
        }
        let mut image = ImageToPush::new(
            RawManifest {
                bytes: a.manifest_bytes.clone(),
                media_type: names::OCI_MANIFEST.to_owned(),
            },
            blobs,
        );
        image.tags = a.tags.clone();
        pushed.push(registry.push_referrer(&repo, &image, a.replaces.as_ref())?);
    }
    Ok(pushed)
}

/// Largest signature layer read back from a `.sig` manifest (a payload is a few hundred bytes).
const MAX_SIGNATURE_LAYER: u64 = 1 << 20;

/// The signature artifact: the current `.sig` manifest's signatures plus this key's.
fn signature(
    key: &SigningKey,
    repo: &Reference,
    subject: &Descriptor,
    registry: &BlockingRegistry,
    cache: &Cache,
) -> Result<Artifact, BuildError> {
    let tag = repo.with_tag(&oci::signature_tag(&subject.digest))?;
    let existing = match registry.manifest_if_exists(&tag)? {
        None => None,
        Some(raw) => {
            let m = Manifest::parse(&raw.bytes).map_err(|e| {
                crate::registry::RegistryError::InvalidManifest(format!("{tag}: {e}"))
            })?;
            let mut layers = Vec::new();
            for l in &m.layers {
                if l.size > MAX_SIGNATURE_LAYER {
                    return Err(crate::registry::RegistryError::InvalidManifest(format!(
                        "{tag}: a signature layer of {} bytes",
                        l.size
                    ))
                    .into());
                }
                let path = registry.fetch_blob(&tag, &l.digest, l.size, &cache.tmp_dir())?;
                let bytes = std::fs::read(&path).map_err(|source| crate::cache::CacheError {
                    path: path.clone(),
                    source,
                });
                let _ = std::fs::remove_file(&path);
                layers.push(bytes?);
            }
            Some((m, raw.digest(), layers))
        }
    };
    Ok(sign::signature_artifact(
        key,
        &repo.name(),
        subject,
        existing,
    )?)
}

/// Attaches the documents to the image written to the OCI layout `dir`. Signatures are not
/// written to layouts: a signature names a registry repository, which a layout does not have.
pub fn attach_to_layout(
    recipe_path: &Path,
    result: &BuildResult,
    opts: &AttestOptions,
    dir: &Path,
) -> Result<usize, BuildError> {
    let artifacts = documents(recipe_path, result, opts)?;
    output::write_artifacts(dir, &artifacts).map_err(|source| BuildError::Output {
        target: format!("oci:{}", dir.display()),
        source,
    })?;
    Ok(artifacts.len())
}

/// Whether `target` names an image in a registry (`host[:port]/repo…`, the host written out:
/// `localhost`, or a name with a `.` or a `:port`), rather than a file: a bare `name` or
/// `path/file` is never sent to Docker Hub by `inspect`.
pub fn is_registry_reference(target: &str) -> bool {
    let s = target.strip_prefix("docker://").unwrap_or(target);
    match s.split_once('/') {
        Some((host, rest)) => {
            !rest.is_empty()
                && !host.starts_with('.')
                && (host == "localhost" || host.contains('.') || host.contains(':'))
                && !Path::new(target).exists()
                && target.parse::<OutputTarget>().is_err()
        }
        None => false,
    }
}

/// One referrer of an image, as `inspect` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub artifact_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl From<&Descriptor> for Referrer {
    fn from(d: &Descriptor) -> Referrer {
        Referrer {
            artifact_type: d
                .artifact_type
                .as_ref()
                .map_or_else(String::new, |t| t.to_string()),
            digest: d.digest.clone(),
            size: d.size,
            annotations: d.annotations.clone(),
        }
    }
}

/// The referrers of the image `target` names: `oci:DIR[:TAG]` (or a directory) lists the
/// layout's artifacts whose subject is that image, a registry reference its referrers there
/// (referrers API, else the fallback tag). A docker archive has none.
pub fn referrers(target: &str, registry: &RegistryOptions) -> Result<Vec<Referrer>, BuildError> {
    let layout = match target.parse::<OutputTarget>() {
        Ok(OutputTarget::OciLayout { dir, .. }) => Some(dir),
        Ok(OutputTarget::DockerArchive { .. }) => return Ok(Vec::new()),
        Err(_) if Path::new(target).exists() => Some(target.into()),
        Err(_) => None,
    };
    let source = |error| BuildError::Source {
        source_ref: target.to_owned(),
        error,
    };
    if let Some(dir) = layout {
        let image = output::read_image(target).map_err(source)?;
        let Some(digest) = image.manifest_digest else {
            return Ok(Vec::new());
        };
        let found = output::layout_referrers(&dir, &digest).map_err(source)?;
        return Ok(found.iter().map(Referrer::from).collect());
    }
    if !is_registry_reference(target) {
        // Neither a layout nor a registry: what read_image says about it is the right error.
        output::read_image(target).map_err(source)?;
        return Ok(Vec::new());
    }
    let reference: Reference = target.parse()?;
    let client = BlockingRegistry::new(registry.clone())?;
    let digest = match &reference.digest {
        Some(d) => d.clone(),
        None => client.manifest_digest(&reference)?.ok_or_else(|| {
            crate::registry::RegistryError::ManifestNotFound {
                reference: reference.to_string(),
            }
        })?,
    };
    let repo = Reference::new(&reference.registry, &reference.repository)?;
    let index = client.referrers(&repo, &digest)?;
    Ok(index
        .manifests
        .iter()
        .filter(|d| d.digest != digest)
        .map(Referrer::from)
        .collect())
}

/// Attaches everything `opts` asks for after a build: to the pushed image (when `push` is
/// given) and to every OCI layout among `outputs`. Returns one line per artifact for stderr.
pub fn attest(
    recipe_path: &Path,
    result: &BuildResult,
    opts: &AttestOptions,
    outputs: &[OutputTarget],
    push: Option<(&Reference, &BlockingRegistry)>,
    cache: &Cache,
) -> Result<Vec<String>, BuildError> {
    let mut lines = Vec::new();
    if opts.is_empty() {
        return Ok(lines);
    }
    let documents = opts.provenance || !opts.attachments.is_empty();
    for target in outputs.iter().filter(|_| documents) {
        if let OutputTarget::OciLayout { dir, .. } = target {
            let n = attach_to_layout(recipe_path, result, opts, dir)?;
            lines.push(format!("attached {n} artifacts to {target}"));
        }
    }
    if let Some((target, registry)) = push {
        for p in attach_to_registry(recipe_path, result, opts, target, registry, cache)? {
            let via = match p.via {
                crate::registry::ReferrersVia::Api => "referrers API".to_owned(),
                crate::registry::ReferrersVia::Tag => {
                    format!("tag {}", oci::referrers_tag(&result.image.manifest_digest))
                }
            };
            lines.push(format!(
                "attached {} to {} ({via})",
                p.digest,
                target.name()
            ));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_written_out_hosts_are_registries() {
        assert!(is_registry_reference("127.0.0.1:5000/app@sha256:00"));
        assert!(is_registry_reference("registry.local/team/app:v1"));
        assert!(is_registry_reference("localhost/app"));
        assert!(!is_registry_reference("app:v1"));
        assert!(!is_registry_reference("out/layout"));
        assert!(!is_registry_reference("./missing.tar"));
        assert!(!is_registry_reference("../x/y"));
        assert!(!is_registry_reference("oci:a.b/c:v1"));
        assert!(!is_registry_reference("docker-archive:x.y/z.tar"));
    }
}
