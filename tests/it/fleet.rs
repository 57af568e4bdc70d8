//! The registry as the shared cache of a fleet of CI workers (`build --cache-from/--cache-to`),
//! against a real registry on loopback: workers are clones of one git repository in different
//! folders, each with its own empty cache, as CI jobs on fresh machines.

use crate::apt_support;
use crate::common;
use crate::registry_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use apt_support::{Item, RepoSpec, Server, TestDeb, build_repo, fixtures};
use common::*;
use registry_support::{Auth, TestRegistry};

/// A git repository holding a recipe (its lockfile committed when it has packages), and
/// clones of it in folders of their own, as fleet workers check it out.
struct Project {
    t: tempfile::TempDir,
    origin: PathBuf,
    /// The recipe, relative to the repository.
    recipe: String,
}

impl Project {
    fn new(files: &[(&str, String)]) -> Project {
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), t.clone().into_bytes()))
            .collect();
        Project::new_bytes(&files, "image.toml")
    }

    fn new_bytes(files: &[(String, Vec<u8>)], recipe: &str) -> Project {
        require_tool("git", "git");
        let t = tempdir();
        let origin = t.path().join("origin");
        std::fs::create_dir_all(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        for (path, text) in files {
            write(&origin.join(path), text);
        }
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-q", "-m", "project"]);
        Project {
            t,
            origin,
            recipe: recipe.to_owned(),
        }
    }

    /// Locks the recipe and commits the lockfile, as a repository would.
    fn lock(&self) {
        let out = stevedore(
            &self.t.path().join("lock-cache"),
            &["lock", path_str(&self.origin.join(&self.recipe))],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        git(&self.origin, &["add", "-A"]);
        git(&self.origin, &["commit", "-q", "-m", "lock"]);
    }

    /// A fresh clone in `workers/<name>/src` and an empty cache beside it.
    fn worker(&self, name: &str) -> Worker {
        let dir = self.t.path().join("workers").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("git")
            .args(["clone", "-q"])
            .arg(&self.origin)
            .arg(dir.join("src")));
        Worker {
            recipe: dir.join("src").join(&self.recipe),
            cache: dir.join("cache"),
            src: dir.join("src"),
        }
    }

    fn commit_change(&self, path: &str, text: &str) {
        write(&self.origin.join(path), text);
        git(&self.origin, &["commit", "-q", "-am", "change"]);
    }
}

struct Worker {
    src: PathBuf,
    recipe: PathBuf,
    cache: PathBuf,
}

impl Worker {
    fn build(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["build", "--locked", path_str(&self.recipe)];
        full.extend_from_slice(args);
        stevedore(&self.cache, &full)
    }

    /// Every layer key this worker's cache holds a record for.
    fn layer_keys(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.cache.join("layers"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".json").map(|h| format!("sha256:{h}"))
            })
            .collect()
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "stdout is only the digest: {text}");
    text.trim().to_string()
}

/// The upload sessions the registry log shows after byte `from` of it.
fn uploads_since(reg: &TestRegistry, from: usize) -> usize {
    reg.log()[from..]
        .lines()
        .filter(|l| l.contains("POST") && l.contains("/blobs/uploads/"))
        .count()
}

/// The fleet-v1 tags under `repo` (through stevedore's own tag listing).
fn fleet_tags(reg: &TestRegistry, repo: &str) -> Vec<String> {
    let registry = stevedore::registry::BlockingRegistry::new(Default::default()).unwrap();
    registry
        .list_tags(&reg.reference(repo), "fleet-v1-", 1000)
        .unwrap()
}

/// The layer keys the fleet cache under `repo` lists (read as a worker reads it).
fn listed_keys(reg: &TestRegistry, repo: &str) -> BTreeSet<String> {
    let registry = stevedore::registry::BlockingRegistry::new(Default::default()).unwrap();
    let t = tempdir();
    let cache = stevedore::cache::Cache::open(t.path()).unwrap();
    stevedore::fleet::remote::read(
        &registry,
        &[reg.reference(repo)],
        &cache,
        stevedore::fleet::now(),
    )
    .unwrap()
    .keys()
    .map(ToString::to_string)
    .collect()
}

