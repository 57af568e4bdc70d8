//! The package-manager state files dpkg and apt keep beside the database stevedore writes
//! ([`crate::rootfs::dpkg`]): `/var/lib/dpkg/arch` (the architectures dpkg accepts),
//! `/var/lib/dpkg/diversions` (what `dpkg-divert --add` recorded) and
//! `/var/lib/apt/extended_states` (which packages apt installed only as dependencies: what
//! `apt-mark showauto` lists and `apt autoremove` may remove).
//!
//! All three are written from data: the architecture and the reason each package is in the
//! layer come from the lock ([`Selection`]), the diversions from the `dpkg-divert --add`
//! commands of the scripts that run on a fresh install.

use std::collections::BTreeMap;

use super::rule::{Call, Script};
use super::tree::{Effect, RootView, normalize};

pub const ARCH: &str = "/var/lib/dpkg/arch";
pub const DIVERSIONS: &str = "/var/lib/dpkg/diversions";
pub const EXTENDED_STATES: &str = "/var/lib/apt/extended_states";

/// One package of a layer, as apt would have marked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub name: String,
    /// Installed only because another package needs it (apt's `Auto-Installed: 1`).
    pub auto: bool,
}

impl Selection {
    /// One layer's packages, each with the resolver's reason (the lock's `why`): a package
    /// pulled in by another's `Depends`, `Pre-Depends` or `Recommends` is automatically
    /// installed, as `apt-get install` marks it, unless it belongs to the Essential set's
    /// closure (debootstrap and mmdebstrap install that with dpkg alone, which marks
    /// nothing). One the recipe names, an Essential or `Priority: required` one (their base
    /// set) and merged /usr's are manual.
    pub fn from_reasons(packages: &[(&str, &str)]) -> Vec<Selection> {
        let by = |why: &str| -> Option<String> {
            ["Depends of ", "Pre-Depends of ", "Recommends of "]
                .iter()
                .find_map(|p| why.strip_prefix(p))
                .map(str::to_owned)
        };
        let mut essential: std::collections::BTreeSet<&str> = packages
            .iter()
            .filter(|(_, why)| *why == "essential")
            .map(|(n, _)| *n)
            .collect();
        // The closure, through the chain that brought each package in.
        loop {
            let more: Vec<&str> = packages
                .iter()
                .filter(|(n, why)| {
                    !essential.contains(n)
                        && by(why).is_some_and(|b| essential.contains(b.as_str()))
                })
                .map(|(n, _)| *n)
                .collect();
            if more.is_empty() {
                break;
            }
            essential.extend(more);
        }
        packages
            .iter()
            .map(|(name, why)| Selection {
                name: (*name).to_owned(),
                auto: by(why).is_some() && !essential.contains(name),
            })
            .collect()
    }
}

/// `/var/lib/dpkg/arch`: the native architecture alone (no foreign ones are configured).
/// Nothing when the architecture is unknown (a layer of `Architecture: all` packages only:
/// the file below stays).
pub fn arch_file(architecture: &str) -> Vec<Effect> {
    if architecture.is_empty() || architecture == "all" {
        return Vec::new();
    }
    vec![Effect::file(
        ARCH,
        format!("{architecture}\n").into_bytes(),
        0o644,
    )]
}

/// `/var/lib/apt/extended_states` after this layer: the marks already in the tree (a lower
/// layer's), updated with this layer's packages. apt writes one stanza per marked package
/// with the native architecture (an `Architecture: all` package is recorded under it too);
/// the stanzas are sorted by name here, where apt writes them in its cache order, so the
/// bytes do not depend on the order of a mirror's indexes. Written whenever apt is there,
/// empty when nothing is marked, as apt leaves it.
pub fn extended_states(
    root: &dyn RootView,
    architecture: &str,
    selections: &[Selection],
) -> Vec<Effect> {
    let mut marks: BTreeMap<String, String> = root
        .read(EXTENDED_STATES)
        .and_then(|b| String::from_utf8(b).ok())
        .map(|t| parse_marks(&t))
        .unwrap_or_default();
    for s in selections {
        if s.auto {
            marks
                .entry(s.name.clone())
                .or_insert_with(|| architecture.to_owned());
        } else {
            // Named by a recipe: a manual install clears the mark.
            marks.remove(&s.name);
        }
    }
    if !root.exists("/usr/bin/apt-get") && marks.is_empty() {
        return Vec::new();
    }
    let text: String = marks
        .iter()
        .map(|(name, arch)| format!("Package: {name}\nArchitecture: {arch}\nAuto-Installed: 1\n\n"))
        .collect();
    vec![Effect::file(EXTENDED_STATES, text.into_bytes(), 0o644)]
}

