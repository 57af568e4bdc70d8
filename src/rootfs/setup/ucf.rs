//! Conffiles that postinsts install with `ucf SRC DEST` (tomcat10: its seven XML/properties
//! files into `/etc/tomcat10`, `/etc/default/tomcat10`, `/etc/logrotate.d/tomcat10`).
//!
//! On a fresh install ucf simply copies SRC to DEST (there is no old version to merge, so
//! `--three-way` and `--debconf-ok` change nothing). The copy is 0644 root:root; a later
//! `chown`/`chmod` in the same script ([`super::fsops`]) sets the package's own ownership.

use super::coverage::Status;
use super::rule::{Call, Pass, Rule, Script, Verdict};
use super::shell::Command;
use super::tree::{Effect, RootView};

pub const RULES: &[Rule] = &[Rule::named(&["ucf"]).run(run)];

/// `ucf SRC DEST`: the copy, made in script order so a later `chown`/`chmod` of DEST sees it.
fn run(pass: &mut Pass<'_>, call: &Call<'_>) -> Verdict {
    if call.cmd.unresolved {
        return Verdict::Later(None);
    }
    let Some((src, dest)) = parse(&call.cmd.words) else {
        return Verdict::Later(None);
    };
    let copy = UcfCopy {
        src,
        dest,
        source: String::new(),
    };
    let (e, missing) = effects(pass.root, std::slice::from_ref(&copy));
    Verdict::Now(if missing.is_empty() {
        pass.made.add(e, "ucf");
        Status::Reproduced("ucf".into())
    } else {
        Status::NotCovered(format!("ucf source {} is not in the tree", copy.src))
    })
}

/// A resolved `ucf` copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UcfCopy {
    pub src: String,
    pub dest: String,
    pub source: String,
}

/// `ucf [options] SRC DEST` → (SRC, DEST); `None` for other forms (`ucf --purge`) or
/// unresolved words.
pub fn parse(words: &[String]) -> Option<(String, String)> {
    if words.first().map(String::as_str) != Some("ucf") {
        return None;
    }
    let mut args = Vec::new();
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            // options with a value
            "--state-dir" | "--src-dir" | "--sum-file" => {
                it.next();
            }
            "--purge" => return None,
            w if w.starts_with('-') => {}
            w => args.push(w.to_owned()),
        }
    }
    match args.as_slice() {
        [src, dest] if !src.contains('$') && !dest.contains('$') => {
            Some((src.clone(), dest.clone()))
        }
        _ => None,
    }
}

/// The copies made by one script's `ucf` commands.
pub fn from_commands(package: &str, script: &str, commands: &[Command]) -> Vec<UcfCopy> {
    commands
        .iter()
        .filter(|c| !c.unresolved)
        .filter_map(|c| {
            let (src, dest) = parse(&c.words)?;
            Some(UcfCopy {
                src,
                dest,
                source: format!("{package}: {script}:{}", c.line),
            })
        })
        .collect()
}

/// Effects of the copies whose source exists; the others are returned as missing.
pub fn effects(root: &dyn RootView, copies: &[UcfCopy]) -> (Vec<Effect>, Vec<UcfCopy>) {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in copies {
        match root.read(&c.src) {
            Some(bytes) => out.push(Effect::file(&c.dest, bytes, 0o644)),
            None => missing.push(c.clone()),
        }
    }
    (out, missing)
}

pub const HASHFILE: &str = "/var/lib/ucf/hashfile";
/// ucf keeps this many rotated copies of the hashfile (`hashfile.0` … `hashfile.7`).
const ROTATIONS: usize = 8;