fn apt_project(server: &Server) -> Project {
    let recipe = format!(
        "[image]\nname = \"localhost/fleet\"\ntags = [\"v1\"]\n\n[[sources]]\nmirrors = [\"{}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"big\", \"small\"]\n\n[[layers]]\nname = \"static\"\nfiles = [{{ src = \"static\", dest = \"/srv/static\" }}]\n\n[[layers]]\nname = \"app\"\nfiles = [{{ src = \"app\", dest = \"/srv/app\" }}]\n",
        server.url(),
        fixtures().join("test-keyring.gpg").display()
    );
    let p = Project::new(&[
        ("image.toml", recipe),
        ("static/index.html", "<h1>hello</h1>\n".into()),
        ("app/App.class", "class v1\n".into()),
    ]);
    p.lock();
    p
}

/// A signed repository of two packages on loopback (the repository stays while it lives).
fn apt_repo() -> (apt_support::Repo, Server) {
    apt_support::require_tool("gpg", "gnupg");
    let mut big = TestDeb::new("big", "1.0");
    big.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/share/"),
        Item::Dir("./usr/share/big/"),
        Item::File(
            "./usr/share/big/data",
            (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect(),
            0o644,
        ),
    ];
    let repo = build_repo(&RepoSpec::new(vec![big, TestDeb::new("small", "1.0")]));
    let server = Server::serve(repo.root());
    (repo, server)
}

/// Worker A builds and publishes; worker B (another clone, empty cache) builds the same commit
/// from the fleet cache: same digest, no package fetched, no layer compressed (its cache holds
/// no layer blob), nothing uploaded. After a commit changing one file, B uploads exactly the
/// changed layer and the config (and puts the manifest).
#[test]
fn a_fresh_worker_builds_from_the_fleet_cache_without_fetching_or_uploading() {
    let reg = TestRegistry::start(Auth::None);
    let (_repo, server) = apt_repo();
    let project = apt_project(&server);
    let cache_ref = format!("{}/ci/cache", reg.host());
    let target = format!("{}/team/app:v1", reg.host());

    let a = project.worker("a");
    let out = a.build(&["--cache-to", &cache_ref, "--push", &target]);
    let digest_a = ok(&out);
    assert_eq!(
        fleet_tags(&reg, "ci/cache").len(),
        1,
        "A published: {}",
        stderr(&out)
    );

    let b = project.worker("b");
    let debs_before = server.requests_for(".deb").len();
    let log_before = reg.log().len();
    let out = b.build(&["--cache-from", &cache_ref, "--push", &target]);
    assert_eq!(
        ok(&out),
        digest_a,
        "same commit, same image: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert_eq!(
        server.requests_for(".deb").len(),
        debs_before,
        "no .deb fetched: {err}"
    );
    assert!(!b.cache.join("debs-unpacked").exists(), "nothing unpacked");
    assert!(
        err.contains("image is up to date (3 layers cached)"),
        "{err}"
    );
    assert!(err.contains("0 uploaded"), "{err}");
    assert_eq!(uploads_since(&reg, log_before), 0, "no blob upload from B");
    // No layer was compressed (or downloaded): B's cache holds none of the image's layers.
    let manifest = reg.skopeo_inspect("team/app:v1");
    for layer in manifest["Layers"].as_array().unwrap() {
        let hex = layer.as_str().unwrap().trim_start_matches("sha256:");
        assert!(
            !b.cache.join("blobs/sha256").join(hex).exists(),
            "layer {hex} is in B's cache"
        );
    }
    // B's keys are A's: nothing of the folder, user or clock is in a key.
    let listed = listed_keys(&reg, "ci/cache");
    assert!(a.layer_keys().is_subset(&listed), "A's keys are listed");

    project.commit_change("app/App.class", "class v2\n");
    git(&b.src, &["pull", "-q", "--ff-only"]);
    let log_before = reg.log().len();
    let out = b.build(&["--cache-from", &cache_ref, "--push", &target]);
    let digest_b = ok(&out);
    let err = stderr(&out);
    assert_ne!(digest_b, digest_a);
    assert!(err.contains("built 1 of 3 layers"), "{err}");
    assert!(
        err.contains("2 uploaded"),
        "the app layer and the config: {err}"
    );
    assert_eq!(uploads_since(&reg, log_before), 2, "{err}");
    assert_eq!(
        server.requests_for(".deb").len(),
        debs_before,
        "still no .deb: {err}"
    );
}

