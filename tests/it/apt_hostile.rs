//! A hostile apt repository, generated and signed by the tests and served on loopback: each
//! trick a mirror (or whoever sits between it and the build) could play is refused with an
//! error naming the URL, within seconds, before any package index is fetched.

use crate::apt_support;
use crate::common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apt_support::*;
use stevedore::apt::signature::{Keyring, verify_inrelease_at};
use stevedore::apt::{self, AptError, Fetcher, ReleaseError, Sources};

/// Every refusal here must come quickly: nothing waits on a network that answers at once.
const BOUND: Duration = Duration::from_secs(20);

fn sources(server: &Server, suite: &str, keyring: &Path) -> Sources {
    Sources {
        mirrors: vec![server.url()],
        suites: vec![suite.into()],
        components: vec!["main".into()],
        architecture: "amd64".into(),
        keyring: Some(keyring.to_owned()),
        allow_unsigned: false,
    }
}

/// Loads `suite` from `server` with `keyring`, checking the time bound.
fn load(server: &Server, suite: &str, keyring: &Path) -> Result<apt::LoadedIndex, AptError> {
    let cache = crate::common::tempdir();
    let fetcher = Fetcher::new(cache.path())
        .unwrap()
        .with_retries(1, Duration::from_millis(20));
    let started = Instant::now();
    let result = apt::load_index(
        &[sources(server, suite, keyring)],
        &fetcher,
        SystemTime::now(),
    );
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    result
}

fn test_keyring() -> std::path::PathBuf {
    fixtures().join("test-keyring.gpg")
}

fn at(gpg_time_secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(gpg_time_secs)
}

/// 2020-01-02 00:00:00 UTC.
const JAN_2_2020: u64 = 1_577_923_200;

#[test]
fn another_suites_inrelease_is_refused_naming_url_request_and_release() {
    let mut spec = RepoSpec::new(vec![TestDeb::new("app", "1")]);
    spec.suite = "bullseye".into();
    let repo = build_repo(&spec);
    // The mirror answers for bookworm with bullseye's (validly signed) files.
    serve_suite_as(&repo, "bullseye", "bookworm");
    let server = Server::serve(repo.root());
    let err = load(&server, "bookworm", &test_keyring()).unwrap_err();
    assert!(
        matches!(err, AptError::Release(ReleaseError::WrongSuite { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}/dists/bookworm/InRelease", server.url())),
        "{msg}"
    );
    assert!(msg.contains("asked for suite bookworm"), "{msg}");
    assert!(msg.contains("Suite bullseye, Codename bullseye"), "{msg}");
    // Refused before anything it vouches for was fetched.
    assert!(server.requests_for("Packages.xz").is_empty());
    // The same files under their own name load.
    load(&server, "bullseye", &test_keyring()).unwrap();
}

#[test]
fn a_swapped_suite_fails_the_cli_with_exit_3() {
    let mut spec = RepoSpec::new(vec![TestDeb::new("app", "1")]);
    spec.suite = "stable-proposed".into();
    let repo = build_repo(&spec);
    serve_suite_as(&repo, "stable-proposed", "stable");
    let server = Server::serve(repo.root());
    let dir = crate::common::tempdir();
    let recipe = recipe(dir.path(), &server.url(), &test_keyring());
    let started = Instant::now();
    let out = common::stevedore(
        &dir.path().join("cache"),
        &["lock", common::path_str(&recipe)],
    );
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("/dists/stable/InRelease") && err.contains("Codename stable-proposed"),
        "{err}"
    );
    assert!(common::stdout(&out).is_empty());
    assert!(!dir.path().join("image.lock").exists());
}

fn recipe(dir: &Path, mirror: &str, keyring: &Path) -> std::path::PathBuf {
    let path = dir.join("image.toml");
    std::fs::write(
        &path,
        format!(
            "[image]\nname = \"localhost/hostile\"\n\n[[sources]]\nmirrors = [\"{mirror}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"app\"\npackages = [\"app\"]\n",
            keyring.display()
        ),
    )
    .unwrap();
    path
}

/// A key valid from 2020-01-01 to 2020-01-03 signs on 2020-01-02: a good signature then,
/// refused now, naming the key and its end.
fn signed_before_expiry(subkey: bool) {
    let key = generate_key(
        if subkey {
            "stevedore expiring subkey <sub@stevedore.invalid>"
        } else {
            "stevedore expiring key <exp@stevedore.invalid>"
        },
        "20200101T000000",
        "2d",
        subkey,
    );
    let mut spec = RepoSpec::new(vec![TestDeb::new("app", "1")]);
    spec.signing = key.signing_at("20200102T000000");
    let repo = build_repo(&spec);
    let server = Server::serve(repo.root());
    let err = load(&server, "stable", &key.keyring).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AptError::Signature(_)), "{err:?}");
    assert!(msg.contains(&key.signing_fingerprint), "{msg}");
    assert!(msg.contains("the key expired on 2020-01-03"), "{msg}");
    assert!(msg.contains("/dists/stable/InRelease"), "{msg}");
    assert!(server.requests_for("Packages.xz").is_empty());

    // The signature itself is good: checked at a time the key was valid, it passes.
    let text = std::fs::read_to_string(repo.root().join("dists/stable/InRelease")).unwrap();
    let keyring = Keyring::load(&key.keyring).unwrap();
    let verified = verify_inrelease_at(&keyring, &text, "u", at(JAN_2_2020 + 3600)).unwrap();
    assert!(verified.signers[0].starts_with(&key.signing_fingerprint));
}

