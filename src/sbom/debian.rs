//! The Debian side of the inventory: the installed packages as the dpkg status of the top
//! package layer records them (exactly what `dpkg -l` and scanners read in the image), joined
//! with the lockfile (the .deb's URL and sha256, the layer), the dependencies the resolver
//! followed, and what each package's data.tar says (its `copyright`, base-files' `os-release`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;

use super::SbomError;
use super::license::{self, License};
use crate::apt::index::{Alternatives, parse_dependency_field};
use crate::apt::{Fetcher, LockedPackage, deb822};
use crate::cache::Cache;

/// Largest `copyright` or `os-release` file read (real ones are under 200 KiB).
const MAX_DOC_FILE: u64 = 4 << 20;

/// A package as the dpkg status records it.
#[derive(Clone, Debug)]
pub struct StatusPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package and its version (the binary's own when the status names none).
    pub source: String,
    pub source_version: String,
    pub maintainer: Option<String>,
    /// Pre-Depends then Depends, each a group of alternatives.
    depends: Vec<Alternatives>,
    /// Names this package provides (with the version it provides them at, if any).
    provides: Vec<(String, Option<String>)>,
}

/// Reads the cumulative dpkg status text; `layer` names it in errors.
pub fn parse_status(text: &str, layer: &str) -> Result<Vec<StatusPackage>, SbomError> {
    let bad = |detail: String| SbomError::Status {
        layer: layer.to_owned(),
        detail,
    };
    let mut out = Vec::new();
    for p in deb822::paragraphs(text) {
        let p = p.map_err(|e| bad(e.to_string()))?;
        let installed = p
            .first_line("Status")
            .is_some_and(|s| s.ends_with(" installed"));
        let (Some(name), Some(version), true) =
            (p.first_line("Package"), p.first_line("Version"), installed)
        else {
            continue;
        };
        let deps = |field: &str| -> Result<Vec<Alternatives>, SbomError> {
            p.get(field).map_or(Ok(Vec::new()), |v| {
                parse_dependency_field(v).map_err(|e| bad(format!("{name}: {field}: {e}")))
            })
        };
        // `Source: glibc (2.36-9+deb12u4)` when the versions differ, `Source: gcc-12` else.
        let (source, source_version) = match p.first_line("Source") {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (n.trim(), v.trim_end_matches(')').trim()),
                None => (s, version),
            },
            None => (name, version),
        };
        let mut depends = deps("Pre-Depends")?;
        depends.extend(deps("Depends")?);
        out.push(StatusPackage {
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: p.first_line("Architecture").unwrap_or("all").to_owned(),
            source: source.to_owned(),
            source_version: source_version.to_owned(),
            maintainer: p.first_line("Maintainer").map(str::to_owned),
            provides: deps("Provides")?
                .into_iter()
                .flatten()
                .map(|d| (d.name, d.constraint.map(|(_, v)| v)))
                .collect(),
            depends,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    Ok(out)
}

/// For each package, the packages (indexes into `packages`) that satisfy its Pre-Depends and
/// Depends: in each group the first alternative an installed package satisfies, by name and
/// version or through Provides, as the resolver chose (it installs the first satisfiable one,
/// and a group already satisfied below is satisfied by that package).
pub fn dependency_edges(packages: &[StatusPackage]) -> Vec<Vec<usize>> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut providers: HashMap<&str, Vec<(usize, Option<&str>)>> = HashMap::new();
    for (i, p) in packages.iter().enumerate() {
        by_name.entry(&p.name).or_default().push(i);
        for (name, version) in &p.provides {
            providers
                .entry(name)
                .or_default()
                .push((i, version.as_deref()));
        }
    }
    packages
        .iter()
        .enumerate()
        .map(|(me, p)| {
            let mut edges: Vec<usize> = p
                .depends
                .iter()
                .filter_map(|group| {
                    group.iter().find_map(|dep| {
                        let fits = |v: Option<&str>| match (&dep.constraint, v) {
                            (None, _) => true,
                            (Some((rel, want)), Some(v)) => rel.matches(v, want),
                            (Some(_), None) => false,
                        };
                        by_name
                            .get(dep.name.as_str())
                            .and_then(|is| {
                                is.iter()
                                    .copied()
                                    .find(|&i| fits(Some(&packages[i].version)))
                            })
                            .or_else(|| {
                                providers.get(dep.name.as_str()).and_then(|ps| {
                                    ps.iter().find(|(_, v)| fits(*v)).map(|(i, _)| *i)
                                })
                            })
                    })
                })
                .filter(|&i| i != me)
                .collect();
            edges.sort_unstable();
            edges.dedup();
            edges
        })
        .collect()
}

/// What a package's data.tar says about it.
#[derive(Clone, Debug, Default)]
pub struct DocFacts {
    /// `/usr/share/doc/NAME/copyright` when it is DEP-5.
    pub license: Option<License>,
    /// `/usr/share/doc/NAME` is a link to another package's folder (`libgcc-s1` →
    /// `gcc-12-base`): that package's copyright covers this one.
    pub doc_link: Option<String>,
    /// `usr/lib/os-release` (or `etc/os-release`), from base-files.
    pub os_release: Option<String>,
}

/// Reads the doc facts of a locked package from its unpacked data.tar in the cache, unpacking
/// it again (and fetching the `.deb` again, verified by sha256) if it left the cache.
pub fn doc_facts(
    package: &LockedPackage,
    cache: &Cache,
    fetcher: &mut Option<Fetcher>,
) -> Result<DocFacts, SbomError> {
    let tar = unpacked(package, cache, fetcher)?;
    let file = File::open(&tar).map_err(|source| SbomError::Read {
        path: tar.clone(),
        source,
    })?;
    read_doc_facts(&package.name, file).map_err(|source| SbomError::Read { path: tar, source })
}

fn unpacked(
    package: &LockedPackage,
    cache: &Cache,
    fetcher: &mut Option<Fetcher>,
) -> Result<std::path::PathBuf, SbomError> {
    if cache.unpacked_deb_complete(&package.sha256) {
        return Ok(cache.unpacked_deb_path(&package.sha256));
    }
    let fetch_err = |source| SbomError::Fetch {
        package: package.name.clone(),
        source,
    };
    if fetcher.is_none() {
        *fetcher = Some(Fetcher::new(&cache.apt_dir()).map_err(fetch_err)?);
    }
    let fetcher = fetcher.as_ref().expect("set above");
    let mut deb = fetcher.path_of(&package.sha256);
    if !deb.is_file() {
        tracing::info!(
            "{}: the .deb left the cache; fetching it again",
            package.name
        );
        deb = fetcher
            .fetch_all_blocking(&[package.wanted()])
            .map_err(fetch_err)?
            .pop()
            .unwrap_or(deb);
    }
    crate::rootfs::spool_deb(&package.name, &package.sha256, &deb, cache)
        .map(|p| p.as_ref().clone())
        .map_err(|source| SbomError::Unpack {
            package: package.name.clone(),
            source,
        })
}

/// Walks the tar's headers (skipping contents by seeking) for the few paths that matter.
fn read_doc_facts(name: &str, file: File) -> std::io::Result<DocFacts> {
    let doc_dir = format!("usr/share/doc/{name}");
    let copyright = format!("{doc_dir}/copyright");
    let mut facts = DocFacts::default();
    let mut os_release: BTreeMap<&str, String> = BTreeMap::new();
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_end_matches('/');
        let kind = entry.header().entry_type();
        if path == doc_dir && kind.is_symlink() {
            facts.doc_link = entry
                .link_name()?
                .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()));
        } else if path == copyright && kind.is_file() {
            facts.license = license::from_copyright(&read_small(&mut entry)?);
        } else if (path == "usr/lib/os-release" || path == "etc/os-release") && kind.is_file() {
            let key = if path.starts_with("usr") {
                "usr"
            } else {
                "etc"
            };
            os_release.insert(key, read_small(&mut entry)?);
        }
    }
    // /etc/os-release is the one read when both exist (it is a link to usr/lib's on Debian).
    facts.os_release = os_release
        .remove("etc")
        .or_else(|| os_release.remove("usr"));
    Ok(facts)
}

