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
    /// Lines of `/etc/shadow` and `/etc/gshadow` already in the tree (a lower layer's setup),
    /// by name: kept as they are, as the real tools never rewrite another account's line.
    pub kept_shadow: BTreeMap<String, String>,
    pub kept_gshadow: BTreeMap<String, String>,
    /// The "last password change" day written for new accounts (days since the epoch).
    pub last_change: Option<u64>,
}

/// The "last changed" field of `/etc/shadow` for accounts made at `epoch` (seconds).
///
/// The real tools (pwconv, useradd, systemd-sysusers) write the current day, and all of them
/// honour `SOURCE_DATE_EPOCH` for it; debootstrap and mmdebstrap with that clock write its day
/// (20089 for 2025-01-01). So the day of the build's epoch: the same bytes every build, the
/// same field as a reference bootstrap. An epoch of 0 would mean day 0, which shadow reads as
/// "the password must be changed at next login": the field is left empty then (aging off).
pub fn last_change_day(epoch: u64) -> Option<u64> {
    (epoch >= 86_400).then_some(epoch / 86_400)
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
    /// Whether systemd-sysusers made `key` (`user NAME`, `group NAME`): it writes `!*`
    /// (locked, no password ever) and no aging fields, where pwconv and the shadow tools
    /// write `*` and the login.defs aging (`0:99999:7`).
    fn by_sysusers(&self, key: &str) -> bool {
        self.sources.get(key).is_some_and(|at| {
            super::accounts::SYSUSERS_DIRS
                .iter()
                .any(|d| at.starts_with(&format!("{d}/")))
        })
    }

    /// One line per user: the tree's own line when it has one, else as the tool that made
    /// the account writes it, dated [`Accounts::last_change`].
    pub fn shadow(&self) -> String {
        let day = self.last_change.map(|d| d.to_string()).unwrap_or_default();
        self.users
            .iter()
            .map(|u| match self.kept_shadow.get(&u.name) {
                Some(line) => format!("{line}\n"),
                None if self.by_sysusers(&format!("user {}", u.name)) => {
                    format!("{}:!*:{day}::::::\n", u.name)
                }
                None => format!("{}:*:{day}:0:99999:7:::\n", u.name),
            })
            .collect()
    }
    pub fn gshadow(&self) -> String {
        self.groups
            .iter()
            .map(|g| {
                let members = g.members.join(",");
                match self.kept_gshadow.get(&g.name) {
                    // The member list is the database's (a later `adduser USER GROUP`).
                    Some(line) => {
                        let mut f: Vec<&str> = line.splitn(4, ':').collect();
                        f.resize(4, "");
                        format!("{}:{}:{}:{members}\n", f[0], f[1], f[2])
                    }
                    None if self.by_sysusers(&format!("group {}", g.name)) => {
                        format!("{}:!*::{members}\n", g.name)
                    }
                    None => format!("{}:*::{members}\n", g.name),
                }
            })
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
