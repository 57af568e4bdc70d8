//! Recipes: TOML files that describe one image each.
//!
//! [`load`] reads a recipe and the chain of recipes it is built `from`, checks every value, and
//! returns a [`Recipe`] in which nothing is left to interpret. All problems are collected and
//! reported together, each with file, line, column and a hint; nothing is written on error.

mod diagnostic;
mod model;
mod schema;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

pub use diagnostic::{Diagnostic, Location, RecipeError, SourceText};
pub use model::*;

use crate::image_path::ImagePathError;
use schema::*;

/// Reads and validates `path` and the recipes below it.
///
/// Base recipes that name no platform follow the top recipe's platforms (those that name them
/// were checked to cover it), so every recipe of the chain says what is built.
pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
    let mut stack = Vec::new();
    let mut recipe = load_chain(path, &mut stack, None)?;
    let platforms = recipe.image.platforms.clone();
    recipe.set_platforms(&platforms);
    Ok(recipe)
}

/// [`load`], then the platforms of `--platform` (when not empty) instead of the recipe's: each
/// must have a Debian port, and be built by every base recipe that names its platforms.
pub fn load_for_platforms(path: &Path, platforms: &[Platform]) -> Result<Recipe, RecipeError> {
    let mut recipe = load(path)?;
    if platforms.is_empty() {
        return Ok(recipe);
    }
    check_platform_list(platforms).map_err(|m| {
        Diagnostic::at_file(path, format!("--platform: {m}"))
            .help(format!("supported: {}", supported_platforms()))
    })?;
    if let Some((p, base, have)) = recipe.platform_conflict(platforms) {
        return Err(Diagnostic::at_file(
            path,
            format!(
                "--platform {p}: the base recipe {} builds only {}",
                base.display(),
                list_platforms(&have)
            ),
        )
        .help("ask for the base recipe's platforms, or add this one to its `platforms`")
        .into());
    }
    recipe.set_platforms(platforms);
    recipe.image.platform_explicit = true;
    Ok(recipe)
}

/// A platform list from the command line: each with a Debian port, none twice.
pub fn check_platform_list(platforms: &[Platform]) -> Result<(), String> {
    for (i, p) in platforms.iter().enumerate() {
        if p.debian_architecture().is_none() {
            return Err(format!("no Debian architecture builds platform {p}"));
        }
        if platforms[..i]
            .iter()
            .any(|q| q.normalized() == p.normalized())
        {
            return Err(format!("platform {p} is given twice"));
        }
    }
    Ok(())
}

/// Parses recipe text without touching the file system beyond `dir` (for sources). Used by
/// [`load`]; public so tests and tools can validate text directly.
fn load_chain(
    path: &Path,
    stack: &mut Vec<PathBuf>,
    referenced_at: Option<&Diagnostic>,
) -> Result<Recipe, RecipeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let msg = format!("cannot read recipe {}: {e}", path.display());
        match referenced_at {
            Some(d) => {
                let mut d = d.clone();
                d.message = msg;
                d.help("`from` takes `scratch`, a path to a recipe file relative to this recipe, or a registry image host[:port]/repository:tag")
            }
            None => Diagnostic::at_file(path, msg),
        }
    })?;
    let canonical = path.canonicalize().map_err(|e| {
        Diagnostic::at_file(path, format!("cannot resolve {}: {e}", path.display()))
    })?;
    let dir = canonical
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let source = SourceText {
        path: path.to_path_buf(),
        text,
    };
    let file: RecipeFile = toml::from_str(&source.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let help = if message.contains("unknown field") {
            "check the spelling; README.md (Recipe reference) lists every key"
        } else if message.contains("invalid type") {
            "check the value's type against README.md (Recipe reference)"
        } else {
            "see README.md (Recipe reference) for the recipe format"
        };
        source.diagnostic(span, message).help(help)
    })?;

    stack.push(canonical.clone());
    let base = match &file.from {
        None => Base::Scratch,
        Some(from) if from.get_ref() == "scratch" => Base::Scratch,
        Some(from) if is_image_reference(path, from.get_ref()) => {
            match from.get_ref().parse::<crate::registry::Reference>() {
                Ok(reference) => Base::Image(ImageBase {
                    reference,
                    location: source.location(from.span().start),
                }),
                Err(e) => {
                    return Err(source
                        .diagnostic(from.span(), format!("`from` is not an image reference: {e}"))
                        .help("write host[:port]/repository:tag, optionally @sha256:<digest>, e.g. \"registry.local:5000/base/debian:12\"")
                        .into());
                }
            }
        }
        Some(from) => {
            let parent_path = resolve_relative(path, from.get_ref());
            let at = source.diagnostic(from.span(), "");
            if let Ok(parent_canonical) = parent_path.canonicalize()
                && let Some(pos) = stack.iter().position(|p| *p == parent_canonical)
            {
                let cycle: Vec<String> = stack[pos..]
                    .iter()
                    .chain(std::iter::once(&parent_canonical))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(source
                        .diagnostic(
                            from.span(),
                            format!("`from` makes a cycle: {}", cycle.join(" -> ")),
                        )
                        .help("a recipe cannot be built on itself; point `from` at a base recipe or `scratch`")
                        .into());
            }
            Base::Recipe(Box::new(load_chain(&parent_path, stack, Some(&at))?))
        }
    };
    stack.pop();

    // The folder file sources are read from: the recipe's own, or `context` (like a Docker
    // build context) when the files live beside the recipes folder, e.g. `context = ".."`.
    let context = match &file.context {
        None => dir.clone(),
        Some(c) => dir.join(c.get_ref()).canonicalize().map_err(|e| {
            source
                .diagnostic(c.span(), format!("context `{}`: {e}", c.get_ref()))
                .help("`context` is a folder, relative to the recipe's folder")
        })?,
    };
    let mut v = Validator {
        source: &source,
        dir: &dir,
        context: &context,
        diagnostics: Vec::new(),
    };
    let recipe = v.recipe(file, base);
    if v.diagnostics.is_empty() {
        Ok(recipe)
    } else {
        Err(RecipeError {
            diagnostics: v.diagnostics,
        })
    }
}

