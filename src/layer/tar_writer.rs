//! A tar stream writer that only writes canonical headers.
//!
//! The `tar` crate does the header layout and checksums; this type decides every field so the
//! bytes depend on nothing but the entry: ustar headers, numeric owners with empty names, no
//! atime/ctime, and a PAX extended header only when a value does not fit ustar (long names or
//! link targets, ids above 2097151, sizes of 8 GiB and more). The PAX header itself has fixed
//! fields and an empty name, never the PID-based names some tars use.
//!
//! Callers must append entries in [`ImagePath`] order, parents first: [`TarWriter`] checks this,
//! because a stream out of order is a reproducibility bug, not a style issue.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

use super::entry::Meta;
use crate::image_path::ImagePath;

const USTAR_MAX_ID: u32 = 0o7777777;
const USTAR_MAX_SIZE: u64 = 0o77777777777;

pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    last: Option<ImagePath>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(inner: W) -> Self {
        let mut builder = tar::Builder::new(inner);
        builder.mode(tar::HeaderMode::Deterministic);
        TarWriter {
            builder,
            last: None,
        }
    }

    pub fn append_dir(&mut self, path: &ImagePath, meta: &Meta) -> io::Result<()> {
        let name = format!("{}/", path.as_str());
        self.append(
            path,
            &name,
            EntryType::Directory,
            meta,
            0,
            None,
            io::empty(),
        )
    }

    pub fn append_file(
        &mut self,
        path: &ImagePath,
        meta: &Meta,
        size: u64,
        content: impl Read,
    ) -> io::Result<()> {
        self.append(
            path,
            path.as_str(),
            EntryType::Regular,
            meta,
            size,
            None,
            content,
        )
    }

    pub fn append_symlink(
        &mut self,
        path: &ImagePath,
        meta: &Meta,
        target: &str,
    ) -> io::Result<()> {
        self.append(
            path,
            path.as_str(),
            EntryType::Symlink,
            meta,
            0,
            Some(target),
            io::empty(),
        )
    }

    pub fn append_hardlink(
        &mut self,
        path: &ImagePath,
        meta: &Meta,
        target: &ImagePath,
    ) -> io::Result<()> {
        self.append(
            path,
            path.as_str(),
            EntryType::Link,
            meta,
            0,
            Some(target.as_str()),
            io::empty(),
        )
    }

    /// Writes the end-of-archive blocks and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        path: &ImagePath,
        name: &str,
        kind: EntryType,
        meta: &Meta,
        size: u64,
        link: Option<&str>,
        content: impl Read,
    ) -> io::Result<()> {
        if let Some(last) = &self.last
            && path <= last
        {
            return Err(io::Error::other(format!(
                "tar entries out of order: {path} after {last} (a stevedore bug)"
            )));
        }
        self.last = Some(path.clone());

        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(meta.mode & 0o7777);
        header.set_mtime(meta.mtime.min(USTAR_MAX_SIZE));
        header.set_uid(u64::from(meta.uid.min(USTAR_MAX_ID)));
        header.set_gid(u64::from(meta.gid.min(USTAR_MAX_ID)));
        header.set_size(size.min(USTAR_MAX_SIZE));
        header.set_username("").map_err(io::Error::other)?;
        header.set_groupname("").map_err(io::Error::other)?;

        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        let ustar = header.as_ustar_mut().expect("ustar header");
        if !split_ustar_name(name.as_bytes(), &mut ustar.name, &mut ustar.prefix) {
            pax.push(("path", name.as_bytes().to_vec()));
            // Readers that ignore PAX still see a recognisable, truncated name.
            let cut = truncate_utf8(name, ustar.name.len());
            ustar.name[..cut.len()].copy_from_slice(cut.as_bytes());
        }
        if let Some(link) = link {
            if link.len() <= ustar.linkname.len() {
                ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
            } else {
                pax.push(("linkpath", link.as_bytes().to_vec()));
                let cut = truncate_utf8(link, ustar.linkname.len());
                ustar.linkname[..cut.len()].copy_from_slice(cut.as_bytes());
            }
        }
        if meta.uid > USTAR_MAX_ID {
            pax.push(("uid", meta.uid.to_string().into_bytes()));
        }
        if meta.gid > USTAR_MAX_ID {
            pax.push(("gid", meta.gid.to_string().into_bytes()));
        }
        if size > USTAR_MAX_SIZE {
            pax.push(("size", size.to_string().into_bytes()));
        }
        if meta.mtime > USTAR_MAX_SIZE {
            pax.push(("mtime", meta.mtime.to_string().into_bytes()));
        }
        header.set_cksum();
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))?;
        }
        // `Builder::append` pads to the block size; a short reader would desync the archive,
        // so count what was copied and fail loudly.
        let mut counted = CountingReader::new(content.take(size));
        self.builder.append(&header, &mut counted)?;
        if counted.count != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{path}: expected {size} bytes, source gave {}",
                    counted.count
                ),
            ));
        }
        Ok(())
    }
}

