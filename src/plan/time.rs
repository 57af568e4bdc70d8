//! Which time goes into tar headers and the image's `created`.
//!
//! Never the clock: `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention), otherwise
//! a fixed epoch of 1 s. One second rather than zero because some tools treat a zero mtime as
//! "unset" (Jib and Nix made the same choice).

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimePolicy {
    epoch: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970-01-01")]
pub struct TimePolicyError(pub String);

impl TimePolicy {
    pub const DEFAULT_EPOCH: u64 = 1;

    pub fn fixed(epoch: u64) -> Self {
        TimePolicy { epoch }
    }

    /// Reads `SOURCE_DATE_EPOCH`; a malformed value is an error, not silently ignored.
    pub fn from_env() -> Result<Self, TimePolicyError> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map(Self::fixed)
                .map_err(|_| TimePolicyError(v)),
            _ => Ok(Self::fixed(Self::DEFAULT_EPOCH)),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}
