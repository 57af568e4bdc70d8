//! The environment is honoured: `SSL_CERT_FILE` (through the platform verifier's native roots) and
//! `DOCKER_CONFIG` (credentials as `docker login` stores them).
//!
//! Environment variables are process-wide and every test shares this binary, so the test never
//! sets them on itself: it runs this same binary again as a child, filtered to `child`, with the
//! variables set on the child process only. In an ordinary run `child` finds no
//! `STEVEDORE_TEST_REGISTRY_ENV` and returns at once.

use std::process::Command;

use crate::registry_support::*;
use stevedore::registry::{BlockingRegistry, CredentialSource, RegistryOptions};

const CHILD: &str = "STEVEDORE_TEST_REGISTRY_ENV";

#[test]
fn ssl_cert_file_and_docker_config() {
    let reg = TestRegistry::start(Auth::Tls);
    let dir = crate::common::tempdir();
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["registry_env::child", "--exact", "--nocapture"])
        .env(CHILD, reg.host())
        .env("STEVEDORE_TEST_REGISTRY_ENV_DIR", dir.path())
        .env("SSL_CERT_FILE", reg.ca_file.as_ref().unwrap())
        .env("DOCKER_CONFIG", &docker)
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pushed through the environment"),
        "{stdout}"
    );
    assert_eq!(
        reg.skopeo_raw("sslenv/app:1"),
        std::fs::read(dir.path().join("pushed-manifest")).unwrap()
    );
}

/// The half that runs in the child process, with the environment the parent gave it.
#[test]
fn child() {
    let Ok(host) = std::env::var(CHILD) else {
        return;
    };
    let dir =
        std::path::PathBuf::from(std::env::var_os("STEVEDORE_TEST_REGISTRY_ENV_DIR").unwrap());
    let img = make_image(&dir, 12, &[], &[100_000], "amd64");
    let c = BlockingRegistry::new(RegistryOptions {
        credentials: CredentialSource::Auto,
        ca_file: None,
        ..Default::default()
    })
    .unwrap();
    let target = format!("{host}/sslenv/app:1").parse().unwrap();
    let r = c.push_image(&target, &img.image).unwrap();
    assert_eq!(r.manifest_digest, img.manifest_digest);
    std::fs::write(dir.join("pushed-manifest"), &img.image.manifest.bytes).unwrap();
    println!("pushed through the environment");
}
