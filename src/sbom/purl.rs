//! Package URLs (<https://github.com/package-url/purl-spec>) for Debian packages and Maven jars.
//!
//! Hand-written: a purl is one formatted string with percent-encoding, and the `purl` crates
//! would add a dependency for ~30 lines.

/// Percent-encodes a purl component: everything but RFC 3986's unreserved characters, plus
/// `:` in versions (Debian epochs), as the reference implementations do (`+` becomes `%2B`).
fn encode(s: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_colon && b == b':');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`; `vendor` is `debian` or `ubuntu`,
/// `distro` the qualifier (`debian-12`, `ubuntu-24.04`), absent when the distribution is not
/// known. Qualifiers are sorted by key, as the spec asks.
pub fn deb(vendor: &str, name: &str, version: &str, arch: &str, distro: Option<&str>) -> String {
    let mut out = format!(
        "pkg:deb/{}/{}@{}?arch={}",
        encode(vendor, false),
        encode(name, false),
        encode(version, true),
        encode(arch, false)
    );
    if let Some(d) = distro {
        out.push_str("&distro=");
        out.push_str(&encode(d, false));
    }
    out
}

/// `pkg:maven/GROUP/ARTIFACT@VERSION`.
pub fn maven(group: &str, artifact: &str, version: &str) -> String {
    format!(
        "pkg:maven/{}/{}@{}",
        encode(group, false),
        encode(artifact, false),
        encode(version, true)
    )
}

/// `pkg:oci/NAME@sha256%3A…?repository_url=HOST/REPO` for a registry image.
pub fn oci(repository: &str, digest: &str) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    format!(
        "pkg:oci/{}@{}?repository_url={}",
        encode(&name.to_ascii_lowercase(), false),
        encode(digest, false),
        encode(repository, false).replace("%2F", "/")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_are_encoded() {
        assert_eq!(
            deb(
                "debian",
                "libc6",
                "2.36-9+deb12u4",
                "amd64",
                Some("debian-12")
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            deb("ubuntu", "bash", "1:5.2~rc1", "arm64", None),
            "pkg:deb/ubuntu/bash@1:5.2~rc1?arch=arm64"
        );
        assert_eq!(
            maven("com.example", "greeting", "1.0"),
            "pkg:maven/com.example/greeting@1.0"
        );
        assert_eq!(
            oci("registry.local:5000/base/java", "sha256:ab"),
            "pkg:oci/java@sha256%3Aab?repository_url=registry.local%3A5000/base/java"
        );
    }
}
