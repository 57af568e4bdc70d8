//! The plain filesystem commands of postinsts: `chown`, `chgrp`, `chmod`, `mkdir`, `touch`,
//! `ln -s`. Reproduced straight from the script (after constant substitution), so package
//! rules like tomcat10's "webapps owned by tomcat, conffiles 0640 root:tomcat" come from the
//! package itself rather than from a table in stevedore.
//!
//! Conditions around these commands are not evaluated; what stands in for them: a command on
//! a path that neither the packages nor an earlier effect created is a no-op (scripts guard
//! such commands with `[ -f … ]`, or they are upgrade paths).

use super::coverage::Status;
use super::rule::{Call, Context, Pass, Rule, Verdict};
use super::shell::Command;
use super::tree::{Effect, normalize};
use super::userdb::Accounts;

/// What a filesystem command turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Effects(Vec<Effect>),
    /// The path does not exist on a fresh install: nothing to do.
    Absent(String),
    /// What the command would create is already there (the script guards it): nothing to do.
    Present(String),
    /// Not understood (options, symbolic modes, unknown user...): the reason.
    Unsupported(String),
}

/// The programs [`interpret`] handles.
pub const PROGRAMS: &[&str] = &["chown", "chgrp", "chmod", "mkdir", "touch", "ln"];

/// The file commands (removals are in [`super::remove`]).
pub const RULES: &[Rule] = &[
    Rule::named(PROGRAMS).run(run).judge(made_path),
    Rule::named(&["umask"]).run(umask),
    Rule::named(&["cp"]).run(copy_nothing),
    Rule::named(&["cp", "install"]).judge(copy),
];

/// [`interpret`] in script order, over the tree as earlier commands left it.
fn run(pass: &mut Pass<'_>, call: &Call<'_>) -> Verdict {
    let outcome = interpret(call.cmd, pass.accounts, &|p| pass.exists(p), pass.umask);
    Verdict::Now(match outcome {
        Outcome::Effects(e) => {
            pass.made.add(e, &call.mechanism());
            Status::Reproduced("filesystem command".into())
        }
        Outcome::Present(p) => Status::Ignored(format!(
            "{p} is already in the packages (the script creates it only when missing)"
        )),
        Outcome::Absent(p) => Status::Ignored(format!("{p} does not exist on a fresh install")),
        Outcome::Unsupported(why) => return Verdict::Later(Some(why)),
    })
}

/// `umask NNN`: what `touch` and `mkdir` create after it is masked so. The command itself
/// changes no file.
fn umask(pass: &mut Pass<'_>, call: &Call<'_>) -> Verdict {
    if !call.cmd.unresolved
        && let [_, m] = call.cmd.words.as_slice()
        && let Ok(m) = u32::from_str_radix(m, 8)
    {
        pass.umask = m & 0o777;
    }
    Verdict::Later(None)
}

/// `cp` of a file that does not exist at this point of the install (ucf's preinst rotates
/// `/var/lib/ucf/hashfile` under `[ -e … ]`, before any package registered a file with
/// ucf): nothing to copy.
fn copy_nothing(pass: &mut Pass<'_>, call: &Call<'_>) -> Verdict {
    let operands = call.operands();
    if !call.cmd.in_function
        && let Some((_, srcs)) = operands.split_last()
        && !srcs.is_empty()
        && srcs.iter().all(|s| {
            let s = normalize(s);
            !s.contains('$') && !pass.exists(&s)
        })
    {
        return Verdict::Now(Status::Ignored(
            "the source does not exist at this point of a fresh install: nothing to copy".into(),
        ));
    }
    Verdict::Later(None)
}

/// A file command whose arguments are computed at run time, on a path a mechanism makes.
fn made_path(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let operands = call.operands();
    let path = operands.last().filter(|p| !p.contains('$'))?;
    let mech = ctx.produced.get(*path)?;
    Some(Status::Reproduced(format!("{mech} (makes {path})")))
}

/// `cp` and `install` no mechanism made in script order.
fn copy(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let (prog, args, operands) = (call.program(), call.args(), call.operands());
    if prog == "cp"
        && call.package.starts_with("tomcat")
        && args.iter().any(|a| a.contains("default_root"))
    {
        return Some(Status::Ignored(
            "the default webapps/ROOT would shadow the image's ROOT.war".into(),
        ));
    }
    if prog == "install"
        && args.contains(&"-d")
        && !call.cmd.unresolved
        && !operands.is_empty()
        && operands.iter().all(|d| (ctx.exists)(d))
    {
        return Some(Status::Ignored(
            "the directory is already in the packages".into(),
        ));
    }
    Some(match operands.split_last() {
        Some((d, _)) if ctx.produced.contains_key(*d) => {
            Status::Reproduced(ctx.produced[*d].clone())
        }
        // ucf's preinst rotates `hashfile.N` under `[ -e … ]` guards: on a fresh install
        // there is nothing to copy.
        Some((_, srcs))
            if prog == "cp"
                && !srcs.is_empty()
                && srcs.iter().all(|s| {
                    !s.contains('$') && !(ctx.exists)(s) && !ctx.produced.contains_key(*s)
                }) =>
        {
            Status::Ignored("the source does not exist on a fresh install: nothing to copy".into())
        }
        _ => Status::NotCovered("copies files".into()),
    })
}

