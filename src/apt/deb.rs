//! Reading a `.deb` without extracting it to the host.
//!
//! A .deb is an `ar` archive: `debian-binary`, `control.tar[.gz|.xz|.zst]`,
//! `data.tar[.gz|.xz|.zst]`. [`Deb::open`] checks the ar framing against the file size (so a
//! truncated download is caught before any entry is used) and reads the small control tarball
//! into memory; [`Deb::for_each_data_entry`] streams the data tarball's entries through a
//! decompressor so the layer writer can copy each one straight into a layer tar.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a valid .deb: {detail}")]
    Invalid { path: String, detail: String },
    #[error("{path} is truncated: {detail}; delete it and download again")]
    Truncated { path: String, detail: String },
    #[error(
        "{path}: member {member} uses an unsupported compression (supported: none, gzip, xz, zstd)"
    )]
    UnsupportedCompression { path: String, member: String },
    #[error("{path}: reading {member}: {source}")]
    Member {
        path: String,
        member: String,
        source: io::Error,
    },
}

/// Most bytes of control-tarball files read into memory, all files together (real ones are a
/// few KB; md5sums of big packages reach a few MB). A compressed tarball can declare any size,
/// so the bound is on what is read, not on the .deb's size.
const MAX_CONTROL_BYTES: u64 = 64 << 20;

/// Most entries in a control tarball (real ones hold fewer than 20): zero-size entries cost
/// nothing to compress and would otherwise fill memory one map node at a time.
const MAX_CONTROL_ENTRIES: usize = 4096;

/// Memory the xz decoder may use (its dictionary): `xz -9` needs 65 MiB. A hostile header
/// could otherwise ask for gigabytes.
const XZ_MEMLIMIT: u64 = 256 << 20;

/// How a tar member of the .deb is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// From a member name such as `data.tar.xz`; `None` when the suffix is unknown.
    fn from_member(name: &str, stem: &str) -> Option<Compression> {
        match name.strip_prefix(stem)? {
            "" => Some(Compression::None),
            ".gz" => Some(Compression::Gzip),
            ".xz" => Some(Compression::Xz),
            ".zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Wraps `reader` in the matching decompressor.
    pub fn decoder<'a, R: Read + 'a>(self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Xz => {
                // Every .deb and index is SHA-256-verified before it is decompressed, so xz's
                // own CRC64 adds nothing but ~10% of decoding time.
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    XZ_MEMLIMIT,
                    liblzma::stream::IGNORE_CHECK,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(reader, stream))
            }
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        })
    }
}

/// An opened .deb: its control files in memory, its data tarball read on demand.
#[derive(Debug, Clone)]
pub struct Deb {
    path: PathBuf,
    /// Control tarball files by name without `./` (`control`, `md5sums`, `conffiles`,
    /// `preinst`, `postinst`, `prerm`, `postrm`, `triggers`, `config`, ...).
    control_files: BTreeMap<String, Vec<u8>>,
    data_member: String,
    data_compression: Compression,
}