/// Counts the bytes read through it.
pub(super) struct CountingReader<R> {
    inner: R,
    pub(super) count: u64,
}

impl<R> CountingReader<R> {
    pub(super) fn new(inner: R) -> Self {
        CountingReader { inner, count: 0 }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Splits a name into ustar's `prefix` (155) and `name` (100) at a `/`. Returns false when the
/// name cannot be represented that way and needs a PAX `path`.
fn split_ustar_name(name: &[u8], name_field: &mut [u8; 100], prefix_field: &mut [u8; 155]) -> bool {
    if name.len() <= name_field.len() {
        name_field[..name.len()].copy_from_slice(name);
        return true;
    }
    // A trailing slash (directories) belongs to the name part.
    let search_end = name.len().saturating_sub(1).min(prefix_field.len() + 1);
    let Some(split) = name[..search_end].iter().rposition(|&b| b == b'/') else {
        return false;
    };
    let (prefix, rest) = (&name[..split], &name[split + 1..]);
    if prefix.len() > prefix_field.len() || rest.len() > name_field.len() || rest.is_empty() {
        return false;
    }
    prefix_field[..prefix.len()].copy_from_slice(prefix);
    name_field[..rest.len()].copy_from_slice(rest);
    true
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::from_absolute(s).unwrap()
    }

    const META: Meta = Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1,
    };

    fn read_back(bytes: &[u8]) -> Vec<(String, Option<String>, u64, u64)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                    e.header().uid().unwrap(),
                    e.size(),
                )
            })
            .collect()
    }

    #[test]
    fn long_names_links_and_ids_round_trip_through_pax() {
        let long_dir = format!("/{}", "d".repeat(120));
        let long_file = format!("{long_dir}/{}", "é".repeat(60));
        let long_target = "t/".repeat(80);
        let mut w = TarWriter::new(Vec::new());
        w.append_dir(&p(&long_dir), &META).unwrap();
        w.append_symlink(&p(&format!("{long_dir}/z")), &META, &long_target)
            .unwrap();
        let big = Meta {
            uid: 4_000_000,
            ..META
        };
        w.append_file(&p(&long_file), &big, 3, &b"abc"[..]).unwrap();
        let out = w.finish().unwrap();
        let entries = read_back(&out);
        assert_eq!(entries[0].0, format!("{}/", &long_dir[1..]));
        assert_eq!(entries[1].1.as_deref(), Some(long_target.as_str()));
        assert_eq!(entries[2].0, &long_file[1..]);
        assert_eq!(entries[2].2, 4_000_000);
        assert_eq!(entries[2].3, 3);
    }

    #[test]
    fn refuses_out_of_order_and_short_content() {
        let mut w = TarWriter::new(Vec::new());
        w.append_dir(&p("/b"), &META).unwrap();
        assert!(w.append_dir(&p("/a"), &META).is_err());
        let mut w = TarWriter::new(Vec::new());
        let err = w.append_file(&p("/f"), &META, 10, &b"abc"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn same_input_same_bytes() {
        let build = || {
            let mut w = TarWriter::new(Vec::new());
            w.append_dir(&p("/a"), &META).unwrap();
            w.append_file(&p("/a/f"), &META, 2, &b"hi"[..]).unwrap();
            w.finish().unwrap()
        };
        assert_eq!(build(), build());
    }
}
