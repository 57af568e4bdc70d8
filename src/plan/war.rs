//! Exploded WARs, layered the way Jib does it: the WAR's entries are split into up to four
//! layers, from the least to the most often changed, each keyed on its own content, so a build
//! that only changed a class re-uploads only the classes layer.
//!
//! - `<name>-libs`: `WEB-INF/lib/*.jar` (release dependencies);
//! - `<name>-snapshots`: `WEB-INF/lib/*-SNAPSHOT*.jar`;
//! - `<name>-resources`: everything else (JSPs, static files, `WEB-INF/web.xml`, properties);
//! - `<name>-classes`: `WEB-INF/classes/**/*.class`.
//!
//! Empty groups make no layer. Every file gets the WAR's own time from the clock (the policy of
//! any other source file), never the zip's entry times, so rebuilding the WAR with the same
//! content gives the same layers. STORED entries are read by the layer writer straight from the
//! WAR (a byte range); DEFLATE entries are inflated here and kept in memory, within limits.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use zip::CompressionMethod;

use super::PlanError;
use super::sources::{SourceContext, hash_file};
use crate::digest::{Digest, Hasher};
use crate::image_path::ImagePath;
use crate::layer::{
    ContentSource, Entry, EntryKind, FileContent, LayerContents, LayerTree, LowerView, Meta,
    TreeError,
};
use crate::recipe::WarItem;

/// Largest inflated size of one DEFLATE entry, and of all of them in one WAR: their bytes stay
/// in memory until the layers are written.
const MAX_INFLATED_ENTRY: u64 = 256 << 20;
const MAX_INFLATED_TOTAL: u64 = 1 << 30;

/// The layer a file of the WAR goes to, in layer order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Libs,
    Snapshots,
    Resources,
    Classes,
}

impl Group {
    pub const ALL: [Group; 4] = [
        Group::Libs,
        Group::Snapshots,
        Group::Resources,
        Group::Classes,
    ];

    /// The suffix of the layer's name (one of [`WarItem::LAYER_SUFFIXES`]).
    pub fn suffix(self) -> &'static str {
        WarItem::LAYER_SUFFIXES[self as usize]
    }

    /// The group of a file, by its normalised path inside the WAR.
    pub fn of(path: &str) -> Group {
        if let Some(jar) = path.strip_prefix("WEB-INF/lib/")
            && !jar.contains('/')
            && jar.ends_with(".jar")
        {
            if jar.contains("-SNAPSHOT") {
                Group::Snapshots
            } else {
                Group::Libs
            }
        } else if path.starts_with("WEB-INF/classes/") && path.ends_with(".class") {
            Group::Classes
        } else {
            Group::Resources
        }
    }
}

/// What a WAR holds: its files by group (path inside the WAR, content), and the directories
/// that hold no file (they go with the resources).
#[derive(Debug, Default)]
pub struct WarContents {
    pub files: BTreeMap<Group, Vec<(String, FileContent)>>,
    pub empty_dirs: Vec<String>,
}

/// One image layer made from a WAR.
pub(super) struct WarLayer {
    pub name: String,
    pub sources: Vec<String>,
    pub contents: LayerContents,
}

