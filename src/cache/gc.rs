//! Keeping the cache honest and bounded: a lock that lets builds share the cache while `gc`
//! waits for them, usage by kind, and collection by age or by what given recipes still use.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Cache, CacheError, err};
use crate::digest::Digest;

/// Held for the duration of a build (shared) or a collection (exclusive).
#[derive(Debug)]
pub struct CacheLock {
    _file: fs::File,
}

/// Bytes and files of one kind of cache content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub kind: &'static str,
    pub bytes: u64,
    pub files: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub files_removed: u64,
    pub bytes_freed: u64,
}

/// What must survive a collection whatever its age.
#[derive(Debug, Default)]
pub struct Keep {
    pub layer_keys: HashSet<Digest>,
    /// Package sha256s (their `.deb`s and unpacked data).
    pub debs: HashSet<Digest>,
}

const KINDS: [(&str, &str); 6] = [
    ("blobs", "blobs/sha256"),
    ("layer records", "layers"),
    ("unpacked packages", "debs-unpacked"),
    ("downloads (apt)", "apt/sha256"),
    ("resolutions (apt)", "resolutions"),
    ("temporary", "tmp"),
];

impl Cache {
    fn lock_file(&self) -> Result<fs::File, CacheError> {
        let path = self.root.join("lock");
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err(&path))
    }

    /// Builds share the cache: every write is an atomic rename of complete content.
    pub fn lock_shared(&self) -> Result<CacheLock, CacheError> {
        let f = self.lock_file()?;
        f.lock_shared().map_err(err(&self.root.join("lock")))?;
        Ok(CacheLock { _file: f })
    }

    /// Collection waits until no build holds the cache.
    pub fn lock_exclusive(&self) -> Result<CacheLock, CacheError> {
        let f = self.lock_file()?;
        f.lock().map_err(err(&self.root.join("lock")))?;
        Ok(CacheLock { _file: f })
    }

    pub fn usage(&self) -> Vec<Usage> {
        KINDS
            .iter()
            .map(|(kind, sub)| {
                let (bytes, files) = walk(&self.root.join(sub))
                    .iter()
                    .fold((0, 0), |(b, n), (_, md)| (b + md.len(), n + 1));
                Usage { kind, bytes, files }
            })
            .collect()
    }

    /// Removes what is older than `max_age` (by last use) and not in `keep`; with no
    /// `max_age`, everything not in `keep`. Temp files of killed builds older than
    /// [`TEMP_MAX_AGE`] go too, whatever `max_age` and `keep` say. Holds the exclusive lock
    /// while it runs.
    pub fn gc(&self, max_age: Option<Duration>, keep: &Keep) -> Result<GcReport, CacheError> {
        let _lock = self.lock_exclusive()?;
        let sweep = Sweep {
            now: SystemTime::now(),
            max_age,
        };
        let mut report = GcReport::default();
        self.sweep_temp_files(&sweep, &mut report);
        // Layer records first; the blobs they still reference survive below.
        let referenced = self.collect_layer_records(&sweep, keep, &mut report);
        for (path, md) in walk_stored(&self.root.join("blobs/sha256")) {
            let digest = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Digest::from_hex);
            if !digest.is_some_and(|d| referenced.contains(&d)) && sweep.old(&md) {
                remove(&path, &md, &mut report);
            }
        }
        for sub in ["debs-unpacked", "apt/sha256"] {
            for (path, md) in walk_stored(&self.root.join(sub)) {
                let stem = path
                    .file_stem()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let kept = Digest::from_hex(stem).is_some_and(|d| keep.debs.contains(&d));
                if !kept && sweep.old(&md) {
                    remove(&path, &md, &mut report);
                }
            }
        }
        // Kept resolutions are cheap to redo (the indexes stay in apt/sha256): never "kept".
        for (path, md) in walk_stored(&self.root.join("resolutions")) {
            if sweep.old(&md) {
                remove(&path, &md, &mut report);
            }
        }
        Ok(report)
    }

    /// Removes old layer records not in `keep`; the blob digests of those that stay.
    fn collect_layer_records(
        &self,
        sweep: &Sweep,
        keep: &Keep,
        report: &mut GcReport,
    ) -> HashSet<Digest> {
        let mut referenced: HashSet<Digest> = HashSet::new();
        for (path, md) in walk_stored(&self.root.join("layers")) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let key = name.split('.').next().and_then(Digest::from_hex);
            let kept = key.as_ref().is_some_and(|k| keep.layer_keys.contains(k));
            if !kept && sweep.old(&md) {
                remove(&path, &md, report);
            } else if name.ends_with(".json")
                && let Some(record) = key.and_then(|k| self.layer_record(&k))
            {
                referenced.insert(record.digest);
            }
        }
        referenced
    }

    /// Removes the temp files a killed build left, once older than [`TEMP_MAX_AGE`]: all of
    /// `tmp/` and of the apt downloads' `.partial/` (unfinished downloads and their lock
    /// files), and every `.tmp*` file elsewhere (the `tempfile` crate's names, for files
    /// written next to their final place: unpacked packages, resolutions, the stat cache).
    ///
    /// A running build's temp files are never touched: builds hold the shared cache lock and
    /// collection waits for the exclusive one, so none runs now; the hour is a second guard
    /// for a writer that holds no lock (an older stevedore, a `plan` saving its stat cache).
    fn sweep_temp_files(&self, sweep: &Sweep, report: &mut GcReport) {
        let in_temp_dir = |p: &Path| {
            p.strip_prefix(&self.root)
                .is_ok_and(|r| r.starts_with("tmp") || r.starts_with("apt/sha256/.partial"))
        };
        let temp = walkdir::WalkDir::new(&self.root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| is_temp_name(e.path()) || in_temp_dir(e.path()));
        for entry in temp {
            let Ok(md) = entry.metadata() else { continue };
            if sweep.older_than(&md, TEMP_MAX_AGE) {
                remove(entry.path(), &md, report);
            }
        }
    }
}

