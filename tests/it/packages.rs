//! Package layers end to end against a small signed apt repository served on loopback: lock,
//! build from the lock, merged /usr, the dpkg database, conflicts and stale locks.

use crate::apt_support;
use crate::common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use apt_support::{Item, RepoSpec, Server, TestDeb, build_repo, fixtures, service_deb};
use common::*;

fn repo_debs() -> Vec<TestDeb> {
    let mut base = TestDeb::new("base-sh", "1.0")
        .field("Essential", "yes")
        .field("Priority", "required");
    base.items = vec![
        Item::Dir("./"),
        Item::Dir("./bin/"),
        Item::File("./bin/sh", b"#!shell\n".to_vec(), 0o755),
        Item::Dir("./etc/"),
        Item::File("./etc/base.conf", b"conf\n".to_vec(), 0o644),
        Item::Dir("./usr/"),
        Item::Dir("./usr/bin/"),
        Item::File("./usr/bin/env", b"env\n".to_vec(), 0o755),
    ];
    let mut app = TestDeb::new("app", "2.0").field("Depends", "libapp (>= 1)");
    app.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/bin/"),
        Item::File("./usr/bin/app", b"app\n".to_vec(), 0o755),
        Item::Symlink("./usr/bin/app-link", "app"),
    ];
    let mut lib = TestDeb::new("libapp", "1.5").field("Multi-Arch", "same");
    lib.items = vec![
        Item::Dir("./lib/"),
        Item::Dir("./lib/x86_64-linux-gnu/"),
        Item::File(
            "./lib/x86_64-linux-gnu/libapp.so.1",
            b"ELF\n".to_vec(),
            0o644,
        ),
    ];
    let clash = |name: &'static str, replaces: Option<&str>| {
        let mut d = TestDeb::new(name, "1");
        if let Some(r) = replaces {
            d = d.field("Replaces", r);
        }
        d.items = vec![
            Item::Dir("./usr/"),
            Item::Dir("./usr/share/"),
            Item::File("./usr/share/clash", name.as_bytes().to_vec(), 0o644),
        ];
        d
    };
    vec![
        base,
        app,
        lib,
        clash("clash-a", None),
        clash("clash-b", None),
        clash("clash-c", Some("clash-a")),
    ]
}

fn recipe(dir: &Path, url: &str, layers: &str) -> std::path::PathBuf {
    let path = dir.join("image.toml");
    write(&dir.join("tool"), "tool\n");
    write(
        &path,
        format!(
            "[image]\nname = \"localhost/pkgs\"\n\n[[sources]]\nmirrors = [\"{url}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n{layers}",
            fixtures().join("test-keyring.gpg").display()
        ),
    );
    path
}

const LAYERS: &str = r#"
[[layers]]
name = "base"
minbase = true

[[layers]]
name = "app"
packages = ["app"]

[[layers]]
name = "files"
files = [{ src = "tool", dest = "/bin/tool" }]
"#;

fn layer_paths(layout: &Path, digest: &str, index: usize) -> Vec<String> {
    layer_entries(layout, digest, index).into_keys().collect()
}

