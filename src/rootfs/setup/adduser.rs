//! Accounts created by maintainer scripts: Debian's `adduser`/`addgroup` and shadow's
//! `useradd`/`groupadd`/`usermod -a -G`/`gpasswd -a`, read from the script text and applied
//! to the account database as the tools would, without running them.
//!
//! Id allocation follows the tools, because images built with and without stevedore should
//! agree on ids: adduser takes the first free id upwards from FIRST_SYSTEM_UID/GID (100), and
//! allocates the uid and the `--group` gid independently (xenial's `systemd-timesync` is
//! 100:102); shadow goes below the lowest used system id (from SYS_UID_MAX, 999) and above
//! the highest used normal id. The ranges and defaults come from the tree's
//! `/etc/adduser.conf`, `/etc/login.defs` and `/etc/default/useradd` when present.

use std::collections::BTreeSet;

use super::coverage::Status;
use super::rule::{Call, Context, Pass, Rule, Script, Verdict};
use super::tree::{RootView, normalize};
use super::userdb::{Accounts, Group, Home, User};

/// The programs whose commands [`parse`] understands.
pub const PROGRAMS: &[&str] = &[
    "adduser", "addgroup", "useradd", "groupadd", "usermod", "gpasswd",
];

/// The account commands: made before any other script command (see [`from_scripts`]), so
/// their run only gives the verdict.
pub const RULES: &[Rule] = &[
    Rule::named(PROGRAMS).run(run),
    Rule::named(&["usermod", "gpasswd"])
        .judge(|_, _| Some(Status::NotCovered("changes an account".into()))),
    Rule::named(&["adduser", "addgroup", "useradd", "groupadd"]).judge(declared),
];

/// The account commands of the scripts that run on a fresh install, in the order they run.
/// They are applied before any other script command, so a `chown tomcat7 …` in the same
/// postinst sees the user; branches that do not run on a fresh install, and commands whose
/// arguments are only known at run time, are left out.
pub fn from_scripts(scripts: &[Script<'_>]) -> Vec<ScriptAccountAt> {
    scripts
        .iter()
        .flat_map(Script::runs_on_install)
        .filter(|c| !c.cmd.unresolved && PROGRAMS.contains(&c.program()))
        .filter_map(|c| {
            Some(ScriptAccountAt {
                at: c.at(),
                account: parse(&c.cmd.words).ok()?,
            })
        })
        .collect()
}

/// The verdict on an account command [`from_scripts`] applied: reproduced, or what the tool
/// would have refused. A command [`parse`] does not understand is judged later, with why.
fn run(pass: &mut Pass<'_>, call: &Call<'_>) -> Verdict {
    if call.cmd.unresolved {
        return Verdict::Later(None);
    }
    let account = match parse(&call.cmd.words) {
        Ok(account) => account,
        Err(why) => return Verdict::Later(Some(why)),
    };
    let at = format!("{}: ", call.at());
    let failed = pass
        .accounts
        .unsupported
        .iter()
        .find_map(|u| u.strip_prefix(&at));
    let skel = matches!(
        account,
        ScriptAccount::User {
            create_home: true,
            alloc: Alloc::ShadowSystem | Alloc::ShadowNormal,
            ..
        }
    );
    Verdict::Now(match failed {
        Some(why) => Status::NotCovered(why.to_owned()),
        None if skel => {
            Status::NotCovered("useradd -m: the home is made, but /etc/skel is not copied".into())
        }
        None => Status::Reproduced(format!("accounts ({})", call.program())),
    })
}

/// An account command whose arguments are only known at run time: covered when its account
/// is declared (by a sysusers.d file, the recipe, or a lower layer).
fn declared(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let operands = call.operands();
    let name = operands.last().copied().unwrap_or("");
    Some(
        if ctx.accounts.uid(name).is_some() || ctx.accounts.gid(name).is_some() {
            Status::Reproduced(format!("accounts ({name} is declared)"))
        } else {
            Status::NotCovered(format!(
                "account {name} is not declared; add it to the recipe"
            ))
        },
    )
}

/// Which tool's rule picks a free id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alloc {
    /// `adduser --system`, `addgroup --system`: first free id from FIRST_SYSTEM_UID/GID up.
    AdduserSystem,
    /// `addgroup NAME`: first free id from FIRST_GID (1000) up.
    AdduserNormal,
    /// `useradd -r`, `groupadd -r`: below the lowest used id of SYS_UID_MIN..SYS_UID_MAX.
    ShadowSystem,
    /// `useradd`, `groupadd`: above the highest used id of UID_MIN..UID_MAX.
    ShadowNormal,
}

