//! The one knob of the property tests ("fuzzing on stable Rust") over outside data.
//!
//! Every parser of outside data (deb822, Packages, Release/InRelease, .deb ar and tar, manifests
//! and indexes, WWW-Authenticate, Range, shell scripts, recipes, WARs, times) has proptest
//! properties: arbitrary bytes and structure-aware mutations of valid inputs must give a value or
//! an error, never a panic. The suite runs a few thousand cases each; a longer search sets
//! `STEVEDORE_FUZZ_CASES` (README, "Trust model"):
//!
//! ```sh
//! STEVEDORE_FUZZ_CASES=50000 cargo test --release --lib
//! STEVEDORE_FUZZ_CASES=50000 cargo test --release --test it apt_robustness::
//! ```

/// Cases per property: `default` in the suite, `STEVEDORE_FUZZ_CASES` for a long run.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("STEVEDORE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A proptest config with [`cases`]; failures are reported, not persisted into the tree.
pub(crate) fn config(default: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: cases(default),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
