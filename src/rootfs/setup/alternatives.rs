//! update-alternatives, as the postinsts would have run it on a fresh install (auto mode).
//!
//! Two sources, both declarative:
//! - `update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...` in a
//!   postinst, after [`super::shell`] substituted its constant variables and loop values;
//! - OpenJDK's `.jinfo` files (`/usr/lib/jvm/.<name>.jinfo`). openjdk's postinst builds its
//!   priority with `$(expr …)` in a branch we cannot evaluate, so its `--install` lines stay
//!   unresolved; the jinfo lists exactly the same tools (`hl java <path>`) with the priority,
//!   and is what `update-java-alternatives` itself reads.
//!
//! Highest priority wins; on a tie the path that sorts first (dpkg keeps choices sorted).
//! Slaves whose target does not exist are not linked, as update-alternatives does.

use std::collections::BTreeMap;

use super::coverage::Status;
use super::rule::{Call, Context, Rule, Script, Verdict};
use super::shell::Command;
use super::tree::{Effect, RootView};

/// `--install` lines are collected before the scripts are read ([`from_scripts`]) and made
/// into links once every package is known ([`Alternatives`]); the others are judged.
pub const RULES: &[Rule] = &[Rule::named(&["update-alternatives"])
    .run(|_, call| match parse_install(&call.cmd.words) {
        Some(_) => Verdict::Now(Status::Reproduced("alternatives".into())),
        None => Verdict::Later(None),
    })
    .judge(judge)];

fn judge(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let args = call.args();
    Some(
        if args
            .iter()
            .any(|a| matches!(*a, "--remove" | "--remove-all"))
        {
            Status::Ignored(
                "removes an older alternative: nothing to remove on a fresh install".into(),
            )
        } else if args
            .iter()
            .any(|a| matches!(*a, "--list" | "--query" | "--display" | "--get-selections"))
        {
            Status::Ignored("read-only query".into())
        } else if args.contains(&"--install")
            && args.get(2).is_some_and(|n| ctx.alternatives.contains(*n))
        {
            Status::Reproduced("alternatives (from the package's .jinfo)".into())
        } else {
            Status::NotCovered("update-alternatives with unresolved arguments".into())
        },
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slave {
    pub link: String,
    pub name: String,
    pub path: String,
}

/// One `--install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub link: String,
    pub name: String,
    pub path: String,
    pub priority: i64,
    pub slaves: Vec<Slave>,
    /// `package: postinst:LINE` or the jinfo path.
    pub source: String,
}

/// Parses the arguments of one `update-alternatives` command; `None` unless it is a complete
/// `--install` with no unresolved word.
pub fn parse_install(words: &[String]) -> Option<Install> {
    let (install, known) = parse_install_any_priority(words)?;
    known.then_some(install)
}

/// [`parse_install`], also when only the priority is unknown (openjdk computes it with
/// `$(expr …)`): the install, and whether its priority is known (0 stands in otherwise).
fn parse_install_any_priority(words: &[String]) -> Option<(Install, bool)> {
    let pos = words.iter().position(|w| w == "--install")?;
    let args = &words[pos + 1..];
    if args.len() < 4 {
        return None;
    }
    let priority: Option<i64> = args[3].parse().ok();
    if priority.is_none() && !args[3].starts_with('$') {
        return None;
    }
    let mut slaves = Vec::new();
    let mut rest = &args[4..];
    while let Some(first) = rest.first() {
        if first != "--slave" || rest.len() < 4 {
            return None;
        }
        slaves.push(Slave {
            link: rest[1].clone(),
            name: rest[2].clone(),
            path: rest[3].clone(),
        });
        rest = &rest[4..];
    }
    let all = [&args[0], &args[1], &args[2]];
    if all.iter().any(|w| w.contains('$')) || slaves.iter().any(|s| s.path.contains('$')) {
        return None;
    }
    Some((
        Install {
            link: args[0].clone(),
            name: args[1].clone(),
            path: args[2].clone(),
            priority: priority.unwrap_or(0),
            slaves,
            source: String::new(),
        },
        priority.is_some(),
    ))
}

/// Adds to `installs` the slaves of the scripts' `--install` lines whose priority alone is
/// unknown, where an install of the same name and path came from elsewhere (the `.jinfo`):
/// openjdk's `jexec` line carries the `jexec-binfmt` slave (`/usr/share/binfmts/jar`) that
/// its jinfo does not list.
pub fn add_script_slaves(installs: &mut [Install], scripts: &[Script<'_>]) {
    let partial = scripts
        .iter()
        .flat_map(Script::runs_on_install)
        .filter(|c| c.program() == "update-alternatives")
        .filter_map(|c| parse_install_any_priority(&c.cmd.words))
        .filter(|(_, known)| !known)
        .map(|(i, _)| i);
    for p in partial {
        for i in installs
            .iter_mut()
            .filter(|i| i.name == p.name && i.path == p.path)
        {
            for s in &p.slaves {
                if !i.slaves.iter().any(|x| x.name == s.name) {
                    i.slaves.push(s.clone());
                }
            }
        }
    }
}

/// The `--install`s of one script's commands.
pub fn from_commands(package: &str, commands: &[Command]) -> Vec<Install> {
    commands
        .iter()
        .filter(|c| c.program() == "update-alternatives")
        .filter_map(|c| {
            let mut i = parse_install(&c.words)?;
            i.source = format!("{package}: postinst:{}", c.line);
            Some(i)
        })
        .collect()
}

/// The `--install`s of the scripts' commands that run on a fresh install, in the order
/// they run.
pub fn from_scripts(scripts: &[Script<'_>]) -> Vec<Install> {
    scripts
        .iter()
        .flat_map(Script::runs_on_install)
        .filter(|c| c.program() == "update-alternatives")
        .filter_map(|c| {
            let mut i = parse_install(&c.cmd.words)?;
            i.source = format!("{}: {}:{}", c.package, c.script, c.cmd.line);
            Some(i)
        })
        .collect()
}

/// `.jinfo` files of the root (`/usr/lib/jvm/.*.jinfo`), as `--install`s: one per tool line
/// (`hl`, `jre`, `jdk`, `jdkhl`, ...) whose path exists, linked at `/usr/bin/NAME`, with the
/// man page slave the openjdk postinst adds when the page exists.
pub fn from_jinfo(root: &dyn RootView) -> Vec<Install> {
    let mut out = Vec::new();
    for file in root.list_dir("/usr/lib/jvm") {
        if !(file.starts_with('.') && file.ends_with(".jinfo")) {
            continue;
        }
        let path = format!("/usr/lib/jvm/{file}");
        let Some(text) = root.read(&path).and_then(|b| String::from_utf8(b).ok()) else {
            continue;
        };
        let mut priority = None;
        let mut basedir = None;
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("priority=") {
                priority = p.trim().parse::<i64>().ok();
            }
            if let Some(n) = line.strip_prefix("name=") {
                basedir = Some(format!("/usr/lib/jvm/{}", n.trim()));
            }
        }
        let Some(priority) = priority else { continue };
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 || line.contains('=') || !root.exists(f[2]) {
                continue;
            }
            let (name, target) = (f[1], f[2]);
            let mut slaves = Vec::new();
            if let Some(base) = &basedir {
                let man = format!("{base}/man/man1/{name}.1.gz");
                if root.exists(&man) {
                    slaves.push(Slave {
                        link: format!("/usr/share/man/man1/{name}.1.gz"),
                        name: format!("{name}.1.gz"),
                        path: man,
                    });
                }
            }
            out.push(Install {
                link: format!("/usr/bin/{name}"),
                name: name.to_owned(),
                path: target.to_owned(),
                priority,
                slaves,
                source: path.clone(),
            });
        }
    }
    out
}

/// The alternatives after all installs: for each name, its choices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alternatives {
    pub groups: BTreeMap<String, Vec<Install>>,
    /// Installs dropped because their path is not in the root (`source: path`).
    pub missing: Vec<String>,
}

