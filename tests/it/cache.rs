//! A cache you can trust: shared by concurrent builds, never poisoned by a killed build, and
//! collected without losing what kept recipes use.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A recipe with a layer big enough that a build takes a while (about 24 MB of
/// poorly-compressible bytes), and a small second recipe.
fn project(dir: &Path) {
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut big = Vec::with_capacity(24 << 20);
    while big.len() < 24 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.extend_from_slice(&state.to_le_bytes()[..6]);
        big.extend_from_slice(b"ab");
    }
    write(&dir.join("big/blob.bin"), &big);
    write(&dir.join("small/a.txt"), "a\n");
    write(
        &dir.join("big.toml"),
        "[[layers]]\nname = \"big\"\nfiles = [{ src = \"big\", dest = \"/data\" }]\n[[layers]]\nname = \"small\"\nfiles = [{ src = \"small\", dest = \"/small\" }]\n",
    );
    write(
        &dir.join("other.toml"),
        "[[layers]]\nname = \"other\"\nfiles = [{ src = \"small\", dest = \"/other\" }]\n",
    );
}

#[test]
fn concurrent_builds_share_one_cache() {
    let t = tempdir();
    project(t.path());
    let recipe = t.path().join("big.toml");
    let reference = build_ok(&t.path().join("ref-cache"), &[path_str(&recipe)]);
    let cache = t.path().join("shared");
    let spawn = || {
        Command::new(BIN)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["-q", "build", path_str(&recipe)])
            .env_remove("SOURCE_DATE_EPOCH")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), reference);
    }
}

#[test]
fn a_build_killed_at_any_point_leaves_nothing_a_later_build_trusts() {
    let t = tempdir();
    project(t.path());
    let recipe = t.path().join("big.toml");
    let reference = build_ok(&t.path().join("ref-cache"), &[path_str(&recipe)]);
    let cache = t.path().join("killed");
    // Kill points spread over the build (planning, hashing, compressing, renaming).
    for delay_ms in [5u64, 40, 90, 150, 230, 320, 450] {
        let _ = std::fs::remove_dir_all(&cache);
        let mut child = Command::new(BIN)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["-q", "build", path_str(&recipe)])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_eq!(
            build_ok(&cache, &[path_str(&recipe)]),
            reference,
            "wrong digest after a kill at {delay_ms} ms"
        );
    }
}

#[test]
fn du_and_gc_keep_what_recipes_use() {
    let t = tempdir();
    project(t.path());
    let cache = t.path().join("cache");
    let big = t.path().join("big.toml");
    let other = t.path().join("other.toml");
    build_ok(&cache, &[path_str(&big)]);
    build_ok(&cache, &[path_str(&other)]);

    let du = stevedore(&cache, &["cache", "du"]);
    assert!(du.status.success());
    assert!(
        stdout(&du).contains("blobs") && stdout(&du).contains("total"),
        "{}",
        stdout(&du)
    );

    // Recently used entries survive a collection by age.
    let gc = stevedore(&cache, &["cache", "gc", "--older-than", "30"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(stdout(&gc).contains("removed 0 files"), "{}", stdout(&gc));

    // Keeping only `big`: it stays fully cached, `other` must be rebuilt.
    let gc = stevedore(
        &cache,
        &["cache", "gc", "--older-than", "0", "--keep", path_str(&big)],
    );
    assert!(gc.status.success(), "{}", stderr(&gc));
    let again = stevedore(&cache, &["build", path_str(&big)]);
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));
    let rebuilt = stevedore(&cache, &["build", path_str(&other)]);
    assert!(
        stderr(&rebuilt).contains("built 1 of 1"),
        "{}",
        stderr(&rebuilt)
    );
}