impl Alloc {
    fn adduser(self) -> bool {
        matches!(self, Alloc::AdduserSystem | Alloc::AdduserNormal)
    }
}

/// The primary group of a new user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryGroup {
    /// `adduser --system` without `--group`/`--ingroup`/`--gid`.
    Nogroup,
    /// A group named like the user, created when missing (`--group`, useradd's user groups).
    Own,
    Name(String),
    Gid(u32),
}

/// One understood account command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptAccount {
    User {
        name: String,
        uid: Option<u32>,
        group: PrimaryGroup,
        /// Supplementary groups (`useradd -G`).
        groups: Vec<String>,
        /// `None`: the tool's default.
        home: Option<String>,
        create_home: bool,
        shell: Option<String>,
        gecos: String,
        alloc: Alloc,
    },
    Group {
        name: String,
        gid: Option<u32>,
        alloc: Alloc,
    },
    /// `adduser USER GROUP`, `usermod -a -G G1,G2 USER`, `gpasswd -a USER GROUP`.
    Member { user: String, groups: Vec<String> },
}

/// A parsed command and where it was found (`tomcat7 postinst:33`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptAccountAt {
    pub at: String,
    pub account: ScriptAccount,
}

/// One option of a command line: long name, short letter, takes a value.
type Spec = (&'static str, Option<char>, bool);

/// getopt_long / Getopt::Long: `--name value`, `--name=value`, unambiguous prefixes of long
/// names, `-x value`, `-xvalue`, clustered short flags. Returns (long name, value) pairs and
/// the operands.
#[allow(clippy::type_complexity)]
fn getopt(
    prog: &str,
    args: &[String],
    spec: &[Spec],
) -> Result<(Vec<(&'static str, Option<String>)>, Vec<String>), String> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            operands.extend(it.by_ref().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (key, inline) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (long, None),
            };
            let exact = spec.iter().find(|s| s.0 == key);
            let prefixed: Vec<&Spec> = spec.iter().filter(|s| s.0.starts_with(key)).collect();
            let s = match (exact, prefixed.as_slice()) {
                (Some(s), _) => s,
                (None, [s]) => *s,
                _ => return Err(format!("{prog}: option --{key} is not reproduced")),
            };
            let value = if s.2 {
                Some(
                    inline
                        .or_else(|| it.next().cloned())
                        .ok_or_else(|| format!("{prog}: --{key} needs a value"))?,
                )
            } else {
                None
            };
            opts.push((s.0, value));
        } else if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (i, c) in shorts.char_indices() {
                let s = spec
                    .iter()
                    .find(|s| s.1 == Some(c))
                    .ok_or_else(|| format!("{prog}: option -{c} is not reproduced"))?;
                if s.2 {
                    let rest = &shorts[i + c.len_utf8()..];
                    let value = if rest.is_empty() {
                        it.next()
                            .cloned()
                            .ok_or_else(|| format!("{prog}: -{c} needs a value"))?
                    } else {
                        rest.to_owned()
                    };
                    opts.push((s.0, Some(value)));
                    break;
                }
                opts.push((s.0, None));
            }
        } else {
            operands.push(a.clone());
        }
    }
    Ok((opts, operands))
}

fn number(prog: &str, opt: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("{prog}: --{opt} {v} is not a number"))
}