/// ucf's own state after the scripts' `ucf SRC DEST` commands, in the order they run: the
/// hashfile registers each DEST with the md5 of what was installed (a later `ucf` of the
/// same DEST moves its line to the end), and before each registration ucf rotates the
/// previous hashfile into `hashfile.0` (`.0` into `.1`, … up to `.7`), starting from the
/// empty one ucf's postinst touches; `--three-way` also caches the new file as
/// `cache/:etc:DEST:PATH`, which a later upgrade merges against. `apt-get upgrade` inside the
/// image relies on this: without the hashfile, ucf treats every file as locally modified.
pub fn state(root: &dyn RootView, scripts: &[Script<'_>]) -> Vec<Effect> {
    use md5::Digest as _;
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut history: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let render = |lines: &[(String, String)]| -> String {
        lines
            .iter()
            .map(|(md5, dest)| format!("{md5}  {dest}\n"))
            .collect()
    };
    for call in scripts.iter().flat_map(Script::runs_on_install) {
        if call.program() != "ucf" || call.cmd.unresolved {
            continue;
        }
        let Some((src, dest)) = parse(&call.cmd.words) else {
            continue;
        };
        let Some(bytes) = root.read(&src) else {
            continue;
        };
        history.push(render(&lines));
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        lines.retain(|(_, d)| *d != dest);
        lines.push((md5, dest.clone()));
        if call.cmd.words.iter().any(|w| w == "--three-way") {
            out.retain(|e: &Effect| !e.path().ends_with(&dest.replace('/', ":")));
            out.push(Effect::file(
                &format!("/var/lib/ucf/cache/{}", dest.replace('/', ":")),
                bytes,
                0o644,
            ));
        }
    }
    if history.is_empty() {
        return Vec::new();
    }
    out.push(Effect::file(HASHFILE, render(&lines).into_bytes(), 0o644));
    for (k, text) in history.iter().rev().take(ROTATIONS).enumerate() {
        out.push(Effect::file(
            &format!("{HASHFILE}.{k}"),
            text.clone().into_bytes(),
            0o644,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::shell;
    use crate::rootfs::setup::tree::MemRoot;

    #[test]
    fn tomcat_style_loop() {
        let script = "CONFFILES=\"server.xml web.xml\"\nfor conffile in $CONFFILES;\ndo\n\tucf --debconf-ok --three-way /usr/share/t/etc/$conffile /etc/t/$conffile\ndone\nucf --debconf-ok /usr/share/t/default.template /etc/default/t\n";
        let copies = from_commands("t", "postinst", &shell::commands(script));
        let dests: Vec<_> = copies.iter().map(|c| c.dest.as_str()).collect();
        assert_eq!(
            dests,
            ["/etc/t/server.xml", "/etc/t/web.xml", "/etc/default/t"]
        );
        let mut r = MemRoot::new();
        r.file("/usr/share/t/etc/server.xml", "<Server/>");
        let (e, missing) = effects(&r, &copies);
        assert_eq!(
            e,
            [Effect::file(
                "/etc/t/server.xml",
                b"<Server/>".to_vec(),
                0o644
            )]
        );
        assert_eq!(missing.len(), 2);
    }

    /// tomcat10's registrations: the hashfile in order with md5s, one rotation per call
    /// (the first one the empty file ucf's postinst touched), the three-way cache.
    #[test]
    fn hashfile_rotations_and_cache() {
        let mut r = MemRoot::new();
        r.file("/usr/share/t/a.xml", "a")
            .file("/usr/share/t/b.xml", "b");
        let script = "for f in a.xml b.xml; do\n  ucf --debconf-ok --three-way /usr/share/t/$f /etc/t/$f\ndone\nucf /usr/share/t/a.xml /etc/t/a.xml\nucf /usr/share/t/missing /etc/t/m\n";
        let pkgs = [crate::rootfs::setup::PackageScripts {
            package: "t".into(),
            postinst: Some(script.into()),
            ..Default::default()
        }];
        let e = state(&r, &Script::read_all(&r, &pkgs));
        let text = |p: &str| {
            e.iter()
                .find_map(|x| match x {
                    Effect::WriteFile { path, bytes, .. } if path == p => {
                        Some(String::from_utf8(bytes.clone()).unwrap())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no {p}: {e:?}"))
        };
        // md5("a"), md5("b")
        let (a, b) = (
            "0cc175b9c0f1b6a831c399e269772661  /etc/t/a.xml\n",
            "92eb5ffee6ae2fec3ad71c777531578f  /etc/t/b.xml\n",
        );
        assert_eq!(text(HASHFILE), format!("{b}{a}"));
        assert_eq!(text("/var/lib/ucf/hashfile.0"), format!("{a}{b}"));
        assert_eq!(text("/var/lib/ucf/hashfile.1"), a);
        assert_eq!(text("/var/lib/ucf/hashfile.2"), "");
        assert!(!e.iter().any(|x| x.path() == "/var/lib/ucf/hashfile.3"));
        assert_eq!(text("/var/lib/ucf/cache/:etc:t:b.xml"), "b");
    }
}
