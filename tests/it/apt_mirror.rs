//! Against the real mirrors (deb.debian.org, archive.ubuntu.com, over HTTP): signatures with the
//! committed keyrings, and the proof that the resolver picks exactly what `apt-get install -s`
//! picks from the same downloaded index.

use crate::apt_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use apt_support::*;
use stevedore::apt::signature::{self, Keyring};
use stevedore::apt::{self, Fetcher, LoadedIndex, Request, Sources};

const DEBIAN: &str = "http://deb.debian.org/debian";
const UBUNTU: &str = "http://archive.ubuntu.com/ubuntu";

/// Shared across runs: the store is content-addressed, so only changed files are fetched again.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("apt-mirror-cache")
}

fn fetcher() -> Fetcher {
    Fetcher::new(&cache_dir()).unwrap()
}

fn inrelease(mirror: &str, suite: &str) -> (String, String) {
    let url = format!("{mirror}/dists/{suite}/InRelease");
    let bytes = fetcher().get_bytes_blocking(&url).unwrap();
    (url, String::from_utf8(bytes).unwrap())
}

#[test]
fn real_inrelease_files_verify_with_the_committed_keyrings() {
    let debian = Keyring::load(&keyrings().join("debian-archive-keyring.gpg")).unwrap();
    let ubuntu = Keyring::load(&keyrings().join("ubuntu-archive-keyring.gpg")).unwrap();
    let checks = [
        (
            DEBIAN,
            "bookworm",
            &debian,
            "4CB50190207B4758A3F73A796ED0E7B82643E131",
        ),
        (
            DEBIAN,
            "trixie",
            &debian,
            "4CB50190207B4758A3F73A796ED0E7B82643E131",
        ),
        (
            UBUNTU,
            "noble",
            &ubuntu,
            "F6ECB3762474EDA9D21B7022871920D1991BC93C",
        ),
        (
            UBUNTU,
            "xenial",
            &ubuntu,
            "790BC7277767219C42C86F933B4FE6ACC0B21F32",
        ),
    ];
    for (mirror, suite, keyring, expected_signer) in checks {
        let (url, text) = inrelease(mirror, suite);
        let started = Instant::now();
        let verified = signature::verify_inrelease(keyring, &text, &url)
            .unwrap_or_else(|e| panic!("{suite}: {e}"));
        eprintln!(
            "{suite}: verified in {:?} by {:?}",
            started.elapsed(),
            verified.signers
        );
        assert!(
            verified
                .signers
                .iter()
                .any(|s| s.starts_with(expected_signer)),
            "{suite}: {:?}",
            verified.signers
        );
        let release = apt::Release::parse(&verified.text, &url).unwrap();
        assert_eq!(release.codename.as_deref(), Some(suite));
        release.check_dates(SystemTime::now(), &url).unwrap();
    }

    // The same over HTTPS: rustls with the ring provider and the system roots.
    let url = "https://deb.debian.org/debian/dists/bookworm/InRelease";
    let text = String::from_utf8(fetcher().get_bytes_blocking(url).unwrap()).unwrap();
    signature::verify_inrelease(&debian, &text, url).unwrap();

    // A tampered copy, and the wrong distribution's keyring.
    let (url, text) = inrelease(DEBIAN, "bookworm");
    let tampered = text.replacen("Codename: bookworm", "Codename: bookwurm", 1);
    let err = signature::verify_inrelease(&debian, &tampered, &url)
        .unwrap_err()
        .to_string();
    assert!(err.contains("BAD signature") && err.contains(&url), "{err}");
    let err = signature::verify_inrelease(&ubuntu, &text, &url)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown key") && err.contains("ubuntu-archive-keyring.gpg"),
        "{err}"
    );
}