fn read_small(entry: &mut impl Read) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    entry.take(MAX_DOC_FILE).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The distribution an image is: from base-files' `os-release` (`ID`, `VERSION_ID`), else from
/// the first suite of the recipe's sources (a table of the releases stevedore is tested on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distro {
    /// `debian` or `ubuntu` (the purl namespace).
    pub id: String,
    /// `12`, `24.04`; `None` for a release without one (Debian testing).
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl Distro {
    /// The purl `distro` qualifier: `debian-12`, `ubuntu-24.04`.
    pub fn qualifier(&self) -> Option<String> {
        self.version_id.as_ref().map(|v| format!("{}-{v}", self.id))
    }

    pub fn from_os_release(text: &str) -> Option<Distro> {
        let value = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches(['"', '\'']).to_string())
            })
        };
        Some(Distro {
            id: value("ID")?.to_ascii_lowercase(),
            version_id: value("VERSION_ID").filter(|v| !v.is_empty()),
            pretty_name: value("PRETTY_NAME"),
        })
    }

    pub fn from_suite(suite: &str, mirror: &str) -> Option<Distro> {
        let codename = suite.split('-').next().unwrap_or(suite);
        let (id, version) = match codename {
            "buster" => ("debian", "10"),
            "bullseye" => ("debian", "11"),
            "bookworm" => ("debian", "12"),
            "trixie" => ("debian", "13"),
            "forky" => ("debian", "14"),
            "xenial" => ("ubuntu", "16.04"),
            "bionic" => ("ubuntu", "18.04"),
            "focal" => ("ubuntu", "20.04"),
            "jammy" => ("ubuntu", "22.04"),
            "noble" => ("ubuntu", "24.04"),
            _ => {
                let id = if mirror.contains("ubuntu") {
                    "ubuntu"
                } else {
                    "debian"
                };
                return Some(Distro {
                    id: id.into(),
                    version_id: None,
                    pretty_name: None,
                });
            }
        };
        Some(Distro {
            id: id.into(),
            version_id: Some(version.into()),
            pretty_name: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4\nDepends: libgcc-s1\n\nPackage: libgcc-s1\nStatus: install ok installed\nArchitecture: amd64\nSource: gcc-12\nVersion: 12.2.0-14\nDepends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)\n\nPackage: gcc-12-base\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.2.0-14\n\nPackage: mawk\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.3.4\nProvides: awk\n\nPackage: app\nStatus: install ok installed\nArchitecture: all\nVersion: 1\nPre-Depends: nawk | awk\nDepends: libc6 (>= 9), gcc-12-base (>= 12)\n";

    #[test]
    fn status_gives_sources_and_the_dependencies_followed() {
        let ps = parse_status(STATUS, "base").unwrap();
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["app", "gcc-12-base", "libc6", "libgcc-s1", "mawk"]);
        assert_eq!(
            (ps[2].source.as_str(), ps[2].source_version.as_str()),
            ("glibc", "2.36-9+deb12u4")
        );
        assert_eq!(
            (ps[3].source.as_str(), ps[3].source_version.as_str()),
            ("gcc-12", "12.2.0-14")
        );
        assert_eq!(ps[1].source, "gcc-12-base");
        let edges = dependency_edges(&ps);
        // app: awk through mawk's Provides; libc6 (>= 9) is not satisfied; gcc-12-base is.
        assert_eq!(edges[0], [1, 4]);
        assert_eq!(edges[3], [1, 2]);
        assert_eq!(edges[2], [3]);
    }

    #[test]
    fn distro_from_os_release_or_suite() {
        let d = Distro::from_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        )
        .unwrap();
        assert_eq!(d.qualifier().as_deref(), Some("debian-12"));
        let u = Distro::from_suite("noble-updates", "http://archive.ubuntu.com/ubuntu").unwrap();
        assert_eq!(u.qualifier().as_deref(), Some("ubuntu-24.04"));
        let sid = Distro::from_suite("sid", "http://deb.debian.org/debian").unwrap();
        assert_eq!((sid.id.as_str(), sid.qualifier()), ("debian", None));
    }
}
