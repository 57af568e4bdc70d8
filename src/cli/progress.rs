//! Progress on stderr while building and pushing: bars on a terminal, one plain line per event
//! elsewhere (CI logs), one JSON object per event with `--log-format json`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::human;
use super::log::{self, LogFormat, PROGRESS_TARGET};
use super::metadata::{Outcome, PushLog};
use crate::build::{BuildResult, LayerStatus, Progress};
use crate::cache::LayerRecord;
use crate::digest::Digest;
use crate::output::OutputTarget;
use crate::plan::PlannedLayer;
use crate::registry::{PushProgress, PushReport, Reference};

/// Writes one progress line: above the bars on a terminal, as a JSON event in JSON mode, else
/// a plain line.
fn emit(bars: Option<&MultiProgress>, line: &str) {
    if log::format() == LogFormat::Json {
        tracing::info!(target: PROGRESS_TARGET, "{line}");
        return;
    }
    match bars {
        Some(b) => b.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Build progress (the [`Progress`] a build reports to).
pub struct BuildLines {
    quiet: bool,
    bars: Option<MultiProgress>,
    active: Mutex<Vec<(String, ProgressBar)>>,
}

impl BuildLines {
    pub fn new(quiet: bool) -> Self {
        BuildLines {
            quiet,
            bars: log::bars(quiet).then(MultiProgress::new),
            active: Mutex::default(),
        }
    }

    fn line(&self, msg: String) {
        if !self.quiet {
            emit(self.bars.as_ref(), &msg);
        }
    }

    /// Clears the bars once the build is done.
    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            let _ = b.clear();
        }
    }
}

impl Progress for BuildLines {
    fn base_resolved(&self, reference: &str, digest: &Digest, layers: usize) {
        self.line(format!("base  {reference} = {digest} ({layers} layers)"));
    }

    fn layer_cached(&self, layer: &PlannedLayer, record: &LayerRecord) {
        self.line(format!(
            "layer {:<16} cached  {} ({})",
            layer.name,
            record.digest.short(),
            human(record.size)
        ));
    }

    fn layer_started(&self, layer: &PlannedLayer) {
        if let Some(b) = &self.bars {
            let bar = b.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} layer {msg} {elapsed}")
                    .expect("valid template"),
            );
            bar.set_message(layer.name.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            self.active
                .lock()
                .expect("no panics hold this lock")
                .push((layer.name.clone(), bar));
        }
    }

    fn layer_written(&self, layer: &PlannedLayer, record: &LayerRecord, elapsed: Duration) {
        let mut active = self.active.lock().expect("no panics hold this lock");
        if let Some(pos) = active.iter().position(|(n, _)| *n == layer.name) {
            active.remove(pos).1.finish_and_clear();
        }
        drop(active);
        self.line(format!(
            "layer {:<16} built   {} ({} from {} of tar) in {:.2}s",
            layer.name,
            record.digest.short(),
            human(record.size),
            human(record.diff_size),
            elapsed.as_secs_f64()
        ));
    }

    fn output_written(&self, target: &OutputTarget, elapsed: Duration) {
        self.line(format!("wrote {target} in {:.2}s", elapsed.as_secs_f64()));
    }
}

/// Push progress: a bar per blob in flight (bytes, rate) on a terminal, and one line per blob
/// when it is done — uploaded (size, time, rate), mounted or already there.
pub struct PushLines {
    quiet: bool,
    bars: Option<MultiProgress>,
    /// Blobs in flight: when each started, and its bar on a terminal.
    active: Mutex<HashMap<Digest, (Instant, Option<ProgressBar>)>>,
    /// Every finished blob, for `--metadata-file`.
    log: PushLog,
}

impl PushLines {
    pub fn new(quiet: bool) -> PushLines {
        PushLines {
            quiet,
            bars: log::bars(quiet).then(MultiProgress::new),
            active: Mutex::default(),
            log: PushLog::default(),
        }
    }

    /// What became of each blob pushed so far.
    pub fn log(&self) -> &PushLog {
        &self.log
    }

