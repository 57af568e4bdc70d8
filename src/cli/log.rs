//! Logs on stderr, written for whoever reads them.
//!
//! - On a terminal: coloured levels and progress bars.
//! - Anywhere else (a CI log, a pipe, a file): plain text, no ANSI escape, one line per event;
//!   progress is the same lines a terminal shows above its bars, never a redrawn bar.
//! - `--log-format json`: one JSON object per line, for log collectors (Loki, Elastic, Cloud
//!   Logging). Progress events go through the same writer (target `stevedore::progress`), so
//!   the whole of stderr parses line by line.
//!
//! Colour follows the conventions users set once for all their tools: `NO_COLOR` (no-color.org)
//! turns it off, `CLICOLOR_FORCE` turns it on even when stderr is not a terminal, `CLICOLOR=0`
//! and `TERM=dumb` turn it off on a terminal.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: coloured on a terminal, plain elsewhere.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, message, fields, target.
    Json,
}

/// The target progress events are logged under in JSON mode.
pub const PROGRESS_TARGET: &str = "stevedore::progress";

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format `init` chose (text before it ran).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Whether stderr gets ANSI colours. `env` looks a variable up (the process environment in
/// `init`; a table in tests). Written out rather than taken from `anstyle-query`, which reads the
/// process environment only: this table is the whole decision and is tested as such.
pub fn colour(stderr_is_terminal: bool, env: &dyn Fn(&str) -> Option<OsString>) -> bool {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if set("NO_COLOR").is_some() {
        return false;
    }
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    stderr_is_terminal
        && env("CLICOLOR").is_none_or(|v| v != "0")
        && env("TERM").is_none_or(|v| v != "dumb")
}

/// Whether progress is drawn as bars: only in text mode on a terminal, never with `-q`.
pub fn bars(quiet: bool) -> bool {
    !quiet && format() == LogFormat::Text && std::io::stderr().is_terminal()
}

/// Installs the process's log writer on stderr. `-q` keeps errors only, `-v` adds debug and
/// `-vv` trace; `RUST_LOG` (tracing's syntax) replaces the level when set.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let _ = FORMAT.set(format);
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rPGP warns about every Trust packet in Ubuntu's keyring (GnuPG keyring files carry
        // them; they are rightly ignored): not something the user can act on.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},pgp=error")))
        // Progress is shown unless -q, which the progress writers check themselves.
        .add_directive(
            format!("{PROGRESS_TARGET}=info")
                .parse()
                .expect("a valid directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(colour(std::io::stderr().is_terminal(), &|k| {
                std::env::var_os(k)
            }))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn colour_only_for_terminals_unless_forced() {
        assert!(colour(true, &env(&[("TERM", "xterm")])));
        assert!(colour(true, &env(&[])));
        assert!(!colour(false, &env(&[("TERM", "xterm")])));
        assert!(!colour(true, &env(&[("TERM", "dumb")])));
        assert!(!colour(true, &env(&[("CLICOLOR", "0")])));
        assert!(colour(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!colour(false, &env(&[("CLICOLOR_FORCE", "0")])));
    }

    #[test]
    fn no_color_wins() {
        assert!(!colour(true, &env(&[("NO_COLOR", "1")])));
        assert!(!colour(
            true,
            &env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")])
        ));
        // no-color.org: set and not empty.
        assert!(colour(true, &env(&[("NO_COLOR", "")])));
    }
}
