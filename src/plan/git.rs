//! Times and facts from git, so that an image built from a fresh clone equals one built from an
//! old checkout: file mtimes come from history, not from when the checkout happened.
//!
//! For the files under a recipe's folder, the time of a tracked file is the committer time of the
//! last commit (along first parents, like `git log -1 --first-parent -- PATH`) that changed it.
//! The history walk compares tree object ids top-down and only descends where they differ, so it
//! touches little beyond the changed paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;

#[derive(Debug, thiserror::Error)]
#[error("reading git repository {path}: {message}")]
pub struct GitError {
    pub path: PathBuf,
    pub message: String,
}

/// What a build needs from the repository a recipe lives in.
pub struct GitInfo {
    workdir: PathBuf,
    repo: gix::Repository,
    pub head: ObjectId,
    pub head_time: u64,
    pub branch: Option<String>,
    /// A tag pointing at HEAD, if any (the first in name order).
    pub tag: Option<String>,
    /// `origin`'s URL as an image may publish it ([`source_url`]): a network URL without
    /// credentials; `None` for a local folder or any other remote that is not a URL.
    pub remote_url: Option<String>,
    /// Path (relative to the work tree, `/`-separated) → (blob id at HEAD, time of last change).
    times: HashMap<String, (ObjectId, u64)>,
}

