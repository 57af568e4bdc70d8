//! Decoding the blocks of a multi-block `.xz` on several cores, straight into a file.
//!
//! The JDK's `data.tar.xz` is 8 xz blocks of 24 MiB: decoded by one thread it was the longest
//! single task on a cold build's critical path. An xz stream ends with an index that gives every
//! block's compressed and uncompressed size, so each block's place in the input and in the output
//! is known before anything is decoded; workers take blocks in turn and write each one's output
//! at its offset with `pwrite`. Memory is one decoder (the block's LZMA2 dictionary, 8 MiB for
//! `xz -6`) and one output buffer per worker, never a whole block: liblzma's own multi-threaded
//! decoder buffers whole blocks (110 MB RSS for the JDK on 2 threads, past the 100 MB budget).
//!
//! Each block is decoded by liblzma's ordinary stream decoder, fed a one-block stream made of
//! the original stream header, the block's bytes as they are in the file, and a one-record index
//! and footer written here. So liblzma still checks everything it checks in the file itself: the
//! block header's CRC32, the block's own check (CRC64 or SHA-256, as the stream flags say), and
//! that the block's sizes are the ones the index records. The index and footer are parsed by hand
//! (a small documented format, <https://tukaani.org/xz/xz-file-format.txt>) because the `liblzma`
//! crate exposes no index API; every number read is bounded. Anything this layout does not
//! describe (one block, stream padding, several concatenated streams) returns `None`, and the
//! caller decodes the file as one stream as before: its decoder judges it.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// Stream header and footer sizes (xz format, section 2.1).
const HEADER_LEN: u64 = 12;
const FOOTER_LEN: u64 = 12;
const MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
/// Largest index read into memory: a record is at most 18 bytes, so 1 MiB is ~58 000 blocks,
/// far past any package (the JDK's has 8). A larger one falls back to the streaming decoder.
const MAX_INDEX_LEN: u64 = 1 << 20;
/// Output buffer per worker.
const CHUNK: usize = 1 << 20;

/// Where one block is in the compressed input and in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Offset of the block header from the start of the stream.
    pub offset: u64,
    /// Block header + compressed data + check, without the padding (the index's "unpadded size").
    pub unpadded: u64,
    /// Offset of its output in the decoded file.
    pub out_offset: u64,
    pub uncompressed: u64,
}

/// A single xz stream that fills its input exactly, with its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    stream_flags: [u8; 2],
    pub blocks: Vec<Block>,
    pub total_out: u64,
}

fn invalid(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

fn read_exact_at(file: &File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(buf)
}

/// Reads the layout of the xz stream at `start..start + len` of `file`. `Ok(None)`: not a
/// single stream of several blocks that this path decodes; decode it as one stream instead.
/// `Err`: the header, footer or index is damaged.
pub fn layout(file: &File, start: u64, len: u64) -> io::Result<Option<Layout>> {
    if len < HEADER_LEN + FOOTER_LEN + 8 {
        return Ok(None);
    }
    let header = read_exact_at(file, start, HEADER_LEN)?;
    let footer = read_exact_at(file, start + len - FOOTER_LEN, FOOTER_LEN)?;
    if header[..6] != MAGIC || &footer[10..] != b"YZ" {
        return Ok(None); // not xz, or stream padding / another stream follows: the decoder judges
    }
    let flags = [header[6], header[7]];
    if crc32fast::hash(&flags) != u32::from_le_bytes([header[8], header[9], header[10], header[11]])
    {
        return Err(invalid("xz stream header CRC32 mismatch".into()));
    }
    if crc32fast::hash(&footer[4..10])
        != u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]])
    {
        return Err(invalid("xz stream footer CRC32 mismatch".into()));
    }
    if footer[8..10] != flags {
        return Err(invalid(
            "xz stream footer flags differ from the header's".into(),
        ));
    }
    let backward = (u64::from(u32::from_le_bytes([
        footer[4], footer[5], footer[6], footer[7],
    ])) + 1)
        * 4;
    if backward > MAX_INDEX_LEN || backward > len - HEADER_LEN - FOOTER_LEN {
        return Ok(None);
    }
    let index_start = len - FOOTER_LEN - backward;
    let index = read_exact_at(file, start + index_start, backward)?;
    let records = parse_index(&index)?;
    let blocks = place_blocks(&records, index_start)?;
    let Some(blocks) = blocks else {
        return Ok(None);
    };
    if blocks.len() < 2 {
        return Ok(None);
    }
    let total_out = blocks
        .iter()
        .map(|b| b.uncompressed)
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| invalid("xz index: uncompressed sizes overflow".into()))?;
    Ok(Some(Layout {
        stream_flags: flags,
        blocks,
        total_out,
    }))
}

