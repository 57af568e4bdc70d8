//! Pushes to real `docker-registry` processes (plain HTTP, htpasswd, TLS, bearer token), checked with
//! skopeo; plus skip-on-repush, cross-repo mounts, chunked uploads, an index, and pulls.

use crate::registry_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use registry_support::*;
use stevedore::digest::Digest;
use stevedore::oci::names as media_types;
use stevedore::registry::{
    BlockingRegistry, CredentialSource, HostCredential, ImageToPush, Platform, PushProgress,
    RawManifest, RegistryOptions,
};

/// The test registry's credentials, given for that registry only.
fn creds(reg: &TestRegistry) -> Vec<HostCredential> {
    if reg.auth == Auth::None {
        vec![]
    } else {
        vec![HostCredential::from_user_pass(&reg.host(), &format!("{USER}:{PASSWORD}")).unwrap()]
    }
}

fn client(reg: &TestRegistry) -> BlockingRegistry {
    BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::Anonymous,
        host_credentials: creds(reg),
        ca_file: reg.ca_file.clone(),
        ..Default::default()
    })
    .unwrap()
}

/// The registry serves exactly our manifest bytes under `repo_ref`, and skopeo can pull every blob.
fn assert_served(reg: &TestRegistry, repo_ref: &str, img: &TestImage) {
    let raw = reg.skopeo_raw(repo_ref);
    assert_eq!(Digest::of(&raw), img.manifest_digest, "{repo_ref}");
    assert_eq!(raw, img.image.manifest.bytes);
    let out = crate::common::tempdir();
    reg.skopeo_copy_to_oci(repo_ref, out.path());
    for b in &img.image.blobs {
        let copied = out.path().join("blobs/sha256").join(b.digest.hex());
        assert_eq!(
            Digest::of(&std::fs::read(&copied).unwrap()),
            b.digest,
            "blob {} after skopeo copy",
            b.digest
        );
    }
    assert!(
        out.path()
            .join("blobs/sha256")
            .join(img.manifest_digest.hex())
            .is_file(),
        "skopeo copy kept the manifest digest"
    );
}

#[test]
fn plain_push_then_repush_uploads_nothing() {
    let reg = TestRegistry::start(Auth::None);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 1, &[], &[1 << 20, 300_000, 0], "amd64");
    let c = client(&reg);
    let mut image = img.image.clone();
    image.tags = vec!["latest".into(), "extra".into()];
    let r = c
        .push_image(&reg.reference("plain/app:v1"), &image)
        .unwrap();
    assert_eq!(r.manifest_digest, img.manifest_digest);
    assert_eq!(r.tags, ["v1", "latest", "extra"]);
    assert_eq!(r.blobs_uploaded, 4);
    assert_eq!(
        r.bytes_uploaded,
        img.image.blobs.iter().map(|b| b.size).sum::<u64>()
    );
    for tag in ["v1", "latest", "extra"] {
        assert_served(&reg, &format!("plain/app:{tag}"), &img);
    }
    assert_served(&reg, &format!("plain/app@{}", img.manifest_digest), &img);

    let again = c
        .push_image(&reg.reference("plain/app:v1"), &image)
        .unwrap();
    assert_eq!(again.manifest_digest, img.manifest_digest);
    assert_eq!(
        (again.blobs_uploaded, again.blobs_skipped, again.bytes_sent),
        (0, 4, 0)
    );
}

#[derive(Default)]
struct Counting {
    started: AtomicUsize,
    skipped: AtomicUsize,
    mounted: AtomicUsize,
    uploaded: AtomicUsize,
    manifests: AtomicUsize,
}
impl PushProgress for Counting {
    fn blob_started(&self, _: &Digest, _: u64) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
    fn blob_skipped(&self, _: &Digest, _: u64) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    fn blob_mounted(&self, _: &Digest, _: u64, _: &str) {
        self.mounted.fetch_add(1, Ordering::Relaxed);
    }
    fn blob_uploaded(&self, _: &Digest, _: u64) {
        self.uploaded.fetch_add(1, Ordering::Relaxed);
    }
    fn manifest_pushed(&self, _: &str, _: &Digest) {
        self.manifests.fetch_add(1, Ordering::Relaxed);
    }
}

