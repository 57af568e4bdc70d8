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
//!
//! Each script command goes to the [`rule::Rule`]s of its program, registered in [`RULES`]
//! (how a rule runs, settles and judges is in [`rule`]). Teaching setup a new program is one
//! rule in the file of its mechanism. Which file answers which programs:
//!
//! | file              | programs                                                           |
//! |-------------------|--------------------------------------------------------------------|
//! | `accounts.rs`     | update-passwd, shadowconfig, systemd-sysusers                      |
//! | `adduser.rs`      | adduser, addgroup, useradd, groupadd, usermod, gpasswd             |
//! | `alternatives.rs` | update-alternatives                                                |
//! | `ucf.rs`          | ucf                                                                |
//! | `fsops.rs`        | chown, chgrp, chmod, mkdir, touch, ln, umask, cp, install          |
//! | `remove.rs`       | rm, rmdir, mv                                                      |
//! | `tmpfiles.rs`     | systemd-tmpfiles                                                   |
//! | `inert.rs`        | queries, services, debconf, host state (nscd, ldconfig, ...)       |
//! | `certs.rs`        | update-ca-certificates, keytool, java (the cacerts keystore)       |
//! | `dpkgdb.rs`       | dpkg-divert, dpkg-trigger, dpkg-maintscript-helper, dpkg queries   |
//! | `dpkgstate.rs`    | (data) dpkg's arch and diversions, apt's extended_states           |
//! | `ldcache.rs`      | (data) ldconfig's /etc/ld.so.cache                                  |
//! | `pam.rs`          | pam-auth-update                                                    |
//! | `gaps.rs`         | known but not reproduced: glib-compile-schemas, gio-querymodules, … |
//!
//! Judged before any rule, whatever the program (here): removal scripts, `.dpkg-new` merges,
//! output redirections, calls of the script's own or sourced functions. After the rules:
//! `cheap.rs` (fixed effects of base-files, libc-bin, ...) covers the file commands of the
//! postinsts it replaces, and [`inert::unknown`] judges a program no rule answered.
//! Data-driven mechanisms with no command of their own: `certs.rs` (the bundle and keystore
//! themselves), `cheap.rs`, `tmpfiles.rs`, `accounts.rs`; the shared vocabulary is in
//! `tree.rs` (the tree and effects), `userdb.rs` (the account database), `shell.rs` (reading
//! scripts) and `coverage.rs` (the report).

pub mod accounts;
pub mod adduser;
pub mod alternatives;
pub mod certs;
pub mod cheap;
pub mod coverage;
mod dpkgdb;
pub mod dpkgstate;
pub mod fsops;
mod gaps;
mod inert;
pub mod ldcache;
pub mod pam;
mod remove;
mod rule;
pub mod shell;
pub mod tmpfiles;
mod tree;
pub mod ucf;
pub mod userdb;

use std::collections::{BTreeMap, BTreeSet};

use coverage::{CommandReport, Status};
use rule::{Call, Context, Made, Pass, Rule, Script, ShellScript, Verdict};
use shell::Command;
pub use tree::{Effect, MemRoot, PackageScripts, RootView, normalize, sort_effects};

/// Every rule, by mechanism. For a program, the first rule in this order that answers wins
/// (at each moment: run, settle, judge).
const RULES: &[&[Rule]] = &[
    accounts::RULES,
    adduser::RULES,
    alternatives::RULES,
    ucf::RULES,
    pam::RULES,
    fsops::RULES,
    remove::RULES,
    tmpfiles::RULES,
    // Before certs: `java -version` is a query whatever else it is given.
    inert::RULES,
    certs::RULES,
    dpkgdb::RULES,
    gaps::RULES,
];

/// The rules that answer for `program`, in table order.
fn rules_for(program: &str) -> impl Iterator<Item = &'static Rule> {
    RULES
        .iter()
        .flat_map(|rules| rules.iter())
        .filter(move |r| r.programs.matches(program))
}

/// What the pipeline passes besides the tree and the scripts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Users declared by the recipe.
    pub extra_users: Vec<accounts::ExtraUser>,
    /// Seconds since the epoch for dates written into files (SOURCE_DATE_EPOCH).
    pub epoch: u64,
    /// The dpkg architecture of the image (`amd64`, `arm64`); empty when unknown.
    pub architecture: String,
    /// This layer's packages with apt's automatic-install mark ([`dpkgstate::Selection`]).
    pub selections: Vec<dpkgstate::Selection>,
}