#[test]
fn lock_build_locked_and_the_installed_tree() {
    require_tool("umoci", "umoci");
    require_tool("gpg", "gnupg");
    require_root("umoci unpack keeps owners only as root");
    let repo = build_repo(&RepoSpec::new(repo_debs()));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let recipe = recipe(t.path(), &server.url(), LAYERS);
    let cache = t.path().join("cache");

    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = std::fs::read_to_string(t.path().join("image.lock")).unwrap();
    assert!(
        lock.contains("name = \"image/base\"") && lock.contains("name = \"base-sh\""),
        "{lock}"
    );
    assert!(
        lock.contains("name = \"image/app\"") && lock.contains("name = \"libapp\""),
        "{lock}"
    );

    let layout = t.path().join("out");
    let digest = build_ok(
        &cache,
        &[
            "--locked",
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:latest", layout.display()), &bundle);
    let root = bundle.join("rootfs");
    let snap = snapshot(&root);
    // Merged /usr: the symlinks, and package paths under /bin and /lib landed below /usr.
    assert_eq!(snap["/bin"].link.as_deref(), Some("usr/bin"));
    assert_eq!(snap["/lib"].link.as_deref(), Some("usr/lib"));
    assert_eq!(snap["/usr/bin/sh"].mode, 0o755);
    assert_eq!(
        snap["/usr/bin/sh"].content.as_deref(),
        Some(&b"#!shell\n"[..])
    );
    assert!(snap.contains_key("/usr/lib/x86_64-linux-gnu/libapp.so.1"));
    assert_eq!(snap["/usr/bin/app-link"].link.as_deref(), Some("app"));
    assert_eq!(
        snap["/usr/bin/tool"].content.as_deref(),
        Some(&b"tool\n"[..])
    );
    // The dpkg database: cumulative status, lists with the packages' own paths, scripts.
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    for p in ["base-sh", "app", "libapp"] {
        assert!(
            status.contains(&format!("Package: {p}\nStatus: install ok installed\n")),
            "{status}"
        );
    }
    let list = std::fs::read_to_string(root.join("var/lib/dpkg/info/app.list")).unwrap();
    assert_eq!(
        list,
        "/.\n/usr\n/usr/bin\n/usr/bin/app\n/usr/bin/app-link\n"
    );
    assert!(
        root.join("var/lib/dpkg/info/libapp:amd64.list").is_file(),
        "Multi-Arch: same naming"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/dpkg/info/format")).unwrap(),
        "1\n"
    );
    assert_eq!(snap["/var/lib/dpkg/info/base-sh.postinst"].mode, 0o755);
    // No layer above the base writes a `bin/` directory over the symlink.
    for i in 1..3 {
        let paths = layer_paths(&layout, &digest, i);
        assert!(
            !paths.iter().any(|p| p == "bin/" || p == "bin"),
            "layer {i}: {paths:?}"
        );
    }
    // Each package layer carries the status of everything below it too.
    assert!(layer_paths(&layout, &digest, 1).contains(&"var/lib/dpkg/status".to_string()));

    // Rebuilding from the lock with the network gone gives the same image.
    drop(server);
    let again = build_ok_env(
        &cache,
        &["--locked", path_str(&recipe)],
        &[
            ("http_proxy", "http://127.0.0.1:9"),
            ("HTTP_PROXY", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(again, digest);

    // A changed recipe makes the lock stale: --locked refuses and says what to run.
    let changed = recipe_with(
        t.path(),
        &recipe,
        "packages = [\"app\"]",
        "packages = [\"app\", \"clash-a\"]",
    );
    let out = stevedore(&cache, &["build", "--locked", path_str(&changed)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("out of date") && stderr(&out).contains("stevedore lock"),
        "{}",
        stderr(&out)
    );
}

fn recipe_with(_dir: &Path, recipe: &Path, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(recipe).unwrap().replace(from, to);
    std::fs::write(recipe, text).unwrap();
    recipe.to_path_buf()
}

#[test]
fn conflicts_follow_replaces_and_bad_requests_name_the_package() {
    require_tool("gpg", "gnupg");
    let repo = build_repo(&RepoSpec::new(repo_debs()));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let cache = t.path().join("cache");

    let clash = recipe(
        t.path(),
        &server.url(),
        "[[layers]]\nname = \"clash\"\npackages = [\"clash-a\", \"clash-b\"]\n",
    );
    let out = stevedore(&cache, &["build", path_str(&clash)]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("/usr/share/clash") && err.contains("clash-a") && err.contains("clash-b"),
        "{err}"
    );

    let replaced = recipe(
        t.path(),
        &server.url(),
        "[[layers]]\nname = \"clash\"\npackages = [\"clash-a\", \"clash-c\"]\n",
    );
    let layout = t.path().join("out");
    build_ok(
        &cache,
        &[
            path_str(&replaced),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );

    let unknown = recipe(
        t.path(),
        &server.url(),
        "[[layers]]\nname = \"x\"\npackages = [\"no-such-package\"]\n",
    );
    let out = stevedore(&cache, &["build", path_str(&unknown)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no-such-package") && err.contains("image.toml:"),
        "{err}"
    );

    // A package layer needs sources.
    write(
        &t.path().join("nosrc.toml"),
        "[[layers]]\nname = \"x\"\npackages = [\"app\"]\n",
    );
    let out = stevedore(&cache, &["build", path_str(&t.path().join("nosrc.toml"))]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no [[sources]]"), "{}", stderr(&out));
}

/// Entries of one layer: path → (content or link target).
fn layer_entries(
    layout: &Path,
    digest: &str,
    index: usize,
) -> std::collections::BTreeMap<String, String> {
    let blob =
        |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(digest)).unwrap();
    let layer = blob(manifest["layers"][index]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&layer[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let value = match e.link_name().unwrap() {
            Some(l) => format!("-> {}", l.to_string_lossy()),
            None => {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            }
        };
        out.insert(path, value);
    }
    out
}

/// Setup is cumulative across package layers: an upper layer's users and alternatives build on
/// the lower ones', and a layer built on cached lower layers (which the chain replays) is
/// byte-identical to one built with everything cold.
#[test]
fn setup_across_layers_and_replayed_from_the_cache() {
    require_tool("gpg", "gnupg");
    let mut passwd = TestDeb::new("base-passwd", "3.6")
        .field("Essential", "yes")
        .field("Priority", "required");
    passwd.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/share/"),
        Item::Dir("./usr/share/base-passwd/"),
        Item::File(
            "./usr/share/base-passwd/passwd.master",
            b"root:*:0:0:root:/root:/bin/sh\n".to_vec(),
            0o644,
        ),
        Item::File(
            "./usr/share/base-passwd/group.master",
            b"root:*:0:\nadm:*:4:\n".to_vec(),
            0o644,
        ),
    ];
    let repo = build_repo(&RepoSpec::new(vec![
        passwd,
        service_deb("alpha", 10),
        service_deb("beta", 20),
    ]));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let lower = "\n[[layers]]\nname = \"base\"\nminbase = true\n\n[[layers]]\nname = \"alpha\"\npackages = [\"alpha\"]\n";
    let upper = format!("{lower}\n[[layers]]\nname = \"beta\"\npackages = [\"beta\"]\n");

    // Warm: the two lower layers first, then the recipe grown by one layer (they are replayed).
    let warm = t.path().join("warm-cache");
    let recipe_path = recipe(t.path(), &server.url(), lower);
    build_ok(&warm, &[path_str(&recipe_path)]);
    recipe(t.path(), &server.url(), &upper);
    let out = t.path().join("warm-out");
    let warm_digest = build_ok(
        &warm,
        &[
            path_str(&recipe_path),
            "-o",
            &format!("oci:{}", out.display()),
        ],
    );
    // Cold: everything at once in an empty cache.
    let cold = t.path().join("cold-cache");
    let cold_digest = build_ok(&cold, &[path_str(&recipe_path)]);
    assert_eq!(
        warm_digest, cold_digest,
        "replayed setup differs from a cold build"
    );

    let alpha = layer_entries(&out, &warm_digest, 1);
    let beta = layer_entries(&out, &warm_digest, 2);
    assert!(
        alpha["etc/passwd"].contains("alpha:x:999:999:alpha:/var/lib/alpha"),
        "{alpha:?}"
    );
    // The upper layer rewrites /etc/passwd with both users, alpha keeping its id.
    let passwd = &beta["etc/passwd"];
    assert!(passwd.contains("alpha:x:999:999:"), "{passwd}");
    assert!(passwd.contains("beta:x:998:998:"), "{passwd}");
    // Higher priority wins: the alternative moves to beta's tool, in beta's layer.
    assert_eq!(alpha["etc/alternatives/tool"], "-> /usr/bin/tool-alpha");
    assert_eq!(beta["etc/alternatives/tool"], "-> /usr/bin/tool-beta");
    // What did not change is not written again (the link /usr/bin/tool → alternatives).
    assert!(alpha.contains_key("usr/bin/tool"));
    assert!(!beta.contains_key("usr/bin/tool"), "{beta:?}");
}

/// `--strict` turns an uncovered maintainer-script command into an input error (exit 3) that
/// names the package, script, line and command, before anything is written.
#[test]
fn strict_fails_on_an_uncovered_script_command() {
    require_tool("gpg", "gnupg");
    let odd = TestDeb::new("odd", "1")
        .postinst("#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  frobnicate --all\nfi\n");
    let repo = build_repo(&RepoSpec::new(vec![odd]));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let recipe = recipe(
        t.path(),
        &server.url(),
        "\n[[layers]]\nname = \"odd\"\npackages = [\"odd\"]\n",
    );
    let cache = t.path().join("cache");
    let report = stevedore(&cache, &["plan", "--scripts", path_str(&recipe)]);
    assert!(report.status.success(), "{}", stderr(&report));
    let text = stdout(&report);
    assert!(
        text.lines()
            .any(|l| l.contains("NOT COVERED") && l.contains("frobnicate --all")),
        "{text}"
    );
    for verb in [&["plan", "--strict"][..], &["build", "--strict", "-o"][..]] {
        let layout = t.path().join("out");
        let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        if verb[0] == "build" {
            args.push(format!("oci:{}", layout.display()));
        }
        args.push(path_str(&recipe).to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = stevedore(&cache, &args);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("odd postinst:4: frobnicate --all"), "{err}");
        assert!(!layout.exists(), "nothing is written on a strict failure");
    }
}

/// Without a lockfile every build resolves, but the resolution is kept under the signed
/// Releases' digests: while the mirror publishes nothing new, a rebuild checks the InRelease
/// and reuses it without loading the index; a new publication is resolved afresh.
#[test]
fn unlocked_builds_reuse_the_resolution_until_the_mirror_publishes() {
    let repo = build_repo(&RepoSpec::new(repo_debs()));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let recipe = recipe(t.path(), &server.url(), LAYERS);
    let cache = t.path().join("cache");
    let plan = || {
        let out = stevedore_env(
            &cache,
            &["plan", path_str(&recipe)],
            &[("RUST_LOG", "stevedore=debug")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out), stderr(&out))
    };
    let (first, log) = plan();
    assert!(log.contains("loaded the index"), "{log}");
    assert!(first.contains("app=2.0"), "{first}");
    let (again, log) = plan();
    assert!(log.contains("published nothing new"), "{log}");
    assert!(!log.contains("loaded the index"), "{log}");
    assert_eq!(again, first);

    // The mirror publishes app 2.1: the next plan resolves against the new index.
    let mut debs = repo_debs();
    debs.iter_mut().find(|d| d.name == "app").unwrap().version = "2.1".into();
    let newer = build_repo(&RepoSpec::new(debs));
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", newer.root().display()))
        .arg(repo.root())
        .status()
        .unwrap();
    assert!(copied.success());
    let (third, log) = plan();
    assert!(log.contains("loaded the index"), "{log}");
    assert!(third.contains("app=2.1"), "{third}");
}