/// Loads one index from `(mirror, suites)` entries sharing components and keyring.
fn load(entries: &[(&str, &[&str])], components: &[&str], keyring: &str) -> LoadedIndex {
    let sources: Vec<Sources> = entries
        .iter()
        .map(|(mirror, suites)| Sources {
            mirrors: vec![mirror.to_string()],
            suites: suites.iter().map(|s| s.to_string()).collect(),
            components: components.iter().map(|s| s.to_string()).collect(),
            architecture: "amd64".into(),
            keyring: Some(keyrings().join(keyring)),
            allow_unsigned: false,
        })
        .collect();
    let started = Instant::now();
    let loaded = apt::load_index(&sources, &fetcher(), SystemTime::now()).unwrap();
    eprintln!(
        "{entries:?} {components:?}: {} packages loaded (download if needed + verify + parse) in {:?}",
        loaded.index.len(),
        started.elapsed()
    );
    loaded
}

/// Runs `apt-get install -s` in an isolated apt root whose lists are exactly the Packages files
/// `loaded` was built from (environment.md §4d), and returns name → version of every `Inst`.
fn apt_get_simulate(
    loaded: &LoadedIndex,
    components: &[&str],
    packages: &[String],
) -> BTreeMap<String, String> {
    apt_get_simulate_on(loaded, components, packages, "")
}

/// A dpkg status file saying `packages` are installed (what lower layers leave behind): their
/// Packages paragraphs verbatim plus a Status line, so apt sees the very versions it has in its
/// lists (apt matches installed and available versions by a hash over their fields).
fn dpkg_status(loaded: &LoadedIndex, packages: &[&apt::Package]) -> String {
    let wanted: std::collections::HashSet<(&str, &str)> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    let mut out = String::new();
    for suite in &loaded.suites {
        for file in &suite.packages_files {
            let text = file.read_text().unwrap();
            for paragraph in stevedore::apt::deb822::paragraphs(&text) {
                let paragraph = paragraph.unwrap();
                let key = (
                    paragraph.first_line("Package").unwrap(),
                    paragraph.first_line("Version").unwrap(),
                );
                if !wanted.contains(&key) {
                    continue;
                }
                for (field, value) in paragraph.fields() {
                    out.push_str(&format!("{field}: {value}\n"));
                    if *field == "Package" {
                        out.push_str("Status: install ok installed\n");
                    }
                }
                out.push('\n');
            }
        }
    }
    out
}

/// [`apt_get_simulate`] with a dpkg status file (empty: nothing installed).
fn apt_get_simulate_on(
    loaded: &LoadedIndex,
    components: &[&str],
    packages: &[String],
    status: &str,
) -> BTreeMap<String, String> {
    apt_get_run(loaded, components, packages, status, false)
}

