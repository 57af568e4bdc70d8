//! Package layers with their script-free setup, in chain order.
//!
//! Setup is cumulative: `/usr/bin/java` depends on the alternatives of every package so far,
//! `/etc/passwd` on every sysusers file. So each package layer runs setup over the whole tree
//! laid so far and writes only what changed since the layer below (a new user rewrites
//! `/etc/passwd`; the CA bundle, unchanged, stays in the lower layer).
//!
//! A package layer found in the cache is not laid out again. Only when a layer above it misses
//! does the chain replay the lower ones (install + setup, output discarded) to know the tree
//! and the setup state it builds on: a no-op build reads nothing, a rebuild of the top layer
//! pays for the replay once.

use std::collections::BTreeSet;

use crate::apt::{FetchError, LockedPackage};
use crate::cache::Cache;
use crate::error::{Classify, ErrorClass};
use crate::layer::{LayerContents, LowerView, TreeError};
use crate::rootfs::base::BaseTree;
use crate::rootfs::setup::{self, Effect, PackageScripts, accounts::ExtraUser, coverage::Coverage};
use crate::rootfs::{ApplyError, InstallError, PackageFile, TreeRoot};

/// Why a package layer could not be laid out; each cause keeps its error.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

impl Classify for StepError {
    fn class(&self) -> ErrorClass {
        match self {
            StepError::Fetch(e) => e.class(),
            StepError::Install(e) => e.class(),
            // What the packages' own files and scripts make impossible to set up.
            StepError::Setup(_) | StepError::Apply(_) | StepError::Tree(_) => ErrorClass::Input,
        }
    }
}

/// One package layer (or a recipe's accounts) as setup sees it.
#[derive(Clone, Debug)]
pub struct Step {
    pub packages: Vec<LockedPackage>,
    /// Users the recipes so far declare.
    pub users: Vec<ExtraUser>,
    /// Time of what stevedore writes (dpkg database, setup output, JKS entry dates).
    pub generated: u64,
    /// `/etc/apt/sources.list` for the recipe's sources, so apt works inside the image.
    pub apt_sources: String,
}

/// The one-line `sources.list` form (understood by every apt release, xenial's included):
/// the first mirror of each source (the others are fallbacks), one line per suite.
pub fn sources_list(sources: &[crate::recipe::AptSource]) -> String {
    let mut out = String::from("# Written by stevedore from the recipe's [[sources]].\n");
    for s in sources {
        let Some(mirror) = s.mirrors.first() else {
            continue;
        };
        let options = if s.allow_unsigned {
            "[trusted=yes] "
        } else {
            ""
        };
        for suite in &s.suites {
            out.push_str(&format!(
                "deb {options}{mirror} {suite} {}\n",
                s.components.join(" ")
            ));
        }
    }
    out
}

/// What a built step gives the plan.
pub struct Built {
    pub contents: LayerContents,
    /// The cumulative dpkg status after this layer.
    pub status: String,
    /// The coverage of this layer's packages' scripts.
    pub coverage: Coverage,
}

/// Whether the chain lays out `bin`, `sbin`, `lib*` as symlinks into `/usr`: the first
/// package layer's `merged-usr` (default true, as debootstrap does for current releases).
pub fn merged_usr(recipe: &crate::recipe::Recipe) -> bool {
    recipe
        .chain()
        .iter()
        .flat_map(|r| &r.layers)
        .find_map(|l| l.packages.as_ref())
        .is_none_or(|p| p.merged_usr)
}

/// The dpkg architecture of an installed set: the first `Architecture:` of its status that is
/// not `all` (empty when there is none).
fn status_architecture(status: &str) -> String {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("Architecture:"))
        .map(str::trim)
        .find(|a| *a != "all")
        .unwrap_or_default()
        .to_owned()
}