impl Alternatives {
    /// Groups `installs` by name; the same (name, path) twice keeps the first.
    pub fn new(root: &dyn RootView, installs: Vec<Install>) -> Alternatives {
        let mut alt = Alternatives::default();
        for i in installs {
            if !root.exists(&i.path) {
                alt.missing
                    .push(format!("{}: {} ({})", i.source, i.path, i.name));
                continue;
            }
            let group = alt.groups.entry(i.name.clone()).or_default();
            if !group.iter().any(|g| g.path == i.path) {
                group.push(i);
            }
        }
        for g in alt.groups.values_mut() {
            g.sort_by(|a, b| a.path.cmp(&b.path));
        }
        alt
    }

    /// The chosen path of `name` (auto mode).
    pub fn best(&self, name: &str) -> Option<&Install> {
        let group = self.groups.get(name)?;
        let top = group.iter().map(|i| i.priority).max()?;
        group.iter().find(|i| i.priority == top)
    }

    pub fn effects(&self, root: &dyn RootView) -> Vec<Effect> {
        let mut out = Vec::new();
        for (name, group) in &self.groups {
            let Some(best) = self.best(name) else {
                continue;
            };
            out.push(Effect::symlink(
                &format!("/etc/alternatives/{name}"),
                &best.path,
            ));
            // update-alternatives never replaces a real file at the link.
            if root.read(&best.link).is_none() {
                out.push(Effect::symlink(
                    &best.link,
                    &format!("/etc/alternatives/{name}"),
                ));
            }
            let slaves = slave_names(group);
            for (sname, slink) in &slaves {
                if let Some(s) = best.slaves.iter().find(|s| &s.name == sname)
                    && root.exists(&s.path)
                {
                    out.push(Effect::symlink(
                        &format!("/etc/alternatives/{sname}"),
                        &s.path,
                    ));
                    if root.read(slink).is_none() {
                        out.push(Effect::symlink(
                            slink,
                            &format!("/etc/alternatives/{sname}"),
                        ));
                    }
                }
            }
            out.push(Effect::file(
                &format!("/var/lib/dpkg/alternatives/{name}"),
                state_file(best, group, &slaves).into_bytes(),
                0o644,
            ));
        }
        out
    }
}

