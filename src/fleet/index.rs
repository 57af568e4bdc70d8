//! The cache index document: what one fleet cache artifact says, its bounds, its merge and
//! expiry rules, and the tag that names it. Pure data: no I/O here (see `remote.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::LayerRecord;
use crate::digest::Digest;

/// The document's format; a reader skips documents of any other.
pub const FORMAT: &str = "stevedore-fleet-cache-v1";
/// `artifactType` of the artifact manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.stevedore.fleet-cache.v1+json";
/// Media type of the index document (the artifact's first layer).
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.stevedore.fleet-cache.index.v1+json";
/// Media type of a package layer's side file (listing, dpkg status, script coverage).
pub const SIDE_FILE_MEDIA_TYPE: &str = "application/vnd.stevedore.fleet-cache.file.v1";
/// Every artifact tag starts with this; the rest sorts newest first (see [`tag_for`]).
pub const TAG_PREFIX: &str = "fleet-v1-";

/// Artifacts a reader reads: the newest ones only.
pub const MAX_ARTIFACTS: usize = 16;
/// Largest index document read (and written).
pub const MAX_INDEX_BYTES: u64 = 4 << 20;
/// Entries one document may hold; a writer keeps the newest.
pub const MAX_ENTRIES: usize = 1024;
/// Largest side file read (a JDK layer's listing is ~1 MB).
pub const MAX_SIDE_FILE_BYTES: u64 = 32 << 20;
/// Entries (and artifacts) older than this are ignored by readers and dropped by writers.
pub const MAX_AGE_SECS: u64 = 14 * 86_400;
/// The side files a package layer carries in the local cache, and so in an entry.
pub const SIDE_FILES: [&str; 3] = ["list", "status", "coverage"];

/// One artifact's index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDoc {
    pub format: String,
    /// [`crate::plan::LAYER_FORMAT_VERSION`] of the writer: keys of another version never match.
    pub layer_format: String,
    /// The stevedore version that wrote it (for people; not checked).
    pub stevedore: String,
    /// When it was written, seconds since the epoch (the writer's clock).
    pub created: u64,
    pub entries: Vec<Entry>,
}

/// A layer key and what it produced, as the local cache's [`LayerRecord`] says, plus where the
/// layer came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: Digest,
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub diff_size: u64,
    pub media_type: String,
    /// sha256 of the lockfile the build used (the resolution the packages came from), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<Digest>,
    /// When a build last published this entry, seconds since the epoch.
    pub published: u64,
    /// A package layer's side files, by kind ([`SIDE_FILES`]): blobs of the artifact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub side_files: BTreeMap<String, SideFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideFile {
    pub digest: Digest,
    pub size: u64,
}

impl Entry {
    pub fn record(&self) -> LayerRecord {
        LayerRecord {
            diff_id: self.diff_id.clone(),
            digest: self.digest.clone(),
            size: self.size,
            diff_size: self.diff_size,
        }
    }

    /// Numbers a reader can use: sizes within bounds, a known layer media type, side files
    /// of known kinds within bounds.
    fn plausible(&self) -> bool {
        let layer_type = crate::oci::MediaType::from(self.media_type.as_str())
            .layer_encoding()
            .is_some();
        layer_type
            && self.size > 0
            && self.side_files.len() <= SIDE_FILES.len()
            && self.side_files.iter().all(|(kind, f)| {
                SIDE_FILES.contains(&kind.as_str()) && f.size <= MAX_SIDE_FILE_BYTES
            })
    }
}

