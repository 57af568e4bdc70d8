//! Script-free package setup: turning verified `.deb`s into a layer's entries.
//!
//! - [`install`] lays the packages' files into a layer tree without extracting anything to the
//!   host: each package's data.tar is kept unpacked in the cache (once per package sha256) and
//!   entries point into it, so the layer writer copies them straight into the layer tar;
//! - merged /usr: the first package layer carries `bin`, `sbin`, `lib*` → `usr/…` symlinks, and
//!   package paths under them land below `usr/` (the tree maps them through the symlinks);
//! - file conflicts between packages follow dpkg's `Replaces`, or are reported;
//! - [`dpkg`] writes the dpkg database (`status`, `info/*.list`, `.md5sums`, `.conffiles`, the
//!   maintainer scripts) so `dpkg -l`, `dpkg -L`, `dpkg --verify`, scanners and apt work;
//! - [`setup`] computes what the skipped maintainer scripts would have done, over a
//!   [`TreeRoot`] of everything laid so far, and [`apply_effects`] writes it into the layer.

mod apply;
pub mod base;
pub mod dpkg;
mod install;
pub mod setup;
mod view;

pub use apply::{ApplyError, apply_effects};
pub use install::{InstallError, Installed, PackageFile, install, spool_deb};
pub use view::{TreeRoot, read_content};