/// Whether a `from` value names a registry image rather than a recipe: a recipe is a `.toml`
/// file or an existing path; an image starts with a registry host (`localhost`, or a name with
/// a `.` or a `:port`) followed by a repository, as Docker tells hosts from repositories.
fn is_image_reference(recipe: &Path, from: &str) -> bool {
    if from.ends_with(".toml")
        || from.starts_with(['.', '/'])
        || resolve_relative(recipe, from).exists()
    {
        return false;
    }
    match from.split_once('/') {
        Some((host, rest)) => {
            !rest.is_empty() && (host == "localhost" || host.contains('.') || host.contains(':'))
        }
        None => false,
    }
}

/// `from` paths are relative to the recipe that names them.
fn resolve_relative(recipe: &Path, rel: &str) -> PathBuf {
    let rel = Path::new(rel);
    if rel.is_absolute() {
        return rel.to_path_buf();
    }
    recipe.parent().unwrap_or(Path::new(".")).join(rel)
}

struct Validator<'a> {
    source: &'a SourceText,
    /// The recipe's folder: `from` and keyrings are relative to it.
    dir: &'a Path,
    /// Where file sources are read from (the recipe's folder unless `context` says otherwise).
    context: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) {
        let d = self.source.diagnostic(span, message).help(help);
        self.diagnostics.push(d);
    }

    fn location(&self, span: Range<usize>) -> Location {
        self.source.location(span.start)
    }

    fn recipe(&mut self, file: RecipeFile, from: Base) -> Recipe {
        let parent = match &from {
            Base::Recipe(p) => Some(p.as_ref()),
            Base::Scratch | Base::Image(_) => None,
        };
        let image = self.image(file.image, parent);
        // Package layers and accounts continue from the registry base's own state (its dpkg
        // database and accounts, read from its layers at build time). `minbase` lays a system
        // from nothing: on a base that already is one, it would install its essentials again.
        let on_registry_image = match &from {
            Base::Image(_) => true,
            Base::Recipe(p) => p.image_base().is_some(),
            Base::Scratch => false,
        };
        if on_registry_image {
            for decl in &file.layers {
                if decl.minbase.as_ref().is_some_and(|m| *m.get_ref()) {
                    self.error(
                        decl.name.span(),
                        "`minbase = true` over a registry base: the base already has its essential packages",
                        "remove `minbase`; the layer's packages are resolved against what the base has installed",
                    );
                }
            }
        }
        let (users, groups) = self.accounts(&file.users, &file.groups, parent);
        let mut sources: Vec<AptSource> = file
            .sources
            .iter()
            .filter_map(|s| self.apt_source(s))
            .collect();
        if file.sources.is_empty()
            && let Some(p) = parent
        {
            sources = p.sources.clone();
        }
        let config = file.config.map(|c| self.config(c)).unwrap_or_default();
        let accounts = Accounts {
            users: &users,
            groups: &groups,
        };
        let mut names = HashSet::new();
        let mut layers = Vec::new();
        for decl in file.layers {
            if decl.name.get_ref().trim().is_empty() {
                self.error(
                    decl.name.span(),
                    "layer name is empty",
                    "give each layer a short name, e.g. name = \"app\"",
                );
            } else if !names.insert(decl.name.get_ref().clone()) {
                self.error(
                    decl.name.span(),
                    format!("two layers are named `{}`", decl.name.get_ref()),
                    "layer names must be unique within a recipe",
                );
            }
            let name_span = decl.name.span();
            let layer = self.layer(decl, &accounts);
            if layer.war.is_some() {
                for suffix in WarItem::LAYER_SUFFIXES {
                    let generated = format!("{}-{suffix}", layer.name);
                    if !names.insert(generated.clone()) {
                        self.error(
                            name_span.clone(),
                            format!("the war's layer `{generated}` has the name of another layer"),
                            "a war layer `NAME` makes NAME-libs, NAME-snapshots, NAME-resources and NAME-classes; rename one of them",
                        );
                    }
                }
            }
            if layer.packages.is_some() && sources.is_empty() {
                self.error(
                    name_span,
                    format!(
                        "layer `{}` installs packages, but no [[sources]] are set",
                        layer.name
                    ),
                    "add [[sources]] with mirrors, suites and keyring here or in a base recipe",
                );
            }
            layers.push(layer);
        }
        Recipe {
            path: self.source.path.clone(),
            dir: self.context.to_path_buf(),
            from,
            image,
            config,
            sources,
            users,
            groups,
            layers,
        }
    }

    fn apt_source(&mut self, s: &SourcesDecl) -> Option<AptSource> {
        // Credentials in a mirror URL are refused (why: crate::apt::CREDENTIALS_ADVICE), with
        // no snippet: the recipe line would print the secret.
        if let Some(m) = s
            .mirrors
            .get_ref()
            .iter()
            .find(|m| crate::apt::has_credentials(m))
        {
            let mut d = Diagnostic::at_file(
                &self.source.path,
                format!(
                    "mirror `{}` holds credentials",
                    crate::apt::redact_credentials(m)
                ),
            )
            .help(crate::apt::CREDENTIALS_ADVICE);
            d.location = self.location(s.mirrors.span());
            self.diagnostics.push(d);
            return None;
        }
        let mut ok = true;
        for m in s.mirrors.get_ref() {
            if !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file:/")) {
                self.error(
                    s.mirrors.span(),
                    format!("mirror `{m}` is not an http(s):// URL"),
                    "e.g. mirrors = [\"http://deb.debian.org/debian\"]",
                );
                ok = false;
            }
        }
        if s.mirrors.get_ref().is_empty() {
            self.error(
                s.mirrors.span(),
                "no mirror given",
                "e.g. mirrors = [\"http://deb.debian.org/debian\"]",
            );
            ok = false;
        }
        if s.suites.get_ref().is_empty() {
            self.error(
                s.suites.span(),
                "no suite given",
                "e.g. suites = [\"bookworm\", \"bookworm-updates\"]",
            );
            ok = false;
        }
        let allow_unsigned = s.allow_unsigned.as_ref().is_some_and(|b| *b.get_ref());
        let keyring = match &s.keyring {
            Some(k) => {
                let path = self.dir.join(k.get_ref());
                if path.is_file() {
                    Some(path)
                } else {
                    self.error(
                        k.span(),
                        format!("keyring `{}` not found (looked for {})", k.get_ref(), path.display()),
                        "give the path relative to this recipe (Debian's and Ubuntu's archives need no keyring line: stevedore ships theirs)",
                    );
                    ok = false;
                    None
                }
            }
            None if allow_unsigned => None,
            // Debian's and Ubuntu's archives are verified with the keyrings stevedore ships.
            None => match crate::apt::keyrings::builtin_for(s.mirrors.get_ref()) {
                Ok(_) => None,
                Err(why) => {
                    self.error(
                        s.mirrors.span(),
                        format!("no keyring for this archive: {why}"),
                        "add keyring = \"FILE\" (the archive's OpenPGP keys, relative to this recipe); signatures are always checked",
                    );
                    ok = false;
                    None
                }
            },
        };
        ok.then(|| AptSource {
            mirrors: s
                .mirrors
                .get_ref()
                .iter()
                .map(|m| m.trim_end_matches('/').to_string())
                .collect(),
            suites: s.suites.get_ref().clone(),
            components: s
                .components
                .as_ref()
                .map_or_else(|| vec!["main".to_string()], |c| c.get_ref().clone()),
            keyring,
            allow_unsigned,
            location: self.location(s.mirrors.span()),
        })
    }

    fn image(&mut self, section: Option<ImageSection>, parent: Option<&Recipe>) -> ImageSettings {
        let inherited = parent.map(|p| &p.image);
        let mut settings = ImageSettings {
            name: None,
            tags: Vec::new(),
            format: inherited.map_or(ImageFormat::Oci, |i| i.format),
            compression: inherited.map_or(
                Compression::Gzip {
                    level: Compression::DEFAULT_GZIP_LEVEL,
                },
                |i| i.compression,
            ),
            platform: inherited.map_or_else(Platform::host, |i| i.platform.clone()),
            platforms: inherited.map_or_else(|| vec![Platform::host()], |i| i.platforms.clone()),
            platform_explicit: inherited.is_some_and(|i| i.platform_explicit),
            annotations: BTreeMap::new(),
        };
        let Some(mut section) = section else {
            settings.tags.push("latest".into());
            return settings;
        };
        if let Some(name) = section.name.take() {
            if valid_repository(name.get_ref()) {
                settings.name = Some(name.into_inner());
            } else {
                self.error(
                    name.span(),
                    format!("`{}` is not a valid image name", name.get_ref()),
                    "use lowercase letters, digits and separators (. _ - /), optionally after a registry host[:port]/, e.g. \"registry.local:5000/team/app\"",
                );
            }
        }
        for tag in section.tags.take().unwrap_or_default() {
            if valid_tag(tag.get_ref()) {
                settings.tags.push(tag.into_inner());
            } else {
                self.error(
                    tag.span(),
                    format!("`{}` is not a valid tag", tag.get_ref()),
                    "tags are 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`; placeholders: {git.sha} {git.short} {git.branch} {git.tag}",
                );
            }
        }
        if settings.tags.is_empty() {
            settings.tags.push("latest".into());
        }
        if let Some(format) = &section.format {
            match format.get_ref().as_str() {
                "oci" => settings.format = ImageFormat::Oci,
                "docker" => settings.format = ImageFormat::Docker,
                other => self.error(
                    format.span(),
                    format!("unknown image format `{other}`"),
                    "use \"oci\" (default) or \"docker\" (Docker v2.2 media types for old registries)",
                ),
            }
        }
        self.image_compression(&section, &mut settings);
        self.image_platforms(
            section.platform,
            section.platforms,
            inherited,
            &mut settings,
        );
        if let Some(table) = section.annotations {
            settings.annotations = self.string_table(table, "annotation").into_iter().collect();
        }
        settings
    }

    /// `compression` and `compression-level`, and that Docker images cannot carry zstd.
    fn image_compression(&mut self, section: &ImageSection, settings: &mut ImageSettings) {
        let level = section.compression_level.as_ref();
        if let Some(c) = &section.compression {
            match c.get_ref().as_str() {
                "gzip" => {
                    settings.compression = Compression::Gzip {
                        level: Compression::DEFAULT_GZIP_LEVEL,
                    }
                }
                "zstd" => {
                    settings.compression = Compression::Zstd {
                        level: Compression::DEFAULT_ZSTD_LEVEL,
                    }
                }
                other => self.error(
                    c.span(),
                    format!("unknown compression `{other}`"),
                    "use \"gzip\" (default, every runtime reads it) or \"zstd\"",
                ),
            }
        }
        if let Some(level) = level {
            let l = *level.get_ref();
            match &mut settings.compression {
                Compression::Gzip { level } if (0..=9).contains(&l) => *level = l as u32,
                Compression::Zstd { level } if (1..=22).contains(&l) => *level = l as i32,
                Compression::Gzip { .. } => self.error(
                    level.span(),
                    format!("gzip level {l} is out of range"),
                    "gzip levels are 0-9 (default 5)",
                ),
                Compression::Zstd { .. } => self.error(
                    level.span(),
                    format!("zstd level {l} is out of range"),
                    "zstd levels are 1-22 (default 3)",
                ),
            }
        }
        if settings.format == ImageFormat::Docker
            && matches!(settings.compression, Compression::Zstd { .. })
        {
            let span = section
                .compression
                .as_ref()
                .or(section.format.as_ref())
                .map_or(0..0, |s| s.span());
            self.error(
                span,
                "Docker v2.2 images cannot carry zstd layers",
                "use format = \"oci\" for zstd, or compression = \"gzip\" for Docker media types",
            );
        }
    }

    /// `platform` or `platforms` (not both): each a Linux platform Debian has a port for, none
    /// twice, and each built by the base recipe when that one names its platforms.
    fn image_platforms(
        &mut self,
        platform: Option<Str>,
        platforms: Option<Spanned<Vec<Str>>>,
        inherited: Option<&ImageSettings>,
        settings: &mut ImageSettings,
    ) {
        let given: Vec<Str> = match (platform, platforms) {
            (None, None) => return,
            (Some(_), Some(list)) => {
                self.error(
                    list.span(),
                    "`platform` and `platforms` are both given",
                    "keep one: `platforms = [\"linux/amd64\", \"linux/arm64\"]` builds one image per platform and an index over them",
                );
                return;
            }
            (Some(one), None) => vec![one],
            (None, Some(list)) if list.get_ref().is_empty() => {
                self.error(
                    list.span(),
                    "`platforms` is empty",
                    "name at least one, e.g. platforms = [\"linux/amd64\", \"linux/arm64\"]",
                );
                return;
            }
            (None, Some(list)) => list.into_inner(),
        };
        let mut out: Vec<Platform> = Vec::new();
        for p in given {
            let Some(parsed) = self.one_platform(&p) else {
                continue;
            };
            if out.iter().any(|o| o.normalized() == parsed.normalized()) {
                self.error(
                    p.span(),
                    format!("platform {parsed} is listed twice"),
                    "list each platform once",
                );
                continue;
            }
            if let Some(parent) = inherited.filter(|i| i.platform_explicit)
                && !parent
                    .platforms
                    .iter()
                    .any(|have| have.normalized() == parsed.normalized())
            {
                self.error(
                    p.span(),
                    format!(
                        "platform {parsed} is not built by the base recipe (its platforms: {})",
                        list_platforms(&parent.platforms)
                    ),
                    "a recipe's layers go on its base's image for the same platform; remove the platform, or add it to the base recipe's `platforms`",
                );
                continue;
            }
            out.push(parsed);
        }
        if let Some(first) = out.first() {
            settings.platform = first.clone();
            settings.platforms = out;
            settings.platform_explicit = true;
        }
    }

    /// One platform of `platform(s)`: `os/arch[/variant]`, Linux, with a Debian port.
    fn one_platform(&mut self, p: &Str) -> Option<Platform> {
        let Some(parsed) = parse_platform(p.get_ref()) else {
            self.error(
                p.span(),
                format!("`{}` is not a platform", p.get_ref()),
                "write os/architecture[/variant], e.g. \"linux/amd64\" or \"linux/arm64/v8\"",
            );
            return None;
        };
        if parsed.debian_architecture().is_none() {
            self.error(
                p.span(),
                format!("no Debian architecture builds platform {parsed}"),
                format!("use one of {}", supported_platforms()),
            );
            return None;
        }
        Some(parsed)
    }

    fn string_table(&mut self, table: Spanned<toml::Table>, what: &str) -> Vec<(String, String)> {
        let span = table.span();
        let mut out = Vec::new();
        for (k, v) in table.into_inner() {
            match v {
                toml::Value::String(s) => out.push((k, s)),
                other => self.error(
                    span.clone(),
                    format!("{what} `{k}` must be a string, found {}", other.type_str()),
                    format!("quote the value: {k} = \"{other}\""),
                ),
            }
        }
        out
    }

    fn config(&mut self, c: ConfigSection) -> ContainerConfig {
        let mut out = ContainerConfig {
            entrypoint: c.entrypoint.map(Spanned::into_inner),
            cmd: c.cmd.map(Spanned::into_inner),
            shell: c.shell.map(Spanned::into_inner),
            onbuild: c.onbuild,
            ..Default::default()
        };
        if let Some(env) = c.env {
            let span = env.span();
            for (k, v) in self.string_table(env, "env variable") {
                if k.is_empty() || k.contains('=') {
                    self.error(
                        span.clone(),
                        format!("`{k}` is not a valid variable name"),
                        "environment variable names may not be empty or contain `=`",
                    );
                }
                out.env.push((k, v));
            }
        }
        if let Some(w) = c.workdir {
            if w.get_ref().starts_with('/') {
                out.workdir = Some(w.into_inner());
            } else {
                self.error(
                    w.span(),
                    format!("workdir `{}` is not absolute", w.get_ref()),
                    format!("write it as \"/{}\"", w.get_ref()),
                );
            }
        }
        if let Some(u) = c.user {
            if u.get_ref().trim().is_empty() {
                self.error(
                    u.span(),
                    "user is empty",
                    "give a name or uid[:gid], e.g. \"tomcat\" or \"1000:1000\"",
                );
            } else {
                out.user = Some(u.into_inner());
            }
        }
        for p in c.exposed_ports.unwrap_or_default() {
            match normalize_port(p.get_ref()) {
                Some(n) => out.exposed_ports.push(n),
                None => self.error(
                    p.span(),
                    format!("`{}` is not a port", p.get_ref()),
                    "write PORT or PORT/PROTO with PROTO tcp, udp or sctp, e.g. \"8080/tcp\"",
                ),
            }
        }
        for v in c.volumes.unwrap_or_default() {
            if v.get_ref().starts_with('/') {
                out.volumes.push(v.into_inner());
            } else {
                self.error(
                    v.span(),
                    format!("volume `{}` is not an absolute path", v.get_ref()),
                    format!("write it as \"/{}\"", v.get_ref()),
                );
            }
        }
        if let Some(labels) = c.labels {
            out.labels = self.string_table(labels, "label").into_iter().collect();
        }
        if let Some(s) = c.stop_signal {
            if valid_signal(s.get_ref()) {
                out.stop_signal = Some(s.into_inner());
            } else {
                self.error(
                    s.span(),
                    format!("`{}` is not a signal", s.get_ref()),
                    "use a name like \"SIGTERM\" or \"SIGQUIT\", or a number",
                );
            }
        }
        if let Some(h) = c.healthcheck {
            out.healthcheck = Some(self.healthcheck(h));
        }
        out
    }

    fn healthcheck(&mut self, h: HealthcheckDecl) -> Healthcheck {
        let test_span = h.test.span();
        let test = h.test.into_inner();
        if !matches!(
            test.first().map(String::as_str),
            Some("NONE" | "CMD" | "CMD-SHELL")
        ) {
            self.error(
                test_span,
                "healthcheck test must start with \"CMD\", \"CMD-SHELL\" or \"NONE\"",
                "e.g. test = [\"CMD\", \"curl\", \"-f\", \"http://localhost:8080/\"]",
            );
        }
        let mut duration = |d: Option<Str>| {
            d.and_then(|d| match parse_duration_ns(d.get_ref()) {
                Some(ns) => Some(ns),
                None => {
                    self.error(
                        d.span(),
                        format!("`{}` is not a duration", d.get_ref()),
                        "write a number with a unit: \"500ms\", \"30s\", \"1m30s\", \"1h\"",
                    );
                    None
                }
            })
        };
        let interval_ns = duration(h.interval);
        let timeout_ns = duration(h.timeout);
        let start_period_ns = duration(h.start_period);
        let start_interval_ns = duration(h.start_interval);
        let retries = h.retries.and_then(|r| match u32::try_from(*r.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    r.span(),
                    "retries must be a non-negative number",
                    "e.g. retries = 3",
                );
                None
            }
        });
        Healthcheck {
            test,
            interval_ns,
            timeout_ns,
            start_period_ns,
            start_interval_ns,
            retries,
        }
    }

    fn accounts(
        &mut self,
        users: &[UserDecl],
        groups: &[GroupDecl],
        parent: Option<&Recipe>,
    ) -> (Vec<User>, Vec<Group>) {
        let mut out_groups: Vec<Group> = parent.map(|p| p.groups.clone()).unwrap_or_default();
        let mut out_users: Vec<User> = parent.map(|p| p.users.clone()).unwrap_or_default();
        for g in groups {
            let Some(gid) = self.id(&g.gid) else { continue };
            if !valid_account_name(g.name.get_ref()) {
                self.error(
                    g.name.span(),
                    format!("`{}` is not a valid group name", g.name.get_ref()),
                    "names start with a letter or `_` and hold letters, digits, `_`, `-` and `.`",
                );
                continue;
            }
            out_groups.retain(|x| x.name != *g.name.get_ref());
            out_groups.push(Group {
                name: g.name.get_ref().clone(),
                gid,
            });
        }
        for u in users {
            let Some(uid) = self.id(&u.uid) else { continue };
            if !valid_account_name(u.name.get_ref()) {
                self.error(
                    u.name.span(),
                    format!("`{}` is not a valid user name", u.name.get_ref()),
                    "names start with a letter or `_` and hold letters, digits, `_`, `-` and `.`",
                );
                continue;
            }
            let gid = match &u.gid {
                Some(g) => match self.id(g) {
                    Some(g) => g,
                    None => continue,
                },
                None => out_groups
                    .iter()
                    .find(|g| g.name == *u.name.get_ref())
                    .map_or(uid, |g| g.gid),
            };
            out_users.retain(|x| x.name != *u.name.get_ref());
            out_users.push(User {
                name: u.name.get_ref().clone(),
                uid,
                gid,
                home: u
                    .home
                    .as_ref()
                    .map_or_else(|| "/nonexistent".into(), |h| h.get_ref().clone()),
                shell: u
                    .shell
                    .as_ref()
                    .map_or_else(|| "/usr/sbin/nologin".into(), |s| s.get_ref().clone()),
            });
        }
        (out_users, out_groups)
    }

    fn id(&mut self, v: &Spanned<i64>) -> Option<u32> {
        match u32::try_from(*v.get_ref()) {
            Ok(id) if id < u32::MAX => Some(id),
            _ => {
                self.error(
                    v.span(),
                    format!("{} is not a valid uid/gid", v.get_ref()),
                    "ids are integers from 0 to 4294967294",
                );
                None
            }
        }
    }

    fn layer(&mut self, decl: LayerDecl, accounts: &Accounts) -> LayerSpec {
        let location = self.location(decl.name.span());
        let mut items = Vec::new();
        for f in decl.files {
            if let Some(item) = self.files(f, accounts) {
                items.push(LayerItem::Files(item));
            }
        }
        for d in decl.dirs {
            let path = self.image_path(&d.path);
            let mode = self.mode(d.mode.as_ref()).unwrap_or(0o755);
            let owner = self.owner(d.owner.as_ref(), accounts);
            if let Some(path) = path {
                items.push(LayerItem::Dir {
                    path,
                    mode,
                    owner,
                    location: self.location(d.path.span()),
                });
            }
        }
        for s in decl.symlinks {
            let path = self.image_path(&s.path);
            let owner = self.owner(s.owner.as_ref(), accounts);
            if s.target.get_ref().is_empty() {
                self.error(
                    s.target.span(),
                    "symlink target is empty",
                    "give the path the link points to, absolute or relative to the link's folder",
                );
                continue;
            }
            if let Some(path) = path {
                items.push(LayerItem::Symlink {
                    path,
                    target: s.target.get_ref().clone(),
                    owner,
                    location: self.location(s.path.span()),
                });
            }
        }
        for h in decl.hardlinks {
            let path = self.image_path(&h.path);
            let target = self.image_path(&h.target);
            if let (Some(path), Some(target)) = (path, target) {
                items.push(LayerItem::Hardlink {
                    path,
                    target,
                    location: self.location(h.path.span()),
                });
            }
        }
        let wants_packages =
            decl.packages.is_some() || decl.minbase.as_ref().is_some_and(|m| *m.get_ref());
        let packages = wants_packages.then(|| PackageSet {
            names: decl
                .packages
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_default(),
            minbase: decl.minbase.as_ref().is_some_and(|m| *m.get_ref()),
            recommends: decl.recommends.as_ref().is_some_and(|m| *m.get_ref()),
            merged_usr: decl.merged_usr.as_ref().is_none_or(|m| *m.get_ref()),
        });
        let war = decl.war.and_then(|w| self.war(w, accounts));
        if war.is_some() && (packages.is_some() || !items.is_empty()) {
            self.error(
                decl.name.span(),
                format!(
                    "layer `{}` has a war and other content",
                    decl.name.get_ref()
                ),
                "a war becomes layers of its own; put packages and files in separate layers",
            );
        }
        if packages.is_some() && !items.is_empty() {
            self.error(
                decl.name.span(),
                format!(
                    "layer `{}` has both packages and files",
                    decl.name.get_ref()
                ),
                "put packages and files in separate layers",
            );
        }
        LayerSpec {
            name: decl.name.into_inner(),
            location,
            items,
            packages,
            war,
        }
    }

    fn war(&mut self, w: WarDecl, accounts: &Accounts) -> Option<WarItem> {
        let mode = self.mode(w.mode.as_ref()).unwrap_or(0o644);
        let dir_mode = self.mode(w.dir_mode.as_ref()).unwrap_or(0o755);
        let owner = self.owner(w.owner.as_ref(), accounts);
        let max_size = self
            .size(w.max_size.as_ref())
            .unwrap_or(WarItem::DEFAULT_MAX_SIZE);
        let dest = self.image_path(&w.dest);
        let path = match self.source(&w.src)? {
            SourceKind::File(path) => path,
            _ => {
                self.error(
                    w.src.span(),
                    format!("war `{}` is not a file", w.src.get_ref()),
                    "give the path of one .war file; to copy a folder use `files`",
                );
                return None;
            }
        };
        Some(WarItem {
            src: w.src.get_ref().clone(),
            path,
            dest: dest?,
            mode,
            dir_mode,
            owner,
            max_size,
            location: self.location(w.src.span()),
        })
    }

    /// A size: a number of bytes, or a string with a binary unit (`"512 MiB"`, `"8GiB"`).
    fn size(&mut self, v: Option<&Spanned<toml::Value>>) -> Option<u64> {
        let v = v?;
        let parsed = match v.get_ref() {
            toml::Value::Integer(i) => u64::try_from(*i).ok(),
            toml::Value::String(s) => parse_size(s),
            _ => None,
        };
        match parsed {
            Some(n) if n > 0 => Some(n),
            _ => {
                self.error(
                    v.span(),
                    format!("`{}` is not a size", v.get_ref()),
                    "write a number of bytes (1000000) or a string with a unit: \"512 MiB\", \"8 GiB\" (B, KiB, MiB, GiB, TiB)",
                );
                None
            }
        }
    }

    fn image_path(&mut self, s: &Str) -> Option<ImagePath> {
        match ImagePath::from_absolute(s.get_ref()) {
            Ok(p) if p.is_root() => {
                self.error(
                    s.span(),
                    "this path is the image root",
                    "name a path below `/`",
                );
                None
            }
            Ok(p) => Some(p),
            Err(ImagePathError::NotAbsolute) => {
                self.error(
                    s.span(),
                    format!("`{}` is not an absolute path in the image", s.get_ref()),
                    format!("write it as \"/{}\"", s.get_ref()),
                );
                None
            }
            Err(e) => {
                self.error(
                    s.span(),
                    format!("`{}`: {e}", s.get_ref()),
                    "write the path without `..`",
                );
                None
            }
        }
    }

    fn files(&mut self, f: FilesDecl, accounts: &Accounts) -> Option<FilesItem> {
        let mode = self.mode(f.mode.as_ref());
        let dir_mode = self.mode(f.dir_mode.as_ref());
        let owner = self.owner(f.owner.as_ref(), accounts);
        let dest_is_dir = f.dest.get_ref().ends_with('/');
        let dest = match ImagePath::from_absolute(f.dest.get_ref()) {
            Ok(p) => Some(p),
            Err(ImagePathError::NotAbsolute) => {
                self.error(
                    f.dest.span(),
                    format!(
                        "dest `{}` is not an absolute path in the image",
                        f.dest.get_ref()
                    ),
                    format!("write it as \"/{}\"", f.dest.get_ref()),
                );
                None
            }
            Err(e) => {
                self.error(
                    f.dest.span(),
                    format!("dest `{}`: {e}", f.dest.get_ref()),
                    "write the path without `..`",
                );
                None
            }
        };
        let src_kind = self.source(&f.src);
        let mut exclude = Vec::new();
        for e in &f.exclude {
            match globset::Glob::new(e.get_ref()) {
                Ok(_) => exclude.push(e.get_ref().clone()),
                Err(err) => self.error(
                    e.span(),
                    format!("bad exclude pattern: {}", err.kind()),
                    "patterns use *, ?, [..], {a,b} and ** for any depth, e.g. \"**/*.tmp\"",
                ),
            }
        }
        Some(FilesItem {
            src: f.src.get_ref().clone(),
            src_kind: src_kind?,
            dest: dest?,
            dest_is_dir,
            mode,
            dir_mode,
            owner,
            exclude,
            location: self.location(f.src.span()),
        })
    }

    fn source(&mut self, src: &Str) -> Option<SourceKind> {
        let s = src.get_ref();
        if s.is_empty() || Path::new(s).is_absolute() {
            self.error(
                src.span(),
                format!("src `{s}` must be a path relative to the recipe's folder"),
                format!(
                    "sources are read from {}; write the path relative to it",
                    self.context.display()
                ),
            );
            return None;
        }
        if Path::new(s)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            self.error(
                src.span(),
                format!("src `{s}` leaves the recipe's folder"),
                format!(
                    "sources must be inside {}; move the files there, the recipe up, or set `context` to a folder holding both",
                    self.context.display()
                ),
            );
            return None;
        }
        let is_glob = s.contains(['*', '?', '[', '{']);
        if is_glob {
            let literal: Vec<&str> = s
                .split('/')
                .take_while(|c| !c.contains(['*', '?', '[', '{']))
                .collect();
            let pattern = s
                .split('/')
                .skip(literal.len())
                .collect::<Vec<_>>()
                .join("/");
            if let Err(err) = globset::Glob::new(&pattern) {
                self.error(
                    src.span(),
                    format!("bad glob: {}", err.kind()),
                    "patterns use *, ?, [..], {a,b} and ** for any depth",
                );
                return None;
            }
            let base = self.context.join(literal.join("/"));
            let base = self.inside(src, &base)?;
            if !base.is_dir() {
                self.error(
                    src.span(),
                    format!(
                        "the folder `{}` of glob `{s}` does not exist",
                        literal.join("/")
                    ),
                    "check the path; globs are relative to the recipe's folder",
                );
                return None;
            }
            return Some(SourceKind::Glob { base, pattern });
        }
        let path = self.context.join(s);
        if path.symlink_metadata().is_err() {
            self.error(
                src.span(),
                format!(
                    "source `{s}` does not exist (looked for {})",
                    path.display()
                ),
                "check the path; sources are relative to the recipe's folder",
            );
            return None;
        }
        let resolved = self.inside(src, &path)?;
        if resolved.is_dir() {
            Some(SourceKind::Dir(resolved))
        } else if resolved.is_file() {
            Some(SourceKind::File(resolved))
        } else {
            self.error(
                src.span(),
                format!("source `{s}` is neither a file nor a directory"),
                "only regular files, directories and symlinks can be copied into an image",
            );
            None
        }
    }

    /// Canonicalises `path` and checks it stays inside the recipe's folder (symlinks included).
    fn inside(&mut self, src: &Str, path: &Path) -> Option<PathBuf> {
        match path.canonicalize() {
            Ok(c) if c.starts_with(self.context) => Some(c),
            Ok(c) => {
                self.error(
                    src.span(),
                    format!(
                        "src `{}` resolves to {}, outside the recipe's folder",
                        src.get_ref(),
                        c.display()
                    ),
                    format!("sources must be inside {}", self.context.display()),
                );
                None
            }
            Err(e) => {
                self.error(
                    src.span(),
                    format!("cannot read source `{}`: {e}", src.get_ref()),
                    "check the path and its permissions",
                );
                None
            }
        }
    }

    fn mode(&mut self, v: Option<&Spanned<toml::Value>>) -> Option<u32> {
        let v = v?;
        let help =
            "write modes in octal, as a string (\"0644\", \"4755\") or a TOML octal number (0o644)";
        let parsed = match v.get_ref() {
            toml::Value::String(s) => {
                let digits = s.strip_prefix("0o").unwrap_or(s);
                if (1..=4).contains(&digits.len()) {
                    u32::from_str_radix(digits, 8).ok()
                } else {
                    None
                }
            }
            toml::Value::Integer(i) => {
                // A plain `644` is decimal in TOML, which is never what was meant.
                let raw = &self.source.text[v.span()];
                if raw.starts_with("0o") {
                    u32::try_from(*i).ok()
                } else {
                    self.error(v.span(), format!("mode {raw} is a decimal number"), help);
                    return None;
                }
            }
            _ => None,
        };
        match parsed {
            Some(m) if m <= 0o7777 => Some(m),
            _ => {
                self.error(
                    v.span(),
                    format!("`{}` is not a file mode", v.get_ref()),
                    help,
                );
                None
            }
        }
    }

    fn owner(&mut self, v: Option<&Str>, accounts: &Accounts) -> Owner {
        let Some(v) = v else { return Owner::ROOT };
        match accounts.resolve(v.get_ref()) {
            Ok(o) => o,
            Err(msg) => {
                self.error(
                    v.span(),
                    msg,
                    "use uid:gid (\"1000:1000\"), \"root\", or a name declared in [[users]] / [[groups]]",
                );
                Owner::ROOT
            }
        }
    }
}

