//! What the `stevedore` command shows people and machines: how logs are written (colour only
//! for a terminal, one line per event, JSON for log collectors), progress while building and
//! pushing, and the `plan` and `inspect` reports. The binary (`src/main.rs`) only parses the
//! command line and calls into the library; everything it prints is decided here, so it can be
//! tested without a process and changed without touching the argument definitions.
//!
//! This module sits at the end of the pipeline: it reads what [`crate::build`], [`crate::plan`],
//! [`crate::output`] and [`crate::registry`] report and never calls back into them for work.

pub mod docs;
pub mod log;
pub mod metadata;
pub mod progress;
pub mod show;

/// What `plan` and `inspect` print on stdout (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A report for people.
    #[default]
    Text,
    /// One JSON document, as the schema in `schemas/` describes it.
    Json,
}

/// A byte count for people: decimal units, one decimal place (`12.3 MB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_000), "1.0 KB");
        assert_eq!(human(12_345_678), "12.3 MB");
    }
}
