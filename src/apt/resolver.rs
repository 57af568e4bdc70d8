//! Picks the packages apt picks.
//!
//! This follows apt 2.x's `pkgDepCache::MarkInstall` (apt-pkg/depcache.cc) rather than a SAT
//! solver, because the goal is to match `apt-get install` exactly, not to find some solution:
//! 1. every requested package is marked first, without its dependencies (apt-get's
//!    `TryToInstall`), so alternatives naming a requested package are already satisfied;
//! 2. then, in apt's package-ID order, each requested package with unmet dependencies gets them
//!    installed depth-first: Pre-Depends and Depends groups in file order, a group already
//!    satisfied by a selected or lower-layer package is skipped, otherwise the candidates of the
//!    group's alternatives are tried in order, providers of one alternative sorted the way apt's
//!    `CompareProviders` sorts them (the real package first, then `Protected`/`Important`, then
//!    Priority, then the later cache ID);
//! 3. only candidate versions count (the highest version, apt's default pins): an alternative
//!    whose candidate does not satisfy the version constraint is not satisfiable.
//!
//! Essential is not preferred among providers, matching apt run with
//! `pkgCacheGen::Essential=none` as image builders do. Conflicts and Breaks are never "solved"
//! by removing packages: a candidate that would conflict is skipped, and any conflict left is an
//! error naming both packages.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::deb822;
use super::index::{
    ArchQualifier, Dep, Index, IndexError, MultiArch, Package, Provide, format_alternatives,
    parse_dependency_field,
};

/// What to install on top of the lower layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Package names, optionally pinned as `name=version`.
    pub packages: Vec<String>,
    /// Add debootstrap's `--variant=minbase` set: every `Essential: yes` or `Priority: required`
    /// candidate, plus `usr-is-merged` (so merged /usr comes without the `usrmerge` converter
    /// and its Perl).
    pub minbase: bool,
    /// Follow Recommends too (apt's `APT::Install-Recommends`); off by default.
    pub recommends: bool,
}

/// A package a lower layer already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub multi_arch: MultiArch,
    pub provides: Vec<Provide>,
    pub conflicts: Vec<Dep>,
    pub breaks: Vec<Dep>,
}

impl InstalledPackage {
    /// Reads a dpkg status file (`/var/lib/dpkg/status` of a base image) and returns the
    /// packages whose `Status` ends in `installed`. `file` names it in errors.
    pub fn from_dpkg_status(text: &str, file: &str) -> Result<Vec<InstalledPackage>, IndexError> {
        let mut out = Vec::new();
        for paragraph in deb822::paragraphs(text) {
            let paragraph = paragraph.map_err(|source| IndexError::Syntax {
                file: file.to_owned(),
                source,
            })?;
            let installed = paragraph
                .first_line("Status")
                .is_some_and(|s| s.split_whitespace().last() == Some("installed"));
            if !installed {
                continue;
            }
            let name = paragraph.first_line("Package").unwrap_or("?");
            let bad = |detail: String| IndexError::BadField {
                file: file.to_owned(),
                line: paragraph.line,
                package: name.to_owned(),
                detail,
            };
            let flat = |field: &str| -> Result<Vec<Dep>, IndexError> {
                match paragraph.get(field) {
                    None => Ok(Vec::new()),
                    Some(v) => Ok(parse_dependency_field(v)
                        .map_err(|e| bad(format!("{field}: {e}")))?
                        .into_iter()
                        .flatten()
                        .collect()),
                }
            };
            let provides = flat("Provides")?
                .into_iter()
                .map(|d| Provide {
                    name: d.name,
                    version: d.constraint.map(|(_, v)| v),
                })
                .collect();
            out.push(InstalledPackage {
                name: name.to_owned(),
                version: paragraph
                    .first_line("Version")
                    .ok_or_else(|| bad("missing Version".into()))?
                    .to_owned(),
                multi_arch: match paragraph.first_line("Multi-Arch") {
                    Some("same") => MultiArch::Same,
                    Some("foreign") => MultiArch::Foreign,
                    Some("allowed") => MultiArch::Allowed,
                    _ => MultiArch::No,
                },
                provides,
                conflicts: flat("Conflicts")?,
                breaks: flat("Breaks")?,
            });
        }
        Ok(out)
    }
}

