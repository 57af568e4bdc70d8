//! `pam-auth-update`: `/etc/pam.d/common-{auth,account,password,session,
//! session-noninteractive}` and its saved state in `/var/lib/pam`, from the profiles packages
//! drop in `/usr/share/pam-configs` (libpam-modules' `unix`, libpam-systemd's `systemd`, …).
//! Without the common files, every PAM service that includes them (`su`, `login`, `passwd`,
//! `runuser`) fails.
//!
//! What a fresh install's `pam-auth-update --package --force` does (libpam-runtime's postinst
//! and every later package with a profile), following its man page and the Debian program's
//! documented merge:
//! - the profiles enabled are those with `Default: yes` (nothing is preseeded, nothing was
//!   "seen" before), minus any a higher one declares `Conflicts` with, ordered by `Priority`
//!   (highest first), then by name in reverse;
//! - each common file is libpam-runtime's template (`/usr/share/pam/common-TYPE`) with its
//!   "Primary" and "Additional" blocks filled: the lines of each enabled profile of that
//!   block type (the first module of a block uses its `TYPE-Initial` lines when it has
//!   them), each `end` in a control field replaced by the number of module lines left in the
//!   block (in the Primary block this jumps over the `pam_deny` fallback; an empty Primary
//!   block gets `[default=1] pam_permit.so`);
//! - `/var/lib/pam/TYPE` records the profile lines used (`Module: NAME` + lines), and
//!   `/var/lib/pam/seen` every profile known, in the same order.
//!
//! `session-noninteractive` takes a profile's `Session` lines unless the profile says
//! `Session-Interactive-Only: yes`.

use std::collections::{BTreeMap, BTreeSet};

use super::coverage::Status;
use super::rule::Rule;
use super::tree::{Effect, RootView};

pub const PROFILES: &str = "/usr/share/pam-configs";
const TEMPLATES: &str = "/usr/share/pam";
const TYPES: &[&str] = &[
    "auth",
    "account",
    "password",
    "session",
    "session-noninteractive",
];
/// Profiles naming a module pam-auth-update refuses are dropped whole (as it does).
const INVALID_MODULES: &[&str] = &["pam_tally"];

pub const RULES: &[Rule] = &[Rule::named(&["pam-auth-update"]).judge(|call, ctx| {
    let args = call.args();
    Some(
        if args.iter().any(|a| matches!(*a, "--remove" | "--disable")) {
            Status::Ignored("removes or disables a profile: a fresh install enables none to remove".into())
        } else if let Some(mech) = ctx.produced.get("/etc/pam.d/common-auth") {
            Status::Reproduced(mech.clone())
        } else {
            Status::NotCovered(
                "writes /etc/pam.d/common-*: no profile in /usr/share/pam-configs or no template in /usr/share/pam"
                    .into(),
            )
        },
    )
})];

/// One profile file: its fields, continuation lines joined with `\n`, each line trimmed.
#[derive(Debug, Clone, Default)]
struct Profile {
    name: String,
    fields: BTreeMap<String, String>,
    conflicts: BTreeSet<String>,
    priority: i64,
}

impl Profile {
    fn parse(name: &str, text: &str) -> Option<Profile> {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let is_field = !line.starts_with(char::is_whitespace)
                && line.split_once(':').is_some_and(|(k, _)| !k.is_empty());
            if is_field && let Some((key, value)) = line.split_once(':') {
                let key = key.strip_suffix("-Final").unwrap_or(key).to_owned();
                fields.insert(key.clone(), value.trim().to_owned());
                current = Some(key);
            } else if let Some(key) = &current {
                let l = line.trim();
                if !l.is_empty() {
                    let v = fields.entry(key.clone()).or_default();
                    if !v.is_empty() {
                        v.push('\n');
                    }
                    v.push_str(l);
                }
            }
        }
        if fields
            .values()
            .any(|v| INVALID_MODULES.iter().any(|m| v.contains(m)))
        {
            return None;
        }
        if !fields.contains_key("Session-Interactive-Only") {
            for part in ["-Type", "", "-Initial"] {
                if let Some(v) = fields.get(&format!("Session{part}")).cloned() {
                    fields.insert(format!("Session-noninteractive{part}"), v);
                }
            }
        }
        let conflicts = fields
            .get("Conflicts")
            .map(|c| c.split(", ").map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Profile {
            name: name.to_owned(),
            priority: fields
                .get("Priority")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            conflicts,
            fields,
        })
    }

    /// The lines for `field` (`Auth`, `Session-noninteractive`), the `-Initial` variant for
    /// the first module of a block.
    fn lines(&self, field: &str, first: bool) -> Option<&str> {
        let initial = first
            .then(|| self.fields.get(&format!("{field}-Initial")))
            .flatten()
            .filter(|v| !v.is_empty());
        initial
            .or_else(|| self.fields.get(field))
            .map(String::as_str)
    }

    /// `Primary` or `Additional` for `field`, when the profile has that type at all.
    fn kind(&self, field: &str) -> Option<&str> {
        self.fields
            .get(&format!("{field}-Type"))
            .map(String::as_str)
    }
}

