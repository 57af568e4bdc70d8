//! Layers: deterministic tar streams, hashed and compressed in one pass.
//!
//! [`write_layer`] streams `tar → sha256 (diff_id) → compressor → sha256 (digest) → temp file`
//! and renames the file into the blob store. Memory use does not depend on the layer's size:
//! file contents are copied through fixed buffers.

mod compress;
mod diff;
mod entry;
mod pgzip;
mod tar_writer;
mod tree;

use std::io::{self, BufWriter};

pub use compress::{Compression, Compressor, decompress};
pub use diff::{Difference, diff_layers};
use entry::OpenFiles;
pub use entry::{ContentSource, Entry, EntryKind, FileContent, Meta};
pub use tar_writer::TarWriter;
pub use tree::{LayerContents, LayerTree, LowerView, TreeError, ViewKind};

use crate::cache::{Cache, CacheError, LayerRecord};
use crate::digest::{HashingReader, HashingWriter};
use crate::image_path::ImagePath;
use tar_writer::CountingReader;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read {path} for {image_path}: {source}")]
    Source {
        path: std::path::PathBuf,
        image_path: ImagePath,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} changed while the layer was being written (planned {planned}, read {read}); rebuild"
    )]
    SourceChanged {
        path: std::path::PathBuf,
        planned: String,
        read: String,
    },
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Writes `contents` as one layer blob into the cache and returns what it produced.
pub fn write_layer(
    contents: &LayerContents,
    compression: Compression,
    threads: usize,
    cache: &Cache,
) -> Result<LayerRecord, LayerError> {
    let tmp = cache.temp_file()?;
    let file = tmp.as_file().try_clone().map_err(LayerError::Write)?;
    let blob_hasher = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let compressor =
        Compressor::new(blob_hasher, compression, threads).map_err(LayerError::Write)?;
    let diff_hasher = HashingWriter::new(compressor);
    let mut tar = TarWriter::new(diff_hasher);

    let mut files = OpenFiles::default();
    for (path, entry) in &contents.entries {
        write_entry(&mut tar, path, entry, &mut files)?;
    }

    let diff_hasher = tar.finish().map_err(LayerError::Write)?;
    let (compressor, diff_id, diff_size) = diff_hasher.finish();
    let blob_hasher = compressor.finish().map_err(LayerError::Write)?;
    let (buffered, digest, size) = blob_hasher.finish();
    buffered
        .into_inner()
        .map_err(|e| LayerError::Write(e.into_error()))?;
    cache.commit_blob(tmp, &digest)?;
    Ok(LayerRecord {
        diff_id,
        digest,
        size,
        diff_size,
    })
}

fn write_entry<W: io::Write>(
    tar: &mut TarWriter<W>,
    path: &ImagePath,
    entry: &Entry,
    files: &mut OpenFiles,
) -> Result<(), LayerError> {
    match &entry.kind {
        EntryKind::Dir => tar.append_dir(path, &entry.meta),
        EntryKind::Symlink { target } => tar.append_symlink(path, &entry.meta, target),
        EntryKind::Hardlink { target } => tar.append_hardlink(path, &entry.meta, target),
        EntryKind::File(content) => return write_file(tar, path, entry, content, files),
    }
    .map_err(LayerError::Write)
}

fn write_file<W: io::Write>(
    tar: &mut TarWriter<W>,
    path: &ImagePath,
    entry: &Entry,
    content: &FileContent,
    files: &mut OpenFiles,
) -> Result<(), LayerError> {
    let host = content.source.host_path();
    let reader = content
        .source
        .open_in(files)
        .map_err(|source| LayerError::Source {
            path: host.unwrap_or(std::path::Path::new("")).to_path_buf(),
            image_path: path.clone(),
            source,
        })?;
    let changed = |read_desc: String| LayerError::SourceChanged {
        path: host.map_or_else(|| path.as_str().into(), |h| h.to_path_buf()),
        planned: format!(
            "{} bytes, {}",
            content.size,
            content.digest.as_ref().map_or("-".into(), |d| d.short())
        ),
        read: read_desc,
    };
    let short = |e: io::Error, read: u64| match e.kind() {
        io::ErrorKind::UnexpectedEof => changed(format!("only {read} bytes")),
        _ => LayerError::Write(e),
    };
    // Only content planned with a digest (files from the recipe's context, read again now) is
    // hashed on the way: a package's bytes come from a spool checked against the .deb's
    // sha256 and its recorded length, and hashing them again was 350 MB of SHA-256 (~0.35
    // CPU-s) on every cold webapp build. The tar writer checks every source's length.
    let Some(planned) = &content.digest else {
        let mut counting = CountingReader::new(reader);
        let result = tar.append_file(path, &entry.meta, content.size, &mut counting);
        return result.map_err(|e| short(e, counting.count));
    };
    let mut hashing = HashingReader::new(reader);
    let result = tar.append_file(path, &entry.meta, content.size, &mut hashing);
    let (_, digest, read) = hashing.finish();
    result.map_err(|e| short(e, read))?;
    if *planned != digest {
        return Err(changed(format!("{read} bytes, {}", digest.short())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn contents(data: &'static [u8], planned: Digest) -> LayerContents {
        LayerContents {
            entries: vec![(
                ImagePath::from_absolute("/f").unwrap(),
                Entry {
                    kind: EntryKind::File(FileContent {
                        source: ContentSource::Bytes(data.into()),
                        size: data.len() as u64,
                        digest: Some(planned),
                    }),
                    meta: Meta {
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                        mtime: 1,
                    },
                },
            )],
        }
    }

    #[test]
    fn a_source_that_changed_since_planning_fails_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let err = write_layer(
            &contents(b"new", Digest::of(b"old")),
            Compression::Gzip { level: 6 },
            2,
            &cache,
        )
        .unwrap_err();
        assert!(matches!(err, LayerError::SourceChanged { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    /// A package's content has no planned digest (the spool is checked against the .deb's):
    /// a spool cut short under a running build still fails the layer, by its length.
    #[test]
    fn an_undigested_source_shorter_than_planned_fails_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let mut layer = contents(b"short", Digest::of(b"short"));
        if let EntryKind::File(f) = &mut layer.entries[0].1.kind {
            f.digest = None;
            f.size = 8;
        }
        let err = write_layer(&layer, Compression::Gzip { level: 1 }, 2, &cache).unwrap_err();
        assert!(
            matches!(&err, LayerError::SourceChanged { read, .. } if read == "only 5 bytes"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn digests_match_the_bytes_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        for compression in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let rec = write_layer(
                &contents(b"abc", Digest::of(b"abc")),
                compression,
                2,
                &cache,
            )
            .unwrap();
            let blob = std::fs::read(cache.blob_path(&rec.digest)).unwrap();
            assert_eq!(Digest::of(&blob), rec.digest);
            assert_eq!(blob.len() as u64, rec.size);
            let mut tar = Vec::new();
            decompress(&blob[..], compression)
                .unwrap()
                .read_to_end(&mut tar)
                .unwrap();
            assert_eq!(Digest::of(&tar), rec.diff_id);
            assert_eq!(tar.len() as u64, rec.diff_size);
        }
    }
}