/// Eight workers publishing different layers to one cache at the same time: the cache lists
/// every key each of them built.
#[test]
fn eight_concurrent_writers_leave_every_key_listed() {
    let reg = TestRegistry::start(Auth::None);
    let cache_ref = format!("{}/ci/cache8", reg.host());
    let projects: Vec<Project> = (0..8)
        .map(|i| {
            Project::new(&[
                (
                    "image.toml",
                    "[[layers]]\nname = \"shared\"\nfiles = [{ src = \"shared\", dest = \"/shared\" }]\n\n[[layers]]\nname = \"own\"\nfiles = [{ src = \"own\", dest = \"/own\" }]\n".into(),
                ),
                ("shared/s.txt", "same for all\n".into()),
                ("own/o.txt", format!("worker {i}\n")),
            ])
        })
        .collect();
    let workers: Vec<Worker> = projects.iter().map(|p| p.worker("w")).collect();
    let children: Vec<_> = workers
        .iter()
        .map(|w| {
            Command::new(BIN)
                .arg("--cache-dir")
                .arg(&w.cache)
                .args(["build", path_str(&w.recipe), "--cache-to", &cache_ref])
                .env_remove("SOURCE_DATE_EPOCH")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        ok(&out);
    }
    let listed = listed_keys(&reg, "ci/cache8");
    let mut all = BTreeSet::new();
    for w in &workers {
        let keys = w.layer_keys();
        assert_eq!(keys.len(), 2);
        assert!(keys.is_subset(&listed), "{keys:?} not all in {listed:?}");
        all.extend(keys);
    }
    assert_eq!(all.len(), 9, "one shared key and eight own ones");
    assert_eq!(
        fleet_tags(&reg, "ci/cache8").len(),
        8,
        "one artifact per writer"
    );
}

/// An entry whose blob is not its diff_id's layer (here: another layer's blob, published later
/// by someone with push rights to the cache) is detected when a local output needs the bytes,
/// the layer is built locally, and the image pushed is the true one. `--cache-from` alone never
/// writes to the cache.
#[test]
fn a_tampered_entry_is_detected_rebuilt_and_never_pushed_and_reads_never_write() {
    use stevedore::fleet::index;
    let reg = TestRegistry::start(Auth::None);
    let project = Project::new(&[
        (
            "image.toml",
            "[[layers]]\nname = \"one\"\nfiles = [{ src = \"one\", dest = \"/one\" }]\n\n[[layers]]\nname = \"two\"\nfiles = [{ src = \"two\", dest = \"/two\" }]\n".into(),
        ),
        // Sizes far apart, so the test tells the entries apart by size.
        ("one/1.txt", (0..100).map(|i| format!("{i}\n")).collect()),
        ("two/2.txt", (0..50_000).map(|i| format!("{}\n", i * 7919 % 100_003)).collect()),
    ]);
    let cache_ref = format!("{}/ci/cache", reg.host());
    let target = format!("{}/team/t:v1", reg.host());
    let a = project.worker("a");
    let digest_a = ok(&a.build(&["--cache-to", &cache_ref]));

    // The tamper: entry "two" now names layer "one"'s blob (valid gzip, wrong diff_id).
    let registry = stevedore::registry::BlockingRegistry::new(Default::default()).unwrap();
    let scratch = tempdir();
    let cache = stevedore::cache::Cache::open(scratch.path()).unwrap();
    let now = stevedore::fleet::now();
    let found =
        stevedore::fleet::remote::read(&registry, &[reg.reference("ci/cache")], &cache, now)
            .unwrap();
    assert_eq!(found.len(), 2);
    let mut entries: Vec<index::Entry> = found.values().map(|f| f.entry.clone()).collect();
    entries.sort_by_key(|e| e.size);
    let (one, two) = (entries[0].clone(), entries[1].clone());
    let mut bad = two.clone();
    bad.digest = one.digest.clone();
    bad.size = one.size;
    bad.published = now + 60;
    push_document(&registry, &reg, &cache, vec![bad.clone(), one], now + 60);

    let tags_before = fleet_tags(&reg, "ci/cache");
    let b = project.worker("b");
    let layout = b.src.join("out");
    let out = b.build(&[
        "--cache-from",
        &cache_ref,
        "-o",
        &format!("oci:{}", layout.display()),
        "--push",
        &target,
    ]);
    let digest_b = ok(&out);
    let err = stderr(&out);
    assert!(err.contains("is corrupt"), "{err}");
    assert_eq!(
        digest_b, digest_a,
        "the true image, not the tampered one: {err}"
    );
    assert!(err.contains("built 1 of 2 layers"), "{err}");
    assert_eq!(
        reg.skopeo_inspect("team/t:v1")["Digest"].as_str(),
        Some(digest_a.as_str())
    );
    assert!(
        b.cache
            .join("blobs/sha256")
            .join(two.digest.hex())
            .is_file(),
        "the rebuilt layer is the true one"
    );
    assert_eq!(
        fleet_tags(&reg, "ci/cache"),
        tags_before,
        "--cache-from never writes"
    );
}

/// Publishes an index document of `entries` as a fleet cache artifact written at `at`.
fn push_document(
    registry: &stevedore::registry::BlockingRegistry,
    reg: &TestRegistry,
    cache: &stevedore::cache::Cache,
    entries: Vec<stevedore::fleet::index::Entry>,
    at: u64,
) {
    use stevedore::fleet::index;
    use stevedore::oci::{Descriptor, Manifest, MediaType};
    use stevedore::registry::{BlobRef, ImageToPush, RawManifest};
    let doc = index::IndexDoc {
        format: index::FORMAT.into(),
        layer_format: stevedore::plan::LAYER_FORMAT_VERSION.into(),
        stevedore: "test".into(),
        created: at,
        entries,
    };
    let bytes = serde_json::to_vec(&doc).unwrap();
    let d = cache.put_bytes(&bytes).unwrap();
    let empty = cache.put_bytes(b"{}").unwrap();
    let mut m = Manifest::new(
        MediaType::OCI_MANIFEST,
        Descriptor::new(MediaType::OCI_EMPTY, empty.clone(), 2),
        vec![Descriptor::new(
            MediaType::from(index::INDEX_MEDIA_TYPE),
            d.clone(),
            bytes.len() as u64,
        )],
    );
    m.artifact_type = Some(MediaType::from(index::ARTIFACT_TYPE));
    let blob = |digest: &stevedore::digest::Digest, size: u64, t: &str| BlobRef {
        digest: digest.clone(),
        size,
        media_type: t.into(),
        path: cache.blob_path(digest),
    };
    let image = ImageToPush::new(
        RawManifest {
            bytes: m.to_canonical_json(),
            media_type: stevedore::oci::names::OCI_MANIFEST.into(),
        },
        vec![
            blob(&d, bytes.len() as u64, index::INDEX_MEDIA_TYPE),
            blob(&empty, 2, stevedore::oci::names::OCI_EMPTY),
        ],
    );
    let target = reg
        .reference("ci/cache")
        .with_tag(&index::tag_for(at, &d))
        .unwrap();
    registry.push_image(&target, &image).unwrap();
}

/// The proof on the flagship, from the real mirrors: a worker with an empty cache builds
/// `recipes/webapp.toml` (locked, as committed) from the cache another worker published, and
/// pushes it: A's digest, no package index or .deb fetched, no layer compressed, no upload.
#[test]
fn webapp_from_the_fleet_cache_fetches_and_uploads_nothing() {
    let reg = TestRegistry::start(Auth::None);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["recipes", "keyrings", "fixtures/war"] {
        for entry in walk(&repo.join(dir)) {
            let rel = entry
                .strip_prefix(repo)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            files.push((rel, std::fs::read(&entry).unwrap()));
        }
    }
    let project = Project::new_bytes(&files, "recipes/webapp.toml");
    // The publishing worker and the lock may start warm (see common::warm_cache); the proof is
    // about worker B, whose cache stays empty.
    warm_cache(&["webapp.toml"], &project.t.path().join("lock-cache"));
    project.lock();
    let cache_ref = format!("{}/ci/webapp-cache", reg.host());
    let target = format!("{}/team/webapp:latest", reg.host());

    let a = project.worker("a");
    warm_cache(&["webapp.toml"], &a.cache);
    let digest_a = ok(&a.build(&["--cache-to", &cache_ref, "--push", &target]));
    let b = project.worker("b");
    let log_before = reg.log().len();
    let out = b.build(&["--cache-from", &cache_ref, "--push", &target]);
    let err = stderr(&out);
    assert_eq!(ok(&out), digest_a, "{err}");
    assert!(err.contains("image is up to date"), "{err}");
    assert!(err.contains("0 uploaded"), "{err}");
    assert_eq!(uploads_since(&reg, log_before), 0, "{err}");
    let apt_files = walk(&b.cache.join("apt")).len();
    assert_eq!(apt_files, 0, "B fetched nothing from the mirrors: {err}");
    assert!(!b.cache.join("debs-unpacked").exists());
    let manifest = reg.skopeo_inspect("team/webapp:latest");
    for layer in manifest["Layers"].as_array().unwrap() {
        let hex = layer.as_str().unwrap().trim_start_matches("sha256:");
        assert!(!b.cache.join("blobs/sha256").join(hex).exists(), "{hex}");
    }
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