impl From<&Package> for InstalledPackage {
    fn from(p: &Package) -> Self {
        InstalledPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            multi_arch: p.multi_arch,
            provides: p.provides.clone(),
            conflicts: p.conflicts.clone(),
            breaks: p.breaks.clone(),
        }
    }
}

/// Why a package is in the layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Named in the request.
    Requested,
    /// `Essential: yes` (minbase).
    Essential,
    /// `Priority: required` (minbase).
    Required,
    /// Added by minbase to get merged /usr without `usrmerge`.
    MergedUsr,
    /// A dependency of another package in this resolution.
    Dependency { by: String, field: DepField },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepField {
    PreDepends,
    Depends,
    Recommends,
}

impl fmt::Display for DepField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DepField::PreDepends => "Pre-Depends",
            DepField::Depends => "Depends",
            DepField::Recommends => "Recommends",
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Requested => f.write_str("requested"),
            Reason::Essential => f.write_str("essential"),
            Reason::Required => f.write_str("required"),
            Reason::MergedUsr => f.write_str("merged /usr (minbase)"),
            Reason::Dependency { by, field } => write!(f, "{field} of {by}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub package: Package,
    pub reason: Reason,
}

/// The packages to add to a layer, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub packages: Vec<Resolved>,
}

impl Resolution {
    pub fn names(&self) -> Vec<&str> {
        self.packages
            .iter()
            .map(|r| r.package.name.as_str())
            .collect()
    }

    /// The chain that brought `name` in, from the root (requested, essential, ...) down to
    /// `name` itself, e.g. `["tomcat10", "tomcat10-common", "libtomcat10-java"]`; empty if
    /// `name` is not in this resolution. For `stevedore plan`.
    pub fn why(&self, name: &str) -> Vec<String> {
        let mut chain = Vec::new();
        let mut current = name;
        while let Some(r) = self.packages.iter().find(|r| r.package.name == current) {
            if chain.iter().any(|n| n == current) {
                break; // dependency cycles are possible; the chain stops where it loops
            }
            chain.push(current.to_owned());
            match &r.reason {
                Reason::Dependency { by, .. } => current = by,
                _ => break,
            }
        }
        chain.reverse();
        chain
    }

