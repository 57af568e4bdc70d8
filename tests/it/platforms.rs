//! Multi-platform images (issue 15 part 1): `[image] platforms` and `--platform` build one
//! image per platform and an image index over them.
//!
//! Fast tests use file-only recipes (no apt) or a generated two-architecture repository; ONE
//! end-to-end test builds `recipes/webapp.toml` for linux/amd64 and linux/arm64 from
//! deb.debian.org, once for the module ([`webapp_build`]), in the cache [`e2e_cache_dir`] names.

use crate::apt_support;
use crate::common;
use crate::registry_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use apt_support::{Item, RepoSpec, Server, TestDeb, build_repo, fixtures};
use common::*;
use registry_support::{Auth, TestRegistry};
use serde_json::Value;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A blob of an OCI layout, parsed as JSON.
fn blob_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The layout's only tagged entry.
fn top_entry(layout: &Path) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{index}");
    entries[0].clone()
}

/// Each platform (`os/arch`) of the index `digest` in `layout`, with its manifest.
fn platform_manifests(layout: &Path, digest: &str) -> BTreeMap<String, (String, Value)> {
    let index = blob_json(layout, digest);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let name = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            let d = m["digest"].as_str().unwrap().to_string();
            (name, (d.clone(), blob_json(layout, &d)))
        })
        .collect()
}

/// A file-only recipe: no apt, so the fast tests need no network.
fn files_project(dir: &Path, image: &str) -> PathBuf {
    write(&dir.join("app/hello.txt"), "hello\n");
    write(&dir.join("app/bin/run.sh"), "#!/bin/sh\necho hi\n");
    let recipe = dir.join("multi.toml");
    write(
        &recipe,
        format!(
            "[image]\nname = \"test/multi\"\n{image}\n\n[config]\ncmd = [\"/app/bin/run.sh\"]\n\n[[layers]]\nname = \"app\"\nfiles = [{{ src = \"app/\", dest = \"/app/\" }}]\n"
        ),
    );
    recipe
}

const TWO: &str = "platforms = [\"linux/amd64\", \"linux/arm64\"]";

