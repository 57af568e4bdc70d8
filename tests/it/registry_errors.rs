//! Failures must teach: wrong password, missing credentials, unknown repository, bad names, TLS
//! mismatch, unreachable host. No password may appear in an error or in any log line.

use crate::registry_support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use registry_support::*;
use stevedore::registry::{
    BlockingRegistry, CredentialSource, HostCredential, Reference, RegistryError, RegistryOptions,
    RetryPolicy,
};

/// Every log line of the process (all targets, TRACE), to grep for secrets.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        #[derive(Clone)]
        struct W(Arc<Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = W(buf.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || w.clone())
            .init();
        buf
    })
    .clone()
}

/// Options with these credentials given explicitly (each for its registry), nothing looked up.
fn opts(given: Vec<HostCredential>) -> RegistryOptions {
    RegistryOptions {
        credentials: CredentialSource::Anonymous,
        host_credentials: given,
        retry: RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn wrong(reg: &TestRegistry) -> Vec<HostCredential> {
    vec![HostCredential::from_user_pass(&reg.host(), &format!("{USER}:{PASSWORD}-wrong")).unwrap()]
}

fn right(reg: &TestRegistry) -> Vec<HostCredential> {
    vec![HostCredential::from_user_pass(&reg.host(), &format!("{USER}:{PASSWORD}")).unwrap()]
}

/// Neither the password nor its base64 form may be anywhere in `text`.
fn assert_no_secret(text: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let b64_wrong =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}-wrong"));
    for s in [PASSWORD, b64.as_str(), b64_wrong.as_str()] {
        assert!(!text.contains(s), "secret leaked into: {text}");
    }
}

fn push_small(c: &BlockingRegistry, target: &Reference) -> Result<(), RegistryError> {
    let dir = crate::common::tempdir();
    let img = make_image(dir.path(), 99, &[], &[1000], "amd64");
    c.push_image(target, &img.image).map(|_| ())
}

fn check(e: &RegistryError, must_contain: &[&str]) {
    let text = format!("{e}");
    eprintln!("error shown: {text}");
    for m in must_contain {
        assert!(text.contains(m), "{text:?} lacks {m:?}");
    }
    assert_no_secret(&text);
    assert_no_secret(&format!("{e:?}"));
}

#[test]
fn wrong_password_basic_and_token() {
    let log = logs();
    for auth in [Auth::Htpasswd, Auth::Token] {
        let reg = TestRegistry::start(auth);
        let c = BlockingRegistry::new(opts(wrong(&reg))).unwrap();
        let e = push_small(&c, &reg.reference("x/app:1")).unwrap_err();
        check(
            &e,
            &[&format!(
                "authentication failed for {} (check --creds / --from-creds / docker login)",
                reg.host()
            )],
        );
        let e = c
            .pull_manifest(&reg.reference("x/app:1"), None)
            .unwrap_err();
        assert!(matches!(e, RegistryError::AuthFailed { .. }), "{e}");

        // No credentials at all: say so, and how to give them.
        let c = BlockingRegistry::new(opts(vec![])).unwrap();
        let e = push_small(&c, &reg.reference("x/app:1")).unwrap_err();
        check(&e, &["requires authentication", "--creds"]);
        assert!(!reg.skopeo_has("x/app:1"));

        // The right password still works after all that (and is not logged either).
        let c = BlockingRegistry::new(opts(right(&reg))).unwrap();
        push_small(&c, &reg.reference("x/app:1")).unwrap();
        assert_no_secret(&format!("{:?}", opts(wrong(&reg))));
    }
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!log.is_empty(), "TRACE logging captured nothing");
    assert_no_secret(&log);
}

#[test]
fn unknown_repository_and_names() {
    let log = logs();
    let reg = TestRegistry::start(Auth::None);
    let c = BlockingRegistry::new(opts(vec![])).unwrap();
    let e = c
        .pull_manifest(&reg.reference("nope/missing:1"), None)
        .unwrap_err();
    check(&e, &["repository nope/missing not found on", &reg.host()]);
    let e = c
        .fetch_blob(
            &reg.reference("nope/missing:1"),
            &stevedore::digest::Digest::of(b"x"),
            1,
            crate::common::tempdir().path(),
        )
        .unwrap_err();
    check(&e, &["nope/missing"]);

    // An existing repository, unknown tag.
    push_small(&c, &reg.reference("yes/there:1")).unwrap();
    let e = c
        .pull_manifest(&reg.reference("yes/there:2"), None)
        .unwrap_err();
    check(&e, &["manifest", "yes/there:2", "not found"]);

    // Names the registry would refuse are refused before any traffic, saying why.
    let e = format!("{}/Upper/Case:1", reg.host())
        .parse::<Reference>()
        .unwrap_err();
    check(&e, &["Upper", "lowercase"]);
    let e = format!("{}/ok:bad tag", reg.host())
        .parse::<Reference>()
        .unwrap_err();
    check(&e, &["tag"]);
    drop(log);
}

#[test]
fn tls_mismatch_names_host_and_ca_file() {
    let reg = TestRegistry::start(Auth::Tls);
    // No CA given: the generated certificate is unknown.
    let c = BlockingRegistry::new(opts(right(&reg))).unwrap();
    let e = push_small(&c, &reg.reference("t/app:1")).unwrap_err();
    check(&e, &[&reg.host(), "--ca-file"]);
    assert!(matches!(e, RegistryError::Tls { .. }), "{e:?}");
    assert!(!reg.skopeo_has("t/app:1"));
    // A CA file that is not PEM: a setup error naming the file.
    let bad = tempfile::NamedTempFile::new_in(crate::common::scratch::root()).unwrap();
    std::fs::write(bad.path(), "not a certificate").unwrap();
    let e = match BlockingRegistry::new(RegistryOptions {
        ca_file: Some(bad.path().to_owned()),
        ..opts(vec![])
    }) {
        Err(e) => e,
        Ok(_) => panic!("a CA file without certificates was accepted"),
    };
    check(&e, &[&bad.path().display().to_string()]);
}

#[test]
fn unreachable_host_names_the_url() {
    let port = free_port(); // nothing listens there
    let c = BlockingRegistry::new(opts(vec![])).unwrap();
    let t0 = std::time::Instant::now();
    let e = push_small(&c, &format!("127.0.0.1:{port}/a/b:1").parse().unwrap()).unwrap_err();
    check(&e, &[&format!("127.0.0.1:{port}/v2/"), "cannot reach"]);
    assert!(t0.elapsed() < Duration::from_secs(10), "gave up too slowly");
}

#[test]
fn missing_push_right_is_denied_not_bad_password() {
    let reg = TestRegistry::start(Auth::Token);
    let c = BlockingRegistry::new(opts(right(&reg))).unwrap();
    // The token server grants only pull on readonly/*.
    let e = push_small(&c, &reg.reference("readonly/app:1")).unwrap_err();
    check(&e, &["access to readonly/app on", "denied", "push rights"]);
    assert!(!reg.skopeo_has("readonly/app:1"));
}
