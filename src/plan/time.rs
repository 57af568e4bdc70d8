//! Which times go into tar headers and the image's `created`. Never the clock.
//!
//! - `created` and the default mtime: `SOURCE_DATE_EPOCH` when set, else the HEAD commit time of
//!   the recipe's git repository, else a fixed 1970-01-01T00:00:01Z (one second rather than zero
//!   because some tools read a zero mtime as "unset"; Jib and Nix chose the same).
//! - a source file tracked by git and unmodified: the committer time of the last commit that
//!   changed it (clamped to `SOURCE_DATE_EPOCH` when that is earlier);
//! - untracked or edited source files: the default mtime;
//! - what the recipe declares or generates (directories, symlinks, account files):
//!   `SOURCE_DATE_EPOCH`, else the fixed epoch; directories a layer creates then take the newest
//!   time of their content.

use std::path::Path;

use super::git::{GitError, GitInfo};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimePolicy {
    source_date_epoch: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970-01-01")]
pub struct TimePolicyError(pub String);

impl TimePolicy {
    pub const FIXED_EPOCH: u64 = 1;

    pub fn with_source_date_epoch(epoch: Option<u64>) -> Self {
        TimePolicy {
            source_date_epoch: epoch,
        }
    }

    /// Reads `SOURCE_DATE_EPOCH`; a malformed value is an error, not silently ignored.
    pub fn from_env() -> Result<Self, TimePolicyError> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map(|e| Self::with_source_date_epoch(Some(e)))
                .map_err(|_| TimePolicyError(v)),
            _ => Ok(Self::with_source_date_epoch(None)),
        }
    }
}

impl Clock {
    /// The mtime of what the recipe itself declares or generates (directories, symlinks,
    /// account files): `SOURCE_DATE_EPOCH`, else the fixed epoch. Deliberately not HEAD's time,
    /// which would change these entries, and their layers, with every commit. Directories then
    /// take the newest time of their content (see `LayerTree`).
    pub fn generated_time(&self) -> u64 {
        self.source_date_epoch.unwrap_or(TimePolicy::FIXED_EPOCH)
    }
}

/// The time policy applied to one recipe's folder.
pub struct Clock {
    source_date_epoch: Option<u64>,
    pub git: Option<GitInfo>,
}

impl Clock {
    pub fn for_dir(policy: &TimePolicy, dir: &Path) -> Result<Clock, GitError> {
        Ok(Clock {
            source_date_epoch: policy.source_date_epoch,
            git: GitInfo::discover(dir)?,
        })
    }

    /// A clock that ignores git (used where no recipe folder exists).
    pub fn without_git(policy: &TimePolicy) -> Clock {
        Clock {
            source_date_epoch: policy.source_date_epoch,
            git: None,
        }
    }

    /// The image's `created`, and the mtime of everything without a time of its own.
    pub fn default_time(&self) -> u64 {
        self.source_date_epoch
            .or(self.git.as_ref().map(|g| g.head_time))
            .unwrap_or(TimePolicy::FIXED_EPOCH)
    }

    /// The blob id git has for `host` at HEAD, when it tracks it (to compare with the content).
    pub fn tracked(&self, host: &Path) -> Option<(gix::ObjectId, u64)> {
        self.git.as_ref()?.tracked(host)
    }

    /// The mtime of a source whose git blob id is `content_id` (if computed).
    pub fn source_time(&self, host: &Path, content_id: Option<gix::ObjectId>) -> u64 {
        match (self.tracked(host), content_id) {
            (Some((head_id, time)), Some(id)) if head_id == id => match self.source_date_epoch {
                Some(sde) => time.min(sde),
                None => time,
            },
            _ => self.default_time(),
        }
    }
}