/// Runs `stevedore ARGS` and expects exit `code` and every `needles` on stderr.
fn fails_with(cache: &Path, args: &[&str], code: i32, needles: &[&str]) {
    let out = stevedore(cache, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
}

#[test]
fn platform_errors_name_the_recipe_line_or_the_flag() {
    let t = tempdir();
    let cache = t.path().join("cache");
    let d = t.path();
    let case = |name: &str, image: &str| {
        let dir = d.join(name);
        let recipe = files_project(&dir, image);
        recipe.display().to_string()
    };
    let both = case(
        "both",
        "platform = \"linux/amd64\"\nplatforms = [\"linux/arm64\"]",
    );
    fails_with(
        &cache,
        &["plan", &both],
        3,
        &["multi.toml:4:", "both given", "help:"],
    );
    let twice = case("twice", "platforms = [\"linux/amd64\", \"linux/x86_64\"]");
    fails_with(
        &cache,
        &["plan", &twice],
        3,
        &["multi.toml:3:", "listed twice", "help:"],
    );
    let unknown = case(
        "unknown",
        "platforms = [\"linux/arm64\", \"linux/sparc64\"]",
    );
    fails_with(
        &cache,
        &["plan", &unknown],
        3,
        &[
            "multi.toml:3:",
            "linux/sparc64",
            "help:",
            "linux/arm/v7 (armhf)",
        ],
    );
    let empty = case("empty", "platforms = []");
    fails_with(&cache, &["plan", &empty], 3, &["is empty", "help:"]);

    // A base recipe that names its platforms must cover the child's; one that names none
    // follows the child.
    write(
        &d.join("base/amd.toml"),
        "[image]\nplatform = \"linux/amd64\"\n",
    );
    write(&d.join("base/any.toml"), "[image]\n");
    let child = |name: &str, from: &str| {
        let recipe = d.join("base").join(format!("{name}.toml"));
        write(&d.join("base/app/x"), "x\n");
        write(
            &recipe,
            format!(
                "from = \"{from}\"\n[image]\n{TWO}\n\n[[layers]]\nname = \"app\"\nfiles = [{{ src = \"app/\", dest = \"/app/\" }}]\n"
            ),
        );
        recipe.display().to_string()
    };
    let narrow = child("narrow", "amd.toml");
    fails_with(
        &cache,
        &["plan", &narrow],
        3,
        &[
            "narrow.toml:3:",
            "linux/arm64 is not built by the base recipe",
            "help:",
        ],
    );
    let follows = child("follows", "any.toml");
    let out = stevedore(&cache, &["plan", &follows]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("== linux/arm64 =="),
        "{}",
        stdout(&out)
    );

    // --platform: checked like the recipe's list, against the same bases.
    let single = d.join("base/single.toml");
    write(
        &single,
        "from = \"amd.toml\"\n[[layers]]\nname = \"app\"\nfiles = [{ src = \"app/\", dest = \"/app/\" }]\n",
    );
    let single = single.display().to_string();
    fails_with(
        &cache,
        &["build", &single, "--platform", "linux/arm64"],
        3,
        &[
            "--platform linux/arm64",
            "amd.toml",
            "builds only linux/amd64",
        ],
    );
    fails_with(
        &cache,
        &["build", &single, "--platform", "linux/sparc64"],
        2,
        &["no Debian architecture builds platform linux/sparc64"],
    );
    fails_with(
        &cache,
        &["build", &single, "--platform", "linux/amd64,linux/x86_64"],
        3,
        &["given twice"],
    );
}

#[test]
fn two_platforms_make_an_index_of_identical_file_layers() {
    let t = tempdir();
    let recipe = files_project(t.path(), TWO);
    let recipe_s = recipe.display().to_string();
    let cache = t.path().join("cache");
    let layout = t.path().join("out");
    let meta = t.path().join("meta.json");
    let digest = build_ok(
        &cache,
        &[
            &recipe_s,
            "--output",
            &format!("oci:{}:v1", layout.display()),
            "--metadata-file",
            path_str(&meta),
        ],
    );

    // The layout's tag names the index, whose entries carry their platforms.
    let top = top_entry(&layout);
    assert_eq!(top["mediaType"], INDEX, "{top}");
    assert_eq!(top["digest"], digest.as_str());
    assert_eq!(
        top["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let images = platform_manifests(&layout, &digest);
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    let mut app_layers = Vec::new();
    for (platform, (_, manifest)) in &images {
        let config = blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(
            format!(
                "{}/{}",
                config["os"].as_str().unwrap(),
                config["architecture"].as_str().unwrap()
            ),
            *platform
        );
        app_layers.push(manifest["layers"][0]["digest"].clone());
    }
    assert_eq!(
        app_layers[0], app_layers[1],
        "the file layer is the same bytes on both"
    );

    // skopeo reads the index and picks each platform.
    require_tool("skopeo", "skopeo");
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:v1", layout.display())));
    let raw: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2, "{raw}");
    let arm = run(Command::new("skopeo")
        .args(["--override-arch", "arm64", "inspect", "--config"])
        .arg(format!("oci:{}:v1", layout.display())));
    let arm: Value = serde_json::from_slice(&arm.stdout).unwrap();
    assert_eq!(arm["architecture"], "arm64");

    // The metadata file describes the index and each platform.
    let doc: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(doc["containerimage.digest"], digest.as_str());
    assert_eq!(doc["containerimage.descriptor"]["mediaType"], INDEX);
    assert_eq!(doc["stevedore.platforms"].as_array().unwrap().len(), 2);
    validate_schema("metadata", &meta);

    // inspect shows the index and its entries (text and JSON, the JSON as its schema says);
    // plan --format json has every platform's plan.
    let out = stevedore(
        &cache,
        &["inspect", &format!("oci:{}:v1", layout.display())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("index:    {digest}"))
            && stdout(&out).contains("linux/arm64"),
        "{}",
        stdout(&out)
    );
    let out = stevedore(
        &cache,
        &[
            "inspect",
            "--format",
            "json",
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["index"]["digest"], digest.as_str());
    assert_eq!(inspected["index"]["manifests"].as_array().unwrap().len(), 2);
    let inspect_file = t.path().join("inspect.json");
    std::fs::write(&inspect_file, &out.stdout).unwrap();
    validate_schema("inspect", &inspect_file);
    let out = stevedore(&cache, &["plan", "--format", "json", &recipe_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let platforms: Vec<&str> = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["image"]["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let plan_file = t.path().join("plan.json");
    std::fs::write(&plan_file, &out.stdout).unwrap();
    validate_schema("plan", &plan_file);

    // Same inputs, fresh cache: the same index. One platform alone is the same image as the
    // index's entry for it, made by the one-platform path (its digest on stdout).
    let again = build_ok(&t.path().join("cache2"), &[&recipe_s]);
    assert_eq!(again, digest);
    let arm_only = build_ok(&cache, &[&recipe_s, "--platform", "linux/arm64"]);
    assert_eq!(arm_only, images["linux/arm64"].0);

    // A docker archive holds one image: refused before building, naming the platforms.
    let tar = t.path().join("img.tar");
    let tar_target = format!("docker-archive:{}", tar.display());
    fails_with(
        &cache,
        &["build", &recipe_s, "--output", &tar_target],
        3,
        &["linux/amd64, linux/arm64", "--platform"],
    );
    assert!(!tar.exists(), "nothing written");
    let one = build_ok(
        &cache,
        &[
            &recipe_s,
            "--platform",
            "linux/arm64",
            "--output",
            &tar_target,
        ],
    );
    assert_eq!(one, images["linux/arm64"].0);
    assert!(tar.is_file());

    // verify --platform compares the rebuild with that platform's image in the layout.
    let out = stevedore(
        &cache,
        &[
            "verify",
            &recipe_s,
            "--platform",
            "linux/arm64",
            "--against",
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&images["linux/arm64"].0),
        "{}",
        stdout(&out)
    );
}

/// `schemas/NAME.schema.json` accepts the document in `file` (check-jsonschema).
fn validate_schema(name: &str, file: &Path) {
    require_tool(
        "check-jsonschema",
        "python3-pip && pip3 install check-jsonschema",
    );
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{name}.schema.json"));
    run(Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema)
        .arg(file));
}

/// A shell package per architecture and an `Architecture: all` data package.
fn two_arch_debs() -> Vec<TestDeb> {
    let shell = |arch: &str| {
        let mut d = TestDeb::new("base-sh", "1.0")
            .arch(arch)
            .field("Essential", "yes")
            .field("Priority", "required");
        d.items = vec![
            Item::Dir("./"),
            Item::Dir("./bin/"),
            Item::File("./bin/sh", format!("#!shell {arch}\n").into_bytes(), 0o755),
        ];
        d
    };
    vec![
        shell("amd64"),
        shell("arm64"),
        TestDeb::new("data", "2.0").arch("all"),
    ]
}

#[test]
fn the_lockfile_pins_each_platform_and_builds_locked() {
    require_tool("gpg", "gnupg");
    let repo = build_repo(&RepoSpec::new(two_arch_debs()));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let cache = t.path().join("cache");
    let recipe = t.path().join("image.toml");
    let body = |image: &str| {
        format!(
            "[image]\nname = \"localhost/pkgs\"\n{image}\n\n[[sources]]\nmirrors = [\"{}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"base\"\nminbase = true\n\n[[layers]]\nname = \"app\"\npackages = [\"data\"]\n",
            server.url(),
            fixtures().join("test-keyring.gpg").display()
        )
    };
    let lock_path = t.path().join("image.lock");

    // One platform: today's format, no platform entries.
    write(&recipe, body("platform = \"linux/amd64\""));
    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let single = std::fs::read_to_string(&lock_path).unwrap();
    assert!(!single.contains("platform"), "{single}");
    assert!(
        single.starts_with("# Generated by `stevedore lock`; do not edit.\nversion = 1\ninputs = "),
        "{single}"
    );

    // Two: one entry per platform, each with its own architecture's packages; the `all`
    // package is the same file for both.
    write(&recipe, body(TWO));
    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let multi = std::fs::read_to_string(&lock_path).unwrap();
    let doc: toml::Value = toml::from_str(&multi).unwrap();
    let entries = doc["platforms"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{multi}");
    let mut data_urls = Vec::new();
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        assert_eq!(entry["platform"].as_str().unwrap(), format!("linux/{arch}"));
        let packages: Vec<&toml::Value> = entry["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["packages"].as_array().unwrap())
            .collect();
        let shell = packages
            .iter()
            .find(|p| p["name"].as_str() == Some("base-sh"))
            .unwrap();
        assert_eq!(shell["architecture"].as_str(), Some(arch), "{multi}");
        let data = packages
            .iter()
            .find(|p| p["name"].as_str() == Some("data"))
            .unwrap();
        assert_eq!(data["architecture"].as_str(), Some("all"));
        data_urls.push(data["url"].as_str().unwrap().to_string());
    }
    assert_eq!(data_urls[0], data_urls[1]);
    assert_ne!(
        entries[0]["inputs"], entries[1]["inputs"],
        "the architecture is an input"
    );

    // --locked builds both from the lockfile; each image holds its architecture's shell.
    let layout = t.path().join("out");
    let digest = build_ok(
        &cache,
        &[
            "--locked",
            path_str(&recipe),
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    );
    for (platform, (_, manifest)) in platform_manifests(&layout, &digest) {
        let arch = platform.trim_start_matches("linux/");
        let layer = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        // Merged /usr: the package's /bin/sh is usr/bin/sh in the layer.
        let sh = layer_file(&layout, &layer, "usr/bin/sh");
        assert_eq!(sh, format!("#!shell {arch}\n"), "{platform}");
    }
    // A lockfile without a platform the build asks for is stale: --locked refuses.
    fails_with(
        &cache,
        &[
            "build",
            "--locked",
            path_str(&recipe),
            "--platform",
            "linux/s390x",
        ],
        3,
        &["image.lock"],
    );
}

/// The text of `path` in a gzip layer of the layout.
fn layer_file(layout: &Path, digest: &str, path: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let f = std::fs::File::open(layout.join("blobs/sha256").join(hex)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == path && entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return text;
        }
    }
    panic!("{path} not in layer {digest}");
}

// ---------------------------------------------------------------------------------------------
// End to end: recipes/webapp.toml for linux/amd64 and linux/arm64 from deb.debian.org.

/// The cache the end-to-end build uses: a copy of the suite's warm webapp cache (the amd64 half
/// is built there once for every test module; see `common::warm_cache`), in a fixture folder
/// because a static is never dropped.
fn e2e_cache_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cache = fixture_dir("platforms-e2e").join("cache");
        warm_cache(&["webapp.toml"], &cache);
        cache
    })
    .clone()
}

/// The two-platform webapp, built once for the module's tests.
struct Webapp {
    recipe: PathBuf,
    layout: PathBuf,
    digest: String,
    metadata: PathBuf,
}

fn webapp_build() -> &'static Webapp {
    static BUILT: OnceLock<Webapp> = OnceLock::new();
    BUILT.get_or_init(|| {
        // A fixture folder: a static is never dropped, so a temp dir would stay.
        let dir = fixture_dir("platforms-webapp");
        let t = dir.as_path();
        // The repository's recipes as they are, with `platforms` added to the top one.
        for name in [
            "debian-bookworm.toml",
            "openjdk.toml",
            "tomcat.toml",
            "webapp.toml",
        ] {
            recipe_copy_into(t, name);
        }
        // The WAR, copied: file sources must be inside the recipe's context.
        let war = "fixtures/war/jakarta/hello-jakarta.war";
        std::fs::create_dir_all(t.join(war).parent().unwrap()).unwrap();
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(war), t.join(war)).unwrap();
        let recipe = t.join("recipes/webapp.toml");
        let text = std::fs::read_to_string(&recipe).unwrap();
        let text = text.replace("[image]\n", &format!("[image]\n{TWO}\n"));
        std::fs::write(&recipe, text).unwrap();
        let layout = t.join("out");
        let metadata = t.join("meta.json");
        let digest = build_ok(
            &e2e_cache_dir(),
            &[
                path_str(&recipe),
                "--output",
                &format!("oci:{}", layout.display()),
                "--metadata-file",
                path_str(&metadata),
            ],
        );
        Webapp {
            recipe,
            layout,
            digest,
            metadata,
        }
    })
}

/// A copy of one of the repository's recipes in `t/recipes` (keyrings beside it).
fn recipe_copy_into(t: &Path, name: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(t.join("recipes")).unwrap();
    if !t.join("keyrings").exists() {
        std::os::unix::fs::symlink(repo.join("keyrings"), t.join("keyrings")).unwrap();
    }
    std::fs::copy(
        repo.join("recipes").join(name),
        t.join("recipes").join(name),
    )
    .unwrap();
}

/// The image's layers unpacked in order into `root` (a fresh build has no whiteouts).
fn unpack(layout: &Path, manifest: &Value, root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        run(Command::new("tar")
            .arg("-xzf")
            .arg(layout.join("blobs/sha256").join(hex))
            .arg("-C")
            .arg(root)
            .arg("--no-same-owner"));
    }
}