pub struct SetupChain {
    merged_usr: bool,
    /// Cache hits below, not replayed yet.
    pending: Vec<Step>,
    /// The package layers replayed or built so far (file layers are not part of setup's view).
    replay_lower: LowerView,
    replay_status: String,
    view: TreeRoot,
    scripts: Vec<PackageScripts>,
    /// The cumulative effects after the last step.
    effects: Vec<Effect>,
    /// Every locked package of the recipe, in layer order: fetched in the background from the
    /// first step that has to be built.
    expected: Vec<LockedPackage>,
    prefetch: Option<super::prefetch::Prefetch>,
    /// On a registry base: what setup makes of the base's own packages is still to be computed
    /// (once, when the first step builds), as the effects the next step is compared with.
    base_effects_due: bool,
}

impl SetupChain {
    pub fn new(merged_usr: bool) -> SetupChain {
        SetupChain {
            merged_usr,
            pending: Vec::new(),
            replay_lower: LowerView::new(),
            replay_status: String::new(),
            view: TreeRoot::new(),
            scripts: Vec::new(),
            effects: Vec::new(),
            expected: Vec::new(),
            prefetch: None,
            base_effects_due: false,
        }
    }

    /// Starts the chain on a registry base's tree, as if its packages had been laid by the
    /// steps below: its entries are the view and the lower layers, its dpkg status the status
    /// so far, its installed packages' scripts (from `/var/lib/dpkg/info`) the scripts so far.
    pub fn start_from(&mut self, tree: &BaseTree) {
        self.replay_lower.apply(&LayerContents {
            entries: tree.entries.clone(),
        });
        self.replay_status = tree.status.clone().unwrap_or_default();
        self.view
            .add_entries(tree.entries.iter().map(|(p, e)| (p, e)));
        self.scripts = crate::rootfs::base::installed_scripts(&self.replay_status, &self.view);
        self.base_effects_due = true;
    }

    /// What setup makes of the base alone: the effects its tree already shows (accounts,
    /// alternatives, ...). A step then writes only what its packages and users change, as a
    /// step over a lower package layer of the same chain does.
    fn base_effects(&mut self, epoch: u64) -> Result<(), StepError> {
        if !std::mem::take(&mut self.base_effects_due) {
            return Ok(());
        }
        let options = setup::Options {
            extra_users: Vec::new(),
            epoch,
            architecture: status_architecture(&self.replay_status),
            // The base's own auto-install marks are in its tree already; none are new here.
            selections: Vec::new(),
        };
        let mut effects = setup::setup(&self.view, &self.scripts, &options)?.effects;
        // The base's own sources list, as the step that wrote it would have: a child with the
        // same sources leaves it as it is.
        if let Some(bytes) = setup::RootView::read(&self.view, "/etc/apt/sources.list") {
            effects.push(Effect::WriteFile {
                path: "/etc/apt/sources.list".into(),
                bytes,
                mode: 0o644,
                uid: 0,
                gid: 0,
            });
            setup::sort_effects(&mut effects);
        }
        self.effects = effects;
        Ok(())
    }

    /// The packages every step will need, in layer order (from the lockfile).
    pub fn expect(&mut self, packages: Vec<LockedPackage>) {
        self.expected = packages;
    }

    pub fn merged(&self) -> bool {
        self.merged_usr
    }

    /// A step whose layer is in the cache: remembered, replayed only if a later step builds.
    pub fn defer(&mut self, step: Step) {
        self.pending.push(step);
    }

    /// Builds a step's layer on `lower` (the real stack below, file layers included).
    pub fn build(
        &mut self,
        step: &Step,
        lower: &LowerView,
        lower_status: &str,
        cache: &Cache,
    ) -> Result<Built, StepError> {
        if self.prefetch.is_none() && !self.expected.is_empty() {
            // The first miss: this layer, the replayed ones below and (keys chain upwards)
            // those above all need their packages.
            let expected = std::mem::take(&mut self.expected);
            tracing::debug!("prefetching {} packages", expected.len());
            self.prefetch = Some(super::prefetch::Prefetch::start(expected, cache));
        }
        self.base_effects(step.generated)?;
        for p in std::mem::take(&mut self.pending) {
            // Taken out for the run (install borrows it), put back with the layer applied.
            let mut lower = std::mem::take(&mut self.replay_lower);
            let status = std::mem::take(&mut self.replay_status);
            let built = self.run(&p, &lower, &status, cache)?;
            lower.apply(&built.contents);
            self.replay_lower = lower;
            self.replay_status = built.status;
        }
        let built = self.run(step, lower, lower_status, cache)?;
        self.replay_lower.apply(&built.contents);
        self.replay_status = built.status.clone();
        Ok(built)
    }