    /// What the next layer's resolver should treat as installed: the lower layers plus this one.
    pub fn installed_after(&self, lower: &[InstalledPackage]) -> Vec<InstalledPackage> {
        let mut out = lower.to_vec();
        out.extend(
            self.packages
                .iter()
                .map(|r| InstalledPackage::from(&r.package)),
        );
        out
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("unknown package `{name}` in {architecture} index of the configured suites{}", suggest(.suggestions))]
    UnknownPackage {
        name: String,
        architecture: String,
        suggestions: Vec<String>,
    },
    #[error("package `{name}` has no version {version}; available: {}", .available.join(", "))]
    NoSuchVersion {
        name: String,
        version: String,
        available: Vec<String>,
    },
    #[error("`{name}` is a virtual package provided by {}; name one of them", .providers.join(", "))]
    VirtualPackage {
        name: String,
        providers: Vec<String>,
    },
    #[error("cannot install {}: {package} {version} {field} `{dependency}`, which cannot be satisfied: {}", .chain.join(" → "), .reasons.join("; "))]
    Unsatisfiable {
        /// requested package → … → the package whose dependency failed
        chain: Vec<String>,
        package: String,
        version: String,
        field: DepField,
        dependency: String,
        reasons: Vec<String>,
    },
    #[error(
        "{a} {relation} `{dependency}`, which {b} matches; they cannot be installed together (remove one from the request or pin another version)"
    )]
    Conflict {
        a: String,
        relation: &'static str,
        dependency: String,
        b: String,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

/// Resolves `request` against `index`, given what lower layers already installed.
pub fn resolve(
    index: &Index,
    request: &Request,
    installed: &[InstalledPackage],
) -> Result<Resolution, ResolveError> {
    let mut s = Solver::new(index, request, installed);
    let mut roots: Vec<(usize, Reason)> = Vec::new();
    if request.minbase {
        for idx in index.minbase() {
            let p = index.package(idx);
            let reason = if p.essential {
                Reason::Essential
            } else {
                Reason::Required
            };
            roots.push((idx, reason));
        }
        if let Some(idx) = index.candidate("usr-is-merged") {
            roots.push((idx, Reason::MergedUsr));
        }
    }
    for spec in &request.packages {
        let idx = s.lookup_request(spec)?;
        roots.push((idx, Reason::Requested));
    }
    // Phase 1: mark every root, without dependencies.
    let mut root_names = Vec::new();
    for (idx, reason) in roots {
        let name = &index.package(idx).name;
        if s.installed.contains_key(name.as_str()) || s.selected.contains_key(name) {
            continue;
        }
        s.select(idx, reason);
        root_names.push(idx);
    }
    // Phase 2: dependencies, in apt's package-ID order.
    root_names.sort_by_key(|&idx| index.apt_id(&index.package(idx).name));
    for idx in root_names {
        s.install_dependencies(idx).map_err(|f| f.into_error())?;
    }
    s.check_conflicts()?;
    let mut packages: Vec<Resolved> = s
        .order
        .iter()
        .map(|name| {
            let idx = s.selected[name];
            Resolved {
                package: index.package(idx).clone(),
                reason: s.reasons[name].clone(),
            }
        })
        .collect();
    packages.sort_by(|a, b| a.package.name.cmp(&b.package.name));
    Ok(Resolution { packages })
}

/// Why a subtree failed, collected while unwinding.
#[derive(Debug)]
enum Failure {
    Unsatisfiable {
        chain: Vec<String>,
        package: String,
        version: String,
        field: DepField,
        dependency: String,
        reasons: Vec<String>,
    },
    Conflict(ResolveError),
}

impl Failure {
    fn into_error(self) -> ResolveError {
        match self {
            Failure::Unsatisfiable {
                chain,
                package,
                version,
                field,
                dependency,
                reasons,
            } => ResolveError::Unsatisfiable {
                chain,
                package,
                version,
                field,
                dependency,
                reasons,
            },
            Failure::Conflict(e) => e,
        }
    }

    fn summary(&self) -> String {
        match self {
            Failure::Unsatisfiable {
                package,
                field,
                dependency,
                reasons,
                ..
            } => format!("{package} {field} `{dependency}` ({})", reasons.join("; ")),
            Failure::Conflict(e) => e.to_string(),
        }
    }
}

struct Solver<'a> {
    index: &'a Index,
    recommends: bool,
    installed: HashMap<&'a str, &'a InstalledPackage>,
    /// virtual name → installed packages providing it.
    installed_providers: HashMap<&'a str, Vec<(&'a InstalledPackage, &'a Provide)>>,
    /// Candidate overrides from `name=version` requests.
    pinned: HashMap<String, usize>,
    selected: HashMap<String, usize>,
    reasons: HashMap<String, Reason>,
    /// Selection order, for rollback.
    order: Vec<String>,
    deps_done: HashSet<String>,
}

impl<'a> Solver<'a> {
    fn new(index: &'a Index, request: &Request, installed: &'a [InstalledPackage]) -> Self {
        let mut installed_providers: HashMap<&str, Vec<_>> = HashMap::new();
        for p in installed {
            for prv in &p.provides {
                installed_providers
                    .entry(prv.name.as_str())
                    .or_default()
                    .push((p, prv));
            }
        }
        Solver {
            index,
            recommends: request.recommends,
            installed: installed.iter().map(|p| (p.name.as_str(), p)).collect(),
            installed_providers,
            pinned: HashMap::new(),
            selected: HashMap::new(),
            reasons: HashMap::new(),
            order: Vec::new(),
            deps_done: HashSet::new(),
        }
    }