/// Everything setup computed.
#[derive(Debug, Clone)]
pub struct Setup {
    /// In the order to apply them ([`sort_effects`]).
    pub effects: Vec<Effect>,
    pub accounts: userdb::Accounts,
    pub alternatives: alternatives::Alternatives,
    pub coverage: coverage::Coverage,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Cert(#[from] certs::CertError),
}

/// Reproduces the effects of `packages`' maintainer scripts on `root` (the merged tree of
/// their files, scripts not run), and reports coverage command by command.
pub fn setup(
    root: &dyn RootView,
    packages: &[PackageScripts],
    options: &Options,
) -> Result<Setup, SetupError> {
    let scripts = Script::read_all(root, packages);
    let mut accounts =
        accounts::with_scripts(root, &options.extra_users, &adduser::from_scripts(&scripts));
    accounts.last_change = userdb::last_change_day(options.epoch);
    let mut notes = Vec::new();
    let mut made = Made::default();
    made.add(
        dpkgstate::arch_file(&options.architecture),
        "dpkg (native architecture)",
    );
    made.add(
        dpkgstate::diversions_file(&dpkgstate::diversions(root, &scripts)),
        "dpkg-divert",
    );
    made.add(
        dpkgstate::extended_states(root, &options.architecture, &options.selections),
        "apt (automatically installed packages)",
    );
    made.add(
        ldcache::effects(root, &options.architecture),
        "ldconfig (libc-bin's trigger)",
    );
    let data = from_data(root, &accounts, options.epoch, &mut made, &mut notes)?;
    let mut pass = Pass {
        root,
        accounts: &accounts,
        made,
        umask: 0o022,
    };
    let mut reports = Vec::new();
    let mut pending = Vec::new();
    for script in &scripts {
        read_script(&mut pass, script, &mut reports, &mut pending);
    }
    let mut installs = alternatives::from_jinfo(root);
    installs.extend(alternatives::from_scripts(&scripts));
    alternatives::add_script_slaves(&mut installs, &scripts);
    let ucf_state = ucf::state(root, &scripts);
    let ucf_paths: Vec<String> = ucf_state.iter().map(|e| e.path().to_owned()).collect();
    pass.made.remove(&ucf_paths);
    pass.made.add(ucf_state, "ucf (hashfile)");
    let alternatives = alternatives::Alternatives::new(root, installs);
    notes.extend(
        alternatives
            .missing
            .iter()
            .map(|m| format!("alternative path missing: {m}")),
    );
    pass.made.add(alternatives.effects(root), "alternatives");
    let names: BTreeSet<String> = alternatives.groups.keys().cloned().collect();
    for p in pending {
        let report = settle_or_judge(&mut pass, p, &data, &names);
        reports.push(report);
    }
    let mut effects = pass.made.effects;
    sort_effects(&mut effects);
    Ok(Setup {
        effects,
        accounts,
        alternatives,
        coverage: coverage::Coverage {
            commands: in_script_order(packages, reports),
            data_notes: notes,
        },
    })
}

/// What judging the script commands needs from the data-driven mechanisms.
struct Data {
    /// Packages whose postinst a fixed rule in [`cheap`] replaces.
    rule_packages: BTreeSet<String>,
    /// tmpfiles.d files applied.
    tmpfiles: Vec<String>,
    has_sysusers: bool,
}

/// The mechanisms that read the packages' data rather than their scripts, applied before any
/// script command so the commands see what they made: the account files, the fixed rules,
/// tmpfiles.d, the CA bundle and the Java keystore.
fn from_data(
    root: &dyn RootView,
    accounts: &userdb::Accounts,
    epoch: u64,
    made: &mut Made,
    notes: &mut Vec<String>,
) -> Result<Data, SetupError> {
    notes.extend(
        accounts
            .unsupported
            .iter()
            .map(|u| format!("account declaration not applied: {u}")),
    );
    if !accounts.users.is_empty() {
        made.add(accounts.effects(), "accounts");
    }
    let mut rule_packages = BTreeSet::new();
    for r in cheap::rules(root, accounts) {
        rule_packages.insert(r.package.to_owned());
        made.add(r.effects, &format!("rule {}", r.package));
    }
    let tmp = tmpfiles::tmpfiles(root, accounts);
    notes.extend(
        tmp.unsupported
            .iter()
            .map(|u| format!("tmpfiles.d line not applied: {u}")),
    );
    made.add(tmp.effects, "tmpfiles.d");
    made.add(
        pam::effects(root),
        "pam-auth-update (profiles in /usr/share/pam-configs)",
    );
    made.add(certs::ca_certificates(root)?, "certs");
    if root.exists("/usr/share/ca-certificates-java") && made.produced.contains_key(certs::BUNDLE) {
        made.add(certs::java_cacerts(root, epoch)?, "certs (Java keystore)");
    }
    Ok(Data {
        rule_packages,
        tmpfiles: tmp.files,
        has_sysusers: !accounts::sysusers_files(root).is_empty(),
    })
}

/// A command left to be judged once every mechanism ran.
struct Pending<'s> {
    call: Call<'s>,
    shell: &'s ShellScript,
    /// What the rule that ran it could not reproduce.
    why: Option<String>,
}

