//! Block-parallel gzip whose bytes do not depend on the number of threads.
//!
//! Written here rather than taken from `gzp` because that crate can only prime each block with
//! the previous block's data (the "dictionary" that keeps the ratio at single-stream level) when
//! built on C zlib, and its block boundaries follow the caller's `flush` calls. Here the input is
//! cut into fixed 128 KiB blocks by byte offset, whatever sizes `write` is called with; each
//! block is deflated on a worker with the previous 32 KiB as dictionary and ends with a sync
//! flush (the last one with the final flag), exactly as pigz does. The concatenation is one
//! ordinary gzip member, readable by any gunzip, and identical on 1 core or 64.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Input bytes per block. Part of the output format: changing it changes layer digests.
pub const BLOCK_SIZE: usize = 128 * 1024;
/// Deflate's window: how much of the previous block primes the next.
const DICT_SIZE: usize = 32 * 1024;

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

pub struct ParallelGzip<W: Write> {
    /// `None` only after `finish`.
    inner: Option<W>,
    level: u32,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let out = deflate_block(&job.data, &job.dict, job.last, level);
                        let _ = job.reply.send(out);
                    }
                })
            })
            .collect();
        ParallelGzip {
            inner: Some(inner),
            level,
            buf: Vec::with_capacity(BLOCK_SIZE),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            pending: VecDeque::new(),
            max_pending: threads * 2 + 1,
            jobs: Some(tx),
            workers,
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // Fixed header: magic, deflate, no flags, mtime 0, XFL by level, OS unknown (255).
            let xfl = match self.level {
                9 => 2,
                0 | 1 => 4,
                _ => 0,
            };
            self.out()?
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK_SIZE));
        let next_dict = if data.len() >= DICT_SIZE {
            data[data.len() - DICT_SIZE..].to_vec()
        } else {
            let mut d = self.dict.clone();
            d.extend_from_slice(&data);
            d[d.len().saturating_sub(DICT_SIZE)..].to_vec()
        };
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let (reply, result) = sync_channel(1);
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(Job {
            data,
            dict,
            last,
            reply,
        })
        .map_err(|_| io::Error::other("compression worker stopped"))?;
        self.pending.push_back(result);
        while self.pending.len() >= self.max_pending {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let block = rx
                .recv()
                .map_err(|_| io::Error::other("compression worker stopped"))??;
            self.write_header()?;
            self.out()?.write_all(&block)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        self.write_header()?;
        let crc = self.crc.clone().finalize();
        let total = self.total as u32;
        let out = self.out()?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&total.to_le_bytes())?;
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
        self.crc.update(data);
        self.total += n as u64;
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BLOCK_SIZE {
                self.submit(false)?;
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

/// Deflates one block as raw deflate, primed with `dict`, ending in a sync flush (or the final
/// block marker for the last one).
fn deflate_block(data: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before_in = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (c.total_in() - before_in) as usize;
        input = &input[consumed..];
        let room_left = out.capacity() > out.len();
        match status {
            Status::StreamEnd => break,
            _ if input.is_empty() && !last && room_left => break,
            _ => {}
        }
    }
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
            flate2::read::GzDecoder::new(&reference[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    #[test]
    fn dictionary_keeps_the_ratio_close_to_one_stream() {
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
}
