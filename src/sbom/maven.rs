//! Maven coordinates of the jars in file and WAR layers, from the `pom.properties` Maven's
//! archiver puts in every jar it builds (`META-INF/maven/GROUP/ARTIFACT/pom.properties`).
//!
//! Jars are outside data: a file named `.jar` that is no zip, or a zip without the file, is
//! simply not a Maven component (it is still listed as a file with its digests). Only the
//! central directory and at most [`MAX_POMS`] small entries are read, each at most
//! [`MAX_PROPERTIES`] bytes: a crafted jar cannot make this read much.

use std::io::{self, Read, Seek, SeekFrom};

use crate::layer::{ContentSource, FileContent};

const MAX_POMS: usize = 64;
const MAX_PROPERTIES: u64 = 64 << 10;

/// One `pom.properties` found in a jar.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Coordinates {
    pub group: String,
    pub artifact: String,
    pub version: String,
}

/// The coordinates a jar's `pom.properties` files name, sorted (a shaded jar has several).
pub fn coordinates(content: &FileContent) -> io::Result<Vec<Coordinates>> {
    let reader = open(content)?;
    let Ok(mut zip) = zip::ZipArchive::new(reader) else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.starts_with("META-INF/maven/") && n.ends_with("/pom.properties"))
        .take(MAX_POMS)
        .map(|n| n.into_owned())
        .collect();
    let mut out = Vec::new();
    for name in names {
        let Ok(entry) = zip.by_name(&name) else {
            continue;
        };
        let mut text = String::new();
        if entry
            .take(MAX_PROPERTIES)
            .read_to_string(&mut text)
            .is_err()
        {
            continue;
        }
        if let Some(c) = parse_properties(&text) {
            out.push(c);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `groupId`, `artifactId` and `version` of a Java properties file (`key=value`, `key: value`;
/// `#` and `!` comments).
fn parse_properties(text: &str) -> Option<Coordinates> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let l = l.trim_start();
            if l.starts_with(['#', '!']) {
                return None;
            }
            let at = l.find(['=', ':'])?;
            (l[..at].trim() == key)
                .then(|| l[at + 1..].trim().to_string())
                .filter(|v| !v.is_empty() && !v.contains(char::is_control))
        })
    };
    Some(Coordinates {
        group: get("groupId")?,
        artifact: get("artifactId")?,
        version: get("version")?,
    })
}

/// A seekable reader of a file's content (a zip reader needs to seek to its directory).
fn open(content: &FileContent) -> io::Result<Box<dyn ReadSeek + '_>> {
    Ok(match &content.source {
        ContentSource::Bytes(b) => Box::new(io::Cursor::new(&b[..])),
        ContentSource::Host(path) => {
            Box::new(Window::new(std::fs::File::open(path)?, 0, content.size)?)
        }
        ContentSource::Range { path, offset } => Box::new(Window::new(
            std::fs::File::open(path.as_path())?,
            *offset,
            content.size,
        )?),
    })
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// `len` bytes of a file from `start` (a STORED jar inside a WAR), seekable on their own.
struct Window {
    file: std::fs::File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Window {
    fn new(mut file: std::fs::File, start: u64, len: u64) -> io::Result<Window> {
        file.seek(SeekFrom::Start(start))?;
        Ok(Window {
            file,
            start,
            len,
            pos: 0,
        })
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn jar(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, text) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn content(bytes: Vec<u8>) -> FileContent {
        FileContent {
            size: bytes.len() as u64,
            digest: None,
            source: ContentSource::Bytes(Arc::from(bytes)),
        }
    }

    #[test]
    fn pom_properties_name_the_jar() {
        let bytes = jar(&[
            ("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n"),
            (
                "META-INF/maven/com.example/greeting/pom.properties",
                "#Generated by Maven\nartifactId=greeting\ngroupId=com.example\nversion = 1.0\n",
            ),
            ("com/example/Greeting.class", "x"),
        ]);
        assert_eq!(
            coordinates(&content(bytes)).unwrap(),
            [Coordinates {
                group: "com.example".into(),
                artifact: "greeting".into(),
                version: "1.0".into()
            }]
        );
    }

    #[test]
    fn a_window_into_a_war_reads_the_stored_jar() {
        let bytes = jar(&[(
            "META-INF/maven/g/a/pom.properties",
            "groupId=g\nartifactId=a\nversion=2\n",
        )]);
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"0123456789").unwrap();
        file.write_all(&bytes).unwrap();
        file.write_all(b"trailing").unwrap();
        let c = FileContent {
            size: bytes.len() as u64,
            digest: None,
            source: ContentSource::Range {
                path: Arc::new(file.path().to_path_buf()),
                offset: 10,
            },
        };
        assert_eq!(coordinates(&c).unwrap()[0].version, "2");
    }

    #[test]
    fn jars_without_poms_or_not_zips_name_nothing() {
        assert!(
            coordinates(&content(jar(&[("a.class", "x")])))
                .unwrap()
                .is_empty()
        );
        assert!(
            coordinates(&content(b"not a zip".to_vec()))
                .unwrap()
                .is_empty()
        );
        let partial = jar(&[(
            "META-INF/maven/g/a/pom.properties",
            "groupId=g\nversion=1\n",
        )]);
        assert!(coordinates(&content(partial)).unwrap().is_empty());
    }
}
