//! The package index: every `Packages` paragraph of the configured suites and components,
//! grouped by name, with the candidate (the version apt would install) first.
//!
//! All configured suites get apt's default pin priority 500, so the candidate is simply the
//! highest version; among equal versions the first source listed wins.

use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::sync::OnceLock;

use crate::digest::Digest;

use super::deb822;
use super::version::{self, Relation};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{file}: {source}")]
    Syntax {
        file: String,
        source: deb822::Deb822Error,
    },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: paragraph at line {line} (package {package}): {detail}")]
    BadField {
        file: String,
        line: usize,
        package: String,
        detail: String,
    },
}

/// Architecture qualifier on a dependency (`foo:any`, `foo:native`, `foo:amd64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArchQualifier {
    None,
    Any,
    Native,
    Named(String),
}

/// One name in a dependency field, with its optional version constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dep {
    pub name: String,
    pub arch: ArchQualifier,
    pub constraint: Option<(Relation, String)>,
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch {
            ArchQualifier::None => {}
            ArchQualifier::Any => f.write_str(":any")?,
            ArchQualifier::Native => f.write_str(":native")?,
            ArchQualifier::Named(a) => write!(f, ":{a}")?,
        }
        if let Some((rel, v)) = &self.constraint {
            write!(f, " ({} {v})", rel.as_str())?;
        }
        Ok(())
    }
}

/// `a | b | c`: satisfied by any one of them, tried in order.
pub type Alternatives = Vec<Dep>;

