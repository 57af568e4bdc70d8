//! Times from git: fresh clones build the same bytes as old checkouts, a commit changes only the
//! layers whose files it touched, and labels and tags come from HEAD.

use crate::common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::*;

const T1: u64 = 1_600_000_000;
const T2: u64 = 1_700_000_000;
const T3: u64 = 1_750_000_000;

fn git(dir: &Path, args: &[&str], time: u64) {
    run(Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", format!("@{time} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{time} +0000"))
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid"));
}

const RECIPE: &str = r#"
[image]
name = "localhost/gitapp"
tags = ["{git.short}", "{git.branch}"]
[[layers]]
name = "lib"
files = [{ src = "lib", dest = "/opt/lib" }]
[[layers]]
name = "app"
files = [{ src = "app", dest = "/opt/app" }]
"#;

/// A repository with history: lib/a.txt from T1, app/b.txt changed at T2.
fn make_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"], T1);
    write(&dir.join("project/recipe.toml"), RECIPE);
    write(&dir.join("project/lib/a.txt"), "a1");
    write(&dir.join("project/app/b.txt"), "b1");
    git(dir, &["add", "-A"], T1);
    git(dir, &["commit", "-q", "-m", "one"], T1);
    write(&dir.join("project/app/b.txt"), "b2");
    git(dir, &["commit", "-q", "-am", "two"], T2);
    git(
        dir,
        &[
            "remote",
            "add",
            "origin",
            "https://user:hunter2@example.invalid/team/gitapp.git",
        ],
        T2,
    );
}

struct Built {
    digest: String,
    layers: Vec<String>,
    config: serde_json::Value,
    /// path → mtime per layer
    mtimes: Vec<BTreeMap<String, u64>>,
    tags: Vec<String>,
}

fn build(project: &Path, cache: &Path, env: &[(&str, &str)]) -> Built {
    let layout = project.join("../out");
    let _ = std::fs::remove_dir_all(&layout);
    let digest = build_ok_env(
        cache,
        &[
            path_str(&project.join("recipe.toml")),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
        env,
    );
    let blob =
        |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&digest)).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let mtimes = layers
        .iter()
        .map(|d| {
            let bytes = blob(d);
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut tar)
                .unwrap();
            let mut a = tar::Archive::new(&tar[..]);
            a.entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.path().unwrap().to_string_lossy().into_owned(),
                        e.header().mtime().unwrap(),
                    )
                })
                .collect()
        })
        .collect();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    Built {
        digest,
        layers,
        config,
        mtimes,
        tags,
    }
}

