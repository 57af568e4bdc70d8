//! The archive keyrings that come with stevedore, and which keyring verifies a source.
//!
//! A recipe for Debian's or Ubuntu's own archives needs no `keyring` line: the keyrings of
//! `keyrings/` in the repository are compiled into the binary, and a source whose mirrors are
//! all hosts of one of those archives is verified with that archive's keyring. Any other
//! archive (a company mirror, a PPA, a test repository) must name its keyring, because
//! stevedore cannot know who signs it.
//!
//! Why embedded and not the host's `/usr/share/keyrings/*.gpg`: the keyring's digest is part of
//! a recipe's resolution inputs (the lockfile's `inputs` and the resolution cache key, see
//! `plan::packages::inputs_hash`). Reading the host's file would make those depend on which
//! keyring package (and version) the build machine happens to have — a lock made on a Debian
//! laptop would be stale on an Ubuntu CI runner, and a machine without the package could not
//! build at all. The embedded bytes are the same on every machine and the same bytes as the
//! committed files, so recipes that dropped their `keyring = "../keyrings/…"` line keep their
//! lockfiles and layer keys. A recipe that wants the host's keyring can still name it:
//! `keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"`.
//!
//! Which hosts: only the names the two projects run for their primary archives and official
//! mirror network — `deb.debian.org`, `security.debian.org`, `ftp.debian.org`,
//! `ftp.CC.debian.org`; `archive.ubuntu.com`, `security.ubuntu.com`, `ports.ubuntu.com`,
//! `CC.archive.ubuntu.com` (CC: a two-letter country code). The host only chooses which keys
//! are trusted; the signature check itself is the same as with an explicit keyring.

use std::fmt;
use std::path::Path;

use super::signature::{Keyring, SignatureError};

/// An archive keyring compiled into stevedore.
#[derive(Debug, PartialEq, Eq)]
pub struct BuiltinKeyring {
    /// The file name in `keyrings/` (and in the distributions' keyring packages).
    pub file: &'static str,
    /// The archive it signs, for messages.
    pub archive: &'static str,
    pub bytes: &'static [u8],
}

/// Debian's archive and release keys (bookworm, trixie; see keyrings/README.md).
pub static DEBIAN: BuiltinKeyring = BuiltinKeyring {
    file: "debian-archive-keyring.gpg",
    archive: "Debian",
    bytes: include_bytes!("../../keyrings/debian-archive-keyring.gpg"),
};

/// Ubuntu's archive keys (xenial to noble; see keyrings/README.md).
pub static UBUNTU: BuiltinKeyring = BuiltinKeyring {
    file: "ubuntu-archive-keyring.gpg",
    archive: "Ubuntu",
    bytes: include_bytes!("../../keyrings/ubuntu-archive-keyring.gpg"),
};

impl BuiltinKeyring {
    pub fn load(&self) -> Result<Keyring, SignatureError> {
        Keyring::from_bytes(self.bytes, &self.name())
    }

    /// How messages name it.
    pub fn name(&self) -> String {
        format!("stevedore's built-in {}", self.file)
    }
}

/// Where the keyring that verifies a source comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyringSource<'a> {
    /// The file the recipe names.
    File(&'a Path),
    /// The archive's keyring that comes with stevedore.
    Builtin(&'static BuiltinKeyring),
}

/// Why a source without a `keyring` has no built-in one either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoBuiltinKeyring {
    #[error(
        "stevedore ships keyrings only for Debian's and Ubuntu's archives (deb.debian.org, security.debian.org, archive.ubuntu.com, security.ubuntu.com, …), not for {mirror}"
    )]
    UnknownHost { mirror: String },
    #[error("the mirrors {first} and {second} belong to different archives")]
    Mixed { first: String, second: String },
}

/// The keyring that verifies a signed source: its own file when it names one, else the
/// built-in keyring of its mirrors' archive.
pub fn keyring_for<'a>(
    keyring: Option<&'a Path>,
    mirrors: &[String],
) -> Result<KeyringSource<'a>, NoBuiltinKeyring> {
    match keyring {
        Some(path) => Ok(KeyringSource::File(path)),
        None => builtin_for(mirrors).map(KeyringSource::Builtin),
    }
}

/// The built-in keyring for a list of mirrors (alternatives of each other): every mirror must
/// be a host of the same archive.
pub fn builtin_for(mirrors: &[String]) -> Result<&'static BuiltinKeyring, NoBuiltinKeyring> {
    let mut found: Option<(&'static BuiltinKeyring, &String)> = None;
    for mirror in mirrors {
        let safe = || super::redact_credentials(mirror);
        let keyring = host_of(mirror)
            .and_then(|h| archive_of_host(&h))
            .ok_or_else(|| NoBuiltinKeyring::UnknownHost { mirror: safe() })?;
        match found {
            Some((k, first)) if k != keyring => {
                return Err(NoBuiltinKeyring::Mixed {
                    first: super::redact_credentials(first),
                    second: safe(),
                });
            }
            Some(_) => {}
            None => found = Some((keyring, mirror)),
        }
    }
    found.map(|(k, _)| k).ok_or(NoBuiltinKeyring::UnknownHost {
        mirror: "(no mirror)".into(),
    })
}

/// The lowercased host of an `http(s)://` URL, without userinfo and port.
fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.split(':').next()?.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `label` is a two-letter country code (as in `ftp.de.debian.org`).
fn country(label: &str) -> bool {
    label.len() == 2 && label.bytes().all(|b| b.is_ascii_lowercase())
}