#[test]
fn a_key_expired_since_it_signed_is_refused() {
    signed_before_expiry(false);
}

#[test]
fn a_signing_subkey_expired_since_it_signed_is_refused() {
    signed_before_expiry(true);
}

#[test]
fn a_replayed_release_past_its_valid_until_fails_the_cli_with_exit_4() {
    let mut spec = RepoSpec::new(vec![TestDeb::new("app", "1")]);
    spec.release_fields = vec![("Valid-Until".into(), now_rfc2822(-60))];
    let repo = build_repo(&spec);
    let server = Server::serve(repo.root());
    let dir = crate::common::tempdir();
    let recipe = recipe(dir.path(), &server.url(), &test_keyring());
    let out = common::stevedore(
        &dir.path().join("cache"),
        &["lock", common::path_str(&recipe)],
    );
    let err = common::stderr(&out);
    // A stale mirror is an outside service failing (src/error.rs), not the recipe's fault.
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("/dists/stable/InRelease") && err.contains("expired at"),
        "{err}"
    );
    assert!(server.requests_for("Packages.xz").is_empty());
}

const SECRET: &str = "hunter2-s3cr3t";

/// Every place the secret could end up: the CLI's output, the lockfile, the image, the cache.
fn assert_secret_absent(dir: &Path, out: &std::process::Output) {
    for text in [common::stdout(out), common::stderr(out)] {
        assert!(!text.contains(SECRET), "secret printed: {text}");
        assert!(!text.contains("ci-user"), "user name printed: {text}");
    }
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
                    || entry.path().ends_with("image.toml"),
                "secret written to {}",
                entry.path().display()
            );
        }
    }
}

#[test]
fn credentials_in_a_mirror_url_are_refused_and_never_shown_or_sent() {
    let repo = build_repo(&RepoSpec::new(vec![TestDeb::new("app", "1").arch("all")]));
    let server = Server::serve(repo.root());
    let dir = crate::common::tempdir();
    let mirror = format!("http://ci-user:{SECRET}@{}", server.addr);
    let recipe = recipe(dir.path(), &mirror, &test_keyring());
    let layout = dir.path().join("out");
    for args in [
        vec!["lock", common::path_str(&recipe)],
        vec!["plan", common::path_str(&recipe)],
        vec![
            "build",
            common::path_str(&recipe),
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    ] {
        let started = Instant::now();
        let out = common::stevedore(&dir.path().join("cache"), &args);
        assert!(started.elapsed() < BOUND);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains("holds credentials"), "{err}");
        assert!(
            err.contains(&format!("http://***@{}", server.addr)),
            "{err}"
        );
        assert_secret_absent(dir.path(), &out);
    }
    assert!(!dir.path().join("image.lock").exists());
    assert!(!layout.exists());
    assert!(
        server.log.lock().unwrap().is_empty(),
        "the mirror was contacted"
    );

    // The library refuses them too, redacted, before any request.
    let mut s = sources(&server, "stable", &test_keyring());
    s.mirrors = vec![server.url(), mirror.clone()];
    let cache = crate::common::tempdir();
    let err = apt::load_index(
        &[s],
        &Fetcher::new(cache.path()).unwrap(),
        SystemTime::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains(SECRET) && !err.contains("ci-user"), "{err}");
    assert!(err.contains("holds credentials"), "{err}");
    assert!(
        server.log.lock().unwrap().is_empty(),
        "the mirror was contacted"
    );
}

#[test]
fn credential_detection_and_redaction() {
    for (url, redacted) in [
        ("http://u:p@host/debian", Some("http://***@host/debian")),
        ("https://token@host:8443/x", Some("https://***@host:8443/x")),
        ("http://u:p%40x@host/", Some("http://***@host/")),
        ("http://a@b@host/", Some("http://***@host/")),
    ] {
        assert!(apt::has_credentials(url), "{url}");
        assert_eq!(Some(apt::redact_credentials(url).as_str()), redacted);
    }
    for url in [
        "http://deb.debian.org/debian",
        "http://host/path@with-at",
        "http://host/x?q=a@b",
        "http://[::1]:8080/debian",
    ] {
        assert!(!apt::has_credentials(url), "{url}");
        assert_eq!(apt::redact_credentials(url), url);
    }
}
