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

/// Whether a process holds a shared flock on `lock_file` (from `/proc/locks`, whose entries
/// name the file by `major:minor:inode`).
fn shared_flock_held(lock_file: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(lock_file) else {
        return false;
    };
    let inode = format!(":{} ", md.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|l| l.contains("FLOCK") && l.contains("READ") && l.contains(&inode))
}

/// The contract: `cache gc` takes the cache lock exclusively, so it waits for a running build
/// (which holds it shared from start to end) and only then collects. The build succeeds with
/// the right digest; the collection then removes what nothing keeps.
#[test]
fn gc_waits_for_a_running_build() {
    let t = tempdir();
    project(t.path());
    let recipe = t.path().join("big.toml");
    let reference = build_ok(&t.path().join("ref-cache"), &[path_str(&recipe)]);
    let cache = t.path().join("cache");
    let mut build = Command::new(BIN)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["-q", "build", path_str(&recipe)])
        .env_remove("SOURCE_DATE_EPOCH")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !shared_flock_held(&cache.join("lock")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never took the cache lock"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut gc = Command::new(BIN)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["cache", "gc", "--older-than", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        build.try_wait().unwrap().is_none(),
        "the build ended before gc started: the race was not tried"
    );
    // Which ends first: the build must.
    let mut order = Vec::new();
    while order.len() < 2 {
        if !order.contains(&"build") && build.try_wait().unwrap().is_some() {
            order.push("build");
        }
        if !order.contains(&"gc") && gc.try_wait().unwrap().is_some() {
            order.push("gc");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(order, ["build", "gc"], "gc finished while the build ran");
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    assert_eq!(String::from_utf8_lossy(&built.stdout).trim(), reference);
    let collected = gc.wait_with_output().unwrap();
    assert!(collected.status.success(), "{}", stderr(&collected));
    assert!(
        !stdout(&collected).contains("removed 0 files"),
        "gc ran after the build and collected its layers: {}",
        stdout(&collected)
    );
    let again = stevedore(&cache, &["build", path_str(&recipe)]);
    assert!(
        stderr(&again).contains("built 2 of 2"),
        "{}",
        stderr(&again)
    );
}

/// An unpacked package (the decompressed data.tar kept in the cache) that was cut short is
/// detected and unpacked again: the rebuilt layer is the same, not a corrupt one.
#[test]
fn a_short_or_empty_unpacked_package_is_redone() {
    use crate::apt_support::{self, Item, RepoSpec, Server, TestDeb, build_repo, fixtures};
    apt_support::require_tool("gpg", "gnupg");
    let mut big = TestDeb::new("big", "1.0");
    big.items.push(Item::File(
        "./usr/share/big/data",
        (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect(),
        0o644,
    ));
    let repo = build_repo(&RepoSpec::new(vec![big, TestDeb::new("small", "1.0")]));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let recipe = t.path().join("image.toml");
    write(
        &recipe,
        format!(
            "[[sources]]\nmirrors = [\"{}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"big\", \"small\"]\n",
            server.url(),
            fixtures().join("test-keyring.gpg").display()
        ),
    );
    let cache = t.path().join("cache");
    let reference = build_ok(&cache, &[path_str(&recipe)]);

    let mut spools: Vec<_> = std::fs::read_dir(cache.join("debs-unpacked"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    spools.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    assert_eq!(spools.len(), 2, "{spools:?}");
    let full: Vec<u64> = spools
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    // The large one cut in the middle of its data, the small one emptied.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&spools[1])
        .unwrap();
    f.set_len(full[1] / 2).unwrap();
    std::fs::write(&spools[0], b"").unwrap();
    // Forget the layer (not the packages), so the next build lays it out again.
    std::fs::remove_dir_all(cache.join("layers")).unwrap();

    let out = stevedore(&cache, &["build", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), reference, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("incomplete; unpacking it again"),
        "{}",
        stderr(&out)
    );
    for (p, len) in spools.iter().zip(&full) {
        assert_eq!(std::fs::metadata(p).unwrap().len(), *len, "{p:?} redone");
    }
}