fn apt_get_run(
    loaded: &LoadedIndex,
    components: &[&str],
    packages: &[String],
    status: &str,
    recommends: bool,
) -> BTreeMap<String, String> {
    require_tool("apt-get", "apt");
    let root = crate::common::tempdir();
    let r = root.path();
    for d in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "etc/apt/trusted.gpg.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("var/lib/dpkg/status"), status).unwrap();
    let mut sources_list = String::new();
    for suite in &loaded.suites {
        let (mirror, rest) = suite.inrelease_url.split_once("/dists/").unwrap();
        let codename = rest.trim_end_matches("/InRelease");
        let host_path = mirror.trim_start_matches("http://").replace('/', "_");
        sources_list.push_str(&format!(
            "deb [arch=amd64 trusted=yes] {mirror} {codename} {}\n",
            components.join(" ")
        ));
        // The Release text (signature already checked by us) tells apt what the lists are.
        let release_text = fetcher().get_bytes_blocking(&suite.inrelease_url).unwrap();
        std::fs::write(
            r.join(format!(
                "var/lib/apt/lists/{host_path}_dists_{codename}_InRelease"
            )),
            release_text,
        )
        .unwrap();
        for (file, component) in suite.packages_files.iter().zip(components) {
            let text = file.read_text().unwrap();
            std::fs::write(
                r.join(format!(
                    "var/lib/apt/lists/{host_path}_dists_{codename}_{component}_binary-amd64_Packages"
                )),
                text,
            )
            .unwrap();
        }
    }
    std::fs::write(r.join("etc/apt/sources.list"), sources_list).unwrap();
    let opt = |k: &str, v: &str| format!("{k}={v}");
    let rs = r.to_str().unwrap();
    let output = Command::new("apt-get")
        .env("APT_CONFIG", "/dev/null")
        .env("LC_ALL", "C")
        .args(["-q", "-y", "-s"])
        .args([
            "-o",
            &opt("Dir", rs),
            "-o",
            &opt("Dir::Etc", &format!("{rs}/etc/apt")),
            "-o",
            &opt("Dir::Etc::Parts", &format!("{rs}/etc/apt/apt.conf.d")),
            "-o",
            &opt("Dir::State", &format!("{rs}/var/lib/apt")),
            "-o",
            &opt("Dir::Cache", &format!("{rs}/var/cache/apt")),
            "-o",
            &opt("Dir::State::status", &format!("{rs}/var/lib/dpkg/status")),
            "-o",
            "APT::Architecture=amd64",
            "-o",
            "APT::Architectures=amd64",
            "-o",
            if recommends {
                "APT::Install-Recommends=true"
            } else {
                "APT::Install-Recommends=false"
            },
            "-o",
            "APT::Install-Suggests=false",
            "-o",
            "pkgCacheGen::Essential=none",
            "-o",
            "Debug::NoLocking=1",
            "install",
        ])
        .args(packages)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "apt-get failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut chosen = BTreeMap::new();
    for line in stdout.lines() {
        // Inst libc6 (2.36-9+deb12u13 Debian:12.13/stable [amd64])
        if let Some(rest) = line.strip_prefix("Inst ") {
            // `Inst name [installed] (new ...)` for upgrades and reinstalls
            let (name, rest) = rest.split_once(' ').unwrap();
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once("] ").unwrap().1,
                None => rest,
            };
            let version = rest
                .trim_start_matches('(')
                .split_whitespace()
                .next()
                .unwrap();
            chosen.insert(name.to_owned(), version.to_owned());
        }
    }
    assert!(!chosen.is_empty(), "no Inst lines:\n{stdout}");
    chosen
}

fn ours(loaded: &LoadedIndex, request: &Request) -> (BTreeMap<String, String>, Vec<String>) {
    let started = Instant::now();
    let resolution = apt::resolve(&loaded.index, request, &[]).unwrap();
    eprintln!(
        "resolved {} packages in {:?}",
        resolution.packages.len(),
        started.elapsed()
    );
    let map = resolution
        .packages
        .iter()
        .map(|r| (r.package.name.clone(), r.package.version.clone()))
        .collect();
    // What apt-get is asked for: the same roots the resolver starts from.
    let mut roots: Vec<String> = resolution
        .packages
        .iter()
        .filter(|r| !matches!(r.reason, apt::Reason::Dependency { .. }))
        .map(|r| r.package.name.clone())
        .collect();
    roots.sort();
    (map, roots)
}

fn assert_same(ours: &BTreeMap<String, String>, apt: &BTreeMap<String, String>) {
    let only_ours: Vec<_> = ours
        .iter()
        .filter(|(k, v)| apt.get(*k) != Some(v))
        .collect();
    let only_apt: Vec<_> = apt
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(v))
        .collect();
    assert!(
        only_ours.is_empty() && only_apt.is_empty(),
        "resolver and apt-get differ:\n only ours: {only_ours:?}\n only apt-get: {only_apt:?}"
    );
}

