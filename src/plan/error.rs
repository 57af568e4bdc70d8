//! Why a recipe could not be planned, at the recipe line it concerns, with the error that caused
//! it kept as its source (so its class, and so the exit code, is the cause's).

use std::path::PathBuf;

use super::git::GitError;
use super::setup::StepError;
use crate::apt::AptError;
use crate::apt::lock::LockError;
use crate::error::{Classify, ErrorClass};
use crate::layer::TreeError;
use crate::recipe::Location;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A source the recipe names (a file, folder, WAR) that cannot be used as written.
    #[error("{location}: {message}{}", help_line(.help))]
    Source {
        location: Location,
        message: String,
        help: Option<String>,
    },
    /// The git repository a recipe lives in (its times and tag values) could not be read.
    #[error("{location}: {source}")]
    Git {
        location: Location,
        #[source]
        source: GitError,
    },
    #[error("{location}: reading keyring {}: {source}", .path.display())]
    Keyring {
        location: Location,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {source}")]
    Lockfile {
        location: Location,
        #[source]
        source: Box<LockError>,
    },
    #[error("{location}: no lockfile {}\n  help: run `stevedore lock {}` first", .path.display(), .recipe.display())]
    NoLockfile {
        location: Location,
        path: PathBuf,
        recipe: PathBuf,
    },
    #[error(
        "{location}: {} is out of date: the recipe's sources or packages changed since it was made\n  help: run `stevedore lock {}`",
        .path.display(), .recipe.display()
    )]
    StaleLockfile {
        location: Location,
        path: PathBuf,
        recipe: PathBuf,
    },
    #[error(
        "{location}: the lockfile has no entry for this layer\n  help: run `stevedore lock` for this recipe"
    )]
    NotLocked { location: Location },
    /// Verifying, loading or resolving against the recipe's apt sources.
    #[error("{location}: {source}")]
    Apt {
        location: Location,
        // Boxed here and below: the large causes would make every planning `Result` large.
        #[source]
        source: Box<AptError>,
    },
    /// Fetching, installing or setting up a package layer's packages.
    #[error("{location}: {source}")]
    Packages {
        location: Location,
        #[source]
        source: Box<StepError>,
    },
    /// A layer's listing kept in the cache does not apply: the cache is damaged.
    #[error("{location}: cache: {detail}")]
    CachedListing { location: Location, detail: String },
    /// The entries of a layer contradict each other or the layers below.
    #[error("{location}: {source}")]
    Tree {
        location: Location,
        #[source]
        source: Box<TreeError>,
    },
    #[error(
        "{location}: /{path}: a copied folder writes below /{top} over a registry base whose tree was not read\n  help: name the /{top}/… path in the recipe (the base's tree is then read and the path follows its /{top} symlink), or write /usr/{top}/…"
    )]
    MergedUsrLink {
        location: Location,
        path: String,
        top: String,
    },
    /// A tag template that cannot be filled or does not make a valid tag.
    #[error("{location}: {message}")]
    Tag { location: Location, message: String },
}

fn help_line(help: &Option<String>) -> String {
    help.as_ref()
        .map(|h| format!("\n  help: {h}"))
        .unwrap_or_default()
}

impl PlanError {
    /// A problem with a source the recipe names, at `location`.
    pub(crate) fn new(location: &Location, message: impl Into<String>) -> Self {
        PlanError::Source {
            location: location.clone(),
            message: message.into(),
            help: None,
        }
    }

    /// Adds advice to a [`PlanError::Source`] (other causes carry their own).
    pub(crate) fn help(mut self, text: impl Into<String>) -> Self {
        if let PlanError::Source { help, .. } = &mut self {
            *help = Some(text.into());
        }
        self
    }

    /// The recipe line the error concerns.
    pub fn location(&self) -> &Location {
        match self {
            PlanError::Source { location, .. }
            | PlanError::Git { location, .. }
            | PlanError::Keyring { location, .. }
            | PlanError::Lockfile { location, .. }
            | PlanError::NoLockfile { location, .. }
            | PlanError::StaleLockfile { location, .. }
            | PlanError::NotLocked { location }
            | PlanError::Apt { location, .. }
            | PlanError::Packages { location, .. }
            | PlanError::CachedListing { location, .. }
            | PlanError::Tree { location, .. }
            | PlanError::MergedUsrLink { location, .. }
            | PlanError::Tag { location, .. } => location,
        }
    }
}

impl Classify for PlanError {
    fn class(&self) -> ErrorClass {
        match self {
            PlanError::Apt { source, .. } => source.class(),
            PlanError::Packages { source, .. } => source.class(),
            PlanError::CachedListing { .. } => ErrorClass::Build,
            PlanError::Source { .. }
            | PlanError::Git { .. }
            | PlanError::Keyring { .. }
            | PlanError::Lockfile { .. }
            | PlanError::NoLockfile { .. }
            | PlanError::StaleLockfile { .. }
            | PlanError::NotLocked { .. }
            | PlanError::Tree { .. }
            | PlanError::MergedUsrLink { .. }
            | PlanError::Tag { .. } => ErrorClass::Input,
        }
    }
}
