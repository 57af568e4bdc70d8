//! Conventions a CI user expects: completions and man pages from the CLI definition, and
//! `--timeout`/`--retries` that reach apt mirrors as well as registries.

use crate::apt_support;
use crate::common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn bash_completion_loads_and_man_pages_name_every_command() {
    let t = tempdir();
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let script = t.path().join("stevedore.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // bash itself loads it and registers the completion for `stevedore`.
    let loaded = run(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && complete -p stevedore",
        script.display()
    )));
    assert!(stdout(&loaded).contains("stevedore"), "{}", stdout(&loaded));
    assert!(stdout(&out).contains("--metadata-file"));

    let man = Command::new(BIN).arg("man").output().unwrap();
    assert!(man.status.success(), "{}", stderr(&man));
    assert!(
        stdout(&man).starts_with(".ie") || stdout(&man).contains(".TH stevedore 1"),
        "{}",
        stdout(&man)
    );
    let dir = t.path().join("man1");
    let pages = Command::new(BIN)
        .arg("man")
        .arg("--out-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(pages.status.success(), "{}", stderr(&pages));
    for cmd in ["build", "plan", "inspect", "cache", "completions"] {
        let page = dir.join(format!("stevedore-{cmd}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(".TH"), "{text}");
    }
    let build_page = std::fs::read_to_string(dir.join("stevedore-build.1")).unwrap();
    assert!(build_page.contains("metadata"), "{build_page}");
}

/// A mirror that accepts connections and never answers; how many it accepted.
fn silent_mirror() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    (format!("http://{addr}/debian"), accepted)
}

#[test]
fn timeout_and_retries_reach_apt_mirrors() {
    let t = tempdir();
    let (mirror, accepted) = silent_mirror();
    let recipe = t.path().join("image.toml");
    write(
        &recipe,
        format!(
            "[image]\nname = \"localhost/silent\"\n\n[[sources]]\nmirrors = [\"{mirror}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"app\"\npackages = [\"app\"]\n",
            apt_support::fixtures().join("test-keyring.gpg").display()
        ),
    );
    let started = Instant::now();
    let out = stevedore(
        &t.path().join("cache"),
        &[
            "lock",
            path_str(&recipe),
            "--timeout",
            "1",
            "--retries",
            "1",
        ],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // The default would wait 60 s per attempt.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one attempt and one retry: {}",
        stderr(&out)
    );
}
