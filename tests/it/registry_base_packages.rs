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

use apt_support::{Item, RepoSpec, Server, TestDeb, build_repo, fixtures};
use common::*;
use registry_support::{Auth, TestRegistry};

/// base-passwd's masters, two services that each add a sysusers user and a `tool`
/// alternative, and an app whose library the base already has.
fn repo_debs() -> Vec<TestDeb> {
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
    let service = |name: &'static str, priority: u32| {
        let mut d = TestDeb::new(name, "1").postinst(&format!(
            "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  systemd-sysusers\n  update-alternatives --install /usr/bin/tool tool /usr/bin/tool-{name} {priority}\nfi\n"
        ));
        d.items = vec![
            Item::Dir("./usr/"),
            Item::Dir("./usr/bin/"),
            Item::File(
                Box::leak(format!("./usr/bin/tool-{name}").into_boxed_str()),
                name.as_bytes().to_vec(),
                0o755,
            ),
            Item::Dir("./usr/lib/"),
            Item::Dir("./usr/lib/sysusers.d/"),
            Item::File(
                Box::leak(format!("./usr/lib/sysusers.d/{name}.conf").into_boxed_str()),
                format!("u {name} - \"{name}\" /var/lib/{name}\n").into_bytes(),
                0o644,
            ),
        ];
        d
    };
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
    vec![passwd, service("alpha", 10), service("beta", 20), lib, app]
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
const CHILD_LAYERS: &str = "\n[[users]]\nname = \"www\"\nuid = 1500\nhome = \"/srv/www\"\n\n[[users]]\nname = \"svc\"\nuid = 1600\nhome = \"/srv/svc\"\n\n[[layers]]\nname = \"more\"\npackages = [\"beta\", \"app\"]\n";

fn write_child(dir: &Path, name: &str, from: &str, url: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
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
    flate2::read::GzDecoder::new(&layer[..])
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
    assert_eq!(layer_count(&chain_out, &chain_digest) - 1, top);
    let theirs = layer_entries(&chain_out, &chain_digest, top);
    let differ: Vec<_> = mine
        .keys()
        .chain(theirs.keys())
        .filter(|k| mine.get(*k) != theirs.get(*k))
        .map(|k| format!("{k}: {:?} / {:?}", mine.get(k), theirs.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "the registry child's layer differs from the chain's:\n{}",
        differ.join("\n")
    );

    // Offline: the registry and the apt server stopped, the cache and the lock suffice.
    drop(reg);
    drop(server);
    let again = build_ok(&cache, &["--locked", path_str(&child)]);
    assert_eq!(again, child_digest);
}
