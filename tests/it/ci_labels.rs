//! `org.opencontainers.image.source` names where anyone can fetch the source: a network URL
//! without credentials, never a folder on the building machine.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A one-commit repository holding a files-only recipe.
fn make_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    write(
        &dir.join("recipe.toml"),
        "[image]\nname = \"localhost/labels\"\n[[layers]]\nname = \"app\"\nfiles = [{ src = \"app\", dest = \"/app\" }]\n",
    );
    write(&dir.join("app/a.txt"), "a\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "one"]);
}

fn clone(from: &Path, to: &Path) {
    run(Command::new("git").args(["clone", "-q"]).arg(from).arg(to));
}

/// Builds `repo/recipe.toml`; its manifest digest and config (as stored, text).
fn build(repo: &Path, cache: &Path) -> (String, String) {
    let layout = cache.with_extension("oci");
    let digest = build_ok(
        cache,
        &[
            path_str(&repo.join("recipe.toml")),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    let blob =
        |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&digest)).unwrap();
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    (digest, String::from_utf8(config).unwrap())
}

fn labels(config: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(config).unwrap()["config"]["Labels"].clone()
}

#[test]
fn a_clone_of_a_local_folder_gets_no_source_and_no_path() {
    require_tool("git", "git");
    let t = tempdir();
    let origin = t.path().join("origin");
    make_repo(&origin);
    let first = t.path().join("first");
    clone(&origin, &first);
    // A clone of the clone: its origin is another folder.
    let second = t.path().join("second");
    clone(&first, &second);

    let (digest, config) = build(&first, &t.path().join("cache-a"));
    let l = labels(&config);
    assert!(
        l["org.opencontainers.image.revision"].is_string(),
        "git labels were not set at all: {config}"
    );
    assert!(
        l.get("org.opencontainers.image.source").is_none(),
        "a folder became the source label: {config}"
    );
    let tmp = t.path().to_str().unwrap();
    assert!(
        !config.contains(tmp),
        "a path of the build machine is in the config: {config}"
    );
    let (again, _) = build(&second, &t.path().join("cache-b"));
    assert_eq!(
        again, digest,
        "clones with different origin folders built different images"
    );
}

#[test]
fn credentials_are_stripped_from_the_source_label() {
    require_tool("git", "git");
    let t = tempdir();
    let repo = t.path().join("repo");
    make_repo(&repo);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://user:token@host.example/repo.git",
        ],
    );
    let (_, config) = build(&repo, &t.path().join("cache"));
    assert_eq!(
        labels(&config)["org.opencontainers.image.source"],
        "https://host.example/repo.git"
    );
    assert!(!config.contains("token"), "{config}");

    git(
        &repo,
        &[
            "remote",
            "set-url",
            "origin",
            "git@host.example:team/repo.git",
        ],
    );
    let (_, config) = build(&repo, &t.path().join("cache"));
    assert_eq!(
        labels(&config)["org.opencontainers.image.source"],
        "https://host.example/team/repo.git"
    );
}