/// Plans the layers of an exploded WAR on top of `lower`, which each of them is applied to.
pub(super) fn layers(
    item: &WarItem,
    layer_name: &str,
    lower: &mut LowerView,
    implied_dir: Meta,
    ctx: &SourceContext,
) -> Result<Vec<WarLayer>, PlanError> {
    let fail = |m: String| PlanError::new(&item.location, format!("war `{}`: {m}", item.src));
    let war = read(&item.path, item.max_size).map_err(|m| {
        fail(m).help("the war must be a zip archive of files and folders (STORED or DEFLATE)")
    })?;
    let mtime = war_time(&item.path, ctx).map_err(|e| fail(e.to_string()))?;
    let file_meta = Meta {
        mode: item.mode,
        uid: item.owner.uid,
        gid: item.owner.gid,
        mtime,
    };
    // Folders then take the newest time of their content, as for `files`.
    let dir_meta = Meta {
        mode: item.dir_mode,
        mtime: ctx.clock.generated_time(),
        ..file_meta
    };
    let tree_err = |e: TreeError| fail(e.to_string());
    let mut out = Vec::new();
    for group in Group::ALL {
        let files = war.files.get(&group).map_or(&[][..], Vec::as_slice);
        let dirs = match group {
            Group::Resources => war.empty_dirs.as_slice(),
            _ => &[],
        };
        if files.is_empty() && dirs.is_empty() {
            continue;
        }
        let mut tree = LayerTree::new(lower, implied_dir);
        ensure_dir(&mut tree, &item.dest, dir_meta).map_err(tree_err)?;
        for rel in dirs {
            let path = join(&item.dest, rel).map_err(&fail)?;
            ensure_dirs_below(&mut tree, &item.dest, &path, dir_meta).map_err(tree_err)?;
            ensure_dir(&mut tree, &path, dir_meta).map_err(tree_err)?;
        }
        for (rel, content) in files {
            let path = join(&item.dest, rel).map_err(&fail)?;
            ensure_dirs_below(&mut tree, &item.dest, &path, dir_meta).map_err(tree_err)?;
            let entry = Entry {
                kind: EntryKind::File(content.clone()),
                meta: file_meta,
            };
            tree.insert(&path, entry).map_err(tree_err)?;
        }
        let contents = tree.finish().map_err(tree_err)?;
        lower.apply(&contents);
        let what = match group {
            Group::Libs => "release jars",
            Group::Snapshots => "snapshot jars",
            Group::Resources => "resources",
            Group::Classes => "classes",
        };
        out.push(WarLayer {
            name: format!("{layer_name}-{}", group.suffix()),
            sources: vec![format!(
                "{} ({what}) -> {} ({} files)",
                item.src,
                item.dest,
                files.len()
            )],
            contents,
        });
    }
    Ok(out)
}

fn join(dest: &ImagePath, rel: &str) -> Result<ImagePath, String> {
    dest.join(rel).map_err(|e| format!("{rel}: {e}"))
}

/// The WAR's time under the clock's policy for source files (git time when tracked and
/// unmodified, else the default time).
fn war_time(path: &Path, ctx: &SourceContext) -> std::io::Result<u64> {
    let git_id = if ctx.clock.tracked(path).is_some() {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        hash_file(file, len, true)?.2
    } else {
        None
    };
    Ok(ctx.clock.source_time(path, git_id))
}

/// Adds the folder `path` unless the layer already has it.
fn ensure_dir(tree: &mut LayerTree, path: &ImagePath, meta: Meta) -> Result<(), TreeError> {
    let resolved = tree.resolve(path)?;
    if tree.get(&resolved).is_none() {
        tree.insert(
            path,
            Entry {
                kind: EntryKind::Dir,
                meta,
            },
        )?;
    }
    Ok(())
}

/// Adds the folders between `dest` and `path` (both excluded) with the WAR's owner and mode.
fn ensure_dirs_below(
    tree: &mut LayerTree,
    dest: &ImagePath,
    path: &ImagePath,
    meta: Meta,
) -> Result<(), TreeError> {
    for a in path.ancestors() {
        if a.starts_with(dest) && a != *dest {
            ensure_dir(tree, &a, meta)?;
        }
    }
    Ok(())
}

