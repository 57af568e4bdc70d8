//! Real Debian and Ubuntu base images from the real mirrors: locked, built, unpacked by umoci
//! and run in a chroot, where dpkg and apt must find a consistent system.

use crate::common;

use std::path::Path;

use common::*;

/// Runs a script in the image's root (common::chroot_command).
fn chroot(rootfs: &Path, script: &str) -> std::process::Output {
    chroot_command(
        rootfs,
        None,
        &["/bin/sh".into(), "-c".into(), script.into()],
    )
    .output()
    .unwrap()
}

/// `warm`: recipes whose warm cache the build may start from (see `common::warm_cache`).
fn build_and_run(recipe_name: &str, tag: &str, min_packages: usize, warm: &[&str]) {
    require_tool("umoci", "umoci");
    require_tool("unshare", "util-linux");
    require_root("umoci unpack keeps owners, and chroot needs root");
    let t = tempdir();
    let recipe = recipe_copy(t.path(), recipe_name);
    let cache = t.path().join("cache");
    warm_cache(warm, &cache);
    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
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
    umoci_unpack(&format!("{}:{tag}", layout.display()), &bundle);
    let rootfs = bundle.join("rootfs");
    let out = chroot(
        &rootfs,
        "ls / && dpkg -l | grep -c '^ii' && apt-get --version | head -1 && dpkg --audit && dpkg --verify && echo VERIFIED",
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("VERIFIED"), "{text}");
    let count: usize = text
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("dpkg -l count");
    assert!(
        count >= min_packages,
        "only {count} packages installed:\n{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("apt ")), "{text}");
    for top in ["bin", "lib", "sbin"] {
        assert_eq!(
            std::fs::read_link(rootfs.join(top)).unwrap(),
            Path::new("usr").join(top),
            "merged /usr"
        );
    }
    // A second build from the same lock and cache is a no-op with the same digest.
    assert_eq!(build_ok(&cache, &["--locked", path_str(&recipe)]), digest);
}

#[test]
fn debian_bookworm_minbase_runs_dpkg_and_apt() {
    build_and_run("debian-bookworm.toml", "bookworm", 80, &["webapp.toml"]);
}

#[test]
fn ubuntu_noble_minbase_runs_dpkg_and_apt() {
    build_and_run("ubuntu-noble.toml", "noble", 60, &[]);
}
