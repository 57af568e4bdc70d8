//! Script-free setup on real bookworm packages from deb.debian.org: the tree is built in
//! memory from the packages' data tarballs (scripts never run), then the effects of their
//! maintainer scripts are reproduced and checked against what the scripts would have made,
//! with keytool and openssl as the judges of the Java keystore and the hash links.

use crate::apt_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use apt_support::{keyrings, require_tool};
use stevedore::apt::{self, Deb, Fetcher, Sources};
use stevedore::rootfs::setup::coverage::Status;
use stevedore::rootfs::setup::{self, Effect, MemRoot, Options, PackageScripts, RootView};

const PACKAGES: &[&str] = &[
    "base-passwd",
    "openjdk-17-jre-headless",
    "ca-certificates",
    "ca-certificates-java",
    "tomcat10",
    "tomcat10-common",
    "systemd-standalone-sysusers",
    "dash",
    "tzdata",
    "fontconfig-config",
    "libpam-runtime",
    "libpam-modules",
    "ucf",
];
const JVM: &str = "/usr/lib/jvm/java-17-openjdk-amd64";
/// 2025-01-01T00:00:00Z, as SOURCE_DATE_EPOCH.
const EPOCH: u64 = 1_735_689_600;

struct Fixture {
    root: MemRoot,
    scripts: Vec<PackageScripts>,
}

/// Downloads the packages once per test binary and lays their files into a [`MemRoot`].
/// Contents above 1 MiB (the JDK's `modules` image...) are kept as empty files: nothing
/// setup reads is that large.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let started = Instant::now();
        let cache = crate::common::tempdir();
        let fetcher = Fetcher::new(cache.path()).unwrap();
        let sources = [Sources {
            mirrors: vec!["http://deb.debian.org/debian".into()],
            suites: vec!["bookworm".into()],
            components: vec!["main".into()],
            architecture: "amd64".into(),
            keyring: Some(keyrings().join("debian-archive-keyring.gpg")),
            allow_unsigned: false,
        }];
        let loaded = apt::load_index(&sources, &fetcher, SystemTime::now()).unwrap();
        let wanted: Vec<apt::Wanted> = PACKAGES
            .iter()
            .map(|name| {
                let idx = loaded
                    .index
                    .candidate(name)
                    .unwrap_or_else(|| panic!("{name} not in bookworm"));
                let p = loaded.index.package(idx);
                apt::Wanted {
                    url: p.url(),
                    sha256: p.sha256.clone(),
                    size: p.size,
                }
            })
            .collect();
        let paths = fetcher.fetch_all_blocking(&wanted).unwrap();
        eprintln!("index + {} debs in {:?}", paths.len(), started.elapsed());
        let mut root = MemRoot::new();
        let mut scripts = Vec::new();
        for (name, path) in PACKAGES.iter().zip(&paths) {
            let deb = Deb::open(path).unwrap();
            let text = |n: &str| {
                deb.control_file(n)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            // The debconf templates, where dpkg keeps them (setup reads their defaults).
            if let Some(t) = deb.control_file("templates") {
                root.file(&format!("/var/lib/dpkg/info/{name}.templates"), t.to_vec());
            }
            scripts.push(PackageScripts {
                package: name.to_string(),
                preinst: text("preinst"),
                postinst: text("postinst"),
                prerm: text("prerm"),
                postrm: text("postrm"),
            });
            deb.for_each_data_entry(|entry| {
                let p = entry.path()?.to_string_lossy().into_owned();
                // merged /usr, as the layer pipeline maps it
                let p = setup::normalize(&p);
                let p = match p.split('/').nth(1) {
                    Some("bin" | "sbin" | "lib" | "lib64") => format!("/usr{p}"),
                    _ => p,
                };
                if p == "/" {
                    return Ok(());
                }
                if entry.header().entry_type().is_file() {
                    let mut bytes = Vec::new();
                    if entry.size() <= 1 << 20 {
                        entry.read_to_end(&mut bytes)?;
                    }
                    root.file(&p, bytes);
                } else {
                    root.other(&p);
                }
                Ok(())
            })
            .unwrap();
        }
        // merged /usr's `/bin` → `usr/bin` link (dash's postinst diverts `/bin/sh` there)
        root.other("/bin");
        eprintln!("tree of {} entries in {:?}", root.len(), started.elapsed());
        // Everything is in memory now; the downloads go (a static is never dropped, so a
        // cache kept in the fixture would take its room until the process ends).
        drop(cache);
        Fixture { root, scripts }
    })
}

