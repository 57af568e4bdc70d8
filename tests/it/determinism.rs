//! The same recipe gives byte-identical layers and manifests wherever and however its sources
//! were checked out: other folder, other file mtimes, owners, umask and creation order.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;

const FILES: &[(&str, &str, bool)] = &[
    ("site/index.html", "<h1>hello</h1>\n", false),
    ("site/css/main.css", "body { color: red }\n", false),
    ("site/js/app.js", "console.log(1)\n", false),
    ("bin/serve", "#!/bin/sh\nexec true\n", true),
    ("conf/app.conf", "port=8080\n", false),
];

const RECIPE: &str = r#"
[image]
name = "localhost/det"
[config]
cmd = ["/usr/local/bin/serve"]
[[layers]]
name = "bin"
files = [{ src = "bin/serve", dest = "/usr/local/bin/" }]
[[layers]]
name = "site"
files = [
  { src = "site", dest = "/srv/www" },
  { src = "conf/*.conf", dest = "/etc/app/" },
]
symlinks = [{ path = "/srv/current", target = "www" }]
"#;

/// Lays the project out; `variant` flips everything that must not matter.
fn checkout(dir: &Path, variant: bool) {
    let mut files: Vec<_> = FILES.to_vec();
    if variant {
        files.reverse();
    }
    for (path, content, exec) in files {
        let p = dir.join(path);
        write(&p, content);
        let mode = match (exec, variant) {
            (true, false) => 0o755,
            (true, true) => 0o775,
            (false, false) => 0o644,
            (false, true) => 0o664,
        };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let when = if variant {
            SystemTime::now()
        } else {
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)
        };
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
        if variant && is_root() {
            std::os::unix::fs::chown(&p, Some(4321), Some(4321)).unwrap();
        }
    }
    write(&dir.join("recipe.toml"), RECIPE);
}

fn build_in(dir: &Path, env: &[(&str, &str)]) -> (String, Vec<String>) {
    let layout = dir.join("out");
    let digest = build_ok_env(
        &dir.join("cache"),
        &[
            path_str(&dir.join("recipe.toml")),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
        env,
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (digest, layers)
}

#[test]
fn same_recipe_same_bytes_across_checkouts() {
    let t = tempdir();
    let a = t.path().join("first/checkout");
    let b = t.path().join("second-place");
    checkout(&a, false);
    checkout(&b, true);
    let (da, la) = build_in(&a, &[]);
    let (db, lb) = build_in(&b, &[]);
    assert_eq!(la, lb, "layer digests differ between checkouts");
    assert_eq!(da, db, "manifest digests differ between checkouts");

    // Every blob in the two layouts is byte-identical.
    let blobs = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d.join("out/blobs/sha256"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(blobs(&a), blobs(&b));
    assert_eq!(
        std::fs::read(a.join("out/index.json")).unwrap(),
        std::fs::read(b.join("out/index.json")).unwrap()
    );

    // A rebuild from a warm cache gives the same digest too.
    assert_eq!(build_in(&a, &[]).0, da);
}

#[test]
fn source_date_epoch_is_the_only_time_that_counts() {
    let t = tempdir();
    let a = t.path().join("a");
    let b = t.path().join("b");
    checkout(&a, false);
    checkout(&b, true);
    let env = [("SOURCE_DATE_EPOCH", "1735689600")];
    let (da, la) = build_in(&a, &env);
    let (db, lb) = build_in(&b, &env);
    assert_eq!((da.clone(), la.clone()), (db, lb));
    let (default_digest, default_layers) = build_in(&a, &[]);
    assert_ne!(da, default_digest, "SOURCE_DATE_EPOCH must reach the image");
    assert_ne!(
        la, default_layers,
        "SOURCE_DATE_EPOCH must reach the tar headers"
    );

    let config = std::fs::read_dir(a.join("out/blobs/sha256"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|s| s.contains("\"created\":\"2025-01-01T00:00:00Z\""));
    assert!(
        config.is_some(),
        "config carries created = SOURCE_DATE_EPOCH"
    );
}

/// Pins the exact bytes stevedore writes for a fixed input. If this fails, every user's layer
/// digests change: that must be a deliberate change (bump `LAYER_FORMAT_VERSION`, say why in
/// the commit), never a side effect of a dependency update (e.g. another deflate backend).
#[test]
fn golden_digest_of_a_fixed_image() {
    let t = tempdir();
    checkout(t.path(), false);
    let (digest, layers) = build_in(t.path(), &[("SOURCE_DATE_EPOCH", "1735689600")]);
    assert_eq!(
        layers,
        [GOLDEN_LAYERS[0], GOLDEN_LAYERS[1]],
        "layer bytes changed"
    );
    assert_eq!(digest, GOLDEN_MANIFEST, "manifest bytes changed");
}

const GOLDEN_LAYERS: [&str; 2] = [
    "sha256:99792b8b7eacf896dc486a79fc1a5650d6408ed6b56361b1f4c8bd77fdd575db",
    "sha256:29bec90c220c9765e5ff7a0d46f0537178b4e7c59318672496c770a4a6787bf3",
];
const GOLDEN_MANIFEST: &str =
    "sha256:862e06cb271040899fe6f768c6a51893bee93ac985320c9776595baf3d853fe9";