impl Deb {
    pub fn open(path: &Path) -> Result<Deb, DebError> {
        let shown = path.display().to_string();
        let io_err = |source| DebError::Io {
            path: shown.clone(),
            source,
        };
        let invalid = |detail: String| DebError::Invalid {
            path: shown.clone(),
            detail,
        };
        let file = File::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        check_ar_framing(path, file_len)?;

        let mut archive = ar::Archive::new(BufReader::new(file));
        let mut members = Vec::new();
        let mut control_files = None;
        let mut data = None;
        while let Some(entry) = archive.next_entry() {
            let mut entry = entry.map_err(|e| invalid(format!("bad ar member: {e}")))?;
            let name = String::from_utf8_lossy(entry.header().identifier())
                .trim_end_matches('/')
                .to_owned();
            members.push(name.clone());
            if name == "debian-binary" {
                let mut version = String::new();
                entry
                    .read_to_string(&mut version)
                    .map_err(|e| invalid(format!("debian-binary: {e}")))?;
                if !version.starts_with("2.") {
                    return Err(invalid(format!(
                        "unsupported format version {:?}",
                        version.trim()
                    )));
                }
            } else if name.starts_with("control.tar") {
                let compression =
                    Compression::from_member(&name, "control.tar").ok_or_else(|| {
                        DebError::UnsupportedCompression {
                            path: shown.clone(),
                            member: name.clone(),
                        }
                    })?;
                control_files = Some(read_control(compression, &mut entry).map_err(|source| {
                    DebError::Member {
                        path: shown.clone(),
                        member: name.clone(),
                        source,
                    }
                })?);
            } else if name.starts_with("data.tar") {
                let compression = Compression::from_member(&name, "data.tar").ok_or_else(|| {
                    DebError::UnsupportedCompression {
                        path: shown.clone(),
                        member: name.clone(),
                    }
                })?;
                data = Some((name, compression));
                // Past it without reading it: dropped unread, an ar entry reads its rest to
                // move on, which was the whole .deb read once more for nothing (44 MB for the
                // JDK).
                std::io::Seek::seek(&mut entry, std::io::SeekFrom::End(0))
                    .map_err(|e| invalid(format!("bad ar member: {e}")))?;
            }
        }
        if members.first().map(String::as_str) != Some("debian-binary") {
            return Err(invalid(format!(
                "first ar member must be debian-binary, found {members:?}"
            )));
        }
        let control_files = control_files.ok_or_else(|| invalid("no control.tar member".into()))?;
        if !control_files.contains_key("control") {
            return Err(invalid("control.tar has no control file".into()));
        }
        let (data_member, data_compression) =
            data.ok_or_else(|| invalid("no data.tar member".into()))?;
        Ok(Deb {
            path: path.to_owned(),
            control_files,
            data_member,
            data_compression,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of the control tarball (`control`, `md5sums`, `conffiles`, `postinst`, ...).
    pub fn control_file(&self, name: &str) -> Option<&[u8]> {
        self.control_files.get(name).map(Vec::as_slice)
    }

    /// Every control tarball file, by name.
    pub fn control_files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.control_files
    }

    /// The `control` file as text.
    pub fn control(&self) -> String {
        String::from_utf8_lossy(self.control_file("control").unwrap_or_default()).into_owned()
    }

    /// `data.tar.xz` etc. and how it is compressed.
    pub fn data_member(&self) -> (&str, Compression) {
        (&self.data_member, self.data_compression)
    }

    /// Runs `use_data` on the decompressed data tarball as a stream; I/O errors inside name the
    /// .deb and its member.
    fn with_data<T>(
        &self,
        use_data: impl FnOnce(Box<dyn Read + '_>) -> io::Result<T>,
    ) -> Result<T, DebError> {
        let shown = self.path.display().to_string();
        let member_err = |source| DebError::Member {
            path: shown.clone(),
            member: self.data_member.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(|source| DebError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut archive = ar::Archive::new(BufReader::new(file));
        while let Some(entry) = archive.next_entry() {
            let entry = entry.map_err(member_err)?;
            if entry.header().identifier() != self.data_member.as_bytes() {
                continue;
            }
            let reader = self.data_compression.decoder(entry).map_err(member_err)?;
            return use_data(reader).map_err(member_err);
        }
        Err(DebError::Invalid {
            path: shown,
            detail: format!("member {} vanished", self.data_member),
        })
    }

    /// Copies the decompressed data tarball to `out` (to keep it unpacked for random access),
    /// returning its size.
    pub fn copy_data_tar(&self, out: &mut impl Write) -> Result<u64, DebError> {
        self.with_data(|mut reader| io::copy(&mut reader, out))
    }

    /// Writes the decompressed data tarball to the empty file `out`, returning its size. A
    /// data.tar.xz of several xz blocks (the JDK's has 8) is decoded on every core, each block
    /// written at its offset ([`super::xz_blocks`]); anything else streams as
    /// [`Deb::copy_data_tar`] does.
    pub fn unpack_data_tar_to(&self, out: &File) -> Result<u64, DebError> {
        if self.data_compression == Compression::Xz
            && let Some(n) = self.unpack_xz_blocks(out)?
        {
            return Ok(n);
        }
        let mut writer = io::BufWriter::with_capacity(256 * 1024, out);
        let n = self.copy_data_tar(&mut writer)?;
        writer.flush().map_err(|source| DebError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        Ok(n)
    }

    /// The multi-block path of [`Deb::unpack_data_tar_to`]; `None` when the member is not one
    /// xz stream of several blocks.
    fn unpack_xz_blocks(&self, out: &File) -> Result<Option<u64>, DebError> {
        let shown = self.path.display().to_string();
        let member_err = |source| DebError::Member {
            path: shown.clone(),
            member: self.data_member.clone(),
            source,
        };
        let input = File::open(&self.path).map_err(|source| DebError::Io {
            path: shown.clone(),
            source,
        })?;
        let Some((start, len)) = member_range(&input, &self.data_member).map_err(member_err)?
        else {
            return Ok(None);
        };
        let Some(layout) = super::xz_blocks::layout(&input, start, len).map_err(member_err)? else {
            return Ok(None);
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        super::xz_blocks::decode_parallel(&input, start, &layout, XZ_MEMLIMIT, out, threads)
            .map(Some)
            .map_err(member_err)
    }

    /// Streams the entries of the data tarball, in archive order, through `visit`. Nothing is
    /// written to disk; `visit` reads each entry's contents (or skips them) before the next.
    ///
    /// Paths are as the archive has them (dpkg-deb writes `./usr/...`, other tools `usr/...`)
    /// and untrusted: the caller normalises them and refuses `..` components and absolute
    /// paths before putting them in a layer.
    pub fn for_each_data_entry<F>(&self, mut visit: F) -> Result<(), DebError>
    where
        F: FnMut(&mut tar::Entry<'_, Box<dyn Read + '_>>) -> io::Result<()>,
    {
        self.with_data(|reader| {
            let mut tar = tar::Archive::new(reader);
            for tar_entry in tar.entries()? {
                visit(&mut tar_entry?)?;
            }
            Ok(())
        })
    }
}

fn read_control(
    compression: Compression,
    member: &mut impl Read,
) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let invalid = |detail: String| io::Error::new(io::ErrorKind::InvalidData, detail);
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let mut tar = tar::Archive::new(compression.decoder(member)?);
    for (count, entry) in tar.entries()?.enumerate() {
        if count >= MAX_CONTROL_ENTRIES {
            return Err(invalid(format!(
                "more than {MAX_CONTROL_ENTRIES} entries in the control tarball"
            )));
        }
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let name = path.trim_start_matches("./").to_owned();
        // Control files are small; a huge size is damage or malice, not something to buffer.
        total = total.saturating_add(entry.size());
        if total > MAX_CONTROL_BYTES {
            return Err(invalid(format!(
                "{name} claims {} bytes, past the limit of {MAX_CONTROL_BYTES} for all control files",
                entry.size()
            )));
        }
        // Allocate for what arrives, not for what the header declares.
        let mut bytes = Vec::with_capacity(entry.size().min(64 << 10) as usize);
        entry.read_to_end(&mut bytes)?;
        files.insert(name, bytes);
    }
    Ok(files)
}

/// Where member `name`'s data is in the ar archive `file` (offset, size), or `None`. The
/// framing was checked by [`Deb::open`]; sizes are checked again against the file's length.
fn member_range(file: &File, name: &str) -> io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::FileExt;
    let file_len = file.metadata()?.len();
    let mut offset = 8u64;
    let mut header = [0u8; 60];
    while offset + 60 <= file_len {
        file.read_exact_at(&mut header, offset)?;
        let size: u64 = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad ar header"))?;
        let start = offset + 60;
        if size > file_len - start {
            return Ok(None);
        }
        let member = String::from_utf8_lossy(&header[..16]);
        if member.trim_end().trim_end_matches('/') == name {
            return Ok(Some((start, size)));
        }
        offset = start + size + (size % 2);
    }
    Ok(None)
}

/// Walks the ar headers (60 bytes each, members padded to even length) and checks every
/// member fits in the file, so truncation is reported up front with the member it cut.
fn check_ar_framing(path: &Path, file_len: u64) -> Result<(), DebError> {
    let shown = path.display().to_string();
    let mut file = File::open(path).map_err(|source| DebError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != b"!<arch>\n" {
        return Err(if file_len < 8 {
            DebError::Truncated {
                path: shown,
                detail: format!("only {file_len} bytes"),
            }
        } else {
            DebError::Invalid {
                path: shown,
                detail: "no ar magic (!<arch>)".into(),
            }
        });
    }
    let mut offset = 8u64;
    let mut header = [0u8; 60];
    while offset < file_len {
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(offset))
            .map_err(|source| DebError::Io {
                path: shown.clone(),
                source,
            })?;
        if offset + 60 > file_len || file.read_exact(&mut header).is_err() {
            return Err(DebError::Truncated {
                path: shown,
                detail: format!("ar header at byte {offset} cut off at {file_len}"),
            });
        }
        let name = String::from_utf8_lossy(&header[..16]).trim_end().to_owned();
        // GNU (`/N`, `//`, `/`) and BSD (`#1/N`) special names index into tables whose bounds
        // the ar crate does not check (a `/99` without a name table panics). dpkg reads plain
        // names only, so a .deb never needs them.
        if name.starts_with('/') || name.starts_with("#1/") {
            return Err(DebError::Invalid {
                path: shown,
                detail: format!(
                    "ar member {name:?} at byte {offset}: .deb members have plain names (no GNU or BSD extended names)"
                ),
            });
        }
        let size: u64 = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| DebError::Invalid {
                path: shown.clone(),
                detail: format!("bad ar header at byte {offset}"),
            })?;
        let end = offset + 60 + size;
        if end > file_len {
            return Err(DebError::Truncated {
                path: shown,
                detail: format!(
                    "member {name} needs {size} bytes but the file ends {} bytes early",
                    end - file_len
                ),
            });
        }
        offset = end + (size % 2);
    }
    Ok(())
}