    fn lookup_request(&mut self, spec: &str) -> Result<usize, ResolveError> {
        let (name, version) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        // `libc6:amd64` names the one architecture an index serves.
        let native = self.index.architecture();
        let name = match name.split_once(':') {
            Some((n, arch)) if arch == native || arch == "native" || arch == "all" => n,
            _ => name,
        };
        if let Some(version) = version {
            let found = self
                .index
                .versions(name)
                .find(|(_, p)| p.version == version)
                .map(|(i, _)| i);
            return match found {
                Some(idx) => {
                    self.pinned.insert(name.to_owned(), idx);
                    Ok(idx)
                }
                None if self.index.candidate(name).is_none() => Err(self.unknown(name)),
                None => Err(ResolveError::NoSuchVersion {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    available: self
                        .index
                        .versions(name)
                        .map(|(_, p)| p.version.clone())
                        .collect(),
                }),
            };
        }
        if let Some(idx) = self.index.candidate(name) {
            return Ok(idx);
        }
        // apt-get installs a virtual package's provider when there is exactly one.
        let mut providers: Vec<usize> = self
            .index
            .providers(name)
            .iter()
            .copied()
            .filter(|&i| self.index.is_candidate(i))
            .collect();
        providers.dedup();
        match providers.as_slice() {
            [] => Err(self.unknown(name)),
            [one] => Ok(*one),
            many => Err(ResolveError::VirtualPackage {
                name: name.to_owned(),
                providers: many
                    .iter()
                    .map(|&i| self.index.package(i).name.clone())
                    .collect(),
            }),
        }
    }

    fn unknown(&self, name: &str) -> ResolveError {
        let mut scored: Vec<(usize, &str)> = self
            .index
            .names()
            .filter_map(|n| {
                let d = edit_distance(name, n);
                let close = d <= 2 || (name.len() >= 4 && n.starts_with(name));
                close.then_some((d, n))
            })
            .collect();
        scored.sort();
        ResolveError::UnknownPackage {
            name: name.to_owned(),
            architecture: self.index.architecture().to_owned(),
            suggestions: scored
                .into_iter()
                .take(5)
                .map(|(_, n)| n.to_owned())
                .collect(),
        }
    }

    fn candidate(&self, name: &str) -> Option<usize> {
        self.pinned
            .get(name)
            .copied()
            .or_else(|| self.index.candidate(name))
    }

    fn select(&mut self, idx: usize, reason: Reason) {
        let name = self.index.package(idx).name.clone();
        self.selected.insert(name.clone(), idx);
        self.reasons.insert(name.clone(), reason);
        self.order.push(name);
    }

    fn rollback(&mut self, mark: usize) {
        for name in self.order.drain(mark..) {
            self.selected.remove(&name);
            self.reasons.remove(&name);
            self.deps_done.remove(&name);
        }
    }

    fn arch_ok(dep: &Dep, multi_arch: MultiArch, native: &str) -> bool {
        match &dep.arch {
            ArchQualifier::None | ArchQualifier::Native => true,
            ArchQualifier::Any => multi_arch == MultiArch::Allowed,
            ArchQualifier::Named(a) => a == native,
        }
    }

    fn version_ok(dep: &Dep, version: &str) -> bool {
        dep.constraint
            .as_ref()
            .is_none_or(|(rel, wanted)| rel.matches(version, wanted))
    }

    fn provide_ok(dep: &Dep, provide: &Provide) -> bool {
        match (&dep.constraint, &provide.version) {
            (None, _) => true,
            (Some((rel, wanted)), Some(v)) => rel.matches(v, wanted),
            (Some(_), None) => false,
        }
    }

    /// Whether a selected or installed package satisfies `dep`.
    fn satisfied(&self, dep: &Dep) -> bool {
        let native = self.index.architecture();
        if let Some(&idx) = self.selected.get(&dep.name) {
            let p = self.index.package(idx);
            if Self::version_ok(dep, &p.version) && Self::arch_ok(dep, p.multi_arch, native) {
                return true;
            }
        }
        if let Some(p) = self.installed.get(dep.name.as_str())
            && Self::version_ok(dep, &p.version)
            && Self::arch_ok(dep, p.multi_arch, native)
        {
            return true;
        }
        for &idx in self.index.providers(&dep.name) {
            let p = self.index.package(idx);
            if self.selected.get(&p.name) == Some(&idx)
                && Self::arch_ok(dep, p.multi_arch, native)
                && p.provides
                    .iter()
                    .any(|prv| prv.name == dep.name && Self::provide_ok(dep, prv))
            {
                return true;
            }
        }
        self.installed_providers
            .get(dep.name.as_str())
            .into_iter()
            .flatten()
            .any(|(p, prv)| Self::arch_ok(dep, p.multi_arch, native) && Self::provide_ok(dep, prv))
    }

    fn group_satisfied(&self, group: &[Dep]) -> bool {
        group.iter().any(|d| self.satisfied(d))
    }

