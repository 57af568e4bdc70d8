//! The `stevedore` command: parses arguments, calls the library, maps errors to exit codes.

#![warn(clippy::too_many_lines)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use stevedore::ErrorClass;
use stevedore::build::{self, BuildError, BuildOptions, LayerStatus, Progress};
use stevedore::cache::LayerRecord;
use stevedore::digest::Digest;
use stevedore::output::{self, OutputTarget};
use stevedore::plan::{LockMode, PlannedLayer};
use stevedore::registry::{
    BlockingRegistry, CredentialSource, HostCredential, PushProgress, PushReport, Reference,
    RegistryOptions,
};

/// `println!` that ends the process quietly when stdout is closed (`stevedore plan | head`)
/// instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

const AFTER_HELP: &str = "\
Examples:
  stevedore build recipes/webapp.toml --output oci:out/webapp
  stevedore build recipes/webapp.toml --output docker-archive:webapp.tar
  stevedore build recipes/webapp.toml --push registry.local:5000/team/webapp:v1
  stevedore push oci:out/webapp:latest registry.local:5000/team/webapp
  stevedore plan recipes/webapp.toml
  stevedore inspect oci:out/webapp:latest

Exit codes:
  0  success
  1  the build failed on this machine: I/O, cache, output, writing the lockfile
  2  invalid command line
  3  invalid input: recipe, sources, lockfile, keyring, packages, SOURCE_DATE_EPOCH
  4  an outside service failed: a registry refused (auth, denied) or could not be
     reached (nothing is tagged on failure), or an apt mirror could not be reached,
     answered 5xx or served files that do not match their signed digests
  5  verify: the rebuild differs from the reference image
`cache gc` waits until running builds, locks, verifies and pushes are done.

The cache lives in --cache-dir, else $STEVEDORE_CACHE, else $XDG_CACHE_HOME/stevedore
(~/.cache/stevedore).";