/// `auth` → `Auth`, `session-noninteractive` → `Session-noninteractive`.
fn field_of(ty: &str) -> String {
    let mut c = ty.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The profiles of the tree, in pam-auth-update's order: priority, highest first, then name
/// in reverse byte order.
fn profiles(root: &dyn RootView) -> Vec<Profile> {
    let mut out: Vec<Profile> = root
        .list_dir(PROFILES)
        .into_iter()
        // Editor backups (`unix~`, `#unix#`) are not profiles.
        .filter(|n| !(n.ends_with('~') || n.starts_with('#') && n.ends_with('#')))
        .filter_map(|n| {
            let text = String::from_utf8(root.read(&format!("{PROFILES}/{n}"))?).ok()?;
            Profile::parse(&n, &text)
        })
        .collect();
    out.sort_by(|a, b| b.priority.cmp(&a.priority).then(b.name.cmp(&a.name)));
    out
}

/// The `Default: yes` profiles, without those an earlier enabled one conflicts with.
fn enabled(sorted: &[Profile]) -> Vec<&Profile> {
    let mut on: Vec<&Profile> = sorted
        .iter()
        .filter(|p| p.fields.get("Default").map(String::as_str) == Some("yes"))
        .collect();
    let mut i = 0;
    while i < on.len() {
        let conflicts = on[i].conflicts.clone();
        let me = on[i].name.clone();
        on.retain(|p| p.name == me || !conflicts.contains(&p.name));
        i += 1;
    }
    on
}

/// The module lines of one block (`Primary`/`Additional`) for a type, with the profile each
/// comes from.
fn block<'p>(enabled: &[&'p Profile], field: &str, kind: &str) -> Vec<(&'p str, Vec<String>)> {
    let mut out = Vec::new();
    for p in enabled.iter().filter(|p| p.kind(field) == Some(kind)) {
        let first = out.is_empty();
        if let Some(lines) = p.lines(field, first) {
            let lines: Vec<String> = lines
                .split('\n')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            out.push((p.name.as_str(), lines));
        }
    }
    out
}

/// One profile line as pam-auth-update writes it: control and module path as written, with
/// each `end` replaced by `count`, then the options single-spaced (a trailing space when
/// there are none, as it writes them).
fn merged_line(line: &str, count: usize) -> String {
    // The control is a `[…]` group or one word; the module path follows after blanks.
    let control_end = if line.starts_with('[') {
        line.find(']').map_or(line.len(), |i| i + 1)
    } else {
        line.find(char::is_whitespace).unwrap_or(line.len())
    };
    let after = &line[control_end..];
    let module_start = control_end + (after.len() - after.trim_start().len());
    let module_end = line[module_start..]
        .find(char::is_whitespace)
        .map_or(line.len(), |i| module_start + i);
    let head = line[..module_end].replace("end", &count.to_string());
    let options: Vec<&str> = line[module_end..].split_whitespace().collect();
    format!("{head} {}\n", options.join(" "))
}

