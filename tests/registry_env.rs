//! The environment is honoured: `SSL_CERT_FILE` (through the platform verifier's native roots) and
//! `DOCKER_CONFIG` (credentials as `docker login` stores them). A test binary of its own with one
//! test: it sets environment variables, which must happen before any other thread runs.

mod registry_support;

use registry_support::*;
use stevedore::registry::{BlockingRegistry, CredentialSource, RegistryOptions};

#[test]
fn ssl_cert_file_and_docker_config() {
    let reg = TestRegistry::start(Auth::Tls);
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", reg.ca_file.as_ref().unwrap());
        std::env::set_var("DOCKER_CONFIG", &docker);
        std::env::remove_var("REGISTRY_AUTH_FILE");
    }
    let img = make_image(dir.path(), 12, &[], &[100_000], "amd64");
    let c = BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::Auto,
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