/// A child image shares its parent's layers: pushed to another repository it mounts them; with
/// the parent's layers absent locally (a base never downloaded) it mounts them too.
fn child_mounts_parent_layers(reg: &TestRegistry) {
    let parent_dir = crate::common::tempdir();
    let parent = make_image(parent_dir.path(), 10, &[], &[400_000, 200_000], "amd64");
    let progress = Arc::new(Counting::default());
    let c = BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::Anonymous,
        host_credentials: creds(reg),
        ca_file: reg.ca_file.clone(),
        progress: progress.clone(),
        ..Default::default()
    })
    .unwrap();
    let parent_ref = reg.reference("base/parent:1");
    c.push_image(&parent_ref, &parent.image).unwrap();

    let child_dir = crate::common::tempdir();
    let child = make_image(child_dir.path(), 11, &parent.layers, &[150_000], "amd64");
    let mut image = child.image.clone();
    image.mount_sources = vec![parent_ref.clone()];
    let r = c
        .push_image(&reg.reference("apps/child:1"), &image)
        .unwrap();
    assert_eq!(r.blobs_mounted, 2, "{r:?}");
    assert_eq!(r.blobs_uploaded, 2, "config + new layer: {r:?}");
    assert_served(reg, "apps/child:1", &child);

    // Same child, base layers not local at all: they must be mounted, never needed on disk.
    let mut remote_base = child.image.clone();
    remote_base
        .blobs
        .retain(|b| !parent.layers.iter().any(|p| p.digest == b.digest));
    remote_base.mount_sources = vec![parent_ref];
    let r = c
        .push_image(&reg.reference("apps/child2:1"), &remote_base)
        .unwrap();
    assert_eq!((r.blobs_mounted, r.blobs_uploaded), (2, 2), "{r:?}");
    assert_served(reg, "apps/child2:1", &child);

    // Without a source the registry cannot have it: a clear error, and no tag.
    let mut orphan = remote_base.clone();
    orphan.mount_sources.clear();
    let e = c
        .push_image(&reg.reference("apps/orphan:1"), &orphan)
        .unwrap_err();
    assert!(
        e.to_string().contains("neither in the image's blobs"),
        "{e}"
    );
    assert!(!reg.skopeo_has("apps/orphan:1"));
    assert!(progress.mounted.load(Ordering::Relaxed) >= 4);
    assert!(progress.manifests.load(Ordering::Relaxed) >= 4);
}

#[test]
fn plain_child_image_mounts_parent_layers() {
    let reg = TestRegistry::start(Auth::None);
    child_mounts_parent_layers(&reg);
}

#[test]
fn chunked_upload_with_small_chunks() {
    let reg = TestRegistry::start(Auth::None);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 2, &[], &[1_000_003, 70_000], "amd64");
    let c = BlockingRegistry::new(RegistryOptions {
        chunked_threshold: 64 << 10,
        chunk_size: 128 << 10,
        ..Default::default()
    })
    .unwrap();
    let r = c
        .push_image(&reg.reference("chunked/app:1"), &img.image)
        .unwrap();
    assert_eq!(r.blobs_uploaded, 3);
    assert_served(&reg, "chunked/app:1", &img);
}

