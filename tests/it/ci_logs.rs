//! Logs a CI system can keep: no ANSI escape unless stderr is a terminal (or CLICOLOR_FORCE
//! asks), none with NO_COLOR even on one, one line per event, and JSON lines for collectors.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A files-only recipe (no network), built with `-v` so that debug events are logged too.
fn project(dir: &Path) -> String {
    write(&dir.join("site/index.html"), "<h1>hi</h1>\n");
    write(
        &dir.join("site.toml"),
        "[image]\nname = \"localhost/site\"\n[[layers]]\nname = \"site\"\nfiles = [{ src = \"site\", dest = \"/srv\" }]\n",
    );
    path_str(&dir.join("site.toml")).to_string()
}

/// Whether `bytes` hold an SGR (colour) sequence, `ESC [ … m`.
fn has_colour(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b[" && {
            let rest = &bytes[i + 2..];
            let end = rest
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b';'));
            end.is_some_and(|e| rest[e] == b'm')
        }
    })
}

#[test]
fn piped_stderr_has_no_escape_and_one_line_per_event() {
    let t = tempdir();
    let recipe = project(t.path());
    let cache = t.path().join("cache");
    let out = stevedore_env(&cache, &["-v", "build", &recipe], &[("TERM", "xterm")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.contains("DEBUG")),
        "-v logged no debug event, so colour was not tried: {err}"
    );
    assert!(err.contains("layer site"), "no progress line: {err}");
    assert!(
        !out.stderr.contains(&0x1b),
        "an escape byte in piped stderr: {err:?}"
    );
    assert!(!out.stderr.contains(&b'\r'), "a redrawn line: {err:?}");

    // The same run asked to colour anyway: the check above could fail.
    let forced = stevedore_env(
        &t.path().join("cache2"),
        &["-v", "build", &recipe],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(has_colour(&forced.stderr), "{}", stderr(&forced));
}

/// Runs `stevedore -v build RECIPE` on a pseudo-terminal (util-linux `script`); what the
/// terminal showed.
fn on_terminal(cache: &Path, recipe: &str, no_color: bool) -> Vec<u8> {
    require_tool("script", "util-linux");
    let command = format!(
        "'{BIN}' --cache-dir '{}' -v build '{recipe}'",
        cache.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    run(&mut cmd).stdout
}

#[test]
fn a_terminal_gets_colour_unless_no_color() {
    let t = tempdir();
    let recipe = project(t.path());
    let coloured = on_terminal(&t.path().join("cache"), &recipe, false);
    let text = String::from_utf8_lossy(&coloured);
    assert!(text.contains("DEBUG"), "{text}");
    assert!(has_colour(&coloured), "no colour on a terminal: {text:?}");

    let plain = on_terminal(&t.path().join("cache2"), &recipe, true);
    let text = String::from_utf8_lossy(&plain);
    assert!(text.contains("DEBUG"), "{text}");
    assert!(!has_colour(&plain), "colour despite NO_COLOR: {text:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let t = tempdir();
    let recipe = project(t.path());
    let out = stevedore_env(
        &t.path().join("cache"),
        &["-v", "--log-format", "json", "build", &recipe],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "stdout is the digest only");
    let mut levels = std::collections::BTreeSet::new();
    let mut messages = Vec::new();
    for line in stderr(&out).lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(v["timestamp"].is_string(), "{line}");
        levels.insert(v["level"].as_str().unwrap().to_string());
        messages.push(v["message"].as_str().unwrap_or_default().to_string());
    }
    assert!(levels.contains("DEBUG"), "{levels:?}");
    assert!(
        messages.iter().any(|m| m.starts_with("layer site")),
        "progress is not in the JSON stream: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("built 1 of 1 layers")),
        "the summary is not in the JSON stream: {messages:?}"
    );
    assert!(!out.stderr.contains(&0x1b), "{}", stderr(&out));
}
