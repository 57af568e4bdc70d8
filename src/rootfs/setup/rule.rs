//! What a setup rule is, and what it is given. A [`Rule`] answers for the commands of some
//! programs, at up to three moments of [`super::setup`]:
//!
//! 1. **run**, in script order while the scripts are read: it may reproduce the command
//!    (add [`Effect`]s through the [`Pass`]) and give its verdict now, or leave it to be
//!    judged later (optionally with the reason it could not reproduce it);
//! 2. **settle**, once every script was read and the alternatives were made: it may still
//!    reproduce a command that depends on what later lines made (an `rm` in a function body);
//! 3. **judge**, for every command not decided by 1 or 2: a verdict from what all the
//!    mechanisms produced ([`Context`]), without changing anything.
//!
//! Rules live in the file of the mechanism they belong to and are registered in one table in
//! [`super`]; the first rule of the table that answers wins.

use std::collections::{BTreeMap, BTreeSet};

use super::coverage::Status;
use super::shell::{self, Command};
use super::tree::{Effect, PackageScripts, RootView, normalize};
use super::userdb::Accounts;

/// Scripts that run on a fresh install, whose commands may produce effects.
pub const RUN_ON_INSTALL: &[&str] = &["preinst", "postinst"];

/// Which program names a rule answers for.
#[derive(Debug, Clone, Copy)]
pub enum Programs {
    Named(&'static [&'static str]),
    /// A path ending so (`/usr/lib/x86_64-linux-gnu/glib-2.0/glib-compile-schemas`).
    Suffix(&'static str),
    /// A name starting so (debconf's `db_get`, `db_input`, ...).
    Prefix(&'static str),
}

impl Programs {
    pub fn matches(self, program: &str) -> bool {
        match self {
            Programs::Named(names) => names.contains(&program),
            Programs::Suffix(s) => program.ends_with(s),
            Programs::Prefix(p) => program.starts_with(p),
        }
    }
}

/// Reproduces a command in script order.
pub type Run = fn(&mut Pass<'_>, &Call<'_>) -> Verdict;
/// Reproduces a command after every script was read; `None`: leave it to be judged.
pub type Settle = fn(&mut Pass<'_>, &Call<'_>) -> Option<Status>;
/// Judges a command from what the mechanisms produced; `None`: not this rule's to say.
pub type Judge = fn(&Call<'_>, &Context<'_>) -> Option<Status>;

/// What setup does with the commands of some programs.
#[derive(Clone, Copy)]
pub struct Rule {
    pub programs: Programs,
    pub run: Option<Run>,
    pub settle: Option<Settle>,
    pub judge: Option<Judge>,
}

impl Rule {
    /// A rule for `programs` that does nothing yet; add its moments with the methods below.
    pub const fn new(programs: Programs) -> Rule {
        Rule {
            programs,
            run: None,
            settle: None,
            judge: None,
        }
    }
    pub const fn named(names: &'static [&'static str]) -> Rule {
        Rule::new(Programs::Named(names))
    }
    pub const fn run(mut self, f: Run) -> Rule {
        self.run = Some(f);
        self
    }
    pub const fn settle(mut self, f: Settle) -> Rule {
        self.settle = Some(f);
        self
    }
    pub const fn judge(mut self, f: Judge) -> Rule {
        self.judge = Some(f);
        self
    }
}

/// What a rule's run made of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Decided: reported as is.
    Now(Status),
    /// Judged once every mechanism ran. `Some(why)`: what the mechanism could not reproduce,
    /// reported instead when the judgement is "not covered".
    Later(Option<String>),
}

/// One command of one script, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub package: &'a str,
    pub script: &'a str,
    pub cmd: &'a Command,
}

impl<'a> Call<'a> {
    pub fn program(&self) -> &'a str {
        self.cmd.program()
    }
    /// The words after the program.
    pub fn args(&self) -> Vec<&'a str> {
        self.cmd.words[1..].iter().map(String::as_str).collect()
    }
    /// The arguments that are not options (`-f`, `--force`).
    pub fn operands(&self) -> Vec<&'a str> {
        self.args()
            .into_iter()
            .filter(|a| !a.starts_with('-'))
            .collect()
    }
    /// Whether the script runs on a fresh install (`preinst`, `postinst`).
    pub fn runs(&self) -> bool {
        RUN_ON_INSTALL.contains(&self.script)
    }
    /// Where the command is, as account sources and notes name it: `tomcat7 postinst:33`.
    pub fn at(&self) -> String {
        format!("{} {}:{}", self.package, self.script, self.cmd.line)
    }
    /// The mechanism name of what the script itself makes: `tomcat10 postinst`.
    pub fn mechanism(&self) -> String {
        format!("{} {}", self.package, self.script)
    }
}

