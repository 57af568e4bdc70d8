//! `/etc/passwd`, `/etc/group`, `/etc/shadow`, `/etc/gshadow`.
//!
//! Replaces base-passwd's preinst (which copies its masters), `systemd-sysusers` run from
//! postinsts (tomcat10 creates its user this way), and `passwd`'s `shadowconfig on`. Ids of
//! dynamic users are allocated like systemd-sysusers does (999 downwards), but in a stable
//! order (sysusers files sorted by name, then by line), so every build gives the same ids.
//! Accounts that postinsts create with `adduser`/`useradd` come last, in package order
//! ([`super::adduser`]): adduser allocates from 100 upwards, sysusers from 999 downwards, and
//! both skip every id already taken, so the two never collide.

use std::collections::{BTreeMap, BTreeSet};

use super::adduser::{self, ScriptAccountAt};
use super::coverage::Status;
use super::rule::Rule;
use super::tree::RootView;
use super::userdb::{Accounts, Group, User};

pub const PASSWD_MASTER: &str = "/usr/share/base-passwd/passwd.master";
pub const GROUP_MASTER: &str = "/usr/share/base-passwd/group.master";
pub const SYSUSERS_DIRS: &[&str] = &["/usr/lib/sysusers.d", "/etc/sysusers.d"];
/// systemd-sysusers' default dynamic range (SYS_UID_MAX down to SYS_UID_MIN).
const DYNAMIC_MAX: u32 = 999;
const DYNAMIC_MIN: u32 = 100;

/// The commands whose effect is the account database this file builds.
pub const RULES: &[Rule] = &[
    Rule::named(&["update-passwd"]).judge(|_, ctx| {
        (!ctx.accounts.users.is_empty()).then(|| {
            Status::Reproduced("accounts (passwd/group from base-passwd's masters)".into())
        })
    }),
    // passwd's `shadowconfig on` (pwconv/grpconv): the accounts mechanism writes
    // /etc/shadow and /etc/gshadow.
    Rule::named(&["shadowconfig"]).judge(|call, ctx| {
        (call.args() == ["on"]
            && ctx.produced.contains_key("/etc/shadow")
            && ctx.produced.contains_key("/etc/gshadow"))
        .then(|| Status::Reproduced("accounts (/etc/shadow and /etc/gshadow)".into()))
    }),
    Rule::named(&["systemd-sysusers"]).judge(|_, ctx| {
        ctx.has_sysusers
            .then(|| Status::Reproduced("accounts (sysusers.d)".into()))
    }),
];

/// A user to add besides the packages' (declared in the recipe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraUser {
    pub name: String,
    /// `None`: allocate like a dynamic system user.
    pub uid: Option<u32>,
    /// Primary group name; created with the same id as the user when missing.
    pub group: Option<String>,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// One understood sysusers.d line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SysLine {
    User {
        name: String,
        uid: Option<u32>,
        gid: Option<IdRef>,
        gecos: String,
        home: Option<String>,
        shell: Option<String>,
    },
    Group {
        name: String,
        gid: Option<u32>,
    },
    Member {
        user: String,
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum IdRef {
    Num(u32),
    Name(String),
}

/// Splits a sysusers.d line into fields; `"…"` quotes group words (the GECOS field).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut in_word) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn opt(f: Option<&String>) -> Option<String> {
    f.filter(|s| s.as_str() != "-").cloned()
}

