//! Layer compression. The compressed bytes are part of the layer digest, so every setting that
//! changes them (algorithm, level, backend) is fixed here and recorded in the cache key.

use std::io::{self, Write};

/// How layer blobs are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
}

impl Compression {
    /// libdeflate's level 1, the CPU-for-size trade go-containerregistry makes by default
    /// (`gzip.BestSpeed`, so ko and crane layers too). On the webapp image's layers (366 MB of
    /// tar, the JDK's jars most of it) it spends 30% less deflate CPU than level 4 (2.33 vs
    /// 3.31 s on one core) for blobs 4.3% larger (155.3 vs 149.0 MB): a cold build is CPU-bound
    /// on 2 cores and ~0.5 s faster, while 6 MB more to push is ~0.05 s on a 1 Gbit/s link.
    /// Level 4 and up stay one `compression-level` away. Figures in the README's Benchmarks.
    pub const DEFAULT_GZIP_LEVEL: u32 = 1;
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    /// A stable description that goes into cache keys: changing the backend must change it.
    pub fn cache_tag(&self) -> String {
        match self {
            Compression::Gzip { level } => {
                // Members of BLOCK_SIZE deflated by BACKEND: any change to either changes bytes.
                format!(
                    "pgzip-members-{}k-{}-{level}",
                    super::pgzip::BLOCK_SIZE / 1024,
                    super::pgzip::BACKEND
                )
            }
            Compression::Zstd { level } => format!("zstd-{level}"),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Gzip { level } => write!(f, "gzip -{level}"),
            Compression::Zstd { level } => write!(f, "zstd -{level}"),
        }
    }
}

pub enum Compressor<W: Write> {
    Gzip(super::pgzip::ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    /// `threads` only changes speed: the bytes are the same for any number of threads.
    pub fn new(inner: W, compression: Compression, threads: usize) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip { level } => {
                Compressor::Gzip(super::pgzip::ParallelGzip::new(inner, level, threads))
            }
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
                enc.include_checksum(true)?;
                Compressor::Zstd(enc)
            }
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

/// Opens a compressed layer blob for reading its tar stream. Gzip is read as a series of
/// members (RFC 1952): stevedore's own layers are one member per block, and a single-member
/// blob from elsewhere reads the same.
pub fn decompress<'a, R: io::BufRead + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn io::Read + 'a>> {
    Ok(match compression {
        Compression::Gzip { .. } => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd { .. } => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}