/// The effects made so far, and which mechanism made each path first.
#[derive(Debug, Clone, Default)]
pub struct Made {
    pub effects: Vec<Effect>,
    /// Path → mechanism that produced it.
    pub produced: BTreeMap<String, String>,
}

impl Made {
    pub fn add(&mut self, new: Vec<Effect>, mechanism: &str) {
        for e in new {
            self.produced
                .entry(e.path().to_owned())
                .or_insert_with(|| mechanism.to_owned());
            self.effects.push(e);
        }
    }

    /// Undoes every effect on `paths` (an `rm` of what an earlier command made).
    pub fn remove(&mut self, paths: &[String]) {
        self.effects
            .retain(|e| !paths.iter().any(|t| t == e.path()));
        for t in paths {
            self.produced.remove(t);
        }
    }
}

/// What the ordered reading of the scripts carries from command to command.
pub struct Pass<'a> {
    pub root: &'a dyn RootView,
    pub accounts: &'a Accounts,
    pub made: Made,
    /// dpkg runs scripts with umask 022; `umask NNN` changes it for what follows, in the
    /// order written (the masked `touch`/`mkdir` are in [`super::fsops`]).
    pub umask: u32,
}

impl Pass<'_> {
    /// Whether `path` is in the packages or made by an earlier effect.
    pub fn exists(&self, path: &str) -> bool {
        self.root.exists(path) || self.made.produced.contains_key(&normalize(path))
    }
}

/// What the mechanisms produced, for judging the commands they did not decide directly.
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

/// Whether a maintainer script is a shell script we can read (some old packages ship
/// compiled programs instead).
fn is_shell_script(text: &str) -> bool {
    !text.starts_with("\u{7f}ELF") && !text.contains('\0')
}

/// One maintainer script, read once: its commands (the arguments of a fresh install
/// substituted) and what judging them needs to know about the whole script.
pub struct Script<'p> {
    pub package: &'p str,
    /// `preinst`, `postinst`, `prerm`, `postrm`.
    pub name: &'static str,
    /// `None` for a compiled program (nothing here can read it).
    pub shell: Option<ShellScript>,
}

pub struct ShellScript {
    pub commands: Vec<Command>,
    pub functions: BTreeSet<String>,
    pub temp_vars: BTreeSet<String>,
    pub sourced: BTreeMap<String, String>,
}

impl<'p> Script<'p> {
    /// The scripts of `packages`, in package order and in the order dpkg runs them.
    pub fn read_all(root: &dyn RootView, packages: &'p [PackageScripts]) -> Vec<Script<'p>> {
        let mut out = Vec::new();
        let templates = debconf_templates(root);
        let none = BTreeMap::new();
        for pkg in packages {
            let debconf = templates.get(&pkg.package).unwrap_or(&none);
            for (name, text) in pkg.scripts() {
                let shell = is_shell_script(text).then(|| ShellScript {
                    commands: shell::commands_with_debconf(
                        text,
                        shell::install_args(name),
                        debconf,
                    ),
                    functions: shell::functions(text),
                    temp_vars: shell::temp_vars(text),
                    sourced: sourced_message_functions(root, text),
                });
                out.push(Script {
                    package: &pkg.package,
                    name,
                    shell,
                });
            }
        }
        out
    }

    /// `cmd`, one of this script's commands, as the rules see it.
    pub fn call<'a>(&'a self, cmd: &'a Command) -> Call<'a> {
        Call {
            package: self.package,
            script: self.name,
            cmd,
        }
    }

    /// The commands that run on a fresh install: those of `preinst` and `postinst` outside
    /// the branches a fresh install does not take.
    pub fn runs_on_install(&self) -> impl Iterator<Item = Call<'_>> {
        let commands = match &self.shell {
            Some(s) if RUN_ON_INSTALL.contains(&self.name) => s.commands.as_slice(),
            _ => &[],
        };
        commands
            .iter()
            .filter(|c| c.dead.is_none())
            .map(|cmd| self.call(cmd))
    }
}

/// The debconf defaults of every package whose `templates` the dpkg database holds
/// (`/var/lib/dpkg/info/PKG.templates`, `PKG:ARCH.templates`), by package name.
fn debconf_templates(root: &dyn RootView) -> BTreeMap<String, BTreeMap<String, String>> {
    const INFO: &str = "/var/lib/dpkg/info";
    let mut out = BTreeMap::new();
    for file in root.list_dir(INFO) {
        let Some(stem) = file.strip_suffix(".templates") else {
            continue;
        };
        let package = stem.split(':').next().unwrap_or(stem).to_owned();
        if let Some(text) = root
            .read(&format!("{INFO}/{file}"))
            .and_then(|b| String::from_utf8(b).ok())
        {
            out.insert(package, shell::debconf_defaults(&text));
        }
    }
    out
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
