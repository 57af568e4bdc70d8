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
    /// Whether the path is a directory in the packages' tree.
    pub is_dir: &'a dyn Fn(&str) -> bool,
    pub accounts: &'a Accounts,
    pub alternatives: &'a BTreeSet<String>,
    /// Packages whose postinst a fixed rule in [`super::cheap`] replaces.
    pub rule_packages: &'a BTreeSet<String>,
    /// Functions the script defines.
    pub functions: &'a BTreeSet<String>,
    /// Functions of the files the script sources (`. /usr/share/dpkg/sh/dpkg-error.sh`)
    /// that only print messages, set variables or exit: name → why calling one is harmless.
    pub sourced: &'a BTreeMap<String, String>,
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
    // Not when the script makes the new file itself and moves it into place (tzdata's
    // `ln -nsf … /etc/localtime.dpkg-new && mv -f /etc/localtime.dpkg-new /etc/localtime`).
    let installs_new = prog == "ln"
        || (prog == "mv"
            && cmd
                .words
                .last()
                .is_some_and(|d| !upgrade_suffixes.iter().any(|s| d.ends_with(s))));
    if !installs_new
        && cmd
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
    if let Some(why) = ctx.sourced.get(prog) {
        return Status::Ignored(why.clone());
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
        "cd" => ign("changes the script's working directory: no effect by itself"),
        // passwd's `shadowconfig on` (pwconv/grpconv): the accounts mechanism writes
        // /etc/shadow and /etc/gshadow.
        "shadowconfig"
            if args == ["on"]
                && ctx.produced.contains_key("/etc/shadow")
                && ctx.produced.contains_key("/etc/gshadow") =>
        {
            rep("accounts (/etc/shadow and /etc/gshadow)")
        }
        "pam-auth-update" => Status::NotCovered(
            "writes /etc/pam.d/common-* from /usr/share/pam-configs: no mechanism (su, login and other PAM users need them)"
                .into(),
        ),
        p if p.ends_with("/glib-compile-schemas") => Status::NotCovered(
            "compiles the GSettings schemas into gschemas.compiled: no mechanism".into(),
        ),
        p if p.ends_with("/gio-querymodules") => {
            Status::NotCovered("writes the GIO module cache (giomodule.cache): no mechanism".into())
        }
        "uname" | "seq" | "ischroot" | "pidof" | "nproc" | "sha1sum" | "sha224sum"
        | "sha384sum" | "sha512sum" | "b2sum" => ign("read-only query"),
        "date"
            if !args
                .iter()
                .any(|a| *a == "-s" || a.starts_with("--set") || a.starts_with("-s")) =>
        {
            ign("read-only query (prints the time)")
        }
        "systemd" if args.iter().all(|a| matches!(*a, "--help" | "--version")) => {
            ign("read-only query")
        }
        "apt-config" if matches!(args.first(), Some(&"shell" | &"dump")) => {
            ign("read-only query")
        }
        // `eval $(apt-config shell VAR Key)`: sets a variable of the script from apt's
        // configuration.
        "eval"
            if !cmd.substitutions.is_empty()
                && cmd
                    .substitutions
                    .iter()
                    .all(|s| s.starts_with("apt-config shell ")) =>
        {
            ign("sets a script variable from apt's configuration (apt-config shell)")
        }
        "perl" if args == ["-e", ""] => ign("checks that perl runs: no effect"),
        "telinit" => ign("asks a running init to re-execute: no init runs during an image build"),
        "update-initramfs" => ign(
            "rebuilds the initramfs of installed kernels: a container image does not boot its own kernel",
        ),
        "restorecon" if !(ctx.exists)("/etc/selinux/config") => {
            ign("SELinux labels: the image has no SELinux policy (no /etc/selinux/config)")
        }
        "update-menus" if !(ctx.exists)("/usr/bin/update-menus") => ign(
            "menu is not installed (no /usr/bin/update-menus): the script's guard skips it",
        ),
        "apt-key"
            if args.contains(&"del")
                && args
                    .iter()
                    .position(|a| *a == "--keyring")
                    .and_then(|i| args.get(i + 1))
                    .is_some_and(|k| !k.contains('$') && !(ctx.exists)(k)) =>
        {
            ign("the keyring does not exist on a fresh install: no key to delete")
        }
        "dpkg-divert" if args.iter().any(|a| a.starts_with("--list") || *a == "--truename") => {
            ign("read-only query")
        }
        "dpkg-divert" if args.contains(&"--remove") => {
            if (ctx.exists)("/var/lib/dpkg/diversions") {
                Status::NotCovered("removes a diversion from dpkg's database".into())
            } else {
                ign("removes a diversion: the image has no diversions (no /var/lib/dpkg/diversions)")
            }
        }
        "dpkg-divert" => Status::NotCovered(
            "records a diversion in dpkg's database (/var/lib/dpkg/diversions), which the image build does not write"
                .into(),
        ),
        "mktemp" | "tempfile" => ign("temporary file, removed by the script"),
        // openjdk-8's postinst dumps the class-data-sharing archive (classes.jsa): a startup
        // cache the JVM does without (newer JDK packages ship it prebuilt).
        p if p.ends_with("/bin/java") && args.contains(&"-Xshare:dump") => {
            ign("class-data-sharing archive: a startup-time cache Java runs without")
        }
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
        "install"
            if args.contains(&"-d")
                && !cmd.unresolved
                && !operands.is_empty()
                && operands.iter().all(|d| (ctx.exists)(d)) =>
        {
            ign("the directory is already in the packages")
        }
        "cp" | "install" => match operands.split_last() {
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
                ign("the source does not exist on a fresh install: nothing to copy")
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
            } else if prog == "rm"
                && !cmd.unresolved
                && !args.iter().any(|a| {
                    a.starts_with('-') && !a.starts_with("--") && a.contains(['r', 'R'])
                        || *a == "--recursive"
                })
                && !src.is_empty()
                && src.iter().all(|p| (ctx.is_dir)(p))
            {
                // openjdk-8's preinst: `[ -h DOC ] && rm -f DOC` where the package ships DOC
                // as a directory. rm without -r never removes a directory.
                ign("rm without -r does not remove a directory: no effect")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::shell;

    fn classify_all(
        script: &str,
        kind: &str,
        exists: &dyn Fn(&str) -> bool,
        produced: &BTreeMap<String, String>,
        sourced: &BTreeMap<String, String>,
    ) -> Vec<(String, Status)> {
        let accounts = Accounts::default();
        let empty = BTreeSet::new();
        let ctx = Context {
            produced,
            exists,
            is_dir: &|_| false,
            accounts: &accounts,
            alternatives: &empty,
            rule_packages: &empty,
            functions: &empty,
            sourced,
            temp_vars: &empty,
            has_sysusers: false,
            tmpfiles: &[],
        };
        shell::commands_with_args(script, shell::install_args(kind))
            .iter()
            .map(|c| (c.words.join(" "), classify("p", kind, c, &ctx)))
            .collect()
    }

    fn ignored(s: &Status) -> bool {
        matches!(s, Status::Ignored(_))
    }

    #[test]
    fn queries_and_notifications_are_ignored_with_their_reason() {
        // libc6, tzdata, util-linux, debian-archive-keyring, e2fsprogs, bash, ucf.
        let s = "system=`uname -s`\nischroot\nsystemd --help\ntelinit u\nUTdate=$(LC_ALL=C TZ=UTC0 date)\nupdate-initramfs -u\nrestorecon /etc/localtime\nupdate-menus\nfor i in $(seq 6 -1 0); do :; done\neval $(apt-config shell TRUSTEDFILE Apt::GPGV::TrustedKeyring)\napt-key --keyring /etc/apt/trusted.gpg del F42584E6\nx=$(printf x | sha512sum -)\ncd /etc\n";
        let none = |_: &str| false;
        let out = classify_all(s, "postinst", &none, &BTreeMap::new(), &BTreeMap::new());
        let bad: Vec<_> = out.iter().filter(|(_, st)| !ignored(st)).collect();
        assert!(bad.is_empty(), "{bad:?}");
        // With SELinux and menu installed, they are not no-ops any more.
        let all = |_: &str| true;
        let out = classify_all(
            "restorecon /etc/localtime\nupdate-menus\ndate -s 2020-01-01\n",
            "postinst",
            &all,
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert!(out.iter().all(|(_, st)| !ignored(st)), "{out:?}");
    }

    #[test]
    fn diversions_and_shadow() {
        // dash's claim_binsh, passwd's `[ -z "$2" ] && shadowconfig on`.
        let s = "dpkg-divert --listpackage /bin/sh\ndpkg-divert --package bash --no-rename --remove /bin/sh\ndpkg-divert --package dash --no-rename --divert /bin/sh.distrib --add /bin/sh\n[ -z \"$2\" ] && shadowconfig on\n";
        let none = |_: &str| false;
        let mut produced = BTreeMap::new();
        let out = classify_all(s, "postinst", &none, &produced, &BTreeMap::new());
        assert!(ignored(&out[0].1) && ignored(&out[1].1));
        assert!(matches!(out[2].1, Status::NotCovered(_)));
        assert!(matches!(out[4].1, Status::NotCovered(_)));
        for f in ["/etc/shadow", "/etc/gshadow"] {
            produced.insert(f.to_owned(), "accounts".to_owned());
        }
        let out = classify_all(s, "postinst", &none, &produced, &BTreeMap::new());
        assert!(matches!(out[4].1, Status::Reproduced(_)));
    }

    #[test]
    fn sourced_message_functions_and_new_files_moved_into_place() {
        // dpkg's `warning` from dpkg-error.sh; tzdata's `.dpkg-new` then `mv` into place.
        let sourced = BTreeMap::from([("warning".to_owned(), "messages only".to_owned())]);
        let s = "warning \"This system uses merged-usr-via-aliased-dirs\"\nmv -f /etc/localtime.dpkg-new /etc/localtime\nmv -f /etc/a.conf /etc/a.conf.dpkg-old\n";
        let exists = |p: &str| p == "/etc/localtime.dpkg-new" || p == "/etc/a.conf";
        let out = classify_all(s, "postinst", &exists, &BTreeMap::new(), &sourced);
        assert_eq!(out[0].1, Status::Ignored("messages only".into()));
        assert!(matches!(out[1].1, Status::NotCovered(_)), "{out:?}");
        assert!(ignored(&out[2].1));
    }
}