/// Interprets one command; `exists` answers for the tree as it is at this point, `umask` is
/// the script's umask there (what `touch` and `mkdir` without `-m` create is masked by it:
/// libpam-modules' postinst makes `/etc/security/opasswd` 0600 with `umask 066; touch`).
pub fn interpret(
    cmd: &Command,
    accounts: &Accounts,
    exists: &dyn Fn(&str) -> bool,
    umask: u32,
) -> Outcome {
    if cmd.unresolved {
        return Outcome::Unsupported("arguments depend on runtime values".into());
    }
    let prog = cmd.program();
    let mut flags = String::new();
    let mut mode_opt: Option<String> = None;
    let mut args = Vec::new();
    let mut it = cmd.words[1..].iter();
    while let Some(w) = it.next() {
        if w == "-m" || w == "--mode" {
            mode_opt = it.next().cloned();
        } else if let Some(m) = w.strip_prefix("--mode=") {
            mode_opt = Some(m.to_owned());
        } else if w.starts_with('-') && w.len() > 1 && !(prog == "chmod" && is_mode(w)) {
            flags.push_str(w.trim_start_matches('-'));
        } else {
            args.push(w.trim_end_matches('/').to_owned());
        }
    }
    let recursive = flags.contains('R');
    let unsupported = |why: &str| Outcome::Unsupported(format!("{prog}: {why}"));
    // The paths operated on (after the owner or mode operand; for ln, the link).
    let paths: &[String] = match prog {
        "chown" | "chgrp" | "chmod" => args.get(1..).unwrap_or(&[]),
        "ln" => args.get(1..).unwrap_or(&[]),
        _ => &args,
    };
    if let Some(p) = paths.iter().find(|p| !p.starts_with('/')) {
        return unsupported(&format!(
            "relative path {p} (depends on the script's working directory)"
        ));
    }
    match prog {
        "chown" | "chgrp" => chown(prog, &args, accounts, exists, recursive),
        "chmod" => {
            let Some((mode, paths)) = args.split_first() else {
                return unsupported("no operands");
            };
            let Ok(mode) = u32::from_str_radix(mode, 8) else {
                return unsupported(&format!("symbolic mode {mode}"));
            };
            each(paths, exists, |p| Effect::Chmod {
                path: p.to_owned(),
                mode,
                recursive,
            })
        }
        "mkdir" => {
            let mode = match mode_opt.as_deref().map(|m| u32::from_str_radix(m, 8)) {
                None => 0o777 & !umask,
                Some(Ok(m)) => m,
                Some(Err(_)) => return unsupported("symbolic mode"),
            };
            if args.is_empty() {
                return unsupported("no operands");
            }
            Outcome::Effects(args.iter().map(|p| Effect::dir(p, mode, 0, 0)).collect())
        }
        "touch" => {
            if args.is_empty() || !flags.is_empty() {
                return unsupported("options");
            }
            Outcome::Effects(
                args.iter()
                    .filter(|p| !exists(p))
                    .map(|p| Effect::file(p, Vec::new(), 0o666 & !umask))
                    .collect(),
            )
        }
        "ln" => {
            if !flags.contains('s') {
                return unsupported("hard links");
            }
            match args.as_slice() {
                // openssl: `if [ ! -e /usr/lib/ssl ]; then ln -sf /etc/ssl /usr/lib/ssl; fi`.
                // Conditions are not evaluated, so an existing path stands in for the guard
                // (with -f on a directory, ln would put the link *inside* it anyway).
                [_, link] if exists(link) => Outcome::Present(link.clone()),
                [target, link] => Outcome::Effects(vec![Effect::symlink(link, target)]),
                _ => unsupported("only `ln -s TARGET LINK`"),
            }
        }
        _ => unsupported("not a filesystem command"),
    }
}