/// Regular files under `root` whose ELF header says x86-64.
fn x86_64_elf_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let mut head = [0u8; 64];
        let Ok(mut f) = std::fs::File::open(entry.path()) else {
            continue;
        };
        if f.read_exact(&mut head).is_err() || &head[..4] != b"\x7fELF" {
            continue;
        }
        if let Ok(h) = goblin::elf::Elf::parse_header(&head)
            && h.e_machine == goblin::elf::header::EM_X86_64
        {
            found.push(entry.path().to_path_buf());
        }
    }
    found
}

#[test]
fn webapp_for_amd64_and_arm64_from_the_real_mirror() {
    require_tool("qemu-aarch64-static", "qemu-user-static");
    require_tool("skopeo", "skopeo");
    let w = webapp_build();
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", w.layout.display())));
    let raw: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(raw["mediaType"], INDEX, "{raw}");
    let images = platform_manifests(&w.layout, &w.digest);
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    for (platform, (_, manifest)) in &images {
        let config = blob_json(&w.layout, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(
            format!("linux/{}", config["architecture"].as_str().unwrap()),
            *platform
        );
    }
    // The WAR's file layer (the top one) is the same blob on both platforms.
    let top = |p: &str| images[p].1["layers"].as_array().unwrap().last().unwrap()["digest"].clone();
    assert_eq!(top("linux/amd64"), top("linux/arm64"));

    let t = tempdir();
    let root = t.path().join("arm64");
    unpack(&w.layout, &images["linux/arm64"].1, &root);
    let x86 = x86_64_elf_files(&root);
    assert!(
        x86.is_empty(),
        "x86-64 ELF files in the arm64 image: {x86:?}"
    );
    let java = std::fs::read_link(root.join("etc/alternatives/java")).unwrap();
    assert_eq!(
        java,
        Path::new("/usr/lib/jvm/java-17-openjdk-arm64/bin/java")
    );
    let out = Command::new("qemu-aarch64-static")
        .arg("-L")
        .arg(&root)
        .arg(root.join("usr/lib/jvm/java-17-openjdk-arm64/bin/java"))
        .arg("-version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("openjdk version \"17"),
        "{text}"
    );

    // A rebuild gives the same index.
    let again = build_ok(&e2e_cache_dir(), &[path_str(&w.recipe)]);
    assert_eq!(again, w.digest);
    let meta: Value = serde_json::from_slice(&std::fs::read(&w.metadata).unwrap()).unwrap();
    assert_eq!(meta["containerimage.digest"], w.digest.as_str());
}

