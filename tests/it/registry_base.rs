//! `from = "host:port/repo:tag"`: an image built on a registry image, against a real
//! `docker-registry`, checked with skopeo and umoci.
//!
//! The base is itself built and pushed by stevedore (files only), so every digest is known.

use crate::common;
use crate::registry_support;

use std::path::Path;

use common::*;
use registry_support::{Auth, TestRegistry};

/// A files-only base image: an account, a config `docker inspect` would show, a file whose text
/// says which version of the base it is.
fn write_base(dir: &Path, version: &str) {
    write(
        &dir.join("base/site/index.html"),
        format!("base {version}\n"),
    );
    write(
        &dir.join("base/base.toml"),
        r#"[image]
name = "localhost/base"

[[users]]
name = "www"
uid = 101
home = "/srv/www"

[config]
entrypoint = ["/srv/www/run"]
cmd = ["--base"]
user = "www"
workdir = "/srv/www"
env = { PATH = "/usr/bin:/bin", LANG = "C" }
labels = { "org.example.layer" = "base", "org.example.keep" = "yes" }
exposed-ports = ["8080/tcp"]

[[layers]]
name = "site"
files = [{ src = "site", dest = "/srv/www", owner = "www" }]
"#,
    );
}

/// An app recipe on top of `from`: one file layer and a few config overrides.
fn write_app(dir: &Path, from: &str) {
    write(&dir.join("app/files/app.txt"), "app\n");
    write(
        &dir.join("app/app.toml"),
        format!(
            r#"from = "{from}"

[image]
name = "localhost/app"

[config]
cmd = ["--app"]
env = {{ LANG = "C.UTF-8", APP_HOME = "/srv/app" }}
labels = {{ "org.example.layer" = "app" }}

[[layers]]
name = "app"
files = [{{ src = "files", dest = "/srv/app" }}]
"#
        ),
    );
}

/// Builds the base and pushes it as `repo_tag`; returns its manifest digest.
fn push_base(reg: &TestRegistry, dir: &Path, cache: &Path, repo_tag: &str) -> String {
    build_ok(
        cache,
        &[
            path_str(&dir.join("base/base.toml")),
            "--push",
            &format!("{}/{repo_tag}", reg.host()),
        ],
    )
}

