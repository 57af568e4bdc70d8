//! Why an SBOM could not be written, each cause with its [`ErrorClass`].

use std::path::PathBuf;

use crate::apt::FetchError;
use crate::cache::CacheError;
use crate::error::{Classify, ErrorClass};
use crate::rootfs::InstallError;

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The dpkg status a package layer carries (written by stevedore itself) does not parse.
    #[error("layer `{layer}`: its dpkg status: {detail}")]
    Status { layer: String, detail: String },
    /// A locked package's `.deb` left the cache and could not be fetched again.
    #[error("package {package}: fetching its .deb again: {source}")]
    Fetch {
        package: String,
        #[source]
        source: FetchError,
    },
    /// A package's data.tar could not be unpacked into the cache.
    #[error("package {package}: {source}")]
    Unpack {
        package: String,
        #[source]
        source: InstallError,
    },
    /// Reading a package's unpacked data.tar or a file of a file or WAR layer.
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl Classify for SbomError {
    fn class(&self) -> ErrorClass {
        match self {
            SbomError::Fetch { source, .. } => source.class(),
            SbomError::Unpack { source, .. } => source.class(),
            // Our own cache and the sources the build just read: local trouble.
            SbomError::Status { .. } | SbomError::Read { .. } | SbomError::Cache(_) => {
                ErrorClass::Build
            }
        }
    }
}