/// A common file from its template: the blocks filled in, everything else as it is.
fn common_file(template: &str, ty: &str, enabled: &[&Profile]) -> Option<String> {
    let field = field_of(ty);
    let prefix = ty.trim_end_matches("-noninteractive");
    let mut out = String::new();
    let mut state = 0;
    for line in template.split_inclusive('\n') {
        match state {
            1 if line.starts_with("# here's the fallback if no module succeeds") => state = 2,
            3 if line.starts_with("# end of pam-auth-update config") => state = 4,
            1 | 3 => continue,
            _ => {}
        }
        out.push_str(line);
        let kind = match state {
            0 if line.starts_with("# here are the per-package modules (the \"Primary\" block)") => {
                "Primary"
            }
            2 if line.starts_with(
                "# and here are more per-package modules (the \"Additional\" block)",
            ) =>
            {
                "Additional"
            }
            _ => continue,
        };
        let lines: Vec<String> = block(enabled, &field, kind)
            .into_iter()
            .flat_map(|(_, l)| l)
            .collect();
        let mut count = lines.len();
        if kind == "Additional" {
            count = count.saturating_sub(1);
        }
        if kind == "Primary" && lines.is_empty() {
            out.push_str(&format!("{prefix}\t[default=1]\t\t\tpam_permit.so\n"));
        }
        for l in &lines {
            out.push_str(&format!("{prefix}\t{}", merged_line(l, count)));
            count = count.saturating_sub(1);
        }
        state += 1;
    }
    (state == 4).then_some(out)
}

/// `/var/lib/pam/TYPE`: the Primary profiles' lines (or the `null` stand-in), then the
/// Additional ones, each after `Module: NAME`.
fn saved_state(ty: &str, enabled: &[&Profile]) -> String {
    let field = field_of(ty);
    let mut out = String::new();
    let primary = block(enabled, &field, "Primary");
    if primary.is_empty() {
        out.push_str("Module: null\n[default=1]\t\t\tpam_permit.so\n");
    }
    for (name, lines) in primary
        .into_iter()
        .chain(block(enabled, &field, "Additional"))
    {
        out.push_str(&format!("Module: {name}\n{}\n", lines.join("\n")));
    }
    out
}