#[test]
fn index_push_and_platform_pull() {
    let reg = TestRegistry::start(Auth::None);
    let dir = crate::common::tempdir();
    let amd = make_image(dir.path(), 3, &[], &[200_000], "amd64");
    let arm = make_image(dir.path(), 4, &[], &[210_000], "arm64");
    let entry = |img: &TestImage, arch: &str| {
        serde_json::json!({
            "mediaType": media_types::OCI_MANIFEST,
            "digest": img.manifest_digest.to_string(),
            "size": img.image.manifest.bytes.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")],
    }))
    .unwrap();
    let index_blob = write_blob(dir.path(), &index, media_types::OCI_INDEX);
    write_layout_index(dir.path(), &index_blob, None);
    let mut blobs = amd.image.blobs.clone();
    blobs.extend(arm.image.blobs.clone());
    let image = ImageToPush {
        manifest: RawManifest {
            bytes: index.clone(),
            media_type: media_types::OCI_INDEX.into(),
        },
        children: vec![amd.image.manifest.clone(), arm.image.manifest.clone()],
        blobs,
        tags: vec![],
        mount_sources: vec![],
    };
    let c = client(&reg);
    let target = reg.reference("multi/app:1");
    let r = c.push_image(&target, &image).unwrap();
    assert_eq!(r.manifest_digest, index_blob.digest);
    assert_eq!(r.blobs_uploaded, 4);
    assert_eq!(reg.skopeo_raw("multi/app:1"), index);
    assert_served(&reg, &format!("multi/app@{}", amd.manifest_digest), &amd);
    assert_served(&reg, &format!("multi/app@{}", arm.manifest_digest), &arm);
    // skopeo resolves the index to this host's platform (amd64 here) by itself.
    let inspected = reg.skopeo_inspect("multi/app:1");
    assert_eq!(inspected["Architecture"], "amd64");

    // Our pull: the index as is, or resolved to a platform and verified.
    let (m, d) = c.pull_manifest(&target, None).unwrap();
    assert_eq!(
        (m.bytes, d, m.media_type.as_str()),
        (index, index_blob.digest, media_types::OCI_INDEX)
    );
    let arm64: Platform = "linux/arm64".parse().unwrap();
    let (m, d) = c.pull_manifest(&target, Some(&arm64)).unwrap();
    assert_eq!(d, arm.manifest_digest);
    assert_eq!(m.bytes, arm.image.manifest.bytes);
    let e = c
        .pull_manifest(&target, Some(&"linux/s390x".parse().unwrap()))
        .unwrap_err();
    assert!(e.to_string().contains("linux/amd64, linux/arm64"), "{e}");
}

#[test]
fn pull_fetches_and_verifies_blobs() {
    let reg = TestRegistry::start(Auth::None);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 5, &[], &[500_000, 1], "amd64");
    // Pushed by skopeo, so the pull side is tested against an independent pusher.
    run(std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", dir.path().display()))
        .arg(format!("docker://{}/pulled/app:1", reg.host())));
    let c = client(&reg);
    let r = reg.reference("pulled/app:1");
    let (m, d) = c.pull_manifest(&r, None).unwrap();
    assert_eq!(d, img.manifest_digest);
    assert_eq!(m.bytes, img.image.manifest.bytes);
    let (_, d2) = c.pull_manifest(&r.with_digest(d.clone()), None).unwrap();
    assert_eq!(d2, d);
    assert_eq!(c.manifest_digest(&r).unwrap(), Some(d));
    assert_eq!(
        c.manifest_digest(&reg.reference("pulled/app:nope"))
            .unwrap(),
        None
    );
    let out = crate::common::tempdir();
    for b in &img.image.blobs {
        assert!(c.blob_exists(&r, &b.digest).unwrap());
        let p = c.fetch_blob(&r, &b.digest, b.size, out.path()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&b.path).unwrap());
    }
    assert!(!c.blob_exists(&r, &Digest::of(b"absent")).unwrap());
    let e = c
        .fetch_blob(&r, &Digest::of(b"absent"), 6, out.path())
        .unwrap_err();
    assert!(e.to_string().contains("not found in pulled/app"), "{e}");
    // Only finished, verified files are left behind.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 3);
}