#[test]
fn bookworm_minbase_jre_tomcat_matches_apt_get() {
    let loaded = load(
        &[(DEBIAN, &["bookworm"])],
        &["main"],
        "debian-archive-keyring.gpg",
    );
    let minbase: Vec<String> = loaded
        .index
        .minbase()
        .into_iter()
        .map(|i| loaded.index.package(i).name.clone())
        .collect();
    // environment.md §6: the 33 Priority:required/Essential packages of bookworm.
    assert_eq!(
        minbase.join(" "),
        "apt base-files base-passwd bash bsdutils coreutils dash debconf debianutils diffutils dpkg e2fsprogs findutils grep gzip hostname init-system-helpers libc-bin libpam-modules libpam-modules-bin libpam-runtime login mawk mount ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar tzdata util-linux"
    );

    // minbase alone
    let request = Request {
        minbase: true,
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main"], &roots);
    assert_same(&mine, &theirs);
    assert!(mine.contains_key("usr-is-merged") && !mine.contains_key("usrmerge"));
    eprintln!(
        "bookworm minbase: {} packages, identical to apt-get",
        mine.len()
    );

    // minbase + openjdk-17-jre-headless + tomcat10
    let request = Request {
        minbase: true,
        packages: vec!["openjdk-17-jre-headless".into(), "tomcat10".into()],
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main"], &roots);
    assert_same(&mine, &theirs);
    eprintln!(
        "bookworm minbase + JRE + tomcat10: {} packages, identical to apt-get",
        mine.len()
    );
}

#[test]
fn bookworm_layered_resolution_adds_only_what_lower_layers_lack() {
    let loaded = load(
        &[(DEBIAN, &["bookworm"])],
        &["main"],
        "debian-archive-keyring.gpg",
    );
    let base = apt::resolve(
        &loaded.index,
        &Request {
            minbase: true,
            ..Request::default()
        },
        &[],
    )
    .unwrap();
    let installed = base.installed_after(&[]);
    let jre = apt::resolve(
        &loaded.index,
        &Request {
            packages: vec!["openjdk-17-jre-headless".into()],
            ..Request::default()
        },
        &installed,
    )
    .unwrap();
    let installed = jre.installed_after(&installed);
    let tomcat = apt::resolve(
        &loaded.index,
        &Request {
            packages: vec!["tomcat10".into()],
            ..Request::default()
        },
        &installed,
    )
    .unwrap();
    let lower: Vec<&apt::Package> = base
        .packages
        .iter()
        .chain(&jre.packages)
        .map(|r| &r.package)
        .collect();
    let theirs = apt_get_simulate_on(
        &loaded,
        &["main"],
        &["tomcat10".into()],
        &dpkg_status(&loaded, &lower),
    );
    let mine: BTreeMap<String, String> = tomcat
        .packages
        .iter()
        .map(|r| (r.package.name.clone(), r.package.version.clone()))
        .collect();
    assert_same(&mine, &theirs);

    let mut seen = std::collections::HashSet::new();
    for layer in [&base, &jre, &tomcat] {
        for r in &layer.packages {
            assert!(
                seen.insert(r.package.name.clone()),
                "{} in two layers",
                r.package.name
            );
        }
    }
    assert!(jre.names().contains(&"openjdk-17-jre-headless"));

    // apt-get, told (through a dpkg status file) what the lower layers installed, adds the same.
    let lower: Vec<&apt::Package> = base.packages.iter().map(|r| &r.package).collect();
    let theirs = apt_get_simulate_on(
        &loaded,
        &["main"],
        &["openjdk-17-jre-headless".into()],
        &dpkg_status(&loaded, &lower),
    );
    let mine: BTreeMap<String, String> = jre
        .packages
        .iter()
        .map(|r| (r.package.name.clone(), r.package.version.clone()))
        .collect();
    assert_same(&mine, &theirs);
    assert!(
        !jre.names().contains(&"libc6"),
        "libc6 is in the base layer"
    );
    assert!(tomcat.names().contains(&"tomcat10"));
    // `stevedore plan` can say why each package is there.
    let why = tomcat
        .packages
        .iter()
        .find(|r| r.package.name == "tomcat10-common")
        .unwrap()
        .reason
        .to_string();
    assert_eq!(why, "Depends of tomcat10");
    assert_eq!(
        tomcat.why("libtomcat10-java"),
        ["tomcat10", "tomcat10-common", "libtomcat10-java"]
    );
    eprintln!(
        "layers: base {} + jre {} + tomcat {} packages",
        base.packages.len(),
        jre.packages.len(),
        tomcat.packages.len()
    );
}

#[test]
fn noble_minbase_and_jre_tomcat_match_apt_get() {
    let loaded = load(
        &[(UBUNTU, &["noble"])],
        &["main", "universe"],
        "ubuntu-archive-keyring.gpg",
    );
    let request = Request {
        minbase: true,
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main", "universe"], &roots);
    assert_same(&mine, &theirs);
    eprintln!(
        "noble minbase: {} packages, identical to apt-get",
        mine.len()
    );

    // Ubuntu's JRE and Tomcat (tomcat10 is in universe).
    let request = Request {
        minbase: true,
        packages: vec!["openjdk-17-jre-headless".into(), "tomcat10".into()],
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main", "universe"], &roots);
    assert_same(&mine, &theirs);
    eprintln!(
        "noble minbase + JRE + tomcat10: {} packages, identical to apt-get",
        mine.len()
    );
}

#[test]
fn bookworm_with_updates_and_security_matches_apt_get() {
    let loaded = load(
        &[
            (DEBIAN, &["bookworm", "bookworm-updates"]),
            (
                "http://deb.debian.org/debian-security",
                &["bookworm-security"],
            ),
        ],
        &["main"],
        "debian-archive-keyring.gpg",
    );
    let request = Request {
        minbase: true,
        packages: vec!["openjdk-17-jre-headless".into(), "tomcat10".into()],
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main"], &roots);
    assert_same(&mine, &theirs);
    // The highest version wins across suites: tomcat10 comes from bookworm-security when
    // security has a newer one than the point release.
    let resolution = apt::resolve(&loaded.index, &request, &[]).unwrap();
    let tomcat = resolution
        .packages
        .iter()
        .find(|r| r.package.name == "tomcat10")
        .unwrap();
    let best = loaded.index.versions("tomcat10").next().unwrap().1;
    assert_eq!(tomcat.package.version, best.version);
    eprintln!(
        "bookworm+updates+security: {} packages identical to apt-get; tomcat10 {} from {}",
        mine.len(),
        tomcat.package.version,
        tomcat.package.mirror
    );
}

#[test]
fn trixie_minbase_matches_apt_get() {
    let loaded = load(
        &[(DEBIAN, &["trixie"])],
        &["main"],
        "debian-archive-keyring.gpg",
    );
    let request = Request {
        minbase: true,
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main"], &roots);
    assert_same(&mine, &theirs);
    eprintln!(
        "trixie minbase: {} packages, identical to apt-get",
        mine.len()
    );
}

#[test]
fn xenial_with_updates_and_security_matches_apt_get() {
    let loaded = load(
        &[(UBUNTU, &["xenial", "xenial-updates", "xenial-security"])],
        &["main", "universe"],
        "ubuntu-archive-keyring.gpg",
    );
    let request = Request {
        minbase: true,
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main", "universe"], &roots);
    assert_same(&mine, &theirs);
    eprintln!(
        "xenial minbase: {} packages, identical to apt-get",
        mine.len()
    );

    // environment.md's xenial route: Java 8 and tomcat7 (universe).
    let request = Request {
        minbase: true,
        packages: vec!["openjdk-8-jre-headless".into(), "tomcat7".into()],
        ..Request::default()
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_simulate(&loaded, &["main", "universe"], &roots);
    assert_same(&mine, &theirs);
    eprintln!(
        "xenial minbase + JRE 8 + tomcat7: {} packages, identical to apt-get",
        mine.len()
    );
}

/// Counts what the fetcher reports, as a CLI progress bar would.
#[derive(Default)]
struct CountingProgress {
    started: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicU64,
}

impl apt::Progress for CountingProgress {
    fn started(&self, _url: &str, _total: Option<u64>) {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn advanced(&self, _url: &str, bytes: u64) {
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
    }
    fn finished(&self, _url: &str) {
        self.finished
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn real_debs_stream_debian_xz_and_ubuntu_zst() {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    for (mirror, suite, keyring, member, marker) in [
        (
            DEBIAN,
            "bookworm",
            "debian-archive-keyring.gpg",
            "data.tar.xz",
            "etc/debian_version",
        ),
        (
            UBUNTU,
            "noble",
            "ubuntu-archive-keyring.gpg",
            "data.tar.zst",
            "etc/lsb-release",
        ),
    ] {
        let loaded = load(&[(mirror, &[suite])], &["main"], keyring);
        let idx = loaded.index.candidate("base-files").unwrap();
        let package = loaded.index.package(idx);
        let wanted = apt::Wanted {
            url: package.url(),
            sha256: package.sha256.clone(),
            size: package.size,
        };
        // A fresh store, so the download (and its progress) really happens.
        let store = crate::common::tempdir();
        let progress = std::sync::Arc::new(CountingProgress::default());
        let fetcher = Fetcher::new(store.path())
            .unwrap()
            .with_progress(progress.clone());
        let started = Instant::now();
        let path = fetcher
            .fetch_all_blocking(std::slice::from_ref(&wanted))
            .unwrap()
            .remove(0);
        let fetched_in = started.elapsed();
        assert_eq!(progress.started.load(Ordering::SeqCst), 1);
        assert_eq!(progress.bytes.load(Ordering::SeqCst), package.size);
        assert_eq!(progress.finished.load(Ordering::SeqCst), 1);

        let started = Instant::now();
        let deb = apt::Deb::open(&path).unwrap();
        assert_eq!(deb.data_member().0, member);
        assert!(deb.control().contains("Package: base-files"));
        assert!(deb.control_file("md5sums").is_some());
        assert!(deb.control_file("conffiles").is_some());
        let mut entries = 0;
        let mut marker_text = None;
        deb.for_each_data_entry(|entry| {
            entries += 1;
            if entry.path()?.to_string_lossy().trim_start_matches("./") == marker {
                let mut text = String::new();
                entry.read_to_string(&mut text)?;
                marker_text = Some(text);
            }
            Ok(())
        })
        .unwrap();
        eprintln!(
            "{suite} base-files {} ({} bytes): fetched in {fetched_in:?}, {entries} entries streamed in {:?}",
            package.version,
            package.size,
            started.elapsed()
        );
        assert!(entries > 20, "{entries}");

        // dpkg-deb, reading the same file on its own, sees the same paths, types and sizes.
        require_tool("dpkg-deb", "dpkg");
        let tar = Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            tar.status.success(),
            "{}",
            String::from_utf8_lossy(&tar.stderr)
        );
        let mut theirs = Vec::new();
        for e in tar::Archive::new(&tar.stdout[..]).entries().unwrap() {
            let e = e.unwrap();
            theirs.push((
                e.path().unwrap().into_owned(),
                e.header().entry_type(),
                e.size(),
            ));
        }
        let mut mine = Vec::new();
        deb.for_each_data_entry(|e| {
            mine.push((e.path()?.into_owned(), e.header().entry_type(), e.size()));
            Ok(())
        })
        .unwrap();
        assert_eq!(mine, theirs);
        assert!(
            marker_text.is_some_and(|t| !t.is_empty()),
            "{marker} missing"
        );
    }
}

#[test]
fn bookworm_with_recommends_matches_apt_get() {
    let loaded = load(
        &[(DEBIAN, &["bookworm"])],
        &["main"],
        "debian-archive-keyring.gpg",
    );
    let request = Request {
        minbase: true,
        packages: vec!["openjdk-17-jre-headless".into(), "tomcat10".into()],
        recommends: true,
    };
    let (mine, roots) = ours(&loaded, &request);
    let theirs = apt_get_run(&loaded, &["main"], &roots, "", true);
    assert_same(&mine, &theirs);
    eprintln!(
        "bookworm minbase + JRE + tomcat10 with Recommends: {} packages, identical to apt-get",
        mine.len()
    );
}