/// Parses one account command (`words[0]` is the program). `Err` says what is not
/// reproduced; scripts whose commands fail are reported, not guessed at.
pub fn parse(words: &[String]) -> Result<ScriptAccount, String> {
    let prog = words.first().map(String::as_str).unwrap_or("");
    let args = words.get(1..).unwrap_or(&[]);
    match prog {
        "adduser" | "addgroup" => parse_adduser(prog, args),
        "useradd" => parse_useradd(args),
        "groupadd" => parse_groupadd(args),
        "usermod" => {
            let (opts, ops) = getopt(
                prog,
                args,
                &[("append", Some('a'), false), ("groups", Some('G'), true)],
            )?;
            let groups = opts
                .iter()
                .find(|o| o.0 == "groups")
                .and_then(|o| o.1.clone());
            match (opts.iter().any(|o| o.0 == "append"), groups, ops.as_slice()) {
                (true, Some(g), [user]) => Ok(ScriptAccount::Member {
                    user: user.clone(),
                    groups: split_groups(&g),
                }),
                _ => Err("usermod: only `usermod -a -G GROUPS USER` is reproduced".into()),
            }
        }
        "gpasswd" => match args {
            [a, user, group] if a == "-a" || a == "--add" => Ok(ScriptAccount::Member {
                user: user.clone(),
                groups: vec![group.clone()],
            }),
            _ => Err("gpasswd: only `gpasswd -a USER GROUP` is reproduced".into()),
        },
        _ => Err(format!("{prog} is not an account command")),
    }
}

