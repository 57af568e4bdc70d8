//! Several builds writing into one OCI layout at once (issue 12): each keeps its tag, and the
//! layout stays readable by skopeo and umoci.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn recipe(dir: &Path, name: &str, tag: &str) -> String {
    write(
        &dir.join(format!("{name}.txt")),
        format!("content of {name}\n"),
    );
    let path = dir.join(format!("{name}.toml"));
    write(
        &path,
        format!(
            r#"
[image]
name = "localhost/{name}"
tags = ["{tag}"]

[[layers]]
name = "files"
files = [{{ src = "{name}.txt", dest = "/srv/{name}.txt" }}]
"#
        ),
    );
    path.display().to_string()
}

/// Starts `stevedore build RECIPE --output oci:LAYOUT` with a cache of its own.
fn spawn_build(cache: &Path, recipe: &str, layout: &Path) -> std::process::Child {
    Command::new(BIN)
        .arg("--cache-dir")
        .arg(cache)
        .args(["build", recipe, "--output"])
        .arg(format!("oci:{}", layout.display()))
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("STEVEDORE_CACHE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stevedore")
}

fn digest_of(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("wait for stevedore");
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn skopeo_digest(reference: &str) -> String {
    let out = run(Command::new("skopeo").args(["inspect", reference]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn concurrent_builds_into_one_layout_keep_every_tag() {
    require_tool("skopeo", "skopeo");
    require_tool("umoci", "umoci");
    let t = tempdir();
    let a = recipe(t.path(), "alpha", "a1");
    let b = recipe(t.path(), "beta", "b1");
    // Several rounds, each into a fresh layout: without the lock, one build's index.json
    // rewrite regularly drops the other's tag.
    for round in 0..4 {
        let layout = t.path().join(format!("layout-{round}"));
        let ca = spawn_build(&t.path().join(format!("cache-a-{round}")), &a, &layout);
        let cb = spawn_build(&t.path().join(format!("cache-b-{round}")), &b, &layout);
        let (da, db) = (digest_of(ca), digest_of(cb));
        assert_ne!(da, db);

        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mut tags: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        tags.sort_unstable();
        assert_eq!(tags, ["a1", "b1"], "round {round}: {index}");

        // Independent readers find each image under its tag, with the digest its build printed.
        assert_eq!(skopeo_digest(&format!("oci:{}:a1", layout.display())), da);
        assert_eq!(skopeo_digest(&format!("oci:{}:b1", layout.display())), db);
        let ls = run(Command::new("umoci").args(["ls", "--layout"]).arg(&layout));
        let mut listed: Vec<String> = stdout(&ls).lines().map(str::to_string).collect();
        listed.sort_unstable();
        assert_eq!(listed, ["a1", "b1"], "umoci ls, round {round}");
    }
}

#[test]
fn a_directory_that_is_not_a_layout_is_refused_and_left_alone() {
    let t = tempdir();
    let a = recipe(t.path(), "alpha", "a1");
    let dir = t.path().join("not-a-layout");
    write(&dir.join("notes.txt"), "mine");
    let out = stevedore(
        &t.path().join("cache"),
        &["build", &a, "--output", &format!("oci:{}", dir.display())],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an OCI image layout"),
        "{}",
        stderr(&out)
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "nothing was written into it");
}
