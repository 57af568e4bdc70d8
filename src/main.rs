//! The `stevedore` command: parses arguments, calls the library, maps errors to exit codes.

#![warn(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use stevedore::ErrorClass;
use stevedore::apt::fetch::MirrorNetwork;
use stevedore::build::{self, BuildError, BuildOptions};
use stevedore::cli::log::{self, LogFormat};
use stevedore::cli::progress::{self, BuildLines, PushLines, report_push};
use stevedore::cli::{Format, docs, human, metadata, show};
use stevedore::output::{self, OutputTarget};
use stevedore::plan::LockMode;
use stevedore::registry::{
    BlockingRegistry, CredentialSource, HostCredential, PushProgress, Reference, RegistryOptions,
};
use stevedore::sbom::SbomFormat;

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
  stevedore graph recipes/webapp.toml recipes/ubuntu-xenial-tomcat7.toml | dot -Tsvg > layers.svg
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
    /// How stderr logs are written: text (coloured only on a terminal; NO_COLOR and
    /// CLICOLOR_FORCE are honoured) or json (one object per line, for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "STEVEDORE_LOG_FORMAT"
    )]
    log_format: LogFormat,
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
        platforms: PlatformArgs,
        /// After a successful build (and push), write what was made and where it went as JSON
        /// (buildx's keys such as containerimage.digest, plus stevedore.*; see
        /// schemas/metadata.schema.json).
        #[arg(long, value_name = "FILE")]
        metadata_file: Option<PathBuf>,
        #[command(flatten)]
        attest: AttestArgs,
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
        #[arg(required_unless_present = "provenance")]
        recipe: Option<PathBuf>,
        /// The reference image: oci:DIR[:TAG]. Default: the last build of RECIPE in this cache.
        #[arg(long, value_name = "TARGET")]
        against: Option<String>,
        /// Use only the lockfile.
        #[arg(long)]
        locked: bool,
        #[command(flatten)]
        platforms: PlatformArgs,
        /// Fetch the provenance attached to REF@DIGEST, rebuild the recipe it names in this
        /// checkout in a fresh cache, and compare digests (exit 5 naming what differs).
        #[arg(long, value_name = "REF@DIGEST", value_parser = parse_reference, conflicts_with_all = ["recipe", "against"])]
        provenance: Option<Reference>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Resolve the recipe's package layers and registry base; write RECIPE.lock next to it.
    Lock {
        recipe: PathBuf,
        #[command(flatten)]
        platforms: PlatformArgs,
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
        /// text, or json (schemas/plan.schema.json): layers, keys, cached or not, packages and
        /// why each was chosen.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        platforms: PlatformArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print the layer graph of one or several recipes (DOT, JSON or SVG) without building:
    /// images, their layers with sizes or "to build", shared layers drawn once.
    #[command(
        after_help = "Examples:\n  stevedore graph recipes/webapp.toml recipes/ubuntu-xenial-tomcat7.toml | dot -Tpng > layers.png\n  stevedore graph recipes/webapp.toml --format svg > layers.svg   # needs graphviz"
    )]
    Graph {
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// dot, json, or svg (runs graphviz's `dot -Tsvg`).
        #[arg(long, default_value = "dot", value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(stevedore::graph::Format::NAMES), |s| s.parse::<stevedore::graph::Format>().expect("a possible value")))]
        format: stevedore::graph::Format,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print the SBOM of the recipe's image (built first if needed) on stdout: SPDX 2.3 or
    /// CycloneDX 1.6 JSON, written from the lockfile and the layers.
    #[command(
        after_help = "Example:\n  stevedore sbom recipes/webapp.toml --format cyclonedx > webapp.cdx.json"
    )]
    Sbom {
        recipe: PathBuf,
        /// spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.6 JSON).
        #[arg(long, default_value = "spdx", value_name = "FORMAT")]
        format: SbomFormat,
        /// Use only the lockfile.
        #[arg(long)]
        locked: bool,
        #[command(flatten)]
        platforms: PlatformArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show the manifest, config and layers of an OCI layout or docker archive.
    #[command(after_help = "TARGET is oci:DIR[:TAG], docker-archive:FILE, or a bare path.")]
    Inspect {
        target: String,
        /// text, or json (schemas/inspect.schema.json): the manifest and config as stored, and
        /// the layers with their history.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Print the completion script for SHELL on stdout.
    #[command(
        after_help = "Examples:\n  stevedore completions bash > /usr/share/bash-completion/completions/stevedore\n  stevedore completions zsh > \"${fpath[1]}/_stevedore\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// Print the man page (roff) on stdout, or write one page per command into --out-dir.
    #[command(after_help = "Example:\n  stevedore man --out-dir /usr/share/man/man1")]
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
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

/// Supply chain: what `build` attaches to the image (see README "Supply chain").
#[derive(clap::Args)]
struct AttestArgs {
    /// Attach SLSA v1 provenance (an in-toto statement) to the pushed image and OCI layouts.
    #[arg(long)]
    provenance: bool,
    /// Sign the pushed manifest digest as cosign does, with this ECDSA P-256 PKCS#8 PEM key
    /// (default: the PEM in $STEVEDORE_SIGN_KEY, if set). Never printed.
    #[arg(long, value_name = "FILE", requires = "push")]
    sign_key: Option<PathBuf>,
    /// Attach SBOMs in these formats (comma-separated: spdx, cyclonedx).
    #[arg(long, value_name = "FORMATS", value_delimiter = ',')]
    sbom: Vec<SbomFormat>,
}

#[derive(clap::Args)]
struct PlatformArgs {
    /// Build for these platforms instead of the recipe's (OS/ARCH[/VARIANT], e.g.
    /// linux/arm64): comma-separated or repeated. Several make one image each and an image
    /// index over them.
    #[arg(long = "platform", value_name = "PLATFORM", value_delimiter = ',', value_parser = parse_platform)]
    list: Vec<stevedore::oci::Platform>,
}

fn parse_platform(s: &str) -> Result<stevedore::oci::Platform, String> {
    let p: stevedore::oci::Platform = s.parse().map_err(|e| format!("{e}"))?;
    stevedore::recipe::check_platform_list(std::slice::from_ref(&p)).map_err(|e| {
        format!(
            "{e}; supported: {}",
            stevedore::recipe::supported_platforms()
        )
    })?;
    Ok(p)
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
    /// Seconds a registry or mirror connection may move no byte before the request is retried
    /// (default 60); a registry's manifest or token must also arrive whole within 4 times this.
    #[arg(long, env = "STEVEDORE_TIMEOUT", value_name = "SECS")]
    timeout: Option<u64>,
    /// Retries of a failed registry or mirror request (default 5 for registries, 4 for mirrors).
    #[arg(long, env = "STEVEDORE_RETRIES", value_name = "N")]
    retries: Option<usize>,
    /// --timeout for registries only (the older spelling; it wins over --timeout there).
    #[arg(
        long,
        env = "STEVEDORE_REGISTRY_TIMEOUT",
        value_name = "SECS",
        hide = true
    )]
    registry_timeout: Option<u64>,
    /// --retries for registries only (the older spelling; it wins over --retries there).
    #[arg(
        long,
        env = "STEVEDORE_REGISTRY_RETRIES",
        value_name = "N",
        hide = true
    )]
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
        self.mirror_network().set();
        if let Some(secs) = self.registry_timeout.or(self.timeout) {
            opts.stall_timeout = Duration::from_secs(secs.max(1));
            opts.connect_timeout = opts.connect_timeout.min(opts.stall_timeout);
        }
        if let Some(n) = self.registry_retries.or(self.retries) {
            opts.retry.max_retries = n;
        }
        Ok(opts)
    }

    /// `--timeout` and `--retries` for apt mirrors (their own defaults otherwise).
    fn mirror_network(&self) -> MirrorNetwork {
        let mut net = MirrorNetwork::default();
        if let Some(secs) = self.timeout {
            net.read_timeout = Duration::from_secs(secs.max(1));
            net.connect_timeout = net.connect_timeout.min(net.read_timeout);
        }
        if let Some(n) = self.retries {
            net.retries = n;
        }
        net
    }

    fn connect(&self, quiet: bool, push: &Reference) -> anyhow::Result<BlockingRegistry> {
        Ok(BlockingRegistry::new(self.options(quiet, Some(push))?)?)
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

fn install_panic_hook() {
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
}

fn main() -> ExitCode {
    install_panic_hook();
    limit_allocator_retention();
    let cli = Cli::parse();
    log::init(cli.verbose, cli.quiet, cli.log_format);
    // The timeline's zero (`RUST_LOG=stevedore=debug`).
    tracing::debug!("stevedore {} started", env!("CARGO_PKG_VERSION"));
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
            platforms,
            attest,
            metadata_file,
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
                attest,
                metadata_file,
                cache_from: fleet.cache_from,
                cache_to: fleet.cache_to,
                platforms: platforms.list,
            },
            push,
            &registry,
            cache_dir,
            cli.quiet,
        ),
        Command::Lock {
            recipe,
            platforms,
            registry,
        } => run_lock(&recipe, &platforms.list, &cache_dir, &registry, cli.quiet),
        Command::Cache { action } => run_cache(action, &cache_dir),
        Command::Verify {
            provenance: Some(reference),
            registry,
            ..
        } => match run_verify_provenance(&reference, &cache_dir, &registry) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(ErrorClass::Different.exit_code()),
            Err(e) => Err(e),
        },
        Command::Verify {
            recipe,
            against,
            locked,
            platforms,
            ..
        } => match run_verify(
            &recipe.expect("clap requires it without --provenance"),
            &cache_dir,
            against.as_deref(),
            locked,
            &platforms.list,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(ErrorClass::Different.exit_code()),
            Err(e) => Err(e),
        },
        Command::Push {
            source,
            target,
            registry,
        } => run_push(&source, &target, &registry, cli.quiet),
        plan @ Command::Plan { .. } => run_plan(plan, cache_dir),
        Command::Inspect {
            target,
            format,
            json,
        } => run_inspect(&target, if json { Format::Json } else { format }),
        Command::Graph {
            recipes,
            format,
            registry,
        } => run_graph(&recipes, format, &cache_dir, &registry),
        Command::Sbom {
            recipe,
            format,
            locked,
            platforms,
            registry,
        } => run_sbom(
            &recipe, format, locked, &platforms, &registry, cache_dir, cli.quiet,
        ),
        Command::Completions { shell } => {
            docs::completions(Cli::command(), shell, &mut std::io::stdout());
            Ok(())
        }
        Command::Man { out_dir } => run_man(out_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            progress::error(&render(&e));
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
    attest: AttestArgs,
    metadata_file: Option<PathBuf>,
    cache_from: Vec<Reference>,
    cache_to: Option<Reference>,
    platforms: Vec<stevedore::oci::Platform>,
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
    // One push-progress writer for the base pull and the push, which also keeps what became
    // of each blob for --metadata-file.
    let pushes = std::sync::Arc::new(PushLines::new(quiet));
    let mut registry = registry_args.options(quiet, push.as_ref())?;
    registry.progress = pushes.clone();
    let opts = BuildOptions {
        cache_dir: cache_dir.clone(),
        outputs: flags.outputs.clone(),
        tags: flags.tags,
        jobs,
        lock_mode: if flags.locked {
            LockMode::Locked
        } else {
            LockMode::Prefer
        },
        strict: flags.strict,
        registry: registry.clone(),
        fleet: stevedore::fleet::FleetOptions {
            from: flags.cache_from,
            to: flags.cache_to,
            push_registry: push.as_ref().map(|p| p.registry.clone()),
        },
        platforms: flags.platforms,
    };
    if flags.attest.provenance || flags.attest.sign_key.is_some() || !flags.attest.sbom.is_empty() {
        build::refuse_attest_for_several(&recipe, &opts.platforms)?;
    }
    // The key is read before building: a bad key fails at once, not after the build.
    let mut attest = build::AttestOptions {
        provenance: flags.attest.provenance,
        sign_key: stevedore::sign::SigningKey::load(
            flags.attest.sign_key.as_deref(),
            std::env::var(stevedore::sign::KEY_ENV).ok().as_deref(),
        )
        .map_err(BuildError::from)?,
        attachments: Vec::new(),
        locked: flags.locked,
        strict: flags.strict,
    };
    let display = BuildLines::new(quiet);
    let result = match build::build_all(&recipe, &opts, &display)? {
        build::Built::One(result) => *result,
        build::Built::Several(multi) => {
            display.finish();
            let several = Several {
                attest: &flags.attest,
                outputs: &flags.outputs,
                metadata_file: flags.metadata_file.as_deref(),
                pushes: &pushes,
            };
            return finish_several(
                &multi,
                &recipe,
                &several,
                push.as_ref(),
                registry,
                &cache_dir,
                quiet,
            );
        }
    };
    attest.attachments = build::sbom_attachments(&flags.attest.sbom, &result, &opts.cache_dir)?;
    display.finish();
    progress::build_summary(&result, &recipe, quiet);
    let cache = stevedore::cache::Cache::open(&cache_dir)?;
    let connected = match &push {
        Some(_) => Some(BlockingRegistry::new(registry)?),
        None => None,
    };
    let mut pushed = None;
    if let (Some(target), Some(connected)) = (&push, &connected) {
        let report = build::push_result(&result, &cache, target, connected)?;
        report_push(&report, target, quiet);
        pushed = Some(report);
    }
    let attach_to = push.as_ref().zip(connected.as_ref());
    for line in build::attest(&recipe, &result, &attest, &opts.outputs, attach_to, &cache)? {
        if !quiet {
            eprintln!("{line}");
        }
    }
    if let Some(file) = &flags.metadata_file {
        let pushed = push
            .as_ref()
            .zip(pushed.as_ref())
            .map(|(target, report)| metadata::Pushed {
                target,
                report,
                blobs: pushes.log().blobs(),
            });
        let doc = metadata::document(&result, &flags.outputs, pushed.as_ref());
        metadata::write(file, &doc)?;
    }
    out!("{}", result.manifest_digest());
    Ok(())
}

