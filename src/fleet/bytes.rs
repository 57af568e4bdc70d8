//! A cached layer's bytes, downloaded only when a local output (or a push to another
//! registry) needs them, and checked against the entry's diff_id before the local cache
//! trusts them.

use std::io::{BufReader, Read};

use super::FleetError;
use super::remote::Found;
use crate::cache::Cache;
use crate::digest::{Digest, Hasher};
use crate::layer::Compression;
use crate::oci::{LayerEncoding, MediaType};
use crate::registry::BlockingRegistry;

/// What a download found.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// The blob decompresses to the entry's diff_id: it is in the cache, with its record.
    Stored,
    /// The blob (whose digest the registry client checked) is not the layer the entry claims.
    Mismatch { actual: Digest },
}

/// Downloads the layer of `found` into a temp file, decompresses it to check its diff_id and
/// uncompressed size, and only then moves it into the store and records its key.
pub fn fetch_layer(
    registry: &BlockingRegistry,
    found: &Found,
    cache: &Cache,
) -> Result<Checked, FleetError> {
    let e = &found.entry;
    let tmp = cache.tmp_dir().join(format!("fleet-{}", e.digest.hex()));
    registry.fetch_blob_to(&found.from, &e.digest, e.size, &cache.tmp_dir(), &tmp)?;
    let checked = diff_id_of(&tmp, &e.media_type);
    let result = match checked {
        Ok((diff_id, diff_size)) if diff_id == e.diff_id && diff_size == e.diff_size => {
            std::fs::rename(&tmp, cache.blob_path(&e.digest)).map_err(|source| {
                crate::cache::CacheError {
                    path: tmp.clone(),
                    source,
                }
            })?;
            cache.put_layer_record(&e.key, &e.record())?;
            return Ok(Checked::Stored);
        }
        Ok((actual, _)) => Checked::Mismatch { actual },
        // Bytes that do not even decompress are not the layer either.
        Err(_) => Checked::Mismatch {
            actual: Digest::of(b""),
        },
    };
    let _ = std::fs::remove_file(&tmp);
    Ok(result)
}

/// The sha256 and length of a layer blob's tar stream.
fn diff_id_of(path: &std::path::Path, media_type: &str) -> std::io::Result<(Digest, u64)> {
    let file = BufReader::new(std::fs::File::open(path)?);
    let mut reader: Box<dyn Read> = match MediaType::from(media_type).layer_encoding() {
        Some(LayerEncoding::Gzip) => {
            crate::layer::decompress(file, Compression::Gzip { level: 0 })?
        }
        Some(LayerEncoding::Zstd) => {
            crate::layer::decompress(file, Compression::Zstd { level: 0 })?
        }
        Some(LayerEncoding::Tar) | None => Box::new(file),
    };
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.finish().0, total))
}
