//! stevedore as an image, built by stevedore (`recipes/stevedore.toml`), runs as its non-root
//! user in a chroot and builds `recipes/static-site.toml` into an OCI layout skopeo accepts.
//!
//! The image packages the binary cargo built for these tests (`CARGO_BIN_EXE_stevedore`, the
//! dev profile) in place of a release build: the recipe reads `target/release/stevedore`, and a
//! separate release build only for this test would cost CI minutes for no extra proof.

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

const UID: u32 = 65532;

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn the_stevedore_image_builds_an_image_as_a_non_root_user() {
    require_tool("umoci", "umoci");
    require_tool("skopeo", "skopeo");
    require_tool("unshare", "util-linux");
    require_root("umoci unpack keeps owners, and chroot needs root");
    let t = tempdir();
    let recipe = recipe_copy(t.path(), "stevedore.toml");
    let binary = t.path().join("target/release/stevedore");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(BIN, &binary).unwrap();
    let layout = t.path().join("out");
    build_ok(
        &t.path().join("cache"),
        &[
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:latest", layout.display()), &bundle);
    let rootfs = bundle.join("rootfs");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["user"]["uid"], UID,
        "not non-root by default"
    );
    assert_eq!(config["process"]["args"][0], "/usr/local/bin/stevedore");
    assert!(
        rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "no CA bundle"
    );
    // Mount points the chroot helper needs (a runtime makes them).
    for d in ["proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let work = rootfs.join("work");
    std::fs::copy(repo.join("static-site.toml"), work.join("static-site.toml")).unwrap();
    copy_dir(&repo.join("static-site"), &work.join("static-site"));
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{UID}:{UID}"))
        .arg(&work));

    let out = chroot_command(
        &rootfs,
        Some(&format!("{UID}:{UID}")),
        &[
            "/usr/local/bin/stevedore".into(),
            "build".into(),
            "/work/static-site.toml".into(),
            "--output".into(),
            "oci:/work/site".into(),
        ],
    )
    .env_clear()
    // (env_clear dropped the user chroot_command set: give it again)
    .env("CHROOT_OPTS", format!("--userspec={UID}:{UID}"))
    // (sbin for the host side: chroot and mount live there)
    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    .env("HOME", "/home/stevedore")
    .env("STEVEDORE_CACHE", "/cache")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let digest = stdout(&out).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let site = work.join("site");
    assert_eq!(
        std::fs::metadata(site.join("index.json")).unwrap().uid(),
        UID,
        "the build did not run as the image's user"
    );
    let inspected = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", site.display())));
    let v: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
}