/// Slave (name, link) of all choices, in order of first appearance.
fn slave_names(group: &[Install]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for i in group {
        for s in &i.slaves {
            if !out.iter().any(|(n, _)| n == &s.name) {
                out.push((s.name.clone(), s.link.clone()));
            }
        }
    }
    out
}

/// `/var/lib/dpkg/alternatives/NAME` as update-alternatives writes it: mode, master link,
/// slave name/link pairs, a blank line, then per choice its path, priority and one line per
/// slave (empty when that choice has none), and a final blank line.
fn state_file(best: &Install, group: &[Install], slaves: &[(String, String)]) -> String {
    let mut s = format!("auto\n{}\n", best.link);
    for (name, link) in slaves {
        s.push_str(&format!("{name}\n{link}\n"));
    }
    s.push('\n');
    for i in group {
        s.push_str(&format!("{}\n{}\n", i.path, i.priority));
        for (name, _) in slaves {
            let p = i
                .slaves
                .iter()
                .find(|x| &x.name == name)
                .map(|x| x.path.as_str());
            s.push_str(p.unwrap_or(""));
            s.push('\n');
        }
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::shell;
    use crate::rootfs::setup::tree::MemRoot;

    #[test]
    fn highest_priority_wins_and_state_matches_dpkg() {
        let mut r = MemRoot::new();
        r.file("/usr/bin/mawk", "")
            .file("/usr/bin/gawk", "")
            .file("/usr/share/man/man1/mawk.1.gz", "");
        let script = "update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\\n  --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz\nupdate-alternatives --install /usr/bin/awk awk /usr/bin/gawk 10\nupdate-alternatives --install /usr/bin/x x $1 10\n";
        let installs = from_commands("p", &shell::commands(script));
        assert_eq!(installs.len(), 2);
        let alt = Alternatives::new(&r, installs);
        assert_eq!(alt.best("awk").unwrap().path, "/usr/bin/gawk");
        let e = alt.effects(&r);
        assert!(e.contains(&Effect::symlink("/etc/alternatives/awk", "/usr/bin/gawk")));
        assert!(e.contains(&Effect::symlink("/usr/bin/awk", "/etc/alternatives/awk")));
        // gawk has no man slave: no slave link
        assert!(!e.iter().any(|e| e.path() == "/etc/alternatives/awk.1.gz"));
        let state = e.iter().find_map(|e| match e {
            Effect::WriteFile { path, bytes, .. } if path.ends_with("/awk") => {
                Some(String::from_utf8(bytes.clone()).unwrap())
            }
            _ => None,
        });
        assert_eq!(
            state.unwrap(),
            "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\n\n/usr/bin/gawk\n10\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n\n"
        );
    }

    /// openjdk: the jinfo lists `jexec`, the postinst's line (priority from `expr`) adds its
    /// binfmt slave; the paths follow the package's architecture, whatever it is.
    #[test]
    fn jexec_gets_the_binfmt_slave_of_the_script_line() {
        for arch in ["amd64", "arm64"] {
            let base = format!("/usr/lib/jvm/java-17-openjdk-{arch}");
            let mut r = MemRoot::new();
            r.file(&format!("{base}/lib/jexec"), "")
                .file(&format!("{base}/lib/jar.binfmt"), "")
                .file(
                    &format!("/usr/lib/jvm/.java-1.17.0-openjdk-{arch}.jinfo"),
                    format!(
                        "name=java-17-openjdk-{arch}\npriority=1711\n\nhl jexec {base}/lib/jexec\n"
                    ),
                );
            let postinst = format!(
                "priority=1711\nbasedir={base}\nif [ -n \"$x\" ]; then\n  priority=$(expr $priority - 1)\nfi\nupdate-alternatives --install /usr/bin/jexec jexec $basedir/lib/jexec $priority --slave /usr/share/binfmts/jar jexec-binfmt $basedir/lib/jar.binfmt\n"
            );
            let pkgs = [crate::rootfs::setup::PackageScripts {
                package: "openjdk-17-jre-headless".into(),
                postinst: Some(postinst),
                ..Default::default()
            }];
            let scripts = Script::read_all(&r, &pkgs);
            let mut installs = from_jinfo(&r);
            installs.extend(from_scripts(&scripts));
            add_script_slaves(&mut installs, &scripts);
            let e = Alternatives::new(&r, installs).effects(&r);
            assert!(e.contains(&Effect::symlink(
                "/etc/alternatives/jexec-binfmt",
                &format!("{base}/lib/jar.binfmt")
            )));
            assert!(e.contains(&Effect::symlink(
                "/usr/share/binfmts/jar",
                "/etc/alternatives/jexec-binfmt"
            )));
        }
    }
}
