//! stevedore: a daemonless, Dockerfile-free, reproducible container image builder.
//!
//! Data flows one way: **recipe → plan → layers → image → output**.
//!
//! - [`recipe`] reads and validates TOML recipes (errors carry file, line and column);
//! - [`plan`] turns a recipe chain into layer inputs and cache keys, reading sources but writing nothing;
//! - [`layer`] writes each layer as one deterministic tar stream, hashed and compressed in one pass;
//! - [`cache`] is the content-addressed blob store the layers land in;
//! - [`oci`] is the OCI model: media types, platforms, descriptors, manifests, indexes and
//!   configs, and the one validating `parse` every reader of outside documents uses;
//! - [`image`] builds the OCI config, manifest and index from the layers;
//! - [`output`] writes an OCI image layout or a `docker load` archive, and reads them back;
//! - [`attach`], [`provenance`] and [`sign`] make the documents attached to an image (OCI 1.1
//!   artifacts: SBOMs, SLSA provenance, cosign signatures);
//! - [`sbom`] writes the SPDX and CycloneDX documents of a built image from what the build knows.
//!
//! [`graph`] draws the layers of some recipes' plans (which are cached, which are shared).
//!
//! [`build`] strings the stages together; the CLI only parses arguments and calls it, and maps
//! every error's [`ErrorClass`] to its exit code. [`cli`] is what the command shows: logs,
//! progress, and the `plan` and `inspect` reports.

// Issue 13: one function per decision, short enough to read at once (threshold in clippy.toml).
// Tests are exempt: a test reads top to bottom as one story.
#![warn(clippy::too_many_lines)]

pub mod apt;
pub mod attach;
pub mod build;
pub mod cache;
pub mod cli;
pub mod digest;
pub mod error;
pub mod fleet;
#[cfg(test)]
mod fuzz;
pub mod graph;
pub mod image;
pub mod image_path;
pub mod layer;
pub mod oci;
pub mod output;
pub mod plan;
pub mod provenance;
pub mod recipe;
pub mod registry;
pub mod rootfs;
pub mod sbom;
pub mod sign;
pub mod tls;

pub use error::{Classify, ErrorClass};