fn split_groups(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_adduser(prog: &str, args: &[String]) -> Result<ScriptAccount, String> {
    const SPEC: &[Spec] = &[
        ("system", None, false),
        ("group", None, false),
        ("ingroup", None, true),
        ("home", None, true),
        ("no-create-home", None, false),
        ("shell", None, true),
        ("gecos", None, true),
        ("comment", None, true),
        ("uid", None, true),
        ("gid", None, true),
        // No effect on the files: messages, name checks, password prompts (system users
        // get no password either way).
        ("quiet", Some('q'), false),
        ("debug", None, false),
        ("force-badname", None, false),
        ("allow-badname", None, false),
        ("allow-bad-names", None, false),
        ("disabled-password", None, false),
        ("disabled-login", None, false),
    ];
    let (opts, names) = getopt(prog, args, SPEC)?;
    let has = |k: &str| opts.iter().any(|o| o.0 == k);
    let val = |k: &str| {
        opts.iter()
            .rev()
            .find(|o| o.0 == k)
            .and_then(|o| o.1.clone())
    };
    let system = has("system");
    let uid = val("uid").map(|v| number(prog, "uid", &v)).transpose()?;
    let gid = val("gid").map(|v| number(prog, "gid", &v)).transpose()?;
    if names.len() == 2 {
        if system || has("group") {
            return Err(format!(
                "{prog}: only one name is allowed with --system/--group"
            ));
        }
        return Ok(ScriptAccount::Member {
            user: names[0].clone(),
            groups: vec![names[1].clone()],
        });
    }
    let [name] = names.as_slice() else {
        return Err(format!("{prog}: expects one or two names"));
    };
    let name = name.clone();
    if prog == "addgroup" || (has("group") && !system) {
        return Ok(ScriptAccount::Group {
            name,
            gid,
            alloc: if system {
                Alloc::AdduserSystem
            } else {
                Alloc::AdduserNormal
            },
        });
    }
    if !system {
        return Err(
            "adduser without --system makes a login user (interactive): not reproduced".into(),
        );
    }
    let ingroup = val("ingroup");
    if usize::from(has("group")) + usize::from(ingroup.is_some()) + usize::from(gid.is_some()) > 1 {
        return Err("adduser: --group, --ingroup and --gid are mutually exclusive".into());
    }
    let group = match (has("group"), ingroup, gid) {
        (true, _, _) => PrimaryGroup::Own,
        (_, Some(g), _) => PrimaryGroup::Name(g),
        (_, _, Some(g)) => PrimaryGroup::Gid(g),
        _ => PrimaryGroup::Nogroup,
    };
    Ok(ScriptAccount::User {
        name,
        uid,
        group,
        groups: Vec::new(),
        home: val("home"),
        create_home: !has("no-create-home"),
        shell: val("shell"),
        gecos: val("gecos")
            .or_else(|| val("comment"))
            .map(chfn)
            .unwrap_or_default(),
        alloc: Alloc::AdduserSystem,
    })
}

/// adduser sets the GECOS with `chfn -f NAME [-r ROOM ...]`, which writes all four
/// comma-separated fields: "systemd Time Synchronization,,,".
fn chfn(gecos: String) -> String {
    let mut parts: Vec<&str> = gecos.split(',').collect();
    while parts.len() < 4 {
        parts.push("");
    }
    parts.join(",")
}

fn parse_useradd(args: &[String]) -> Result<ScriptAccount, String> {
    const SPEC: &[Spec] = &[
        ("system", Some('r'), false),
        ("gid", Some('g'), true),
        ("groups", Some('G'), true),
        ("home-dir", Some('d'), true),
        ("shell", Some('s'), true),
        ("uid", Some('u'), true),
        ("comment", Some('c'), true),
        ("no-create-home", Some('M'), false),
        ("create-home", Some('m'), false),
        ("user-group", Some('U'), false),
        ("no-user-group", Some('N'), false),
        ("non-unique", Some('o'), false),
        ("no-log-init", Some('l'), false),
    ];
    let (opts, names) = getopt("useradd", args, SPEC)?;
    let has = |k: &str| opts.iter().any(|o| o.0 == k);
    let val = |k: &str| {
        opts.iter()
            .rev()
            .find(|o| o.0 == k)
            .and_then(|o| o.1.clone())
    };
    let [name] = names.as_slice() else {
        return Err("useradd: expects one name".into());
    };
    let group = match val("gid") {
        Some(g) => match g.parse() {
            Ok(n) => PrimaryGroup::Gid(n),
            Err(_) => PrimaryGroup::Name(g),
        },
        // GROUP of /etc/default/useradd; Debian's is 100 (users).
        None if has("no-user-group") => PrimaryGroup::Gid(100),
        // USERGROUPS_ENAB is yes in Debian's login.defs.
        None => PrimaryGroup::Own,
    };
    Ok(ScriptAccount::User {
        name: name.clone(),
        uid: val("uid")
            .map(|v| number("useradd", "uid", &v))
            .transpose()?,
        group,
        groups: val("groups").map(|g| split_groups(&g)).unwrap_or_default(),
        home: val("home-dir"),
        // CREATE_HOME is unset in Debian's login.defs: no home without -m.
        create_home: has("create-home") && !has("no-create-home"),
        shell: val("shell"),
        gecos: val("comment").unwrap_or_default(),
        alloc: if has("system") {
            Alloc::ShadowSystem
        } else {
            Alloc::ShadowNormal
        },
    })
}

fn parse_groupadd(args: &[String]) -> Result<ScriptAccount, String> {
    const SPEC: &[Spec] = &[
        ("system", Some('r'), false),
        ("gid", Some('g'), true),
        // -f: succeed when the group exists, which is what happens here anyway.
        ("force", Some('f'), false),
        ("non-unique", Some('o'), false),
    ];
    let (opts, names) = getopt("groupadd", args, SPEC)?;
    let [name] = names.as_slice() else {
        return Err("groupadd: expects one name".into());
    };
    let system = opts.iter().any(|o| o.0 == "system");
    Ok(ScriptAccount::Group {
        name: name.clone(),
        gid: opts
            .iter()
            .rev()
            .find(|o| o.0 == "gid")
            .and_then(|o| o.1.as_deref())
            .map(|v| number("groupadd", "gid", v))
            .transpose()?,
        alloc: if system {
            Alloc::ShadowSystem
        } else {
            Alloc::ShadowNormal
        },
    })
}

/// The tools' settings, from the tree's configuration files or their built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// adduser: FIRST_SYSTEM_UID..LAST_SYSTEM_UID, FIRST_SYSTEM_GID..LAST_SYSTEM_GID,
    /// FIRST_GID..LAST_GID.
    pub adduser_sys_uids: (u32, u32),
    pub adduser_sys_gids: (u32, u32),
    pub adduser_gids: (u32, u32),
    /// Home of `adduser --system` without `--home`: `None` for DHOME/NAME (adduser before
    /// 3.122, xenial), else a fixed path (`/nonexistent` since).
    pub adduser_home: Option<String>,
    pub adduser_dhome: String,
    /// `/bin/false` before adduser 3.122, `/usr/sbin/nologin` since.
    pub adduser_shell: String,
    /// Mode of a home adduser creates for a system user (SYS_DIR_MODE, 0755).
    pub adduser_dir_mode: u32,
    /// shadow: SYS_UID_MIN..SYS_UID_MAX, UID_MIN..UID_MAX and the same for gids.
    pub sys_uids: (u32, u32),
    pub sys_gids: (u32, u32),
    pub uids: (u32, u32),
    pub gids: (u32, u32),
    /// useradd: HOME and SHELL of /etc/default/useradd.
    pub useradd_home: String,
    pub useradd_shell: String,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            adduser_sys_uids: (100, 999),
            adduser_sys_gids: (100, 999),
            adduser_gids: (1000, 59999),
            adduser_home: Some("/nonexistent".into()),
            adduser_dhome: "/home".into(),
            adduser_shell: "/usr/sbin/nologin".into(),
            adduser_dir_mode: 0o755,
            sys_uids: (101, 999),
            sys_gids: (101, 999),
            uids: (1000, 60000),
            gids: (1000, 60000),
            useradd_home: "/home".into(),
            useradd_shell: "/bin/sh".into(),
        }
    }
}