/// Why a document is not used.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("not a fleet cache index: {0}")]
    Json(#[from] serde_json::Error),
    #[error("format `{0}`, this stevedore reads {FORMAT}")]
    Format(String),
    #[error("written for layer format `{0}`, this stevedore writes {1}")]
    LayerFormat(String, &'static str),
    #[error("{0} entries, at most {MAX_ENTRIES} are read")]
    TooManyEntries(usize),
}

/// Parses a document, keeping only plausible entries that are not expired at `now`.
pub fn parse(bytes: &[u8], now: u64) -> Result<Vec<Entry>, DocError> {
    let doc: IndexDoc = serde_json::from_slice(bytes)?;
    if doc.format != FORMAT {
        return Err(DocError::Format(doc.format));
    }
    if doc.layer_format != crate::plan::LAYER_FORMAT_VERSION {
        return Err(DocError::LayerFormat(
            doc.layer_format,
            crate::plan::LAYER_FORMAT_VERSION,
        ));
    }
    if doc.entries.len() > MAX_ENTRIES {
        return Err(DocError::TooManyEntries(doc.entries.len()));
    }
    Ok(doc
        .entries
        .into_iter()
        .filter(|e| e.plausible() && !expired(e.published, now))
        .collect())
}

fn expired(published: u64, now: u64) -> bool {
    now.saturating_sub(published) > MAX_AGE_SECS
}

/// The entries of several documents as one map: for a key listed more than once, the most
/// recently published entry (keys are content keys, so they agree unless one was tampered with
/// or the layer format changed; the newest is the likeliest to have live blobs).
pub fn merge(docs: impl IntoIterator<Item = Vec<Entry>>) -> BTreeMap<Digest, Entry> {
    let mut merged: BTreeMap<Digest, Entry> = BTreeMap::new();
    for e in docs.into_iter().flatten() {
        match merged.get(&e.key) {
            Some(have) if have.published >= e.published => {}
            _ => {
                merged.insert(e.key.clone(), e);
            }
        }
    }
    merged
}

/// The document a writer publishes: its own entries (published `now`) over what it read,
/// expired entries dropped, at most [`MAX_ENTRIES`], newest kept.
pub fn document(read: BTreeMap<Digest, Entry>, own: Vec<Entry>, now: u64) -> IndexDoc {
    let mut all = merge([read.into_values().collect(), own]);
    all.retain(|_, e| !expired(e.published, now));
    let mut entries: Vec<Entry> = all.into_values().collect();
    entries.sort_by(|a, b| b.published.cmp(&a.published).then(a.key.cmp(&b.key)));
    entries.truncate(MAX_ENTRIES);
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    IndexDoc {
        format: FORMAT.into(),
        layer_format: crate::plan::LAYER_FORMAT_VERSION.into(),
        stevedore: env!("CARGO_PKG_VERSION").into(),
        created: now,
        entries,
    }
}

/// The tag of an artifact written at `now` holding `doc_digest`: the time inverted, so that
/// the registry's lexical tag order lists the newest first, and the document's digest, so
/// that two writers never share a tag (two writers of the same document may: same content).
pub fn tag_for(now: u64, doc_digest: &Digest) -> String {
    let inverted = 9_999_999_999u64.saturating_sub(now);
    format!("{TAG_PREFIX}{inverted:010}-{}", &doc_digest.hex()[..16])
}

/// When the artifact a tag names was written, if the tag is one of ours.
pub fn tag_time(tag: &str) -> Option<u64> {
    let rest = tag.strip_prefix(TAG_PREFIX)?;
    let (inverted, hex) = rest.split_once('-')?;
    if inverted.len() != 10 || hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let inverted: u64 = inverted.parse().ok()?;
    Some(9_999_999_999 - inverted.min(9_999_999_999))
}

/// The newest of our tags among `tags` that are not expired at `now`, newest first, at most
/// [`MAX_ARTIFACTS`].
pub fn newest_tags(tags: &[String], now: u64) -> Vec<String> {
    let mut ours: Vec<(u64, &String)> = tags
        .iter()
        .filter_map(|t| Some((tag_time(t)?, t)))
        .filter(|(time, _)| !expired(*time, now))
        .collect();
    ours.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ours.into_iter()
        .take(MAX_ARTIFACTS)
        .map(|(_, t)| t.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, published: u64) -> Entry {
        Entry {
            key: Digest::of(key.as_bytes()),
            digest: Digest::of(b"blob"),
            diff_id: Digest::of(b"tar"),
            size: 10,
            diff_size: 20,
            media_type: crate::oci::names::OCI_LAYER_GZIP.into(),
            lock: None,
            published,
            side_files: BTreeMap::new(),
        }
    }

    #[test]
    fn tags_sort_newest_first_and_round_trip() {
        let d = Digest::of(b"doc");
        let old = tag_for(1_000, &d);
        let new = tag_for(2_000, &d);
        assert!(new < old, "{new} must sort before {old}");
        assert_eq!(tag_time(&old), Some(1_000));
        assert_eq!(tag_time("latest"), None);
        assert_eq!(tag_time("fleet-v1-x-y"), None);
        let now = 2_000 + MAX_AGE_SECS;
        let tags = vec![old.clone(), "latest".into(), new.clone()];
        assert_eq!(
            newest_tags(&tags, now),
            vec![new.clone()],
            "old one expired"
        );
        assert_eq!(newest_tags(&tags, 2_000), vec![new, old]);
    }

    #[test]
    fn merge_keeps_every_key_and_the_newest_entry() {
        let mut a = entry("a", 5);
        a.size = 1;
        let b = entry("b", 6);
        let mut a2 = entry("a", 7);
        a2.size = 2;
        let merged = merge([vec![a.clone(), b.clone()], vec![a2.clone()]]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[&a.key].size, 2);
        assert_eq!(merged[&b.key], b);
    }

    #[test]
    fn documents_expire_and_are_bounded() {
        let now = MAX_AGE_SECS * 3;
        let read = merge([vec![entry("old", 1), entry("kept", now - 10)]]);
        let own: Vec<Entry> = (0..MAX_ENTRIES + 5)
            .map(|i| entry(&format!("own{i}"), now))
            .collect();
        let doc = document(read, own, now);
        assert_eq!(doc.entries.len(), MAX_ENTRIES);
        assert!(
            doc.entries.iter().all(|e| e.published == now),
            "newest kept"
        );
        let small = document(
            merge([vec![entry("old", 1), entry("kept", now)]]),
            vec![],
            now,
        );
        assert_eq!(small.entries.len(), 1);
        let bytes = serde_json::to_vec(&small).unwrap();
        assert_eq!(parse(&bytes, now).unwrap().len(), 1);
        assert_eq!(parse(&bytes, now + MAX_AGE_SECS + 1).unwrap().len(), 0);
    }

    #[test]
    fn foreign_or_implausible_documents_are_refused() {
        let mut doc = document(BTreeMap::new(), vec![entry("a", 1)], 1);
        doc.format = "other".into();
        assert!(matches!(
            parse(&serde_json::to_vec(&doc).unwrap(), 1),
            Err(DocError::Format(_))
        ));
        let mut bad = entry("a", 1);
        bad.media_type = "text/html".into();
        let doc = document(BTreeMap::new(), vec![bad, entry("b", 1)], 1);
        assert_eq!(
            parse(&serde_json::to_vec(&doc).unwrap(), 1).unwrap().len(),
            1
        );
        assert!(parse(b"{}", 1).is_err());
    }
}
