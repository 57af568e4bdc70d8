//! Package layers and `[[users]]` over a registry base: the child continues from the base's
//! state read from its layers (installed set, accounts, alternatives, dpkg database), as the
//! recipe chain continues from the layers it built itself.
//!
//! The mechanics run on a small signed apt repository served on loopback and a loopback
//! `docker-registry`; the base is built and pushed by stevedore.

use crate::apt_support;
use crate::common;
use crate::registry_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use apt_support::{Item, RepoSpec, Server, TestDeb, build_repo, fixtures, service_deb};
use common::*;
use registry_support::{Auth, TestRegistry};

/// base-passwd's masters, two services that each add a sysusers user and a `tool`
/// alternative, and an app whose library the base already has.
fn repo_debs() -> Vec<TestDeb> {
    let mut passwd = TestDeb::new("base-passwd", "3.6")
        .field("Essential", "yes")
        .field("Priority", "required");
    // It ships /bin/sh, so the base gets merged /usr's `/bin → usr/bin`.
    passwd.items = vec![
        Item::Dir("./bin/"),
        Item::File("./bin/sh", b"#!shell\n".to_vec(), 0o755),
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
    let mut lib = TestDeb::new("libapp", "1.5");
    lib.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/lib/"),
        Item::File("./usr/lib/libapp.so.1", b"ELF\n".to_vec(), 0o644),
    ];
    let mut app = TestDeb::new("app", "2.0").field("Depends", "libapp (>= 1)");
    app.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/bin/"),
        Item::File("./usr/bin/app", b"app\n".to_vec(), 0o755),
    ];
    vec![
        passwd,
        service_deb("alpha", 10),
        service_deb("beta", 20),
        lib,
        app,
    ]
}

fn sources(url: &str) -> String {
    format!(
        "[[sources]]\nmirrors = [\"{url}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n",
        fixtures().join("test-keyring.gpg").display()
    )
}

/// The base: minbase, alpha and libapp, and a recipe user with a fixed id.
fn write_base(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("base.toml");
    write(
        &path,
        format!(
            "[image]\nname = \"localhost/base\"\n\n{}\n[[users]]\nname = \"www\"\nuid = 1500\nhome = \"/srv/www\"\n\n[[layers]]\nname = \"base\"\nminbase = true\n\n[[layers]]\nname = \"alpha\"\npackages = [\"alpha\", \"libapp\"]\n",
            sources(url)
        ),
    );
    path
}

/// What the children add: beta (a new sysusers user, a higher-priority alternative) and app
/// (whose dependency the base has) in one layer, and a recipe user of their own.
const CHILD_LAYERS: &str = "\n[[users]]\nname = \"www\"\nuid = 1500\nhome = \"/srv/www\"\n\n[[users]]\nname = \"svc\"\nuid = 1600\nhome = \"/srv/svc\"\n\n[[layers]]\nname = \"more\"\npackages = [\"beta\", \"app\"]\n\n[[layers]]\nname = \"tool\"\nfiles = [{ src = \"tool\", dest = \"/bin/tool\", owner = \"svc\" }]\n";

fn write_child(dir: &Path, name: &str, from: &str, url: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    write(&dir.join("tool"), "tool\n");
    write(
        &path,
        format!(
            "from = \"{from}\"\n\n[image]\nname = \"localhost/{name}\"\n\n{}{CHILD_LAYERS}",
            sources(url)
        ),
    );
    path
}

/// The entries of layer `index` of an image in an OCI layout: path → content or link target.
fn layer_entries(layout: &Path, digest: &str, index: usize) -> BTreeMap<String, String> {
    let blob =
        |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(digest)).unwrap();
    let layer = blob(manifest["layers"][index]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&layer[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header();
        let meta = format!(
            "{:o} {}:{} ",
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap()
        );
        let value = match e.link_name().unwrap() {
            Some(l) => format!("{meta}-> {}", l.to_string_lossy()),
            None => {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                format!("{meta}{s}")
            }
        };
        out.insert(path, value);
    }
    out
}

fn layer_count(layout: &Path, digest: &str) -> usize {
    let m = std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
    m["layers"].as_array().unwrap().len()
}

/// The paths whose entries differ between two layers, each with both sides.
fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} / {:?}", a.get(k), b.get(k)))
        .collect()
}

