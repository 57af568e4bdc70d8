//! A hostile (or broken) registry, played by the project's own loopback server
//! (`registry_support::hostile`): credentials must stay with the registry they were given for,
//! every read is bounded, every wait has a deadline, numbers from the network never crash us,
//! and a failed push tags nothing. Each test bounds its time; the CLI ones check exit code 4, a
//! message naming the URL, and (for the endless answers) the child's peak memory.

use crate::common;
use crate::registry_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use registry_support::hostile::{HostileServer, Reply, Seen, run_bounded};
use registry_support::{Rng, make_image};
use stevedore::digest::Digest;
use stevedore::oci::names as media_types;
use stevedore::registry::{
    CredentialSource, HostCredential, Limits, Registry, RegistryError, RegistryOptions, RetryPolicy,
};

const SECRET: &str = "ci-Secret-for-the-push-destination-only";
const BASE_SECRET: &str = "base-Secret-for-the-base-registry";

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// Fast options for the library tests: short waits, few retries, nothing looked up.
fn fast(given: Vec<HostCredential>) -> RegistryOptions {
    RegistryOptions {
        credentials: CredentialSource::Anonymous,
        host_credentials: given,
        retry: RetryPolicy {
            max_retries: 1,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(2),
        },
        stall_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A zero-layer linux image for the host's architecture: (manifest, config).
fn tiny_image() -> (Vec<u8>, Vec<u8>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::of(&config).to_string(),
            "size": config.len()
        },
        "layers": []
    }))
    .unwrap();
    (manifest, config)
}

/// Serves `tiny_image` at any repository and tag (and by digest), anonymously.
fn serve_tiny(req: &Seen) -> Reply {
    let (manifest, config) = tiny_image();
    let md = Digest::of(&manifest).to_string();
    if req.target == "/v2/" {
        Reply::status(200)
    } else if req.target.contains("/manifests/") {
        Reply::with(
            200,
            &[
                ("Content-Type", media_types::OCI_MANIFEST),
                ("Docker-Content-Digest", &md),
            ],
            &manifest,
        )
    } else if req.target.ends_with(&Digest::of(&config).to_string()) {
        Reply::with(200, &[], &config)
    } else {
        Reply::json(404, r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)
    }
}

/// A recipe with `from` and one file layer.
fn recipe(dir: &Path, from: &str) -> std::path::PathBuf {
    common::write(&dir.join("files/a.txt"), "a\n");
    let path = dir.join("app.toml");
    common::write(
        &path,
        format!(
            "from = \"{from}\"\n\n[image]\nname = \"localhost/app\"\n\n[[layers]]\nname = \"a\"\nfiles = [{{ src = \"files\", dest = \"/a\" }}]\n"
        ),
    );
    path
}

