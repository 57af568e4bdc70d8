//! Comparing two layer blobs entry by entry, to say *which files* differ and how when two
//! builds that should be identical are not.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use super::{Compression, decompress};
use crate::digest::digest_reader;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Facts {
    kind: char,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    size: u64,
    content: String,
    link: Option<String>,
}

/// One path that differs between two layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    /// What differs: `content`, `mode`, `owner`, `mtime`, `type`, `link target`, `only in …`.
    pub what: Vec<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}: {}", self.path, self.what.join(", "))
    }
}

fn facts(reader: impl Read) -> io::Result<BTreeMap<String, Facts>> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            _ => '?',
        };
        let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
        let (digest, size) = digest_reader(&mut entry)?;
        out.insert(
            path,
            Facts {
                kind,
                mode: h.mode()? & 0o7777,
                owner: (h.uid()?, h.gid()?),
                mtime: h.mtime()?,
                size,
                content: digest.to_string(),
                link,
            },
        );
    }
    Ok(out)
}

/// The paths that differ between two compressed layer blobs (`left`/`right` name them in
/// messages). An empty result with different blob digests means the difference is in the
/// tar framing or the compression, not in any file.
pub fn diff_layers(
    left: impl io::BufRead,
    right: impl io::BufRead,
    compression: Compression,
    names: (&str, &str),
) -> io::Result<Vec<Difference>> {
    let a = facts(decompress(left, compression)?)?;
    let b = facts(decompress(right, compression)?)?;
    let mut out = Vec::new();
    for (path, fa) in &a {
        let Some(fb) = b.get(path) else {
            out.push(Difference {
                path: path.clone(),
                what: vec![format!("only in {}", names.0)],
            });
            continue;
        };
        let mut what = Vec::new();
        if fa.kind != fb.kind {
            what.push(format!("type ({} vs {})", fa.kind, fb.kind));
        }
        if fa.content != fb.content {
            what.push(format!("content ({} vs {} bytes)", fa.size, fb.size));
        }
        if fa.mode != fb.mode {
            what.push(format!("mode ({:o} vs {:o})", fa.mode, fb.mode));
        }
        if fa.owner != fb.owner {
            what.push(format!(
                "owner ({}:{} vs {}:{})",
                fa.owner.0, fa.owner.1, fb.owner.0, fb.owner.1
            ));
        }
        if fa.mtime != fb.mtime {
            what.push(format!("mtime ({} vs {})", fa.mtime, fb.mtime));
        }
        if fa.link != fb.link {
            what.push("link target".to_string());
        }
        if !what.is_empty() {
            out.push(Difference {
                path: path.clone(),
                what,
            });
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(Difference {
            path: path.clone(),
            what: vec![format!("only in {}", names.1)],
        });
    }
    Ok(out)
}
