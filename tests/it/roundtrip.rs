//! Round trips through the independent judges: skopeo reads, copies and converts what stevedore
//! writes, and `umoci unpack` reproduces exactly the tree the recipes declare.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

const LONG_A: &str = "a-directory-name-that-is-long-enough-to-push-the-full-path-past-the-ustar-name-field-limit-xxxxxxxxxxxxxxxx";
const LONG_B: &str = "and-a-file-name-that-also-runs-long-enough-to-need-the-pax-path-record-in-the-layer-tar-yyyyyyyyyyyyyyyy.txt";

fn make_project(dir: &Path) {
    write(&dir.join("app/bin/run"), "#!/bin/sh\necho hi\n");
    chmod(&dir.join("app/bin/run"), 0o775);
    write(&dir.join("app/conf/settings.ini"), "[main]\nport = 8080\n");
    write(&dir.join("app/data/with space.txt"), "spaces");
    write(&dir.join("app/data/ünïcödé-名前.txt"), "unicode");
    write(&dir.join(format!("app/deep/{LONG_A}/{LONG_B}")), "long");
    write(&dir.join("app/skip.tmp"), "excluded");
    std::os::unix::fs::symlink("bin/run", dir.join("app/link-rel")).unwrap();
    write(&dir.join("secret.key"), "s3cr3t");
    write(
        &dir.join("base.toml"),
        r#"
[image]
name = "localhost/roundtrip-base"
tags = ["base"]

[[users]]
name = "app"
uid = 1001

[[groups]]
name = "app"
gid = 1001

[config]
env = { PATH = "/usr/bin:/bin", LANG = "C.UTF-8" }
workdir = "/"

[[layers]]
name = "fs"
dirs = [
  { path = "/usr/bin" },
  { path = "/var/empty", mode = "0700" },
  { path = "/tmp", mode = "1777" },
]
symlinks = [{ path = "/bin", target = "usr/bin" }]
"#,
    );
    write(
        &dir.join("child.toml"),
        r#"
from = "base.toml"

[image]
name = "localhost/roundtrip"
tags = ["v1", "latest"]

[config]
entrypoint = ["/opt/app/bin/run"]
cmd = ["--serve"]
user = "app"
exposed-ports = ["8080", "53/udp"]
volumes = ["/data"]
labels = { "org.example.team" = "core" }
stop-signal = "SIGQUIT"
env = { LANG = "en_US.UTF-8", APP_HOME = "/opt/app" }

[config.healthcheck]
test = ["CMD", "/opt/app/bin/run", "--check"]
interval = "30s"
retries = 3

[[layers]]
name = "app"
files = [
  { src = "app", dest = "/opt/app", owner = "app", exclude = ["*.tmp"] },
  { src = "secret.key", dest = "/etc/app/", mode = "0600", owner = "app:app" },
  { src = "app/bin/run", dest = "/bin/run-app", mode = "4755" },
]
dirs = [{ path = "/data", owner = "1001:1001", mode = "0750" }]
symlinks = [
  { path = "/usr/bin/app", target = "/opt/app/bin/run" },
  { path = "/opt/dangling", target = "../nowhere" },
]
hardlinks = [{ path = "/opt/app/bin/run-hard", target = "/opt/app/bin/run" }]
"#,
    );
}

