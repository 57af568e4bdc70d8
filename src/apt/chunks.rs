//! Text handed from one thread to another in bounded chunks: the decompressed `Packages` index
//! is scanned while it is still being decoded and stored ([`super::load_packages`]).
//!
//! Written here rather than taken from a crate: it is a `BufRead` over a std bounded channel,
//! thirty lines, and the crates that offer pipes between threads (os pipes, async channels)
//! bring a syscall per chunk or a runtime the scan does not need.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender};

/// Chunks in flight at most: with [`CHUNK`] bytes each, the decoder is never more than 1 MiB
/// ahead of the scan.
pub const DEPTH: usize = 16;
/// Bytes per chunk.
pub const CHUNK: usize = 64 * 1024;

/// Reads what a [`Tee`] sent, in order; the end of the stream is the sender's drop.
pub struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChunkReader {
    pub fn new(rx: Receiver<Vec<u8>>) -> Self {
        ChunkReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(next) => (self.chunk, self.at) = (next, 0),
                Err(_) => return Ok(&[]), // the sender is done (or gone: its thread reports why)
            }
        }
        Ok(&self.chunk[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.chunk.len());
    }
}

/// Writes to `out` and sends a copy of every byte to a [`ChunkReader`]. When the reader is
/// gone (its scan failed and reports that), writing to `out` goes on: the stored file is still
/// checked against its signed hash and is as good as ever.
pub struct Tee<'a> {
    out: &'a mut dyn Write,
    tx: Option<SyncSender<Vec<u8>>>,
}

impl<'a> Tee<'a> {
    pub fn new(out: &'a mut dyn Write, tx: SyncSender<Vec<u8>>) -> Self {
        Tee { out, tx: Some(tx) }
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(tx) = &self.tx
            && tx.send(buf[..n].to_vec()).is_err()
        {
            self.tx = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_sees_every_byte_in_order_and_the_end() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let sender = std::thread::spawn(move || {
            let mut stored = Vec::new();
            let mut tee = Tee::new(&mut stored, tx);
            for i in 0..100u32 {
                tee.write_all(format!("line {i}\n").as_bytes()).unwrap();
            }
            drop(tee);
            stored
        });
        let mut lines = Vec::new();
        for line in ChunkReader::new(rx).lines() {
            lines.push(line.unwrap());
        }
        let stored = sender.join().unwrap();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[99], "line 99");
        assert_eq!(lines.join("\n") + "\n", String::from_utf8(stored).unwrap());
    }

    #[test]
    fn writing_goes_on_when_the_reader_is_gone() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        drop(rx);
        let mut stored = Vec::new();
        let mut tee = Tee::new(&mut stored, tx);
        tee.write_all(b"abc").unwrap();
        tee.write_all(b"def").unwrap();
        drop(tee);
        assert_eq!(stored, b"abcdef");
    }
}