impl GitInfo {
    /// The repository `dir` is in, with times for every file tracked below `dir`; `None` outside
    /// a repository or in one without commits.
    pub fn discover(dir: &Path) -> Result<Option<GitInfo>, GitError> {
        let fail = |m: String| GitError {
            path: dir.to_path_buf(),
            message: m,
        };
        let Ok(repo) = gix::discover(dir) else {
            return Ok(None);
        };
        let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
            return Ok(None);
        };
        let workdir = workdir.canonicalize().map_err(|e| fail(e.to_string()))?;
        let (head_id, head_time) = {
            let Ok(head) = repo.head_commit() else {
                return Ok(None);
            };
            (head.id, commit_seconds(&head).map_err(fail)?)
        };
        let branch = repo
            .head_name()
            .ok()
            .flatten()
            .map(|n| n.shorten().to_string());
        let tag = tag_at(&repo, head_id);
        let remote_url = repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url(gix::remote::Direction::Fetch).and_then(source_url));
        let prefix = dir
            .canonicalize()
            .map_err(|e| fail(e.to_string()))?
            .strip_prefix(&workdir)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let mut info = GitInfo {
            workdir,
            repo,
            head: head_id,
            head_time,
            branch,
            tag,
            remote_url,
            times: HashMap::new(),
        };
        info.times = info.file_times(&prefix).map_err(fail)?;
        Ok(Some(info))
    }

    pub fn short(&self) -> String {
        self.head.to_hex_with_len(12).to_string()
    }

    /// The HEAD blob id and last-change time of a host file, if git tracks it.
    pub fn tracked(&self, host: &Path) -> Option<(ObjectId, u64)> {
        let rel = host.strip_prefix(&self.workdir).ok()?;
        self.times.get(rel.to_str()?).copied()
    }

    fn file_times(&self, prefix: &str) -> Result<HashMap<String, (ObjectId, u64)>, String> {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let head = self.repo.find_commit(self.head).map_err(|x| e(&x))?;
        let Some(root) = self.subtree(&head, prefix)? else {
            return Ok(HashMap::new());
        };
        let mut current: HashMap<String, ObjectId> = HashMap::new();
        self.list_blobs(root, prefix, &mut current)?;
        let mut out = HashMap::new();
        let mut commit = head;
        let mut sub = Some(root);
        while !current.is_empty() {
            // Checked only where used: a strange time deep in history that gives no file its
            // time does not matter.
            let time = commit_seconds(&commit);
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let Some(parent) = parent else {
                for (path, oid) in current.drain() {
                    out.insert(path, (oid, time.clone()?));
                }
                break;
            };
            let parent = self.repo.find_commit(parent).map_err(|x| e(&x))?;
            let parent_sub = self.subtree(&parent, prefix)?;
            if sub != parent_sub {
                let mut changed = Vec::new();
                self.changed_paths(sub, parent_sub, prefix, &current, &mut changed)?;
                for path in changed {
                    if let Some(oid) = current.remove(&path) {
                        out.insert(path, (oid, time.clone()?));
                    }
                }
            }
            commit = parent;
            sub = parent_sub;
        }
        Ok(out)
    }

    /// The tree id at `prefix` in a commit (`None` if the folder does not exist there).
    fn subtree(&self, commit: &gix::Commit<'_>, prefix: &str) -> Result<Option<ObjectId>, String> {
        let tree = commit.tree().map_err(|x| x.to_string())?;
        if prefix.is_empty() {
            return Ok(Some(tree.id));
        }
        let entry = tree
            .lookup_entry_by_path(prefix)
            .map_err(|x| x.to_string())?;
        Ok(entry.filter(|e| e.mode().is_tree()).map(|e| e.object_id()))
    }

    fn entries(&self, tree: ObjectId) -> Result<Vec<(String, ObjectId, bool)>, String> {
        let tree = self.repo.find_tree(tree).map_err(|x| x.to_string())?;
        let decoded = tree.decode().map_err(|x| x.to_string())?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| {
                (
                    e.filename.to_str_lossy().into_owned(),
                    e.oid.to_owned(),
                    e.mode.is_tree(),
                )
            })
            .collect())
    }

    fn list_blobs(
        &self,
        tree: ObjectId,
        prefix: &str,
        out: &mut HashMap<String, ObjectId>,
    ) -> Result<(), String> {
        for (name, oid, is_tree) in self.entries(tree)? {
            let path = join(prefix, &name);
            if is_tree {
                self.list_blobs(oid, &path, out)?;
            } else {
                out.insert(path, oid);
            }
        }
        Ok(())
    }

    /// Paths still wanted whose blob differs between `new` and `old` (either may be absent).
    fn changed_paths(
        &self,
        new: Option<ObjectId>,
        old: Option<ObjectId>,
        prefix: &str,
        wanted: &HashMap<String, ObjectId>,
        out: &mut Vec<String>,
    ) -> Result<(), String> {
        let Some(new) = new else { return Ok(()) };
        let old_entries: HashMap<String, (ObjectId, bool)> = match old {
            Some(o) => self
                .entries(o)?
                .into_iter()
                .map(|(n, id, t)| (n, (id, t)))
                .collect(),
            None => HashMap::new(),
        };
        for (name, oid, is_tree) in self.entries(new)? {
            let path = join(prefix, &name);
            let before = old_entries.get(&name);
            if before.map(|b| b.0) == Some(oid) {
                continue;
            }
            if is_tree {
                let old_sub = before.filter(|b| b.1).map(|b| b.0);
                self.changed_paths(Some(oid), old_sub, &path, wanted, out)?;
            } else if wanted.contains_key(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// The committer time of a commit, which must be a time the image can hold (a commit dated
/// before 1970 or after 9999 is refused, naming it, rather than clamped).
fn commit_seconds(c: &gix::Commit<'_>) -> Result<u64, String> {
    let t = c
        .time()
        .map_err(|x| format!("commit {}: unreadable time: {x}", c.id))?;
    match u64::try_from(t.seconds) {
        Ok(secs) if secs <= crate::image::LAST_TIME => Ok(secs),
        Ok(_) => Err(format!(
            "commit {} has the time {}, after 9999-12-31T23:59:59Z, the last time the image's RFC 3339 `created` can hold",
            c.id, t.seconds
        )),
        Err(_) => Err(format!(
            "commit {} has the time {}, before 1970-01-01, which tar headers and the image's `created` cannot hold",
            c.id, t.seconds
        )),
    }
}

fn tag_at(repo: &gix::Repository, head: ObjectId) -> Option<String> {
    let refs = repo.references().ok()?;
    let mut names: Vec<String> = refs
        .tags()
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|mut r| {
            let id = r.peel_to_id().ok()?.detach();
            (id == head).then(|| r.name().shorten().to_string())
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

/// What `org.opencontainers.image.source` says for a remote: where anyone may fetch the source,
/// never where it happens to lie on the building machine.
///
/// - `https://`, `http://`, `git://` and `ssh://` URLs are kept, without user, password, query
///   and fragment (a token may sit in any of them: `https://user:token@host/repo.git` gives
///   `https://host/repo.git`).
/// - The scp-like form `[user@]host:path` (`git@github.com:team/app.git`) becomes
///   `https://host/path`: every public forge serves the same path over HTTPS, and that is the
///   form registries such as GHCR read to link a package to its repository. (An explicit
///   `ssh://` URL is kept as ssh, with its port: there the writer chose the transport.)
/// - Anything else gives no label: a local folder or `file://` URL (a machine's path, which
///   would also make two clones of one commit build different configs), remote helpers, and
///   paths that are not printable ASCII (they would need escaping a reader may not undo).
pub fn source_url(url: &gix::Url) -> Option<String> {
    use gix::url::Scheme;
    let host = url.host().filter(|h| !h.is_empty())?;
    let scp_like = url.scheme == Scheme::Ssh && url.serialize_alternative_form;
    let scheme = match url.scheme {
        Scheme::Https => "https",
        Scheme::Http => "http",
        Scheme::Git => "git",
        Scheme::Ssh if scp_like => "https",
        Scheme::Ssh => "ssh",
        _ => return None,
    };
    let path = url.path_query_fragment().path.to_str().ok()?;
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if !host_ok {
        return None;
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let port = match url.port {
        Some(p) if !scp_like => format!(":{p}"),
        _ => String::new(),
    };
    Some(format!(
        "{scheme}://{host}{port}/{}",
        path.trim_start_matches('/')
    ))
}

/// The git blob id of `data` (what `git hash-object` prints), to tell a clean tracked file from
/// an edited one.
pub fn blob_id(data_len: u64) -> gix::hash::Hasher {
    let mut h = gix::hash::hasher(gix::hash::Kind::Sha1);
    h.update(&gix::objs::encode::loose_header(
        gix::objs::Kind::Blob,
        data_len,
    ));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(remote: &str) -> Option<String> {
        source_url(&gix::url::parse(remote).unwrap())
    }

    #[test]
    fn credentials_never_reach_labels() {
        assert_eq!(
            label("https://user:tok@example.org/team/app.git").as_deref(),
            Some("https://example.org/team/app.git")
        );
        assert_eq!(
            label("https://oauth2:glpat-x@gitlab.example.org:8443/team/app.git?private_token=y#z")
                .as_deref(),
            Some("https://gitlab.example.org:8443/team/app.git")
        );
        assert_eq!(
            label("ssh://git:pw@example.org:2222/team/app.git").as_deref(),
            Some("ssh://example.org:2222/team/app.git")
        );
        assert_eq!(
            label("http://example.org").as_deref(),
            Some("http://example.org/")
        );
        assert_eq!(
            label("git://example.org/app.git").as_deref(),
            Some("git://example.org/app.git")
        );
    }

    #[test]
    fn scp_like_remotes_become_https() {
        assert_eq!(
            label("git@github.com:team/app.git").as_deref(),
            Some("https://github.com/team/app.git")
        );
        assert_eq!(
            label("example.org:team/app").as_deref(),
            Some("https://example.org/team/app")
        );
    }

    #[test]
    fn local_folders_give_no_label() {
        for remote in [
            "/home/me/src/app",
            "../app",
            "./app",
            "file:///home/me/src/app.git",
            "file://localhost/srv/app.git",
            "ext::ssh -i key host %S repo",
        ] {
            assert_eq!(
                gix::url::parse(remote).ok().and_then(|u| source_url(&u)),
                None,
                "{remote}"
            );
        }
    }
}