    fn line(&self, text: String) {
        if !self.quiet {
            emit(self.bars.as_ref(), &text);
        }
    }

    /// Forgets a blob, clearing its bar; how long it was in flight.
    fn finish(&self, digest: &Digest) -> Option<Duration> {
        let (started, bar) = self
            .active
            .lock()
            .expect("no panics hold this lock")
            .remove(digest)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Some(started.elapsed())
    }
}

impl PushProgress for PushLines {
    fn blob_started(&self, digest: &Digest, size: u64) {
        if self.quiet {
            return;
        }
        let bar = self.bars.as_ref().map(|b| {
            let bar = b.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "blob {msg} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                )
                .expect("valid template"),
            );
            bar.set_message(digest.short().to_string());
            bar
        });
        self.active
            .lock()
            .expect("no panics hold this lock")
            .insert(digest.clone(), (Instant::now(), bar));
    }
    fn blob_progress(&self, digest: &Digest, done: u64, _size: u64) {
        if let Some((_, Some(bar))) = self
            .active
            .lock()
            .expect("no panics hold this lock")
            .get(digest)
        {
            bar.set_position(done);
        }
    }
    fn blob_uploaded(&self, digest: &Digest, size: u64) {
        let took = self.finish(digest);
        self.log.record(digest, size, Outcome::Uploaded);
        let rate = took
            .filter(|t| t.as_secs_f64() > 0.0)
            .map(|t| {
                format!(
                    " in {:.2}s, {}/s",
                    t.as_secs_f64(),
                    human((size as f64 / t.as_secs_f64()) as u64)
                )
            })
            .unwrap_or_default();
        self.line(format!(
            "blob {} uploaded ({}){rate}",
            digest.short(),
            human(size)
        ));
    }
    fn blob_skipped(&self, digest: &Digest, size: u64) {
        self.finish(digest);
        self.log.record(digest, size, Outcome::Skipped);
        self.line(format!("blob {} already there", digest.short()));
    }
    fn blob_mounted(&self, digest: &Digest, size: u64, from: &str) {
        self.finish(digest);
        self.log
            .record(digest, size, Outcome::Mounted(from.to_string()));
        self.line(format!("blob {} mounted from {from}", digest.short()));
    }
    fn blob_retrying(&self, digest: &Digest, reason: &str) {
        self.line(format!("blob {} retrying: {reason}", digest.short()));
    }
}

/// The one-line summary of a push.
pub fn report_push(report: &PushReport, target: &Reference, quiet: bool) {
    if !quiet {
        emit(
            None,
            &format!(
                "pushed {} [{}]: {} uploaded ({}), {} mounted, {} already there",
                target.name(),
                report.tags.join(", "),
                report.blobs_uploaded,
                human(report.bytes_uploaded),
                report.blobs_mounted,
                report.blobs_skipped
            ),
        );
    }
}

/// A status line on stderr (not a log event in text mode: no time or level before it).
pub fn note(line: &str) {
    emit(None, line);
}

/// The error that ends the run: `error: …` on stderr, an ERROR event in JSON mode.
pub fn error(message: &str) {
    if log::format() == LogFormat::Json {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// What a build did, after its layers: how many were built, and the setup coverage.
pub fn build_summary(result: &BuildResult, recipe: &std::path::Path, quiet: bool) {
    if quiet {
        return;
    }
    let built = result
        .layers
        .iter()
        .filter(|l| l.status == LayerStatus::Built)
        .count();
    if built == 0 {
        note(&format!(
            "image is up to date ({} layers cached)",
            result.layers.len()
        ));
    } else {
        note(&format!(
            "built {built} of {} layers; image {}",
            result.layers.len(),
            result.manifest_digest().short()
        ));
    }
    if let Some(c) = &result.coverage {
        let summary = c.summary();
        note(&format!("setup: {summary}"));
        if summary.not_covered > 0 {
            note(&format!(
                "  see `stevedore plan --scripts {}` for each command; --strict makes this an error",
                recipe.display()
            ));
        }
    }
}