#[derive(Parser)]
#[command(name = "stevedore", version, about = "Build container images from declarative recipes: no daemon, no Dockerfile, same inputs → same digests.", after_help = AFTER_HELP)]
struct Cli {
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Cache directory (blobs and layer records), shared by all builds.
    #[arg(long, env = "STEVEDORE_CACHE", global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the image a recipe describes; prints its manifest digest on stdout.
    #[command(
        after_help = "Example:\n  stevedore build recipes/webapp.toml --output oci:out/webapp:v1"
    )]
    Build {
        /// The recipe (TOML).
        recipe: PathBuf,
        /// Where to write the image: oci:DIR[:TAG] or docker-archive:FILE. Repeatable.
        #[arg(long, short, value_name = "TARGET")]
        output: Vec<OutputTarget>,
        /// Tag(s) to use instead of the recipe's. Repeatable.
        #[arg(long, short, value_name = "TAG")]
        tag: Vec<String>,
        /// Layers written in parallel (default: number of CPUs).
        #[arg(long, short, value_name = "N")]
        jobs: Option<usize>,
        /// Use only the lockfile (RECIPE.lock); fail if it is missing or out of date. With a warm
        /// cache the build then needs no network.
        #[arg(long)]
        locked: bool,
        /// Fail when a package's maintainer-script command is not reproduced or deliberately
        /// ignored by stevedore's setup (see `stevedore plan --scripts`).
        #[arg(long)]
        strict: bool,
        /// Push the image to REF (registry/repository[:tag]); without a tag, the image's tags.
        #[arg(long, value_name = "REF", value_parser = parse_reference)]
        push: Option<Reference>,
        #[command(flatten)]
        fleet: Box<FleetArgs>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Push an image from an OCI layout to a registry; prints the manifest digest on stdout.
    #[command(
        after_help = "Example:\n  stevedore push oci:out/webapp:latest registry.local:5000/team/webapp:v1"
    )]
    Push {
        /// oci:DIR[:TAG] (a DIR holding one image needs no TAG).
        source: String,
        /// registry/repository[:tag]; without a tag, the layout's tag.
        #[arg(value_parser = parse_reference)]
        target: Reference,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Cache maintenance: `du` shows usage, `gc` removes what is no longer used.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Rebuild in a fresh cache and compare with the last build (or --against an OCI layout),
    /// naming every file that differs.
    Verify {
        recipe: PathBuf,
        /// The reference image: oci:DIR[:TAG]. Default: the last build of RECIPE in this cache.
        #[arg(long, value_name = "TARGET")]
        against: Option<String>,
        /// Use only the lockfile.
        #[arg(long)]
        locked: bool,
    },
    /// Resolve the recipe's package layers and registry base; write RECIPE.lock next to it.
    Lock {
        recipe: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show the layers of a recipe, their sources, and which would be rebuilt.
    Plan {
        recipe: PathBuf,
        /// Also print, for every installed package, each maintainer-script command and
        /// whether setup reproduced it, ignored it on purpose (and why), or did not cover it.
        #[arg(long)]
        scripts: bool,
        /// Fail (exit 3) when a script command is not covered.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show the manifest, config and layers of an OCI layout or docker archive.
    #[command(after_help = "TARGET is oci:DIR[:TAG], docker-archive:FILE, or a bare path.")]
    Inspect {
        target: String,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Bytes and files by kind.
    Du,
    /// Remove entries unused for a while, keeping what the given recipes use.
    #[command(
        after_help = "Examples:\n  stevedore cache gc                      # unused for 30 days\n  stevedore cache gc --older-than 7\n  stevedore cache gc --keep recipes/webapp.toml --older-than 0"
    )]
    Gc {
        /// Remove what was not used for this many days (default 30; 0 = everything not kept).
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Keep every layer and package this recipe uses. Repeatable.
        #[arg(long, value_name = "RECIPE")]
        keep: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RegistryArgs {
    /// Credentials USER:PASSWORD for the push destination only (never sent to any other
    /// registry). Default: docker's config.json ($DOCKER_CONFIG), containers' auth.json
    /// ($REGISTRY_AUTH_FILE) and their credential helpers, for each registry's own host.
    #[arg(
        long,
        env = "STEVEDORE_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
    /// Credentials for one other registry (a base image's), sent to that registry only.
    /// Repeatable; in the environment, one per line.
    #[arg(
        long,
        env = "STEVEDORE_FROM_CREDS",
        hide_env_values = true,
        value_name = "HOST=USER:PASS",
        value_delimiter = '\n'
    )]
    from_creds: Vec<String>,
    /// Allow plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
    /// Extra CA certificate (PEM) to trust for the registry; SSL_CERT_FILE works too.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Seconds a registry connection may move no byte before the request is retried (default
    /// 60); a manifest or token must also arrive whole within 4 times this.
    #[arg(long, env = "STEVEDORE_REGISTRY_TIMEOUT", value_name = "SECS")]
    registry_timeout: Option<u64>,
    /// Retries of a failed registry request (default 5).
    #[arg(long, env = "STEVEDORE_REGISTRY_RETRIES", value_name = "N")]
    registry_retries: Option<usize>,
}

impl RegistryArgs {
    /// The registry options of a run; `--creds` is tied to `push`, the push destination (a run
    /// without one has no use for it).
    fn options(&self, quiet: bool, push: Option<&Reference>) -> anyhow::Result<RegistryOptions> {
        // A malformed value is a command-line error (exit 2), reported without the value: it
        // holds a password.
        let invalid = |flag: &str, e: stevedore::registry::RegistryError| -> ! {
            let detail = match e {
                stevedore::registry::RegistryError::Credentials { detail, .. } => detail,
                other => other.to_string(),
            };
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("{flag}: {detail}\n"),
            )
            .exit()
        };
        let mut host_credentials = Vec::new();
        match (&self.creds, push) {
            (Some(c), Some(target)) => host_credentials.push(
                HostCredential::from_user_pass(&target.registry, c)
                    .unwrap_or_else(|e| invalid("--creds", e)),
            ),
            (Some(_), None) => tracing::debug!(
                "--creds is for the push destination and this run pushes nothing; use --from-creds HOST=USER:PASS for a base image"
            ),
            (None, _) => {}
        }
        for c in &self.from_creds {
            host_credentials
                .push(HostCredential::parse(c).unwrap_or_else(|e| invalid("--from-creds", e)));
        }
        let progress: std::sync::Arc<dyn PushProgress> = std::sync::Arc::new(PushLines::new(quiet));
        let mut opts = RegistryOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            host_credentials,
            credentials: CredentialSource::Auto,
            progress,
            ..Default::default()
        };
        if let Some(secs) = self.registry_timeout {
            opts.stall_timeout = Duration::from_secs(secs.max(1));
            opts.connect_timeout = opts.connect_timeout.min(opts.stall_timeout);
        }
        if let Some(n) = self.registry_retries {
            opts.retry.max_retries = n;
        }
        Ok(opts)
    }

    fn connect(&self, quiet: bool, push: &Reference) -> anyhow::Result<BlockingRegistry> {
        Ok(BlockingRegistry::new(self.options(quiet, Some(push))?)?)
    }
}