pub fn format_alternatives(alts: &[Dep]) -> String {
    alts.iter()
        .map(Dep::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provide {
    pub name: String,
    /// Versioned provides (`foo (= 1.2)`) can satisfy versioned dependencies; unversioned
    /// ones never do.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultiArch {
    No,
    Same,
    Foreign,
    Allowed,
}

/// One binary package version, as listed in a Packages file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub essential: bool,
    /// `Protected: yes` / `Important: yes`: apt prefers these among providers.
    pub important: bool,
    pub priority: Option<String>,
    pub section: Option<String>,
    pub source: Option<String>,
    pub pre_depends: Vec<Alternatives>,
    pub depends: Vec<Alternatives>,
    pub recommends: Vec<Alternatives>,
    pub conflicts: Vec<Dep>,
    pub breaks: Vec<Dep>,
    pub replaces: Vec<Dep>,
    pub provides: Vec<Provide>,
    /// Path below the mirror root (`pool/main/b/bash/bash_5.2.15-2+b7_amd64.deb`).
    pub filename: String,
    pub size: u64,
    pub sha256: Digest,
    pub installed_size: Option<u64>,
    /// The mirror this version comes from (base URL, no trailing slash).
    pub mirror: String,
}

impl Package {
    /// The download URL of the .deb.
    pub fn url(&self) -> String {
        format!("{}/{}", self.mirror, self.filename)
    }

    /// apt's numeric priority (lower is more important; a missing field is 0, which apt sorts
    /// first among providers).
    pub fn priority_rank(&self) -> u8 {
        match self.priority.as_deref() {
            None => 0,
            Some("required") => 1,
            Some("important") => 2,
            Some("standard") => 3,
            Some("optional") => 4,
            Some(_) => 5,
        }
    }

    pub fn is_required(&self) -> bool {
        self.priority.as_deref() == Some("required")
    }
}

/// Package versions by name, plus who provides what.
///
/// A bookworm `main` index is 63,000 paragraphs and 50 MB of text, of which a build looks at a
/// few hundred. Parsing every paragraph into a [`Package`] and keeping them all cost ~270 MB, so
/// the index keeps only what choosing among versions needs (name, version, the minbase flags,
/// where the paragraph is) and parses a paragraph into a [`Package`] the first time it is asked
/// for, reading it back from the text (a file in the store, or the string given). Every
/// paragraph is still fully parsed once while scanning, so a malformed one is reported with its
/// file and line when the index is loaded, never later.
#[derive(Debug, Default)]
pub struct Index {
    texts: Vec<IndexText>,
    entries: Vec<Entry>,
    /// Parsed on first use; `entries[i]` ↔ `parsed[i]`.
    parsed: Vec<OnceLock<Box<Package>>>,
    /// name → indices into `entries`, highest version first after [`Index::finish`].
    by_name: HashMap<String, Vec<usize>>,
    /// virtual name → indices of every version providing it.
    providers: HashMap<String, Vec<usize>>,
    /// apt numbers packages in the order it first meets their names while building its cache,
    /// and breaks ties between equally good providers by that number. We keep the same order.
    first_seen: HashMap<String, u32>,
    architecture: String,
}

/// One Packages text the index reads paragraphs back from.
#[derive(Debug)]
struct IndexText {
    content: TextContent,
    /// Names the file in errors (its URL).
    file: String,
    /// The mirror its `Filename`s are relative to.
    mirror: String,
}

#[derive(Debug)]
enum TextContent {
    Memory(Box<str>),
    File(std::fs::File),
}

/// What the index keeps of a paragraph until it is parsed again.
#[derive(Debug)]
struct Entry {
    text: u32,
    /// Byte range of the paragraph in its text, and its first line (1-based).
    offset: u64,
    len: u32,
    line: u32,
    name: Box<str>,
    version: Box<str>,
    /// `Essential: yes` or `Priority: required` (debootstrap's minbase).
    minbase: bool,
    /// `Architecture: all` (else the index's architecture).
    arch_all: bool,
}

impl Index {
    /// An empty index for one architecture (`amd64`); `Architecture: all` always matches.
    pub fn new(architecture: &str) -> Index {
        Index {
            architecture: architecture.to_owned(),
            ..Index::default()
        }
    }

    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Adds every paragraph of a Packages text. `file` names it in errors; `mirror` is the base
    /// URL the `Filename`s are relative to. Call [`Index::finish`] after the last file.
    pub fn add_packages(&mut self, text: &str, file: &str, mirror: &str) -> Result<(), IndexError> {
        let id = self.push_text(TextContent::Memory(text.into()), file, mirror);
        self.scan(text.as_bytes(), id)
    }

    /// [`Index::add_packages`] for a decompressed Packages file: read as a stream, so memory
    /// does not grow with the file; paragraphs are read back from `text` when first used.
    pub fn add_packages_file(
        &mut self,
        text: std::fs::File,
        file: &str,
        mirror: &str,
    ) -> Result<(), IndexError> {
        // From the start, whatever the handle's position (a just-written temp file is at its end).
        let reader = text
            .try_clone()
            .and_then(|mut r| std::io::Seek::rewind(&mut r).map(|()| r))
            .map_err(|e| IndexError::Read {
                file: file.to_owned(),
                source: e,
            })?;
        let id = self.push_text(TextContent::File(text), file, mirror);
        self.scan(std::io::BufReader::with_capacity(256 * 1024, reader), id)
    }

    /// [`Index::add_packages_file`] for a text still being decoded: scanned from `stream` as
    /// it arrives. `finish` gets the scan's result once the stream has ended and gives the
    /// finished file that paragraphs are read back from (or the error that wins); nothing is
    /// read back before then.
    pub fn add_packages_stream<E>(
        &mut self,
        stream: impl std::io::BufRead,
        file: &str,
        mirror: &str,
        finish: impl FnOnce(Result<(), IndexError>) -> Result<std::fs::File, E>,
    ) -> Result<(), E> {
        let id = self.push_text(TextContent::Memory("".into()), file, mirror);
        let scanned = self.scan(stream, id);
        let text = finish(scanned)?;
        self.texts[id as usize].content = TextContent::File(text);
        Ok(())
    }

    fn push_text(&mut self, content: TextContent, file: &str, mirror: &str) -> u32 {
        self.texts.push(IndexText {
            content,
            file: file.to_owned(),
            mirror: mirror.trim_end_matches('/').to_owned(),
        });
        (self.texts.len() - 1) as u32
    }

    /// Splits a text into paragraphs line by line (blank lines separate them), keeping at most
    /// [`MAX_PARAGRAPH`] bytes of one paragraph in memory, and adds them in file order.
    ///
    /// Parsing is most of the work and needs nothing but the paragraph, so it runs on worker
    /// threads, a batch of paragraphs at a time, while this thread reads on and adds each
    /// parsed batch in turn. The index loads before anything can be resolved on a cold build,
    /// and one core did it all while the other waited: bookworm's 63,000 paragraphs took 0.63 s
    /// of one core. Batches are added in the order they were read, and a batch's paragraphs in
    /// theirs, so the index (apt's name order included) and the error reported (the first in
    /// the file) are the same as on one thread.
    fn scan(&mut self, mut reader: impl std::io::BufRead, text: u32) -> Result<(), IndexError> {
        use std::io::{BufRead, Read};
        let source = &self.texts[text as usize];
        let ctx = ParseContext {
            file: source.file.clone(),
            mirror: source.mirror.clone(),
            architecture: self.architecture.clone(),
        };
        let too_long = |line: u32| IndexError::Syntax {
            file: ctx.file.clone(),
            source: deb822::Deb822Error {
                line: line as usize,
                message: "paragraph longer than 16 MiB",
            },
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_PARSE_WORKERS);
        std::thread::scope(|s| {
            let mut batches = Batches::start(s, workers, &ctx);
            let mut paragraph: Vec<u8> = Vec::with_capacity(8 * 1024);
            let (mut offset, mut start, mut start_line, mut line) = (0u64, 0u64, 1u32, 0u32);
            let mut line_buf = Vec::with_capacity(256);
            loop {
                line_buf.clear();
                // Never more than the paragraph may still take (at least 1, so 0 means the end).
                let room = (MAX_PARAGRAPH + 1 - paragraph.len()) as u64;
                let n = match (&mut reader).take(room).read_until(b'\n', &mut line_buf) {
                    Ok(n) => n,
                    Err(source) => {
                        let error = IndexError::Read {
                            file: ctx.file.clone(),
                            source,
                        };
                        return batches.fail(self, text, error);
                    }
                };
                if paragraph.len() + n > MAX_PARAGRAPH {
                    return batches.fail(self, text, too_long(start_line));
                }
                let blank = line_buf.iter().all(u8::is_ascii_whitespace);
                if n == 0 || blank {
                    if !paragraph.is_empty() {
                        batches.push(self, text, &paragraph, start, start_line)?;
                        paragraph.clear();
                    }
                    if n == 0 {
                        return batches.finish(self, text);
                    }
                } else {
                    if paragraph.is_empty() {
                        start = offset;
                        start_line = line.saturating_add(1);
                    }
                    paragraph.extend_from_slice(&line_buf);
                }
                offset += n as u64;
                line = line.saturating_add(1);
            }
        })
    }

    /// Adds one parsed paragraph (see [`parse_paragraph`]); `names` holds what it names, in
    /// the order apt's cache generator meets them.
    fn add_parsed(&mut self, p: Parsed, names: &[&str], text: u32) {
        for name in names {
            // Most names were seen before; don't allocate for them.
            if !self.first_seen.contains_key(*name) {
                let next = self.first_seen.len() as u32;
                self.first_seen.insert((*name).to_owned(), next);
            }
        }
        let duplicate = self.by_name.get(&*p.name).is_some_and(|v| {
            v.iter().any(|&i| {
                let e = &self.entries[i];
                *e.version == *p.version && e.arch_all == p.arch_all
            })
        });
        if duplicate {
            return;
        }
        let idx = self.entries.len();
        match self.by_name.get_mut(&*p.name) {
            Some(versions) => versions.push(idx),
            None => {
                self.by_name.insert(p.name.to_string(), vec![idx]);
            }
        }
        for provide in p.provides {
            self.providers.entry(provide).or_default().push(idx);
        }
        self.entries.push(Entry {
            text,
            offset: p.offset,
            len: p.len,
            line: p.line,
            minbase: p.minbase,
            arch_all: p.arch_all,
            name: p.name,
            version: p.version,
        });
        self.parsed.push(OnceLock::new());
    }

    /// Sorts each name's versions, highest first (the candidate).
    pub fn finish(&mut self) {
        let entries = &self.entries;
        for versions in self.by_name.values_mut() {
            // Stable: among equal versions the first listed source stays first.
            versions.sort_by(|&a, &b| version::compare(&entries[b].version, &entries[a].version));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The package at `idx`, parsed from its paragraph on first use.
    pub fn package(&self, idx: usize) -> &Package {
        self.parsed[idx].get_or_init(|| Box::new(self.reparse(idx)))
    }

    /// Parses a paragraph again. It parsed when scanned and the text is ours (a string we
    /// hold, or a verified file in the store that we keep open), so failing here means the
    /// store was changed under a running build: nothing sensible is left to do but stop.
    fn reparse(&self, idx: usize) -> Package {
        let entry = &self.entries[idx];
        let source = &self.texts[entry.text as usize];
        let owned;
        let text: &str = match &source.content {
            TextContent::Memory(s) => &s[entry.offset as usize..][..entry.len as usize],
            TextContent::File(f) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0; entry.len as usize];
                f.read_exact_at(&mut buf, entry.offset).unwrap_or_else(|e| {
                    panic!("{}: cannot read back line {}: {e}", source.file, entry.line)
                });
                owned = String::from_utf8(buf).unwrap_or_else(|_| {
                    panic!(
                        "{}: changed while in use (line {})",
                        source.file, entry.line
                    )
                });
                &owned
            }
        };
        deb822::paragraphs(text)
            .next()
            .and_then(Result::ok)
            .and_then(|p| parse_package(&p, &source.file, &source.mirror).ok())
            .unwrap_or_else(|| {
                panic!(
                    "{}: changed while in use (line {})",
                    source.file, entry.line
                )
            })
    }

    /// All versions of `name`, highest first.
    pub fn versions(&self, name: &str) -> impl Iterator<Item = (usize, &Package)> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| (i, self.package(i)))
    }

    /// The version apt would install: the highest.
    pub fn candidate(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).and_then(|v| v.first().copied())
    }

    pub fn is_candidate(&self, idx: usize) -> bool {
        self.candidate(&self.entries[idx].name) == Some(idx)
    }

    /// Every version (of any package) providing `name`.
    pub fn providers(&self, name: &str) -> &[usize] {
        self.providers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// apt's cache ID of a name (see `first_seen`); unknown names sort last.
    pub fn apt_id(&self, name: &str) -> u32 {
        self.first_seen.get(name).copied().unwrap_or(u32::MAX)
    }

    /// Every real package name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// debootstrap's minbase set: `Essential: yes`, `Priority: required`, and `apt` (which is
    /// only `important` on Ubuntu), sorted by name.
    pub fn minbase(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .by_name
            .values()
            .filter_map(|v| v.first().copied())
            .filter(|&i| {
                let e = &self.entries[i];
                // debootstrap's minbase is "required + apt": on Ubuntu apt is only `important`.
                e.minbase || &*e.name == "apt"
            })
            .collect();
        out.sort_by(|&a, &b| self.entries[a].name.cmp(&self.entries[b].name));
        out
    }
}

