//! Platforms (`linux/arm64/v8`) and how an index entry is matched to the one a build wants.

use std::fmt;
use std::str::FromStr;

/// An image platform as in an index entry, an image config or a recipe (`[image] platform`).
///
/// Only `os`, `architecture` and `variant` are kept: stevedore builds Linux images, and
/// `os.version`/`os.features` only matter for Windows images (they are dropped when read).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Every Debian release architecture (and `riscv64`, official since trixie) with the OCI
/// platform of its images, as Docker's official images name them (`arm32v5` is `armel`,
/// `arm32v7` is `armhf`): the one place the two spellings meet. The build resolves packages
/// from the mirror's `binary-ARCH` indexes of the Debian name.
pub const DEBIAN_ARCHITECTURES: &[(&str, &str)] = &[
    ("amd64", "linux/amd64"),
    ("arm64", "linux/arm64"),
    ("armhf", "linux/arm/v7"),
    ("armel", "linux/arm/v5"),
    ("i386", "linux/386"),
    ("ppc64el", "linux/ppc64le"),
    ("s390x", "linux/s390x"),
    ("riscv64", "linux/riscv64"),
    ("mips64el", "linux/mips64le"),
];

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a platform; use OS/ARCH or OS/ARCH/VARIANT (e.g. linux/arm64)")]
pub struct PlatformParseError(pub String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// `linux` and the host's architecture, in Go/OCI spelling.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", architecture, None)
    }

    /// The canonical spelling, by the rules of containerd's `platforms.Normalize`: lower case,
    /// `x86_64`/`x86-64` → `amd64` (variant `v1` dropped), `aarch64` → `arm64` (variant `8`/`v8`
    /// dropped: it is the only one), `i386` → `386`, `armhf` → `arm/v7`, `armel` → `arm/v6`,
    /// `arm` without variant → `arm/v7`, bare variant digits get their `v`, `macos` → `darwin`.
    pub fn normalized(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (architecture, variant) = match (arch.as_str(), variant.as_deref()) {
            ("i386", _) => ("386".to_owned(), None),
            ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64".to_owned(), None),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_owned(), v.map(str::to_owned)),
            ("aarch64" | "arm64", Some("8" | "v8" | "v8.0") | None) => ("arm64".to_owned(), None),
            ("aarch64" | "arm64", Some(v)) => ("arm64".to_owned(), Some(v.to_owned())),
            ("armhf", _) => ("arm".to_owned(), Some("v7".to_owned())),
            ("armel", _) => ("arm".to_owned(), Some("v6".to_owned())),
            ("arm", None | Some("" | "7")) => ("arm".to_owned(), Some("v7".to_owned())),
            ("arm", Some(v @ ("5" | "6" | "8"))) => ("arm".to_owned(), Some(format!("v{v}"))),
            (a, v) => (a.to_owned(), v.map(str::to_owned)),
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The Debian architecture (`dpkg --print-architecture`) whose packages make an image for
    /// this platform, from [`DEBIAN_ARCHITECTURES`]; `None` for a platform Debian has no port
    /// for (any OS but Linux, `arm/v6`, ...).
    pub fn debian_architecture(&self) -> Option<&'static str> {
        let want = self.normalized();
        DEBIAN_ARCHITECTURES
            .iter()
            .find(|(_, p)| {
                let p = p
                    .parse::<Platform>()
                    .expect("the table holds valid platforms");
                p.normalized() == want
            })
            .map(|(arch, _)| *arch)
    }

    /// The platform of the images built from a Debian architecture's packages.
    pub fn from_debian_architecture(arch: &str) -> Option<Platform> {
        DEBIAN_ARCHITECTURES
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, p)| p.parse().expect("the table holds valid platforms"))
    }

    /// Whether an image for `candidate` is what a build for `self` wants: os and architecture
    /// agree after normalisation and, when `self` names a variant (or its architecture implies
    /// one, as `arm` implies `v7`), the variant too. Asking for `linux/amd64` therefore accepts
    /// any amd64 micro-architecture level, and `linux/arm64` accepts `linux/arm64/v8`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let want = self.normalized();
        let have = candidate.normalized();
        want.os == have.os
            && want.architecture == have.architecture
            && (want.variant.is_none() || want.variant == have.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    /// `OS/ARCH` or `OS/ARCH/VARIANT`, each part ASCII letters, digits, `_`, `-` or `.`; kept
    /// as written (compare with [`Platform::matches`], which normalises).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform::new(os, arch, Some(v))),
            _ => Err(PlatformParseError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(
            p("linux/arm64/v8"),
            Platform::new("linux", "arm64", Some("v8"))
        );
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/",
            "a/b/c/d",
            "linux/am d64",
            "",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn normalises_as_containerd() {
        assert_eq!(p("linux/x86_64").normalized(), p("linux/amd64"));
        assert_eq!(p("linux/amd64/v1").normalized(), p("linux/amd64"));
        assert_eq!(p("linux/aarch64").normalized(), p("linux/arm64"));
        assert_eq!(p("linux/arm64/v8").normalized(), p("linux/arm64"));
        assert_eq!(p("linux/arm64/8").normalized(), p("linux/arm64"));
        assert_eq!(p("linux/armhf").normalized(), p("linux/arm/v7"));
        assert_eq!(p("linux/armel").normalized(), p("linux/arm/v6"));
        assert_eq!(p("linux/arm").normalized(), p("linux/arm/v7"));
        assert_eq!(p("linux/arm/6").normalized(), p("linux/arm/v6"));
        assert_eq!(p("linux/i386").normalized(), p("linux/386"));
        assert_eq!(p("Linux/AMD64").normalized(), p("linux/amd64"));
    }

    #[test]
    fn debian_architectures_map_both_ways() {
        for (arch, platform) in DEBIAN_ARCHITECTURES {
            assert_eq!(p(platform).debian_architecture(), Some(*arch), "{platform}");
            assert_eq!(Platform::from_debian_architecture(arch), Some(p(platform)));
        }
        assert_eq!(p("linux/arm").debian_architecture(), Some("armhf"));
        assert_eq!(p("linux/arm64/v8").debian_architecture(), Some("arm64"));
        assert_eq!(p("linux/x86_64").debian_architecture(), Some("amd64"));
        assert_eq!(p("linux/arm/v6").debian_architecture(), None);
        assert_eq!(p("windows/amd64").debian_architecture(), None);
        assert_eq!(p("linux/sparc64").debian_architecture(), None);
        assert_eq!(Platform::from_debian_architecture("all"), None);
    }

    #[test]
    fn matching() {
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/amd64").matches(&p("linux/x86_64")));
        assert!(
            p("linux/amd64").matches(&p("linux/amd64/v3")),
            "any amd64 level"
        );
        assert!(!p("linux/amd64/v3").matches(&p("linux/amd64")));
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/arm").matches(&p("linux/arm/v6")));
        assert!(!p("linux/arm64").matches(&p("linux/arm/v8")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
    }
}
