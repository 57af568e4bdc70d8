//! Machine-readable output: `plan --format json`, `inspect --format json` and
//! `build --metadata-file` validate against the schemas in `schemas/` (checked by
//! check-jsonschema, an independent validator), and the metadata's blob outcomes match what the
//! registry logged.

use crate::common;
use crate::registry_support;

use std::path::Path;
use std::process::Command;

use common::*;
use registry_support::{Auth, TestRegistry};

/// Validates `json` against `schemas/NAME.schema.json` with check-jsonschema.
fn validate(name: &str, json: &[u8], dir: &Path) {
    require_tool(
        "check-jsonschema",
        "python3-pip && pip3 install check-jsonschema",
    );
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{name}.schema.json"));
    let doc = dir.join(format!("{name}-{}.json", rand_suffix()));
    std::fs::write(&doc, json).unwrap();
    run(Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema)
        .arg(&doc));
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn project(dir: &Path) {
    write(&dir.join("app/app.txt"), "v1\n");
    write(
        &dir.join("app.toml"),
        "[image]\nname = \"localhost/app\"\ntags = [\"v1\"]\n[[layers]]\nname = \"app\"\nfiles = [{ src = \"app\", dest = \"/app\" }]\n",
    );
}

#[test]
fn plan_and_inspect_json_follow_their_schemas() {
    let t = tempdir();
    project(t.path());
    let cache = t.path().join("cache");
    let recipe = t.path().join("app.toml");
    let plan = |label: &str| {
        let out = stevedore(&cache, &["plan", "--format", "json", path_str(&recipe)]);
        assert!(out.status.success(), "{}", stderr(&out));
        validate("plan", &out.stdout, t.path());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["layers"][0]["name"], "app", "{label}: {v}");
        v
    };
    let before = plan("before");
    assert_eq!(before["layers"][0]["cached"], false);
    let layout = t.path().join("out");
    build_ok(
        &cache,
        &[
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    let after = plan("after");
    assert_eq!(after["layers"][0]["cached"], true);
    assert_eq!(after["layers"][0]["key"], before["layers"][0]["key"]);

    let target = format!("oci:{}:v1", layout.display());
    let inspect = stevedore(&cache, &["inspect", "--format", "json", &target]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    validate("inspect", &inspect.stdout, t.path());
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["layers"][0]["id"], after["layers"][0]["digest"]);
    // The older spelling gives the same document.
    let old = stevedore(&cache, &["inspect", "--json", &target]);
    assert_eq!(old.stdout, inspect.stdout);
}

/// The registry's requests since `from` (a byte offset of its log): (method, uri) pairs.
fn requests(log: &str, from: usize) -> Vec<(String, String)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let rest = &line[line.find(&format!("{name}="))? + name.len() + 1..];
        let value = match rest.strip_prefix('"') {
            Some(q) => &q[..q.find('"')?],
            None => rest.split_whitespace().next()?,
        };
        Some(value.to_string())
    };
    log[from..]
        .lines()
        .filter(|l| l.contains("response completed"))
        .filter_map(|l| {
            Some((
                field(l, "http.request.method")?,
                field(l, "http.request.uri")?,
            ))
        })
        .collect()
}

/// The blobs of a metadata file's push, by outcome.
fn outcomes(meta: &serde_json::Value, outcome: &str) -> Vec<String> {
    meta["stevedore.push"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["outcome"] == outcome)
        .map(|b| b["digest"].as_str().unwrap()["sha256:".len()..].to_string())
        .collect()
}

/// Builds `recipe`, pushes it to `target` and writes `meta`; the metadata, checked against its
/// schema, and the registry's requests during the run.
fn build_push(
    reg: &TestRegistry,
    cache: &Path,
    recipe: &Path,
    target: &str,
    meta: &Path,
) -> (serde_json::Value, Vec<(String, String)>) {
    let from = reg.log().len();
    let digest = build_ok(
        cache,
        &[
            path_str(recipe),
            "--push",
            target,
            "--metadata-file",
            path_str(meta),
        ],
    );
    let bytes = std::fs::read(meta).unwrap();
    validate("metadata", &bytes, meta.parent().unwrap());
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["containerimage.digest"], digest.as_str());
    (v, requests(&reg.log(), from))
}

#[test]
fn metadata_lists_uploaded_mounted_and_skipped_blobs_as_the_registry_saw_them() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    project(t.path());
    let cache = t.path().join("cache");

    // 1. A first push uploads every blob (the layer and the config).
    let (m1, seen) = build_push(
        &reg,
        &cache,
        &t.path().join("app.toml"),
        &format!("{}/team/app", reg.host()),
        &t.path().join("m1.json"),
    );
    assert_eq!(m1["image.name"], format!("{}/team/app:v1", reg.host()));
    assert_eq!(m1["stevedore.layers"][0]["status"], "built");
    let uploaded = outcomes(&m1, "uploaded");
    assert_eq!(uploaded.len(), 2, "{m1:#}");
    for hex in &uploaded {
        assert!(
            seen.iter()
                .any(|(m, u)| m == "PUT" && u.contains(hex.as_str())),
            "metadata says uploaded, the registry saw no PUT for {hex}: {seen:?}"
        );
    }

    // 2. An image on top of it, pushed to another repository: the base layer is mounted.
    write(&t.path().join("child/c.txt"), "c\n");
    write(
        &t.path().join("child.toml"),
        format!(
            "from = \"{}/team/app:v1\"\n[image]\nname = \"localhost/child\"\ntags = [\"v1\"]\n[[layers]]\nname = \"child\"\nfiles = [{{ src = \"child\", dest = \"/child\" }}]\n",
            reg.host()
        ),
    );
    let child_target = format!("{}/other/child", reg.host());
    let (m2, seen) = build_push(
        &reg,
        &cache,
        &t.path().join("child.toml"),
        &child_target,
        &t.path().join("m2.json"),
    );
    let mounted = outcomes(&m2, "mounted");
    assert_eq!(mounted.len(), 1, "{m2:#}");
    assert_eq!(m2["stevedore.layers"][0]["status"], "base");
    for hex in &mounted {
        assert!(
            seen.iter()
                .any(|(m, u)| m == "POST" && u.contains("mount=") && u.contains(hex.as_str())),
            "metadata says mounted, the registry saw no mount of {hex}: {seen:?}"
        );
    }
    assert_eq!(outcomes(&m2, "uploaded").len(), 2, "{m2:#}");

    // 3. The same push again: everything is already there, nothing is written.
    let (m3, seen) = build_push(
        &reg,
        &cache,
        &t.path().join("child.toml"),
        &child_target,
        &t.path().join("m3.json"),
    );
    assert_eq!(outcomes(&m3, "skipped").len(), 3, "{m3:#}");
    assert!(
        !seen
            .iter()
            .any(|(m, u)| (m == "PUT" || m == "POST" || m == "PATCH") && u.contains("/blobs/")),
        "metadata says skipped, the registry saw a blob write: {seen:?}"
    );
}

#[test]
fn a_failed_build_writes_no_metadata_file() {
    let t = tempdir();
    project(t.path());
    write(
        &t.path().join("bad.toml"),
        "[[layers]]\nname = \"x\"\nfiles = [{ src = \"missing\", dest = \"/x\" }]\n",
    );
    let meta = t.path().join("meta.json");
    let out = stevedore(
        &t.path().join("cache"),
        &[
            "build",
            path_str(&t.path().join("bad.toml")),
            "--metadata-file",
            path_str(&meta),
        ],
    );
    assert!(!out.status.success());
    assert!(!meta.exists(), "a failed build left a metadata file");
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
