//! Per-blob push progress, for a front end to draw without this module knowing about it.

use crate::digest::Digest;

/// Per-blob progress for a front end. Called from the runtime's threads; keep it quick.
pub trait PushProgress: Send + Sync {
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// Absolute position in the blob; it goes back when an upload restarts.
    fn blob_progress(&self, _digest: &Digest, _done: u64, _size: u64) {}
    fn blob_retrying(&self, _digest: &Digest, _reason: &str) {}
    fn blob_uploaded(&self, _digest: &Digest, _size: u64) {}
    fn blob_skipped(&self, _digest: &Digest, _size: u64) {}
    fn blob_mounted(&self, _digest: &Digest, _size: u64, _from: &str) {}
    fn manifest_pushed(&self, _reference: &str, _digest: &Digest) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl PushProgress for NoProgress {}