fn layers(inspect: &serde_json::Value) -> Vec<String> {
    inspect["Layers"]
        .as_array()
        .expect("skopeo lists layers")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn cache_blobs(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache.join("blobs/sha256"))
        .map(|d| {
            d.map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn push_to_the_base_registry_mounts_base_layers_and_never_downloads_them() {
    registry_support::require_all();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write_base(t.path(), "1");
    push_base(&reg, t.path(), &t.path().join("cache-base"), "team/base:1");
    let base = reg.skopeo_inspect("team/base:1");
    let base_layers = layers(&base);
    assert_eq!(base_layers.len(), 2, "accounts and site: {base}");

    write_app(t.path(), &format!("{}/team/base:1", reg.host()));
    // A cache of its own: nothing of the base can already be in it.
    let cache = t.path().join("cache-app");
    let recipe = t.path().join("app/app.toml");
    let out = stevedore(
        &cache,
        &[
            "build",
            path_str(&recipe),
            "--push",
            &format!("{}/team/app:1", reg.host()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "stdout is only the digest");
    let digest = stdout(&out).trim().to_string();
    let err = stderr(&out);
    // Our layer and the config go up; both base layers are mounted from the base's repository.
    assert!(
        err.contains("2 uploaded") && err.contains("2 mounted"),
        "{err}"
    );
    assert!(err.contains("mounted from team/base"), "{err}");
    let held = cache_blobs(&cache);
    for l in &base_layers {
        assert!(
            !held.contains(l),
            "base layer {l} was downloaded into the cache"
        );
    }

    let app = reg.skopeo_inspect("team/app:1");
    assert_eq!(app["Digest"], digest.as_str());
    let app_layers = layers(&app);
    assert_eq!(app_layers.len(), 3, "{app}");
    assert_eq!(
        app_layers[..2],
        base_layers[..],
        "base layers first, unchanged"
    );
    // The manifest keeps the base's descriptors byte for byte (digest, size, media type).
    let base_raw: serde_json::Value =
        serde_json::from_slice(&reg.skopeo_raw("team/base:1")).unwrap();
    let app_raw: serde_json::Value = serde_json::from_slice(&reg.skopeo_raw("team/app:1")).unwrap();
    assert_eq!(app_raw["layers"][0], base_raw["layers"][0]);
    assert_eq!(app_raw["layers"][1], base_raw["layers"][1]);

    // Again: everything is already there, still nothing downloaded.
    let again = stevedore(
        &cache,
        &[
            "build",
            path_str(&recipe),
            "--push",
            &format!("{}/team/app:1", reg.host()),
        ],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), digest);
    assert!(stderr(&again).contains("0 uploaded"), "{}", stderr(&again));
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));
    let held = cache_blobs(&cache);
    assert!(base_layers.iter().all(|l| !held.contains(l)));
    let base_digest = base["Digest"].as_str().unwrap();
    assert!(
        stderr(&again).contains(&format!("team/base:1 = {base_digest}")),
        "{}",
        stderr(&again)
    );

    // A rebuild in a fresh cache is identical, base layers compared by digest (not downloaded).
    let verify = stevedore(&cache, &["verify", path_str(&recipe)]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    assert!(stdout(&verify).contains("identical"), "{}", stdout(&verify));

    // To another repository of a registry without the base: the bytes must go up, so they are
    // downloaded (verified) first.
    let other = TestRegistry::start(Auth::None);
    let out = stevedore(
        &cache,
        &[
            "build",
            path_str(&recipe),
            "--push",
            &format!("{}/elsewhere/app:1", other.host()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), digest);
    assert!(stderr(&out).contains("4 uploaded"), "{}", stderr(&out));
    assert_eq!(
        other.skopeo_inspect("elsewhere/app:1")["Digest"],
        digest.as_str()
    );
    let held = cache_blobs(&cache);
    assert!(base_layers.iter().all(|l| held.contains(l)));
}

#[test]
fn local_outputs_download_the_base_and_inherit_its_config() {
    registry_support::require_all();
    require_tool("umoci", "umoci");
    require_root("umoci unpack keeps owners only as root");
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write_base(t.path(), "1");
    push_base(&reg, t.path(), &t.path().join("cache-base"), "base:1");
    write_app(t.path(), &format!("{}/base:1", reg.host()));
    let cache = t.path().join("cache-app");
    let layout = t.path().join("out");
    let archive = t.path().join("app.tar");
    let digest = build_ok(
        &cache,
        &[
            path_str(&t.path().join("app/app.toml")),
            "--output",
            &format!("oci:{}:v1", layout.display()),
            "--output",
            &format!("docker-archive:{}", archive.display()),
        ],
    );

    let inspect: serde_json::Value = serde_json::from_slice(
        &run(std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:v1", layout.display())))
        .stdout,
    )
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(
        layers(&inspect)[..2],
        layers(&reg.skopeo_inspect("base:1"))[..],
        "base layers first"
    );
    let env: Vec<&str> = inspect["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "APP_HOME=/srv/app"],
        "the base's env, merged by name"
    );
    assert_eq!(inspect["Labels"]["org.example.layer"], "app");
    assert_eq!(inspect["Labels"]["org.example.keep"], "yes");

    let config: serde_json::Value = serde_json::from_slice(
        &run(std::process::Command::new("skopeo")
            .arg("inspect")
            .arg("--config")
            .arg(format!("oci:{}:v1", layout.display())))
        .stdout,
    )
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "www", "inherited");
    assert_eq!(c["WorkingDir"], "/srv/www", "inherited");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/srv/www/run"]),
        "inherited"
    );
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["--app"]),
        "the recipe's cmd wins"
    );
    assert!(c["ExposedPorts"]["8080/tcp"].is_object(), "{c}");
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "base history, then ours: {config}");
    assert_eq!(history[2]["created_by"], "stevedore layer app");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);

    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:v1", layout.display()), &bundle);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/www/index.html")).unwrap(),
        "base 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/app/app.txt")).unwrap(),
        "app\n"
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("www:x:101:"), "{passwd}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(rootfs.join("srv/www/index.html"))
            .unwrap()
            .uid(),
        101
    );

    // The docker archive carries the same image, base layers decompressed.
    let from_archive: serde_json::Value = serde_json::from_slice(
        &run(std::process::Command::new("skopeo")
            .arg("inspect")
            .arg("--config")
            .arg(format!("docker-archive:{}", archive.display())))
        .stdout,
    )
    .unwrap();
    assert_eq!(from_archive["rootfs"], config["rootfs"]);
}