/// `KEY=value` (adduser.conf, default/useradd) or `KEY value` (login.defs) settings.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(|c: char| c == '=' || c.is_whitespace())?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

impl Defaults {
    /// Reads the tools' configuration from the tree. adduser's defaults for system users
    /// changed in 3.122 (home `/nonexistent`, shell `/usr/sbin/nologin`) without a setting,
    /// so they are read from the `adduser` program itself when it is in the tree.
    pub fn from_root(root: &dyn RootView) -> Defaults {
        let read = |p: &str| root.read(p).and_then(|b| String::from_utf8(b).ok());
        let mut d = Defaults::default();
        // adduser.conf is a conffile in /etc since 3.122; xenial's postinst copies it there
        // from /usr/share/adduser.
        let conf = read("/etc/adduser.conf").or_else(|| read("/usr/share/adduser/adduser.conf"));
        let num = |v: &str| v.parse::<u32>().ok();
        for (k, v) in settings(&conf.unwrap_or_default()) {
            match k.as_str() {
                "FIRST_SYSTEM_UID" => {
                    d.adduser_sys_uids.0 = num(&v).unwrap_or(d.adduser_sys_uids.0)
                }
                "LAST_SYSTEM_UID" => d.adduser_sys_uids.1 = num(&v).unwrap_or(d.adduser_sys_uids.1),
                "FIRST_SYSTEM_GID" => {
                    d.adduser_sys_gids.0 = num(&v).unwrap_or(d.adduser_sys_gids.0)
                }
                "LAST_SYSTEM_GID" => d.adduser_sys_gids.1 = num(&v).unwrap_or(d.adduser_sys_gids.1),
                "FIRST_GID" => d.adduser_gids.0 = num(&v).unwrap_or(d.adduser_gids.0),
                "LAST_GID" => d.adduser_gids.1 = num(&v).unwrap_or(d.adduser_gids.1),
                "DHOME" => d.adduser_dhome = v,
                "SYS_DIR_MODE" => d.adduser_dir_mode = u32::from_str_radix(&v, 8).unwrap_or(0o755),
                _ => {}
            }
        }
        if let Some(script) = read("/usr/sbin/adduser") {
            let quoted = |line: &str| {
                line.rsplit('\'')
                    .nth(1)
                    .filter(|s| s.starts_with('/'))
                    .map(str::to_owned)
            };
            // The first of these lines is the system-user branch in every version.
            if let Some(l) = script
                .lines()
                .find(|l| l.contains("$home_dir = $special_home"))
            {
                d.adduser_home = quoted(l);
            }
            if let Some(s) = script
                .lines()
                .find(|l| l.contains("$shell = $special_shell"))
                .and_then(quoted)
            {
                d.adduser_shell = s;
            }
        }
        for (k, v) in settings(&read("/etc/login.defs").unwrap_or_default()) {
            let slot = match k.as_str() {
                "SYS_UID_MIN" => &mut d.sys_uids.0,
                "SYS_UID_MAX" => &mut d.sys_uids.1,
                "SYS_GID_MIN" => &mut d.sys_gids.0,
                "SYS_GID_MAX" => &mut d.sys_gids.1,
                "UID_MIN" => &mut d.uids.0,
                "UID_MAX" => &mut d.uids.1,
                "GID_MIN" => &mut d.gids.0,
                "GID_MAX" => &mut d.gids.1,
                _ => continue,
            };
            if let Some(n) = num(&v) {
                *slot = n;
            }
        }
        for (k, v) in settings(&read("/etc/default/useradd").unwrap_or_default()) {
            match k.as_str() {
                "HOME" => d.useradd_home = v,
                "SHELL" => d.useradd_shell = v,
                _ => {}
            }
        }
        d
    }

