//! Fingerprints the code that decides what a package layer holds (`src/rootfs/`, the setup
//! chain in `src/plan/setup.rs`), so cached package layers made by other rules are never
//! reused: a hand-bumped version would sooner or later be forgotten. Any edit there, even a
//! comment, invalidates those cache entries, which only costs a rebuild.
//! Hand-written FNV-1a: a build script should not pull in a hashing crate for 64 bits.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn main() {
    let mut paths = Vec::new();
    files(Path::new("src/rootfs"), &mut paths);
    paths.push(PathBuf::from("src/plan/setup.rs"));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for p in &paths {
        println!("cargo:rerun-if-changed={}", p.display());
        // Path and content, with line endings normalised so a checkout's settings do not
        // change the fingerprint.
        let text = std::fs::read_to_string(p).unwrap().replace("\r\n", "\n");
        for b in p.to_string_lossy().bytes().chain([0]).chain(text.bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rerun-if-changed=src/rootfs");
    println!("cargo:rustc-env=STEVEDORE_SETUP_RULES={hash:016x}");
}