#[test]
fn a_lock_or_a_digest_pins_the_base_when_the_tag_moves() {
    registry_support::require_all();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write_base(t.path(), "1");
    let base_cache = t.path().join("cache-base");
    let v1 = push_base(&reg, t.path(), &base_cache, "base:stable");
    write_app(t.path(), &format!("{}/base:stable", reg.host()));
    let recipe = t.path().join("app/app.toml");
    let cache = t.path().join("cache-app");

    // --locked without a lockfile: refused, saying what to run.
    let refused = stevedore(&cache, &["build", "--locked", path_str(&recipe)]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("stevedore lock"),
        "{}",
        stderr(&refused)
    );
    assert!(stdout(&refused).is_empty());

    let lock = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(lock.status.success(), "{}", stderr(&lock));
    let lockfile = std::fs::read_to_string(t.path().join("app/app.lock")).unwrap();
    assert!(lockfile.contains("[base]"), "{lockfile}");
    assert!(lockfile.contains(&v1), "the lock pins base v1: {lockfile}");
    let d1 = build_ok(&cache, &["--locked", path_str(&recipe)]);
    let plan = stevedore(&cache, &["plan", path_str(&recipe)]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains(&format!("base  registry image {v1}")),
        "{}",
        stdout(&plan)
    );

    // The tag moves to another image.
    write_base(t.path(), "2");
    let v2 = push_base(&reg, t.path(), &base_cache, "base:stable");
    assert_ne!(v1, v2);
    assert_eq!(reg.skopeo_inspect("base:stable")["Digest"], v2.as_str());

    let locked = build_ok(&cache, &["--locked", path_str(&recipe)]);
    assert_eq!(locked, d1, "--locked keeps the pinned base");
    let layout = t.path().join("pinned");
    let out = build_ok(
        &cache,
        &[
            "--locked",
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    assert_eq!(out, d1);
    let inspect: serde_json::Value = serde_json::from_slice(
        &run(std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:latest", layout.display())))
        .stdout,
    )
    .unwrap();
    let v1_layers: Vec<String> = {
        // The base v1 manifest is still served by digest.
        let raw: serde_json::Value =
            serde_json::from_slice(&reg.skopeo_raw(&format!("base@{v1}"))).unwrap();
        raw["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(layers(&inspect)[..2], v1_layers[..]);

    // Without the lock the tag is followed: a new base, a new image.
    std::fs::remove_file(t.path().join("app/app.lock")).unwrap();
    let d2 = build_ok(&cache, &[path_str(&recipe)]);
    assert_ne!(d2, d1, "the moved tag gives another image");

    // `@sha256:` in the recipe pins without a lock, whatever the tag says now.
    write_app(t.path(), &format!("{}/base:stable@{v1}", reg.host()));
    let pinned = build_ok(&cache, &[path_str(&recipe)]);
    assert_ne!(pinned, d2);
    // Same base, same layers, same config as the locked build, apart from the `from` text,
    // which is not in the image: the digest is the same.
    assert_eq!(pinned, d1);

    // A pinned rebuild with a warm cache needs no registry at all.
    drop(reg);
    let offline = build_ok(&cache, &[path_str(&recipe)]);
    assert_eq!(offline, d1);
}

#[test]
fn unknown_repository_or_tag_fails_naming_the_reference_and_writes_nothing() {
    registry_support::require_all();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write_base(t.path(), "1");
    push_base(&reg, t.path(), &t.path().join("cache-base"), "base:1");
    let cache = t.path().join("cache-app");
    for missing in ["nothing/here:1", "base:no-such-tag"] {
        let reference = format!("{}/{missing}", reg.host());
        write_app(t.path(), &reference);
        let layout = t.path().join("out");
        let out = stevedore(
            &cache,
            &[
                "build",
                path_str(&t.path().join("app/app.toml")),
                "-o",
                &format!("oci:{}", layout.display()),
            ],
        );
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "no digest on failure");
        let err = stderr(&out);
        eprintln!("{err}");
        assert!(err.contains(&reference), "names the reference: {err}");
        assert!(err.contains("app.toml:1:"), "names the recipe line: {err}");
        assert!(!layout.exists(), "nothing written");
    }

    // Package layers need the base's dpkg database: this files-only base has none, which is
    // refused at the recipe's `from` line before any package source is asked.
    write(
        &t.path().join("pkg/app.toml"),
        format!(
            "from = \"{}/base:1\"\n\n[[sources]]\nmirrors = [\"http://127.0.0.1:9/debian\"]\nsuites = [\"bookworm\"]\ncomponents = [\"main\"]\nallow-unsigned = true\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"hello\"]\n",
            reg.host()
        ),
    );
    let out = stevedore(&cache, &["build", path_str(&t.path().join("pkg/app.toml"))]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the image has no /var/lib/dpkg/status"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("app.toml:1:"), "{}", stderr(&out));
}

#[test]
fn an_index_is_followed_to_the_recipes_platform() {
    registry_support::require_all();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write_base(t.path(), "1");
    let single = push_base(&reg, t.path(), &t.path().join("cache-base"), "base:1");
    let raw = reg.skopeo_raw("base:1");
    // An index over the base: one platform no recipe here builds for, then the host's. The
    // registry checks an index's children exist, so both entries point at the base manifest
    // (only the index entry is read to choose).
    let host = stevedore::image::Platform::host();
    let entry = |os: &str, arch: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": single, "size": raw.len(), "platform": {"os": os, "architecture": arch}})
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("linux", "s390x"), entry(&host.os, &host.architecture)]
    });
    let client = stevedore::registry::BlockingRegistry::new(stevedore::registry::RegistryOptions {
        credentials: stevedore::registry::CredentialSource::Anonymous,
        ..Default::default()
    })
    .unwrap();
    let image = stevedore::registry::ImageToPush::new(
        stevedore::registry::RawManifest {
            bytes: serde_json::to_vec(&index).unwrap(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
        },
        Vec::new(),
    );
    client
        .push_image(&reg.reference("base:multi"), &image)
        .unwrap();

    let cache = t.path().join("cache-app");
    write_app(t.path(), &format!("{}/base:1", reg.host()));
    let direct = build_ok(&cache, &[path_str(&t.path().join("app/app.toml"))]);
    write_app(t.path(), &format!("{}/base:multi", reg.host()));
    let via_index = build_ok(&cache, &[path_str(&t.path().join("app/app.toml"))]);
    assert_eq!(
        via_index, direct,
        "the index leads to the same base manifest"
    );
    let lock = stevedore(&cache, &["lock", path_str(&t.path().join("app/app.toml"))]);
    assert!(lock.status.success(), "{}", stderr(&lock));
    let lockfile = std::fs::read_to_string(t.path().join("app/app.lock")).unwrap();
    assert!(
        lockfile.contains(&single),
        "the lock pins the platform's manifest, not the index: {lockfile}"
    );

    // A platform the index lacks: refused, naming what it has.
    let recipe = t.path().join("app/app.toml");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("[image]\n", "[image]\nplatform = \"linux/riscv64\"\n");
    write(&recipe, text);
    std::fs::remove_file(t.path().join("app/app.lock")).unwrap();
    let out = stevedore(&cache, &["build", path_str(&recipe)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("linux/riscv64") && err.contains("s390x"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_docker_format_image_over_an_oci_base_names_the_base_layers_the_docker_way() {
    registry_support::require_all();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write_base(t.path(), "1");
    push_base(&reg, t.path(), &t.path().join("cache-base"), "base:1");
    write_app(t.path(), &format!("{}/base:1", reg.host()));
    let recipe = t.path().join("app/app.toml");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("[image]\n", "[image]\nformat = \"docker\"\n");
    write(&recipe, text);
    let out = stevedore(
        &t.path().join("cache-app"),
        &[
            "build",
            path_str(&recipe),
            "--push",
            &format!("{}/old/app:1", reg.host()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 mounted"), "{}", stderr(&out));
    let digest = stdout(&out).trim().to_string();
    let raw: serde_json::Value = serde_json::from_slice(&reg.skopeo_raw("old/app:1")).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    for l in raw["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "{raw}"
        );
    }
    assert_eq!(reg.skopeo_inspect("old/app:1")["Digest"], digest.as_str());
    // skopeo reads every blob back, the mounted ones included.
    let copy = tempdir();
    reg.skopeo_copy_to_oci("old/app:1", copy.path());
}
