//! What a layer holds: entries keyed by [`ImagePath`], each with normalised metadata.

use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::image_path::ImagePath;

/// Metadata every entry carries into its tar header. Nothing else from the host survives:
/// no atime/ctime, no user or group names, no device numbers of the build machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Meta {
    /// Permission bits, including setuid/setgid/sticky (no file-type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, from the build's time policy.
    pub mtime: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(FileContent),
    Symlink {
        target: String,
    },
    /// Same inode as `target`, which must be a regular file in the same layer.
    Hardlink {
        target: ImagePath,
    },
}

/// Where a regular file's bytes come from, with the size and digest the plan saw. The writer
/// re-checks both while copying, so a source edited mid-build fails the build instead of
/// producing a layer whose cache key lies about its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileContent {
    pub source: ContentSource,
    pub size: u64,
    /// `None` for content whose integrity comes from elsewhere (a package checked by sha256).
    pub digest: Option<Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentSource {
    Host(PathBuf),
    Bytes(Arc<[u8]>),
    /// `size` bytes at `offset` of a file: an entry of an unpacked package's data.tar.
    Range {
        path: Arc<PathBuf>,
        offset: u64,
    },
}

impl ContentSource {
    /// A reader at the content's first byte (callers read `size` bytes from it).
    pub fn open(&self) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        use std::io::{BufReader, Seek, SeekFrom};
        Ok(match self {
            ContentSource::Bytes(b) => Box::new(&b[..]),
            ContentSource::Host(p) => Box::new(std::fs::File::open(p)?),
            ContentSource::Range { path, offset } => {
                let mut f = std::fs::File::open(path.as_path())?;
                f.seek(SeekFrom::Start(*offset))?;
                Box::new(BufReader::with_capacity(64 * 1024, f))
            }
        })
    }

    /// [`ContentSource::open`], reading a [`ContentSource::Range`] from a file `files` opened
    /// before (or opens now and keeps).
    pub fn open_in<'a>(
        &'a self,
        files: &'a mut OpenFiles,
    ) -> std::io::Result<Box<dyn std::io::Read + 'a>> {
        let ContentSource::Range { path, offset } = self else {
            return self.open();
        };
        let file = files.get(path)?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            64 * 1024,
            ReadAt { file, pos: *offset },
        )))
    }

    /// The host file the content is read from, if any (for error messages).
    pub fn host_path(&self) -> Option<&std::path::Path> {
        match self {
            ContentSource::Bytes(_) => None,
            ContentSource::Host(p) => Some(p),
            ContentSource::Range { path, .. } => Some(path.as_path()),
        }
    }
}

/// The files [`ContentSource::Range`] entries are read from, each opened once while a layer is
/// written: a package layer has thousands of entries in a few dozen unpacked packages, and
/// opening the package's file again for every entry was ~0.2 CPU-s of `openat` on a cold
/// webapp build, on the thread that feeds the compressor.
#[derive(Default)]
pub struct OpenFiles {
    files: std::collections::HashMap<Arc<PathBuf>, std::fs::File>,
}

impl OpenFiles {
    /// More than any layer's packages; past it the oldest handles are simply all closed, so a
    /// strange layer costs reopening, never running out of descriptors.
    const MAX_OPEN: usize = 256;

    fn get(&mut self, path: &Arc<PathBuf>) -> std::io::Result<&std::fs::File> {
        if !self.files.contains_key(path) {
            if self.files.len() >= Self::MAX_OPEN {
                self.files.clear();
            }
            let file = std::fs::File::open(path.as_path())?;
            self.files.insert(Arc::clone(path), file);
        }
        Ok(&self.files[path])
    }
}

/// Reads a file from `pos` on with `pread`, so one handle serves every range of it.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    pos: u64,
}

impl std::io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub meta: Meta,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            EntryKind::Dir => "directory",
            EntryKind::File(_) => "file",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Hardlink { .. } => "hard link",
        }
    }
}