/// What a multi-platform build still does after building, from the command line.
struct Several<'a> {
    attest: &'a AttestArgs,
    outputs: &'a [OutputTarget],
    metadata_file: Option<&'a std::path::Path>,
    pushes: &'a PushLines,
}

/// A multi-platform build (its outputs are written): the push of the index, the metadata
/// file, and the index digest on stdout.
fn finish_several(
    multi: &build::MultiBuild,
    recipe: &std::path::Path,
    several: &Several,
    push: Option<&Reference>,
    registry: RegistryOptions,
    cache_dir: &std::path::Path,
    quiet: bool,
) -> anyhow::Result<()> {
    let a = several.attest;
    if a.provenance || a.sign_key.is_some() || !a.sbom.is_empty() {
        let platforms: Vec<String> = multi.images.iter().map(|(p, _)| p.to_string()).collect();
        return Err(BuildError::AttestOnePlatform {
            platforms: platforms.join(", "),
        }
        .into());
    }
    for (platform, result) in multi.images.iter().filter(|_| !quiet) {
        progress::note(&format!("{platform}: {}", result.manifest_digest()));
        progress::build_summary(result, recipe, quiet);
    }
    let cache = stevedore::cache::Cache::open(cache_dir)?;
    let mut pushed = None;
    if let Some(target) = push {
        let connected = BlockingRegistry::new(registry)?;
        let report = build::push_several(multi, &cache, target, &connected)?;
        report_push(&report, target, quiet);
        pushed = Some(report);
    }
    if let Some(file) = several.metadata_file {
        let pushed = push
            .zip(pushed.as_ref())
            .map(|(target, report)| metadata::Pushed {
                target,
                report,
                blobs: several.pushes.log().blobs(),
            });
        let doc = metadata::document_several(multi, several.outputs, pushed.as_ref());
        metadata::write(file, &doc)?;
    }
    out!("{}", multi.index.digest);
    Ok(())
}