/// Push progress on stderr: a bar per blob in flight (bytes, rate) on a terminal, and one line
/// per blob when it is done — uploaded (size, time, rate), mounted or already there.
struct PushLines {
    quiet: bool,
    bars: Option<MultiProgress>,
    /// Blobs in flight: when each started, and its bar on a terminal.
    active: std::sync::Mutex<std::collections::HashMap<Digest, (Instant, Option<ProgressBar>)>>,
}

impl PushLines {
    fn new(quiet: bool) -> PushLines {
        PushLines {
            quiet,
            bars: (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new),
            active: Default::default(),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(b) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
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
        if !self.quiet {
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
    }
    fn blob_skipped(&self, digest: &Digest, _size: u64) {
        self.finish(digest);
        if !self.quiet {
            self.line(format!("blob {} already there", digest.short()));
        }
    }
    fn blob_mounted(&self, digest: &Digest, _size: u64, from: &str) {
        self.finish(digest);
        if !self.quiet {
            self.line(format!("blob {} mounted from {from}", digest.short()));
        }
    }
    fn blob_retrying(&self, digest: &Digest, reason: &str) {
        if !self.quiet {
            self.line(format!("blob {} retrying: {reason}", digest.short()));
        }
    }
}

fn report_push(report: &PushReport, target: &Reference, quiet: bool) {
    if !quiet {
        eprintln!(
            "pushed {} [{}]: {} uploaded ({}), {} mounted, {} already there",
            target.name(),
            report.tags.join(", "),
            report.blobs_uploaded,
            human(report.bytes_uploaded),
            report.blobs_mounted,
            report.blobs_skipped
        );
    }
}

fn parse_reference(s: &str) -> Result<Reference, String> {
    s.parse::<Reference>()
        .map_err(|e| format!("`{s}` is not an image reference: {e}"))
}

/// Keeps glibc's allocator from holding on to freed memory. A build's threads (downloads,
/// decompression, block compression) each allocate 128 KiB blocks and 8 MiB xz dictionaries;
/// by default glibc gives each thread its own arena and, once such a large block is freed,
/// raises its mmap threshold so later ones come from those arenas and stay resident. The heap
/// of a cold Tomcat build peaks at ~40 MB; without this its RSS was ~95 MB.
fn limit_allocator_retention() {
    // SAFETY: mallopt only sets allocator parameters; called once before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

fn main() -> ExitCode {
    // A panic is a bug in stevedore, never the input's fault: one line saying so, with where
    // and the message, then exit 101 at once (Rust's code for a panic), from whichever thread
    // it was, instead of a backtrace dump and a second report from the thread that joins it.
    // RUST_BACKTRACE=1 adds the backtrace for whoever debugs it.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map_or_else(String::new, |l| format!(" at {l}"));
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)")
            .replace('\n', " ");
        // (Written, not `eprintln!`ed: a closed stderr must not panic inside the hook.)
        let mut err = std::io::stderr().lock();
        let _ = std::io::Write::write_fmt(
            &mut err,
            format_args!("error: bug in stevedore (please report it): panicked{at}: {what}\n"),
        );
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            let trace = std::backtrace::Backtrace::force_capture();
            let _ = std::io::Write::write_fmt(&mut err, format_args!("{trace}\n"));
        }
        std::process::exit(101);
    }));
    limit_allocator_retention();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let cache_dir = cli
        .cache_dir
        .clone()
        .unwrap_or_else(stevedore::cache::default_dir);
    let result = match cli.command {
        Command::Build {
            recipe,
            output,
            tag,
            jobs,
            locked,
            strict,
            push,
            fleet,
            registry,
        } => run_build(
            recipe,
            BuildFlags {
                outputs: output,
                tags: tag,
                jobs,
                locked,
                strict,
                cache_from: fleet.cache_from,
                cache_to: fleet.cache_to,
            },
            push,
            &registry,
            cache_dir,
            cli.quiet,
        ),
        Command::Lock { recipe, registry } => run_lock(&recipe, &cache_dir, &registry, cli.quiet),
        Command::Cache { action } => run_cache(action, &cache_dir),
        Command::Verify {
            recipe,
            against,
            locked,
        } => match run_verify(&recipe, &cache_dir, against.as_deref(), locked) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(ErrorClass::Different.exit_code()),
            Err(e) => Err(e),
        },
        Command::Push {
            source,
            target,
            registry,
        } => run_push(&source, &target, &registry, cli.quiet),
        Command::Plan {
            recipe,
            scripts,
            strict,
            registry,
        } => run_plan(recipe, cache_dir, scripts, strict, &registry),
        Command::Inspect { target, json } => run_inspect(&target, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render(&e));
            ExitCode::from(build::classify(&*e).exit_code())
        }
    }
}

