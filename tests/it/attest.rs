//! Supply chain (issue 16): provenance and cosign signatures attached as OCI 1.1 referrers to a
//! pushed image (Debian's `docker-registry` has no referrers API, so the `sha256-<hex>` fallback
//! tag is exercised) and to an OCI layout; skopeo reads what the registry holds and openssl
//! verifies the signature; `verify --provenance` from a fresh clone.
//!
//! One story in one test: the build with a package layer is the slow part, and every check
//! below needs it (a lock, a pushed and signed image, a git repository to clone).

use crate::apt_support;
use crate::common;
use crate::registry_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use apt_support::{Item, RepoSpec, Server, TestDeb, build_repo, fixtures};
use common::*;
use registry_support::{Auth, TestRegistry};

const IN_TOTO: &str = "application/vnd.in-toto+json";
const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const COSIGN_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

fn debs() -> Vec<TestDeb> {
    let mut hello = TestDeb::new("hello", "2.10-3");
    hello.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/bin/"),
        Item::File("./usr/bin/hello", b"hello\n".to_vec(), 0o755),
    ];
    let mut greet = TestDeb::new("greet", "1.0");
    greet.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/share/"),
        Item::File("./usr/share/greet", b"hi\n".to_vec(), 0o644),
    ];
    vec![hello, greet]
}

/// A git repository with a recipe (a package layer from the loopback mirror, a file layer),
/// locked and committed.
fn project(dir: &Path, mirror: &str) -> PathBuf {
    let recipe = dir.join("app.toml");
    write(&dir.join("site/index.html"), "<h1>hi</h1>\n");
    write(
        &recipe,
        format!(
            "[image]\nname = \"localhost/attest\"\n\n[[sources]]\nmirrors = [\"{mirror}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"hello\", \"greet\"]\n\n[[layers]]\nname = \"site\"\nfiles = [{{ src = \"site\", dest = \"/srv\" }}]\n",
            fixtures().join("test-keyring.gpg").display()
        ),
    );
    git(dir, &["init", "-q", "-b", "main"]);
    let out = stevedore(&dir.join(".cache"), &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    write(&dir.join(".gitignore"), ".cache/\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "app"]);
    // The work tree and its later clones share one origin, as a CI checkout and a developer's
    // do (it is the image's source label).
    let bare = dir.with_extension("git");
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(dir)
        .arg(&bare));
    git(dir, &["remote", "add", "origin", path_str(&bare)]);
    recipe
}

/// An ECDSA P-256 key pair as the docs say to make one; returns (private PEM, public PEM).
fn key_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("sign.key");
    let public = dir.join("sign.pub");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public));
    (key, public)
}

/// The body of a PEM key (what must never be printed).
fn key_body(pem: &Path) -> String {
    std::fs::read_to_string(pem)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn stevedore_in(dir: &Path, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("STEVEDORE_CACHE")
        .env_remove("STEVEDORE_SIGN_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stevedore")
}

/// Checks the cosign signature of `digest` the way containers/image's sigstore code does, with
/// openssl as the independent ECDSA verifier: the `.sig` tag (read with skopeo) holds a
/// simple-signing layer whose payload names this image and repository, and whose
/// `dev.cosignproject.cosign/signature` annotation verifies over the payload bytes with
/// `public`. (Debian's skopeo 1.9 is built with sigstore disabled — "Debian-local change:
/// sigstore disabled" — so its `sigstoreSigned` policy cannot be the judge here.)
fn signature_verifies(
    reg: &TestRegistry,
    dir: &Path,
    digest: &str,
    public: &Path,
) -> Result<(), String> {
    use base64::Engine as _;
    let hex = &digest["sha256:".len()..];
    let tag = format!("app:sha256-{hex}.sig");
    if !reg.skopeo_has(&tag) {
        return Err(format!("no {tag}"));
    }
    let copy = dir.join(format!("sig-{hex}"));
    let policy = dir.join("accept.json");
    write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    );
    run(Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{}/{tag}", reg.host()))
        .arg(format!("dir:{}", copy.display())));
    let manifest = json(&std::fs::read(copy.join("manifest.json")).unwrap());
    for layer in manifest["layers"].as_array().unwrap() {
        if layer["mediaType"] != "application/vnd.dev.cosign.simplesigning.v1+json" {
            continue;
        }
        let d = layer["digest"].as_str().unwrap();
        let payload_path = copy.join(&d["sha256:".len()..]);
        let payload = json(&std::fs::read(&payload_path).unwrap());
        let critical = &payload["critical"];
        if critical["image"]["docker-manifest-digest"] != digest
            || critical["identity"]["docker-reference"] != format!("{}/app", reg.host())
            || critical["type"] != "cosign container image signature"
        {
            continue;
        }
        let sig = base64::engine::general_purpose::STANDARD
            .decode(
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let sig_path = copy.join("sig.der");
        std::fs::write(&sig_path, sig).unwrap();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(public)
            .arg("-signature")
            .arg(&sig_path)
            .arg(&payload_path)
            .output()
            .unwrap();
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK") {
            return Ok(());
        }
    }
    Err(format!(
        "no layer of {tag} verifies for {digest}: {manifest}"
    ))
}