/// Everything pam-auth-update writes on a fresh install; nothing when libpam-runtime's
/// templates or any profile is missing (it would not run, or would fail).
pub fn effects(root: &dyn RootView) -> Vec<Effect> {
    let sorted = profiles(root);
    if sorted.is_empty() {
        return Vec::new();
    }
    let on = enabled(&sorted);
    let mut out = Vec::new();
    for ty in TYPES {
        let Some(template) = root
            .read(&format!("{TEMPLATES}/common-{ty}"))
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return Vec::new();
        };
        let Some(text) = common_file(&template, ty, &on) else {
            return Vec::new();
        };
        out.push(Effect::file(
            &format!("/etc/pam.d/common-{ty}"),
            text.into_bytes(),
            0o644,
        ));
        out.push(Effect::file(
            &format!("/var/lib/pam/{ty}"),
            saved_state(ty, &on).into_bytes(),
            0o644,
        ));
    }
    let seen: String = sorted.iter().map(|p| format!("{}\n", p.name)).collect();
    out.push(Effect::file("/var/lib/pam/seen", seen.into_bytes(), 0o644));
    out.push(Effect::dir("/var/lib/pam", 0o755, 0, 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::tree::MemRoot;

    /// libpam-modules 1.5.2's `unix` and `mkhomedir` profiles, verbatim.
    const UNIX: &str = "Name: Unix authentication\nDefault: yes\nPriority: 256\nAuth-Type: Primary\nAuth:\n\t[success=end default=ignore]\tpam_unix.so nullok try_first_pass\nAuth-Initial:\n\t[success=end default=ignore]\tpam_unix.so nullok\nAccount-Type: Primary\nAccount:\n\t[success=end new_authtok_reqd=done default=ignore]\tpam_unix.so\nAccount-Initial:\n\t[success=end new_authtok_reqd=done default=ignore]\tpam_unix.so\nSession-Type: Additional\nSession:\n\trequired\tpam_unix.so\nSession-Initial:\n\trequired\tpam_unix.so\nPassword-Type: Primary\nPassword:\n\t[success=end default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\nPassword-Initial:\n\t[success=end default=ignore]\tpam_unix.so obscure yescrypt\n";
    const MKHOMEDIR: &str = "Name: Create home directory on login\nDefault: no\nPriority: 0\nSession-Type: Additional\nSession-Interactive-Only: yes\nSession:\n\toptional\t\t\tpam_mkhomedir.so\n";
    /// A Primary auth profile of lower priority, as libpam-sss ships one.
    const SSS: &str = "Name: SSS authentication\nDefault: yes\nPriority: 128\nAuth-Type: Primary\nAuth:\n\t[success=end new_authtok_reqd=done default=ignore]\tpam_sss.so use_first_pass\nAuth-Initial:\n\t[success=end new_authtok_reqd=done default=ignore]\tpam_sss.so\nSession-Type: Additional\nSession:\n\toptional\t\t\tpam_sss.so\n";

    /// libpam-runtime's template shape (comments shortened).
    fn template(ty: &str) -> String {
        format!(
            "# /etc/pam.d/common-{ty}\n\n# here are the per-package modules (the \"Primary\" block)\n${ty}_primary\n# here's the fallback if no module succeeds\n{t}\trequisite\t\t\tpam_deny.so\n{t}\trequired\t\t\tpam_permit.so\n# and here are more per-package modules (the \"Additional\" block)\n${ty}_additional\n# end of pam-auth-update config\n",
            t = ty.trim_end_matches("-noninteractive")
        )
    }

    fn root(profiles: &[(&str, &str)]) -> MemRoot {
        let mut r = MemRoot::new();
        for ty in TYPES {
            r.file(&format!("{TEMPLATES}/common-{ty}"), template(ty));
        }
        for (n, t) in profiles {
            r.file(&format!("{PROFILES}/{n}"), *t);
        }
        r
    }

    fn text(effects: &[Effect], path: &str) -> String {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::WriteFile { path: p, bytes, .. } if p == path => {
                    Some(String::from_utf8(bytes.clone()).unwrap())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {path}"))
    }

    /// bookworm minbase: `unix` alone (mkhomedir is off by default), as mmdebstrap's run of
    /// libpam-runtime's postinst writes it.
    #[test]
    fn unix_alone_as_bookworm_writes_it() {
        let e = effects(&root(&[("unix", UNIX), ("mkhomedir", MKHOMEDIR)]));
        assert_eq!(
            text(&e, "/etc/pam.d/common-auth"),
            "# /etc/pam.d/common-auth\n\n# here are the per-package modules (the \"Primary\" block)\nauth\t[success=1 default=ignore]\tpam_unix.so nullok\n# here's the fallback if no module succeeds\nauth\trequisite\t\t\tpam_deny.so\nauth\trequired\t\t\tpam_permit.so\n# and here are more per-package modules (the \"Additional\" block)\n# end of pam-auth-update config\n"
        );
        let session = text(&e, "/etc/pam.d/common-session");
        assert!(
            session.contains(
                "(the \"Primary\" block)\nsession\t[default=1]\t\t\tpam_permit.so\n# here's"
            ),
            "{session}"
        );
        assert!(
            session.contains("block)\nsession\trequired\tpam_unix.so \n# end"),
            "{session}"
        );
        assert_eq!(
            text(&e, "/var/lib/pam/auth"),
            "Module: unix\n[success=end default=ignore]\tpam_unix.so nullok\n"
        );
        assert_eq!(
            text(&e, "/var/lib/pam/session-noninteractive"),
            "Module: null\n[default=1]\t\t\tpam_permit.so\nModule: unix\nrequired\tpam_unix.so\n"
        );
        assert_eq!(text(&e, "/var/lib/pam/seen"), "unix\nmkhomedir\n");
    }

    /// Two Primary profiles: the first jumps over the second and the fallback, the second
    /// (its non-Initial lines) over the fallback only.
    #[test]
    fn jumps_count_the_lines_left_in_the_block() {
        let e = effects(&root(&[("unix", UNIX), ("sss", SSS)]));
        let auth = text(&e, "/etc/pam.d/common-auth");
        assert!(
            auth.contains("auth\t[success=2 default=ignore]\tpam_unix.so nullok\nauth\t[success=1 new_authtok_reqd=done default=ignore]\tpam_sss.so use_first_pass\n"),
            "{auth}"
        );
        let session = text(&e, "/etc/pam.d/common-session");
        assert!(
            session
                .contains("session\trequired\tpam_unix.so \nsession\toptional\t\t\tpam_sss.so \n"),
            "{session}"
        );
        // A conflict drops the lower profile.
        let unix = UNIX.replace("Priority: 256\n", "Priority: 256\nConflicts: sss\n");
        let e = effects(&root(&[("unix", &unix), ("sss", SSS)]));
        assert!(!text(&e, "/etc/pam.d/common-auth").contains("pam_sss"));
        // Without libpam-runtime's templates, nothing.
        let mut bare = MemRoot::new();
        bare.file(&format!("{PROFILES}/unix"), UNIX);
        assert!(effects(&bare).is_empty());
    }
}