    fn run(
        &mut self,
        step: &Step,
        lower: &LowerView,
        lower_status: &str,
        cache: &Cache,
    ) -> Result<Built, StepError> {
        let files = fetch(&step.packages, cache)?;
        let installed = crate::rootfs::install(
            &files,
            lower,
            lower_status,
            self.merged_usr,
            step.generated,
            cache,
        )?;
        let mut tree = installed.tree;
        self.view.add_entries(tree.all_entries());
        let mine: BTreeSet<String> = installed
            .scripts
            .iter()
            .map(|s| s.package.clone())
            .collect();
        self.scripts.extend(installed.scripts);
        let options = setup::Options {
            extra_users: step.users.clone(),
            epoch: step.generated,
            architecture: step
                .packages
                .iter()
                .map(|p| p.architecture.as_str())
                .find(|a| *a != "all")
                .unwrap_or_default()
                .to_owned(),
            selections: setup::dpkgstate::Selection::from_reasons(
                &step
                    .packages
                    .iter()
                    .map(|p| (p.name.as_str(), p.why.as_str()))
                    .collect::<Vec<_>>(),
            ),
        };
        let mut result = setup::setup(&self.view, &self.scripts, &options)?;
        result.effects.push(Effect::WriteFile {
            path: "/etc/apt/sources.list".into(),
            bytes: step.apt_sources.clone().into_bytes(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
        setup::sort_effects(&mut result.effects);

        // New or changed effects go in whole; unchanged ones only where this layer replaced
        // what they had set (a package shipping a path again, files new under a chown -R).
        let before: BTreeSet<&Effect> = self.effects.iter().collect();
        let (unchanged, new): (Vec<Effect>, Vec<Effect>) = result
            .effects
            .iter()
            .cloned()
            .partition(|e| before.contains(e));
        for e in self
            .effects
            .iter()
            .filter(|e| e.creates() && !result.effects.iter().any(|n| n.path() == e.path()))
        {
            // Rules that only create what is missing (`/etc/profile` when absent) stop
            // producing it once a lower layer has it: expected, and what the scripts do.
            tracing::debug!(
                "setup no longer produces {} (it stays as the lower layer wrote it)",
                e.path()
            );
        }
        let here: BTreeSet<String> = tree
            .explicit_entries()
            .map(|(p, _)| format!("/{}", p.as_str()))
            .collect();
        crate::rootfs::apply_effects(&mut tree, &self.view, &new, &|_| true, step.generated)?;
        crate::rootfs::apply_effects(
            &mut tree,
            &self.view,
            &unchanged,
            &|p| here.contains(p),
            step.generated,
        )?;
        for e in &new {
            self.view.apply(e);
        }
        self.effects = result.effects;
        let mut coverage = result.coverage;
        coverage.commands.retain(|c| mine.contains(&c.package));
        Ok(Built {
            contents: tree.finish()?,
            status: installed.status,
            coverage,
        })
    }
}

/// Fetches (or finds in the cache) the locked `.deb`s.
fn fetch(packages: &[LockedPackage], cache: &Cache) -> Result<Vec<PackageFile>, FetchError> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let fetcher = crate::apt::Fetcher::new(&cache.apt_dir())?;
    let wanted: Vec<_> = packages.iter().map(|p| p.wanted()).collect();
    let paths = fetcher.fetch_all_blocking(&wanted)?;
    Ok(packages
        .iter()
        .zip(paths)
        .map(|(p, deb)| PackageFile {
            name: p.name.clone(),
            sha256: p.sha256.clone(),
            deb,
        })
        .collect())
}
