//! Caches warmed once per test process by building one of the repository's real recipes, for
//! the end-to-end tests that need the real Tomcat or xenial chain built but assert nothing
//! about a cold build.
//!
//! Why: half a dozen modules (tomcat_images, graph, sbom, mmdebstrap_compare,
//! registry_base_packages, distro_images) each built the same bookworm → OpenJDK → Tomcat
//! chain from an empty cache: the same ~170 MB of downloads and the same CPU-bound unpacking
//! and compression, several times per run on a 2-core CI machine. Now the first test that asks
//! builds the chain once (the others block until it is done rather than race it cold), and each
//! test gets a private copy made of hard links: its own folder, so it may lock, build, gc or
//! delete in it without touching another test's, at the price of a directory walk.
//!
//! Safe to share by hard links because the cache never writes into a finished file: every entry
//! is written to a temp file and renamed into place (blobs, layers, unpacked packages, apt
//! indexes, records). The cache's own `lock` file is not linked, so a `cache gc` in one copy
//! never waits for a build in another. A test that asserts cold behaviour (download counts,
//! "built" lines, a mirror that fails mid-build) must keep its own empty cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::{build_ok, fixture_dir, recipes_copy};

/// Fills `dest` (created if missing) with hard links to a cache in which each of `recipes`
/// (names in the repository's `recipes/`) has been built once in this process. Files `dest`
/// already has are kept, so several recipes' caches can be merged into one.
pub fn warm_cache(recipes: &[&str], dest: &Path) {
    for recipe in recipes {
        link_tree(&warmed(recipe), dest);
    }
}

/// The cache in which `recipe` was built, building it on first use. One `OnceLock` per recipe:
/// concurrent callers for the same recipe wait for the first instead of building it cold too,
/// and callers for different recipes do not wait for each other.
fn warmed(recipe: &str) -> PathBuf {
    static WARM: OnceLock<Mutex<HashMap<String, Arc<OnceLock<PathBuf>>>>> = OnceLock::new();
    let slot = WARM
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(recipe.to_owned())
        .or_default()
        .clone();
    slot.get_or_init(|| build_once(recipe)).clone()
}

fn build_once(recipe: &str) -> PathBuf {
    let dir = fixture_dir(&format!("warm-{}", recipe.trim_end_matches(".toml")));
    let names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".toml"))
            .collect();
    recipes_copy(&dir, &names.iter().map(String::as_str).collect::<Vec<_>>());
    let cache = dir.join("cache");
    build_ok(
        &cache,
        &[dir.join("recipes").join(recipe).to_str().unwrap()],
    );
    cache
}

/// Hard-links every file of `src` into `dst` (directories created, symlinks copied, files
/// `dst` already has kept), except the top-level `lock`.
fn link_tree(src: &Path, dst: &Path) {
    for entry in walkdir_sorted(src) {
        let rel = entry.strip_prefix(src).unwrap();
        if rel.as_os_str() == "lock" {
            continue;
        }
        let target = dst.join(rel);
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        if meta.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else if target.symlink_metadata().is_ok() {
            continue;
        } else if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&entry).unwrap();
            std::os::unix::fs::symlink(link, &target).unwrap();
        } else {
            std::fs::hard_link(&entry, &target)
                .unwrap_or_else(|e| panic!("link {} → {}: {e}", entry.display(), target.display()));
        }
    }
}

/// Every path below `root` (itself included), parents before children.
fn walkdir_sorted(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        i += 1;
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            out.extend(children);
        }
    }
    out
}