/// The referrers the fallback tag lists, read with skopeo; each artifact's manifest is read too
/// and must name the image as its subject. Returns (artifactType, manifest) pairs.
fn fallback_referrers(reg: &TestRegistry, digest: &str) -> Vec<(String, serde_json::Value)> {
    let hex = &digest["sha256:".len()..];
    let index = json(&reg.skopeo_raw(&format!("app:sha256-{hex}")));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let m = json(&reg.skopeo_raw(&format!("app@{}", entry["digest"].as_str().unwrap())));
            assert_eq!(m["subject"]["digest"], digest, "{m}");
            assert_eq!(entry["artifactType"], m["artifactType"], "{entry} vs {m}");
            (entry["artifactType"].as_str().unwrap().to_owned(), m)
        })
        .collect()
}

/// The provenance document attached in an OCI layout.
fn layout_provenance(layout: &Path, digest: &str) -> Vec<u8> {
    layout_document(layout, digest, IN_TOTO)
}

/// The document of the artifact of this type attached in an OCI layout.
fn layout_document(layout: &Path, digest: &str, artifact_type: &str) -> Vec<u8> {
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let blob =
        |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["artifactType"] == artifact_type)
        .unwrap_or_else(|| panic!("no {artifact_type} in {index}"));
    let m = json(&blob(entry["digest"].as_str().unwrap()));
    assert_eq!(m["subject"]["digest"], digest);
    blob(m["layers"][0]["digest"].as_str().unwrap())
}