struct Accounts<'a> {
    users: &'a [User],
    groups: &'a [Group],
}

impl Accounts<'_> {
    fn resolve(&self, spec: &str) -> Result<Owner, String> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, primary_gid) = if let Ok(n) = u.parse::<u32>() {
            (n, n)
        } else if u == "root" {
            (0, 0)
        } else if let Some(user) = self.users.iter().find(|x| x.name == u) {
            (user.uid, user.gid)
        } else {
            return Err(format!("unknown user `{u}`"));
        };
        let gid = match g {
            None => primary_gid,
            Some(g) => {
                if let Ok(n) = g.parse::<u32>() {
                    n
                } else if g == "root" {
                    0
                } else if let Some(group) = self.groups.iter().find(|x| x.name == g) {
                    group.gid
                } else {
                    return Err(format!("unknown group `{g}`"));
                }
            }
        };
        Ok(Owner { uid, gid })
    }
}

/// A tag, possibly with git placeholders (`{git.sha}`, `{git.short}`, `{git.branch}`,
/// `{git.tag}`) that the plan fills in and checks again.
fn valid_tag(t: &str) -> bool {
    if t.contains('{') {
        let mut rest = t.to_string();
        for p in ["{git.sha}", "{git.short}", "{git.branch}", "{git.tag}"] {
            rest = rest.replace(p, "x");
        }
        return !rest.contains(['{', '}']) && valid_tag(&rest);
    }
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_repository(name: &str) -> bool {
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a dot, a colon or `localhost` is a registry host[:port].
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return false;
        }
    }
    !parts.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && p.as_bytes()[0].is_ascii_alphanumeric()
                && p.as_bytes()[p.len() - 1].is_ascii_alphanumeric()
        })
}

