//! `build --push` and `push` through the CLI against a real registry, checked with skopeo.

use crate::common;
use crate::registry_support;

use common::*;
use registry_support::{Auth, TestRegistry};

fn project(dir: &std::path::Path, format: &str) {
    write(&dir.join("app/app.txt"), "v1\n");
    write(
        &dir.join("app.toml"),
        format!(
            "[image]\nname = \"localhost/app\"\ntags = [\"v1\", \"latest\"]\n{format}\n[[layers]]\nname = \"app\"\nfiles = [{{ src = \"app\", dest = \"/app\" }}]\n"
        ),
    );
}

#[test]
fn build_push_then_push_again_uploads_nothing_and_push_verb_copies_a_layout() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    project(t.path(), "");
    let cache = t.path().join("cache");
    let recipe = t.path().join("app.toml");
    let layout = t.path().join("out");
    let target = format!("{}/team/app", reg.host());

    let out = stevedore(
        &cache,
        &[
            "build",
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
            "--push",
            &target,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let digest = stdout(&out).trim().to_string();
    assert_eq!(stdout(&out).lines().count(), 1, "stdout is only the digest");
    for tag in ["v1", "latest"] {
        assert_eq!(
            reg.skopeo_inspect(&format!("team/app:{tag}"))["Digest"],
            digest.as_str()
        );
    }
    assert!(stderr(&out).contains("2 uploaded"), "{}", stderr(&out));
    // Each uploaded blob is reported with its size, time and rate.
    let blob_lines: Vec<_> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("blob ") && l.contains(" uploaded ("))
        .map(str::to_owned)
        .collect();
    assert_eq!(blob_lines.len(), 2, "{}", stderr(&out));
    assert!(
        blob_lines
            .iter()
            .all(|l| l.contains("s, ") && l.ends_with("/s")),
        "{blob_lines:?}"
    );

    let again = stevedore(&cache, &["build", path_str(&recipe), "--push", &target]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), digest);
    assert!(stderr(&again).contains("0 uploaded"), "{}", stderr(&again));
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));

    let pushed = stevedore(
        &cache,
        &[
            "push",
            &format!("oci:{}:v1", layout.display()),
            &format!("{}/copy/app:x", reg.host()),
        ],
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert_eq!(stdout(&pushed).trim(), digest);
    assert_eq!(reg.skopeo_inspect("copy/app:x")["Digest"], digest.as_str());
}

#[test]
fn docker_format_pushes_docker_media_types() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    project(t.path(), "format = \"docker\"");
    let digest = build_ok(
        &t.path().join("cache"),
        &[
            path_str(&t.path().join("app.toml")),
            "--push",
            &format!("{}/old/app:v1", reg.host()),
        ],
    );
    let raw: serde_json::Value = serde_json::from_slice(&reg.skopeo_raw("old/app:v1")).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(reg.skopeo_inspect("old/app:v1")["Digest"], digest.as_str());
}

#[test]
fn wrong_credentials_fail_with_exit_4_and_no_secret() {
    let reg = TestRegistry::start(Auth::Htpasswd);
    let t = tempdir();
    project(t.path(), "");
    let cache = t.path().join("cache");
    let recipe = t.path().join("app.toml");
    let target = format!("{}/team/app", reg.host());
    let out = stevedore_env(
        &cache,
        &["build", path_str(&recipe), "--push", &target],
        &[
            ("STEVEDORE_CREDS", "testuser:very-wrong-pw"),
            ("DOCKER_CONFIG", "/nonexistent"),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("very-wrong-pw"),
        "secret leaked: {}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "no digest on failure");
    assert!(
        !reg.skopeo_has("team/app:latest"),
        "nothing tagged on failure"
    );

    let ok = stevedore_env(
        &cache,
        &["build", path_str(&recipe), "--push", &target],
        &[
            (
                "STEVEDORE_CREDS",
                &format!("{}:{}", registry_support::USER, registry_support::PASSWORD),
            ),
            ("DOCKER_CONFIG", "/nonexistent"),
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(!stderr(&ok).contains(registry_support::PASSWORD));
    assert!(reg.skopeo_has("team/app:latest"));
}

#[test]
fn a_bad_push_reference_fails_before_building() {
    let t = tempdir();
    project(t.path(), "");
    let cache = t.path().join("cache");
    let out = stevedore(
        &cache,
        &[
            "build",
            path_str(&t.path().join("app.toml")),
            "--push",
            "Bad Ref!",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("Bad Ref!"));
    assert!(
        !cache.join("layers").exists()
            || std::fs::read_dir(cache.join("layers")).unwrap().count() == 0
    );
}