/// (kind, mode, uid, gid, link target or content)
fn expected() -> BTreeMap<String, (char, u32, u32, u32, String)> {
    let run = "#!/bin/sh\necho hi\n";
    let mut m = BTreeMap::new();
    let mut add = |p: &str, k: char, mode: u32, id: u32, x: &str| {
        m.insert(p.to_string(), (k, mode, id, id, x.to_string()));
    };
    add("/bin", 'l', 0o777, 0, "usr/bin");
    add("/usr", 'd', 0o755, 0, "");
    add("/usr/bin", 'd', 0o755, 0, "");
    add("/usr/bin/app", 'l', 0o777, 0, "/opt/app/bin/run");
    add("/usr/bin/run-app", 'f', 0o4755, 0, run);
    add("/var", 'd', 0o755, 0, "");
    add("/var/empty", 'd', 0o700, 0, "");
    add("/tmp", 'd', 0o1777, 0, "");
    add("/data", 'd', 0o750, 1001, "");
    add("/etc", 'd', 0o755, 0, "");
    add(
        "/etc/passwd",
        'f',
        0o644,
        0,
        "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1001::/nonexistent:/usr/sbin/nologin\n",
    );
    add("/etc/group", 'f', 0o644, 0, "root:x:0:\napp:x:1001:\n");
    add("/etc/app", 'd', 0o755, 1001, "");
    add("/etc/app/secret.key", 'f', 0o600, 1001, "s3cr3t");
    add("/opt", 'd', 0o755, 0, "");
    add("/opt/dangling", 'l', 0o777, 0, "../nowhere");
    add("/opt/app", 'd', 0o755, 1001, "");
    add("/opt/app/bin", 'd', 0o755, 1001, "");
    add("/opt/app/bin/run", 'f', 0o755, 1001, run);
    add("/opt/app/bin/run-hard", 'f', 0o755, 1001, run);
    add("/opt/app/conf", 'd', 0o755, 1001, "");
    add(
        "/opt/app/conf/settings.ini",
        'f',
        0o644,
        1001,
        "[main]\nport = 8080\n",
    );
    add("/opt/app/data", 'd', 0o755, 1001, "");
    add("/opt/app/data/with space.txt", 'f', 0o644, 1001, "spaces");
    add(
        "/opt/app/data/ünïcödé-名前.txt",
        'f',
        0o644,
        1001,
        "unicode",
    );
    add("/opt/app/deep", 'd', 0o755, 1001, "");
    add(&format!("/opt/app/deep/{LONG_A}"), 'd', 0o755, 1001, "");
    add(
        &format!("/opt/app/deep/{LONG_A}/{LONG_B}"),
        'f',
        0o644,
        1001,
        "long",
    );
    add("/opt/app/link-rel", 'l', 0o777, 1001, "bin/run");
    m
}

fn assert_tree(rootfs: &Path) {
    let snap = snapshot(rootfs);
    let got: BTreeMap<String, (char, u32, u32, u32, String)> = snap
        .iter()
        .map(|(p, n)| {
            let x = match n.kind {
                'l' => n.link.clone().unwrap(),
                'f' => String::from_utf8(n.content.clone().unwrap()).unwrap(),
                _ => String::new(),
            };
            (p.clone(), (n.kind, n.mode, n.uid, n.gid, x))
        })
        .collect();
    let want = expected();
    for (p, w) in &want {
        assert_eq!(got.get(p), Some(w), "unpacked {p} differs from the recipe");
    }
    let extra: Vec<&String> = got.keys().filter(|p| !want.contains_key(*p)).collect();
    assert!(
        extra.is_empty(),
        "unpacked tree has paths the recipe did not declare: {extra:?}"
    );
    assert_eq!(
        snap["/opt/app/bin/run"].ino, snap["/opt/app/bin/run-hard"].ino,
        "hard link lost"
    );
}

fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let out = run(Command::new("skopeo").args(args));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn oci_layout_and_docker_archive_round_trip_through_skopeo_and_umoci() {
    require_tool("skopeo", "skopeo");
    require_tool("umoci", "umoci");
    require_root("umoci unpack keeps owners only as root");
    let t = tempdir();
    let proj = t.path().join("proj");
    make_project(&proj);
    let cache = t.path().join("cache");
    let layout = t.path().join("out");
    let archive = t.path().join("image.tar");
    let digest = build_ok(
        &cache,
        &[
            path_str(&proj.join("child.toml")),
            "--output",
            &format!("oci:{}", layout.display()),
            "--output",
            &format!("docker-archive:{}", archive.display()),
        ],
    );

    // skopeo agrees on the digest, and on the config the recipes asked for.
    let oci_ref = format!("oci:{}:v1", layout.display());
    let info = skopeo_json(&["inspect", &oci_ref]);
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3);
    let config = skopeo_json(&["inspect", "--config", "--raw", &oci_ref]);
    let c = &config["config"];
    assert_eq!(c["User"], "app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/opt/app/bin/run"]));
    assert_eq!(c["Cmd"], serde_json::json!(["--serve"]));
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/bin:/bin",
            "LANG=en_US.UTF-8",
            "APP_HOME=/opt/app"
        ])
    );
    assert_eq!(c["WorkingDir"], "/");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Labels"]["org.example.team"], "core");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object());
    assert!(c["ExposedPorts"]["53/udp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(config["history"].as_array().unwrap().len(), 3);

    // The layout copies without conversion: same manifest digest after skopeo copy.
    let copy = t.path().join("copy");
    run(Command::new("skopeo").args(["copy", &oci_ref, &format!("oci:{}:v1", copy.display())]));
    let copied = skopeo_json(&["inspect", &format!("oci:{}:v1", copy.display())]);
    assert_eq!(copied["Digest"], digest.as_str());

    // umoci reproduces the declared tree exactly.
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:v1", layout.display()), &bundle);
    assert_tree(&bundle.join("rootfs"));

    // The docker archive: skopeo reads it, converts it to OCI, and that unpacks to the same tree.
    let archive_ref = format!("docker-archive:{}", archive.display());
    let ainfo = skopeo_json(&["inspect", &archive_ref]);
    assert_eq!(ainfo["Layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        skopeo_json(&["inspect", "--config", "--raw", &archive_ref]),
        config,
        "the archive carries the same config"
    );
    let converted = t.path().join("converted");
    run(Command::new("skopeo").args([
        "copy",
        &archive_ref,
        &format!("oci:{}:x", converted.display()),
    ]));
    let bundle2 = t.path().join("bundle2");
    umoci_unpack(&format!("{}:x", converted.display()), &bundle2);
    assert_tree(&bundle2.join("rootfs"));

    // inspect reads both outputs back.
    for target in [oci_ref.as_str(), archive_ref.as_str()] {
        let out = stevedore(&cache, &["inspect", target]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("stevedore layer app"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn zstd_layers_are_read_by_skopeo() {
    require_tool("skopeo", "skopeo");
    let t = tempdir();
    write(&t.path().join("f/hello.txt"), "hello");
    let recipe = t.path().join("zstd.toml");
    write(
        &recipe,
        "[image]\ncompression = \"zstd\"\n[[layers]]\nname = \"f\"\nfiles = [{ src = \"f\", dest = \"/srv\" }]\n",
    );
    let layout = t.path().join("out");
    let image = format!("oci:{}:t", layout.display());
    let digest = build_ok(&t.path().join("cache"), &[path_str(&recipe), "-o", &image]);
    let raw = skopeo_json(&["inspect", "--raw", &image]);
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(skopeo_json(&["inspect", &image])["Digest"], digest.as_str());
    // Recompressing makes skopeo decompress the layer and check it against its diff_id.
    run(Command::new("skopeo").args([
        "copy",
        "--dest-compress-format",
        "gzip",
        "--dest-compress",
        &image,
        &format!("oci:{}:gz", t.path().join("regz").display()),
    ]));
}

#[test]
fn docker_media_types_for_old_registries() {
    require_tool("skopeo", "skopeo");
    let t = tempdir();
    write(&t.path().join("f/hello.txt"), "hello");
    let recipe = t.path().join("docker.toml");
    write(
        &recipe,
        "[image]\nname = \"localhost/old\"\nformat = \"docker\"\n[[layers]]\nname = \"f\"\nfiles = [{ src = \"f\", dest = \"/srv\" }]\n",
    );
    let cache = t.path().join("cache");
    let archive = t.path().join("old.tar");
    let digest = build_ok(
        &cache,
        &[
            path_str(&recipe),
            "-o",
            &format!("docker-archive:{}", archive.display()),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cache.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let info = skopeo_json(&["inspect", &format!("docker-archive:{}", archive.display())]);
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);
    let listed = run(Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("manifest.json"));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed[0]["RepoTags"],
        serde_json::json!(["localhost/old:latest"])
    );

    // skopeo's OCI layouts only list OCI manifests, so this combination is refused up front.
    let out = stevedore(
        &cache,
        &[
            "build",
            path_str(&recipe),
            "-o",
            &format!("oci:{}", t.path().join("l").display()),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("docker-archive"), "{}", stderr(&out));
    assert!(
        !t.path().join("l").exists(),
        "nothing may be written on refusal"
    );
}