/// Decodes one xz multibyte integer (at most 9 bytes, no trailing zero byte).
fn varint(buf: &[u8], pos: &mut usize) -> io::Result<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| invalid("xz index ends inside a number".into()))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(invalid("xz index: badly encoded number".into()));
            }
            return Ok(value);
        }
    }
    Err(invalid("xz index: number longer than 9 bytes".into()))
}

/// The index's records as (unpadded size, uncompressed size), its padding and CRC32 checked.
fn parse_index(index: &[u8]) -> io::Result<Vec<(u64, u64)>> {
    if index.len() < 8 || index[0] != 0 {
        return Err(invalid("xz index: bad indicator".into()));
    }
    let body = &index[..index.len() - 4];
    let crc = u32::from_le_bytes(index[index.len() - 4..].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(invalid("xz index CRC32 mismatch".into()));
    }
    let mut pos = 1;
    let count = varint(body, &mut pos)?;
    // Each record takes at least 2 bytes: a larger count is a lie, not a reason to allocate.
    if count > (body.len() as u64) / 2 {
        return Err(invalid(format!(
            "xz index claims {count} blocks in {} bytes",
            body.len()
        )));
    }
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let unpadded = varint(body, &mut pos)?;
        let uncompressed = varint(body, &mut pos)?;
        // Smallest block: a 8-byte header + 1 byte of data; sizes up to 2^63 (format limit).
        if !(5..=(1u64 << 62)).contains(&unpadded) || uncompressed > 1u64 << 62 {
            return Err(invalid("xz index: impossible block size".into()));
        }
        records.push((unpadded, uncompressed));
    }
    // The body's length is a multiple of 4 (the footer counts it in 4-byte units): what follows
    // the records is the padding, fewer than 4 zero bytes.
    let padding = &body[pos..];
    if padding.len() >= 4 || padding.iter().any(|&b| b != 0) {
        return Err(invalid("xz index: bad padding".into()));
    }
    Ok(records)
}

/// Blocks at their offsets; `None` when they do not fill the stream exactly up to the index.
fn place_blocks(records: &[(u64, u64)], index_start: u64) -> io::Result<Option<Vec<Block>>> {
    let mut offset = HEADER_LEN;
    let mut out_offset = 0u64;
    let mut blocks = Vec::with_capacity(records.len());
    for &(unpadded, uncompressed) in records {
        blocks.push(Block {
            offset,
            unpadded,
            out_offset,
            uncompressed,
        });
        offset = offset
            .checked_add(unpadded.div_ceil(4) * 4)
            .filter(|&o| o <= index_start)
            .ok_or_else(|| invalid("xz index: blocks run past the index".into()))?;
        out_offset = out_offset
            .checked_add(uncompressed)
            .ok_or_else(|| invalid("xz index: uncompressed sizes overflow".into()))?;
    }
    Ok((offset == index_start).then_some(blocks))
}

/// A section of a file read with `pread`: workers share one descriptor without sharing a
/// file position.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min((self.end - self.pos).try_into().unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Appends an xz multibyte integer.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Index and footer of a stream whose blocks have these (unpadded, uncompressed) sizes.
fn index_and_footer(flags: [u8; 2], records: &[(u64, u64)]) -> Vec<u8> {
    let mut index = vec![0u8];
    put_varint(&mut index, records.len() as u64);
    for &(unpadded, uncompressed) in records {
        put_varint(&mut index, unpadded);
        put_varint(&mut index, uncompressed);
    }
    while index.len() % 4 != 0 {
        index.push(0);
    }
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    let backward = u32::try_from(index.len() / 4 - 1).unwrap_or(u32::MAX);
    let mut footer_body = backward.to_le_bytes().to_vec();
    footer_body.extend_from_slice(&flags);
    index.extend_from_slice(&crc32fast::hash(&footer_body).to_le_bytes());
    index.extend_from_slice(&footer_body);
    index.extend_from_slice(b"YZ");
    index
}

/// Decodes block `block` of the stream at `start` of `input` into `out` at its offset.
fn decode_block(
    input: &File,
    start: u64,
    layout: &Layout,
    block: &Block,
    memlimit: u64,
    out: &File,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&layout.stream_flags);
    header.extend_from_slice(&crc32fast::hash(&layout.stream_flags).to_le_bytes());
    let data = ReadAt {
        file: input,
        pos: start + block.offset,
        end: start + block.offset + block.unpadded.div_ceil(4) * 4,
    };
    let trailer = index_and_footer(layout.stream_flags, &[(block.unpadded, block.uncompressed)]);
    let stream = io::Cursor::new(header)
        .chain(data)
        .chain(io::Cursor::new(trailer));
    // Flags 0: the block's check is verified (unlike the whole-stream path, which ignores it).
    let decoder =
        liblzma::stream::Stream::new_stream_decoder(memlimit, 0).map_err(io::Error::other)?;
    let mut reader = liblzma::read::XzDecoder::new_stream(stream, decoder);
    let mut written = 0u64;
    loop {
        let n = reader.read(buf)?;
        if n == 0 {
            break;
        }
        if written + n as u64 > block.uncompressed {
            return Err(invalid("block decodes to more than the index says".into()));
        }
        out.write_all_at(&buf[..n], block.out_offset + written)?;
        written += n as u64;
    }
    if written != block.uncompressed {
        return Err(invalid(format!(
            "block decodes to {written} bytes, the index says {}",
            block.uncompressed
        )));
    }
    Ok(())
}