#[test]
fn webapp_index_pushes_shared_layers_once_and_round_trips() {
    require_tool("skopeo", "skopeo");
    let w = webapp_build();
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    let meta = t.path().join("push.json");
    let target = format!("{}/webapp:multi", reg.host());
    let pushed = build_ok(
        &e2e_cache_dir(),
        &[
            path_str(&w.recipe),
            "--push",
            &target,
            "--metadata-file",
            path_str(&meta),
        ],
    );
    assert_eq!(pushed, w.digest);
    let doc: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let blobs = doc["stevedore.push"]["blobs"].as_array().unwrap();
    let images = platform_manifests(&w.layout, &w.digest);
    let mut per_image = 0;
    let mut all: Vec<String> = Vec::new();
    for (_, manifest) in images.values() {
        for l in manifest["layers"].as_array().unwrap() {
            per_image += 1;
            all.push(l["digest"].as_str().unwrap().to_string());
        }
    }
    all.sort();
    all.dedup();
    assert!(all.len() < per_image, "the platforms share layers");
    for digest in &all {
        let times = blobs
            .iter()
            .filter(|b| b["digest"] == digest.as_str())
            .count();
        assert_eq!(times, 1, "{digest} went up {times} times: {doc}");
    }
    validate_schema("metadata", &meta);

    let raw: Value = serde_json::from_slice(&reg.skopeo_raw("webapp:multi")).unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2, "{raw}");
    let copy = t.path().join("copy");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}:copied", copy.display())));
    assert_eq!(top_entry(&copy)["digest"], w.digest.as_str());

    // `push oci:DIR` of the index layout: the same index under another name.
    let out = stevedore(
        &e2e_cache_dir(),
        &[
            "push",
            &format!("oci:{}:latest", w.layout.display()),
            &format!("{}/webapp:from-layout", reg.host()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), w.digest);
    assert!(reg.skopeo_has("webapp:from-layout"));
}