/// Reads one script's commands in order: each is decided now by its program's rule, or left
/// to be judged once every mechanism ran.
fn read_script<'s>(
    pass: &mut Pass<'_>,
    script: &'s Script<'_>,
    reports: &mut Vec<CommandReport>,
    pending: &mut Vec<Pending<'s>>,
) {
    let Some(shell) = &script.shell else {
        // A compiled maintainer script (some old Essential packages ship one): nothing here
        // can read it, so the whole script is reported as not covered.
        let cmd = Command::opaque(format!("({} is a binary program)", script.name));
        let status = Status::NotCovered(
            "not a shell script (a compiled program): its effects are unknown".into(),
        );
        reports.push(report(&script.call(&cmd), status));
        return;
    };
    pass.umask = 0o022;
    for cmd in &shell.commands {
        let call = script.call(cmd);
        let verdict = match &cmd.dead {
            _ if !call.runs() => Verdict::Later(None),
            Some(why) => Verdict::Now(Status::Ignored(format!(
                "not run on a fresh install: {why}"
            ))),
            None => match rules_for(call.program()).find_map(|r| r.run) {
                Some(run) => run(pass, &call),
                None => Verdict::Later(None),
            },
        };
        match verdict {
            Verdict::Now(status) => reports.push(report(&call, status)),
            Verdict::Later(why) => pending.push(Pending { call, shell, why }),
        }
    }
}

/// The verdict on a command no rule decided while the scripts were read.
fn settle_or_judge(
    pass: &mut Pass<'_>,
    p: Pending<'_>,
    data: &Data,
    alternatives: &BTreeSet<String>,
) -> CommandReport {
    let settle = rules_for(p.call.program()).find_map(|r| r.settle);
    if let Some(status) = settle.and_then(|settle| settle(pass, &p.call)) {
        return report(&p.call, status);
    }
    let root = pass.root;
    let ctx = Context {
        produced: &pass.made.produced,
        exists: &|p| root.exists(p),
        is_dir: &|p| root.is_dir(p),
        accounts: pass.accounts,
        alternatives,
        rule_packages: &data.rule_packages,
        functions: &p.shell.functions,
        sourced: &p.shell.sourced,
        temp_vars: &p.shell.temp_vars,
        has_sysusers: data.has_sysusers,
        tmpfiles: &data.tmpfiles,
    };
    let status = match (classify(&p.call, &ctx), p.why) {
        (Status::NotCovered(_), Some(why)) => Status::NotCovered(why),
        (status, _) => status,
    };
    report(&p.call, status)
}

/// Judges a command no mechanism decided: what holds whatever the program, then the
/// program's rules, then [`inert::unknown`].
fn classify(call: &Call<'_>, ctx: &Context<'_>) -> Status {
    if let Some(status) = before_rules(call, ctx) {
        return status;
    }
    let prog = call.program();
    let status = rules_for(prog)
        .filter_map(|r| r.judge)
        .find_map(|judge| judge(call, ctx))
        .unwrap_or_else(|| inert::unknown(call));
    cheap::replaced(call.package, prog, ctx.rule_packages, status)
}

/// Verdicts that do not depend on the program: removal scripts, unknown program names,
/// merges with an old version, output redirections, calls of functions.
fn before_rules(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let (cmd, prog) = (call.cmd, call.program());
    if call.script == "prerm" || call.script == "postrm" {
        return Some(Status::Ignored(
            "removal script: does not run when installing".into(),
        ));
    }
    if let Some(limit) = cmd.too_complex {
        return Some(Status::NotCovered(format!("too complex to read: {limit}")));
    }
    if prog.contains('$') || prog.is_empty() {
        return Some(Status::NotCovered(
            "the program name depends on runtime values".into(),
        ));
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
        return Some(Status::Ignored(
            "merges with an existing file (.dpkg-new/.dpkg-old): nothing to merge on a fresh install"
                .into(),
        ));
    }
    if let Some(status) = redirected(call, ctx) {
        return Some(status);
    }
    if ctx.functions.contains(prog) {
        return Some(Status::Ignored(
            "calls a function of this script; its commands are classified where it is defined"
                .into(),
        ));
    }
    ctx.sourced.get(prog).cloned().map(Status::Ignored)
}

