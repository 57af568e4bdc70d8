//! `tmpfiles.d` entries (`/usr/lib/tmpfiles.d/*.conf`, `/etc/tmpfiles.d` overriding by name):
//! what `systemd-tmpfiles --create` does at install time (tomcat10's postinst runs it for
//! `/var/log/tomcat10 2770 tomcat adm`). Supported: `d`/`D` (directory), `z`/`Z` (owner and
//! mode of an existing path, `Z` recursive), `L` (symlink), `f` (file if missing). Other
//! types (`r`, `R`, `x`, `w`, `e`, `a`, ...) and `%` specifiers are reported, not applied.

use std::collections::BTreeMap;

use super::coverage::Status;
use super::rule::Rule;
use super::tree::{Effect, RootView};
use super::userdb::Accounts;

/// `systemd-tmpfiles --create` in a postinst: what [`tmpfiles`] applied.
pub const RULES: &[Rule] = &[Rule::named(&["systemd-tmpfiles"])
    .judge(|_, ctx| (!ctx.tmpfiles.is_empty()).then(|| Status::Reproduced("tmpfiles.d".into())))];

pub const DIRS: &[&str] = &["/usr/lib/tmpfiles.d", "/etc/tmpfiles.d"];

/// Effects, and the lines not applied (`file:line: text (why)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tmpfiles {
    pub effects: Vec<Effect>,
    pub unsupported: Vec<String>,
    /// Conf file names that were applied (`tomcat10.conf`).
    pub files: Vec<String>,
}

pub fn tmpfiles(root: &dyn RootView, accounts: &Accounts) -> Tmpfiles {
    let mut by_name = BTreeMap::new();
    for dir in DIRS {
        for name in root.list_dir(dir) {
            if name.ends_with(".conf") {
                by_name.insert(name.clone(), format!("{dir}/{name}"));
            }
        }
    }
    let mut out = Tmpfiles::default();
    for (name, path) in by_name {
        let Some(text) = root.read(&path).and_then(|b| String::from_utf8(b).ok()) else {
            continue;
        };
        out.files.push(name);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{path}:{}: {line}", i + 1);
            match parse_line(line, accounts, root) {
                Ok(Some(e)) => out.effects.push(e),
                Ok(None) => {}
                Err(why) => out.unsupported.push(format!("{at} ({why})")),
            }
        }
    }
    out
}

fn parse_line(
    line: &str,
    accounts: &Accounts,
    root: &dyn RootView,
) -> Result<Option<Effect>, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let field = |i: usize| f.get(i).copied().filter(|s| *s != "-");
    let ty = f.first().ok_or("empty")?;
    if ty.contains('!') {
        return Ok(None); // boot-only lines: never at install time
    }
    let ty = ty.trim_end_matches(['-', '=', '^', '+']);
    let path = field(1).ok_or("no path")?;
    if line.contains('%') {
        return Err("specifiers are not expanded".into());
    }
    let mode = match field(2) {
        Some(m) => Some(
            u32::from_str_radix(m.trim_start_matches(['~', ':']), 8)
                .map_err(|_| format!("mode {m}"))?,
        ),
        None => None,
    };
    let uid = match field(3) {
        Some(u) => accounts.resolve_uid(u).ok_or(format!("unknown user {u}"))?,
        None => 0,
    };
    let gid = match field(4) {
        Some(g) => accounts
            .resolve_gid(g)
            .ok_or(format!("unknown group {g}"))?,
        None => 0,
    };
    Ok(Some(match ty {
        "d" | "D" => Effect::dir(path, mode.unwrap_or(0o755), uid, gid),
        "z" | "Z" => {
            if !root.exists(path) {
                return Ok(None);
            }
            Effect::Chown {
                path: path.to_owned(),
                uid,
                gid,
                mode,
                recursive: ty == "Z",
            }
        }
        "L" => Effect::symlink(path, field(6).ok_or("L without target")?),
        "f" => {
            if root.exists(path) {
                return Ok(None);
            }
            Effect::WriteFile {
                path: path.to_owned(),
                bytes: field(6).map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                mode: mode.unwrap_or(0o644),
                uid,
                gid,
            }
        }
        other => return Err(format!("type {other}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::tree::MemRoot;
    use crate::rootfs::setup::userdb::Group;

    #[test]
    fn tomcat_log_dir() {
        let mut r = MemRoot::new();
        r.file(
            "/usr/lib/tmpfiles.d/tomcat10.conf",
            "# Type Path Mode UID GID Age Argument\nd /var/log/tomcat10 2770 tomcat adm -\nR /tmp/x\n",
        );
        let mut acc = Accounts::default();
        acc.groups.push(Group {
            name: "adm".into(),
            gid: 4,
            members: vec![],
        });
        acc.users.push(crate::rootfs::setup::userdb::User {
            name: "tomcat".into(),
            uid: 997,
            gid: 997,
            gecos: String::new(),
            home: "/".into(),
            shell: "/bin/false".into(),
        });
        let t = tmpfiles(&r, &acc);
        assert_eq!(
            t.effects,
            [Effect::dir("/var/log/tomcat10", 0o2770, 997, 4)]
        );
        assert_eq!(t.unsupported.len(), 1);
    }
}