    fn range(&self, alloc: Alloc, user: bool) -> (u32, u32) {
        match (alloc, user) {
            (Alloc::AdduserSystem, true) => self.adduser_sys_uids,
            (Alloc::AdduserSystem, false) => self.adduser_sys_gids,
            // `adduser` without --system is refused by the parser; only groups get here.
            (Alloc::AdduserNormal, _) => self.adduser_gids,
            (Alloc::ShadowSystem, true) => self.sys_uids,
            (Alloc::ShadowSystem, false) => self.sys_gids,
            (Alloc::ShadowNormal, true) => self.uids,
            (Alloc::ShadowNormal, false) => self.gids,
        }
    }
}

/// A free id in `lo..=hi` by `alloc`'s rule: adduser's first free one; shadow's
/// find_new_uid/gid (below the lowest used system id, above the highest used normal id,
/// falling back to the highest/lowest free one).
fn free_id(taken: &BTreeSet<u32>, (lo, hi): (u32, u32), alloc: Alloc) -> Option<u32> {
    let used = || taken.range(lo..=hi);
    let free = |id: &u32| !taken.contains(id);
    match alloc {
        Alloc::AdduserSystem | Alloc::AdduserNormal => (lo..=hi).find(free),
        Alloc::ShadowSystem => used()
            .next()
            .map_or(Some(hi), |l| l.checked_sub(1).filter(|id| *id >= lo))
            .or_else(|| (lo..=hi).rev().find(free)),
        Alloc::ShadowNormal => used()
            .next_back()
            .map_or(Some(lo), |h| h.checked_add(1).filter(|id| *id <= hi))
            .or_else(|| (lo..=hi).find(free)),
    }
}

/// Applies one command to `acc`. A command whose account exists already is a no-op (what
/// the `getent`/`id` guards around it, or adduser's own check, make of it). `Err` when the
/// tool would fail (a missing group, an id in use, the range exhausted).
pub fn apply(
    acc: &mut Accounts,
    root: &dyn RootView,
    defaults: &Defaults,
    account: &ScriptAccount,
) -> Result<(), String> {
    match account {
        ScriptAccount::Group { name, gid, alloc } => {
            if acc.gid(name).is_some() {
                return Ok(());
            }
            let taken_gids: BTreeSet<u32> = acc.groups.iter().map(|g| g.gid).collect();
            let gid = match gid {
                Some(g) if taken_gids.contains(g) => {
                    return Err(format!("gid {g} for group {name} is already used"));
                }
                Some(g) => *g,
                None => free_id(&taken_gids, defaults.range(*alloc, false), *alloc)
                    .ok_or_else(|| exhausted("gid", name))?,
            };
            acc.groups.push(Group {
                name: name.clone(),
                gid,
                members: Vec::new(),
            });
        }
        ScriptAccount::User { name, .. } => {
            if acc.uid(name).is_some() {
                return Ok(());
            }
            apply_user(acc, root, defaults, account)?;
        }
        ScriptAccount::Member { user, groups } => {
            if acc.uid(user).is_none() {
                return Err(format!("user {user} does not exist"));
            }
            if let Some(g) = groups.iter().find(|g| acc.gid(g).is_none()) {
                return Err(format!("group {g} does not exist"));
            }
            for g in groups {
                add_member(acc, user, g);
            }
        }
    }
    Ok(())
}