    /// Candidate versions that would satisfy the group, in the order apt tries them.
    fn solutions(&self, group: &[Dep]) -> Vec<usize> {
        let native = self.index.architecture();
        let mut out: Vec<usize> = Vec::new();
        for dep in group {
            let mut these = Vec::new();
            if let Some(idx) = self.candidate(&dep.name) {
                let p = self.index.package(idx);
                if Self::version_ok(dep, &p.version) && Self::arch_ok(dep, p.multi_arch, native) {
                    these.push(idx);
                }
            }
            for &idx in self.index.providers(&dep.name) {
                let p = self.index.package(idx);
                if self.candidate(&p.name) == Some(idx)
                    && Self::arch_ok(dep, p.multi_arch, native)
                    && p.provides
                        .iter()
                        .any(|prv| prv.name == dep.name && Self::provide_ok(dep, prv))
                    && !these.contains(&idx)
                {
                    these.push(idx);
                }
            }
            these.sort_by(|&a, &b| self.compare_providers(&dep.name, a, b));
            for idx in these {
                if !out.contains(&idx) {
                    out.push(idx);
                }
            }
        }
        out
    }

    /// apt's `CompareProviders`, minus what cannot differ here (one architecture, no
    /// protected packages, none of the candidates installed).
    fn compare_providers(&self, target: &str, a: usize, b: usize) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let (pa, pb) = (self.index.package(a), self.index.package(b));
        let (ta, tb) = (pa.name == target, pb.name == target);
        if ta != tb {
            return if ta {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if pa.important != pb.important {
            return if pa.important {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if pa.priority_rank() != pb.priority_rank() {
            return pa.priority_rank().cmp(&pb.priority_rank());
        }
        self.index
            .apt_id(&pb.name)
            .cmp(&self.index.apt_id(&pa.name))
    }

    /// Installs `idx` and its dependencies; on failure the caller rolls back.
    fn mark_install(&mut self, idx: usize, reason: Reason) -> Result<(), Box<Failure>> {
        let name = &self.index.package(idx).name;
        if self.selected.contains_key(name) {
            return Ok(());
        }
        if let Some(conflict) = self.conflict_with_selection(idx) {
            return Err(Box::new(Failure::Conflict(conflict)));
        }
        self.select(idx, reason);
        self.install_dependencies(idx)
    }

    fn install_dependencies(&mut self, idx: usize) -> Result<(), Box<Failure>> {
        let index = self.index;
        let p = index.package(idx);
        if !self.deps_done.insert(p.name.clone()) {
            return Ok(());
        }
        let mut groups: Vec<(DepField, &[Dep])> = Vec::new();
        groups.extend(
            p.pre_depends
                .iter()
                .map(|g| (DepField::PreDepends, g.as_slice())),
        );
        groups.extend(p.depends.iter().map(|g| (DepField::Depends, g.as_slice())));
        if self.recommends {
            groups.extend(
                p.recommends
                    .iter()
                    .map(|g| (DepField::Recommends, g.as_slice())),
            );
        }
        // apt collects the unmet groups first, then re-checks each before acting on it.
        let unmet: Vec<(DepField, &[Dep])> = groups
            .into_iter()
            .filter(|(_, g)| !self.group_satisfied(g))
            .collect();
        for (field, group) in unmet {
            if self.group_satisfied(group) {
                continue;
            }
            let mut failures = Vec::new();
            let mut found = false;
            for candidate in self.solutions(group) {
                let mark = self.order.len();
                let reason = Reason::Dependency {
                    by: p.name.clone(),
                    field,
                };
                match self.mark_install(candidate, reason) {
                    Ok(()) => {
                        found = true;
                        break;
                    }
                    Err(f) => {
                        self.rollback(mark);
                        failures.push(f);
                    }
                }
            }
            if found || field == DepField::Recommends {
                continue;
            }
            // Report the deepest failure when a single alternative was tried and failed below.
            if let [only] = failures.as_mut_slice()
                && let Failure::Unsatisfiable { chain, .. } = only.as_mut()
            {
                chain.insert(0, format!("{} {}", p.name, p.version));
                return Err(failures.pop().unwrap());
            }
            let mut reasons: Vec<String> = group.iter().map(|d| self.why_not(d)).collect();
            reasons.extend(failures.iter().map(|f| format!("tried: {}", f.summary())));
            return Err(Box::new(Failure::Unsatisfiable {
                chain: vec![format!("{} {}", p.name, p.version)],
                package: p.name.clone(),
                version: p.version.clone(),
                field,
                dependency: format_alternatives(group),
                reasons,
            }));
        }
        Ok(())
    }

    /// Explains why nothing satisfies `dep`.
    fn why_not(&self, dep: &Dep) -> String {
        let versions: Vec<&str> = self
            .index
            .versions(&dep.name)
            .map(|(_, p)| p.version.as_str())
            .collect();
        let providers: Vec<String> = self
            .index
            .providers(&dep.name)
            .iter()
            .filter(|&&i| self.index.is_candidate(i))
            .map(|&i| {
                let p = self.index.package(i);
                let v = p
                    .provides
                    .iter()
                    .find(|prv| prv.name == dep.name)
                    .and_then(|prv| prv.version.as_deref())
                    .map(|v| format!(" (= {v})"))
                    .unwrap_or_default();
                format!("{}{v}", p.name)
            })
            .collect();
        match (versions.is_empty(), providers.is_empty()) {
            (true, true) => format!("{} is not in the index", dep.name),
            _ => {
                let mut parts = Vec::new();
                if let Some(candidate) = self.candidate(&dep.name) {
                    parts.push(format!(
                        "{} has {} (candidate {})",
                        dep.name,
                        versions.join(", "),
                        self.index.package(candidate).version
                    ));
                }
                if !providers.is_empty() {
                    parts.push(format!("provided by {}", providers.join(", ")));
                }
                if matches!(dep.arch, ArchQualifier::Any) {
                    parts.push("`:any` needs Multi-Arch: allowed".into());
                }
                parts.join(", ")
            }
        }
    }

    /// Whether `dep` (from a Conflicts/Breaks of `owner`) hits the package `name version`.
    fn negative_hits(
        dep: &Dep,
        owner: &str,
        name: &str,
        version: &str,
        provides: &[Provide],
    ) -> bool {
        if owner == name {
            return false;
        }
        if dep.name == name && Self::version_ok(dep, version) {
            return true;
        }
        provides
            .iter()
            .any(|prv| prv.name == dep.name && Self::provide_ok(dep, prv))
    }

    fn conflict_between(
        a: (&str, &str, &[Dep], &[Dep]),
        b: (&str, &str, &[Provide]),
    ) -> Option<ResolveError> {
        let (an, av, conflicts, breaks) = a;
        let (bn, bv, bprv) = b;
        for (relation, list) in [("Conflicts", conflicts), ("Breaks", breaks)] {
            if let Some(dep) = list
                .iter()
                .find(|d| Self::negative_hits(d, an, bn, bv, bprv))
            {
                return Some(ResolveError::Conflict {
                    a: format!("{an} {av}"),
                    relation,
                    dependency: dep.to_string(),
                    b: format!("{bn} {bv}"),
                });
            }
        }
        None
    }

    /// A conflict between `idx` and anything selected or installed, in either direction.
    fn conflict_with_selection(&self, idx: usize) -> Option<ResolveError> {
        let p = self.index.package(idx);
        let others = self
            .selected
            .values()
            .map(|&i| {
                let o = self.index.package(i);
                (
                    o.name.as_str(),
                    o.version.as_str(),
                    o.provides.as_slice(),
                    o.conflicts.as_slice(),
                    o.breaks.as_slice(),
                )
            })
            .chain(self.installed.values().map(|o| {
                (
                    o.name.as_str(),
                    o.version.as_str(),
                    o.provides.as_slice(),
                    o.conflicts.as_slice(),
                    o.breaks.as_slice(),
                )
            }));
        for (on, ov, oprv, oconf, obrk) in others {
            if let Some(e) = Self::conflict_between(
                (&p.name, &p.version, &p.conflicts, &p.breaks),
                (on, ov, oprv),
            ) {
                return Some(e);
            }
            if let Some(e) =
                Self::conflict_between((on, ov, oconf, obrk), (&p.name, &p.version, &p.provides))
            {
                return Some(e);
            }
        }
        None
    }

    fn check_conflicts(&self) -> Result<(), ResolveError> {
        let mut names: Vec<&String> = self.selected.keys().collect();
        names.sort();
        for name in names {
            let idx = self.selected[name];
            if let Some(e) = self.conflict_with_selection(idx) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 2 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
