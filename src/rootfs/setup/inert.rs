//! Commands that change nothing in an image, ignored on purpose with the reason: read-only
//! queries, messages, services and init (no init system runs in a build), debconf (default
//! answers), and state of a running host (nscd's cache, the kernel's binfmt_misc, the
//! initramfs); `ldconfig` is reproduced by [`super::ldcache`]. A program no rule answers is judged by [`unknown`]: ignored when it cannot
//! change a file, not covered otherwise.

use super::coverage::Status;
use super::rule::{Call, Context, Programs, Rule};

pub const RULES: &[Rule] = &[
    Rule::named(&["nscd"]).judge(|_, _| {
        ignored("flushes a running nscd's cache: nothing runs at build time")
    }),
    Rule::named(&["cd"]).judge(|_, _| {
        ignored("changes the script's working directory: no effect by itself")
    }),
    Rule::named(&[
        "uname",
        "seq",
        "ischroot",
        "pidof",
        "nproc",
        "sha1sum",
        "sha224sum",
        "sha384sum",
        "sha512sum",
        "b2sum",
    ])
    .judge(|_, _| ignored("read-only query")),
    Rule::named(&["date"]).judge(date),
    Rule::named(&["systemd"]).judge(|call, _| {
        let args = call.args();
        args.iter()
            .all(|a| matches!(*a, "--help" | "--version"))
            .then(|| Status::Ignored("read-only query".into()))
    }),
    Rule::named(&["apt-config"]).judge(|call, _| {
        matches!(call.args().first(), Some(&"shell" | &"dump"))
            .then(|| Status::Ignored("read-only query".into()))
    }),
    Rule::named(&["eval"]).judge(eval_apt_config),
    Rule::named(&["perl"]).judge(|call, _| {
        (call.args() == ["-e", ""]).then(|| Status::Ignored("checks that perl runs: no effect".into()))
    }),
    Rule::named(&["telinit"]).judge(|_, _| {
        ignored("asks a running init to re-execute: no init runs during an image build")
    }),
    Rule::named(&["update-initramfs"]).judge(|_, _| {
        ignored(
            "rebuilds the initramfs of installed kernels: a container image does not boot its own kernel",
        )
    }),
    Rule::named(&["restorecon"]).judge(|_, ctx| {
        (!(ctx.exists)("/etc/selinux/config")).then(|| {
            Status::Ignored(
                "SELinux labels: the image has no SELinux policy (no /etc/selinux/config)".into(),
            )
        })
    }),
    Rule::named(&["update-menus"]).judge(|_, ctx| {
        (!(ctx.exists)("/usr/bin/update-menus")).then(|| {
            Status::Ignored(
                "menu is not installed (no /usr/bin/update-menus): the script's guard skips it"
                    .into(),
            )
        })
    }),
    Rule::named(&["apt-key"]).judge(apt_key_del),
    Rule::named(&["mktemp", "tempfile"])
        .judge(|_, _| ignored("temporary file, removed by the script")),
    // openjdk-8's postinst dumps the class-data-sharing archive (classes.jsa): a startup
    // cache the JVM does without (newer JDK packages ship it prebuilt).
    Rule::new(Programs::Suffix("/bin/java")).judge(|call, _| {
        call.args().contains(&"-Xshare:dump").then(|| {
            Status::Ignored(
                "class-data-sharing archive: a startup-time cache Java runs without".into(),
            )
        })
    }),
    Rule::named(&["java"]).judge(|call, _| {
        call.args()
            .contains(&"-version")
            .then(|| Status::Ignored("read-only query".into()))
    }),
    Rule::named(&[".", "source"]).judge(|call, _| {
        Some(if call.args().iter().any(|a| a.contains("debconf")) {
            Status::Ignored("debconf: default answers are used".into())
        } else {
            Status::Ignored("reads shell settings into the script: no effect by itself".into())
        })
    }),
    Rule::named(&[
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
        "update-rc.d",
        "invoke-rc.d",
        "service",
        "start-stop-daemon",
    ])
    .judge(|_, _| ignored("service enablement/start: a container has no init system")),
    Rule::new(Programs::Prefix("db_")).judge(|_, _| ignored("debconf: default answers are used")),
    Rule::named(&["ldconfig"]).judge(|_, ctx| {
        Some(match ctx.produced.get(super::ldcache::CACHE) {
            Some(mech) => Status::Reproduced(mech.clone()),
            None => Status::Ignored("no ldconfig in the image: nothing reads a cache".into()),
        })
    }),
    Rule::named(&["update-binfmts"])
        .judge(|_, _| ignored("binfmt_misc registration is state of the host kernel")),
];

fn ignored(why: &str) -> Option<Status> {
    Some(Status::Ignored(why.to_owned()))
}

fn date(call: &Call<'_>, _: &Context<'_>) -> Option<Status> {
    let sets = call
        .args()
        .iter()
        .any(|a| *a == "-s" || a.starts_with("--set") || a.starts_with("-s"));
    (!sets).then(|| Status::Ignored("read-only query (prints the time)".into()))
}

/// `eval $(apt-config shell VAR Key)`: sets a variable of the script from apt's configuration.
fn eval_apt_config(call: &Call<'_>, _: &Context<'_>) -> Option<Status> {
    let subs = &call.cmd.substitutions;
    (!subs.is_empty() && subs.iter().all(|s| s.starts_with("apt-config shell "))).then(|| {
        Status::Ignored("sets a script variable from apt's configuration (apt-config shell)".into())
    })
}

/// `apt-key --keyring FILE del KEY` of a keyring that a fresh install does not have.
fn apt_key_del(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let args = call.args();
    let absent_keyring = args
        .iter()
        .position(|a| *a == "--keyring")
        .and_then(|i| args.get(i + 1))
        .is_some_and(|k| !k.contains('$') && !(ctx.exists)(k));
    (args.contains(&"del") && absent_keyring).then(|| {
        Status::Ignored("the keyring does not exist on a fresh install: no key to delete".into())
    })
}

/// Programs that read, print or compute and cannot change a file by themselves (their
/// output redirections are judged before any rule).
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

/// The verdict on a command no rule answered.
pub fn unknown(call: &Call<'_>) -> Status {
    let prog = call.program();
    if NO_EFFECT.contains(&prog) || prog == "find" {
        Status::Ignored("no effect on the filesystem".into())
    } else {
        Status::NotCovered(format!("{prog}: no mechanism reproduces it"))
    }
}