/// Output redirections: covered when a mechanism produced the target. Writing the script's
/// own temporary file leaves nothing in the image: the command is judged alone.
fn redirected(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let is_temp = |t: &str| {
        let v = t
            .trim_start_matches('$')
            .trim_start_matches('{')
            .trim_end_matches('}');
        t.starts_with('$') && ctx.temp_vars.contains(v)
    };
    let redirects: Vec<&String> = call.cmd.redirects.iter().filter(|t| !is_temp(t)).collect();
    if redirects.is_empty() {
        return None;
    }
    let mut mechs = Vec::new();
    for t in redirects {
        match ctx.produced.get(t) {
            Some(m) => mechs.push(m.clone()),
            None if ctx.rule_packages.contains(call.package) => {
                mechs.push(format!("rule {}", call.package))
            }
            None => return Some(Status::NotCovered(format!("writes {t}"))),
        }
    }
    Some(Status::Reproduced(mechs.join(", ")))
}

fn report(call: &Call<'_>, status: Status) -> CommandReport {
    let cmd = call.cmd;
    CommandReport {
        package: call.package.to_owned(),
        script: call.script.to_owned(),
        line: cmd.line,
        command: if cmd.words.is_empty() {
            cmd.text.clone()
        } else {
            cmd.words.join(" ")
        },
        status,
    }
}

/// Reports by package (in the order given), script (in the order dpkg runs them) and line.
/// The sort is stable: commands of one line stay in the order they were decided.
fn in_script_order(
    packages: &[PackageScripts],
    mut reports: Vec<CommandReport>,
) -> Vec<CommandReport> {
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
    reports.sort_by_key(|r| {
        (
            pkg_order.get(r.package.as_str()).copied(),
            order(&r.script),
            r.line,
        )
    });
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_all(
        script: &str,
        kind: &str,
        exists: &dyn Fn(&str) -> bool,
        produced: &BTreeMap<String, String>,
        sourced: &BTreeMap<String, String>,
    ) -> Vec<(String, Status)> {
        let accounts = userdb::Accounts::default();
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
            .map(|cmd| {
                let call = Call {
                    package: "p",
                    script: kind,
                    cmd,
                };
                (cmd.words.join(" "), classify(&call, &ctx))
            })
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

    /// One rule runs (or settles) a program's command: the table must not leave it to the
    /// order of the files which one.
    #[test]
    fn at_most_one_run_and_one_settle_per_program() {
        let mut runs = BTreeSet::new();
        let mut settles = BTreeSet::new();
        for rule in RULES.iter().flat_map(|r| r.iter()) {
            let rule::Programs::Named(names) = rule.programs else {
                assert!(rule.run.is_none() && rule.settle.is_none());
                continue;
            };
            for name in names {
                assert!(
                    rule.run.is_none() || runs.insert(*name),
                    "two runs for {name}"
                );
                assert!(
                    rule.settle.is_none() || settles.insert(*name),
                    "two settles for {name}"
                );
            }
        }
        assert!(runs.contains("rm") && settles.contains("rm"));
    }

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

    /// Both moments of the `rm` rule: in script order it undoes what an earlier command made;
    /// in a function body, what a later line made (the function runs after it).
    #[test]
    fn rm_undoes_what_the_scripts_made() {
        let mut root = base_root();
        root.other("/var/lib/app");
        let text = "#!/bin/sh\nset -e\ncleanup() {\n  rm -f /var/lib/app/fresh\n}\nif [ \"$1\" = configure ]; then\n  touch /var/lib/app/marker\n  rm -f /var/lib/app/marker\n  touch /var/lib/app/fresh\n  cleanup\n  rm -f /var/lib/app/old\nfi\n";
        let s = setup(&root, &[postinst("app", text)], &Options::default()).unwrap();
        assert!(
            !s.effects
                .iter()
                .any(|e| e.path().starts_with("/var/lib/app/")),
            "{:?}",
            s.effects
        );
        assert_eq!(
            status_of(&s, "rm -f /var/lib/app/marker"),
            &Status::Reproduced("filesystem command (removes what an earlier command made)".into())
        );
        assert_eq!(
            status_of(&s, "rm -f /var/lib/app/fresh"),
            &Status::Reproduced(
                "filesystem command (removes what another command of the script made)".into()
            )
        );
        assert_eq!(
            status_of(&s, "rm -f /var/lib/app/old"),
            &Status::Ignored("/var/lib/app/old does not exist on a fresh install".into())
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