fn run() -> setup::Setup {
    let f = fixture();
    setup::setup(
        &f.root,
        &f.scripts,
        &Options {
            extra_users: Vec::new(),
            epoch: EPOCH,
            ..Options::default()
        },
    )
    .unwrap()
}

fn file<'a>(effects: &'a [Effect], path: &str) -> &'a [u8] {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::WriteFile { path: p, bytes, .. } if p == path => Some(bytes.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no file {path}"))
}

fn has_link(effects: &[Effect], path: &str, target: &str) -> bool {
    effects.contains(&Effect::Symlink {
        path: path.into(),
        target: target.into(),
    })
}

#[test]
fn tomcat_user_comes_from_its_sysusers_file() {
    let s = run();
    let uid = s.accounts.uid("tomcat").expect("tomcat user");
    let gid = s.accounts.gid("tomcat").expect("tomcat group");
    assert!((100..1000).contains(&uid), "{uid}");
    assert_eq!(
        s.accounts.sources["user tomcat"],
        "/usr/lib/sysusers.d/tomcat10.conf:7"
    );
    let passwd = String::from_utf8(file(&s.effects, "/etc/passwd").to_vec()).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n"),
        "{passwd}"
    );
    assert!(
        passwd.contains(&format!(
            "tomcat:x:{uid}:{gid}:Apache Tomcat:/var/lib/tomcat:/usr/sbin/nologin\n"
        )),
        "{passwd}"
    );
    assert!(s.effects.iter().any(|e| matches!(e,
        Effect::WriteFile { path, mode: 0o640, uid: 0, gid: 42, .. } if path == "/etc/gshadow")));
    // Stable across runs.
    assert_eq!(run().effects, s.effects);
}

#[test]
fn java_alternative_chain() {
    let s = run();
    let java = format!("{JVM}/bin/java");
    assert_eq!(s.alternatives.best("java").unwrap().path, java);
    assert!(has_link(
        &s.effects,
        "/usr/bin/java",
        "/etc/alternatives/java"
    ));
    assert!(has_link(&s.effects, "/etc/alternatives/java", &java));
    assert!(has_link(
        &s.effects,
        "/usr/bin/keytool",
        "/etc/alternatives/keytool"
    ));
    assert!(has_link(
        &s.effects,
        "/etc/alternatives/java.1.gz",
        &format!("{JVM}/man/man1/java.1.gz")
    ));
    // The state file matches what update-alternatives writes (and what this host's dpkg has).
    assert_eq!(
        String::from_utf8_lossy(file(&s.effects, "/var/lib/dpkg/alternatives/java")),
        format!(
            "auto\n/usr/bin/java\njava.1.gz\n/usr/share/man/man1/java.1.gz\n\n{java}\n1711\n{JVM}/man/man1/java.1.gz\n\n"
        )
    );
}

#[test]
fn tomcat_conffiles_via_ucf_with_the_scripts_ownership() {
    let f = fixture();
    let s = run();
    let tomcat = s.accounts.gid("tomcat").unwrap();
    let uid = s.accounts.uid("tomcat").unwrap();
    for name in [
        "server.xml",
        "web.xml",
        "context.xml",
        "logging.properties",
        "catalina.properties",
        "tomcat-users.xml",
        "jaspic-providers.xml",
    ] {
        let dest = format!("/etc/tomcat10/{name}");
        assert_eq!(
            file(&s.effects, &dest),
            f.root
                .read(&format!("/usr/share/tomcat10/etc/{name}"))
                .unwrap()
        );
        assert!(s.effects.contains(&Effect::Chown {
            path: dest.clone(),
            uid: 0,
            gid: tomcat,
            mode: None,
            recursive: false
        }));
        assert!(s.effects.contains(&Effect::Chmod {
            path: dest,
            mode: 0o640,
            recursive: false
        }));
    }
    assert!(file(&s.effects, "/etc/default/tomcat10").starts_with(b"#"));
    // tmpfiles.d and the postinst's chown/chmod
    assert!(s.effects.contains(&Effect::Dir {
        path: "/var/log/tomcat10".into(),
        mode: 0o2770,
        uid,
        gid: 4
    }));
    for (path, mode) in [
        ("/var/cache/tomcat10", 0o750),
        ("/var/lib/tomcat10/webapps", 0o775),
    ] {
        assert!(s.effects.contains(&Effect::Chown {
            path: path.into(),
            uid,
            gid: tomcat,
            mode: None,
            recursive: true
        }));
        assert!(s.effects.contains(&Effect::Chmod {
            path: path.into(),
            mode,
            recursive: false
        }));
    }
    assert!(
        !s.effects
            .iter()
            .any(|e| e.path().starts_with("/var/lib/tomcat10/webapps/ROOT")),
        "no default ROOT webapp"
    );
}