/// Parse workers: one per core, at most this many. Parsing is ~60% of the scan's work, so on 2
/// cores one worker was the slower side (0.57 s for bookworm) and two, sharing the cores with
/// the reading thread and the gzip decoder, were not (0.51 s); past three the reading and
/// adding thread is the limit.
const MAX_PARSE_WORKERS: usize = 3;
/// Paragraph bytes per batch: ~300 bookworm paragraphs, so the hand-offs cost nothing next to
/// the parsing, and a few batches in flight stay far below a megabyte per worker.
const BATCH_BYTES: usize = 256 * 1024;

/// What parsing a paragraph needs besides its bytes.
struct ParseContext {
    file: String,
    mirror: String,
    architecture: String,
}

/// Paragraphs on their way to a worker: their bytes back to back, and where each one is.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

struct Span {
    /// Range in [`Batch::bytes`].
    start: usize,
    end: usize,
    /// Byte offset and first line (1-based) in the text.
    offset: u64,
    line: u32,
}

/// A batch as a worker returns it: every paragraph that parsed, in order, then the first
/// error if one did not (the paragraphs after it are not parsed).
struct ParsedBatch {
    parsed: Vec<Parsed>,
    /// Every name the paragraphs name, back to back; `Parsed::names` are ranges of `ends`.
    names: String,
    ends: Vec<usize>,
    error: Option<IndexError>,
}