/// The error and its causes on one line, each said once: most messages already hold the text
/// of the error they wrap (so that they read well alone), which `{:#}` would repeat.
fn render(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rPGP warns about every Trust packet in Ubuntu's keyring (GnuPG keyring files carry
        // them; they are rightly ignored): not something the user can act on.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},pgp=error")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// `build`'s fleet cache flags (boxed: they would make `Command` lopsided).
#[derive(clap::Args, Debug)]
struct FleetArgs {
    /// Read the fleet cache in repository REF before building: listed layers are not
    /// rebuilt (read-only: safe for untrusted jobs). Repeatable; comma-separated in the env.
    #[arg(long, value_name = "REF", value_parser = parse_reference, env = "STEVEDORE_CACHE_FROM", value_delimiter = ',')]
    cache_from: Vec<Reference>,
    /// Publish this build's layers to the fleet cache in repository REF (trusted jobs).
    #[arg(long, value_name = "REF", value_parser = parse_reference, env = "STEVEDORE_CACHE_TO")]
    cache_to: Option<Reference>,
}

/// The build options given on the command line.
struct BuildFlags {
    outputs: Vec<OutputTarget>,
    tags: Vec<String>,
    jobs: Option<usize>,
    locked: bool,
    strict: bool,
    cache_from: Vec<Reference>,
    cache_to: Option<Reference>,
}

fn run_build(
    recipe: PathBuf,
    flags: BuildFlags,
    push: Option<Reference>,
    registry_args: &RegistryArgs,
    cache_dir: PathBuf,
    quiet: bool,
) -> anyhow::Result<()> {
    let jobs = flags
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let opts = BuildOptions {
        cache_dir: cache_dir.clone(),
        outputs: flags.outputs,
        tags: flags.tags,
        jobs,
        lock_mode: if flags.locked {
            LockMode::Locked
        } else {
            LockMode::Prefer
        },
        strict: flags.strict,
        registry: registry_args.options(quiet, push.as_ref())?,
        fleet: stevedore::fleet::FleetOptions {
            from: flags.cache_from,
            to: flags.cache_to,
            push_registry: push.as_ref().map(|p| p.registry.clone()),
        },
    };
    let display = Display::new(quiet);
    let result = build::build(&recipe, &opts, &display)?;
    display.finish();
    if !quiet {
        let built = result
            .layers
            .iter()
            .filter(|l| l.status == LayerStatus::Built)
            .count();
        if built == 0 {
            eprintln!(
                "image is up to date ({} layers cached)",
                result.layers.len()
            );
        } else {
            eprintln!(
                "built {built} of {} layers; image {}",
                result.layers.len(),
                result.manifest_digest().short()
            );
        }
    }
    if let (false, Some(c)) = (quiet, &result.coverage) {
        let summary = c.summary();
        eprintln!("setup: {summary}");
        if summary.not_covered > 0 {
            eprintln!(
                "  see `stevedore plan --scripts {}` for each command; --strict makes this an error",
                recipe.display()
            );
        }
    }
    if let Some(target) = push {
        let registry = registry_args.connect(quiet, &target)?;
        let cache = stevedore::cache::Cache::open(&cache_dir)?;
        let report = build::push_result(&result, &cache, &target, &registry)?;
        report_push(&report, &target, quiet);
    }
    out!("{}", result.manifest_digest());
    Ok(())
}

/// Prints the comparison; true when identical.
fn run_verify(
    recipe: &std::path::Path,
    cache_dir: &std::path::Path,
    against: Option<&str>,
    locked: bool,
) -> anyhow::Result<bool> {
    let mode = if locked {
        LockMode::Locked
    } else {
        LockMode::Prefer
    };
    let report = build::verify(recipe, cache_dir, against, mode)?;
    if report.identical() {
        out!("verified: the rebuild is identical ({})", report.rebuilt);
        return Ok(true);
    }
    out!(
        "DIFFERENT: reference {} vs rebuild {}",
        report.reference,
        report.rebuilt
    );
    for l in &report.layers {
        if l.reference == l.rebuilt && l.corrupt.is_none() {
            out!("layer {:<16} identical", l.name);
            continue;
        }
        out!(
            "layer {:<16} differs: {} vs {}",
            l.name,
            l.reference.as_ref().map_or("(none)".into(), |d| d.short()),
            l.rebuilt.as_ref().map_or("(none)".into(), |d| d.short())
        );
        if let Some(c) = &l.corrupt {
            out!("  the reference blob is corrupt: {c}");
        }
        for d in &l.differences {
            out!("  {d}");
        }
    }
    for c in &report.config_differences {
        out!("{c}");
    }
    Ok(false)
}

fn run_cache(action: CacheAction, cache_dir: &std::path::Path) -> anyhow::Result<()> {
    let cache = stevedore::cache::Cache::open(cache_dir)?;
    match action {
        CacheAction::Du => {
            let usage = cache.usage();
            for u in &usage {
                out!(
                    "{:<20} {:>10}  {:>7} files",
                    u.kind,
                    human(u.bytes),
                    u.files
                );
            }
            let total: u64 = usage.iter().map(|u| u.bytes).sum();
            out!(
                "{:<20} {:>10}  {}",
                "total",
                human(total),
                cache_dir.display()
            );
        }
        CacheAction::Gc { older_than, keep } => {
            let keep_set = build::keep_set(&keep, &cache)?;
            let age = match older_than.unwrap_or(30) {
                0 => None,
                days => Some(Duration::from_secs(days * 86_400)),
            };
            let report = cache.gc(age, &keep_set)?;
            out!(
                "removed {} files, freed {}",
                report.files_removed,
                human(report.bytes_freed)
            );
        }
    }
    Ok(())
}

fn run_lock(
    recipe: &std::path::Path,
    cache_dir: &std::path::Path,
    registry_args: &RegistryArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let (path, lock) = build::lock(recipe, cache_dir, &registry_args.options(quiet, None)?)?;
    if !quiet {
        if let Some(b) = &lock.base {
            eprintln!("base {} pinned to {}", b.reference, b.digest);
        }
        for l in &lock.layers {
            eprintln!("layer {}: {} packages", l.name, l.packages.len());
        }
    }
    out!("{}", path.display());
    Ok(())
}

fn run_push(
    source: &str,
    target: &Reference,
    registry_args: &RegistryArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let registry = registry_args.connect(quiet, target)?;
    let report = build::push_layout(source, target, &registry)?;
    report_push(&report, target, quiet);
    out!("{}", report.manifest_digest);
    Ok(())
}

/// Progress on stderr: bars on a terminal, one plain line per event otherwise (CI logs).
struct Display {
    quiet: bool,
    bars: Option<MultiProgress>,
    active: std::sync::Mutex<Vec<(String, ProgressBar)>>,
}

impl Display {
    fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Display {
            quiet,
            bars,
            active: Default::default(),
        }
    }

    fn line(&self, msg: String) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(b) => {
                let _ = b.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bars {
            let _ = b.clear();
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Progress for Display {
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

fn run_plan(
    recipe: PathBuf,
    cache_dir: PathBuf,
    scripts: bool,
    strict: bool,
    registry_args: &RegistryArgs,
) -> anyhow::Result<()> {
    let cache = stevedore::cache::Cache::open(&cache_dir)?;
    let plan = build::load_plan(
        &recipe,
        &cache,
        LockMode::Prefer,
        &registry_args.options(true, None)?,
    )?;
    let cache = Some(cache);
    let img = &plan.image;
    out!(
        "image {} tags [{}]  platform {}  format {:?}  compression {}",
        img.name.as_deref().unwrap_or("(unnamed)"),
        img.tags.join(", "),
        img.platform,
        img.format,
        img.compression
    );
    if let Some(base) = &plan.base {
        out!("base  registry image {base} (its layers come first, never rebuilt)");
    }
    for (i, layer) in plan.layers.iter().enumerate() {
        let status = match cache.as_ref().and_then(|c| c.layer_record(&layer.key)) {
            Some(r) => format!("cached {} ({})", r.digest.short(), human(r.size)),
            None => "would build".to_string(),
        };
        out!(
            "layer {}/{} {:<16} {}  [{}; {} entries; key {}]",
            i + 1,
            plan.layers.len(),
            layer.name,
            status,
            layer.location,
            layer
                .contents
                .as_ref()
                .map_or_else(|| "cached".to_string(), |c| c.entries.len().to_string()),
            layer.key.short()
        );
        for s in &layer.sources {
            out!("    {s}");
        }
    }
    if let Some(coverage) = plan.coverage() {
        if scripts {
            out!("");
            for line in coverage.report().lines() {
                out!("{line}");
            }
        } else {
            out!("setup: {}", coverage.summary());
        }
        if strict {
            coverage.strict().map_err(BuildError::Strict)?;
        }
    }
    Ok(())
}

fn run_inspect(target: &str, json: bool) -> anyhow::Result<()> {
    let img = output::read_image(target)?;
    if json {
        let v = serde_json::json!({
            "source": img.source,
            "manifestDigest": img.manifest_digest.as_ref().map(|d| d.to_string()),
            "manifest": img.manifest,
            "configDigest": img.config_digest.to_string(),
            "config": img.config,
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!("source:   {}", img.source);
    if let (Some(d), Some(m)) = (&img.manifest_digest, &img.manifest_doc) {
        out!("manifest: {d} ({})", m.effective_media_type());
    }
    let c = &img.image_config;
    out!("config:   {}", img.config_digest);
    out!("platform: {}", c.platform());
    out!("created:  {}", c.created.as_deref().unwrap_or("-"));
    // The runtime config's fields under their JSON names, as `docker inspect` shows them.
    if let Ok(serde_json::Value::Object(cfg)) = serde_json::to_value(&c.config) {
        out!("Config:");
        for (k, v) in cfg {
            out!("  {k}: {v}");
        }
    }
    // One history line per layer (entries that made no layer are skipped, so they line up).
    let history: Vec<&str> = c.layer_history().collect();
    out!("layers:");
    for (i, l) in img.layers.iter().enumerate() {
        out!(
            "  {:>2}  {}  {:>9}  diff_id {}  {}",
            i + 1,
            l.id,
            human(l.size),
            l.diff_id.as_ref().map_or("?".into(), |d| d.short()),
            history.get(i).copied().unwrap_or("")
        );
    }
    Ok(())
}