fn exhausted(what: &str, name: &str) -> String {
    format!("no free {what} for {name}")
}

/// A new user: its ids, its primary group (created when it is its own), the tool's default
/// home and shell, its supplementary groups and the home it creates.
fn apply_user(
    acc: &mut Accounts,
    root: &dyn RootView,
    defaults: &Defaults,
    account: &ScriptAccount,
) -> Result<(), String> {
    let ScriptAccount::User {
        name,
        uid,
        group,
        groups,
        home,
        create_home,
        shell,
        gecos,
        alloc,
    } = account
    else {
        return Ok(());
    };
    if let Some(g) = groups.iter().find(|g| acc.gid(g).is_none()) {
        return Err(format!("group {g} does not exist"));
    }
    let taken_uids: BTreeSet<u32> = acc.users.iter().map(|u| u.uid).collect();
    let uid = match uid {
        Some(u) if taken_uids.contains(u) => {
            return Err(format!("uid {u} for user {name} is already used"));
        }
        Some(u) => *u,
        None => free_id(&taken_uids, defaults.range(*alloc, true), *alloc)
            .ok_or_else(|| exhausted("uid", name))?,
    };
    let gid = primary_gid(acc, defaults, name, uid, group, *alloc)?;
    let home = match (home, alloc.adduser(), &defaults.adduser_home) {
        (Some(h), _, _) => h.clone(),
        (None, true, Some(h)) => h.clone(),
        (None, true, None) => format!("{}/{name}", defaults.adduser_dhome),
        (None, false, _) => format!("{}/{name}", defaults.useradd_home),
    };
    let shell = shell.clone().unwrap_or_else(|| {
        if alloc.adduser() {
            defaults.adduser_shell.clone()
        } else {
            defaults.useradd_shell.clone()
        }
    });
    for g in groups {
        add_member(acc, name, g);
    }
    if *create_home {
        let mode = if alloc.adduser() {
            defaults.adduser_dir_mode
        } else {
            0o755
        };
        add_home(acc, root, &home, mode, uid, gid);
    }
    acc.users.push(User {
        name: name.clone(),
        uid,
        gid,
        gecos: gecos.clone(),
        home,
        shell,
    });
    Ok(())
}

/// The gid of a new user's primary group, adding the group when it is the user's own and
/// missing.
fn primary_gid(
    acc: &mut Accounts,
    defaults: &Defaults,
    name: &str,
    uid: u32,
    group: &PrimaryGroup,
    alloc: Alloc,
) -> Result<u32, String> {
    Ok(match group {
        PrimaryGroup::Nogroup => acc.gid("nogroup").unwrap_or(65534),
        PrimaryGroup::Gid(g) => *g,
        PrimaryGroup::Name(g) => acc
            .gid(g)
            .ok_or_else(|| format!("group {g} does not exist"))?,
        PrimaryGroup::Own => match acc.gid(name) {
            Some(g) => g,
            None => {
                let taken_gids: BTreeSet<u32> = acc.groups.iter().map(|g| g.gid).collect();
                // adduser picks the gid on its own; useradd prefers the uid.
                let range = defaults.range(alloc, false);
                let g = if !alloc.adduser() && !taken_gids.contains(&uid) {
                    uid
                } else {
                    free_id(&taken_gids, range, alloc).ok_or_else(|| exhausted("gid", name))?
                };
                acc.groups.push(Group {
                    name: name.to_owned(),
                    gid: g,
                    members: Vec::new(),
                });
                g
            }
        },
    })
}

