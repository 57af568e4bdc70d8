//! What happened to each command of each maintainer script: reproduced (and by which
//! mechanism), ignored on purpose (and why), or not covered. Unknown commands are never
//! dropped: anything no rule recognises is "not covered".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::accounts::Accounts;
use super::shell::Command;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Reproduced by the named mechanism.
    Reproduced(String),
    /// Deliberately not reproduced, with the reason.
    Ignored(String),
    /// Not reproduced, with what is missing.
    NotCovered(String),
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Reproduced(_) => "reproduced",
            Status::Ignored(_) => "ignored",
            Status::NotCovered(_) => "NOT COVERED",
        }
    }
    pub fn detail(&self) -> &str {
        match self {
            Status::Reproduced(s) | Status::Ignored(s) | Status::NotCovered(s) => s,
        }
    }
}

/// One command of one script.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandReport {
    pub package: String,
    /// `preinst`, `postinst`, `prerm`, `postrm`.
    pub script: String,
    pub line: usize,
    /// The command after substitution (the words joined), as the report shows it.
    pub command: String,
    pub status: Status,
}

/// Counts for `build`'s one-line summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub packages: usize,
    pub commands: usize,
    pub reproduced: usize,
    pub ignored: usize,
    pub not_covered: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maintainer scripts of {} packages: {} commands, {} reproduced, {} ignored on purpose, {} not covered",
            self.packages, self.commands, self.reproduced, self.ignored, self.not_covered
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Coverage {
    /// By package, script, line.
    pub commands: Vec<CommandReport>,
    /// Data-file lines not applied (sysusers.d, tmpfiles.d, alternatives whose path is missing).
    pub data_notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{count} maintainer-script commands are not covered (strict):\n{list}")]
pub struct StrictError {
    pub count: usize,
    pub list: String,
}

impl Coverage {
    pub fn summary(&self) -> Summary {
        let packages: BTreeSet<&str> = self.commands.iter().map(|c| c.package.as_str()).collect();
        let mut s = Summary {
            packages: packages.len(),
            commands: self.commands.len(),
            ..Summary::default()
        };
        for c in &self.commands {
            match c.status {
                Status::Reproduced(_) => s.reproduced += 1,
                Status::Ignored(_) => s.ignored += 1,
                Status::NotCovered(_) => s.not_covered += 1,
            }
        }
        s
    }

    pub fn not_covered(&self) -> impl Iterator<Item = &CommandReport> {
        self.commands
            .iter()
            .filter(|c| matches!(c.status, Status::NotCovered(_)))
    }

    /// `--strict`: fails when any command is not covered.
    pub fn strict(&self) -> Result<(), StrictError> {
        let list: Vec<String> = self.not_covered().map(line).collect();
        if list.is_empty() {
            Ok(())
        } else {
            Err(StrictError {
                count: list.len(),
                list: list.join("\n"),
            })
        }
    }

    /// The full report for `plan --scripts`: per package and script, one line per command.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let mut last = (String::new(), String::new());
        for c in &self.commands {
            if (c.package.as_str(), c.script.as_str()) != (last.0.as_str(), last.1.as_str()) {
                let _ = writeln!(out, "{} {}:", c.package, c.script);
                last = (c.package.clone(), c.script.clone());
            }
            let _ = writeln!(
                out,
                "  {:>4}  {:<11} {}  ({})",
                c.line,
                c.status.label(),
                c.command,
                c.status.detail()
            );
        }
        for n in &self.data_notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}

fn line(c: &CommandReport) -> String {
    format!(
        "{} {}:{}: {} ({})",
        c.package,
        c.script,
        c.line,
        c.command,
        c.status.detail()
    )
}

/// What the mechanisms produced, for classifying the commands they did not handle directly.
pub struct Context<'a> {
    /// Path → mechanism that produced it.
    pub produced: &'a BTreeMap<String, String>,
    pub exists: &'a dyn Fn(&str) -> bool,
    pub accounts: &'a Accounts,
    pub alternatives: &'a BTreeSet<String>,
    /// Packages whose postinst a fixed rule in [`super::cheap`] replaces.
    pub rule_packages: &'a BTreeSet<String>,
    /// Functions the script defines.
    pub functions: &'a BTreeSet<String>,
    /// Variables the script sets to `$(mktemp …)`.
    pub temp_vars: &'a BTreeSet<String>,
    pub has_sysusers: bool,
    pub tmpfiles: &'a [String],
}

