//! `cache gc` sweeps the temp files killed builds leave, once they are an hour old, and never a
//! fresh one (a running build's).

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;

/// A file written `age` ago.
fn plant(path: &Path, age: Duration) -> PathBuf {
    write(path, vec![7u8; 1000]);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
    path.to_path_buf()
}

#[test]
fn gc_removes_old_temp_files_and_keeps_fresh_ones() {
    let t = tempdir();
    let cache = t.path().join("cache");
    let du = stevedore(&cache, &["cache", "du"]);
    assert!(du.status.success(), "{}", stderr(&du));
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let minutes = |m: u64| Duration::from_secs(m * 60);
    // Where builds write temp files: tmp/, unfinished apt downloads, and `tempfile` names next
    // to unpacked packages, resolutions and the stat cache.
    let hex = "ab".repeat(32);
    let old = [
        plant(&cache.join("tmp/.tmpAbCdEf"), hours(2)),
        plant(&cache.join(format!("apt/sha256/.partial/{hex}")), hours(3)),
        plant(&cache.join("apt/sha256/.partial/.tmpQwErTy"), hours(2)),
        plant(&cache.join("debs-unpacked/.tmpZxCvBn"), hours(5)),
        plant(&cache.join("resolutions/.tmpPoIuYt"), hours(2)),
        plant(&cache.join(".tmpLkJhGf"), hours(2)),
    ];
    let fresh = [
        plant(&cache.join("tmp/.tmpFresh1"), minutes(5)),
        plant(
            &cache.join(format!("apt/sha256/.partial/{hex}.lock")),
            minutes(1),
        ),
        plant(&cache.join("debs-unpacked/.tmpFresh2"), Duration::ZERO),
        plant(&cache.join("resolutions/.tmpFresh3"), minutes(59)),
    ];
    // Not a temp file, and recent: the default collection (30 days) keeps it.
    let stored = plant(&cache.join(format!("apt/sha256/{hex}")), hours(2));

    let gc = stevedore(&cache, &["cache", "gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(
        stdout(&gc).contains(&format!("removed {} files", old.len())),
        "{}",
        stdout(&gc)
    );
    for p in &old {
        assert!(
            !p.exists(),
            "an abandoned temp file survived: {}",
            p.display()
        );
    }
    for p in fresh.iter().chain([&stored]) {
        assert!(p.exists(), "gc removed {}", p.display());
    }

    // Collecting everything still leaves a fresh temp file alone.
    let all = stevedore(&cache, &["cache", "gc", "--older-than", "0"]);
    assert!(all.status.success(), "{}", stderr(&all));
    assert!(!stored.exists());
    for p in &fresh {
        assert!(p.exists(), "gc --older-than 0 removed {}", p.display());
    }
}
