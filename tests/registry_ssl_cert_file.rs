//! `SSL_CERT_FILE` is honoured (through the platform verifier's native roots). A test binary of its
//! own: it sets an environment variable, which must happen before any other thread runs.

mod registry_support;

use registry_support::*;
use stevedore::registry::{BlockingRegistry, CredentialSource, RegistryOptions};

#[test]
fn ssl_cert_file_trusts_the_registry_ca() {
    let reg = TestRegistry::start(Auth::Tls);
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe { std::env::set_var("SSL_CERT_FILE", reg.ca_file.as_ref().unwrap()) };
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), 12, &[], &[100_000], "amd64");
    let c = BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::from_user_pass(&format!("{USER}:{PASSWORD}")).unwrap(),
        ca_file: None,
        ..Default::default()
    })
    .unwrap();
    let r = c
        .push_image(&reg.reference("sslenv/app:1"), &img.image)
        .unwrap();
    assert_eq!(r.manifest_digest, img.manifest_digest);
    assert_eq!(reg.skopeo_raw("sslenv/app:1"), img.image.manifest.bytes);
}