/// The home a tool creates, with the parents `mkdir -p` would make. adduser 3.122+ never
/// creates /nonexistent; older ones would, but every caller passes --no-create-home with it.
fn add_home(acc: &mut Accounts, root: &dyn RootView, home: &str, mode: u32, uid: u32, gid: u32) {
    let home_path = normalize(home);
    if home_path == "/nonexistent"
        || root.exists(&home_path)
        || acc.homes.iter().any(|h| h.path == home_path)
    {
        return;
    }
    let mut parents = Vec::new();
    let mut p = home_path.as_str();
    while let Some((parent, _)) = p.rsplit_once('/') {
        if parent.is_empty() || root.exists(parent) || acc.homes.iter().any(|h| h.path == parent) {
            break;
        }
        parents.push(parent.to_owned());
        p = parent;
    }
    for parent in parents.into_iter().rev() {
        acc.homes.push(Home {
            path: parent,
            mode: 0o755,
            uid: 0,
            gid: 0,
        });
    }
    acc.homes.push(Home {
        path: home_path,
        mode,
        uid,
        gid,
    });
}

fn add_member(acc: &mut Accounts, user: &str, group: &str) {
    if let Some(g) = acc.groups.iter_mut().find(|g| g.name == group)
        && !g.members.iter().any(|m| m == user)
    {
        g.members.push(user.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(
            parse(&w("addgroup --system tomcat7 --quiet")).unwrap(),
            ScriptAccount::Group {
                name: "tomcat7".into(),
                gid: None,
                alloc: Alloc::AdduserSystem
            }
        );
        let ScriptAccount::User {
            group,
            home,
            create_home,
            gecos,
            ..
        } = parse(&w(
            "adduser --quiet --system --group --no-create-home --home=/run/systemd --gecos Time x",
        ))
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(group, PrimaryGroup::Own);
        assert_eq!(home.as_deref(), Some("/run/systemd"));
        assert!(!create_home);
        assert_eq!(gecos, "Time,,,");
        assert_eq!(
            parse(&w("adduser tomcat7 adm")).unwrap(),
            ScriptAccount::Member {
                user: "tomcat7".into(),
                groups: vec!["adm".into()]
            }
        );
        assert_eq!(
            parse(&w("usermod -a -G adm,audio app")).unwrap(),
            ScriptAccount::Member {
                user: "app".into(),
                groups: vec!["adm".into(), "audio".into()]
            }
        );
        let ScriptAccount::User {
            uid,
            group,
            alloc,
            create_home,
            shell,
            ..
        } = parse(&w("useradd -rM -u 123 -g users -s /bin/false svc")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (uid, group, alloc, create_home, shell.as_deref()),
            (
                Some(123),
                PrimaryGroup::Name("users".into()),
                Alloc::ShadowSystem,
                false,
                Some("/bin/false")
            )
        );
        assert!(parse(&w("adduser --encrypt-home x")).is_err());
        assert!(parse(&w("adduser bob")).is_err());
        assert!(parse(&w("usermod -s /bin/sh bob")).is_err());
    }

    #[test]
    fn shadow_and_adduser_pick_ids_their_way() {
        let taken: BTreeSet<u32> = [0, 100, 101, 998, 999].into();
        assert_eq!(free_id(&taken, (100, 999), Alloc::AdduserSystem), Some(102));
        // below the lowest used system id would be 99: out of range, so the highest free
        assert_eq!(free_id(&taken, (101, 999), Alloc::ShadowSystem), Some(997));
        let taken: BTreeSet<u32> = [0, 999].into();
        assert_eq!(free_id(&taken, (101, 999), Alloc::ShadowSystem), Some(998));
        assert_eq!(
            free_id(&taken, (1000, 60000), Alloc::ShadowNormal),
            Some(1000)
        );
    }
}
