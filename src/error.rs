//! One classification of every failure, which the CLI maps to its documented exit code (as uv's
//! `ExitStatus` does): whose fault it is decides what the caller can do about it.
//!
//! Each error type says its class with [`Classify`]; an error that wraps another asks the one
//! it wraps, and a source error that mixes classes (a fetch error can be a mirror outage, a
//! wrong URL or a full disk) is classified by variant. The CLI walks an error's chain with
//! `build::classify` (at the top of the pipeline, where every error type is known) and takes
//! the first type it knows.

use crate::apt::fetch::FetchError;
use crate::apt::{AptError, DebError, IndexError, ReleaseError};
use crate::cache::CacheError;
use crate::output::OutputError;
use crate::registry::RegistryError;
use crate::rootfs::InstallError;

/// Whose fault a failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The build failed on this machine: local I/O, the cache, an output (exit 1).
    Build,
    /// The user's input is wrong: recipe, sources, lockfile, keyring, settings such as
    /// `SOURCE_DATE_EPOCH`, a path named on the command line (exit 3).
    Input,
    /// A service outside this machine failed: a registry or an apt mirror refused, could not
    /// be reached, or sent something that does not verify (exit 4). Trying again later, or
    /// fixing credentials or the network, may help; the recipe is not at fault.
    Remote,
    /// `verify`: the rebuild differs from the reference (exit 5). A verdict, not an error.
    Different,
}

impl ErrorClass {
    /// The exit code the CLI documents for this class (2 is clap's, for the command line).
    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Build => 1,
            ErrorClass::Input => 3,
            ErrorClass::Remote => 4,
            ErrorClass::Different => 5,
        }
    }
}

/// An error that knows its [`ErrorClass`].
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

impl Classify for CacheError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Build
    }
}

impl Classify for crate::recipe::RecipeError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Input
    }
}

impl Classify for RegistryError {
    fn class(&self) -> ErrorClass {
        match self {
            // A reference, a --creds value, a credential file or a CA file the user gave.
            RegistryError::InvalidReference { .. }
            | RegistryError::Credentials { .. }
            | RegistryError::Setup(_) => ErrorClass::Input,
            // Writing a downloaded blob to the cache or reading one to upload.
            RegistryError::Io { .. } => ErrorClass::Build,
            // Everything else is the registry (or the way to it) refusing or failing.
            _ => ErrorClass::Remote,
        }
    }
}

/// A mirror that cannot be reached, answers with a server error or serves bytes that do not
/// match their signed digests is an outside service failing, like a registry: exit 4. An HTTP
/// client error (404) means the URL, suite or pinned version does not exist there: the
/// recipe's or the lockfile's to fix. Writing the download is local I/O.
impl Classify for FetchError {
    fn class(&self) -> ErrorClass {
        match self {
            FetchError::Network { .. }
            | FetchError::HashMismatch { .. }
            | FetchError::SizeMismatch { .. } => ErrorClass::Remote,
            FetchError::Http { status, .. } if *status >= 500 || matches!(status, 408 | 429) => {
                ErrorClass::Remote
            }
            FetchError::Http { .. } => ErrorClass::Input,
            FetchError::Io { .. } => ErrorClass::Build,
        }
    }
}

impl Classify for AptError {
    fn class(&self) -> ErrorClass {
        match self {
            AptError::Fetch(e) => e.class(),
            // The mirror published something unreadable or stale.
            AptError::Release(ReleaseError::Malformed { .. } | ReleaseError::Expired { .. })
            | AptError::Index(IndexError::Syntax { .. } | IndexError::BadField { .. })
            | AptError::Decompress { .. }
            | AptError::NotText { .. } => ErrorClass::Remote,
            AptError::Index(IndexError::Read { .. })
            | AptError::Deb(DebError::Io { .. } | DebError::Truncated { .. }) => ErrorClass::Build,
            // Keyrings, suites, components, architectures and package names are the recipe's;
            // a signature that does not verify against its keyring is too (the wrong keyring,
            // or a mirror that is not what the recipe says). Later variants default here.
            _ => ErrorClass::Input,
        }
    }
}

impl Classify for InstallError {
    fn class(&self) -> ErrorClass {
        match self {
            InstallError::Cache(_) => ErrorClass::Build,
            // A package that cannot be laid out (bad paths, file conflicts) is the recipe's
            // choice of packages.
            _ => ErrorClass::Input,
        }
    }
}

impl Classify for OutputError {
    fn class(&self) -> ErrorClass {
        match self {
            // A target that is not ours to write, or a source that is not a layout.
            OutputError::Target { .. } => ErrorClass::Input,
            _ => ErrorClass::Build,
        }
    }
}