/// Reads the WAR's central directory and every entry: STORED ones are hashed where they lie in
/// the file (checked against their CRC-32), DEFLATE ones are inflated (the zip reader checks
/// their CRC-32) and kept. The archive must be consistent first (see [`check_layout`]), and
/// its entries must not hold more than `max_size` bytes uncompressed in all.
pub fn read(path: &Path, max_size: u64) -> Result<WarContents, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(path).map_err(io)?))
        .map_err(|e| format!("not a readable zip archive: {e}"))?;
    check_layout(&mut zip)?;
    let mut total = 0u64;
    let mut raw = File::open(path).map_err(io)?;
    let shared = Arc::new(path.to_path_buf());
    let mut out = WarContents::default();
    let mut names = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut inflated_total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("zip entry {i}: {e}"))?
            .into_owned();
        let bad = |m: &str| format!("entry `{name}` {m}");
        if entry.encrypted() {
            return Err(bad("is encrypted"));
        }
        if entry.is_symlink() {
            return Err(bad(
                "is a symbolic link; a war holds only files and folders",
            ));
        }
        if name.starts_with('/') || name.contains('\\') {
            return Err(bad("is not a relative path with `/` separators"));
        }
        let rel = ImagePath::from_relative(&name).map_err(|e| bad(&e.to_string()))?;
        if entry.is_dir() {
            if !rel.is_root() {
                dirs.insert(rel.as_str().to_string());
            }
            continue;
        }
        if rel.is_root() {
            return Err(bad("has no file name"));
        }
        let rel = rel.as_str().to_string();
        if !names.insert(rel.clone()) {
            return Err(bad("appears twice"));
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > max_size {
            return Err(bad(&over_limit(max_size, total)));
        }
        let content = match entry.compression() {
            CompressionMethod::Stored => {
                let offset = entry
                    .data_start()
                    .ok_or_else(|| bad("has no data offset"))?;
                if entry.compressed_size() != size {
                    return Err(bad("is stored with a compressed size unlike its size"));
                }
                // Hash exactly the bytes the layer writer will copy from the WAR.
                raw.seek(SeekFrom::Start(offset)).map_err(io)?;
                let (digest, n, crc) = hash_with_crc((&mut raw).take(size)).map_err(io)?;
                if n != size || crc != entry.crc32() {
                    return Err(bad("does not match its CRC-32 (truncated or corrupt war)"));
                }
                FileContent {
                    source: ContentSource::Range {
                        path: shared.clone(),
                        offset,
                    },
                    size,
                    digest: Some(digest),
                }
            }
            CompressionMethod::Deflated => {
                if size > MAX_INFLATED_ENTRY || inflated_total + size > MAX_INFLATED_TOTAL {
                    return Err(bad(&format!(
                        "would take the inflated content over {} MiB per entry or {} MiB in all",
                        MAX_INFLATED_ENTRY >> 20,
                        MAX_INFLATED_TOTAL >> 20
                    )));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                // One byte more than declared, to notice an entry that inflates further.
                (&mut entry)
                    .take(size + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(&format!("cannot be inflated: {e}")))?;
                if bytes.len() as u64 != size {
                    return Err(bad("inflates to another size than its header says"));
                }
                inflated_total += size;
                FileContent {
                    digest: Some(Digest::of(&bytes)),
                    source: ContentSource::Bytes(bytes.into()),
                    size,
                }
            }
            other => {
                return Err(bad(&format!(
                    "uses compression method {other}; only STORED and DEFLATE are supported"
                )));
            }
        };
        out.files
            .entry(Group::of(&rel))
            .or_default()
            .push((rel, content));
    }
    for d in dirs {
        if names.contains(&d) {
            return Err(format!("`{d}` is both a file and a folder"));
        }
        let prefix = format!("{d}/");
        let holds_a_file = names
            .range(prefix.clone()..)
            .next()
            .is_some_and(|n| n.starts_with(&prefix));
        if !holds_a_file {
            out.empty_dirs.push(d);
        }
    }
    Ok(out)
}

/// A zip's entries must each own their bytes: a central directory that points many names at
/// one entry's data (8 MB of WAR would become GBs of layer), or a local header that says
/// something else than the central directory (other tools would unpack other files), is a
/// broken or hostile archive. The overlap is looked for here to name the entries; the zip
/// reader then checks every local header against the central directory, duplicate names and
/// local headers the directory does not list.
fn check_layout<R: Read + Seek>(zip: &mut zip::ZipArchive<R>) -> Result<(), String> {
    let mut spans = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| format!("zip entry {i}: {e}"))?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let end = entry
            .data_start()
            .and_then(|d| d.checked_add(entry.compressed_size()))
            .ok_or_else(|| format!("entry `{name}` has no valid data range"))?;
        spans.push((entry.header_start(), end, name));
    }
    spans.sort();
    // Sorted by start, any two spans that overlap make an adjacent pair that does.
    if let Some(w) = spans.windows(2).find(|w| w[0].1 > w[1].0) {
        return Err(format!(
            "entries `{}` and `{}` share bytes of the archive (overlapping entries: a zip bomb or a corrupt war)",
            w[0].2, w[1].2
        ));
    }
    zip.validate_header_consistency()
        .map_err(|e| format!("inconsistent zip archive: {e}"))
}