fn head(dir: &Path) -> String {
    let out = run(Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"]));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn clones_made_at_different_times_build_identical_images() {
    require_tool("git", "git");
    let t = tempdir();
    let origin = t.path().join("origin");
    make_repo(&origin);
    let built = build(&origin.join("project"), &t.path().join("cache-a"), &[]);
    let rebuilt = build(&origin.join("project"), &t.path().join("cache-a"), &[]);
    assert_eq!(
        rebuilt.digest, built.digest,
        "a rebuild of the same commit is identical"
    );

    // File times come from history, the image time from HEAD.
    assert_eq!(built.mtimes[0]["opt/lib/a.txt"], T1);
    assert_eq!(built.mtimes[1]["opt/app/b.txt"], T2);
    assert_eq!(built.config["created"], "2023-11-14T22:13:20Z");
    let labels = &built.config["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        head(&origin).as_str()
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://example.invalid/team/gitapp.git"
    );
    assert!(
        !built.config.to_string().contains("hunter2"),
        "a credential reached the image"
    );
    let short = &head(&origin)[..12];
    assert_eq!(built.tags, [short, "main"]);

    // A fresh clone, checked out now with other mtimes, builds the same bytes.
    let clone = t.path().join("clone");
    run(Command::new("git")
        .args(["clone", "-q"])
        .arg(&origin)
        .arg(&clone));
    let again = build(&clone.join("project"), &t.path().join("cache-b"), &[]);
    assert_eq!(again.layers, built.layers);
    // (The clone's origin URL differs, so the source label and with it the config differ.)
    assert_eq!(again.mtimes, built.mtimes);
}

#[test]
fn a_commit_changes_only_its_layer_and_untracked_or_edited_files_get_head_time() {
    require_tool("git", "git");
    let t = tempdir();
    let repo = t.path().join("repo");
    make_repo(&repo);
    let cache = t.path().join("cache");
    let project = repo.join("project");
    let before = build(&project, &cache, &[]);

    write(&project.join("app/b.txt"), "b3");
    git(&repo, &["commit", "-q", "-am", "three"], T3);
    let after = build(&project, &cache, &[]);
    assert_eq!(
        before.layers[0], after.layers[0],
        "lib layer must not change"
    );
    assert_ne!(before.layers[1], after.layers[1]);
    assert_eq!(after.mtimes[1]["opt/app/b.txt"], T3);
    assert_eq!(after.mtimes[0]["opt/lib/a.txt"], T1);

    // An untracked file (a built artifact) and an uncommitted edit take HEAD's time.
    write(&project.join("app/built.war"), "war");
    write(&project.join("lib/a.txt"), "edited");
    let dirty = build(&project, &cache, &[]);
    assert_eq!(dirty.mtimes[1]["opt/app/built.war"], T3);
    assert_eq!(dirty.mtimes[0]["opt/lib/a.txt"], T3);

    // SOURCE_DATE_EPOCH sets `created` and clamps history times.
    let sde = build(&project, &cache, &[("SOURCE_DATE_EPOCH", "1650000000")]);
    assert_eq!(sde.config["created"], "2022-04-15T05:20:00Z");
    assert_eq!(sde.mtimes[1]["opt/app/b.txt"], 1_650_000_000);
    assert_eq!(sde.mtimes[1]["opt/app/built.war"], 1_650_000_000);
}

/// Commit times the image cannot hold (after year 9999, before 1970) are input errors naming
/// the commit and the time, not a panic (past 9999) or a silent clamp (before 1970).
#[test]
fn commit_times_out_of_range_are_input_errors() {
    let t = tempdir();
    let dir = t.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], T1);
    write(
        &dir.join("recipe.toml"),
        "[image]\nname = \"localhost/t\"\n[[layers]]\nname = \"l\"\nfiles = [{ src = \"a.txt\", dest = \"/a.txt\" }]\n",
    );
    write(&dir.join("a.txt"), "a");
    git(&dir, &["add", "-A"], T1);
    let late = 253_402_300_800u64;
    git(&dir, &["commit", "-q", "-m", "late"], late);
    let plan = |env: &[(&str, &str)]| {
        stevedore_env(
            &t.path().join("cache"),
            &["plan", path_str(&dir.join("recipe.toml"))],
            env,
        )
    };
    let head = |dir: &Path| {
        let out = run(Command::new("git")
            .current_dir(dir)
            .args(["rev-parse", "HEAD"]));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let out = plan(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&head(&dir)) && err.contains("253402300800") && err.contains("9999"),
        "{err}"
    );
    assert!(!err.contains("bug in stevedore"), "{err}");

    // A commit dated before 1970 (git only writes one by hand).
    let tree = run(Command::new("git")
        .current_dir(&dir)
        .args(["rev-parse", "HEAD^{tree}"]));
    let tree = String::from_utf8(tree.stdout).unwrap();
    let object = format!(
        "tree {}\nauthor t <t@example.invalid> -86400 +0000\ncommitter t <t@example.invalid> -86400 +0000\n\nearly\n",
        tree.trim()
    );
    let mut hash = Command::new("git")
        .current_dir(&dir)
        .args([
            "hash-object",
            "-t",
            "commit",
            "-w",
            "--stdin",
            "--literally",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    hash.stdin
        .take()
        .unwrap()
        .write_all(object.as_bytes())
        .unwrap();
    let id = hash.wait_with_output().unwrap();
    let id = String::from_utf8(id.stdout).unwrap().trim().to_string();
    run(Command::new("git")
        .current_dir(&dir)
        .args(["update-ref", "refs/heads/main", &id]));
    let out = plan(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&id) && err.contains("-86400") && err.contains("before 1970"),
        "{err}"
    );
}
