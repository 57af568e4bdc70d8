//! `/etc/passwd` and `/etc/group` for the users and groups a recipe declares, so that
//! `config.user = "app"` and owner names resolve inside the image as they did at build time.
//!
//! Written as a small layer of its own, placed before the declaring recipe's layers. Images
//! built on Debian packages get these files from the package setup instead (base-passwd).

use std::sync::Arc;

use crate::digest::Digest;
use crate::image_path::ImagePath;
use crate::layer::{ContentSource, Entry, EntryKind, FileContent, Meta};
use crate::recipe::{Group, User};

/// The two files' entries, or nothing when no account is declared.
pub fn account_files(users: &[User], groups: &[Group], mtime: u64) -> Vec<(ImagePath, Entry)> {
    if users.is_empty() && groups.is_empty() {
        return Vec::new();
    }
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    for u in users.iter().filter(|u| u.name != "root") {
        passwd.push_str(&format!(
            "{}:x:{}:{}::{}:{}\n",
            u.name, u.uid, u.gid, u.home, u.shell
        ));
    }
    let mut all_groups: Vec<(String, u32)> = vec![("root".into(), 0)];
    all_groups.extend(
        groups
            .iter()
            .filter(|g| g.name != "root")
            .map(|g| (g.name.clone(), g.gid)),
    );
    // A user whose primary group nobody declared gets a group of its own name.
    for u in users {
        if !all_groups.iter().any(|(_, gid)| *gid == u.gid) {
            all_groups.push((u.name.clone(), u.gid));
        }
    }
    let mut group = String::new();
    for (name, gid) in all_groups {
        group.push_str(&format!("{name}:x:{gid}:\n"));
    }
    let meta = Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime,
    };
    [("/etc/group", group), ("/etc/passwd", passwd)]
        .into_iter()
        .map(|(path, text)| {
            let bytes: Arc<[u8]> = text.into_bytes().into();
            (
                ImagePath::from_absolute(path).expect("fixed path"),
                Entry {
                    kind: EntryKind::File(FileContent {
                        size: bytes.len() as u64,
                        digest: Some(Digest::of(&bytes)),
                        source: ContentSource::Bytes(bytes),
                    }),
                    meta,
                },
            )
        })
        .collect()
}