fn parse_sysusers_line(line: &str) -> Result<Option<SysLine>, ()> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let f = fields(line);
    let ty = f.first().ok_or(())?.trim_end_matches('!');
    let name = f.get(1).ok_or(())?.clone();
    let id = opt(f.get(2));
    match ty {
        "u" => {
            let (uid, gid) = match id.as_deref() {
                None => (None, None),
                Some(s) => {
                    let (u, g) = match s.split_once(':') {
                        Some((u, g)) => (u, Some(g)),
                        None => (s, None),
                    };
                    if u.starts_with('/') {
                        return Err(()); // uid taken from a file's owner: needs the real file
                    }
                    let uid = if u == "-" {
                        None
                    } else {
                        Some(u.parse().map_err(|_| ())?)
                    };
                    let gid = g.map(|g| match g.parse() {
                        Ok(n) => IdRef::Num(n),
                        Err(_) => IdRef::Name(g.to_owned()),
                    });
                    (uid, gid)
                }
            };
            Ok(Some(SysLine::User {
                name,
                uid,
                gid,
                gecos: opt(f.get(3)).unwrap_or_default(),
                home: opt(f.get(4)),
                shell: opt(f.get(5)),
            }))
        }
        "g" => {
            let gid = match id.as_deref() {
                None => None,
                Some(s) if s.starts_with('/') => return Err(()),
                Some(s) => Some(s.parse().map_err(|_| ())?),
            };
            Ok(Some(SysLine::Group { name, gid }))
        }
        "m" => Ok(Some(SysLine::Member {
            user: name,
            group: opt(f.get(2)).ok_or(())?,
        })),
        // `r` only narrows the dynamic range: it changes no file, so it is fine to skip.
        "r" => Ok(None),
        _ => Err(()),
    }
}