#[test]
fn ca_bundle_hash_links_and_java_keystore() {
    require_tool("keytool", "openjdk-17-jre-headless");
    require_tool("openssl", "openssl");
    let f = fixture();
    let s = run();
    let bundle =
        String::from_utf8(file(&s.effects, "/etc/ssl/certs/ca-certificates.crt").to_vec()).unwrap();
    let n = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(n >= 140, "{n} certs");
    assert!(
        s.effects
            .iter()
            .any(|e| e.path() == "/usr/local/share/ca-certificates"),
        "{:?}",
        s.effects
            .iter()
            .filter(|e| e.path().starts_with("/usr/local"))
            .collect::<Vec<_>>()
    );
    let pem_links: Vec<&Effect> = s
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Symlink { path, target } if path.ends_with(".pem") && target.starts_with("/usr/share/ca-certificates/mozilla/")))
        .collect();
    assert_eq!(pem_links.len(), n);

    // Hash links agree with `openssl x509 -hash` for every cert.
    let dir = crate::common::tempdir();
    let mut expected = BTreeMap::new();
    for e in &pem_links {
        let Effect::Symlink { path, target } = e else {
            unreachable!()
        };
        let src = dir.path().join("c.pem");
        std::fs::write(&src, f.root.read(target).unwrap()).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-hash", "-noout", "-in"])
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success());
        let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let name = path.rsplit('/').next().unwrap().to_owned();
        expected.entry(hash).or_insert_with(Vec::new).push(name);
    }
    for (hash, names) in &expected {
        for (i, _) in names.iter().enumerate() {
            let link = format!("/etc/ssl/certs/{hash}.{i}");
            let found = s.effects.iter().find(|e| e.path() == link);
            match found {
                Some(Effect::Symlink { target, .. }) => {
                    assert!(names.contains(target), "{link} -> {target}")
                }
                other => panic!("{link}: {other:?}"),
            }
        }
    }

    // The keystore: keytool lists one trustedCertEntry per cert, dated EPOCH.
    let cacerts = file(&s.effects, "/etc/ssl/certs/java/cacerts");
    let ks = dir.path().join("cacerts");
    std::fs::write(&ks, cacerts).unwrap();
    let out = Command::new("keytool")
        .args(["-list", "-v", "-storepass", "changeit", "-keystore"])
        .arg(&ks)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Keystore type: JKS"), "{text}");
    assert!(
        text.contains(&format!("Your keystore contains {n} entries")),
        "{text}"
    );
    assert_eq!(text.matches("Entry type: trustedCertEntry").count(), n);
    assert!(text.contains("Alias name: debian:accvraiz1.pem"), "{text}");
    assert!(
        text.contains("Creation date: Jan 1, 2025"),
        "{}",
        &text[..2000.min(text.len())]
    );
}

#[test]
fn coverage_classifies_every_command() {
    let f = fixture();
    let s = run();
    let report = s.coverage.report();
    eprintln!("{report}");
    for p in &f.scripts {
        for (script, text) in p.scripts() {
            let n =
                setup::shell::commands_with_args(text, setup::shell::install_args(script)).len();
            let reported = s
                .coverage
                .commands
                .iter()
                .filter(|c| c.package == p.package && c.script == script)
                .count();
            assert_eq!(reported, n, "{} {script}", p.package);
        }
    }
    let status = |pkg: &str, prefix: &str| -> Vec<&Status> {
        s.coverage
            .commands
            .iter()
            .filter(|c| c.package == pkg && c.script == "postinst" && c.command.starts_with(prefix))
            .map(|c| &c.status)
            .collect()
    };
    assert!(matches!(
        status("tomcat10", "systemd-sysusers")[..],
        [Status::Reproduced(_)]
    ));
    assert_eq!(status("tomcat10", "ucf").len(), 9);
    assert!(
        status("tomcat10", "ucf")
            .iter()
            .all(|s| matches!(s, Status::Reproduced(_)))
    );
    assert!(
        status("tomcat10", "cp")
            .iter()
            .all(|s| matches!(s, Status::Ignored(_)))
    );
    assert!(
        status("tomcat10", "deb-systemd-helper")
            .iter()
            .all(|s| matches!(s, Status::Ignored(_)))
    );
    let ua = status("openjdk-17-jre-headless", "update-alternatives --install");
    assert_eq!(ua.len(), 5);
    assert!(
        ua.iter().all(|s| matches!(s, Status::Reproduced(_))),
        "{ua:?}"
    );
    let summary = s.coverage.summary();
    eprintln!("{summary}");
    assert!(summary.reproduced > 20);
    // Honest about the rest: strict fails and names each uncovered command.
    if summary.not_covered > 0 {
        let err = s.coverage.strict().unwrap_err();
        assert_eq!(err.count, summary.not_covered);
    }
}