fn over_limit(max_size: u64, total: u64) -> String {
    format!(
        "takes the war over its limit of {} uncompressed ({} in all so far); raise `max-size` of the war in the recipe if it is meant to be this large",
        human_size(max_size),
        human_size(total)
    )
}

/// `4 GiB`, `512 MiB`, `1000 bytes`: exact, in the largest unit that divides the size.
pub fn human_size(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

fn hash_with_crc(mut r: impl Read) -> std::io::Result<(Digest, u64, u32)> {
    let mut sha = Hasher::new();
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        crc.update(&buf[..n]);
    }
    let (digest, n) = sha.finish();
    Ok((digest, n, crc.finalize()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    #[test]
    fn groups_follow_jib() {
        let cases = [
            ("WEB-INF/lib/greeting-1.0.jar", Group::Libs),
            ("WEB-INF/lib/util-1.1-SNAPSHOT.jar", Group::Snapshots),
            ("WEB-INF/lib/util-1.1-SNAPSHOT-tests.jar", Group::Snapshots),
            ("WEB-INF/lib/notes.txt", Group::Resources),
            ("WEB-INF/lib/nested/x.jar", Group::Resources),
            ("WEB-INF/classes/com/example/A.class", Group::Classes),
            ("WEB-INF/classes/A$1.class", Group::Classes),
            ("WEB-INF/classes/messages.properties", Group::Resources),
            ("WEB-INF/web.xml", Group::Resources),
            ("index.jsp", Group::Resources),
            ("static/app.class", Group::Resources),
            ("META-INF/MANIFEST.MF", Group::Resources),
        ];
        for (path, group) in cases {
            assert_eq!(Group::of(path), group, "{path}");
        }
        let suffixes: Vec<_> = Group::ALL.iter().map(|g| g.suffix()).collect();
        assert_eq!(suffixes, ["libs", "snapshots", "resources", "classes"]);
    }

    fn zip_file(entries: &[(&str, Option<&[u8]>, CompressionMethod)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(file.reopen().unwrap());
        for (name, data, method) in entries {
            let options = SimpleFileOptions::default().compression_method(*method);
            match data {
                Some(d) => {
                    w.start_file(*name, options).unwrap();
                    w.write_all(d).unwrap();
                }
                None => w.add_directory(*name, options).unwrap(),
            }
        }
        w.finish().unwrap();
        file
    }

    fn bytes_of(c: &FileContent, war: &Path) -> Vec<u8> {
        match &c.source {
            ContentSource::Bytes(b) => b.to_vec(),
            ContentSource::Range { path, offset } => {
                assert_eq!(path.as_path(), war);
                let mut f = File::open(war).unwrap();
                f.seek(SeekFrom::Start(*offset)).unwrap();
                let mut out = vec![0; c.size as usize];
                f.read_exact(&mut out).unwrap();
                out
            }
            ContentSource::Host(_) => panic!("a war entry never points at a host file"),
        }
    }

    #[test]
    fn reads_stored_and_deflated_entries_into_groups() {
        use CompressionMethod::{Deflated, Stored};
        let jar: &[u8] = b"PK release jar bytes";
        let snap: &[u8] = b"PK snapshot jar bytes";
        let class: &[u8] = b"\xca\xfe\xba\xbe class";
        let page: &[u8] = b"<html>hello</html>";
        let war = zip_file(&[
            ("WEB-INF/", None, Stored),
            ("WEB-INF/lib/", None, Stored),
            ("WEB-INF/lib/a-1.0.jar", Some(jar), Stored),
            ("WEB-INF/lib/b-2.0-SNAPSHOT.jar", Some(snap), Stored),
            ("WEB-INF/classes/com/x/A.class", Some(class), Deflated),
            ("./index.html", Some(page), Deflated),
            ("empty/", None, Stored),
        ]);
        let contents = read(war.path(), u64::MAX).unwrap();
        let names = |g: Group| -> Vec<&str> {
            contents
                .files
                .get(&g)
                .map_or(vec![], |v| v.iter().map(|(n, _)| n.as_str()).collect())
        };
        assert_eq!(names(Group::Libs), ["WEB-INF/lib/a-1.0.jar"]);
        assert_eq!(names(Group::Snapshots), ["WEB-INF/lib/b-2.0-SNAPSHOT.jar"]);
        assert_eq!(names(Group::Classes), ["WEB-INF/classes/com/x/A.class"]);
        assert_eq!(names(Group::Resources), ["index.html"]);
        // Folders that hold files come back as their parents; only the empty one is kept.
        assert_eq!(contents.empty_dirs, ["empty"]);
        let expected = [
            (Group::Libs, jar),
            (Group::Snapshots, snap),
            (Group::Classes, class),
            (Group::Resources, page),
        ];
        for (group, data) in expected {
            let (_, c) = &contents.files[&group][0];
            assert_eq!(c.size, data.len() as u64);
            assert_eq!(c.digest, Some(Digest::of(data)));
            assert_eq!(bytes_of(c, war.path()), data);
            let stored = matches!(c.source, ContentSource::Range { .. });
            assert_eq!(stored, matches!(group, Group::Libs | Group::Snapshots));
        }
    }

    #[test]
    fn refuses_unsafe_or_broken_wars() {
        let evil = zip_file(&[("../evil.jsp", Some(b"x"), CompressionMethod::Stored)]);
        let err = read(evil.path(), u64::MAX).unwrap_err();
        assert!(err.contains("../evil.jsp") && err.contains(".."), "{err}");

        let not_zip = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_zip.path(), b"not a zip").unwrap();
        assert!(
            read(not_zip.path(), u64::MAX)
                .unwrap_err()
                .contains("not a readable zip")
        );

        // A stored entry whose bytes were damaged after the WAR was written.
        let war = zip_file(&[(
            "index.html",
            Some(b"hello world"),
            CompressionMethod::Stored,
        )]);
        let mut bytes = std::fs::read(war.path()).unwrap();
        let at = bytes.windows(5).position(|w| w == b"hello").unwrap();
        bytes[at] = b'j';
        std::fs::write(war.path(), &bytes).unwrap();
        assert!(read(war.path(), u64::MAX).unwrap_err().contains("CRC-32"));
    }

    #[test]
    fn refuses_inconsistent_zips() {
        use CompressionMethod::Stored;
        // A local header naming another file than the central directory does.
        let war = zip_file(&[("index.html", Some(b"hello"), Stored)]);
        let mut bytes = std::fs::read(war.path()).unwrap();
        let at = bytes.windows(10).position(|w| w == b"index.html").unwrap();
        bytes[at..at + 10].copy_from_slice(b"shell.jspx");
        std::fs::write(war.path(), &bytes).unwrap();
        let err = read(war.path(), u64::MAX).unwrap_err();
        assert!(err.contains("inconsistent zip"), "{err}");

        // The same name twice in the central directory (and in the local headers).
        let war = zip_file(&[("a.txt", Some(b"1"), Stored), ("b.txt", Some(b"2"), Stored)]);
        let mut bytes = std::fs::read(war.path()).unwrap();
        let mut from = 0;
        while let Some(at) = bytes[from..].windows(5).position(|w| w == b"b.txt") {
            bytes[from + at..from + at + 5].copy_from_slice(b"a.txt");
            from += at + 5;
        }
        assert!(from > 0);
        std::fs::write(war.path(), &bytes).unwrap();
        assert!(read(war.path(), u64::MAX).is_err());

        // Two names for one file once normalised, and an absolute path.
        let war = zip_file(&[
            ("a.txt", Some(b"1"), Stored),
            ("./a.txt", Some(b"2"), Stored),
        ]);
        let err = read(war.path(), u64::MAX).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
        let war = zip_file(&[("/etc/passwd", Some(b"x"), Stored)]);
        let err = read(war.path(), u64::MAX).unwrap_err();
        assert!(
            err.contains("/etc/passwd") && err.contains("relative"),
            "{err}"
        );
    }

    #[test]
    fn the_size_limit_counts_every_entry_uncompressed() {
        use CompressionMethod::{Deflated, Stored};
        let war = zip_file(&[
            ("a.txt", Some(&[b'a'; 600][..]), Deflated),
            ("b.bin", Some(&[b'b'; 500][..]), Stored),
        ]);
        assert!(read(war.path(), 1100).is_ok());
        let err = read(war.path(), 1099).unwrap_err();
        assert!(
            err.contains("`b.bin`") && err.contains("1099 bytes"),
            "{err}"
        );
        assert_eq!(human_size(4 << 30), "4 GiB");
        assert_eq!(human_size(1536), "1536 bytes");
    }

    #[test]
    fn the_jakarta_fixture_has_all_four_groups() {
        let war =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/war/jakarta/hello-jakarta.war");
        let contents = read(&war, u64::MAX).unwrap();
        let names: Vec<(Group, Vec<&str>)> = contents
            .files
            .iter()
            .map(|(g, v)| (*g, v.iter().map(|(n, _)| n.as_str()).collect()))
            .collect();
        assert_eq!(
            names,
            [
                (Group::Libs, vec!["WEB-INF/lib/greeting-1.0.jar"]),
                (Group::Snapshots, vec!["WEB-INF/lib/util-1.1-SNAPSHOT.jar"]),
                (
                    Group::Resources,
                    vec![
                        "WEB-INF/classes/messages.properties",
                        "WEB-INF/web.xml",
                        "index.jsp"
                    ]
                ),
                (
                    Group::Classes,
                    vec![
                        "WEB-INF/classes/com/example/hello/HelloServlet.class",
                        "WEB-INF/classes/com/example/hello/TrustServlet.class"
                    ]
                ),
            ]
        );
        assert!(contents.empty_dirs.is_empty());
    }
}

/// Fuzzing on stable: valid small WARs with bytes overwritten, inserted or cut off, and
/// arbitrary bytes, through the reader: an error or contents within the limit, never a panic.
#[cfg(test)]
mod fuzz {
    use std::io::Write;

    use proptest::prelude::*;
    use zip::write::SimpleFileOptions;

    use super::*;

    /// A WAR with stored and deflated files and a folder.
    fn seed() -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        w.add_directory("WEB-INF/", stored).unwrap();
        w.start_file("WEB-INF/lib/a.jar", stored).unwrap();
        w.write_all(b"PK jar bytes jar bytes").unwrap();
        w.start_file("WEB-INF/classes/A.class", deflated).unwrap();
        w.write_all(&[0xca; 300]).unwrap();
        w.start_file("index.jsp", deflated).unwrap();
        w.write_all(b"<html>hello hello hello</html>").unwrap();
        w.finish().unwrap().into_inner()
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Set(usize, u8),
        Insert(usize, Vec<u8>),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(i, v)| Mutation::Insert(i, v)),
            1 => any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    thread_local! {
        static FILE: tempfile::NamedTempFile = tempfile::NamedTempFile::new().unwrap();
    }

    /// Reads `bytes` as a WAR (in the thread's one file); whatever comes back is within the
    /// limit.
    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        let path = FILE.with(|f| f.path().to_path_buf());
        std::fs::write(&path, bytes).unwrap();
        if let Ok(contents) = read(&path, 4096) {
            let total: u64 = contents.files.values().flatten().map(|(_, c)| c.size).sum();
            prop_assert!(total <= 4096);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(2000))]

        #[test]
        fn mutated_wars(mutations in proptest::collection::vec(mutation(), 1..6)) {
            let mut bytes = seed();
            for m in mutations {
                match m {
                    Mutation::Set(i, b) => {
                        let n = bytes.len();
                        bytes[i % n] = b;
                    }
                    Mutation::Insert(i, v) => {
                        let at = i % (bytes.len() + 1);
                        bytes.splice(at..at, v);
                    }
                    Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            check(&bytes)?;
        }

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            check(&bytes)?;
        }
    }
}