#[test]
fn htpasswd_push() {
    let reg = TestRegistry::start(Auth::Htpasswd);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 6, &[], &[300_000], "amd64");
    // Credentials from a docker config.json, as `docker login` leaves them.
    let cfg = dir.path().join("config.json");
    let auth = base64_encode(&format!("{USER}:{PASSWORD}"));
    std::fs::write(
        &cfg,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let c = BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::File(cfg),
        ..Default::default()
    })
    .unwrap();
    let r = c
        .push_image(&reg.reference("auth/app:1"), &img.image)
        .unwrap();
    assert_eq!(r.blobs_uploaded, 2);
    assert_served(&reg, "auth/app:1", &img);
    child_mounts_parent_layers(&reg);
}

#[test]
fn tls_push_with_generated_ca() {
    let reg = TestRegistry::start(Auth::Tls);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 7, &[], &[600_000, 10], "amd64");
    let c = client(&reg);
    let r = c
        .push_image(&reg.reference("tls/app:1"), &img.image)
        .unwrap();
    assert_eq!(r.blobs_uploaded, 3);
    assert_served(&reg, "tls/app:1", &img);
    let (_, d) = c.pull_manifest(&reg.reference("tls/app:1"), None).unwrap();
    assert_eq!(d, img.manifest_digest);
}

/// A registry set up as environment.md says: one self-signed certificate (CA:TRUE), given as the CA.
#[test]
fn tls_push_with_self_signed_certificate() {
    let reg = TestRegistry::start(Auth::TlsSelfSigned);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 14, &[], &[100_000], "amd64");
    let c = client(&reg);
    let r = c
        .push_image(&reg.reference("selfsigned/app:1"), &img.image)
        .unwrap();
    assert_eq!(r.manifest_digest, img.manifest_digest);
    assert_served(&reg, "selfsigned/app:1", &img);
}

#[test]
fn token_auth_push_and_cross_repo_mount() {
    let reg = TestRegistry::start(Auth::Token);
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 8, &[], &[300_000], "amd64");
    let c = client(&reg);
    let r = c
        .push_image(&reg.reference("token/app:1"), &img.image)
        .unwrap();
    assert_eq!(r.blobs_uploaded, 2);
    assert_served(&reg, "token/app:1", &img);
    child_mounts_parent_layers(&reg);
    // One token for the child's push covers push on the target and pull on the mount source,
    // which is what lets the registry grant the mount.
    let requests = reg.token.as_ref().unwrap().requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with(USER)
            && r.contains("repository:apps/child:pull,push")
            && r.contains("repository:base/parent:pull")),
        "{requests:#?}"
    );
    // Tokens are cached per scope and fetched once even with blobs in flight in parallel.
    let ours: Vec<_> = requests
        .iter()
        .filter(|r| r.contains(":pull,push"))
        .collect();
    let distinct: std::collections::BTreeSet<_> = ours.iter().collect();
    assert_eq!(ours.len(), distinct.len(), "{requests:#?}");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn token_refresh_on_401_and_identity_token() {
    let reg = TestRegistry::start(Auth::Token);
    let ts = reg.token.as_ref().unwrap();
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 13, &[], &[100_000], "amd64");

    // The first token is already expired: the registry says 401, the client fetches a new one.
    ts.expire_next.store(1, Ordering::SeqCst);
    let c = client(&reg);
    c.push_image(&reg.reference("refresh/app:1"), &img.image)
        .unwrap();
    assert_served(&reg, "refresh/app:1", &img);
    let asked = ts
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.as_str() == format!("{USER} repository:refresh/app:pull,push"))
        .count();
    assert_eq!(asked, 2, "expected one refresh of the token");

    // An identity token (`docker login` with a token service) goes through the OAuth2 refresh grant.
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"{}"}}}}}}"#,
            reg.host(),
            registry_support::token_server::REFRESH_TOKEN
        ),
    )
    .unwrap();
    let c = BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::File(cfg),
        ..Default::default()
    })
    .unwrap();
    c.push_image(&reg.reference("identity/app:1"), &img.image)
        .unwrap();
    assert_served(&reg, "identity/app:1", &img);
    assert!(
        ts.requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with(&format!(
                "{USER}(refresh) repository:identity/app:pull,push"
            ))),
        "{:#?}",
        ts.requests.lock().unwrap()
    );
}