/// Decodes every block of `layout` (the stream at `start` of `input`) into `out` on up to
/// `threads` workers, returning the decoded size. The first error stops the other workers
/// after their current block; `out` then holds garbage and must be discarded.
pub fn decode_parallel(
    input: &File,
    start: u64,
    layout: &Layout,
    memlimit: u64,
    out: &File,
    threads: usize,
) -> io::Result<u64> {
    let next = Mutex::new(0usize);
    let failed: Mutex<Option<io::Error>> = Mutex::new(None);
    let threads = threads.clamp(1, layout.blocks.len());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let i = {
                        let Ok(mut next) = next.lock() else { return };
                        let stop = failed.lock().map_or(true, |f| f.is_some());
                        if stop || *next >= layout.blocks.len() {
                            return;
                        }
                        *next += 1;
                        *next - 1
                    };
                    let block = &layout.blocks[i];
                    if let Err(e) =
                        decode_block(input, start, layout, block, memlimit, out, &mut buf)
                    {
                        let e = io::Error::new(
                            e.kind(),
                            format!("xz block {} of {}: {e}", i + 1, layout.blocks.len()),
                        );
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed
        .into_inner()
        .map_err(|_| io::Error::other("xz worker panicked"))?
    {
        return Err(e);
    }
    let len = out.metadata()?.len();
    if len != layout.total_out {
        return Err(invalid(format!(
            "decoded {len} bytes, the xz index says {}",
            layout.total_out
        )));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    /// ~1.5 MB that compresses like text: words drawn from a fixed generator.
    fn sample() -> Vec<u8> {
        let words = [
            "usr", "share", "java", "lib", "class", "jar", "tomcat", "\n", "/", "=", "0",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::with_capacity(3 << 19);
        while out.len() < 3 << 19 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(words[(state % words.len() as u64) as usize].as_bytes());
            if state.is_multiple_of(5) {
                out.extend_from_slice(&state.to_le_bytes()[..3]);
            }
        }
        out
    }

    fn xz(args: &[&str], input: &[u8]) -> Vec<u8> {
        let child = Command::new("xz")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let mut child = child.expect("xz is missing: apt-get install -y xz-utils");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().expect("xz runs");
        feeder.join().expect("feeder").expect("xz reads its input");
        assert!(out.status.success(), "xz {args:?} failed");
        out.stdout
    }

    /// `bytes` in a file at offset 100 (as a member inside a .deb would be).
    fn at_offset(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&[0xaa; 100]).expect("write");
        file.write_all(bytes).expect("write");
        file
    }

    fn decode(bytes: &[u8], threads: usize) -> io::Result<Option<Vec<u8>>> {
        let input = at_offset(bytes);
        let Some(layout) = layout(&input, 100, bytes.len() as u64)? else {
            return Ok(None);
        };
        let out = tempfile::tempfile()?;
        let n = decode_parallel(&input, 100, &layout, 256 << 20, &out, threads)?;
        let mut decoded = vec![0u8; usize::try_from(n).expect("fits")];
        out.read_exact_at(&mut decoded, 0)?;
        Ok(Some(decoded))
    }

    fn multi_block(check: &str) -> Vec<u8> {
        xz(
            &[
                "-T2",
                "--block-size=128KiB",
                &format!("--check={check}"),
                "-c",
            ],
            &sample(),
        )
    }

    /// Rewrites the index (and footer) of a one-stream xz with `edit` applied to its records.
    fn with_records(xz: &[u8], edit: impl FnOnce(&mut Vec<(u64, u64)>)) -> Vec<u8> {
        let footer = &xz[xz.len() - 12..];
        let backward = (u32::from_le_bytes(footer[4..8].try_into().unwrap()) as usize + 1) * 4;
        let index_start = xz.len() - 12 - backward;
        let mut records = parse_index(&xz[index_start..xz.len() - 12]).expect("valid index");
        edit(&mut records);
        let mut out = xz[..index_start].to_vec();
        out.extend_from_slice(&index_and_footer([xz[6], xz[7]], &records));
        out
    }

    #[test]
    fn multi_block_xz_decodes_as_xz_does() {
        for check in ["crc64", "crc32", "sha256", "none"] {
            let compressed = multi_block(check);
            let judge = xz(&["-d", "-c"], &compressed);
            assert_eq!(judge, sample());
            let input = at_offset(&compressed);
            let found = layout(&input, 100, compressed.len() as u64)
                .unwrap()
                .expect("multi-block");
            assert!(
                found.blocks.len() >= 10,
                "{check}: {} blocks",
                found.blocks.len()
            );
            assert_eq!(found.total_out, judge.len() as u64);
            for threads in [1, 2, 3] {
                let decoded = decode(&compressed, threads).unwrap().expect("multi-block");
                assert!(
                    decoded == judge,
                    "{check}, {threads} threads: output differs from xz -d"
                );
            }
        }
    }

    #[test]
    fn single_block_and_padded_streams_take_the_streaming_path() {
        let single = xz(&["-T1", "-c"], &sample());
        assert_eq!(decode(&single, 2).unwrap(), None);
        let mut padded = multi_block("crc64");
        padded.extend_from_slice(&[0; 4]); // stream padding: legal, left to the stream decoder
        assert_eq!(decode(&padded, 2).unwrap(), None);
        let mut two_streams = multi_block("crc64");
        two_streams.extend_from_slice(&multi_block("crc64"));
        assert_eq!(decode(&two_streams, 2).unwrap(), None);
        let truncated = multi_block("crc64");
        assert_eq!(decode(&truncated[..truncated.len() - 1], 2).unwrap(), None);
        assert_eq!(decode(b"not xz at all, just some bytes", 2).unwrap(), None);
    }

    #[test]
    fn a_block_whose_check_fails_is_an_error() {
        for check in ["crc64", "sha256"] {
            let mut bad = multi_block(check);
            let input = at_offset(&bad);
            let found = layout(&input, 100, bad.len() as u64)
                .unwrap()
                .expect("multi-block");
            // The last byte of block 3's check.
            let b = &found.blocks[2];
            let at = usize::try_from(b.offset + b.unpadded - 1).unwrap();
            bad[at] ^= 0x55;
            let err = decode(&bad, 2).expect_err("corrupt check");
            assert!(err.to_string().contains("xz block 3 of"), "{check}: {err}");
        }
    }

    #[test]
    fn a_damaged_index_or_footer_is_an_error() {
        let good = multi_block("crc64");
        let mut bad_crc = good.clone();
        let index_byte = good.len() - 12 - 5; // inside the index, before its CRC32
        bad_crc[index_byte] ^= 1;
        let err = decode(&bad_crc, 2).expect_err("index CRC");
        assert!(err.to_string().contains("CRC32"), "{err}");
        let mut bad_footer = good.clone();
        let at = good.len() - 8; // backward size
        bad_footer[at] ^= 1;
        assert!(decode(&bad_footer, 2).is_err());
        let mut bad_header = good.clone();
        bad_header[7] = 4 + 0x10; // reserved flag bits
        assert!(decode(&bad_header, 2).is_err());
    }

    #[test]
    fn index_sizes_that_lie_are_errors_not_allocations() {
        let good = multi_block("crc64");
        // Uncompressed size one byte short, one byte long, and absurd.
        for delta in [-1i64, 1] {
            let bad = with_records(&good, |r| r[1].1 = r[1].1.saturating_add_signed(delta));
            let err = decode(&bad, 2).expect_err("wrong uncompressed size");
            assert!(err.to_string().contains("xz block 2 of"), "{delta}: {err}");
        }
        let huge = with_records(&good, |r| r[0].1 = 1 << 61);
        assert!(decode(&huge, 2).is_err());
        let past_limit = with_records(&good, |r| r[0].1 = u64::MAX >> 1);
        assert!(decode(&past_limit, 2).is_err());
        // A compressed size that moves the blocks off their places: not this layout.
        let shifted = with_records(&good, |r| r[0].0 += 4);
        assert!(!matches!(decode(&shifted, 2), Ok(Some(_))));
        // A block count far beyond what the index holds.
        let mut index = vec![0u8];
        put_varint(&mut index, 1 << 40);
        index.resize(12, 0);
        let crc = crc32fast::hash(&index[..8]);
        index[8..].copy_from_slice(&crc.to_le_bytes());
        let err = parse_index(&index).expect_err("count");
        assert!(err.to_string().contains("claims"), "{err}");
        // Numbers that never end.
        let mut endless = vec![0u8];
        endless.extend_from_slice(&[0xff; 11]);
        let crc = crc32fast::hash(&endless);
        endless.extend_from_slice(&crc.to_le_bytes());
        assert!(parse_index(&endless).is_err());
    }
}
