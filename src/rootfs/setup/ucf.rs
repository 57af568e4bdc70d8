//! Conffiles that postinsts install with `ucf SRC DEST` (tomcat10: its seven XML/properties
//! files into `/etc/tomcat10`, `/etc/default/tomcat10`, `/etc/logrotate.d/tomcat10`).
//!
//! On a fresh install ucf simply copies SRC to DEST (there is no old version to merge, so
//! `--three-way` and `--debconf-ok` change nothing). The copy is 0644 root:root; a later
//! `chown`/`chmod` in the same script ([`super::fsops`]) sets the package's own ownership.

use super::coverage::Status;
use super::rule::{Call, Pass, Rule, Verdict};
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
}
