//! Exploded WAR layers: the jakarta fixture becomes four layers (libs, snapshots, resources,
//! classes) with the WAR's files, and a WAR that differs only in a class changes only the
//! classes layer, while a WAR rebuilt with other zip times and compression changes nothing.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::*;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

const DEST: &str = "var/lib/tomcat10/webapps/ROOT";

const RECIPE: &str = r#"
[image]
name = "localhost/war"
[[layers]]
name = "app"
war = { src = "app.war", dest = "/var/lib/tomcat10/webapps/ROOT", owner = "1000:1001" }
"#;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/war/jakarta/hello-jakarta.war")
}

/// The files of a WAR: path inside it → bytes.
fn war_files(war: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut zip = ZipArchive::new(std::fs::File::open(war).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).unwrap();
        if e.is_dir() {
            continue;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(e.name().unwrap().into_owned(), data);
    }
    out
}

/// Writes a WAR with `files`, every entry deflated and dated `year`.
fn write_war(path: &Path, files: &BTreeMap<String, Vec<u8>>, year: u16) {
    let mut w = ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::from_date_and_time(year, 6, 1, 12, 0, 0).unwrap());
    for (name, data) in files {
        w.start_file(name.as_str(), options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
}

/// A tar entry: kind, mode, uid, gid, mtime, content.
type TarEntry = (char, u32, u64, u64, u64, Vec<u8>);

struct Layer {
    digest: String,
    /// path → entry
    entries: BTreeMap<String, TarEntry>,
}

/// Builds the project's recipe and reads every layer of the image back.
fn build(project: &Path) -> Vec<Layer> {
    let layout = project.join("out");
    let _ = std::fs::remove_dir_all(&layout);
    let digest = build_ok(
        &project.join("cache"),
        &[
            path_str(&project.join("recipe.toml")),
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    );
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..]));
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&digest).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let digest = l["digest"].as_str().unwrap().to_string();
            let gz = blob(&digest).unwrap();
            let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&gz[..]));
            let mut entries = BTreeMap::new();
            for e in archive.entries().unwrap() {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let path = e.path().unwrap().to_str().unwrap().to_string();
                let kind = if h.entry_type().is_dir() { 'd' } else { 'f' };
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let meta = (
                    kind,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    data,
                );
                entries.insert(path.trim_end_matches('/').to_string(), meta);
            }
            Layer { digest, entries }
        })
        .collect()
}

fn project_with(war: &Path) -> tempfile::TempDir {
    let dir = tempdir();
    std::fs::copy(war, dir.path().join("app.war")).unwrap();
    write(&dir.path().join("recipe.toml"), RECIPE);
    dir
}

