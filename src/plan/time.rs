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
#[error("SOURCE_DATE_EPOCH={value:?} {why}")]
pub struct TimePolicyError {
    pub value: String,
    pub why: TimeRangeError,
}

/// Why a number of seconds is not a time the image can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeRangeError {
    #[error("is not a whole number of seconds since 1970-01-01")]
    NotANumber,
    #[error("is before 1970-01-01, which tar headers and the image's `created` cannot hold")]
    BeforeEpoch,
    #[error("is after 9999-12-31T23:59:59Z, the last time the image's RFC 3339 `created` can hold")]
    AfterYear9999,
}

/// The last second an image time can be: `created` is RFC 3339, whose year has four digits.
/// (Tar headers hold later times, in a PAX record.)
pub const MAX_TIME: u64 = crate::image::LAST_TIME;

/// A number of seconds since 1970 as an image time, or why it cannot be one.
pub fn check_time(secs: i64) -> Result<u64, TimeRangeError> {
    let secs = u64::try_from(secs).map_err(|_| TimeRangeError::BeforeEpoch)?;
    if secs > MAX_TIME {
        return Err(TimeRangeError::AfterYear9999);
    }
    Ok(secs)
}

/// `SOURCE_DATE_EPOCH`'s text as an image time: digits with an optional sign, in range.
fn parse_epoch(text: &str) -> Result<u64, TimeRangeError> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeRangeError::NotANumber);
    }
    match t.parse::<i64>() {
        Ok(secs) => check_time(secs),
        // All digits, yet not an i64: far outside the range either way.
        Err(_) if t.starts_with('-') => Err(TimeRangeError::BeforeEpoch),
        Err(_) => Err(TimeRangeError::AfterYear9999),
    }
}

impl TimePolicy {
    pub const FIXED_EPOCH: u64 = 1;

    pub fn with_source_date_epoch(epoch: Option<u64>) -> Self {
        TimePolicy {
            source_date_epoch: epoch,
        }
    }

    /// The `SOURCE_DATE_EPOCH` in force, if any (recorded in provenance).
    pub fn source_date_epoch(&self) -> Option<u64> {
        self.source_date_epoch
    }

    /// Reads `SOURCE_DATE_EPOCH`; a malformed or out-of-range value is an error, not
    /// silently ignored or clamped.
    pub fn from_env() -> Result<Self, TimePolicyError> {
        match std::env::var_os("SOURCE_DATE_EPOCH") {
            Some(v) if !v.to_string_lossy().trim().is_empty() => {
                let value = v.to_string_lossy().into_owned();
                parse_epoch(&value)
                    .map(|e| Self::with_source_date_epoch(Some(e)))
                    .map_err(|why| TimePolicyError { value, why })
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_checked_against_what_the_image_can_hold() {
        assert_eq!(parse_epoch("0"), Ok(0));
        assert_eq!(parse_epoch(" 1700000000 "), Ok(1_700_000_000));
        assert_eq!(parse_epoch("253402300799"), Ok(MAX_TIME));
        assert_eq!(
            crate::image::rfc3339(MAX_TIME),
            "9999-12-31T23:59:59Z",
            "the last time is the last RFC 3339 second"
        );
        use TimeRangeError::*;
        for (text, why) in [
            ("253402300800", AfterYear9999),
            ("18446744073709551615", AfterYear9999),
            ("99999999999999999999999", AfterYear9999),
            ("-1", BeforeEpoch),
            ("-99999999999999999999999", BeforeEpoch),
            ("1e9", NotANumber),
            ("12abc", NotANumber),
            ("-", NotANumber),
            ("1.5", NotANumber),
        ] {
            assert_eq!(parse_epoch(text), Err(why), "{text}");
        }
        assert_eq!(check_time(i64::MIN), Err(BeforeEpoch));
        assert_eq!(check_time(i64::MAX), Err(AfterYear9999));
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config(3000))]

        /// Any text is a time the image can write, or an error; never a panic.
        #[test]
        fn epochs_from_any_text(text in "[-+0-9 a-z.]{0,24}|\\PC{0,24}") {
            if let Ok(t) = parse_epoch(&text) {
                proptest::prop_assert_eq!(crate::image::rfc3339(t).len(), 20);
            }
        }

        /// Every second in range can be written as RFC 3339 (humantime panics past 9999).
        #[test]
        fn times_in_range_are_writable(secs in proptest::prelude::any::<i64>(), near in 0..=MAX_TIME) {
            for s in [secs, near as i64] {
                if let Ok(t) = check_time(s) {
                    proptest::prop_assert_eq!(crate::image::rfc3339(t).len(), 20);
                }
            }
        }
    }
}