/// Pushes `recipe` to `reg` (where its base is): the base's `base_layers` are mounted.
fn pushes_mounting_the_base(cache: &Path, recipe: &Path, reg: &TestRegistry, base_layers: usize) {
    let out = stevedore(
        cache,
        &[
            "build",
            "--locked",
            path_str(recipe),
            "--push",
            &format!("{}/app/child:1", reg.host()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{base_layers} mounted")), "{err}");
    assert!(err.contains("mounted from base/pkgs"), "{err}");
}

/// The child over the registry base resolves from the base's installed set, keeps the base's
/// users and ids, continues its alternatives and dpkg database, and lays exactly the layer the
/// recipe chain (`from = "base.toml"`) lays; a second build works with the registry and the
/// apt server stopped.
#[test]
fn child_continues_the_registry_bases_state_like_the_recipe_chain() {
    registry_support::require_all();
    require_tool("gpg", "gnupg");
    let repo = build_repo(&RepoSpec::new(repo_debs()));
    let server = Server::serve(repo.root());
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    let url = server.url();
    let base = write_base(t.path(), &url);
    build_ok(
        &t.path().join("cache-base"),
        &[
            path_str(&base),
            "--push",
            &format!("{}/base/pkgs:1", reg.host()),
        ],
    );

    // The child, in a cache of its own: everything of the base comes from the registry.
    let cache = t.path().join("cache-child");
    let child = write_child(
        t.path(),
        "child",
        &format!("{}/base/pkgs:1", reg.host()),
        &url,
    );
    let out = stevedore(&cache, &["lock", path_str(&child)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = std::fs::read_to_string(t.path().join("child.lock")).unwrap();
    assert!(
        lock.contains("name = \"beta\"") && lock.contains("name = \"app\""),
        "{lock}"
    );
    // The base's packages satisfy the dependencies and are not installed again.
    for installed in ["libapp", "alpha", "base-passwd"] {
        assert!(
            !lock.contains(&format!("name = \"{installed}\"")),
            "{installed} is the base's: {lock}"
        );
    }
    assert!(lock.contains("[base]"), "the base is pinned: {lock}");

    let child_out = t.path().join("child-out");
    let child_digest = build_ok(
        &cache,
        &[
            "--locked",
            path_str(&child),
            "-o",
            &format!("oci:{}", child_out.display()),
        ],
    );
    let top = layer_count(&child_out, &child_digest) - 1;
    // A file for /bin/tool goes through the base's /bin → usr/bin symlink, owned by the
    // child's user; no `bin/` entry replaces the symlink.
    let tool = layer_entries(&child_out, &child_digest, top);
    assert_eq!(
        tool.get("usr/bin/tool").map(String::as_str),
        Some("644 1600:1600 tool\n"),
        "{tool:?}"
    );
    assert!(tool.keys().all(|k| !k.starts_with("bin")), "{tool:?}");
    assert_eq!(
        tool.get("usr/bin/").map(String::as_str),
        Some("755 0:0 "),
        "parents keep the base's metadata: {tool:?}"
    );
    let top = top - 1;
    let mine = layer_entries(&child_out, &child_digest, top);
    let passwd = &mine["etc/passwd"];
    assert!(
        passwd.contains("alpha:x:999:999:"),
        "the base's user keeps its id: {passwd}"
    );
    assert!(
        passwd.contains("www:x:1500:1500:"),
        "the base recipe's user: {passwd}"
    );
    assert!(
        passwd.contains("beta:x:998:998:"),
        "the next free id: {passwd}"
    );
    assert!(
        passwd.contains("svc:x:1600:"),
        "the child recipe's user: {passwd}"
    );
    assert!(mine["etc/alternatives/tool"].ends_with("-> /usr/bin/tool-beta"));
    let status = &mine["var/lib/dpkg/status"];
    for p in ["base-passwd", "alpha", "libapp", "beta", "app"] {
        assert!(status.contains(&format!("Package: {p}\n")), "{p}: {status}");
    }
    assert!(
        !mine.contains_key("usr/lib/libapp.so.1"),
        "libapp is not laid again"
    );
    assert!(mine.contains_key("usr/bin/app") && mine.contains_key("usr/bin/tool-beta"));

    // The recipe chain over the same base recipe lays the same layer, entry by entry.
    let chain = write_child(t.path(), "chain", "base.toml", &url);
    let chain_out = t.path().join("chain-out");
    let chain_digest = build_ok(
        &t.path().join("cache-base"),
        &[
            path_str(&chain),
            "-o",
            &format!("oci:{}", chain_out.display()),
        ],
    );
    assert_eq!(layer_count(&chain_out, &chain_digest) - 2, top);
    assert_eq!(layer_entries(&chain_out, &chain_digest, top + 1), tool);
    let theirs = layer_entries(&chain_out, &chain_digest, top);
    let differ = differences(&mine, &theirs);
    assert!(
        differ.is_empty(),
        "the registry child's layer differs from the chain's:\n{}",
        differ.join("\n")
    );

    // Pushed to the base's registry, the child mounts the base's layers, never uploads them.
    pushes_mounting_the_base(&cache, &child, &reg, top);

    // Offline: the registry and the apt server stopped, the cache and the lock suffice.
    drop(reg);
    drop(server);
    let again = build_ok(&cache, &["--locked", path_str(&child)]);
    assert_eq!(again, child_digest);
}

// ---- End to end from the real mirrors: Tomcat over a registry base -------------------------

use crate::tomcat_images::{http_get, process, serve};
use std::process::Command;

/// bookworm's two sources blocks, keyrings beside the recipes as in `recipes/`.
const BOOKWORM_SOURCES: &str = r#"[[sources]]
mirrors = ["http://deb.debian.org/debian"]
suites = ["bookworm", "bookworm-updates"]
components = ["main"]
keyring = "../keyrings/debian-archive-keyring.gpg"

[[sources]]
mirrors = ["http://deb.debian.org/debian-security"]
suites = ["bookworm-security"]
components = ["main"]
keyring = "../keyrings/debian-archive-keyring.gpg"
"#;

/// `recipes/openjdk.toml` + `tomcat.toml` + `webapp.toml` in one recipe, over `from`.
fn write_registry_webapp(t: &Path, from: &str) -> PathBuf {
    let path = t.join("recipes/registry-webapp.toml");
    write(
        &path,
        format!(
            r#"from = "{from}"
context = ".."

[image]
name = "localhost/registry-webapp"
tags = ["latest"]

{BOOKWORM_SOURCES}
[config]
entrypoint = ["/usr/share/tomcat10/bin/catalina.sh"]
cmd = ["run"]
user = "tomcat"
workdir = "/var/lib/tomcat10"
env = {{ JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64", PATH = "/usr/lib/jvm/java-17-openjdk-amd64/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", CATALINA_HOME = "/usr/share/tomcat10", CATALINA_BASE = "/var/lib/tomcat10", CATALINA_TMPDIR = "/tmp", JAVA_OPTS = "-Djava.awt.headless=true" }}

[[layers]]
name = "jdk"
packages = ["openjdk-17-jre-headless"]

[[layers]]
name = "tomcat"
packages = ["tomcat10", "systemd-standalone-sysusers", "systemd-standalone-tmpfiles"]

[[layers]]
name = "app"
files = [
  {{ src = "fixtures/war/jakarta/hello-jakarta.war", dest = "/var/lib/tomcat10/webapps/ROOT.war", mode = "0644" }},
]
"#
        ),
    );
    path
}

/// Builds `recipe` (locked first) into an OCI layout and unpacks it with umoci; the bundle.
fn build_and_unpack(t: &Path, cache: &Path, recipe: &Path, name: &str) -> PathBuf {
    let out = stevedore(cache, &["lock", path_str(recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let layout = t.join(format!("{name}-oci"));
    build_ok(
        cache,
        &[
            "--locked",
            path_str(recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    let bundle = t.join(format!("{name}-bundle"));
    umoci_unpack(&format!("{}:latest", layout.display()), &bundle);
    bundle
}

/// Runs the image's own command as its configured user (tomcat) and asks for the WAR's JSP
/// and servlet.
fn serves_the_war(t: &Path, bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    let p = process(bundle);
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    let tomcat_uid = passwd
        .lines()
        .find(|l| l.starts_with("tomcat:"))
        .map(|l| l.split(':').nth(2).unwrap().parse::<u64>().unwrap());
    assert_eq!(tomcat_uid, Some(p.uid), "config.user is tomcat: {passwd}");
    assert_ne!(p.uid, 0);
    let log_path = t.join("tomcat.log");
    let server_xml = rootfs.join("etc/tomcat10/server.xml");
    let (_server, port, page) = serve(&rootfs, &server_xml, &p, &log_path);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(page.contains("hello from jsp on java 17"), "{page}");
    let (code, body) = http_get(port, "/hello").unwrap();
    assert_eq!(
        (code, body.trim()),
        (200, "hello from servlet"),
        "{}",
        log()
    );
}

fn require_e2e_tools() {
    registry_support::require_all();
    require_tool("umoci", "umoci");
    require_tool("unshare", "util-linux");
    require_tool("pgrep", "procps");
    require_root("umoci unpack keeps owners, and chroot needs root");
}

/// Paths whose difference between the registry child and the recipe chain is expected, with
/// why. Empty: the child over the pushed base lays the same files as the chain.
const CHAIN_DIFFERENCES: &[&str] = &[];

/// The issue's proof: `debian-bookworm.toml`'s image pushed to a loopback registry, a child
/// `from` it adds the JDK, Tomcat and the WAR; Tomcat serves as `tomcat`, and every file equals
/// the recipe chain's (`webapp.toml` → `tomcat.toml` → `openjdk.toml` → `debian-bookworm.toml`).
#[test]
fn tomcat_over_a_pushed_bookworm_base_serves_and_equals_the_recipe_chain() {
    require_e2e_tools();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    recipes_copy(
        t.path(),
        &[
            "debian-bookworm.toml",
            "openjdk.toml",
            "tomcat.toml",
            "webapp.toml",
        ],
    );
    let cache = t.path().join("cache");
    warm_cache(&["webapp.toml"], &cache);
    let base = t.path().join("recipes/debian-bookworm.toml");
    let out = stevedore(&cache, &["lock", path_str(&base)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reference = format!("{}/base/debian:bookworm", reg.host());
    build_ok(&cache, &["--locked", path_str(&base), "--push", &reference]);

    // The chain first, in the same cache: both resolve against the same mirror state.
    let chain = build_and_unpack(
        t.path(),
        &cache,
        &t.path().join("recipes/webapp.toml"),
        "chain",
    );
    // The child in a cache of its own: the base comes from the registry only.
    let child_recipe = write_registry_webapp(t.path(), &reference);
    let child = build_and_unpack(
        t.path(),
        &t.path().join("cache-child"),
        &child_recipe,
        "child",
    );

    let mine = snapshot(&child.join("rootfs"));
    let theirs = snapshot(&chain.join("rootfs"));
    let differ: Vec<String> = mine
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| !CHAIN_DIFFERENCES.contains(&k.as_str()))
        .filter(|k| {
            let (a, b) = (mine.get(*k), theirs.get(*k));
            let key = |n: &common::Node| {
                (
                    n.kind,
                    n.mode,
                    n.uid,
                    n.gid,
                    n.link.clone(),
                    n.content.clone(),
                )
            };
            a.map(key) != b.map(key)
        })
        .map(|k| {
            let show = |n: Option<&common::Node>| {
                n.map(|n| format!("{} {:o} {}:{} {:?}", n.kind, n.mode, n.uid, n.gid, n.link))
            };
            format!(
                "{k}: child {:?} / chain {:?}",
                show(mine.get(k)),
                show(theirs.get(k))
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} paths differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    serves_the_war(t.path(), &child);
}

/// A foreign base: mmdebstrap's bookworm minbase tarball made into an OCI image with umoci and
/// pushed with skopeo; the child adds the JDK, Tomcat and the WAR, and Tomcat serves; the
/// base's accounts are kept and the new ones take free ids.
#[test]
fn tomcat_over_a_foreign_mmdebstrap_base_serves() {
    require_e2e_tools();
    require_tool("mmdebstrap", "mmdebstrap");
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    recipes_copy(t.path(), &[]);
    let tarball = t.path().join("minbase.tar");
    run(Command::new("mmdebstrap")
        .args([
            "--mode=root",
            "--variant=minbase",
            "--format=tar",
            "--include=usr-is-merged",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            "--quiet",
            "bookworm",
        ])
        .arg(&tarball)
        .args([
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ])
        .env("SOURCE_DATE_EPOCH", "1735689600"));
    // Into an OCI image: a new image, the tarball unpacked into its bundle, repacked.
    let layout = t.path().join("mm-oci");
    let bundle = t.path().join("mm-bundle");
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &format!("{}:bookworm", layout.display())]));
    run(Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:bookworm", layout.display()),
        ])
        .arg(&bundle));
    run(Command::new("tar")
        .args(["-xpf"])
        .arg(&tarball)
        .args(["--numeric-owner", "-C"])
        .arg(bundle.join("rootfs")));
    run(Command::new("umoci")
        .args([
            "repack",
            "--image",
            &format!("{}:bookworm", layout.display()),
        ])
        .arg(&bundle));
    let reference = format!("{}/foreign/debian:bookworm", reg.host());
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:bookworm", layout.display()),
        &format!("docker://{reference}"),
    ]));

    let child_recipe = write_registry_webapp(t.path(), &reference);
    // The base is foreign, so nothing of it can be in a cache; the warm one saves the downloads
    // and unpacking of the JDK and Tomcat packages.
    let cache = t.path().join("cache");
    warm_cache(&["webapp.toml"], &cache);
    let child = build_and_unpack(t.path(), &cache, &child_recipe, "child");
    let rootfs = child.join("rootfs");
    // mmdebstrap's own accounts are kept; tomcat got the next free system id.
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    let mut uids: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').nth(2)).collect();
    let all = uids.len();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), all, "no id given twice: {passwd}");
    assert!(
        passwd.contains("\n_apt:x:"),
        "mmdebstrap's _apt is kept: {passwd}"
    );
    serves_the_war(t.path(), &child);
}
