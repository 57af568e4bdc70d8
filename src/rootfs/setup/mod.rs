//! What the skipped maintainer scripts would have done, reproduced without running them.
//!
//! stevedore never runs `preinst`/`postinst` (no root, no chroot, any target architecture), so
//! the effects those scripts have on the filesystem are recomputed here from data the packages
//! ship: base-passwd's masters and `sysusers.d` for accounts, `update-alternatives --install`
//! lines and `.jinfo` files for alternatives, `ucf` lines for conffiles, the mozilla certs for
//! the CA bundle and the Java keystore, `tmpfiles.d` for ownerships, and a few fixed rules
//! (base-files, libc-bin, ...) where no data-driven mechanism exists.
//!
//! Everything is pure: a read-only [`RootView`] of the merged tree goes in, a sorted list of
//! [`Effect`]s comes out, plus a [`coverage`] report that says, command by command, which
//! script lines were reproduced, ignored on purpose, or not covered. Nothing reads the clock:
//! times that end up in files (the JKS entry dates) are parameters.

pub mod accounts;
pub mod adduser;
pub mod alternatives;
pub mod certs;
pub mod cheap;
pub mod coverage;
pub mod fsops;
pub mod shell;
pub mod tmpfiles;
pub mod ucf;

use std::collections::{BTreeMap, BTreeSet};

/// The merged filesystem after the packages' files are laid out (scripts not run). Paths are
/// absolute (`/usr/share/base-passwd/passwd.master`); symlinks are not followed.
pub trait RootView {
    /// Content of a regular file, `None` when absent or not a regular file.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Whether anything (file, dir, symlink) exists at `path`.
    fn exists(&self, path: &str) -> bool;
    /// Names (not paths) of the entries directly in directory `path`, sorted; empty when absent.
    fn list_dir(&self, path: &str) -> Vec<String>;
    /// Whether `path` is a directory. The default derives it from [`RootView::list_dir`] and
    /// [`RootView::read`], which is enough for trees without empty directories.
    fn is_dir(&self, path: &str) -> bool {
        self.exists(path) && self.read(path).is_none()
    }
}

/// An in-memory [`RootView`]: files by absolute path, plus explicit directories and symlinks.
/// Used by the tests, and handy for the pipeline to build from layer trees.
#[derive(Debug, Clone, Default)]
pub struct MemRoot {
    files: BTreeMap<String, Vec<u8>>,
    /// Directories and symlinks; parents of files are added implicitly.
    others: BTreeSet<String>,
}

impl MemRoot {
    pub fn new() -> MemRoot {
        MemRoot::default()
    }

    /// Adds a regular file (and its parent directories).
    pub fn file(&mut self, path: &str, bytes: impl Into<Vec<u8>>) -> &mut Self {
        let path = normalize(path);
        self.add_parents(&path);
        self.files.insert(path, bytes.into());
        self
    }

    /// Adds a directory or symlink (anything that is not a regular file).
    pub fn other(&mut self, path: &str) -> &mut Self {
        let path = normalize(path);
        self.add_parents(&path);
        self.others.insert(path);
        self
    }

    fn add_parents(&mut self, path: &str) {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            self.others.insert(parent.to_owned());
            p = parent;
        }
    }

    pub fn len(&self) -> usize {
        self.files.len() + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `./usr/x`, `usr/x/`, `/usr//x` → `/usr/x`.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl RootView for MemRoot {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(&normalize(path)).cloned()
    }
    fn exists(&self, path: &str) -> bool {
        let p = normalize(path);
        self.files.contains_key(&p) || self.others.contains(&p)
    }
    fn list_dir(&self, path: &str) -> Vec<String> {
        let dir = normalize(path);
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        let mut names = BTreeSet::new();
        for p in self.files.keys().chain(self.others.iter()) {
            if let Some(rest) = p.strip_prefix(&prefix)
                && !rest.is_empty()
                && !rest.contains('/')
            {
                names.insert(rest.to_owned());
            }
        }
        names.into_iter().collect()
    }
    fn is_dir(&self, path: &str) -> bool {
        let p = normalize(path);
        !self.files.contains_key(&p) && !self.list_dir(&p).is_empty()
            || (self.others.contains(&p) && !self.files.contains_key(&p))
    }
}

/// One package's maintainer scripts, as found in its control tarball.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageScripts {
    pub package: String,
    pub preinst: Option<String>,
    pub postinst: Option<String>,
    pub prerm: Option<String>,
    pub postrm: Option<String>,
}

impl PackageScripts {
    /// The scripts that exist, with their names, in the order dpkg runs them on install
    /// (`prerm`/`postrm` never run on a fresh install, but are reported).
    pub fn scripts(&self) -> Vec<(&'static str, &str)> {
        [
            ("preinst", &self.preinst),
            ("postinst", &self.postinst),
            ("prerm", &self.prerm),
            ("postrm", &self.postrm),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.as_deref().map(|s| (n, s)))
        .collect()
    }
}

