//! Hostile packages end to end: a signed apt repository of the tests' own whose packages'
//! postinst scripts hold shell bombs. `plan --scripts` reads them in bounded time and memory
//! and reports each as not covered; `--strict` turns that into exit 3.

use crate::apt_support;
use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use apt_support::{RepoSpec, Server, TestDeb, build_repo, fixtures, require_tool};
use common::*;

/// Ten loops of a hundred values around one command: 10^20 commands if expanded.
fn nested_loops() -> String {
    let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    let mut s = String::new();
    let mut used = String::new();
    for v in 0..10 {
        s.push_str(&format!("for v{v} in {}; do\n", words.join(" ")));
        used.push_str(&format!("$v{v}"));
    }
    s.push_str(&format!("touch /var/lib/x{used}\n"));
    s + &"done\n".repeat(10)
}

/// A hundred bytes multiplied by ten six times: a 100 MB word.
fn growing_word() -> String {
    let mut s = format!("a0={}\n", "x".repeat(100));
    for k in 1..=6 {
        s.push_str(&format!("a{k}=\"{}\"\n", format!("$a{}", k - 1).repeat(10)));
    }
    s + "echo \"$a6\" > /etc/motd\n"
}

/// (package, postinst body, what its report line must say).
fn bombs() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "bomb-seq",
            "for i in $(seq 1 1000000000); do\n  touch /var/lib/x$i\ndone\n".into(),
            "too complex to read: a loop over more than 10000 values",
        ),
        (
            "bomb-seq-max",
            "for i in $(seq 1 18446744073709551615); do touch /x$i; done\n".into(),
            "too complex to read: a loop over more than 10000 values",
        ),
        (
            "bomb-loops",
            nested_loops(),
            "too complex to read: over 10000 commands expanded",
        ),
        (
            "bomb-subst",
            format!("x={}echo{}\n", "$(".repeat(10_000), ")".repeat(10_000)),
            "too complex to read: nesting deeper than 64",
        ),
        (
            "bomb-word",
            growing_word(),
            "too complex to read: a word over 1024 KiB",
        ),
        // Never run, only read: each command is judged once, and these are unknown.
        (
            "bomb-recursion",
            "f() {\n  f\n  /usr/sbin/hostile-recursion\n}\nf\n".into(),
            "/usr/sbin/hostile-recursion",
        ),
        (
            "bomb-while",
            "while true; do\n  /usr/sbin/hostile-spin\ndone\n".into(),
            "/usr/sbin/hostile-spin",
        ),
    ]
}

/// Runs stevedore, sampling its peak resident memory (VmHWM) until it exits.
fn run_measured(cache: &Path, args: &[&str]) -> (Output, Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("STEVEDORE_CACHE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stevedore");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    // Pipes are drained by threads so that a large report cannot block the child.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).map(|_| v)
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut v).map(|_| v)
    });
    let exit = loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("stevedore {args:?} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status: exit,
        stdout: out_reader.join().unwrap().unwrap(),
        stderr: err_reader.join().unwrap().unwrap(),
    };
    (output, start.elapsed(), peak_kib)
}

#[test]
fn shell_bombs_in_maintainer_scripts_are_reported_not_run() {
    require_tool("gpg", "gnupg");
    let bombs = bombs();
    let debs: Vec<TestDeb> = bombs
        .iter()
        .map(|(name, body, _)| {
            TestDeb::new(name, "1").postinst(&format!("#!/bin/sh\nset -e\n{body}"))
        })
        .collect();
    let repo = build_repo(&RepoSpec::new(debs));
    let server = Server::serve(repo.root());
    let t = tempdir();
    let names: Vec<String> = bombs.iter().map(|(n, _, _)| format!("\"{n}\"")).collect();
    let recipe = t.path().join("image.toml");
    write(
        &recipe,
        format!(
            "[image]\nname = \"localhost/hostile\"\n\n[[sources]]\nmirrors = [\"{}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"bombs\"\npackages = [{}]\n",
            server.url(),
            fixtures().join("test-keyring.gpg").display(),
            names.join(", ")
        ),
    );
    let cache = t.path().join("cache");
    let (report, took, peak_kib) = run_measured(&cache, &["plan", "--scripts", path_str(&recipe)]);
    assert!(report.status.success(), "{}", stderr(&report));
    eprintln!("plan --scripts over the bombs: {took:?}, peak RSS {peak_kib} KiB");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(peak_kib < 512 << 10, "peak RSS {peak_kib} KiB");
    let text = stdout(&report);
    // The report: a `package postinst:` header, then one line per command.
    let mut current = "";
    let mut lines: Vec<(&str, &str)> = Vec::new();
    for l in text.lines() {
        if let Some(head) = l.strip_suffix(':')
            && !l.starts_with(' ')
        {
            current = head;
        } else if l.starts_with(' ') {
            lines.push((current, l));
        }
    }
    for (name, _, wanted) in &bombs {
        let header = format!("{name} postinst");
        let uncovered: Vec<&str> = lines
            .iter()
            .filter(|(h, l)| *h == header && l.contains("NOT COVERED"))
            .map(|(_, l)| *l)
            .collect();
        assert!(
            uncovered.iter().any(|l| l.contains(wanted)),
            "{name}: no NOT COVERED line with {wanted:?} in:\n{text}"
        );
    }

    // --strict: exit 3 naming the scripts, nothing written.
    let layout = t.path().join("out");
    let out_arg = format!("oci:{}", layout.display());
    for args in [
        vec!["plan", "--strict", path_str(&recipe)],
        vec!["build", "--strict", "-o", &out_arg, path_str(&recipe)],
    ] {
        let (out, took, _) = run_measured(&cache, &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(took < Duration::from_secs(60), "{took:?}");
        let err = stderr(&out);
        for (name, _, _) in &bombs {
            assert!(
                err.contains(&format!("{name} postinst:")),
                "{name} in:\n{err}"
            );
        }
        assert!(!layout.exists(), "nothing is written on a strict failure");
    }
}
