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

mod auth;
mod client;
mod credentials;
mod error;
mod pull;
mod push;
mod reference;

pub use client::{BlockingRegistry, Registry, RegistryOptions, RetryPolicy};
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
