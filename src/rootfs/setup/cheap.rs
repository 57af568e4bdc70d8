//! Fixed effects of essential packages whose scripts are built from shell functions with
//! positional arguments (base-files' `install_directory mnt 755 root`, libc-bin's
//! `install_from_default`, debianutils' `update-shells`), which [`super::shell`] does not
//! execute. Each rule runs only when the package's own data is in the root, copies the
//! package's shipped templates, and is named so the coverage report can cite it.

use std::collections::BTreeSet;

use super::coverage::Status;
use super::tree::{Effect, RootView};
use super::userdb::Accounts;

/// A file command of a package a rule here replaces, that nothing else covers: what the
/// rule reproduces (the command is one of the postinst's own steps).
pub fn replaced(
    package: &str,
    program: &str,
    rule_packages: &BTreeSet<String>,
    status: Status,
) -> Status {
    if let Status::NotCovered(_) = status
        && rule_packages.contains(package)
        && matches!(
            program,
            "cp" | "mkdir" | "chown" | "chmod" | "ln" | "mv" | "touch" | "rmdir" | "update-shells"
        )
    {
        return Status::Reproduced(format!("rule {package}"));
    }
    status
}

/// A named group of effects (`base-files`, `libc-bin`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The package whose postinst this replaces.
    pub package: &'static str,
    pub effects: Vec<Effect>,
}