#[test]
fn provenance_and_signatures_are_attached_checked_and_rebuilt() {
    require_tool("git", "git");
    require_tool("gpg", "gnupg");
    let repo = build_repo(&RepoSpec::new(debs()));
    let server = Server::serve(repo.root());
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let recipe = project(&src, &server.url());
    let (key, public) = key_pair(t.path());
    let secret = key_body(&key);
    let cache = t.path().join("cache");
    let layout = t.path().join("out");
    let target = format!("{}/app:v1", reg.host());

    let out = stevedore_in(
        &src,
        &cache,
        &[
            "build",
            path_str(&recipe),
            "--push",
            &target,
            "--provenance",
            "--sbom",
            "spdx,cyclonedx",
            "--sign-key",
            path_str(&key),
            "-o",
            &format!("oci:{}:v1", layout.display()),
        ],
        &[],
    );
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{e}");
    assert_eq!(o.lines().count(), 1, "stdout is the digest only: {o}");
    let digest = o.trim().to_owned();
    assert!(
        !o.contains(&secret) && !e.contains(&secret),
        "the key was printed"
    );

    // The fallback index lists the SBOMs, the provenance and the signature, each naming the
    // image.
    let referrers = fallback_referrers(&reg, &digest);
    let types: Vec<&str> = referrers.iter().map(|(t, _)| t.as_str()).collect();
    for wanted in [SPDX, CYCLONEDX, IN_TOTO, COSIGN_SIG] {
        assert!(types.contains(&wanted), "{wanted} missing: {types:?}");
    }
    assert_eq!(referrers.len(), 4, "{types:?}");
    // The SBOM artifacts hold the documents: the SPDX one lists the image's package.
    let (_, spdx) = referrers.iter().find(|(t, _)| t == SPDX).unwrap();
    assert_eq!(spdx["layers"][0]["mediaType"], SPDX);
    let doc = json(&layout_document(&layout, &digest, SPDX));
    assert_eq!(doc["spdxVersion"], "SPDX-2.3", "{doc}");
    assert!(
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "hello"),
        "{doc}"
    );
    let hex = &digest["sha256:".len()..];
    let sig = json(&reg.skopeo_raw(&format!("app:sha256-{hex}.sig")));
    assert_eq!(
        sig["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(sig["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    // stevedore inspect lists them, from the registry and from the layout.
    let listed = stevedore_in(
        &src,
        &cache,
        &["inspect", &format!("{}/app@{digest}", reg.host())],
        &[],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stdout(&listed).contains(IN_TOTO) && stdout(&listed).contains(COSIGN_SIG),
        "{}",
        stdout(&listed)
    );
    let listed = stevedore_in(
        &src,
        &cache,
        &["inspect", &format!("oci:{}:v1", layout.display())],
        &[],
    );
    assert!(stdout(&listed).contains(IN_TOTO), "{}", stdout(&listed));
    // The layout keeps working for readers that pick its only image (skopeo needs no tag here
    // because the artifacts are not images).
    let provenance = layout_provenance(&layout, &digest);
    let statement = json(&provenance);
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], hex);
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
    assert!(
        deps.contains("deb:app/pkgs/hello")
            && deps.contains("gitCommit")
            && deps.contains("recipe:app.toml"),
        "{deps}"
    );

    // The signature verifies (openssl); once the tag names another, unsigned image, that image
    // has no signature, and the old one names the old digest only.
    signature_verifies(&reg, t.path(), &digest, &public).unwrap();
    let other = t.path().join("other");
    write(
        &other.join("r.toml"),
        "[[layers]]\nname = \"x\"\nfiles = [{ src = \"f\", dest = \"/f\" }]\n",
    );
    write(&other.join("f"), "unsigned\n");
    let moved = build_ok(
        &cache,
        &[path_str(&other.join("r.toml")), "--push", &target],
    );
    assert_eq!(reg.skopeo_inspect("app:v1")["Digest"], moved);
    let refused = signature_verifies(&reg, t.path(), &moved, &public).unwrap_err();
    assert!(refused.contains("no app:sha256-"), "{refused}");

    // A second build in another cache: the same provenance, byte for byte.
    let layout2 = t.path().join("out2");
    let again = stevedore_in(
        &src,
        &t.path().join("cache2"),
        &[
            "build",
            path_str(&recipe),
            "--provenance",
            "-o",
            &format!("oci:{}:v1", layout2.display()),
        ],
        &[],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), digest);
    assert_eq!(layout_provenance(&layout2, &digest), provenance);

    // verify --provenance from a fresh clone with an empty cache: the same digest.
    let clone = t.path().join("clone");
    run(Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(src.with_extension("git"))
        .arg(&clone));
    let image = format!("{}/app@{digest}", reg.host());
    let v = stevedore_in(
        &clone,
        &t.path().join("cache3"),
        &["verify", "--provenance", &image],
        &[],
    );
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    assert!(stdout(&v).contains("verified"), "{}", stdout(&v));

    // A changed lock entry: exit 5 naming the package.
    let lock = clone.join("app.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.contains("\"2.10-3\""), "{text}");
    std::fs::write(&lock, text.replace("\"2.10-3\"", "\"2.10-4\"")).unwrap();
    let v = stevedore_in(
        &clone,
        &t.path().join("cache4"),
        &["verify", "--provenance", &image],
        &[],
    );
    assert_eq!(v.status.code(), Some(5), "{}{}", stdout(&v), stderr(&v));
    assert!(
        stdout(&v).contains("package app/pkgs/hello"),
        "{}",
        stdout(&v)
    );

    // The key from the environment works too; a bad key fails with exit 3, never printing it.
    let pem = std::fs::read_to_string(&key).unwrap();
    let env = stevedore_in(
        &src,
        &cache,
        &[
            "build",
            path_str(&recipe),
            "--push",
            &format!("{}/app:v2", reg.host()),
        ],
        &[("STEVEDORE_SIGN_KEY", &pem)],
    );
    assert!(env.status.success(), "{}", stderr(&env));
    assert!(!stderr(&env).contains(&secret));
    let bad = stevedore_in(
        &src,
        &cache,
        &["build", path_str(&recipe), "--push", &target],
        &[(
            "STEVEDORE_SIGN_KEY",
            &pem.replace("PRIVATE KEY", "EC PRIVATE KEY"),
        )],
    );
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(!stderr(&bad).contains(&secret) && !stdout(&bad).contains(&secret));
}