fn valid_account_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && (n.as_bytes()[0].is_ascii_alphabetic() || n.starts_with('_'))
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn valid_signal(s: &str) -> bool {
    s.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n))
        || (s.len() > 3
            && s.starts_with("SIG")
            && s[3..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"+-".contains(&b)))
}

fn normalize_port(p: &str) -> Option<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let n: u16 = num.parse().ok()?;
    if n == 0 || !matches!(proto, "tcp" | "udp" | "sctp") {
        return None;
    }
    Some(format!("{n}/{proto}"))
}

/// `linux/amd64, linux/arm64` for messages.
pub fn list_platforms(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every platform a recipe may name, for help lines.
pub fn supported_platforms() -> String {
    crate::oci::DEBIAN_ARCHITECTURES
        .iter()
        .map(|(arch, p)| format!("{p} ({arch})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_platform(s: &str) -> Option<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: None,
        }),
        [os, arch, v] if ok(os) && ok(arch) && ok(v) => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: Some(v.to_string()),
        }),
        _ => None,
    }
}

/// Go-style durations as Docker writes them in recipes: `1h30m`, `30s`, `500ms`.
fn parse_duration_ns(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1_000_000, 2)
        } else if rest.starts_with("us") {
            (1_000, 2)
        } else if rest.starts_with("ns") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000_000_000, 1)
        } else if rest.starts_with('m') {
            (60_000_000_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000_000_000, 1)
        } else {
            return None;
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// `1000`, `"1000 B"`, `"64 KiB"`, `"512 MiB"`, `"8GiB"`, `"1 TiB"`: binary units only (a
/// `MB` that might mean 10^6 or 2^20 is refused rather than guessed).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    let shift = match s[digits..].trim_start() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_binary_units() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("8GiB"), Some(8 << 30));
        assert_eq!(parse_size(" 1 TiB "), Some(1 << 40));
        for bad in [
            "",
            "MiB",
            "5 MB",
            "1.5 GiB",
            "-1 KiB",
            "99999999999999999999 TiB",
            "20000000 TiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_tags_ports_durations() {
        assert!(valid_repository("registry.local:5000/team/app"));
        assert!(valid_repository("localhost/app"));
        assert!(!valid_repository("Team/App"));
        assert!(valid_tag("v1.2-rc_3"));
        assert!(!valid_tag("-x"));
        assert_eq!(normalize_port("8080").as_deref(), Some("8080/tcp"));
        assert_eq!(normalize_port("53/udp").as_deref(), Some("53/udp"));
        assert_eq!(normalize_port("0"), None);
        assert_eq!(parse_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(parse_duration_ns("5"), None);
        assert!(valid_signal("SIGRTMIN+3"));
        assert!(!valid_signal("TERM"));
    }

    #[test]
    fn from_tells_images_from_recipes() {
        let recipe = Path::new("/nonexistent/app.toml");
        for image in [
            "registry.local:5000/base/java:17",
            "127.0.0.1:5000/base:1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "localhost/base",
            "ghcr.io/org/base",
        ] {
            assert!(is_image_reference(recipe, image), "{image}");
        }
        for path in [
            "base.toml",
            "../base.toml",
            "./base",
            "/abs/base",
            "dir/base",
            "base",
        ] {
            assert!(!is_image_reference(recipe, path), "{path}");
        }
    }
}

/// Fuzzing on stable: arbitrary text, and TOML made of the recipe's own sections, keys and
/// awkward values, through the loader: an error or a recipe, never a panic.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    const HEADERS: &[&str] = &[
        "[image]",
        "[config]",
        "[config.healthcheck]",
        "[[sources]]",
        "[[users]]",
        "[[groups]]",
        "[[layers]]",
        "[image.annotations]",
        "[config.env]",
        "[config.labels]",
    ];
    const KEYS: &[&str] = &[
        "from",
        "context",
        "name",
        "tags",
        "format",
        "compression",
        "compression-level",
        "platform",
        "platforms",
        "entrypoint",
        "cmd",
        "env",
        "workdir",
        "user",
        "exposed-ports",
        "volumes",
        "labels",
        "stop-signal",
        "shell",
        "healthcheck",
        "onbuild",
        "test",
        "interval",
        "timeout",
        "retries",
        "mirrors",
        "suites",
        "components",
        "keyring",
        "allow-unsigned",
        "uid",
        "gid",
        "home",
        "packages",
        "minbase",
        "recommends",
        "merged-usr",
        "files",
        "dirs",
        "symlinks",
        "hardlinks",
        "war",
        "src",
        "dest",
        "mode",
        "dir-mode",
        "owner",
        "exclude",
        "path",
        "target",
        "max-size",
    ];
    const VALUES: &[&str] = &[
        "\"\"",
        "\"/\"",
        "\"a\"",
        "\"../x\"",
        "\"/srv/app\"",
        "\"0644\"",
        "\"0o7777\"",
        "\"99999\"",
        "\"scratch\"",
        "\"dir\"",
        "\"app.war\"",
        "\"recipe.toml\"",
        "\"other.toml\"",
        "\"localhost:5000/x:y\"",
        "\"1h30m\"",
        "\"é/日本\"",
        "\"2 KiB\"",
        "\"99999999999999999999 TiB\"",
        "\"{git.short}\"",
        "\"oci\"",
        "\"zstd\"",
        "\"linux/amd64\"",
        "\"root\"",
        "\"1000:1001\"",
        "\"SIGTERM\"",
        "\"80/tcp\"",
        "0",
        "-1",
        "1",
        "0o644",
        "9223372036854775807",
        "-9223372036854775808",
        "4294967295",
        "65536",
        "1e300",
        "true",
        "false",
        "[]",
        "[\"a\", \"b\"]",
        "[1, 2]",
        "[[]]",
        "{}",
        "{ src = \"dir\", dest = \"/x\" }",
        "[{ src = \"dir\", dest = \"/opt/x\" }]",
        "{ src = \"app.war\", dest = \"/w\", max-size = 1 }",
        "[{ path = \"/d\", mode = \"0755\" }]",
        "[{ path = \"/l\", target = \"../../..\" }]",
        "{ test = [\"CMD\"], interval = \"1s\", retries = -5 }",
    ];

    /// A folder holding a file, a folder, a WAR-named file and another recipe, one per test
    /// thread (made once: the cases only rewrite `recipe.toml`).
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        std::fs::write(dir.path().join("dir/f"), "f").unwrap();
        std::fs::write(dir.path().join("app.war"), "not a zip").unwrap();
        std::fs::write(dir.path().join("other.toml"), "from = \"recipe.toml\"\n").unwrap();
        dir
    }

    thread_local! {
        static DIR: tempfile::TempDir = fixture();
    }

    /// Loads `text` as `recipe.toml` in the thread's fixture folder.
    fn load_text(text: &str) {
        DIR.with(|dir| {
            let path = dir.path().join("recipe.toml");
            std::fs::write(&path, text).unwrap();
            let _ = super::load(&path);
        });
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(2000))]

        #[test]
        fn arbitrary_text(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            load_text(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn recipes_of_recipe_keys(
            lines in proptest::collection::vec(
                (0..4u8, proptest::sample::select(HEADERS), proptest::sample::select(KEYS), proptest::sample::select(VALUES)),
                0..30,
            )
        ) {
            let mut text = String::new();
            for (kind, header, key, value) in lines {
                if kind == 0 {
                    text.push_str(header);
                } else {
                    text.push_str(&format!("{key} = {value}"));
                }
                text.push('\n');
            }
            load_text(&text);
        }
    }
}