/// Parses a passwd/group master (`name:pw:uid:gid:gecos:home:shell` / `name:pw:gid:members`).
fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then(|| User {
                name: f[0].to_owned(),
                uid: f[2].parse().unwrap_or(0),
                gid: f[3].parse().unwrap_or(0),
                gecos: f[4].to_owned(),
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| Group {
                name: f[0].to_owned(),
                gid: f[2].parse().unwrap_or(0),
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The sysusers.d files of the root, sorted by file name; `/etc/sysusers.d` overrides a
/// same-named file in `/usr/lib/sysusers.d` (as systemd does).
pub fn sysusers_files(root: &dyn RootView) -> Vec<(String, String)> {
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for dir in SYSUSERS_DIRS {
        for name in root.list_dir(dir) {
            if name.ends_with(".conf") {
                by_name.insert(name.clone(), format!("{dir}/{name}"));
            }
        }
    }
    by_name
        .into_values()
        .filter_map(|p| {
            let text = String::from_utf8(root.read(&p)?).ok()?;
            Some((p, text))
        })
        .collect()
}

/// Builds the account database: base-passwd's masters (or the files already in the root when
/// the masters are absent), then sysusers.d declarations, then `extra` users.
pub fn accounts(root: &dyn RootView, extra: &[ExtraUser]) -> Accounts {
    with_scripts(root, extra, &[])
}

/// [`accounts`], then the account commands of the maintainer scripts in the order given
/// (package order, preinst before postinst, line order). A command the tool would refuse is
/// listed in [`Accounts::unsupported`] as `at: why`.
pub fn with_scripts(
    root: &dyn RootView,
    extra: &[ExtraUser],
    scripts: &[ScriptAccountAt],
) -> Accounts {
    let mut acc = declared(root, extra);
    let defaults = adduser::Defaults::from_root(root);
    for s in scripts {
        let before = (acc.users.len(), acc.groups.len());
        match adduser::apply(&mut acc, root, &defaults, &s.account) {
            Ok(()) => {
                for u in &acc.users[before.0..] {
                    acc.sources.insert(format!("user {}", u.name), s.at.clone());
                }
                for g in &acc.groups[before.1..] {
                    acc.sources
                        .insert(format!("group {}", g.name), s.at.clone());
                }
            }
            Err(why) => acc.unsupported.push(format!("{}: {why}", s.at)),
        }
    }
    acc
}

fn declared(root: &dyn RootView, extra: &[ExtraUser]) -> Accounts {
    let mut acc = from_files(root);
    let lines = sysusers_lines(root, extra, &mut acc.unsupported);
    // systemd-sysusers creates groups first (so `u name -` gets a group of the same id when
    // free), then users, then memberships; fixed ids are placed before dynamic ones.
    let mut taken = Taken {
        uids: acc.users.iter().map(|u| u.uid).collect(),
        gids: acc.groups.iter().map(|g| g.gid).collect(),
    };
    // Explicit groups with fixed ids, then dynamic groups.
    for fixed in [true, false] {
        for (at, l) in &lines {
            if let SysLine::Group { name, gid } = l
                && gid.is_some() == fixed
                && acc.gid(name).is_none()
            {
                let gid = match gid {
                    Some(g) if !taken.gids.contains(g) => *g,
                    _ => taken.free_gid().unwrap_or(65534),
                };
                taken.gids.insert(gid);
                acc.groups.push(Group {
                    name: name.clone(),
                    gid,
                    members: Vec::new(),
                });
                acc.sources.insert(format!("group {name}"), at.clone());
            }
        }
    }
    for fixed in [true, false] {
        for (at, l) in &lines {
            if let SysLine::User { name, uid, .. } = l
                && uid.is_some() == fixed
                && acc.uid(name).is_none()
            {
                add_sysuser(&mut acc, &mut taken, at, l);
            }
        }
    }
    for (at, l) in &lines {
        if let SysLine::Member { user, group } = l {
            match acc.groups.iter_mut().find(|g| &g.name == group) {
                Some(g) if !g.members.contains(user) => g.members.push(user.clone()),
                Some(_) => {}
                None => acc
                    .unsupported
                    .push(format!("{at}: m {user} {group}: no such group")),
            }
        }
    }
    acc
}

/// The accounts already in the tree: an /etc/passwd there (a lower layer's setup) comes
/// first, so users keep their ids when a later layer adds sysusers.d files; master entries it
/// lacks are added after it, as update-passwd does.
fn from_files(root: &dyn RootView) -> Accounts {
    let read = |p: &str| root.read(p).and_then(|b| String::from_utf8(b).ok());
    let mut users: Vec<User> = read("/etc/passwd")
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    for u in read(PASSWD_MASTER)
        .map(|t| parse_passwd(&t))
        .unwrap_or_default()
    {
        if !users.iter().any(|x| x.name == u.name) {
            users.push(u);
        }
    }
    let mut groups: Vec<Group> = read("/etc/group")
        .map(|t| parse_group(&t))
        .unwrap_or_default();
    for g in read(GROUP_MASTER)
        .map(|t| parse_group(&t))
        .unwrap_or_default()
    {
        if !groups.iter().any(|x| x.name == g.name) {
            groups.push(g);
        }
    }
    Accounts {
        users,
        groups,
        kept_shadow: shadow_lines(read("/etc/shadow")),
        kept_gshadow: shadow_lines(read("/etc/gshadow")),
        ..Accounts::default()
    }
}

/// The lines of a shadow file by account name (a line without a name is dropped).
fn shadow_lines(text: Option<String>) -> BTreeMap<String, String> {
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, _) = l.split_once(':')?;
            (!name.is_empty()).then(|| (name.to_owned(), l.to_owned()))
        })
        .collect()
}

/// The understood lines of the sysusers.d files (`file:line`, line), then the recipe's users;
/// the lines not understood go to `unsupported`.
fn sysusers_lines(
    root: &dyn RootView,
    extra: &[ExtraUser],
    unsupported: &mut Vec<String>,
) -> Vec<(String, SysLine)> {
    let mut lines = Vec::new();
    for (path, text) in sysusers_files(root) {
        for (i, line) in text.lines().enumerate() {
            let at = format!("{path}:{}", i + 1);
            match parse_sysusers_line(line) {
                Ok(Some(l)) => lines.push((at, l)),
                Ok(None) => {}
                Err(()) => unsupported.push(format!("{at}: {}", line.trim())),
            }
        }
    }
    for u in extra {
        lines.push((
            "recipe".to_owned(),
            SysLine::User {
                name: u.name.clone(),
                uid: u.uid,
                gid: u.group.clone().map(IdRef::Name),
                gecos: u.gecos.clone(),
                home: Some(u.home.clone()),
                shell: Some(u.shell.clone()),
            },
        ));
    }
    lines
}