/// A change to the image filesystem. Paths are absolute; modes are permission bits only
/// (incl. setuid/setgid/sticky).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Create or replace a regular file.
    WriteFile {
        path: String,
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Create a symlink (replacing whatever is there).
    Symlink { path: String, target: String },
    /// Create a directory, or set owner and mode of an existing one.
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Change owner (and mode when given) of an existing entry; `recursive` for `chown -R`
    /// (every entry below `path` that exists when the effect is applied).
    Chown {
        path: String,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
        recursive: bool,
    },
    /// Change the mode of an existing entry (`chmod`), keeping its owner.
    Chmod {
        path: String,
        mode: u32,
        recursive: bool,
    },
}

impl Effect {
    pub fn path(&self) -> &str {
        match self {
            Effect::WriteFile { path, .. }
            | Effect::Symlink { path, .. }
            | Effect::Dir { path, .. }
            | Effect::Chown { path, .. }
            | Effect::Chmod { path, .. } => path,
        }
    }

    pub(crate) fn file(path: &str, bytes: Vec<u8>, mode: u32) -> Effect {
        Effect::WriteFile {
            path: path.to_owned(),
            bytes,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub(crate) fn symlink(path: &str, target: &str) -> Effect {
        Effect::Symlink {
            path: path.to_owned(),
            target: target.to_owned(),
        }
    }

    pub(crate) fn dir(path: &str, mode: u32, uid: u32, gid: u32) -> Effect {
        Effect::Dir {
            path: path.to_owned(),
            mode,
            uid,
            gid,
        }
    }

    /// Creates something (file, link, directory), as opposed to changing an existing entry.
    pub fn creates(&self) -> bool {
        matches!(
            self,
            Effect::WriteFile { .. } | Effect::Symlink { .. } | Effect::Dir { .. }
        )
    }
}

/// The order to apply effects in: everything that creates entries first, sorted by path
/// (parents before children), then ownership and mode changes sorted by path, so a
/// recursive `chown` sees the files created before it. Duplicates are removed.
pub fn sort_effects(effects: &mut Vec<Effect>) {
    effects.sort_by(|a, b| {
        b.creates()
            .cmp(&a.creates())
            .then_with(|| a.path().cmp(b.path()))
            .then_with(|| a.cmp(b))
    });
    effects.dedup();
}

/// What the pipeline passes besides the tree and the scripts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Users declared by the recipe.
    pub extra_users: Vec<accounts::ExtraUser>,
    /// Seconds since the epoch for dates written into files (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

/// Everything setup computed.
#[derive(Debug, Clone)]
pub struct Setup {
    /// In the order to apply them ([`sort_effects`]).
    pub effects: Vec<Effect>,
    pub accounts: accounts::Accounts,
    pub alternatives: alternatives::Alternatives,
    pub coverage: coverage::Coverage,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Cert(#[from] certs::CertError),
}

/// Whether a maintainer script is a shell script we can read (some old packages ship
/// compiled programs instead).
fn is_shell_script(text: &str) -> bool {
    !text.starts_with("\u{7f}ELF") && !text.contains('\0')
}

/// Scripts that run on a fresh install, whose commands may produce effects.
const RUN_ON_INSTALL: &[&str] = &["preinst", "postinst"];

/// Where a script command is, as account sources and notes name it: `tomcat7 postinst:33`.
fn script_at(package: &str, script: &str, cmd: &shell::Command) -> String {
    format!("{package} {script}:{}", cmd.line)
}

/// The account commands (`adduser`, `useradd`, ...) of the scripts that run on a fresh
/// install, in the order they run. They are applied before any other script command, so a
/// `chown tomcat7 …` in the same postinst sees the user; branches that do not run on a fresh
/// install, and commands whose arguments are only known at run time, are left out.
fn script_accounts(packages: &[PackageScripts]) -> Vec<adduser::ScriptAccountAt> {
    let mut out = Vec::new();
    for pkg in packages {
        for (script, text) in pkg.scripts() {
            if !is_shell_script(text) {
                continue; // reported below
            }
            if !RUN_ON_INSTALL.contains(&script) {
                continue;
            }
            for cmd in shell::commands_with_args(text, shell::install_args(script)) {
                if cmd.dead.is_some()
                    || cmd.unresolved
                    || !adduser::PROGRAMS.contains(&cmd.program())
                {
                    continue;
                }
                if let Ok(account) = adduser::parse(&cmd.words) {
                    out.push(adduser::ScriptAccountAt {
                        at: script_at(&pkg.package, script, &cmd),
                        account,
                    });
                }
            }
        }
    }
    out
}

/// Reproduces the effects of `packages`' maintainer scripts on `root` (the merged tree of
/// their files, scripts not run), and reports coverage command by command.
pub fn setup(
    root: &dyn RootView,
    packages: &[PackageScripts],
    options: &Options,
) -> Result<Setup, SetupError> {
    let mut effects: Vec<Effect> = Vec::new();
    let mut produced: BTreeMap<String, String> = BTreeMap::new();
    let add = |effects: &mut Vec<Effect>,
               produced: &mut BTreeMap<String, String>,
               new: Vec<Effect>,
               mech: &str| {
        for e in new {
            produced
                .entry(e.path().to_owned())
                .or_insert_with(|| mech.to_owned());
            effects.push(e);
        }
    };
    let mut data_notes = Vec::new();

    let accounts = accounts::with_scripts(root, &options.extra_users, &script_accounts(packages));
    data_notes.extend(
        accounts
            .unsupported
            .iter()
            .map(|u| format!("account declaration not applied: {u}")),
    );
    if !accounts.users.is_empty() {
        add(&mut effects, &mut produced, accounts.effects(), "accounts");
    }
    let rules = cheap::rules(root, &accounts);
    let rule_packages: BTreeSet<String> = rules.iter().map(|r| r.package.to_owned()).collect();
    for r in rules {
        add(
            &mut effects,
            &mut produced,
            r.effects,
            &format!("rule {}", r.package),
        );
    }
    let tmp = tmpfiles::tmpfiles(root, &accounts);
    data_notes.extend(
        tmp.unsupported
            .iter()
            .map(|u| format!("tmpfiles.d line not applied: {u}")),
    );
    add(&mut effects, &mut produced, tmp.effects, "tmpfiles.d");
    add(
        &mut effects,
        &mut produced,
        certs::ca_certificates(root)?,
        "certs",
    );
    if root.exists("/usr/share/ca-certificates-java") && produced.contains_key(certs::BUNDLE) {
        add(
            &mut effects,
            &mut produced,
            certs::java_cacerts(root, options.epoch)?,
            "certs (Java keystore)",
        );
    }

    // Scripts, command by command, in package order.
    let mut installs = alternatives::from_jinfo(root);
    // (package, script, command, (functions, temp vars, harmless sourced functions), why
    // fsops refused it)
    type Pending = (
        String,
        String,
        shell::Command,
        (BTreeSet<String>, BTreeSet<String>, BTreeMap<String, String>),
        Option<String>,
    );
    let mut pending: Vec<Pending> = Vec::new();
    let mut reports = Vec::new();
    for pkg in packages {
        for (script, text) in pkg.scripts() {
            // A compiled maintainer script (some old Essential packages ship one): nothing
            // here can read it, so the whole script is reported as not covered.
            if !is_shell_script(text) {
                let status = coverage::Status::NotCovered(
                    "not a shell script (a compiled program): its effects are unknown".into(),
                );
                let cmd = shell::Command::opaque(format!("({script} is a binary program)"));
                reports.push((pkg.package.clone(), script.to_owned(), cmd, status));
                continue;
            }
            let functions = shell::functions(text);
            let temp_vars = shell::temp_vars(text);
            let sourced = sourced_message_functions(root, text);
            let script_info = (functions, temp_vars, sourced);
            // dpkg runs scripts with umask 022; `umask NNN` changes it for what follows, in
            // the order written (the masked `touch`/`mkdir` are in fsops).
            let mut umask = 0o022;
            for cmd in shell::commands_with_args(text, shell::install_args(script)) {
                let runs = RUN_ON_INSTALL.contains(&script);
                let mut direct = None;
                if let (true, Some(why)) = (runs, &cmd.dead) {
                    let status =
                        coverage::Status::Ignored(format!("not run on a fresh install: {why}"));
                    reports.push((pkg.package.clone(), script.to_owned(), cmd, status));
                    continue;
                }
                if cmd.program() == "umask"
                    && !cmd.unresolved
                    && let [_, m] = cmd.words.as_slice()
                    && let Ok(m) = u32::from_str_radix(m, 8)
                {
                    umask = m & 0o777;
                }
                if runs && cmd.program() == "update-alternatives" {
                    if let Some(mut i) = alternatives::parse_install(&cmd.words) {
                        i.source = format!("{}: {script}:{}", pkg.package, cmd.line);
                        installs.push(i);
                        direct = Some(coverage::Status::Reproduced("alternatives".into()));
                    }
                } else if runs && adduser::PROGRAMS.contains(&cmd.program()) && !cmd.unresolved {
                    // The account itself was made before the scripts' other commands (see
                    // `script_accounts`); here only the verdict for the report.
                    match adduser::parse(&cmd.words) {
                        Ok(account) => {
                            let at = format!("{}: ", script_at(&pkg.package, script, &cmd));
                            let failed = accounts
                                .unsupported
                                .iter()
                                .find_map(|u| u.strip_prefix(&at));
                            let skel = matches!(
                                account,
                                adduser::ScriptAccount::User {
                                    create_home: true,
                                    alloc: adduser::Alloc::ShadowSystem
                                        | adduser::Alloc::ShadowNormal,
                                    ..
                                }
                            );
                            direct = Some(match failed {
                                Some(why) => coverage::Status::NotCovered(why.to_owned()),
                                None if skel => coverage::Status::NotCovered(
                                    "useradd -m: the home is made, but /etc/skel is not copied"
                                        .into(),
                                ),
                                None => coverage::Status::Reproduced(format!(
                                    "accounts ({})",
                                    cmd.program()
                                )),
                            });
                        }
                        Err(why) => {
                            pending.push((
                                pkg.package.clone(),
                                script.to_owned(),
                                cmd,
                                script_info.clone(),
                                Some(why),
                            ));
                            continue;
                        }
                    }
                } else if runs && cmd.program() == "ucf" && !cmd.unresolved {
                    if let Some((src, dest)) = ucf::parse(&cmd.words) {
                        let copy = ucf::UcfCopy {
                            src,
                            dest,
                            source: String::new(),
                        };
                        let (e, missing) = ucf::effects(root, std::slice::from_ref(&copy));
                        direct = Some(if missing.is_empty() {
                            add(&mut effects, &mut produced, e, "ucf");
                            coverage::Status::Reproduced("ucf".into())
                        } else {
                            coverage::Status::NotCovered(format!(
                                "ucf source {} is not in the tree",
                                copy.src
                            ))
                        });
                    }
                } else if runs && cmd.program() == "rm" && !cmd.unresolved {
                    // `rm` of what an earlier script command created (a marker file the
                    // package consumes during configure): undo that effect.
                    let targets: Vec<String> = cmd.words[1..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .map(|w| normalize(w))
                        .collect();
                    let by_script = |p: &String| {
                        !root.exists(p)
                            && produced
                                .get(p)
                                .is_some_and(|m| m.ends_with("preinst") || m.ends_with("postinst"))
                    };
                    // Nothing there at this point of the install (fontconfig's `[ -h … ] &&
                    // rm` of a link made only later, or by an earlier version).
                    let absent = |p: &String| !root.exists(p) && !produced.contains_key(p);
                    // (A function body may run later, when more exists: not judged here.)
                    if !cmd.in_function && !targets.is_empty() && targets.iter().all(absent) {
                        direct = Some(coverage::Status::Ignored(format!(
                            "{} does not exist on a fresh install",
                            targets.join(" ")
                        )));
                    } else if !targets.is_empty() && targets.iter().all(by_script) {
                        effects.retain(|e| !targets.iter().any(|t| t == e.path()));
                        for t in &targets {
                            produced.remove(t);
                        }
                        direct = Some(coverage::Status::Reproduced(
                            "filesystem command (removes what an earlier command made)".into(),
                        ));
                    }
                } else if runs && cmd.program() == "cp" && !cmd.in_function {
                    // `cp` of a file that does not exist at this point of the install (ucf's
                    // preinst rotates `/var/lib/ucf/hashfile` under `[ -e … ]`, before any
                    // package registered a file with ucf): nothing to copy.
                    let operands: Vec<&String> = cmd.words[1..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .collect();
                    if let Some((_, srcs)) = operands.split_last()
                        && !srcs.is_empty()
                        && srcs.iter().all(|s| {
                            let s = normalize(s);
                            !s.contains('$') && !root.exists(&s) && !produced.contains_key(&s)
                        })
                    {
                        direct = Some(coverage::Status::Ignored(
                            "the source does not exist at this point of a fresh install: nothing to copy"
                                .into(),
                        ));
                    }
                } else if runs && fsops::PROGRAMS.contains(&cmd.program()) {
                    let outcome = {
                        let exists =
                            |p: &str| root.exists(p) || produced.contains_key(&normalize(p));
                        fsops::interpret(&cmd, &accounts, &exists, umask)
                    };
                    match outcome {
                        fsops::Outcome::Effects(e) => {
                            add(
                                &mut effects,
                                &mut produced,
                                e,
                                &format!("{} {script}", pkg.package),
                            );
                            direct =
                                Some(coverage::Status::Reproduced("filesystem command".into()));
                        }
                        fsops::Outcome::Present(p) => {
                            direct = Some(coverage::Status::Ignored(format!(
                                "{p} is already in the packages (the script creates it only when missing)"
                            )));
                        }
                        fsops::Outcome::Absent(p) => {
                            direct = Some(coverage::Status::Ignored(format!(
                                "{p} does not exist on a fresh install"
                            )));
                        }
                        fsops::Outcome::Unsupported(why) => {
                            pending.push((
                                pkg.package.clone(),
                                script.to_owned(),
                                cmd,
                                script_info.clone(),
                                Some(why),
                            ));
                            continue;
                        }
                    }
                }
                match direct {
                    Some(status) => {
                        reports.push((pkg.package.clone(), script.to_owned(), cmd, status))
                    }
                    None => pending.push((
                        pkg.package.clone(),
                        script.to_owned(),
                        cmd,
                        script_info.clone(),
                        None,
                    )),
                }
            }
        }
    }
    let alternatives = alternatives::Alternatives::new(root, installs);
    data_notes.extend(
        alternatives
            .missing
            .iter()
            .map(|m| format!("alternative path missing: {m}")),
    );
    let alt_effects = alternatives.effects(root);
    add(&mut effects, &mut produced, alt_effects, "alternatives");

    let alt_names: BTreeSet<String> = alternatives.groups.keys().cloned().collect();
    let exists = |p: &str| root.exists(p);
    for (package, script, cmd, (functions, temp_vars, sourced), why) in pending {
        // `rm` in a function body of a marker a later line of the script made (ca-certificates-
        // java's `touch …/fresh`, consumed by the function that then removes it): the function
        // runs after that line, so undo the marker.
        if RUN_ON_INSTALL.contains(&script.as_str())
            && cmd.in_function
            && cmd.program() == "rm"
            && !cmd.unresolved
        {
            let targets: Vec<String> = cmd.words[1..]
                .iter()
                .filter(|w| !w.starts_with('-'))
                .map(|w| normalize(w))
                .collect();
            let mech = format!("{package} {script}");
            if !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| !root.exists(t) && produced.get(t) == Some(&mech))
            {
                effects.retain(|e| !targets.iter().any(|t| t == e.path()));
                for t in &targets {
                    produced.remove(t);
                }
                let status = coverage::Status::Reproduced(
                    "filesystem command (removes what another command of the script made)".into(),
                );
                reports.push((package, script, cmd, status));
                continue;
            }
        }
        let ctx = coverage::Context {
            produced: &produced,
            exists: &exists,
            is_dir: &|p: &str| root.is_dir(p),
            accounts: &accounts,
            alternatives: &alt_names,
            rule_packages: &rule_packages,
            functions: &functions,
            sourced: &sourced,
            temp_vars: &temp_vars,
            has_sysusers: !accounts::sysusers_files(root).is_empty(),
            tmpfiles: &tmp.files,
        };
        let mut status = coverage::classify(&package, &script, &cmd, &ctx);
        if let (coverage::Status::NotCovered(_), Some(why)) = (&status, why) {
            status = coverage::Status::NotCovered(why);
        }
        reports.push((package, script, cmd, status));
    }
    let order = |s: &str| {
        ["preinst", "postinst", "prerm", "postrm"]
            .iter()
            .position(|x| *x == s)
    };
    let pkg_order: BTreeMap<&str, usize> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.package.as_str(), i))
        .collect();
    reports.sort_by_key(|(p, s, c, _)| (pkg_order.get(p.as_str()).copied(), order(s), c.line));
    let commands = reports
        .into_iter()
        .map(|(package, script, cmd, status)| coverage::CommandReport {
            package,
            script,
            line: cmd.line,
            command: if cmd.words.is_empty() {
                cmd.text.clone()
            } else {
                cmd.words.join(" ")
            },
            status,
        })
        .collect();
    sort_effects(&mut effects);
    Ok(Setup {
        effects,
        accounts,
        alternatives,
        coverage: coverage::Coverage {
            commands,
            data_notes,
        },
    })
}

/// Functions of the helper files a script sources (`. /usr/share/dpkg/sh/dpkg-error.sh`,
/// read from the tree) that only print messages, set variables or exit, with the reason
/// calling them changes nothing.
fn sourced_message_functions(root: &dyn RootView, script: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cmd in shell::commands(script) {
        if !matches!(cmd.program(), "." | "source") || cmd.unresolved {
            continue;
        }
        let Some(path) = cmd.words.get(1) else {
            continue;
        };
        let Some(text) = root.read(path).and_then(|b| String::from_utf8(b).ok()) else {
            continue;
        };
        for f in shell::message_only_functions(&text) {
            let why =
                format!("function {f} of {path} only prints messages, sets variables or exits");
            out.entry(f).or_insert(why);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::coverage::Status;
    use super::*;

    #[test]
    fn setup_reports_every_command_and_strict_fails_on_unknown_ones() {
        let mut root = MemRoot::new();
        root.file(accounts::PASSWD_MASTER, "root:*:0:0:root:/root:/bin/bash\n")
            .file(accounts::GROUP_MASTER, "root:*:0:\nadm:*:4:\n")
            .file("/usr/lib/sysusers.d/app.conf", "u app - \"App\" /srv/app\n")
            .file("/usr/share/app/app.conf", "x=1\n")
            .file("/usr/bin/app-1", "")
            .other("/var/lib/app");
        let postinst = "#!/bin/sh\nset -e\ncase \"$1\" in\n  configure)\n    systemd-sysusers\n    ucf /usr/share/app/app.conf /etc/app.conf\n    chown app:adm /var/lib/app\n    update-alternatives --install /usr/bin/app app /usr/bin/app-1 10\n    if [ -n \"$2\" ]; then migrate-old-data; fi\n    frobnicate --all\n    deb-systemd-helper enable app.service >/dev/null || true\n  ;;\nesac\n";
        let pkgs = [PackageScripts {
            package: "app".into(),
            postinst: Some(postinst.into()),
            ..PackageScripts::default()
        }];
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        let uid = s.accounts.uid("app").unwrap();
        assert_eq!(uid, 999);
        assert!(s.effects.contains(&Effect::Chown {
            path: "/var/lib/app".into(),
            uid,
            gid: 4,
            mode: None,
            recursive: false
        }));
        assert!(
            s.effects
                .contains(&Effect::file("/etc/app.conf", b"x=1\n".to_vec(), 0o644))
        );
        assert!(
            s.effects
                .contains(&Effect::symlink("/usr/bin/app", "/etc/alternatives/app"))
        );
        let by_prog = |p: &str| {
            s.coverage
                .commands
                .iter()
                .find(|c| c.command.starts_with(p))
                .map(|c| c.status.clone())
                .unwrap()
        };
        assert!(matches!(by_prog("systemd-sysusers"), Status::Reproduced(_)));
        assert!(matches!(by_prog("migrate-old-data"), Status::Ignored(_)));
        assert!(matches!(by_prog("frobnicate"), Status::NotCovered(_)));
        assert!(matches!(by_prog("deb-systemd-helper"), Status::Ignored(_)));
        let summary = s.coverage.summary();
        assert_eq!(summary.not_covered, 1);
        let err = s.coverage.strict().unwrap_err();
        assert!(
            err.to_string()
                .contains("app postinst:10: frobnicate --all"),
            "{err}"
        );
        assert!(s.coverage.report().contains("NOT COVERED"));
        // Creations come before ownership changes in the returned order.
        let first_chown = s.effects.iter().position(|e| !e.creates()).unwrap();
        assert!(s.effects[first_chown..].iter().all(|e| !e.creates()));
    }

    /// base-passwd's masters as in xenial and bookworm (the ids that matter here).
    fn base_root() -> MemRoot {
        let mut root = MemRoot::new();
        root.file(
            accounts::PASSWD_MASTER,
            "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        .file(
            accounts::GROUP_MASTER,
            "root:*:0:\ndaemon:*:1:\nadm:*:4:\nshadow:*:42:\nusers:*:100:\nnogroup:*:65534:\n",
        );
        root
    }

    fn postinst(package: &str, text: &str) -> PackageScripts {
        PackageScripts {
            package: package.into(),
            postinst: Some(text.into()),
            ..PackageScripts::default()
        }
    }

    fn status_of<'a>(s: &'a Setup, prefix: &str) -> &'a Status {
        &s.coverage
            .commands
            .iter()
            .find(|c| c.command.starts_with(prefix))
            .unwrap_or_else(|| panic!("no command {prefix}"))
            .status
    }

    /// The user-creating part of xenial's tomcat7 7.0.68-1ubuntu0.4 postinst, verbatim.
    const TOMCAT7_POSTINST: &str = r#"#!/bin/sh
set -e

. /usr/share/debconf/confmodule
TEMPLATE="/usr/share/tomcat7/defaults.template"
CONFFILE="/etc/default/tomcat7"

case "$1" in
    configure)

	# Generate $CONFFILE from debconf seetings and $TEMPLATE
	db_version 2.0
	db_get tomcat7/username && TOMCAT7_USER="$RET" || TOMCAT7_USER="tomcat7"
	db_get tomcat7/groupname && TOMCAT7_GROUP="$RET" || TOMCAT7_GROUP="tomcat7"

	if ! getent group "$TOMCAT7_GROUP" > /dev/null 2>&1 ; then
	    addgroup --system "$TOMCAT7_GROUP" --quiet
	fi
	if ! id $TOMCAT7_USER > /dev/null 2>&1 ; then
	    adduser --system --home /usr/share/tomcat7 --no-create-home \
		--ingroup "$TOMCAT7_GROUP" --disabled-password --shell /bin/false \
		"$TOMCAT7_USER"
	fi
	chown -R $TOMCAT7_USER:adm /var/log/tomcat7 /var/cache/tomcat7
	chmod 750 /var/log/tomcat7 /var/cache/tomcat7
    ;;
esac
"#;

    /// The account lines of xenial's systemd 229 and apt 1.2 postinsts, verbatim.
    const SYSTEMD_POSTINST: &str = "#! /bin/sh\nset -e\nif [ \"$1\" = \"triggered\" ]; then\n    exit 0\nfi\n# Setup system users and groups\naddgroup --system systemd-journal\n\nadduser --quiet --system --group --no-create-home --home /run/systemd \\\n    --gecos \"systemd Time Synchronization\" systemd-timesync\nadduser --quiet --system --group --no-create-home --home /run/systemd/netif \\\n    --gecos \"systemd Network Management\" systemd-network\n";
    const APT_POSTINST: &str = "#! /bin/sh\nset -e\ncase \"$1\" in\n    configure)\n\t# add unprivileged user for the apt methods\n\tadduser --force-badname --system --home /nonexistent  \\\n\t    --no-create-home --quiet _apt || true\n\n\t# Fixup any mistake in the home directory of the _apt user\n\tif dpkg --compare-versions \"$2\" lt-nl 1.1~exp10~; then\n\t    usermod --home /nonexistent _apt\n\tfi\n    ;;\nesac\n";

    /// xenial's adduser 3.113: system users default to DHOME/NAME and /bin/false.
    fn xenial_adduser(root: &mut MemRoot) {
        root.file(
            "/usr/sbin/adduser",
            "    $home_dir = $special_home || &homedir($new_name, $ingroup_name);\n    $shell = $special_shell || '/bin/false';\n",
        );
    }

    #[test]
    fn tomcat7_postinst_creates_its_user_with_adduser() {
        let mut root = base_root();
        xenial_adduser(&mut root);
        root.other("/var/log/tomcat7")
            .other("/var/cache/tomcat7")
            .file("/usr/share/tomcat7/bin/catalina.sh", "");
        let pkgs = [postinst("tomcat7", TOMCAT7_POSTINST)];
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        // users (100) is taken, so the group gets 101; the uid is the first free one.
        assert!(s.accounts.group().contains("tomcat7:x:101:\n"));
        assert!(
            s.accounts
                .passwd()
                .contains("tomcat7:x:100:101::/usr/share/tomcat7:/bin/false\n"),
            "{}",
            s.accounts.passwd()
        );
        assert_eq!(s.accounts.sources["user tomcat7"], "tomcat7 postinst:20");
        assert_eq!(s.accounts.sources["group tomcat7"], "tomcat7 postinst:17");
        assert!(s.effects.contains(&Effect::Chown {
            path: "/var/log/tomcat7".into(),
            uid: 100,
            gid: 4,
            mode: None,
            recursive: true
        }));
        // --no-create-home, and the home exists anyway
        assert!(!s.effects.iter().any(|e| e.path() == "/usr/share/tomcat7"));
        assert_eq!(
            status_of(&s, "addgroup"),
            &Status::Reproduced("accounts (addgroup)".into())
        );
        assert_eq!(
            status_of(&s, "adduser"),
            &Status::Reproduced("accounts (adduser)".into())
        );
        assert!(matches!(
            status_of(&s, "chown -R tomcat7:adm"),
            Status::Reproduced(_)
        ));
        assert_eq!(
            s.coverage.summary().not_covered,
            0,
            "{}",
            s.coverage.report()
        );
    }

    #[test]
    fn xenial_system_users_get_adduser_ids_in_package_order() {
        let mut root = base_root();
        xenial_adduser(&mut root);
        root.other("/var/log/tomcat7").other("/var/cache/tomcat7");
        let pkgs = [
            postinst("systemd", SYSTEMD_POSTINST),
            postinst("apt", APT_POSTINST),
            postinst("tomcat7", TOMCAT7_POSTINST),
        ];
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        let (passwd, group) = (s.accounts.passwd(), s.accounts.group());
        // adduser allocates the uid and the --group gid separately, as in ubuntu:16.04.
        assert!(passwd.contains(
            "systemd-timesync:x:100:102:systemd Time Synchronization,,,:/run/systemd:/bin/false\n"
        ));
        assert!(group.contains("systemd-journal:x:101:\nsystemd-timesync:x:102:\n"));
        assert!(
            passwd.contains("_apt:x:102:65534::/nonexistent:/bin/false\n"),
            "{passwd}"
        );
        assert!(passwd.contains("tomcat7:x:103:104::"), "{passwd}");
        // the usermod of the upgrade branch does not run
        assert!(matches!(status_of(&s, "usermod"), Status::Ignored(_)));
        assert_eq!(
            setup(&root, &pkgs, &Options::default()).unwrap().accounts,
            s.accounts
        );
    }

    #[test]
    fn getent_guarded_adduser_creates_the_user_and_its_home() {
        let mut root = base_root();
        root.other("/var/lib/dpkg");
        let text = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  if ! getent passwd app >/dev/null; then\n    adduser --system --group --home /var/lib/app --gecos 'App daemon' app\n  fi\n  adduser app adm\n  chown app:app /var/lib/app\nfi\n";
        let s = setup(&root, &[postinst("app", text)], &Options::default()).unwrap();
        // bookworm's adduser (the default when none is in the tree): /usr/sbin/nologin
        assert!(
            s.accounts
                .passwd()
                .contains("app:x:100:101:App daemon,,,:/var/lib/app:/usr/sbin/nologin\n"),
            "{}",
            s.accounts.passwd()
        );
        assert!(s.accounts.group().contains("adm:x:4:app\n"));
        assert!(
            s.effects
                .contains(&Effect::dir("/var/lib/app", 0o755, 100, 101))
        );
        assert!(matches!(
            status_of(&s, "adduser app adm"),
            Status::Reproduced(_)
        ));
        // the chown sees the directory adduser made
        assert!(matches!(status_of(&s, "chown"), Status::Reproduced(_)));
        assert_eq!(
            s.coverage.summary().not_covered,
            0,
            "{}",
            s.coverage.report()
        );

        // /nonexistent is never made
        let text = "adduser --system --home /nonexistent nobody2\n";
        let s = setup(&root, &[postinst("x", text)], &Options::default()).unwrap();
        assert!(!s.effects.iter().any(|e| e.path() == "/nonexistent"));
        assert!(
            s.accounts
                .passwd()
                .contains("nobody2:x:100:65534::/nonexistent:")
        );
    }

    /// passwd's postinst (bookworm): the shadow group must have gid 42.
    const PASSWD_POSTINST: &str = "#!/bin/sh\nset -e\n\nif ! getent group shadow | grep -q '^shadow:[^:]*:42'\nthen\n\tgroupadd -g 42 shadow || (\n\t\tcat <<EOF\nGroup ID 42 has been allocated for the shadow group.  You have either\nused 42 yourself or created a shadow group with a different ID.\nEOF\n\t\texit 1\n\t)\nfi\n";

    #[test]
    fn groupadd_with_a_fixed_gid() {
        let pkgs = [postinst("passwd", PASSWD_POSTINST)];
        // with base-passwd's masters, the group exists: nothing to add
        let s = setup(&base_root(), &pkgs, &Options::default()).unwrap();
        assert_eq!(s.accounts.gid("shadow"), Some(42));
        assert_eq!(
            status_of(&s, "groupadd"),
            &Status::Reproduced("accounts (groupadd)".into())
        );
        let mut root = MemRoot::new();
        root.file(accounts::PASSWD_MASTER, "root:*:0:0:root:/root:/bin/bash\n")
            .file(accounts::GROUP_MASTER, "root:*:0:\n");
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        assert!(s.accounts.group().ends_with("shadow:x:42:\n"));
        assert_eq!(s.accounts.sources["group shadow"], "passwd postinst:6");
        // gid 42 taken by another group: groupadd fails, and the report says so
        root.file(accounts::GROUP_MASTER, "root:*:0:\nother:*:42:\n");
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        assert_eq!(s.accounts.gid("shadow"), None);
        assert!(matches!(status_of(&s, "groupadd"), Status::NotCovered(w) if w.contains("42")));
    }

    #[test]
    fn ids_from_a_lower_layer_are_kept_for_adduser_users() {
        let mut root = base_root();
        root.other("/var/log/tomcat7").other("/var/cache/tomcat7");
        // a lower layer (or an earlier build) put tomcat7 at ids a fresh allocation would not
        // pick, and the new layer brings another adduser user first
        root.file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\ntomcat7:x:104:106::/usr/share/tomcat7:/bin/false\n",
        )
        .file("/etc/group", "root:x:0:\nadm:x:4:\ntomcat7:x:106:\n");
        let pkgs = [
            postinst("apt", APT_POSTINST),
            postinst("tomcat7", TOMCAT7_POSTINST),
        ];
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        assert_eq!(s.accounts.uid("tomcat7"), Some(104));
        assert_eq!(s.accounts.gid("tomcat7"), Some(106));
        assert_eq!(s.accounts.uid("_apt"), Some(100));
        assert_eq!(
            s.accounts
                .users
                .iter()
                .filter(|u| u.name == "tomcat7")
                .count(),
            1
        );
        assert!(matches!(status_of(&s, "adduser"), Status::Reproduced(_)));
    }

