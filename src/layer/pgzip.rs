//! Block-parallel gzip whose bytes do not depend on the number of threads.
//!
//! The input is cut into fixed 512 KiB blocks by byte offset, whatever sizes `write` is called
//! with. Each block is deflated on a worker by libdeflate (whole-buffer, no dictionary) and
//! written as its own gzip member (header, raw deflate, CRC-32, size), in input order: RFC 1952
//! defines a gzip file as a series of members, and every runtime's reader (Go's
//! `compress/gzip` and `klauspost/pgzip`, GNU gzip, zcat, Python) decodes them all. The result is
//! identical on 1 core or 64. Readers in Rust must use `flate2`'s `MultiGzDecoder`: the plain
//! `GzDecoder` stops after the first member (see [`super::compress::decompress`]).
//!
//! Why libdeflate and members instead of zlib-rs with the previous 32 KiB as dictionary and sync
//! flushes (pigz's layout, used before): on the webapp image's layers libdeflate at level 4
//! spends ~38% less CPU than zlib-rs at level 5 for blobs within ±1.5% of its size (README,
//! Benchmarks). libdeflate has no dictionary or flush API, so its blocks cannot be chained
//! inside one deflate stream; 512 KiB independent blocks lose ~0.2% of ratio to the dictionary.
//! Members are the format that needs neither (BGZF, used for genomics data, is the same idea).
//! The default level has since moved to 1 ([`super::Compression::DEFAULT_GZIP_LEVEL`] says why).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per gzip member. Part of the output format: changing it changes layer digests.
pub const BLOCK_SIZE: usize = 512 * 1024;

/// The deflate implementation, for cache keys: its version is pinned exactly in Cargo.toml
/// because another libdeflate may emit other bytes for the same level.
pub const BACKEND: &str = "libdeflater-1.26.1";

/// Blocks waiting for a worker, per worker. With only one, a worker that finished its block
/// while another was still on the oldest one sat idle, and the writer with it, until that oldest
/// member was written: blocks of jars and of text deflate at very different speeds, and on 2
/// cores the workers and the writer each waited ~20% of a JDK layer's compression that way.
/// Four keep a worker busy through such a stall for ~2 MiB of input per worker of memory.
const QUEUE_PER_THREAD: usize = 4;

struct Job {
    data: Vec<u8>,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

pub struct ParallelGzip<W: Write> {
    /// `None` only after `finish`.
    inner: Option<W>,
    buf: Vec<u8>,
    /// Members submitted so far: an empty stream still gets one (empty) member.
    members: u64,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzip<W> {
    /// `level` is libdeflate's (0 stores, 1-9 as gzip's; the recipe allows 0-9).
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(QUEUE_PER_THREAD * threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || worker(&rx, level))
            })
            .collect();
        ParallelGzip {
            inner: Some(inner),
            buf: Vec::with_capacity(BLOCK_SIZE),
            members: 0,
            pending: VecDeque::new(),
            max_pending: QUEUE_PER_THREAD * threads + threads,
            jobs: Some(tx),
            workers,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK_SIZE));
        let (reply, result) = sync_channel(1);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        jobs.send(Job { data, reply })
            .map_err(|_| io::Error::other("compression worker stopped"))?;
        self.members += 1;
        self.pending.push_back(result);
        while self.pending.len() >= self.max_pending {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let member = rx
                .recv()
                .map_err(|_| io::Error::other("compression worker stopped"))??;
            self.out()?.write_all(&member)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.members == 0 {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        self.stop_workers();
        Ok(self.inner.take().expect("present until finish"))
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }

    fn stop_workers(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BLOCK_SIZE {
                self.submit()?;
            }
        }
        Ok(n)
    }

    /// Does not cut a block: block boundaries are part of the output format.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// One worker: a libdeflate compressor (its tables are reused; the output of a call does not
/// depend on earlier calls) turning blocks into members until the job channel closes.
fn worker(rx: &Mutex<std::sync::mpsc::Receiver<Job>>, level: u32) {
    let lvl = libdeflater::CompressionLvl::new(level.min(12) as i32).unwrap_or_default();
    let mut compressor = libdeflater::Compressor::new(lvl);
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let _ = job
            .reply
            .send(gzip_member(&mut compressor, &job.data, level));
    }
}

/// `data` as one gzip member: fixed header (no name, mtime 0, OS unknown), raw deflate,
/// CRC-32 and length. libdeflate's own gzip wrapper is not used so that the header bytes are
/// ours, not a library version's.
fn gzip_member(c: &mut libdeflater::Compressor, data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    // XFL: 2 = best compression, 4 = fastest, as gzip sets it.
    let xfl = match level {
        0 | 1 => 4,
        l if l >= 9 => 2,
        _ => 0,
    };
    let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255];
    let bound = c.deflate_compress_bound(data.len());
    let mut out = vec![0u8; header.len() + bound + 8];
    out[..header.len()].copy_from_slice(&header);
    let n = c
        .deflate_compress(data, &mut out[header.len()..header.len() + bound])
        .map_err(|e| io::Error::other(format!("libdeflate: {e:?}")))?;
    out.truncate(header.len() + n);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE is the length modulo 2^32; blocks are far smaller.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text-like with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of some layer content {}\n", i % 97).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn compress(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut enc = ParallelGzip::new(Vec::new(), 6, threads);
        for c in data.chunks(chunk.max(1)) {
            enc.write_all(c).unwrap();
            enc.flush().unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn same_bytes_for_any_thread_count_and_write_pattern_and_valid_gzip() {
        for len in [
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            3 * BLOCK_SIZE + 12345,
        ] {
            let data = sample(len);
            let reference = compress(&data, 1, 1 << 20);
            for (threads, chunk) in [(2, 7), (4, 4096), (3, BLOCK_SIZE)] {
                assert_eq!(compress(&data, threads, chunk), reference, "len {len}");
            }
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&reference[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    #[test]
    fn independent_blocks_keep_the_ratio_close_to_one_stream() {
        let data = sample(4 * 1024 * 1024);
        let parallel = compress(&data, 2, 65536).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            (parallel as f64) < single as f64 * 1.02,
            "parallel {parallel} vs single {single}"
        );
    }

    #[test]
    fn one_member_per_block_and_one_for_an_empty_stream() {
        let empty = compress(&[], 2, 1);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
        assert_eq!(&empty[..2], [0x1f, 0x8b], "one gzip member");
        let data = sample(2 * BLOCK_SIZE + 5);
        let gz = compress(&data, 2, 4096);
        let members = gz
            .windows(10)
            .filter(|w| *w == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])
            .count();
        assert!(
            members >= 3,
            "3 blocks make 3 members, found {members} headers"
        );
        // A plain (single-member) reader sees only the first block: why readers here use
        // MultiGzDecoder.
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut first)
            .unwrap();
        assert_eq!(first, data[..BLOCK_SIZE]);
    }

    /// Pins the bytes of a multi-member stream at the default level: a libdeflate update or a
    /// block-size change that alters them must change `BACKEND`/`BLOCK_SIZE` (and so the
    /// layer cache key) and this digest together, deliberately.
    #[test]
    fn golden_bytes_of_a_multi_block_stream() {
        use sha2::Digest as _;
        let data = sample(3 * BLOCK_SIZE + 12345);
        let mut enc =
            ParallelGzip::new(Vec::new(), super::super::Compression::DEFAULT_GZIP_LEVEL, 2);
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&gz)),
            "0a40872f0a6998133958621c56d769ec15ba8c715fb88c694a2064da7587e34c"
        );
    }
}