/// A registry with the referrers API (answers the artifact's manifest PUT with `OCI-Subject`
/// and lists referrers itself): no fallback tag is read or written, and the listing comes from
/// the API.
#[test]
fn a_registry_with_the_referrers_api_gets_no_fallback_tag() {
    use registry_support::hostile::{HostileServer, Reply};
    use stevedore::oci::{Descriptor, MediaType};
    use stevedore::registry::{
        BlobRef, BlockingRegistry, ImageToPush, RawManifest, ReferrersVia, RegistryOptions,
    };

    let image = stevedore::digest::Digest::of(b"the image manifest");
    let doc = stevedore::attach::Attachment::new(IN_TOTO, IN_TOTO, b"{\"x\":1}".to_vec());
    let subject = Descriptor::new(MediaType::OCI_MANIFEST, image.clone(), 18);
    let artifact = stevedore::attach::artifact(&doc, &subject, "2024-01-01T00:00:00Z");
    let listing = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [artifact.referrer_entry()],
    })
    .to_string();
    let subject_header = image.to_string();
    let server = HostileServer::start(true, move |req| {
        let t = req.target.as_str();
        match req.method.as_str() {
            "GET" if t == "/v2/" => Reply::status(200),
            // Every blob is there already.
            "HEAD" if t.contains("/blobs/") => Reply::status(200),
            "PUT" if t.contains("/manifests/sha256:") => {
                Reply::with(201, &[("OCI-Subject", subject_header.as_str())], b"")
            }
            "GET" if t.contains("/referrers/") => Reply::with(
                200,
                &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
                listing.as_bytes(),
            ),
            _ => Reply::json(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
        }
    });
    let t = tempdir();
    let blobs = artifact
        .blobs
        .iter()
        .map(|b| {
            let d = stevedore::digest::Digest::of(b);
            let path = t.path().join(d.hex());
            std::fs::write(&path, b).unwrap();
            BlobRef {
                digest: d,
                size: b.len() as u64,
                media_type: "application/octet-stream".into(),
                path,
            }
        })
        .collect();
    let registry = BlockingRegistry::new(RegistryOptions::default()).unwrap();
    let repo = format!("{}/app", server.host()).parse().unwrap();
    let push = ImageToPush::new(
        RawManifest {
            bytes: artifact.manifest_bytes.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        },
        blobs,
    );
    let pushed = registry.push_referrer(&repo, &push, None).unwrap();
    assert_eq!(pushed.via, ReferrersVia::Api);
    assert_eq!(pushed.digest, artifact.digest());
    let listed = registry.referrers(&repo, &image).unwrap();
    assert_eq!(listed.manifests, vec![artifact.referrer_entry()]);
    let tag = format!("sha256-{}", image.hex());
    let touched: Vec<String> = server
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .filter(|s| s.contains(&tag))
        .collect();
    assert!(touched.is_empty(), "the fallback tag was used: {touched:?}");
}