/// `chown USER:GROUP PATH…`, `chgrp GROUP PATH…`.
fn chown(
    prog: &str,
    args: &[String],
    accounts: &Accounts,
    exists: &dyn Fn(&str) -> bool,
    recursive: bool,
) -> Outcome {
    let unsupported = |why: &str| Outcome::Unsupported(format!("{prog}: {why}"));
    let Some((owner, paths)) = args.split_first() else {
        return unsupported("no operands");
    };
    let (user, group) = if prog == "chgrp" {
        (None, Some(owner.as_str()))
    } else {
        match owner.split_once([':', '.']) {
            Some((u, g)) => (Some(u), (!g.is_empty()).then_some(g)),
            None => (Some(owner.as_str()), None),
        }
    };
    let uid = match user {
        Some(u) => match accounts.resolve_uid(u) {
            Some(id) => Some(id),
            None => return unsupported(&format!("unknown user {u}")),
        },
        None => None,
    };
    let gid = match group {
        Some(g) => match accounts.resolve_gid(g) {
            Some(id) => Some(id),
            None => return unsupported(&format!("unknown group {g}")),
        },
        None => None,
    };
    if uid.is_none() || gid.is_none() {
        // `chown user` or `chgrp group` keeps the other id, which we do not know here.
        return unsupported("only user:group ownership is reproduced");
    }
    each(paths, exists, |p| Effect::Chown {
        path: p.to_owned(),
        uid: uid.unwrap_or(0),
        gid: gid.unwrap_or(0),
        mode: None,
        recursive,
    })
}

fn is_mode(w: &str) -> bool {
    w.trim_start_matches('-')
        .chars()
        .all(|c| "rwxXstugoa+-=,".contains(c))
}

fn each(paths: &[String], exists: &dyn Fn(&str) -> bool, f: impl Fn(&str) -> Effect) -> Outcome {
    if paths.is_empty() {
        return Outcome::Unsupported("no operands".into());
    }
    let present: Vec<&String> = paths.iter().filter(|p| exists(p)).collect();
    if present.is_empty() {
        return Outcome::Absent(paths.join(" "));
    }
    Outcome::Effects(present.into_iter().map(|p| f(p)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::shell;
    use crate::rootfs::setup::userdb::{Group, User};

    #[test]
    fn tomcat_ownership_lines() {
        let acc = Accounts {
            users: vec![User {
                name: "tomcat".into(),
                uid: 997,
                gid: 997,
                gecos: String::new(),
                home: "/".into(),
                shell: "/bin/false".into(),
            }],
            groups: vec![
                Group {
                    name: "adm".into(),
                    gid: 4,
                    members: vec![],
                },
                Group {
                    name: "tomcat".into(),
                    gid: 997,
                    members: vec![],
                },
            ],
            ..Accounts::default()
        };
        let script = "TOMCAT_USER=tomcat\nchown -Rh $TOMCAT_USER:adm /var/log/tomcat10/\nchmod 2770 /var/log/tomcat10/\nchown root:tomcat /etc/nope\nchmod u+x /x\nmkdir -m 755 /etc/.java\n";
        let exists = |p: &str| p == "/var/log/tomcat10" || p == "/x";
        let out: Vec<Outcome> = shell::commands(script)
            .iter()
            .map(|c| interpret(c, &acc, &exists, 0o022))
            .collect();
        assert_eq!(
            out[0],
            Outcome::Effects(vec![Effect::Chown {
                path: "/var/log/tomcat10".into(),
                uid: 997,
                gid: 4,
                mode: None,
                recursive: true
            }])
        );
        assert_eq!(
            out[1],
            Outcome::Effects(vec![Effect::Chmod {
                path: "/var/log/tomcat10".into(),
                mode: 0o2770,
                recursive: false
            }])
        );
        assert!(matches!(out[2], Outcome::Absent(_)));
        assert!(matches!(out[3], Outcome::Unsupported(_)));
        assert_eq!(
            out[4],
            Outcome::Effects(vec![Effect::dir("/etc/.java", 0o755, 0, 0)])
        );
    }

    #[test]
    fn touch_and_mkdir_follow_the_umask() {
        // libpam-modules' postinst: `umask 066; touch /etc/security/opasswd; umask 022`.
        let acc = Accounts::default();
        let none = |_: &str| false;
        let run = |line: &str, umask| interpret(&shell::commands(line)[0], &acc, &none, umask);
        assert_eq!(
            run("touch /etc/security/opasswd\n", 0o066),
            Outcome::Effects(vec![Effect::file(
                "/etc/security/opasswd",
                Vec::new(),
                0o600
            )])
        );
        assert_eq!(
            run("touch /etc/x\n", 0o022),
            Outcome::Effects(vec![Effect::file("/etc/x", Vec::new(), 0o644)])
        );
        assert_eq!(
            run("mkdir /var/x\n", 0o027),
            Outcome::Effects(vec![Effect::dir("/var/x", 0o750, 0, 0)])
        );
        assert_eq!(
            run("mkdir -m 755 /var/y\n", 0o077),
            Outcome::Effects(vec![Effect::dir("/var/y", 0o755, 0, 0)])
        );
    }
}
