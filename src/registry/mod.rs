//! Push to and pull from registries over the OCI distribution API.
//!
//! Our own client on reqwest + tokio rather than `oci-client`: that crate has no retries, treats the
//! spec's 202 answer to a cross-repo mount as an error (leaving the upload session open), asks tokens
//! only for the target repository (so mounts fall back to uploads), and reads no credential helpers.
//!
//! - [`Reference`] parses `host[:port]/repo[:tag][@sha256:…]`;
//! - [`Registry`] (async) and [`BlockingRegistry`] (own runtime, for the synchronous pipeline) push
//!   images ([`ImageToPush`]) and pull manifests and blobs;
//! - [`PushProgress`] lets a front end draw per-blob progress without this module knowing about it.
//!
//! Secrets (passwords, tokens) only ever live in [`Secret`], whose `Debug`/`Display` print `***`.
//!
//! ```no_run
//! use stevedore::registry::*;
//! # fn blobs() -> Vec<BlobRef> { vec![] }
//! # fn main() -> Result<(), RegistryError> {
//! let reg = BlockingRegistry::new(RegistryOptions {
//!     credentials: CredentialSource::from_user_pass("ci:token")?, // or CredentialSource::Auto
//!     ..Default::default()
//! })?;
//! let manifest = RawManifest {
//!     bytes: std::fs::read("manifest.json").unwrap(), // the exact bytes that were hashed
//!     media_type: media_types::OCI_MANIFEST.into(),
//! };
//! let mut image = ImageToPush::new(manifest, blobs());
//! image.tags = vec!["latest".into()];
//! // Base layers that are not local: leave them out of `blobs`, name their repository here.
//! image.mount_sources = vec!["registry.local:5000/base/debian:12".parse()?];
//! let report = reg.push_image(&"registry.local:5000/app:1.0".parse()?, &image)?;
//! println!("{}", report.manifest_digest);
//! # Ok(()) }
//! ```
//!
//! Transport rules: HTTPS by default (system roots, plus `ca_file` or `SSL_CERT_FILE`); plain HTTP
//! only for loopback registries or with `insecure`. Requests that fail with connection errors,
//! stalls, 408, 429 or 5xx are retried with backoff, honouring `Retry-After`; every attempt streams
//! the body afresh from the file.

mod auth;
mod client;
mod credentials;
mod error;
mod pull;
mod push;
mod reference;

pub use client::{
    BlockingRegistry, Registry, RegistryOptions, RetryPolicy, install_crypto_provider,
};
pub use credentials::{CredentialSource, Secret};
pub use error::RegistryError;
pub use pull::Platform;
pub use push::{BlobRef, ImageToPush, NoProgress, PushProgress, PushReport, RawManifest};
pub use reference::Reference;

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Media types the registry code needs to recognise.
pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";

    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }
}