/// What the index keeps of one paragraph of its architecture.
struct Parsed {
    offset: u64,
    len: u32,
    line: u32,
    name: Box<str>,
    version: Box<str>,
    arch_all: bool,
    minbase: bool,
    provides: Vec<String>,
    names: std::ops::Range<usize>,
}

/// The batches in flight, oldest first, and the channel the workers take them from.
struct Batches {
    current: Batch,
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    pending: std::collections::VecDeque<std::sync::mpsc::Receiver<ParsedBatch>>,
    max_pending: usize,
}

type Job = (Batch, std::sync::mpsc::SyncSender<ParsedBatch>);

impl Batches {
    /// Starts `workers` parse threads in `s`; they stop when the batches are finished or dropped.
    fn start<'scope, 'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        workers: usize,
        ctx: &'env ParseContext,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(2 * workers);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for _ in 0..workers {
            let rx = std::sync::Arc::clone(&rx);
            s.spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((batch, reply)) = job else { return };
                    // The reader may have stopped at an error of its own: nobody to tell.
                    let _ = reply.send(parse_batch(&batch, ctx));
                }
            });
        }
        Batches {
            current: Batch::default(),
            jobs: Some(tx),
            pending: std::collections::VecDeque::new(),
            max_pending: 3 * workers + 1,
        }
    }

    /// Queues a paragraph; adds finished batches to the index as the queue fills.
    fn push(
        &mut self,
        index: &mut Index,
        text: u32,
        paragraph: &[u8],
        offset: u64,
        line: u32,
    ) -> Result<(), IndexError> {
        let start = self.current.bytes.len();
        self.current.bytes.extend_from_slice(paragraph);
        self.current.spans.push(Span {
            start,
            end: self.current.bytes.len(),
            offset,
            line,
        });
        if self.current.bytes.len() >= BATCH_BYTES {
            self.submit();
            while self.pending.len() >= self.max_pending {
                self.add_oldest(index, text)?;
            }
        }
        Ok(())
    }

    fn submit(&mut self) {
        let batch = std::mem::take(&mut self.current);
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        if let Some(jobs) = &self.jobs {
            // A worker only stops when the channel closes, which is after this.
            let _ = jobs.send((batch, reply));
        }
        self.pending.push_back(result);
    }

    /// Adds the oldest batch in flight to the index; its error, if it has one.
    fn add_oldest(&mut self, index: &mut Index, text: u32) -> Result<(), IndexError> {
        let Some(result) = self.pending.pop_front() else {
            return Ok(());
        };
        let batch = result
            .recv()
            .expect("a parse worker answers every batch it takes (it cannot fail otherwise)");
        let mut names = Vec::new();
        for p in batch.parsed {
            names.clear();
            let mut from = if p.names.start == 0 {
                0
            } else {
                batch.ends[p.names.start - 1]
            };
            for &end in &batch.ends[p.names.clone()] {
                names.push(&batch.names[from..end]);
                from = end;
            }
            index.add_parsed(p, &names, text);
        }
        batch.error.map_or(Ok(()), Err)
    }

    /// Adds everything still in flight.
    fn finish(mut self, index: &mut Index, text: u32) -> Result<(), IndexError> {
        if !self.current.spans.is_empty() {
            self.submit();
        }
        self.jobs = None;
        while !self.pending.is_empty() {
            self.add_oldest(index, text)?;
        }
        Ok(())
    }

    /// Stops at an error met while reading, unless a paragraph before it failed: those still
    /// queued (all complete, read before the error) are parsed and added first.
    fn fail(self, index: &mut Index, text: u32, error: IndexError) -> Result<(), IndexError> {
        self.finish(index, text)?;
        Err(error)
    }
}