/// The ids in use while sysusers' lines are applied.
struct Taken {
    uids: BTreeSet<u32>,
    gids: BTreeSet<u32>,
}

impl Taken {
    /// The highest id of the dynamic range free as a uid, and as a gid too when `both`.
    fn free_uid(&self, both: bool) -> Option<u32> {
        (DYNAMIC_MIN..=DYNAMIC_MAX)
            .rev()
            .find(|id| !self.uids.contains(id) && (!both || !self.gids.contains(id)))
    }
    /// The highest id of the dynamic range free as a gid.
    fn free_gid(&self) -> Option<u32> {
        (DYNAMIC_MIN..=DYNAMIC_MAX)
            .rev()
            .find(|id| !self.gids.contains(id))
    }
}

/// Adds the user of a `u` line (and its group when missing), as systemd-sysusers does.
fn add_sysuser(acc: &mut Accounts, taken: &mut Taken, at: &str, line: &SysLine) {
    let SysLine::User {
        name,
        uid,
        gid,
        gecos,
        home,
        shell,
    } = line
    else {
        return;
    };
    let uid = match uid {
        Some(u) if !taken.uids.contains(u) => *u,
        // Same id for the user and its group when both are free, like sysusers.
        _ => taken
            .free_uid(acc.gid(name).is_none())
            .or_else(|| taken.free_uid(false))
            .unwrap_or(65534),
    };
    taken.uids.insert(uid);
    let gid = match gid {
        Some(IdRef::Num(g)) => *g,
        Some(IdRef::Name(g)) if acc.gid(g).is_some() => acc.gid(g).unwrap_or(0),
        other => {
            let group = match other {
                Some(IdRef::Name(g)) => g.clone(),
                _ => name.clone(),
            };
            match acc.gid(&group) {
                Some(g) => g,
                None => {
                    let g = if taken.gids.contains(&uid) {
                        taken.free_gid().unwrap_or(65534)
                    } else {
                        uid
                    };
                    taken.gids.insert(g);
                    acc.groups.push(Group {
                        name: group.clone(),
                        gid: g,
                        members: Vec::new(),
                    });
                    acc.sources.insert(format!("group {group}"), at.to_owned());
                    g
                }
            }
        }
    };
    acc.users.push(User {
        name: name.clone(),
        uid,
        gid,
        gecos: gecos.clone(),
        home: home.clone().unwrap_or_else(|| "/".to_owned()),
        shell: shell
            .clone()
            .unwrap_or_else(|| "/usr/sbin/nologin".to_owned()),
    });
    acc.sources.insert(format!("user {name}"), at.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::tree::{Effect, MemRoot};

    fn root() -> MemRoot {
        let mut r = MemRoot::new();
        r.file(
            PASSWD_MASTER,
            "root:*:0:0:root:/root:/bin/bash\nnobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        .file(
            GROUP_MASTER,
            "root:*:0:\nadm:*:4:\nshadow:*:42:\nnogroup:*:65534:\n",
        );
        r
    }

    #[test]
    fn sysusers_dynamic_and_fixed_ids_are_stable() {
        let mut r = root();
        r.file(
            "/usr/lib/sysusers.d/tomcat10.conf",
            "#Type Name ID GECOS Home Shell\nu tomcat - \"Apache Tomcat\" /var/lib/tomcat /usr/sbin/nologin\n",
        )
        .file(
            "/usr/lib/sysusers.d/a.conf",
            "g journal 999\nu fixed 500:adm \"Fixed\" /x\nu other -\nm other adm\nq weird\n",
        );
        let a = accounts(&r, &[]);
        assert_eq!(a.gid("journal"), Some(999));
        assert_eq!(a.uid("fixed"), Some(500));
        // 999 is taken as a gid, so the first dynamic user+group pair gets 998
        assert_eq!(a.uid("other"), Some(998));
        assert_eq!(a.gid("other"), Some(998));
        assert_eq!(a.uid("tomcat"), Some(997));
        assert_eq!(a.gid("tomcat"), Some(997));
        assert!(
            a.passwd()
                .contains("tomcat:x:997:997:Apache Tomcat:/var/lib/tomcat:/usr/sbin/nologin\n")
        );
        assert!(a.group().contains("adm:x:4:other\n"));
        assert_eq!(a.unsupported.len(), 1, "{:?}", a.unsupported);
        let e = a.effects();
        assert!(e.iter().any(|e| matches!(e, Effect::WriteFile { path, mode: 0o640, gid: 42, .. } if path == "/etc/shadow")));
        assert_eq!(accounts(&r, &[]), a);
    }

    #[test]
    fn ids_from_a_lower_layer_are_kept() {
        let mut r = root();
        r.file("/usr/lib/sysusers.d/tomcat10.conf", "u tomcat -\n");
        let lower = accounts(&r, &[]);
        assert_eq!(lower.uid("tomcat"), Some(999));
        // the next layer sees the lower layer's files and a new sysusers file sorting first
        r.file("/etc/passwd", lower.passwd())
            .file("/etc/group", lower.group())
            .file("/usr/lib/sysusers.d/a.conf", "u aaa -\n");
        let upper = accounts(&r, &[]);
        assert_eq!(upper.uid("tomcat"), Some(999));
        assert_eq!(upper.uid("aaa"), Some(998));
        assert_eq!(upper.users.len(), lower.users.len() + 1);
    }

    #[test]
    fn extra_users_from_the_recipe() {
        let a = accounts(
            &root(),
            &[ExtraUser {
                name: "app".into(),
                uid: Some(1000),
                group: None,
                gecos: String::new(),
                home: "/app".into(),
                shell: "/bin/sh".into(),
            }],
        );
        assert_eq!(a.uid("app"), Some(1000));
        assert_eq!(a.gid("app"), Some(1000));
        assert!(a.shadow().starts_with("root:*::0:99999:7:::\n"));
    }

    /// The shadow files as the tools write them: pwconv's `*` and aging for the masters'
    /// accounts, systemd-sysusers' `!*` without aging, the build's day as "last changed",
    /// and a lower layer's lines kept as they are.
    #[test]
    fn shadow_lines_as_the_tools_write_them() {
        let mut r = root();
        r.file(
            "/usr/lib/sysusers.d/tomcat10.conf",
            "u tomcat - \"Tomcat\" /var/lib/tomcat\n",
        );
        let mut a = accounts(&r, &[]);
        a.last_change = crate::rootfs::setup::userdb::last_change_day(1_735_689_600);
        let shadow = a.shadow();
        assert!(
            shadow.starts_with("root:*:20089:0:99999:7:::\n"),
            "{shadow}"
        );
        assert!(shadow.contains("\ntomcat:!*:20089::::::\n"), "{shadow}");
        let gshadow = a.gshadow();
        assert!(gshadow.starts_with("root:*::\n"), "{gshadow}");
        assert!(gshadow.contains("\ntomcat:!*::\n"), "{gshadow}");
        assert_eq!(crate::rootfs::setup::userdb::last_change_day(0), None);
        // The next layer keeps the lines, dates included, even with another clock.
        r.file("/etc/passwd", a.passwd())
            .file("/etc/group", a.group())
            .file("/etc/shadow", shadow.clone())
            .file("/etc/gshadow", gshadow.clone());
        let mut upper = accounts(&r, &[]);
        upper.last_change = Some(30000);
        assert_eq!(upper.shadow(), shadow);
        assert_eq!(upper.gshadow(), gshadow);
    }
}