/// How old an abandoned temp file must be before `gc` removes it. No build writes one file for
/// an hour (a 10 GB layer at a slow 10 MB/s takes 17 minutes), so an older one was abandoned.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// The clock and the age limit of one collection.
struct Sweep {
    now: SystemTime,
    max_age: Option<Duration>,
}

impl Sweep {
    /// Unused for longer than the collection's age limit (always, without one).
    fn old(&self, md: &fs::Metadata) -> bool {
        self.max_age.is_none_or(|limit| self.older_than(md, limit))
    }

    /// Last modified more than `limit` ago (a time in the future is never old).
    fn older_than(&self, md: &fs::Metadata, limit: Duration) -> bool {
        md.modified()
            .ok()
            .and_then(|m| self.now.duration_since(m).ok())
            .is_some_and(|age| age > limit)
    }
}

fn remove(path: &Path, md: &fs::Metadata, report: &mut GcReport) {
    if fs::remove_file(path).is_ok() {
        report.files_removed += 1;
        report.bytes_freed += md.len();
    }
}

/// A temp file's name from the `tempfile` crate (its default prefix).
fn is_temp_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".tmp"))
}

/// Marks a cache file as just used, so collection by age keeps what builds still use.
pub(super) fn touch(path: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn walk(dir: &Path) -> Vec<(std::path::PathBuf, fs::Metadata)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| Some((e.path().to_path_buf(), e.metadata().ok()?)))
        .collect()
}

/// The stored files below `dir`: temp files (and the apt downloads' `.partial/`) are left to
/// the temp sweep, which alone decides when they go.
fn walk_stored(dir: &Path) -> Vec<(std::path::PathBuf, fs::Metadata)> {
    let mut files = walk(dir);
    files.retain(|(p, _)| !is_temp_name(p) && !p.components().any(|c| c.as_os_str() == ".partial"));
    files
}