/// Parses a batch, stopping at its first bad paragraph.
fn parse_batch(batch: &Batch, ctx: &ParseContext) -> ParsedBatch {
    let mut out = ParsedBatch {
        parsed: Vec::with_capacity(batch.spans.len()),
        names: String::with_capacity(batch.bytes.len() / 8),
        ends: Vec::new(),
        error: None,
    };
    for span in &batch.spans {
        let bytes = &batch.bytes[span.start..span.end];
        match parse_paragraph(bytes, span, ctx, &mut out.names, &mut out.ends) {
            Ok(Some(p)) => out.parsed.push(p),
            Ok(None) => {}
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    out
}

/// Checks and parses one paragraph: `None` for one of another architecture (or only
/// comments). The names apt's cache generator meets in it are appended to `names`, each
/// ending at the offset pushed to `ends`.
fn parse_paragraph(
    bytes: &[u8],
    span: &Span,
    ctx: &ParseContext,
    names: &mut String,
    ends: &mut Vec<usize>,
) -> Result<Option<Parsed>, IndexError> {
    let file = ctx.file.as_str();
    let line = span.line;
    let Ok(s) = std::str::from_utf8(bytes) else {
        return Err(IndexError::Syntax {
            file: file.to_owned(),
            source: deb822::Deb822Error {
                line: line as usize,
                message: "paragraph is not UTF-8",
            },
        });
    };
    let Some(paragraph) = deb822::paragraphs(s).next() else {
        return Ok(None); // only comments
    };
    let mut paragraph = paragraph.map_err(|mut source| {
        source.line += line as usize - 1;
        IndexError::Syntax {
            file: file.to_owned(),
            source,
        }
    })?;
    paragraph.line += line as usize - 1;
    let package = parse_package(&paragraph, file, &ctx.mirror)?;
    if package.architecture != ctx.architecture && package.architecture != "all" {
        return Ok(None);
    }
    let first = ends.len();
    note_names(&paragraph, |name| {
        names.push_str(name);
        ends.push(names.len());
    });
    Ok(Some(Parsed {
        offset: span.offset,
        len: bytes.len() as u32,
        line,
        minbase: package.essential || package.is_required(),
        arch_all: package.architecture == "all",
        provides: package.provides.into_iter().map(|p| p.name).collect(),
        name: package.name.into(),
        version: package.version.into(),
        names: first..ends.len(),
    }))
}

/// Calls `note` with every name a paragraph names, in the order apt's cache generator
/// (`debListParser::NewVersion`) creates packages for them: the package, then the targets of
/// Pre-Depends, Depends, Conflicts, Breaks, Recommends, Suggests, Replaces, Enhances, then
/// Provides. Suggests and Enhances are read here only for that order.
fn note_names(paragraph: &deb822::Paragraph<'_>, mut note: impl FnMut(&str)) {
    let mut note_field = |field: &str| {
        for name in paragraph
            .get(field)
            .into_iter()
            .flat_map(|v| v.split([',', '|']))
            .filter_map(|d| d.split(['(', '[', '<', ':']).next())
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            note(name);
        }
    };
    note_field("Package");
    for field in [
        "Pre-Depends",
        "Depends",
        "Conflicts",
        "Breaks",
        "Recommends",
        "Suggests",
        "Replaces",
        "Enhances",
    ] {
        note_field(field);
    }
    note_field("Provides");
}

/// Largest Packages paragraph read (real ones are a few KB; the longest, with hundreds of
/// `Provides`, a few hundred KB): a signed but hostile index cannot fill memory with one.
const MAX_PARAGRAPH: usize = 16 << 20;

/// The Packages fields the index keeps, in the slots [`field_slots`] fills.
const FIELDS: [&str; 21] = [
    "Package",
    "Version",
    "Architecture",
    "SHA256",
    "Size",
    "Filename",
    "Multi-Arch",
    "Essential",
    "Protected",
    "Important",
    "Priority",
    "Section",
    "Source",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Provides",
    "Installed-Size",
];
const PACKAGE: usize = 0;
const VERSION: usize = 1;
const ARCHITECTURE: usize = 2;
const SHA256: usize = 3;
const SIZE: usize = 4;
const FILENAME: usize = 5;
const MULTI_ARCH: usize = 6;
const ESSENTIAL: usize = 7;
const PROTECTED: usize = 8;
const IMPORTANT: usize = 9;
const PRIORITY: usize = 10;
const SECTION: usize = 11;
const SOURCE: usize = 12;
const PRE_DEPENDS: usize = 13;
const DEPENDS: usize = 14;
const RECOMMENDS: usize = 15;
const CONFLICTS: usize = 16;
const BREAKS: usize = 17;
const REPLACES: usize = 18;
const PROVIDES: usize = 19;
const INSTALLED_SIZE: usize = 20;

/// One pass over a paragraph's fields (names matched case-insensitively, first occurrence
/// wins) instead of a scan per lookup: 20-odd lookups × 20-odd fields × 60,000 paragraphs
/// was a fifth of the index build.
fn field_slots<'a>(p: &deb822::Paragraph<'a>) -> [Option<&'a str>; FIELDS.len()] {
    let mut slots = [None; FIELDS.len()];
    for (k, v) in p.fields() {
        if let Some(i) = FIELDS.iter().position(|f| f.eq_ignore_ascii_case(k))
            && slots[i].is_none()
        {
            slots[i] = Some(*v);
        }
    }
    slots
}

