//! The stat cache: (path, device, inode, size, mtime, ctime) → content digests, so that
//! planning an unchanged tree reads no file contents. Like git's index, an entry is only written
//! for files whose mtime is safely in the past: a file modified in the same instant as it was
//! hashed could otherwise keep a stale digest ("racy git").

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;

/// Which file version a digest belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    pub fn of(md: &fs::Metadata) -> Self {
        FileStamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            ctime_ns: i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
        }
    }

    /// Modified long enough ago that a later edit cannot share this stamp.
    fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos() as i128;
        self.mtime_ns.max(self.ctime_ns) < now - 2_000_000_000
    }
}

/// Digests known for one file version. `git_blob` is the git object id (hex), when computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDigests {
    pub sha256: Digest,
    pub git_blob: Option<String>,
}

pub struct StatCache {
    path: PathBuf,
    entries: Mutex<HashMap<PathBuf, (FileStamp, KnownDigests)>>,
    dirty: Mutex<bool>,
}

impl StatCache {
    /// Loads the stat cache of a cache directory (empty when missing or unreadable: it is only
    /// an accelerator).
    pub fn load(cache_root: &Path) -> Self {
        let path = cache_root.join("stat-cache");
        let mut entries = HashMap::new();
        if let Ok(text) = fs::read_to_string(&path) {
            for line in text.lines() {
                if let Some((p, rest)) = line.split_once('\0')
                    && let Some(e) = parse(rest)
                {
                    entries.insert(PathBuf::from(p), e);
                }
            }
        }
        StatCache {
            path,
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    pub fn get(&self, path: &Path, stamp: &FileStamp) -> Option<KnownDigests> {
        let entries = self.entries.lock().expect("no panics hold this lock");
        match entries.get(path) {
            Some((s, d)) if s == stamp => Some(d.clone()),
            _ => None,
        }
    }

    pub fn put(&self, path: &Path, stamp: FileStamp, digests: KnownDigests) {
        if !stamp.settled() {
            return;
        }
        self.entries
            .lock()
            .expect("no panics hold this lock")
            .insert(path.to_path_buf(), (stamp, digests));
        *self.dirty.lock().expect("no panics hold this lock") = true;
    }

    /// Writes the cache back if anything was added (temp file + rename; a concurrent build's
    /// entries may be lost, which only costs a re-hash).
    pub fn save(&self) -> std::io::Result<()> {
        if !*self.dirty.lock().expect("no panics hold this lock") {
            return Ok(());
        }
        let entries = self.entries.lock().expect("no panics hold this lock");
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        {
            let mut w = std::io::BufWriter::new(&mut tmp);
            for (p, (s, d)) in entries.iter() {
                let Some(p) = p.to_str() else { continue };
                if p.contains(['\0', '\n']) {
                    continue;
                }
                writeln!(
                    w,
                    "{p}\0{} {} {} {} {} {} {}",
                    s.dev,
                    s.ino,
                    s.size,
                    s.mtime_ns,
                    s.ctime_ns,
                    d.sha256.hex(),
                    d.git_blob.as_deref().unwrap_or("-")
                )?;
            }
            w.flush()?;
        }
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn parse(rest: &str) -> Option<(FileStamp, KnownDigests)> {
    let f: Vec<&str> = rest.split(' ').collect();
    if f.len() != 7 {
        return None;
    }
    Some((
        FileStamp {
            dev: f[0].parse().ok()?,
            ino: f[1].parse().ok()?,
            size: f[2].parse().ok()?,
            mtime_ns: f[3].parse().ok()?,
            ctime_ns: f[4].parse().ok()?,
        },
        KnownDigests {
            sha256: Digest::from_hex(f[5])?,
            git_blob: (f[6] != "-").then(|| f[6].to_string()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_fresh_or_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let stamp = FileStamp::of(&fs::metadata(&file).unwrap());
        let digests = KnownDigests {
            sha256: Digest::of(b"x"),
            git_blob: None,
        };
        let cache = StatCache::load(dir.path());
        // ctime is "now" (set_modified changed it): not settled yet, so not stored.
        cache.put(&file, stamp, digests.clone());
        assert_eq!(cache.get(&file, &stamp), None);

        let settled = FileStamp {
            ctime_ns: stamp.mtime_ns,
            ..stamp
        };
        cache.put(&file, settled, digests.clone());
        cache.save().unwrap();
        let again = StatCache::load(dir.path());
        assert_eq!(again.get(&file, &settled), Some(digests));
        let changed = FileStamp { size: 2, ..settled };
        assert_eq!(again.get(&file, &changed), None);
    }
}