/// All rules whose package is present in `root`.
pub fn rules(root: &dyn RootView, accounts: &Accounts) -> Vec<Rule> {
    [
        base_files(root, accounts),
        libc_bin(root),
        debianutils(root),
        apt(root, accounts),
        tzdata(root),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn copy_if(root: &dyn RootView, src: &str, dest: &str, mode: u32, out: &mut Vec<Effect>) {
    if let Some(bytes) = root.read(src)
        && !root.exists(dest)
    {
        out.push(Effect::file(dest, bytes, mode));
    }
}

/// base-files' postinst on a fresh install (`configure` with no old version).
pub fn base_files(root: &dyn RootView, accounts: &Accounts) -> Option<Rule> {
    const D: &str = "/usr/share/base-files";
    if !root.exists(&format!("{D}/profile")) {
        return None;
    }
    let gid = |g: &str, default: u32| accounts.gid(g).unwrap_or(default);
    let mut e = Vec::new();
    if !root.exists("/etc/dpkg/origins/default") && root.exists("/etc/dpkg/origins/debian") {
        e.push(Effect::symlink("/etc/dpkg/origins/default", "debian"));
    }
    copy_if(
        root,
        &format!("{D}/dot.profile"),
        "/root/.profile",
        0o644,
        &mut e,
    );
    copy_if(
        root,
        &format!("{D}/dot.bashrc"),
        "/root/.bashrc",
        0o644,
        &mut e,
    );
    copy_if(root, &format!("{D}/profile"), "/etc/profile", 0o644, &mut e);
    copy_if(root, &format!("{D}/motd"), "/etc/motd", 0o644, &mut e);
    for d in ["/mnt", "/srv", "/opt", "/etc/opt", "/var/opt", "/media"] {
        e.push(Effect::dir(d, 0o755, 0, 0));
    }
    e.push(Effect::dir("/var/mail", 0o2775, 0, gid("mail", 8)));
    e.push(Effect::symlink("/var/spool/mail", "../mail"));
    e.push(Effect::dir("/run/lock", 0o1777, 0, 0));
    e.push(Effect::symlink("/var/run", "/run"));
    e.push(Effect::symlink("/var/lock", "/run/lock"));
    // install_local_dir: root:staff 2775 only when /etc/staff-group-for-usr-local exists.
    let (mode, group) = if root.exists("/etc/staff-group-for-usr-local") {
        (0o2775, gid("staff", 50))
    } else {
        (0o755, 0)
    };
    for d in [
        "",
        "/share",
        "/share/man",
        "/bin",
        "/games",
        "/lib",
        "/include",
        "/sbin",
        "/src",
        "/etc",
    ] {
        e.push(Effect::dir(&format!("/usr/local{d}"), mode, 0, group));
    }
    e.push(Effect::symlink("/usr/local/man", "share/man"));
    let utmp = gid("utmp", 43);
    for (f, mode) in [
        ("/var/log/wtmp", 0o664),
        ("/var/log/btmp", 0o660),
        ("/var/log/lastlog", 0o664),
    ] {
        e.push(Effect::WriteFile {
            path: f.to_owned(),
            bytes: Vec::new(),
            mode,
            uid: 0,
            gid: utmp,
        });
    }
    if root.exists("/usr/share/info") && !root.exists("/usr/share/info/dir") {
        copy_if(
            root,
            &format!("{D}/info.dir"),
            "/usr/share/info/dir",
            0o644,
            &mut e,
        );
    }
    Some(Rule {
        package: "base-files",
        effects: e,
    })
}

/// libc-bin: `/etc/nsswitch.conf` from its template. (Its `ldconfig` trigger is
/// [`super::ldcache`].)
pub fn libc_bin(root: &dyn RootView) -> Option<Rule> {
    let mut e = Vec::new();
    copy_if(
        root,
        "/usr/share/libc-bin/nsswitch.conf",
        "/etc/nsswitch.conf",
        0o644,
        &mut e,
    );
    (!e.is_empty()).then_some(Rule {
        package: "libc-bin",
        effects: e,
    })
}

/// debianutils: `/etc/shells` as `update-shells` writes it on merged /usr: the template, then
/// each shell of the template and of `shells.d/*` (C order), each followed by its `/usr` form
/// when it lives in `/bin` or `/sbin`; `/var/lib/shells.state` lists the same shells.
pub fn debianutils(root: &dyn RootView) -> Option<Rule> {
    const T: &str = "/usr/share/debianutils/shells";
    let template = String::from_utf8(root.read(T)?).ok()?;
    let mut sources = vec![template.clone()];
    for name in root.list_dir("/usr/share/debianutils/shells.d") {
        if let Some(t) = root
            .read(&format!("/usr/share/debianutils/shells.d/{name}"))
            .and_then(|b| String::from_utf8(b).ok())
        {
            sources.push(t);
        }
    }
    let mut shells: Vec<String> = Vec::new();
    for text in &sources {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut add = vec![line.to_owned()];
            if line.starts_with("/bin/") || line.starts_with("/sbin/") {
                add.push(format!("/usr{line}"));
            }
            for s in add {
                if !shells.contains(&s) {
                    shells.push(s);
                }
            }
        }
    }
    let mut etc: String = template
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let state: String = shells.iter().map(|s| format!("{s}\n")).collect();
    etc.push_str(&state);
    Some(Rule {
        package: "debianutils",
        effects: vec![
            Effect::file("/etc/shells", etc.into_bytes(), 0o644),
            Effect::file("/var/lib/shells.state", state.into_bytes(), 0o644),
        ],
    })
}

/// apt: its download dirs belong to `_apt` (the user base-passwd ships in bookworm). Its
/// `extended_states` is [`super::dpkgstate::extended_states`].
pub fn apt(root: &dyn RootView, accounts: &Accounts) -> Option<Rule> {
    if !root.exists("/usr/bin/apt-get") {
        return None;
    }
    let uid = accounts.uid("_apt")?;
    let mut e = Vec::new();
    for d in [
        "/var/cache/apt/archives/partial",
        "/var/lib/apt/lists/partial",
    ] {
        e.push(Effect::dir(d, 0o700, uid, 0));
    }
    Some(Rule {
        package: "apt",
        effects: e,
    })
}

/// The zone a fresh tzdata install configures: its `config` script answers debconf from
/// `/etc/timezone` or `/etc/localtime` when they exist and falls back to `Etc/UTC` (the
/// templates have no default), which a container build never preseeds.
pub const DEFAULT_ZONE: &str = "Etc/UTC";

/// tzdata: `/etc/localtime` → the zone file and `/etc/timezone` naming it, as its postinst
/// writes them with the debconf answer ([`DEFAULT_ZONE`]). Without them glibc also falls
/// back to UTC, but `date +%Z`, Java's `user.timezone` and anything reading `/etc/timezone`
/// would see no zone at all. A tree that already has `/etc/localtime` (a base image's
/// choice) keeps it, as the config script would.
pub fn tzdata(root: &dyn RootView) -> Option<Rule> {
    let zonefile = format!("/usr/share/zoneinfo/{DEFAULT_ZONE}");
    if !root.exists(&zonefile) || root.exists("/etc/localtime") {
        return None;
    }
    Some(Rule {
        package: "tzdata",
        effects: vec![
            Effect::symlink("/etc/localtime", &zonefile),
            Effect::file(
                "/etc/timezone",
                format!("{DEFAULT_ZONE}\n").into_bytes(),
                0o644,
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::tree::MemRoot;

    #[test]
    fn shells_on_merged_usr() {
        let mut r = MemRoot::new();
        r.file(
            "/usr/share/debianutils/shells",
            "# /etc/shells: valid login shells\n/bin/sh\n",
        )
        .file(
            "/usr/share/debianutils/shells.d/bash",
            "/bin/bash\n/bin/rbash\n",
        );
        let rule = debianutils(&r).unwrap();
        match &rule.effects[0] {
            Effect::WriteFile { bytes, .. } => assert_eq!(
                String::from_utf8_lossy(bytes),
                "# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/rbash\n/usr/bin/rbash\n"
            ),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn tzdata_defaults_to_utc_unless_the_tree_has_a_zone() {
        let mut r = MemRoot::new();
        assert!(tzdata(&r).is_none());
        r.file("/usr/share/zoneinfo/Etc/UTC", "TZif2");
        let rule = tzdata(&r).unwrap();
        assert_eq!(
            rule.effects,
            [
                Effect::symlink("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC"),
                Effect::file("/etc/timezone", b"Etc/UTC\n".to_vec(), 0o644),
            ]
        );
        r.other("/etc/localtime");
        assert!(tzdata(&r).is_none());
    }

    #[test]
    fn base_files_modes() {
        let mut r = MemRoot::new();
        r.file("/usr/share/base-files/profile", "p")
            .file("/usr/share/base-files/dot.bashrc", "b");
        let rule = base_files(&r, &Accounts::default()).unwrap();
        assert!(
            rule.effects
                .contains(&Effect::dir("/var/mail", 0o2775, 0, 8))
        );
        assert!(
            rule.effects
                .contains(&Effect::dir("/run/lock", 0o1777, 0, 0))
        );
        assert!(
            rule.effects
                .contains(&Effect::file("/etc/profile", b"p".to_vec(), 0o644))
        );
        assert!(rule.effects.contains(&Effect::symlink("/var/run", "/run")));
    }
}
