//! SVG through graphviz's `dot -Tsvg`: graphviz lays graphs out far better than anything
//! small enough to write here, so the SVG is its work, not ours.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::GraphError;

/// How long `dot` may take: a graph of a few recipes renders in well under a second, so
/// this only stops a hung process from hanging the command.
const DOT_DEADLINE: Duration = Duration::from_secs(60);

/// Renders DOT text with `dot -Tsvg`.
pub fn to_svg(dot: &str) -> Result<Vec<u8>, GraphError> {
    let failed = |detail: String| GraphError::Dot { detail };
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => GraphError::DotMissing,
            _ => failed(format!("cannot start it: {e}")),
        })?;
    // Feed and drain on threads, so neither pipe can fill up and stall the other.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = dot.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.by_ref().take(64 * 1024).read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > DOT_DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "no answer within {} s",
                    DOT_DEADLINE.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(failed(format!("waiting for it: {e}"))),
        }
    };
    let written = writer.join().expect("the writer thread does not panic");
    let svg = reader.join().expect("the reader thread does not panic");
    let messages = errors.join().expect("the stderr thread does not panic");
    if !status.success() {
        return Err(failed(format!("{status}: {}", messages.trim())));
    }
    written.map_err(|e| failed(format!("writing the graph to it: {e}")))?;
    svg.map_err(|e| failed(format!("reading its output: {e}")))
}