fn text(effects: &[Effect], path: &str) -> String {
    String::from_utf8(file(effects, path).to_vec()).unwrap()
}

/// libpam-runtime's postinst runs `pam-auth-update`: the common files from the `unix`
/// profile (mkhomedir is off by default), as mmdebstrap's run of bookworm writes them.
#[test]
fn pam_common_files_from_the_profiles() {
    let s = run();
    let auth = text(&s.effects, "/etc/pam.d/common-auth");
    assert!(
        auth.contains("(the \"Primary\" block)\nauth\t[success=1 default=ignore]\tpam_unix.so nullok\n# here's the fallback"),
        "{auth}"
    );
    let session = text(&s.effects, "/etc/pam.d/common-session");
    assert!(
        session.contains("session\trequired\tpam_unix.so \n"),
        "{session}"
    );
    assert!(!session.contains("pam_mkhomedir"), "{session}");
    assert_eq!(text(&s.effects, "/var/lib/pam/seen"), "unix\nmkhomedir\n");
    for ty in ["account", "password", "session-noninteractive"] {
        assert!(text(&s.effects, &format!("/etc/pam.d/common-{ty}")).contains("pam_unix.so"));
    }
}

/// Debconf defaults decide the postinsts' branches: tzdata's zone, fontconfig's one hinting
/// style and no bitmaps; dash's diversions are recorded; ucf registers tomcat's conffiles.
#[test]
fn debconf_defaults_diversions_and_ucf_state() {
    let s = run();
    assert!(has_link(
        &s.effects,
        "/etc/localtime",
        "/usr/share/zoneinfo/Etc/UTC"
    ));
    assert_eq!(text(&s.effects, "/etc/timezone"), "Etc/UTC\n");
    let conf_d: Vec<&str> = s
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Symlink { .. }))
        .map(Effect::path)
        .filter(|p| p.starts_with("/etc/fonts/conf.d/"))
        .collect();
    assert_eq!(
        conf_d,
        [
            "/etc/fonts/conf.d/10-hinting-slight.conf",
            "/etc/fonts/conf.d/70-no-bitmaps.conf"
        ]
    );
    let diversions = text(&s.effects, "/var/lib/dpkg/diversions");
    assert!(
        diversions.ends_with("/bin/sh\n/bin/sh.distrib\ndash\n"),
        "{diversions}"
    );
    let hashfile = text(&s.effects, "/var/lib/ucf/hashfile");
    assert_eq!(hashfile.lines().count(), 9, "{hashfile}");
    // In the postinst's order: its conffile loop first, /etc/default last.
    assert!(
        hashfile
            .lines()
            .next()
            .unwrap()
            .ends_with("  /etc/tomcat10/tomcat-users.xml"),
        "{hashfile}"
    );
    assert!(
        hashfile.ends_with("  /etc/default/tomcat10\n"),
        "{hashfile}"
    );
    assert_eq!(
        text(&s.effects, "/var/lib/ucf/hashfile.7").lines().count(),
        1
    );
    // jexec's binfmt slave, from the postinst line whose priority comes from `expr`.
    assert!(has_link(
        &s.effects,
        "/etc/alternatives/jexec-binfmt",
        &format!("{JVM}/lib/jar.binfmt")
    ));
    let status = |pkg: &str, prefix: &str| -> Vec<Status> {
        s.coverage
            .commands
            .iter()
            .filter(|c| c.package == pkg && c.script == "postinst" && c.command.starts_with(prefix))
            .map(|c| c.status.clone())
            .collect()
    };
    for (pkg, prefix) in [
        ("libpam-runtime", "pam-auth-update"),
        ("tzdata", "ln"),
        ("dash", "dpkg-divert --package dash --no-rename --divert"),
    ] {
        let st = status(pkg, prefix);
        assert!(
            !st.is_empty() && st.iter().all(|x| matches!(x, Status::Reproduced(_))),
            "{pkg} {prefix}: {st:?}"
        );
    }
}