/// Builds the recipe if needed (no output) and prints its SBOM.
fn run_sbom(
    recipe: &std::path::Path,
    format: SbomFormat,
    locked: bool,
    platforms: &PlatformArgs,
    registry_args: &RegistryArgs,
    cache_dir: PathBuf,
    quiet: bool,
) -> anyhow::Result<()> {
    let opts = BuildOptions {
        cache_dir,
        outputs: Vec::new(),
        tags: Vec::new(),
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        lock_mode: if locked {
            LockMode::Locked
        } else {
            LockMode::Prefer
        },
        strict: false,
        registry: registry_args.options(quiet, None)?,
        fleet: Default::default(),
        platforms: platforms.list.clone(),
    };
    let display = BuildLines::new(quiet);
    let docs = build::sbom(recipe, &opts, &[format], &display)?;
    display.finish();
    for d in docs {
        out!("{}", String::from_utf8_lossy(&d.bytes).trim_end());
    }
    Ok(())
}

/// Prints the comparison; true when identical.
fn run_verify(
    recipe: &std::path::Path,
    cache_dir: &std::path::Path,
    against: Option<&str>,
    locked: bool,
    platforms: &[stevedore::oci::Platform],
) -> anyhow::Result<bool> {
    let mode = if locked {
        LockMode::Locked
    } else {
        LockMode::Prefer
    };
    let report = build::verify(recipe, cache_dir, against, mode, platforms)?;
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

/// `verify --provenance`: prints the verdict; true when the rebuild has the same digest.
fn run_verify_provenance(
    reference: &Reference,
    cache_dir: &std::path::Path,
    registry_args: &RegistryArgs,
) -> anyhow::Result<bool> {
    let opts = registry_args.options(true, None)?;
    let report = build::verify_provenance(reference, cache_dir, &opts)?;
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    if report.identical() && report.differences.is_empty() {
        out!(
            "verified: the rebuild has the provenance's digest {}",
            report.reference
        );
        return Ok(true);
    }
    match (&report.rebuilt, &report.rebuild_error) {
        (Some(d), _) => out!("DIFFERENT: provenance {} vs rebuild {d}", report.reference),
        (None, Some(e)) => out!(
            "DIFFERENT: provenance {}; the rebuild failed: {e}",
            report.reference
        ),
        (None, None) => out!("DIFFERENT: provenance {}", report.reference),
    }
    for d in &report.differences {
        out!("  {d}");
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
    platforms: &[stevedore::oci::Platform],
    cache_dir: &std::path::Path,
    registry_args: &RegistryArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let options = registry_args.options(quiet, None)?;
    let (path, locks) = build::lock(recipe, platforms, cache_dir, &options)?;
    let several = locks.len() > 1;
    for (platform, lock) in locks.iter().filter(|_| !quiet) {
        let on = if several {
            format!(" ({platform})")
        } else {
            String::new()
        };
        if let Some(b) = &lock.base {
            progress::note(&format!("base {} pinned to {}{on}", b.reference, b.digest));
        }
        for l in &lock.layers {
            progress::note(&format!(
                "layer {}: {} packages{on}",
                l.name,
                l.packages.len()
            ));
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

fn run_plan(command: Command, cache_dir: PathBuf) -> anyhow::Result<()> {
    let Command::Plan {
        recipe,
        scripts,
        strict,
        format,
        platforms,
        registry: registry_args,
    } = command
    else {
        unreachable!("called for `plan` only")
    };
    let platforms = &platforms.list;
    let cache = stevedore::cache::Cache::open(&cache_dir)?;
    let plans = build::load_plans(
        &recipe,
        platforms,
        &cache,
        LockMode::Prefer,
        &registry_args.options(true, None)?,
    )?;
    match format {
        Format::Text => out!("{}", show::plans_text(&plans, &cache, scripts).trim_end()),
        Format::Json => out!("{:#}", show::plans_json(&plans, &cache)),
    }
    for (_, plan) in plans.iter().filter(|_| strict) {
        if let Some(coverage) = plan.coverage() {
            coverage.strict().map_err(BuildError::Strict)?;
        }
    }
    Ok(())
}

fn run_graph(
    recipes: &[PathBuf],
    format: stevedore::graph::Format,
    cache_dir: &std::path::Path,
    registry_args: &RegistryArgs,
) -> anyhow::Result<()> {
    let cache = stevedore::cache::Cache::open(cache_dir)?;
    let bytes =
        stevedore::graph::render(recipes, &cache, &registry_args.options(true, None)?, format)?;
    out!("{}", String::from_utf8_lossy(&bytes).trim_end());
    Ok(())
}

/// The image's referrers (attached SBOMs, provenance, signatures), one line each.
fn print_referrers(target: &str) -> anyhow::Result<()> {
    let referrers = build::referrers(target, &RegistryOptions::default())?;
    out!(
        "referrers: {}",
        if referrers.is_empty() { "none" } else { "" }
    );
    for r in &referrers {
        out!("  {}  {}  {:>9}", r.artifact_type, r.digest, human(r.size));
    }
    Ok(())
}

fn run_inspect(target: &str, format: Format) -> anyhow::Result<()> {
    // A registry reference: only its referrers are shown.
    if format == Format::Text && build::is_registry_reference(target) {
        return print_referrers(target);
    }
    let img = output::read_image(target)?;
    match format {
        Format::Text => {
            out!("{}", show::inspect_text(&img).trim_end());
            print_referrers(target)?;
        }
        Format::Json => out!("{:#}", show::inspect_json(&img)),
    }
    Ok(())
}

fn run_man(out_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    match out_dir {
        Some(dir) => {
            for page in docs::man_pages(Cli::command(), dir)? {
                out!("{}", page.display());
            }
        }
        None => {
            let mut page = Vec::new();
            docs::man_page(Cli::command(), &mut page)?;
            out!("{}", String::from_utf8_lossy(&page).trim_end());
        }
    }
    Ok(())
}