const NO_EFFECT: &[&str] = &[
    "echo",
    "printf",
    "test",
    "[",
    "true",
    "false",
    ":",
    "exit",
    "set",
    "return",
    "command",
    "which",
    "type",
    "read",
    "grep",
    "egrep",
    "fgrep",
    "awk",
    "tr",
    "sort",
    "uniq",
    "cmp",
    "diff",
    "basename",
    "dirname",
    "readlink",
    "realpath",
    "stat",
    "expr",
    "cut",
    "head",
    "tail",
    "id",
    "getent",
    "unset",
    "export",
    "local",
    "shift",
    "break",
    "continue",
    "cat",
    "wc",
    "md5sum",
    "sha256sum",
    "dpkg-query",
    "dpkg-architecture",
    "dpkg-realpath",
    "trap",
    "umask",
    "sleep",
    "ls",
    "mountpoint",
    "sed",
];

const SERVICES: &[&str] = &[
    "deb-systemd-helper",
    "deb-systemd-invoke",
    "systemctl",
    "update-rc.d",
    "invoke-rc.d",
    "service",
    "start-stop-daemon",
];

/// Classifies a command no mechanism handled directly.
pub fn classify(package: &str, script: &str, cmd: &Command, ctx: &Context<'_>) -> Status {
    let ign = |s: &str| Status::Ignored(s.to_owned());
    let rep = |s: &str| Status::Reproduced(s.to_owned());
    let prog = cmd.program();
    if script == "prerm" || script == "postrm" {
        return ign("removal script: does not run when installing");
    }
    if prog.contains('$') || prog.is_empty() {
        return Status::NotCovered("the program name depends on runtime values".into());
    }
    // Upgrade merges: a fresh install has no old file to merge with.
    let upgrade_suffixes = [".dpkg-new", ".dpkg-old", ".dpkg-dist", ".dpkg-tmp"];
    if cmd
        .redirects
        .iter()
        .chain(cmd.words.iter())
        .any(|w| upgrade_suffixes.iter().any(|s| w.ends_with(s)))
    {
        return ign(
            "merges with an existing file (.dpkg-new/.dpkg-old): nothing to merge on a fresh install",
        );
    }
    // Output redirections: covered when a mechanism produced the target. Writing the
    // script's own temporary file leaves nothing in the image: the command is judged alone.
    let is_temp = |t: &str| {
        let v = t
            .trim_start_matches('$')
            .trim_start_matches('{')
            .trim_end_matches('}');
        t.starts_with('$') && ctx.temp_vars.contains(v)
    };
    let redirects: Vec<&String> = cmd.redirects.iter().filter(|t| !is_temp(t)).collect();
    if !redirects.is_empty() {
        let mut mechs = Vec::new();
        for t in redirects {
            match ctx.produced.get(t) {
                Some(m) => mechs.push(m.clone()),
                None if ctx.rule_packages.contains(package) => {
                    mechs.push(format!("rule {package}"))
                }
                None => return Status::NotCovered(format!("writes {t}")),
            }
        }
        return Status::Reproduced(mechs.join(", "));
    }
    if ctx.functions.contains(prog) {
        return ign(
            "calls a function of this script; its commands are classified where it is defined",
        );
    }
    let args: Vec<&str> = cmd.words[1..].iter().map(String::as_str).collect();
    let operands: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with('-'))
        .collect();
    // A file command whose arguments are computed at run time, on a path a mechanism makes.
    if super::fsops::PROGRAMS.contains(&prog)
        && let Some(path) = operands.last().filter(|p| !p.contains('$'))
        && let Some(mech) = ctx.produced.get(*path)
    {
        return Status::Reproduced(format!("{mech} (makes {path})"));
    }
    let status = match prog {
        "update-passwd" if !ctx.accounts.users.is_empty() => {
            rep("accounts (passwd/group from base-passwd's masters)")
        }
        "nscd" => ign("flushes a running nscd's cache: nothing runs at build time"),
        "mktemp" | "tempfile" => ign("temporary file, removed by the script"),
        "java" if args.contains(&"-version") => ign("read-only query"),
        "." | "source" if !args.iter().any(|a| a.contains("debconf")) => {
            ign("reads shell settings into the script: no effect by itself")
        }
        "systemd-sysusers" if ctx.has_sysusers => rep("accounts (sysusers.d)"),
        "systemd-tmpfiles" if !ctx.tmpfiles.is_empty() => rep("tmpfiles.d"),
        "usermod" | "gpasswd" => Status::NotCovered("changes an account".into()),
        "adduser" | "addgroup" | "useradd" | "groupadd" => {
            let name = operands.last().copied().unwrap_or("");
            if ctx.accounts.uid(name).is_some() || ctx.accounts.gid(name).is_some() {
                Status::Reproduced(format!("accounts ({name} is declared)"))
            } else {
                Status::NotCovered(format!(
                    "account {name} is not declared; add it to the recipe"
                ))
            }
        }
        "update-ca-certificates" if ctx.produced.contains_key(super::certs::BUNDLE) => {
            rep("certs (bundle and links)")
        }
        "java" | "keytool"
            if args.iter().any(|a| a.contains("ca-certificates-java")) || prog == "keytool" =>
        {
            if ctx.produced.contains_key(super::certs::CACERTS) {
                rep("certs (Java cacerts keystore)")
            } else {
                Status::NotCovered("needs the Java cacerts keystore".into())
            }
        }
        "update-alternatives" => {
            if args
                .iter()
                .any(|a| matches!(*a, "--remove" | "--remove-all"))
            {
                ign("removes an older alternative: nothing to remove on a fresh install")
            } else if args
                .iter()
                .any(|a| matches!(*a, "--list" | "--query" | "--display" | "--get-selections"))
            {
                ign("read-only query")
            } else if args.contains(&"--install")
                && args.get(2).is_some_and(|n| ctx.alternatives.contains(*n))
            {
                rep("alternatives (from the package's .jinfo)")
            } else {
                Status::NotCovered("update-alternatives with unresolved arguments".into())
            }
        }
        p if SERVICES.contains(&p) => {
            ign("service enablement/start: a container has no init system")
        }
        "dpkg-trigger" => {
            ign("trigger: the triggered package's effect comes from its own mechanism")
        }
        "dpkg-maintscript-helper" => ign("conffile/symlink migration: only acts on upgrades"),
        "dpkg"
            if args.iter().any(|a| {
                matches!(
                    *a,
                    "--compare-versions" | "--print-architecture" | "-s" | "-l" | "-L" | "--status"
                )
            }) =>
        {
            ign("read-only query")
        }
        "dpkg-statoverride" if args.contains(&"--list") => ign("read-only query"),
        "." | "source" if args.iter().any(|a| a.contains("debconf")) => {
            ign("debconf: default answers are used")
        }
        p if p.starts_with("db_") => ign("debconf: default answers are used"),
        "ldconfig" => ign("ld.so.cache: the default multiarch paths need none"),
        "update-binfmts" => ign("binfmt_misc registration is state of the host kernel"),
        "cp" if package.starts_with("tomcat")
            && args.iter().any(|a| a.contains("default_root")) =>
        {
            ign("the default webapps/ROOT would shadow the image's ROOT.war")
        }
        "cp" | "install" => match operands.last() {
            Some(d) if ctx.produced.contains_key(*d) => {
                Status::Reproduced(ctx.produced[*d].clone())
            }
            _ => Status::NotCovered("copies files".into()),
        },
        "rm" if !operands.is_empty()
            && operands.iter().all(|o| {
                let v = o
                    .trim_start_matches('$')
                    .trim_start_matches('{')
                    .trim_end_matches('}');
                o.starts_with('$') && ctx.temp_vars.contains(v)
            }) =>
        {
            ign("removes the script's own temporary file")
        }
        "rm" | "rmdir" | "mv" => {
            let src: Vec<&str> = if prog == "mv" {
                operands
                    .split_last()
                    .map(|(_, s)| s.to_vec())
                    .unwrap_or_default()
            } else {
                operands.clone()
            };
            if !cmd.unresolved
                && !src.is_empty()
                && src
                    .iter()
                    .all(|p| !(ctx.exists)(p) && !ctx.produced.contains_key(*p))
            {
                ign("nothing to remove or move on a fresh install")
            } else {
                Status::NotCovered("removes or moves files".into())
            }
        }
        "sed" if args.iter().any(|a| a.starts_with("-i")) => {
            Status::NotCovered("edits a file in place".into())
        }
        "find"
            if args
                .iter()
                .any(|a| matches!(*a, "-delete" | "-exec" | "-execdir")) =>
        {
            Status::NotCovered("find with actions".into())
        }
        p if NO_EFFECT.contains(&p) || p == "find" => ign("no effect on the filesystem"),
        _ => Status::NotCovered(format!("{prog}: no mechanism reproduces it")),
    };
    // Packages replaced by a fixed rule: their file commands are what the rule reproduces.
    if let Status::NotCovered(_) = status
        && ctx.rule_packages.contains(package)
        && matches!(
            prog,
            "cp" | "mkdir" | "chown" | "chmod" | "ln" | "touch" | "rmdir" | "update-shells"
        )
    {
        return Status::Reproduced(format!("rule {package}"));
    }
    status
}
