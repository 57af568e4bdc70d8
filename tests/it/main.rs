//! stevedore's integration tests: one binary, one module per area.
//!
//! One binary rather than one per file (as ripgrep and uv do): the shared helpers below and the
//! heavy dependencies (gix, reqwest, rustls, tokio) are compiled and linked once, not once per
//! file. Tests that touch process-wide state run it in a child process (`registry_env`); every
//! server a test starts listens on a port of its own and is stopped by its PID.

// Shared helpers: real registries, generated apt repositories, recipe fixtures.
mod apt_support;
mod common;
mod registry_support;

mod apt_hostile;
mod apt_mirror;
mod apt_repo;
mod apt_resolver;
mod apt_robustness;
mod attest;
mod bad_input;
mod cache;
mod ci_cache;
mod ci_conventions;
mod ci_image;
mod ci_json;
mod ci_labels;
mod ci_logs;
mod cli;
mod cli_push;
mod determinism;
mod distro_images;
mod exit_codes;
mod fleet;
mod git_times;
mod graph;
mod hostile_inputs;
mod keyrings;
mod mmdebstrap_compare;
mod oci_layout;
mod packages;
mod platforms;
mod registry_base;
mod registry_base_packages;
mod registry_env;
mod registry_errors;
mod registry_faults;
mod registry_hostile;
mod registry_push;
mod roundtrip;
mod sbom;
mod setup_packages;
mod tomcat_images;
mod verify;
mod war;
