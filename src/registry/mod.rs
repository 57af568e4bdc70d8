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
//!     // For the push destination only; every other registry gets what docker/containers
//!     // config and helpers hold for it.
//!     host_credentials: vec![HostCredential::from_user_pass("registry.local:5000", "ci:token")?],
//!     ..Default::default()
//! })?;
//! let manifest = RawManifest {
//!     bytes: std::fs::read("manifest.json").unwrap(), // the exact bytes that were hashed
//!     media_type: stevedore::oci::names::OCI_MANIFEST.into(),
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
//! stalls, 408, 429 or 5xx are retried with backoff, honouring `Retry-After` up to a cap; every
//! attempt streams the body afresh from the file.
//!
//! Trust rules: a credential belongs to one registry (`host[:port]`): it is looked up by that
//! host, and its Basic header or bearer token is attached only to requests on that registry's
//! origin (scheme, host, port). Upload `Location`s and redirects to another origin are followed
//! without it. A password or refresh token goes to the token server the registry names only over
//! HTTPS (plain HTTP only when both are on loopback, or with `insecure`). Every answer is read
//! within [`Limits`] and under the idle timeout; numbers from the network are checked.

// Layers, bottom up (no module imports one above it): error, credentials, reference, manifest,
// progress, options → transport (HTTP, TLS, retries, bounded reads) → auth (challenges,
// tokens) → client (hosts, authorization by origin) → pull → push → referrers (OCI 1.1
// artifacts and the `sha256-<hex>` fallback tag).
mod auth;
mod client;
mod credentials;
mod error;
#[cfg(test)]
mod fuzz_tests;
mod manifest;
mod options;
mod progress;
mod pull;
mod push;
mod reference;
mod referrers;
mod tags;
mod transport;

pub use crate::oci::Platform;
pub use client::{BlockingRegistry, Registry};
pub use credentials::{CredentialSource, HostCredential, Secret};
pub use error::RegistryError;
pub use manifest::RawManifest;
pub use options::{Limits, RegistryOptions, RetryPolicy};
pub use progress::{NoProgress, PushProgress};
pub use push::{BlobRef, ImageToPush, PushReport};
pub use reference::Reference;
pub use referrers::{PushedReferrer, ReferrersVia};
pub use transport::install_crypto_provider;

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