    #[test]
    fn adduser_and_sysusers_ids_do_not_collide() {
        let mut root = base_root();
        root.file("/usr/lib/sysusers.d/app.conf", "u app - \"App\" /srv/app\n");
        let text = "adduser --system --group --no-create-home svc\nuseradd -r -M -s /usr/sbin/nologin shadowsvc\n";
        let pkgs = [postinst("svc", text)];
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        assert_eq!(s.accounts.uid("app"), Some(999));
        assert_eq!(s.accounts.uid("svc"), Some(100));
        // useradd -r goes below the lowest used system id, and prefers gid = uid
        assert_eq!(s.accounts.uid("shadowsvc"), Some(998));
        assert_eq!(s.accounts.gid("shadowsvc"), Some(998));
        // a range narrowed onto sysusers' ids: adduser skips the taken one
        root.file(
            "/etc/adduser.conf",
            "FIRST_SYSTEM_UID=998\nLAST_SYSTEM_UID=999\nFIRST_SYSTEM_GID=998\nLAST_SYSTEM_GID=999\n",
        );
        let s = setup(&root, &pkgs, &Options::default()).unwrap();
        assert_eq!(s.accounts.uid("svc"), Some(998));
        assert_eq!(s.accounts.gid("svc"), Some(998));
        // useradd goes below the lowest used system id
        assert_eq!(s.accounts.uid("shadowsvc"), Some(997));
        let ids: BTreeSet<u32> = s.accounts.users.iter().map(|u| u.uid).collect();
        assert_eq!(ids.len(), s.accounts.users.len());
        let gids: BTreeSet<u32> = s.accounts.groups.iter().map(|g| g.gid).collect();
        assert_eq!(gids.len(), s.accounts.groups.len());
    }
}