/// `stevedore ARGS` with a private cache, no credentials from files, the given environment;
/// killed and failed after `limit`.
fn cli(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> registry_support::hostile::Bounded {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("STEVEDORE_CACHE")
        .env_remove("STEVEDORE_CREDS")
        .env_remove("STEVEDORE_FROM_CREDS")
        .env_remove("REGISTRY_AUTH_FILE")
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env("XDG_RUNTIME_DIR", dir.join("no-runtime-dir"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(&mut cmd, limit)
}

fn stderr(b: &registry_support::hostile::Bounded) -> String {
    String::from_utf8_lossy(&b.output.stderr).into_owned()
}

/// Exit 4, a message naming `url`, no secret.
fn assert_registry_failure(b: &registry_support::hostile::Bounded, url: &str) {
    let err = stderr(b);
    assert_eq!(b.output.status.code(), Some(4), "{err}");
    assert!(err.contains(url), "the message does not name {url}: {err}");
    assert!(!err.contains(SECRET) && !err.contains(BASE_SECRET), "{err}");
    assert!(b.output.stdout.is_empty(), "no digest on failure");
}

/// A registry that wants Basic auth for everything, then answers `authed`.
fn basic_registry(authed: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> HostileServer {
    HostileServer::start(true, move |req| {
        if req.authorization.is_none() {
            return Reply::with(401, &[("WWW-Authenticate", "Basic realm=\"hostile\"")], b"");
        }
        authed(req)
    })
}

#[test]
fn creds_reach_the_push_destination_only_and_from_creds_their_registry_only() {
    let dir = crate::common::tempdir();
    // The base registry wants auth; the push destination would take any.
    let base = basic_registry(|_| Reply::json(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#));
    let dest = basic_registry(|_| Reply::status(500));
    let r = recipe(dir.path(), &format!("{}/team/base:1", base.host()));
    let push = format!("{}/team/app:1", dest.host());
    let creds = format!("ci:{SECRET}");
    let run = cli(
        dir.path(),
        &["build", r.to_str().unwrap(), "--push", &push],
        &[("STEVEDORE_CREDS", &creds)],
        Duration::from_secs(60),
    );
    assert_registry_failure(&run, &base.host());
    let err = stderr(&run);
    assert!(
        err.contains(&format!("--from-creds {}=USER:PASS", base.host())),
        "{err}"
    );
    assert!(
        base.authorizations().is_empty(),
        "the base registry got {:?}",
        base.authorizations()
    );
    assert!(!base.seen().is_empty(), "the base registry was asked");

    // --from-creds for the base: the base gets exactly those, never the push credentials.
    let from = format!("{}=base:{BASE_SECRET}", base.host());
    let run = cli(
        dir.path(),
        &["plan", r.to_str().unwrap(), "--from-creds", &from],
        &[("STEVEDORE_CREDS", &creds)],
        Duration::from_secs(60),
    );
    assert_registry_failure(&run, "team/base");
    let got = base.authorizations();
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|a| *a == basic("base", BASE_SECRET)),
        "{got:?}"
    );
    // The push destination was never contacted: the build failed before the push.
    assert!(dest.seen().is_empty());
}

/// A registry with Basic auth whose upload sessions live on another origin (`storage`).
fn registry_with_storage_elsewhere(storage: u16) -> HostileServer {
    basic_registry(
        move |req| match (req.method.as_str(), req.target.as_str()) {
            (_, "/v2/") => Reply::status(200),
            ("HEAD", _) => Reply::json(404, "{}"),
            ("POST", t) if t.contains("/blobs/uploads/") => Reply::with(
                202,
                &[(
                    "Location",
                    &format!("http://127.0.0.1:{storage}/upload/session-1?_state=x"),
                )],
                b"",
            ),
            ("PUT", t) if t.contains("/manifests/") => Reply::status(201),
            _ => Reply::status(400),
        },
    )
}

/// Storage on another origin: takes PATCHes and PUTs, acknowledging every byte.
fn storage(fail_puts: bool) -> HostileServer {
    let received = Arc::new(AtomicUsize::new(0));
    HostileServer::start(true, move |req| {
        let port_loc = "/upload/session-1?_state=y";
        match req.method.as_str() {
            "PATCH" => {
                let end = received.fetch_add(req.body_len, Ordering::SeqCst) + req.body_len;
                Reply::with(
                    202,
                    &[("Location", port_loc), ("Range", &format!("0-{}", end - 1))],
                    b"",
                )
            }
            "PUT" if fail_puts => Reply::status(500),
            "PUT" => {
                received.store(0, Ordering::SeqCst);
                Reply::status(201)
            }
            _ => Reply::status(400),
        }
    })
}

#[test]
fn an_upload_location_on_another_origin_gets_no_credentials() {
    for chunked in [false, true] {
        let store = storage(false);
        let reg = registry_with_storage_elsewhere(store.port);
        let dir = crate::common::tempdir();
        let img = make_image(dir.path(), 71, &[], &[150_000, 3_000], "amd64");
        let mut opts = fast(vec![
            HostCredential::from_user_pass(&reg.host(), &format!("ci:{SECRET}")).unwrap(),
        ]);
        if chunked {
            opts.chunked_threshold = 0;
            opts.chunk_size = 64 << 10;
        }
        let client = Registry::new(opts).unwrap();
        let target = format!("{}/team/app:1", reg.host()).parse().unwrap();
        let report = rt()
            .block_on(client.push_image(&target, &img.image))
            .unwrap_or_else(|e| panic!("chunked={chunked}: {e}"));
        assert_eq!(report.blobs_uploaded, 3);
        let stored = store.seen();
        assert!(
            stored.iter().filter(|s| s.method == "PUT").count() >= 3,
            "{stored:?}"
        );
        assert!(
            store.authorizations().is_empty(),
            "chunked={chunked}: storage on another origin got {:?}",
            store.authorizations()
        );
        let own = reg.authorizations();
        assert!(!own.is_empty() && own.iter().all(|a| *a == basic("ci", SECRET)));
    }
}

#[test]
fn a_failed_upload_tags_nothing_and_the_cli_says_where() {
    let store = storage(true);
    let reg = registry_with_storage_elsewhere(store.port);
    let dir = crate::common::tempdir();
    let layout = dir.path().join("layout");
    make_image(&layout, 72, &[], &[20_000], "amd64");
    let target = format!("{}/team/app:v1", reg.host());
    let run = cli(
        dir.path(),
        &["push", &format!("oci:{}:latest", layout.display()), &target],
        &[
            ("STEVEDORE_CREDS", &format!("ci:{SECRET}")),
            ("STEVEDORE_REGISTRY_RETRIES", "1"),
            ("STEVEDORE_REGISTRY_TIMEOUT", "2"),
        ],
        Duration::from_secs(60),
    );
    assert_registry_failure(&run, &format!("127.0.0.1:{}/upload/session-1", store.port));
    assert!(
        !reg.seen().iter().any(|s| s.method == "PUT"),
        "a manifest went up after a failed blob: {:?}",
        reg.seen()
    );
    assert!(store.authorizations().is_empty());
}

#[test]
fn a_redirect_to_another_origin_gets_no_credentials() {
    let blob = Rng::new(5).bytes(10_000);
    let digest = Digest::of(&blob);
    let served = blob.clone();
    let cdn = HostileServer::start(true, move |_| Reply::with(200, &[], &served));
    let cdn_port = cdn.port;
    let reg = basic_registry(move |req| match req.target.as_str() {
        "/v2/" => Reply::status(200),
        t if t.contains("/blobs/") => Reply::with(
            307,
            &[(
                "Location",
                &format!("http://127.0.0.1:{cdn_port}/storage/blob?sig=abc"),
            )],
            b"",
        ),
        _ => Reply::status(404),
    });
    let client = Registry::new(fast(vec![
        HostCredential::from_user_pass(&reg.host(), &format!("ci:{SECRET}")).unwrap(),
    ]))
    .unwrap();
    let out = crate::common::tempdir();
    let r = format!("{}/team/app:1", reg.host()).parse().unwrap();
    let path = rt()
        .block_on(client.fetch_blob(&r, &digest, blob.len() as u64, out.path()))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), blob);
    assert_eq!(cdn.seen().len(), 1);
    assert!(
        cdn.authorizations().is_empty(),
        "{:?}",
        cdn.authorizations()
    );
    assert!(
        reg.authorizations()
            .iter()
            .all(|a| *a == basic("ci", SECRET))
    );
}

#[test]
fn a_plain_http_token_realm_on_another_machine_gets_no_password() {
    // 192.0.2.1 is TEST-NET-1: never contacted, the rule refuses before any connection.
    let reg = HostileServer::start(true, |_| {
        Reply::with(
            401,
            &[(
                "WWW-Authenticate",
                "Bearer realm=\"http://192.0.2.1:9/token\",service=\"hostile\"",
            )],
            b"",
        )
    });
    let client = Registry::new(fast(vec![
        HostCredential::from_user_pass(&reg.host(), &format!("ci:{SECRET}")).unwrap(),
    ]))
    .unwrap();
    let r = format!("{}/team/app:1", reg.host()).parse().unwrap();
    let t0 = Instant::now();
    let e = rt().block_on(client.pull_manifest(&r, None)).unwrap_err();
    assert!(matches!(e, RegistryError::InsecureRealm { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("http://192.0.2.1:9/token") && !msg.contains(SECRET),
        "{msg}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(reg.authorizations().is_empty());
}

#[test]
fn an_absurd_token_lifetime_is_no_crash() {
    // The realm names the server's own port, known only once it listens.
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let p = port.clone();
    let reg = HostileServer::start(true, move |req| {
        if req.target.starts_with("/token") {
            return Reply::json(200, r#"{"token":"tok","expires_in":18446744073709551615}"#);
        }
        if req.authorization.as_deref() != Some("Bearer tok") {
            // A loopback realm for a loopback registry: allowed over plain HTTP.
            let realm = format!(
                "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"h\"",
                p.get().unwrap()
            );
            return Reply::with(401, &[("WWW-Authenticate", &realm)], b"");
        }
        serve_tiny(req)
    });
    port.set(reg.port).unwrap();
    let dir = crate::common::tempdir();
    let r = recipe(dir.path(), &format!("{}/team/base:1", reg.host()));
    let run = cli(
        dir.path(),
        &["plan", r.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        reg.seen().iter().any(|s| s.target.starts_with("/token")),
        "the token server was used"
    );
}

/// A base registry that answers the manifest GET with `reply` (and the HEAD with a digest).
fn manifest_server(reply: impl Fn() -> Reply + Send + Sync + 'static) -> HostileServer {
    HostileServer::start(true, move |req| {
        match (req.method.as_str(), req.target.as_str()) {
            (_, "/v2/") => Reply::status(200),
            ("HEAD", t) if t.contains("/manifests/") => Reply::with(
                200,
                &[
                    ("Content-Type", media_types::OCI_MANIFEST),
                    (
                        "Docker-Content-Digest",
                        &Digest::of(b"whatever").to_string(),
                    ),
                ],
                b"",
            ),
            ("GET", t) if t.contains("/manifests/") => reply(),
            _ => Reply::status(404),
        }
    })
}

fn plan_against(reg: &HostileServer, env: &[(&str, &str)]) -> registry_support::hostile::Bounded {
    let dir = crate::common::tempdir();
    let r = recipe(dir.path(), &format!("{}/team/base:1", reg.host()));
    cli(
        dir.path(),
        &["plan", r.to_str().unwrap()],
        env,
        Duration::from_secs(60),
    )
}

#[test]
fn a_huge_manifest_is_refused_by_its_length() {
    let reg = manifest_server(|| {
        Reply::with(
            200,
            &[("Content-Type", media_types::OCI_MANIFEST)],
            &vec![b' '; 5 << 20],
        )
    });
    let run = plan_against(&reg, &[]);
    assert_registry_failure(&run, &reg.url("/v2/team/base/manifests/"));
    assert!(
        stderr(&run).contains("larger than 4194304 bytes"),
        "{}",
        stderr(&run)
    );
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
}

#[test]
fn an_endless_manifest_stops_at_the_limit_in_bounded_memory() {
    let reg = manifest_server(|| Reply::Endless {
        status: 200,
        headers: vec![("Content-Type".into(), media_types::OCI_MANIFEST.into())],
    });
    let run = plan_against(&reg, &[]);
    assert_registry_failure(&run, &reg.url("/v2/team/base/manifests/"));
    assert!(
        stderr(&run).contains("larger than 4194304 bytes"),
        "{}",
        stderr(&run)
    );
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    assert!(
        run.peak_rss_kib < 150 << 10,
        "peak RSS {} KiB reading an endless manifest",
        run.peak_rss_kib
    );
    assert!(run.peak_rss_kib > 0, "RSS was sampled");
}

#[test]
fn a_stalled_manifest_body_times_out_retries_and_names_the_url() {
    let reg = manifest_server(|| Reply::Stall {
        status: 200,
        headers: vec![("Content-Type".into(), media_types::OCI_MANIFEST.into())],
        announced: 1000,
        prefix: b"{\"schema".to_vec(),
    });
    let run = plan_against(
        &reg,
        &[
            ("STEVEDORE_REGISTRY_TIMEOUT", "1"),
            ("STEVEDORE_REGISTRY_RETRIES", "1"),
        ],
    );
    assert_registry_failure(&run, &reg.url("/v2/team/base/manifests/"));
    assert!(stderr(&run).contains("no progress"), "{}", stderr(&run));
    assert!(run.elapsed < Duration::from_secs(15), "{:?}", run.elapsed);
    let gets = reg
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.target.contains("/manifests/"))
        .count();
    assert_eq!(gets, 2, "one try, one retry");
}

#[test]
fn an_absurd_retry_after_is_not_waited_for() {
    let reg = HostileServer::start(true, |req| match req.target.as_str() {
        "/v2/" => Reply::status(200),
        _ => Reply::with(503, &[("Retry-After", "18446744073709551615")], b""),
    });
    let run = plan_against(&reg, &[]);
    assert_registry_failure(&run, &reg.url("/v2/team/base/manifests/1"));
    assert!(
        stderr(&run).contains("asks to retry after 18446744073709551615s"),
        "{}",
        stderr(&run)
    );
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}

#[test]
fn a_manifest_that_is_not_the_digest_asked_for_is_refused() {
    let (manifest, _) = tiny_image();
    let pinned = Digest::of(b"the manifest we pinned");
    let reg = HostileServer::start(true, move |req| match req.target.as_str() {
        "/v2/" => Reply::status(200),
        _ => Reply::with(
            200,
            &[("Content-Type", media_types::OCI_MANIFEST)],
            &manifest,
        ),
    });
    let dir = crate::common::tempdir();
    let r = recipe(dir.path(), &format!("{}/team/base@{pinned}", reg.host()));
    let run = cli(
        dir.path(),
        &["plan", r.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    assert_registry_failure(&run, &reg.url(&format!("/v2/team/base/manifests/{pinned}")));
    assert!(
        stderr(&run).contains(&format!("expected {pinned}")),
        "{}",
        stderr(&run)
    );
}

#[test]
fn a_blob_that_is_not_its_digest_is_refused_and_nothing_is_kept() {
    let good = Rng::new(8).bytes(5000);
    let digest = Digest::of(&good);
    let bad = Rng::new(9).bytes(5000);
    let reg = HostileServer::start(true, move |req| match req.target.as_str() {
        "/v2/" => Reply::status(200),
        _ => Reply::with(200, &[], &bad),
    });
    let client = Registry::new(fast(vec![])).unwrap();
    let tmp = crate::common::tempdir();
    let dest = tmp.path().join("blob");
    let r = format!("{}/team/app:1", reg.host()).parse().unwrap();
    let e = rt()
        .block_on(client.fetch_blob_to(&r, &digest, 5000, tmp.path(), &dest))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&reg.url(&format!("/v2/team/app/blobs/{digest}"))),
        "{msg}"
    );
    assert!(msg.contains(&format!("not {digest}")), "{msg}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing left behind"
    );

    // More bytes than the descriptor says: stopped at the size, whatever the body holds.
    let long = HostileServer::start(true, |req| match req.target.as_str() {
        "/v2/" => Reply::status(200),
        _ => Reply::Endless {
            status: 200,
            headers: vec![],
        },
    });
    let r = format!("{}/team/app:1", long.host()).parse().unwrap();
    let e = rt()
        .block_on(client.fetch_blob_to(&r, &digest, 5000, tmp.path(), &dest))
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::TooLarge { limit: 5000, .. }),
        "{e:?}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_range_that_never_advances_fails_the_upload_and_tags_nothing() {
    let reg = HostileServer::start(true, |req| {
        match (req.method.as_str(), req.target.as_str()) {
            (_, "/v2/") => Reply::status(200),
            ("HEAD", _) => Reply::json(404, "{}"),
            ("POST", _) | ("PATCH", _) => Reply::with(
                202,
                &[
                    ("Location", "/v2/team/app/blobs/uploads/s1"),
                    ("Range", "0-0"),
                ],
                b"",
            ),
            _ => Reply::status(201),
        }
    });
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 73, &[], &[100_000], "amd64");
    let mut opts = fast(vec![]);
    opts.chunked_threshold = 0;
    opts.chunk_size = 16 << 10;
    opts.limits = Limits {
        stuck_chunks: 3,
        ..Default::default()
    };
    let client = Registry::new(opts).unwrap();
    let target = format!("{}/team/app:1", reg.host()).parse().unwrap();
    let t0 = Instant::now();
    let e = rt()
        .block_on(client.push_image(&target, &img.image))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("acknowledged none of 3 chunks"), "{msg}");
    assert!(
        msg.contains(&reg.url("/v2/team/app/blobs/uploads/s1")),
        "{msg}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(
        !reg.seen().iter().any(|s| s.target.contains("/manifests/")),
        "a manifest was pushed: {:?}",
        reg.seen()
    );
}

#[test]
fn a_loopback_port_that_never_completes_tls_falls_back_to_http_at_once() {
    // Silent to a ClientHello, a registry to plain HTTP.
    let reg = HostileServer::start(false, serve_tiny);
    let client = Registry::new(RegistryOptions {
        credentials: CredentialSource::Anonymous,
        ..Default::default() // the default waits: 15 s connect, 60 s idle, 5 retries
    })
    .unwrap();
    let r = format!("{}/team/base:1", reg.host()).parse().unwrap();
    let t0 = Instant::now();
    let (m, _) = rt().block_on(client.pull_manifest(&r, None)).unwrap();
    assert_eq!(m.bytes, tiny_image().0);
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
}
