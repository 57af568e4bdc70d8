//! The command-line contract: stdout carries only the digest, `plan` tells what would be
//! rebuilt, a warm rebuild reuses every layer, a change rebuilds only its layer.

use crate::common;

use std::path::Path;

use common::*;

fn project(dir: &Path) {
    write(&dir.join("base/motd"), "welcome\n");
    write(&dir.join("app/app.txt"), "v1\n");
    write(
        &dir.join("base.toml"),
        "[[layers]]\nname = \"base\"\nfiles = [{ src = \"base/motd\", dest = \"/etc/motd\" }]\n",
    );
    write(
        &dir.join("app.toml"),
        "from = \"base.toml\"\n[image]\nname = \"localhost/app\"\n[config]\ncmd = [\"/app/app.txt\"]\n[[layers]]\nname = \"app\"\nfiles = [{ src = \"app\", dest = \"/app\" }]\n",
    );
}

fn layer_digests(cache: &Path, layout: &Path) -> Vec<String> {
    let out = stevedore(
        cache,
        &["inspect", "--json", &format!("oci:{}", layout.display())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success());
    for s in [
        "Examples:",
        "Exit codes:",
        "stevedore build",
        "STEVEDORE_CACHE",
    ] {
        assert!(text.contains(s), "--help lacks {s:?}:\n{text}");
    }
}

#[test]
fn plan_build_rebuild_and_change() {
    let t = tempdir();
    project(t.path());
    let cache = t.path().join("cache");
    let recipe = t.path().join("app.toml");
    let layout = t.path().join("out");
    let oci = format!("oci:{}", layout.display());

    let plan = stevedore(&cache, &["plan", path_str(&recipe)]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert_eq!(text.matches("would build").count(), 2, "{text}");
    assert!(text.contains("base/motd -> /etc/motd"), "{text}");

    let first = build_ok(&cache, &[path_str(&recipe), "-o", &oci]);
    let layers_before = layer_digests(&cache, &layout);

    let plan = stdout(&stevedore(&cache, &["plan", path_str(&recipe)]));
    assert_eq!(plan.matches("cached").count(), 2, "{plan}");

    // A warm rebuild reuses everything and says so.
    let out = stevedore(&cache, &["build", path_str(&recipe), "-o", &oci]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), first);
    assert!(stderr(&out).contains("up to date"), "{}", stderr(&out));

    // -q keeps stderr silent and stdout unchanged.
    let out = stevedore(&cache, &["-q", "build", path_str(&recipe)]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).trim(), first);

    // Changing the app file changes only the app layer.
    write(&t.path().join("app/app.txt"), "v2\n");
    let plan = stdout(&stevedore(&cache, &["plan", path_str(&recipe)]));
    assert_eq!(plan.matches("cached").count(), 1, "{plan}");
    assert_eq!(plan.matches("would build").count(), 1, "{plan}");
    let second = build_ok(&cache, &[path_str(&recipe), "-o", &oci]);
    assert_ne!(first, second);
    let layers_after = layer_digests(&cache, &layout);
    assert_eq!(
        layers_before[0], layers_after[0],
        "base layer must not change"
    );
    assert_ne!(layers_before[1], layers_after[1], "app layer must change");

    // Both images stay in the layout under their tags.
    let out = stevedore(
        &cache,
        &["build", path_str(&recipe), "-t", "v2", "-o", &oci],
    );
    assert!(out.status.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, ["latest", "v2"]);
}

#[test]
fn an_existing_non_layout_directory_is_not_clobbered() {
    let t = tempdir();
    project(t.path());
    let target = t.path().join("photos");
    write(&target.join("holiday.jpg"), "precious");
    let out = stevedore(
        &t.path().join("cache"),
        &[
            "build",
            path_str(&t.path().join("app.toml")),
            "-o",
            &format!("oci:{}", target.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("not an OCI image layout"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    // Refused before building: nothing went into the cache either.
    assert!(
        !t.path().join("cache/layers").exists()
            || std::fs::read_dir(t.path().join("cache/layers"))
                .unwrap()
                .count()
                == 0
    );
}

/// The stat cache skips re-hashing unchanged files, but an edit is always seen, even one that
/// keeps the size and puts the old mtime back (the inode's ctime still moves).
#[test]
fn stat_cache_never_hides_an_edit() {
    let t = tempdir();
    project(t.path());
    let cache = t.path().join("cache");
    let recipe = t.path().join("app.toml");
    let file = t.path().join("app/app.txt");
    let old = std::fs::metadata(&file).unwrap().modified().unwrap();
    // Only files settled for 2 s are remembered (racy-git rule).
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let first = build_ok(&cache, &[path_str(&recipe)]);
    let stat = std::fs::read_to_string(cache.join("stat-cache")).unwrap();
    assert!(
        stat.contains("app.txt"),
        "the stat cache remembers the file: {stat}"
    );
    assert_eq!(build_ok(&cache, &[path_str(&recipe)]), first);

    write(&file, "v9\n"); // same size as "v1\n"
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_ne!(
        build_ok(&cache, &[path_str(&recipe)]),
        first,
        "the edit was missed"
    );
}
