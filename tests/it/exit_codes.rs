//! The exit codes are a contract (README, `stevedore --help`): each class of failure is pinned
//! here through the real binary. 1: the build failed on this machine; 3: invalid input; 4: an
//! outside service (registry or apt mirror) failed.

use crate::apt_support;
use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apt_support::{RepoSpec, Server, TestDeb, build_repo, fixtures};
use common::*;

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A recipe with one package layer from `mirror` (signed by the test key).
fn package_recipe(dir: &Path, mirror: &str) -> PathBuf {
    let path = dir.join("image.toml");
    write(
        &path,
        format!(
            "[[sources]]\nmirrors = [\"{mirror}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"hello\"]\n",
            fixtures().join("test-keyring.gpg").display()
        ),
    );
    path
}

fn hello_repo() -> apt_support::Repo {
    apt_support::require_tool("gpg", "gnupg");
    build_repo(&RepoSpec::new(vec![TestDeb::new("hello", "1.0")]))
}

#[test]
fn a_mirror_that_cannot_be_reached_during_a_cold_build_is_exit_4() {
    let t = tempdir();
    // No lockfile: resolving needs the mirror's InRelease.
    let mirror = format!("http://127.0.0.1:{}/debian", closed_port());
    let recipe = package_recipe(t.path(), &mirror);
    let started = Instant::now();
    // One retry: the class of the failure is the point here, the retry policy is tested in
    // ci_conventions (and four backed-off retries cost this test ~12 s of waiting).
    let out = stevedore(
        &t.path().join("cache"),
        &["build", "--retries", "1", path_str(&recipe)],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&mirror), "names the URL: {err}");
    assert!(err.contains("image.toml:"), "names the recipe line: {err}");
    assert!(stdout(&out).is_empty(), "no digest on failure");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up in bounded time"
    );

    // Locked, with the mirror gone before the packages were downloaded: the same class.
    let repo = hello_repo();
    let server = Server::serve(repo.root());
    let recipe = package_recipe(t.path(), &server.url());
    let lock = stevedore(&t.path().join("cache"), &["lock", path_str(&recipe)]);
    assert!(lock.status.success(), "{}", stderr(&lock));
    drop(server); // the mirror goes down
    let out = stevedore(
        &t.path().join("cold-cache"),
        &["build", "--locked", "--retries", "1", path_str(&recipe)],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("hello"), "{}", stderr(&out));
}

/// A registry that refuses every request: 401 with a Basic challenge, whatever the credentials.
struct RefusingRegistry {
    port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RefusingRegistry {
    fn start() -> RefusingRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    // Reads the request head (or whatever a TLS probe sends) for up to a
                    // second, then refuses and closes.
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 65536 {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        RefusingRegistry {
            port,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for RefusingRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn a_registry_refusing_the_credentials_is_exit_4() {
    let registry = RefusingRegistry::start();
    let t = tempdir();
    write(&t.path().join("files/a.txt"), "a\n");
    let recipe = t.path().join("app.toml");
    write(
        &recipe,
        "[[layers]]\nname = \"app\"\nfiles = [{ src = \"files\", dest = \"/app\" }]\n",
    );
    let target = format!("127.0.0.1:{}/team/app:v1", registry.port);
    let started = Instant::now();
    let out = stevedore_env(
        &t.path().join("cache"),
        &["build", path_str(&recipe), "--push", &target],
        &[
            ("STEVEDORE_CREDS", "ci:not-the-password"),
            ("DOCKER_CONFIG", "/nonexistent"),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{}", registry.port)),
        "names the registry: {err}"
    );
    assert!(!err.contains("not-the-password"), "secret leaked: {err}");
    assert!(stdout(&out).is_empty(), "no digest on failure");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_bad_recipe_is_exit_3_naming_the_line() {
    let t = tempdir();
    let recipe = t.path().join("bad.toml");
    write(
        &recipe,
        "[[layers]]\nname = \"x\"\nfiles = [{ src = \"missing\", dest = \"/x\" }]\nbogus = 1\n",
    );
    let out = stevedore(&t.path().join("cache"), &["build", path_str(&recipe)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.toml:"), "{}", stderr(&out));

    // A well-formed recipe whose source is missing: input too, at the item's line.
    write(
        &recipe,
        "[[layers]]\nname = \"x\"\nfiles = [{ src = \"missing\", dest = \"/x\" }]\n",
    );
    let out = stevedore(&t.path().join("cache"), &["build", path_str(&recipe)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.toml:3:"), "{}", stderr(&out));
}

/// A lockfile that cannot be written is the machine's failure (exit 1), named as a lockfile,
/// not as the cache. Root ignores permission bits, so the lockfile's path is a folder: the
/// rename onto it fails for root too.
#[test]
fn a_lockfile_that_cannot_be_written_is_exit_1() {
    let repo = hello_repo();
    let server = Server::serve(repo.root());
    let t = tempdir();
    let recipe = package_recipe(t.path(), &server.url());
    let lockfile = t.path().join("image.lock");
    std::fs::create_dir(&lockfile).unwrap();
    let out = stevedore(&t.path().join("cache"), &["lock", path_str(&recipe)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("writing lockfile {}", lockfile.display())),
        "{err}"
    );
    assert!(!err.contains("cache "), "not reported as the cache: {err}");
    assert!(lockfile.is_dir(), "nothing was replaced");
    let stray: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "no temp file left behind: {stray:?}");
}