#[test]
fn the_jakarta_war_explodes_into_four_layers() {
    let dir = project_with(&fixture());
    let war = war_files(&fixture());
    let layers = build(dir.path());
    assert_eq!(layers.len(), 4, "libs, snapshots, resources, classes");

    let expected: [&[&str]; 4] = [
        &["WEB-INF/lib/greeting-1.0.jar"],
        &["WEB-INF/lib/util-1.1-SNAPSHOT.jar"],
        &[
            "WEB-INF/classes/messages.properties",
            "WEB-INF/web.xml",
            "index.jsp",
        ],
        &[
            "WEB-INF/classes/com/example/hello/HelloServlet.class",
            "WEB-INF/classes/com/example/hello/TrustServlet.class",
        ],
    ];
    for (layer, files) in layers.iter().zip(expected) {
        let got: Vec<&str> = layer
            .entries
            .iter()
            .filter(|(_, e)| e.0 == 'f')
            .map(|(p, _)| p.strip_prefix(&format!("{DEST}/")).unwrap())
            .collect();
        assert_eq!(got, files);
        for (path, (kind, mode, uid, gid, mtime, data)) in &layer.entries {
            if let Some(rel) = path.strip_prefix(&format!("{DEST}/")) {
                // Inside the webapp: the WAR's owner, 0644 files and 0755 folders; no SDE, no
                // git: the fixed epoch, never the zip's 2024 entry times.
                assert_eq!((*uid, *gid), (1000, 1001), "{path}");
                assert_eq!(*mtime, 1, "{path}");
                if *kind == 'f' {
                    assert_eq!(*mode, 0o644, "{path}");
                    assert_eq!(data, &war[rel], "{path}");
                } else {
                    assert_eq!(*mode, 0o755, "{path}");
                }
            } else if path == DEST {
                assert_eq!((*kind, *mode, *uid, *gid), ('d', 0o755, 1000, 1001));
            } else {
                // Above dest: implied parents, root's.
                assert!(DEST.starts_with(path.as_str()), "{path}");
                assert_eq!((*kind, *mode, *uid), ('d', 0o755, 0), "{path}");
            }
        }
    }

    let plan = stevedore(
        &dir.path().join("cache"),
        &["plan", path_str(&dir.path().join("recipe.toml"))],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    for name in ["app-libs", "app-snapshots", "app-resources", "app-classes"] {
        assert!(text.contains(name), "plan lacks {name}:\n{text}");
    }
}

#[test]
fn a_changed_class_changes_only_the_classes_layer() {
    let original = war_files(&fixture());
    let dir = project_with(&fixture());
    let before: Vec<String> = build(dir.path()).into_iter().map(|l| l.digest).collect();
    assert_eq!(before.len(), 4);

    // Same content, other zip: every entry deflated (the jars were stored) and other times.
    write_war(&dir.path().join("app.war"), &original, 2030);
    let repacked: Vec<String> = build(dir.path()).into_iter().map(|l| l.digest).collect();
    assert_eq!(
        repacked, before,
        "only the content of a WAR may decide its layers"
    );

    let mut changed = original.clone();
    changed
        .get_mut("WEB-INF/classes/com/example/hello/HelloServlet.class")
        .unwrap()
        .extend_from_slice(b"\0");
    write_war(&dir.path().join("app.war"), &changed, 2024);
    let after: Vec<String> = build(dir.path()).into_iter().map(|l| l.digest).collect();
    assert_eq!(
        after[..3],
        before[..3],
        "libs, snapshots and resources stay"
    );
    assert_ne!(after[3], before[3], "the classes layer changes");
}

#[test]
fn war_recipe_errors_point_at_the_line() {
    let dir = tempdir();
    std::fs::copy(fixture(), dir.path().join("app.war")).unwrap();
    write(
        &dir.path().join("recipe.toml"),
        r#"[[layers]]
name = "app"
files = [{ src = "app.war", dest = "/srv/app.war" }]
war = { src = "app.war", dest = "/srv/app" }

[[layers]]
name = "app-classes"
files = [{ src = "app.war", dest = "/srv/x.war" }]

[[layers]]
name = "broken"
war = { src = "missing.war", dest = "srv" }
"#,
    );
    let out = stevedore(
        &dir.path().join("cache"),
        &["plan", path_str(&dir.path().join("recipe.toml"))],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    for wanted in [
        "recipe.toml:2",
        "has a war and other content",
        "recipe.toml:7",
        "app-classes",
        "recipe.toml:12",
        "missing.war",
        "not an absolute path",
    ] {
        assert!(err.contains(wanted), "missing {wanted:?} in:\n{err}");
    }

    // A file that is not a zip fails the plan, naming the recipe line.
    write(&dir.path().join("bad.war"), "not a zip");
    write(
        &dir.path().join("recipe.toml"),
        "[[layers]]\nname = \"app\"\nwar = { src = \"bad.war\", dest = \"/srv/app\" }\n",
    );
    let out = stevedore(
        &dir.path().join("cache"),
        &["plan", path_str(&dir.path().join("recipe.toml"))],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("recipe.toml:3") && err.contains("not a readable zip"),
        "{err}"
    );
}

/// Runs `plan` and `build --output` on a project whose WAR must be refused: exit 3 naming
/// `wanted`, and no image layout written.
fn refused(project: &Path, wanted: &[&str]) {
    let recipe = project.join("recipe.toml");
    let layout = project.join("out");
    for args in [
        vec!["plan", path_str(&recipe)],
        vec![
            "build",
            path_str(&recipe),
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    ] {
        let start = std::time::Instant::now();
        let out = stevedore(&project.join("cache"), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        for w in wanted {
            assert!(err.contains(w), "missing {w:?} in:\n{err}");
        }
        assert!(stdout(&out).is_empty());
    }
    assert!(!layout.exists(), "nothing is written for a refused war");
}

#[test]
fn a_war_whose_names_share_one_entry_is_refused() {
    // One stored 64 KiB jar and a thousand more names pointing at its bytes: an image of
    // 64 MiB from a 130 KiB WAR.
    let dir = tempdir();
    let mut w = ZipWriter::new(std::fs::File::create(dir.path().join("app.war")).unwrap());
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    w.start_file("WEB-INF/lib/a.jar", stored).unwrap();
    w.write_all(&vec![7u8; 64 << 10]).unwrap();
    for i in 0..1000 {
        w.shallow_copy_file("WEB-INF/lib/a.jar", &format!("WEB-INF/lib/copy{i}.jar"))
            .unwrap();
    }
    w.finish().unwrap();
    assert!(std::fs::metadata(dir.path().join("app.war")).unwrap().len() < 200 << 10);
    write(&dir.path().join("recipe.toml"), RECIPE);
    refused(
        dir.path(),
        &[
            "app.war",
            "share bytes",
            "WEB-INF/lib/a.jar",
            "recipe.toml:6",
        ],
    );
}

#[test]
fn a_war_over_its_size_limit_is_refused() {
    let dir = project_with(&fixture());
    // The fixture holds a few KiB; the limit is set below them.
    write(
        &dir.path().join("recipe.toml"),
        RECIPE.replace(
            r#"owner = "1000:1001" }"#,
            r#"owner = "1000:1001", max-size = "2 KiB" }"#,
        ),
    );
    refused(
        dir.path(),
        &["app.war", "over its limit of 2 KiB", "max-size", "entry `"],
    );
    // A limit that is not a size is a recipe error pointing at it.
    write(
        &dir.path().join("recipe.toml"),
        RECIPE.replace(
            r#"owner = "1000:1001" }"#,
            r#"owner = "1000:1001", max-size = "2 MB" }"#,
        ),
    );
    refused(dir.path(), &["recipe.toml:6", "is not a size", "MiB"]);
    // With room enough, the same WAR builds.
    write(
        &dir.path().join("recipe.toml"),
        RECIPE.replace(
            r#"owner = "1000:1001" }"#,
            r#"owner = "1000:1001", max-size = 1048576 }"#,
        ),
    );
    assert_eq!(build(dir.path()).len(), 4);
}
