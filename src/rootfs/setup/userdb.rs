//! The account database: users, groups and the homes the account tools create, and the four
//! files written from it. Both the declarative sources ([`super::accounts`]: base-passwd's
//! masters, sysusers.d, the recipe) and the scripts' account commands ([`super::adduser`])
//! build on it; it knows neither.

use std::collections::BTreeMap;

use super::tree::Effect;

/// `shadow` group of base-passwd: owner group of the shadow files.
pub const SHADOW_GID: u32 = 42;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The account database after setup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// In file order: masters first, then additions in allocation order.
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    /// Lines of sysusers.d files that were not understood (`file:line: text`).
    pub unsupported: Vec<String>,
    /// Where each added user/group came from (`name` → `file:line`).
    pub sources: BTreeMap<String, String>,
    /// Home directories the account tools of the scripts create (with missing parents).
    pub homes: Vec<Home>,
}

impl Accounts {
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.iter().find(|u| u.name == name).map(|u| u.uid)
    }
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|g| g.name == name).map(|g| g.gid)
    }
    /// `user`/`group` given by name or number.
    pub fn resolve_uid(&self, s: &str) -> Option<u32> {
        s.parse()
            .ok()
            .or_else(|| self.uid(s))
            .or((s == "root").then_some(0))
    }
    pub fn resolve_gid(&self, s: &str) -> Option<u32> {
        s.parse()
            .ok()
            .or_else(|| self.gid(s))
            .or((s == "root").then_some(0))
    }

    pub fn passwd(&self) -> String {
        self.users
            .iter()
            .map(|u| {
                format!(
                    "{}:x:{}:{}:{}:{}:{}\n",
                    u.name, u.uid, u.gid, u.gecos, u.home, u.shell
                )
            })
            .collect()
    }
    pub fn group(&self) -> String {
        self.groups
            .iter()
            .map(|g| format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(",")))
            .collect()
    }
    /// Locked passwords (`*`), no aging dates: the day count would depend on the clock.
    pub fn shadow(&self) -> String {
        self.users
            .iter()
            .map(|u| format!("{}:*::0:99999:7:::\n", u.name))
            .collect()
    }
    pub fn gshadow(&self) -> String {
        self.groups
            .iter()
            .map(|g| format!("{}:*::{}\n", g.name, g.members.join(",")))
            .collect()
    }

    /// The four files: passwd/group 0644 root:root, shadow/gshadow 0640 root:shadow.
    pub fn effects(&self) -> Vec<Effect> {
        let shadow_gid = self.gid("shadow").unwrap_or(SHADOW_GID);
        let mut out = vec![
            Effect::file("/etc/passwd", self.passwd().into_bytes(), 0o644),
            Effect::file("/etc/group", self.group().into_bytes(), 0o644),
        ];
        for (path, text) in [
            ("/etc/shadow", self.shadow()),
            ("/etc/gshadow", self.gshadow()),
        ] {
            out.push(Effect::WriteFile {
                path: path.to_owned(),
                bytes: text.into_bytes(),
                mode: 0o640,
                uid: 0,
                gid: shadow_gid,
            });
        }
        out.extend(
            self.homes
                .iter()
                .map(|h| Effect::dir(&h.path, h.mode, h.uid, h.gid)),
        );
        out
    }
}

/// A home directory a tool creates (`adduser --system` without `--no-create-home`,
/// `useradd -m`), with the parents `mkdir -p` would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