fn archive_of_host(host: &str) -> Option<&'static BuiltinKeyring> {
    match host {
        "deb.debian.org" | "security.debian.org" | "ftp.debian.org" => return Some(&DEBIAN),
        "archive.ubuntu.com" | "security.ubuntu.com" | "ports.ubuntu.com" => return Some(&UBUNTU),
        _ => {}
    }
    if let Some(cc) = host
        .strip_prefix("ftp.")
        .and_then(|h| h.strip_suffix(".debian.org"))
        && country(cc)
    {
        return Some(&DEBIAN);
    }
    match host.strip_suffix(".archive.ubuntu.com") {
        Some(cc) if country(cc) => Some(&UBUNTU),
        _ => None,
    }
}

impl fmt::Display for KeyringSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringSource::File(p) => write!(f, "{}", p.display()),
            KeyringSource::Builtin(k) => f.write_str(&k.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn for_one(url: &str) -> Result<&'static str, NoBuiltinKeyring> {
        builtin_for(&[url.to_string()]).map(|k| k.archive)
    }

    #[test]
    fn official_hosts_get_their_archive_keyring() {
        for (url, archive) in [
            ("http://deb.debian.org/debian", "Debian"),
            ("https://deb.debian.org/debian-security/", "Debian"),
            ("http://security.debian.org/debian-security", "Debian"),
            ("http://ftp.de.debian.org/debian", "Debian"),
            ("http://DEB.Debian.org./debian", "Debian"),
            ("http://archive.ubuntu.com/ubuntu", "Ubuntu"),
            ("http://security.ubuntu.com:80/ubuntu", "Ubuntu"),
            ("http://ports.ubuntu.com/ubuntu-ports", "Ubuntu"),
            ("http://de.archive.ubuntu.com/ubuntu", "Ubuntu"),
        ] {
            assert_eq!(for_one(url), Ok(archive), "{url}");
        }
    }

    #[test]
    fn other_hosts_get_none() {
        for url in [
            "http://127.0.0.1:8080/debian",
            "http://mirror.example.com/debian",
            "http://deb.debian.org.evil.example/debian",
            "http://evil-deb.debian.org.example/debian",
            "http://ftp.deu.debian.org/debian",
            "http://ppa.launchpadcontent.net/x/y/ubuntu",
            "http://old-releases.ubuntu.com/ubuntu",
            "file:///srv/debian",
            "deb.debian.org/debian",
        ] {
            assert!(
                matches!(for_one(url), Err(NoBuiltinKeyring::UnknownHost { .. })),
                "{url}"
            );
        }
        assert!(builtin_for(&[]).is_err());
    }

    #[test]
    fn mirrors_must_share_one_archive() {
        let mixed = [
            "http://deb.debian.org/debian".to_string(),
            "http://archive.ubuntu.com/ubuntu".to_string(),
        ];
        assert!(matches!(
            builtin_for(&mixed),
            Err(NoBuiltinKeyring::Mixed { .. })
        ));
        let one_unknown = [
            "http://deb.debian.org/debian".to_string(),
            "http://mirror.example.com/debian".to_string(),
        ];
        let e = builtin_for(&one_unknown).unwrap_err();
        assert!(e.to_string().contains("mirror.example.com"), "{e}");
        let both = [
            "http://deb.debian.org/debian".to_string(),
            "http://ftp.fr.debian.org/debian".to_string(),
        ];
        assert_eq!(builtin_for(&both), Ok(&DEBIAN));
    }

    #[test]
    fn an_explicit_keyring_wins() {
        let debian = ["http://deb.debian.org/debian".to_string()];
        let other = ["http://127.0.0.1:1/repo".to_string()];
        let p = Path::new("/k.gpg");
        assert_eq!(keyring_for(Some(p), &other), Ok(KeyringSource::File(p)));
        assert_eq!(keyring_for(Some(p), &debian), Ok(KeyringSource::File(p)));
        assert_eq!(
            keyring_for(None, &debian),
            Ok(KeyringSource::Builtin(&DEBIAN))
        );
        assert!(keyring_for(None, &other).is_err());
    }

    /// apt's side: a signed source without a keyring loads the built-in one for Debian's
    /// hosts and refuses any other host, naming it (and never its credentials).
    #[test]
    fn sources_without_a_keyring_load_the_built_in_one_or_say_why_not() {
        let sources = |mirror: &str| crate::apt::Sources {
            mirrors: vec![mirror.to_string()],
            suites: vec!["stable".into()],
            components: vec!["main".into()],
            architecture: "amd64".into(),
            keyring: None,
            allow_unsigned: false,
        };
        assert!(
            sources("http://deb.debian.org/debian")
                .load_keyring()
                .is_ok()
        );
        let e = sources("http://user:secret@127.0.0.1:1/repo")
            .load_keyring()
            .unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, crate::apt::AptError::NoKeyring { .. }),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1:1") && !text.contains("secret"),
            "{text}"
        );
    }

    /// The embedded keyrings are the committed files byte for byte (so lockfile inputs do not
    /// change when a recipe drops its keyring line) and hold usable keys.
    #[test]
    fn embedded_keyrings_are_the_committed_files_and_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keyrings");
        for k in [&DEBIAN, &UBUNTU] {
            assert_eq!(std::fs::read(dir.join(k.file)).unwrap(), k.bytes);
            k.load().unwrap();
        }
    }
}