fn parse_package(
    p: &deb822::Paragraph<'_>,
    file: &str,
    mirror: &str,
) -> Result<Package, IndexError> {
    let slots = field_slots(p);
    let slot = |i: usize| slots[i];
    let first_line = |i: usize| slot(i).map(|v| v.split('\n').next().unwrap_or("").trim());
    let name = first_line(PACKAGE).unwrap_or("");
    let bad = |detail: String| IndexError::BadField {
        file: file.to_owned(),
        line: p.line,
        package: if name.is_empty() {
            "?".into()
        } else {
            name.to_owned()
        },
        detail,
    };
    let required = |i: usize| {
        first_line(i)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("missing {}", FIELDS[i])))
    };
    let name = required(PACKAGE)?.to_owned();
    let version = required(VERSION)?.to_owned();
    let architecture = required(ARCHITECTURE)?.to_owned();
    let sha256 = required(SHA256)?;
    let sha256 = Digest::from_hex(sha256).ok_or_else(|| bad(format!("bad SHA256 {sha256:?}")))?;
    let size = required(SIZE)?;
    let size = size
        .parse()
        .map_err(|_| bad(format!("bad Size {size:?}")))?;
    let deps = |i: usize| -> Result<Vec<Alternatives>, IndexError> {
        match slot(i) {
            None => Ok(Vec::new()),
            Some(v) => parse_dependency_field(v).map_err(|e| bad(format!("{}: {e}", FIELDS[i]))),
        }
    };
    let flat =
        |i: usize| -> Result<Vec<Dep>, IndexError> { Ok(deps(i)?.into_iter().flatten().collect()) };
    let yes = |i: usize| first_line(i).is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let multi_arch = match first_line(MULTI_ARCH) {
        None | Some("no") => MultiArch::No,
        Some("same") => MultiArch::Same,
        Some("foreign") => MultiArch::Foreign,
        Some("allowed") => MultiArch::Allowed,
        Some(other) => return Err(bad(format!("unknown Multi-Arch {other:?}"))),
    };
    let provides = flat(PROVIDES)?
        .into_iter()
        .map(|d| match d.constraint {
            Some((Relation::Equal, v)) => Ok(Provide {
                name: d.name,
                version: Some(v),
            }),
            None => Ok(Provide {
                name: d.name,
                version: None,
            }),
            Some((rel, _)) => Err(bad(format!(
                "Provides {} uses {}, only `=` is allowed",
                d.name,
                rel.as_str()
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Package {
        essential: yes(ESSENTIAL),
        important: yes(PROTECTED) || yes(IMPORTANT),
        priority: first_line(PRIORITY).map(str::to_owned),
        section: first_line(SECTION).map(str::to_owned),
        source: first_line(SOURCE).map(str::to_owned),
        pre_depends: deps(PRE_DEPENDS)?,
        depends: deps(DEPENDS)?,
        recommends: deps(RECOMMENDS)?,
        conflicts: flat(CONFLICTS)?,
        breaks: flat(BREAKS)?,
        replaces: flat(REPLACES)?,
        provides,
        filename: required(FILENAME)?.to_owned(),
        size,
        sha256,
        installed_size: first_line(INSTALLED_SIZE).and_then(|v| v.parse().ok()),
        mirror: mirror.to_owned(),
        name,
        version,
        architecture,
        multi_arch,
    })
}

/// Parses `a (>= 1) | b:any, c [amd64] <!nocheck>` into groups of alternatives. Architecture
/// lists and build profiles (source-package syntax) are dropped.
pub fn parse_dependency_field(value: &str) -> Result<Vec<Alternatives>, String> {
    let mut out = Vec::new();
    for group in value.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            alts.push(parse_dep(alt.trim())?);
        }
        out.push(alts);
    }
    Ok(out)
}

fn parse_dep(s: &str) -> Result<Dep, String> {
    let s = match s.find(['[', '<']) {
        // `<` also starts `<<`/`<=` inside parentheses; only cut outside them.
        Some(i) if !s[..i].contains('(') => s[..i].trim(),
        _ => s,
    };
    let (name_part, constraint) = match s.split_once('(') {
        None => (s.trim(), None),
        Some((n, rest)) => {
            let inner = rest
                .split_once(')')
                .ok_or_else(|| format!("unclosed '(' in {s:?}"))?
                .0
                .trim();
            let op_len = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .unwrap_or(inner.len());
            let rel = Relation::parse(&inner[..op_len])
                .ok_or_else(|| format!("bad relation in {s:?}"))?;
            let version = inner[op_len..].trim();
            if version.is_empty() {
                return Err(format!("missing version in {s:?}"));
            }
            (n.trim(), Some((rel, version.to_owned())))
        }
    };
    if name_part.is_empty() || name_part.contains(char::is_whitespace) {
        return Err(format!("bad package name in {s:?}"));
    }
    let (name, arch) = match name_part.split_once(':') {
        None => (name_part, ArchQualifier::None),
        Some((n, "any")) => (n, ArchQualifier::Any),
        Some((n, "native")) => (n, ArchQualifier::Native),
        Some((n, a)) => (n, ArchQualifier::Named(a.to_owned())),
    };
    if name.is_empty() {
        return Err(format!("bad package name in {s:?}"));
    }
    Ok(Dep {
        name: name.to_owned(),
        arch,
        constraint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_syntax() {
        let groups = parse_dependency_field(
            "libc6 (>= 2.34), perl:any | awk, python3:native (<< 3.12~) , foo [amd64] <!nocheck>, bar (=1.0)",
        )
        .unwrap();
        assert_eq!(groups.len(), 5);
        assert_eq!(
            groups[0][0].constraint,
            Some((Relation::LaterOrEqual, "2.34".into()))
        );
        assert_eq!(groups[1][0].arch, ArchQualifier::Any);
        assert_eq!(groups[1][1].name, "awk");
        assert_eq!(groups[2][0].arch, ArchQualifier::Native);
        assert_eq!(
            groups[2][0].constraint,
            Some((Relation::Earlier, "3.12~".into()))
        );
        assert_eq!(groups[3][0].name, "foo");
        assert_eq!(
            groups[4][0].constraint,
            Some((Relation::Equal, "1.0".into()))
        );
        assert_eq!(format_alternatives(&groups[1]), "perl:any | awk");
        assert!(parse_dependency_field("foo (>= )").is_err());
        assert!(parse_dependency_field("foo (~ 1)").is_err());
        // Found by fuzzing: an architecture qualifier with no name before it.
        assert!(parse_dependency_field("a, :any (>= 1)").is_err());
    }

    const PACKAGES: &str = "Package: a\nVersion: 1.0\nArchitecture: amd64\nPriority: required\nDepends: b (>= 2) | c\nProvides: v (= 3)\nFilename: pool/a_1.0.deb\nSize: 10\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n\nPackage: a\nVersion: 1.1\nArchitecture: amd64\nFilename: pool/a_1.1.deb\nSize: 10\nSHA256: 0000000000000000000000000000000000000000000000000000000000000001\n\nPackage: z\nVersion: 1\nArchitecture: arm64\nFilename: pool/z.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000002\n";

    #[test]
    fn candidate_is_highest_and_foreign_arch_is_skipped() {
        let mut index = Index::new("amd64");
        index
            .add_packages(PACKAGES, "P", "http://m/debian/")
            .unwrap();
        index.finish();
        let c = index.candidate("a").unwrap();
        assert_eq!(index.package(c).version, "1.1");
        assert_eq!(index.package(c).url(), "http://m/debian/pool/a_1.1.deb");
        assert!(index.candidate("z").is_none());
        assert_eq!(index.providers("v").len(), 1);
        assert!(index.apt_id("a") < index.apt_id("b"));
        assert!(index.apt_id("b") < index.apt_id("c"));
    }

    #[test]
    fn a_file_index_reads_back_the_same_packages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages");
        std::fs::write(&path, PACKAGES).unwrap();
        let mut from_file = Index::new("amd64");
        from_file
            .add_packages_file(std::fs::File::open(&path).unwrap(), "P", "http://m/debian")
            .unwrap();
        from_file.finish();
        let mut from_text = Index::new("amd64");
        from_text
            .add_packages(PACKAGES, "P", "http://m/debian")
            .unwrap();
        from_text.finish();
        assert_eq!(from_file.len(), 2);
        for i in 0..from_file.len() {
            assert_eq!(from_file.package(i), from_text.package(i));
        }
        let a = from_file.candidate("a").unwrap();
        assert_eq!(from_file.package(a).version, "1.1");
        assert_eq!(from_file.minbase().len(), 0, "1.1 is not required");
        let old = from_file.versions("a").nth(1).unwrap().1;
        assert_eq!(old.depends[0][1].name, "c");
    }

    #[test]
    fn errors_deep_in_a_file_name_the_right_line() {
        // Paragraph 3 starts at line 11 (after two 4-line paragraphs, blank lines and a
        // two-line continuation); its bad Depends is reported at that line.
        let good = "Package: g\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n";
        let text = format!(
            "{good}\n\n{}Description: x\n more\n\nPackage: bad\nVersion: 1\nDepends: a (>= )\n",
            good.replace("Package: g", "Package: h")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages");
        std::fs::write(&path, &text).unwrap();
        let mut index = Index::new("amd64");
        let err = index
            .add_packages_file(std::fs::File::open(&path).unwrap(), "http://m/P", "m")
            .unwrap_err()
            .to_string();
        let line = text.lines().position(|l| l == "Package: bad").unwrap() + 1;
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert!(err.contains("package bad"), "{err}");
        let err = Index::new("amd64")
            .add_packages(&text.replace("Depends: a (>= )", "not a field"), "P", "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("line {}", line + 2)), "{err}");
    }

    #[test]
    fn a_paragraph_past_the_limit_is_refused_without_reading_it_all() {
        let huge = format!(
            "Package: ok\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256: {}\n\nPackage: big\nDescription: {}\n",
            "0".repeat(64),
            "x".repeat(MAX_PARAGRAPH)
        );
        let err = Index::new("amd64")
            .add_packages(&huge, "http://m/P", "m")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http://m/P") && err.contains("line 8"),
            "{err}"
        );
        assert!(err.contains("longer than 16 MiB"), "{err}");

        // A bad paragraph before it, still being parsed when the reader stops, is the one
        // reported: the first error in the file.
        let earlier = huge.replacen("Version: 1\n", "Version: 1\nMulti-Arch: sideways\n", 1);
        let err = Index::new("amd64")
            .add_packages(&earlier, "http://m/P", "m")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(package ok)") && err.contains("sideways"),
            "{err}"
        );
    }

    /// Many batches, parsed on several threads: the index is the one a single pass in file
    /// order makes (apt's name order included), and of two bad paragraphs in different
    /// batches the first in the file is the one reported.
    #[test]
    fn batches_parsed_in_parallel_add_up_in_file_order() {
        let count = 4000; // ~1 MB: several batches for every worker
        let paragraph = |i: usize| {
            format!(
                "Package: p{i}\nVersion: 1.{i}\nArchitecture: amd64\nSize: 1\n\
                 Filename: pool/p{i}.deb\nSHA256: {}\nDepends: d{}, e{i} | p{}\n\
                 Provides: v{}\nDescription: package {i} of a long index, with text to fill \
                 the batches faster than names alone would\n\n",
                "ab".repeat(32),
                count - i,
                i / 2,
                i % 7
            )
        };
        let text: String = (0..count).map(paragraph).collect();
        let mut index = Index::new("amd64");
        index.add_packages(&text, "P", "http://m").unwrap();
        index.finish();
        assert_eq!(index.len(), count);
        // The order a single pass meets names in: p_i, then d_(count-i), e_i, p_(i/2), v_(i%7).
        let mut order: Vec<String> = Vec::new();
        for i in 0..count {
            for name in [
                format!("p{i}"),
                format!("d{}", count - i),
                format!("e{i}"),
                format!("p{}", i / 2),
                format!("v{}", i % 7),
            ] {
                if !order.contains(&name) {
                    order.push(name);
                }
            }
        }
        for (id, name) in order.iter().enumerate() {
            assert_eq!(index.apt_id(name), id as u32, "{name}");
        }
        assert_eq!(index.providers("v3").len(), (3..count).step_by(7).count());
        assert_eq!(
            index.package(index.candidate("p3999").unwrap()).version,
            "1.3999"
        );

        let broken = text
            .replace(
                "Version: 1.3000\n",
                "Version: 1.3000\nMulti-Arch: sideways\n",
            )
            .replace(
                "Version: 1.1200\n",
                "Version: 1.1200\nMulti-Arch: upwards\n",
            );
        let err = Index::new("amd64")
            .add_packages(&broken, "P", "http://m")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(package p1200)") && err.contains("upwards"),
            "{err}"
        );
    }

    #[test]
    fn bad_paragraph_names_file_line_and_package() {
        let mut index = Index::new("amd64");
        let err = index
            .add_packages(
                "Package: q\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\n",
                "http://m/Packages.xz",
                "m",
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://m/Packages.xz"), "{err}");
        assert!(err.contains("package q"), "{err}");
        assert!(err.contains("missing SHA256"), "{err}");
    }
}
