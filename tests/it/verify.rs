//! `stevedore verify`: a clean rebuild verifies; a tampered cached blob or source file is named.

use crate::common;

use std::path::Path;

use common::*;

fn project(dir: &Path) {
    write(&dir.join("site/index.html"), "<h1>v1</h1>\n");
    write(&dir.join("site/about.html"), "about\n");
    write(&dir.join("bin/run"), "#!/bin/sh\n");
    write(
        &dir.join("r.toml"),
        "[[layers]]\nname = \"bin\"\nfiles = [{ src = \"bin\", dest = \"/bin\" }]\n[[layers]]\nname = \"site\"\nfiles = [{ src = \"site\", dest = \"/srv\" }]\n",
    );
}

#[test]
fn clean_rebuild_verifies_and_tampering_is_named() {
    let t = tempdir();
    project(t.path());
    let cache = t.path().join("cache");
    let recipe = t.path().join("r.toml");
    let layout = t.path().join("out");
    let digest = build_ok(
        &cache,
        &[
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );

    let ok = stevedore(&cache, &["verify", path_str(&recipe)]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("identical"), "{}", stdout(&ok));

    // Tamper with the cached blob of the `site` layer: same size, other bytes.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap(),
    )
    .unwrap();
    let site_blob = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let cached = cache
        .join("blobs/sha256")
        .join(&site_blob["sha256:".len()..]);
    // The layout holds a hard link to the same blob: break it first so only the cache changes.
    let _ = std::fs::remove_file(
        layout
            .join("blobs/sha256")
            .join(&site_blob["sha256:".len()..]),
    );
    let mut bytes = std::fs::read(&cached).unwrap();
    // Re-gzip different content would be cleaner, but flipping a byte in the deflate stream is
    // what disk corruption looks like.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    let bad = stevedore(&cache, &["verify", path_str(&recipe)]);
    assert_eq!(
        bad.status.code(),
        Some(5),
        "{}{}",
        stdout(&bad),
        stderr(&bad)
    );
    let text = stdout(&bad);
    assert!(
        text.contains("layer site") && text.contains("corrupt"),
        "{text}"
    );
    assert!(text.contains("layer bin              identical"), "{text}");

    // Against the OCI layout (untouched for `bin`), after editing a source file.
    let t2 = tempdir();
    project(t2.path());
    let cache2 = t2.path().join("cache");
    let recipe2 = t2.path().join("r.toml");
    let layout2 = t2.path().join("out");
    build_ok(
        &cache2,
        &[
            path_str(&recipe2),
            "-o",
            &format!("oci:{}", layout2.display()),
        ],
    );
    write(&t2.path().join("site/about.html"), "about, edited\n");
    let out = stevedore(
        &cache2,
        &[
            "verify",
            path_str(&recipe2),
            "--against",
            &format!("oci:{}", layout2.display()),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("/srv/about.html: content"), "{text}");
    assert!(
        !text.contains("/srv/index.html"),
        "unchanged files are not reported: {text}"
    );
}

#[test]
fn verify_needs_a_reference() {
    let t = tempdir();
    project(t.path());
    let out = stevedore(
        &t.path().join("cache"),
        &["verify", path_str(&t.path().join("r.toml"))],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("build it first"), "{}", stderr(&out));
}