/// The packages an extended_states file marks automatically installed, with their
/// architecture.
fn parse_marks(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
        };
        if let (Some(name), Some(arch)) = (field("Package:"), field("Architecture:"))
            && field("Auto-Installed:").as_deref() == Some("1")
        {
            out.insert(name, arch);
        }
    }
    out
}

/// One diversion: `from` is diverted to `to` by `package`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    pub from: String,
    pub to: String,
    pub package: String,
}

/// The diversions the scripts that run on a fresh install add, in the order they run: every
/// `dpkg-divert --add` whose words are known, and dash's `claim_binsh FILE TARGET [DISTRIB]`
/// calls (its `dpkg-divert --add` is in that function, on its positional arguments).
pub fn diversions(root: &dyn RootView, scripts: &[Script<'_>]) -> Vec<Diversion> {
    let mut out: Vec<Diversion> = Vec::new();
    for call in scripts.iter().flat_map(Script::runs_on_install) {
        let found = if call.package == "dash" && call.program() == "claim_binsh" {
            claim_binsh(root, &call)
        } else {
            divert_add(&call)
        };
        if let Some(d) = found {
            out.retain(|o| o.from != d.from);
            out.push(d);
        }
    }
    out
}

/// `dpkg-divert [--package P] [--divert TO] [--rename|--no-rename] --add FILE` with known
/// words. Without `--package`, dpkg-divert records the package whose script runs it
/// (`DPKG_MAINTSCRIPT_PACKAGE`); without `--divert`, `FILE.distrib`.
fn divert_add(call: &Call<'_>) -> Option<Diversion> {
    if call.program() != "dpkg-divert" || call.cmd.unresolved || call.cmd.in_function {
        return None;
    }
    let args = call.args();
    let value = |opt: &str| {
        args.iter()
            .position(|a| *a == opt)
            .and_then(|i| args.get(i + 1))
            .map(|v| (*v).to_owned())
    };
    let from = normalize(&value("--add")?);
    Some(Diversion {
        to: value("--divert").map_or_else(|| format!("{from}.distrib"), |t| normalize(&t)),
        package: value("--package").unwrap_or_else(|| call.package.to_owned()),
        from,
    })
}

/// dash's `claim_binsh FILE TARGET [DISTRIB]`: diverts FILE to DISTRIB (`FILE.distrib` by
/// default). The man page call is guarded by `[ -d …/man1/ ]`: only when that directory is
/// in the image.
fn claim_binsh(root: &dyn RootView, call: &Call<'_>) -> Option<Diversion> {
    if call.cmd.unresolved {
        return None;
    }
    let args = call.args();
    let from = normalize(args.first()?);
    let parent = from.rsplit_once('/').map_or("/", |(p, _)| p);
    if !root.is_dir(parent) {
        return None;
    }
    Some(Diversion {
        to: args
            .get(2)
            .filter(|d| !d.is_empty())
            .map_or_else(|| format!("{from}.distrib"), |d| normalize(d)),
        package: call.package.to_owned(),
        from,
    })
}

/// `/var/lib/dpkg/diversions`: three lines per diversion (file, diverted-to, package), the
/// newest first, as dpkg writes its list. Nothing when there is none: dpkg creates the file
/// only with the first diversion.
pub fn diversions_file(diversions: &[Diversion]) -> Vec<Effect> {
    if diversions.is_empty() {
        return Vec::new();
    }
    let text: String = diversions
        .iter()
        .rev()
        .map(|d| format!("{}\n{}\n{}\n", d.from, d.to, d.package))
        .collect();
    vec![Effect::file(DIVERSIONS, text.into_bytes(), 0o644)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::setup::tree::{MemRoot, PackageScripts};

    /// dash 0.5.12's postinst, the lines that matter.
    const DASH_POSTINST: &str = "#!/bin/dash\nset -e\nclaim_binsh() {\n\tdfile=$1 ltarget=$2 distrib=${3:-$dfile.distrib}\n\tdpkg-divert --package bash --no-rename --remove $dfile\n\tdpkg-divert --package dash --no-rename --divert $distrib --add $dfile\n}\nclaim_binsh /bin/sh dash\nif [ -d \"$DPKG_ROOT/usr/share/man/man1/\" ]; then\n    claim_binsh /usr/share/man/man1/sh.1.gz dash.1.gz \\\n        /usr/share/man/man1/sh.distrib.1.gz\nfi\n";

    fn text(effects: &[Effect]) -> String {
        match effects {
            [Effect::WriteFile { bytes, .. }] => String::from_utf8(bytes.clone()).unwrap(),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn dash_diversions_newest_first() {
        let mut root = MemRoot::new();
        // /bin stands for merged /usr's `/bin` → `usr/bin`.
        root.file("/usr/bin/dash", "")
            .other("/bin")
            .file("/usr/share/man/man1/dash.1.gz", "");
        let pkgs = [
            PackageScripts {
                package: "dash".into(),
                postinst: Some(DASH_POSTINST.into()),
                ..PackageScripts::default()
            },
            PackageScripts {
                package: "other".into(),
                preinst: Some(
                    "dpkg-divert --divert /usr/bin/x.real --rename --add /usr/bin/x\n".into(),
                ),
                ..PackageScripts::default()
            },
        ];
        let scripts = Script::read_all(&root, &pkgs);
        let d = diversions(&root, &scripts);
        assert_eq!(
            text(&diversions_file(&d)),
            "/usr/bin/x\n/usr/bin/x.real\nother\n/usr/share/man/man1/sh.1.gz\n/usr/share/man/man1/sh.distrib.1.gz\ndash\n/bin/sh\n/bin/sh.distrib\ndash\n"
        );
        // Without man pages in the image, the guarded call does not run.
        let mut bare = MemRoot::new();
        bare.file("/usr/bin/dash", "").other("/bin");
        let d = diversions(&bare, &Script::read_all(&bare, &pkgs[..1]));
        assert_eq!(
            text(&diversions_file(&d)),
            "/bin/sh\n/bin/sh.distrib\ndash\n"
        );
        assert!(diversions_file(&[]).is_empty());
    }

    #[test]
    fn auto_marks_follow_the_resolver_and_lower_layers() {
        let mut root = MemRoot::new();
        root.file("/usr/bin/apt-get", "");
        let sel = Selection::from_reasons(&[
            ("tomcat10", "requested"),
            ("libtomcat10-java", "Depends of tomcat10-common"),
            ("adduser", "Pre-Depends of tomcat10"),
            ("bash", "essential"),
            ("apt", "required"),
            // the Essential closure: installed by dpkg in a bootstrap, never marked
            ("libtinfo6", "Depends of bash"),
            ("libgcc-s1", "Depends of libtinfo6"),
        ]);
        let lower = text(&extended_states(&root, "arm64", &sel));
        assert_eq!(
            lower,
            "Package: adduser\nArchitecture: arm64\nAuto-Installed: 1\n\nPackage: libtomcat10-java\nArchitecture: arm64\nAuto-Installed: 1\n\n"
        );
        // A later layer requests adduser by name: its mark goes; its new dependency is marked.
        root.file(EXTENDED_STATES, lower);
        let upper = text(&extended_states(
            &root,
            "arm64",
            &Selection::from_reasons(&[
                ("adduser", "requested"),
                ("libfoo1", "Depends of adduser"),
            ]),
        ));
        assert_eq!(
            upper,
            "Package: libfoo1\nArchitecture: arm64\nAuto-Installed: 1\n\nPackage: libtomcat10-java\nArchitecture: arm64\nAuto-Installed: 1\n\n"
        );
        // No apt, nothing marked: no file.
        assert!(extended_states(&MemRoot::new(), "amd64", &sel[..1]).is_empty());
    }

    #[test]
    fn arch_file_names_the_native_architecture() {
        assert_eq!(text(&arch_file("riscv64")), "riscv64\n");
        assert!(arch_file("").is_empty() && arch_file("all").is_empty());
    }
}
