//! The `Release` file of a suite: what it promises (suite, codename, dates, architectures,
//! components) and the SHA256 of every index file below it.
//!
//! Only text that passed [`super::signature::verify_inrelease`] should be parsed here (or the
//! body of an unsigned Release when the user allowed that explicitly).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::Digest;

use super::deb822;

/// A Release is accepted up to this far in the future, for clock skew (apt's
/// `Acquire::Max-FutureTime` is similar).
const MAX_FUTURE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{url}: not a Release file: {detail}")]
    Malformed { url: String, detail: String },
    #[error(
        "{url}: the Release expired at {valid_until} (Valid-Until); the mirror is stale or replayed. Use a fresh mirror, or fix the clock if it is wrong"
    )]
    Expired { url: String, valid_until: String },
    #[error("{url}: the Release is dated {date}, in the future; check the system clock")]
    NotYetValid { url: String, date: String },
    #[error(
        "{url}: the signed Release lists no SHA256 for {path}; is the component or architecture right?"
    )]
    NotListed { url: String, path: String },
    #[error(
        "{url}: asked for suite {requested}, but the signed Release is for Suite {suite}, Codename {codename}: the mirror serves another (or an old) release under that name. Check the suite in the recipe, or use another mirror"
    )]
    WrongSuite {
        url: String,
        requested: String,
        /// As the Release says, or `(none)`.
        suite: String,
        codename: String,
    },
}

/// An index file the Release vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    /// Seconds since the epoch.
    pub date: Option<u64>,
    pub valid_until: Option<u64>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub acquire_by_hash: bool,
    /// Path relative to the suite directory (`main/binary-amd64/Packages.xz`) → hash and size.
    pub sha256: BTreeMap<String, FileHash>,
}

impl Release {
    /// Parses the (verified) text; `url` only names the file in errors.
    pub fn parse(text: &str, url: &str) -> Result<Release, ReleaseError> {
        let malformed = |detail: String| ReleaseError::Malformed {
            url: url.to_owned(),
            detail,
        };
        let paragraph = deb822::paragraphs(text)
            .next()
            .ok_or_else(|| malformed("empty".into()))?
            .map_err(|e| malformed(e.to_string()))?;
        let owned = |name: &str| paragraph.first_line(name).map(str::to_owned);
        let words = |name: &str| -> Vec<String> {
            paragraph
                .first_line(name)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let date_field = |name: &str| -> Result<Option<u64>, ReleaseError> {
            match paragraph.first_line(name) {
                None => Ok(None),
                Some(v) => parse_rfc2822(v)
                    .map(Some)
                    .ok_or_else(|| malformed(format!("cannot read {name}: {v:?}"))),
            }
        };
        let mut sha256 = BTreeMap::new();
        for line in paragraph.continuation_lines("SHA256") {
            let mut parts = line.split_whitespace();
            let (Some(hex), Some(size), Some(path), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed(format!("bad SHA256 line {line:?}")));
            };
            let sha = Digest::from_hex(hex)
                .ok_or_else(|| malformed(format!("bad SHA256 digest in {line:?}")))?;
            let size = size
                .parse()
                .map_err(|_| malformed(format!("bad size in {line:?}")))?;
            sha256.insert(path.to_owned(), FileHash { sha256: sha, size });
        }
        if sha256.is_empty() {
            return Err(malformed(
                "no SHA256 file list (MD5/SHA1-only Releases are refused)".into(),
            ));
        }
        Ok(Release {
            origin: owned("Origin"),
            label: owned("Label"),
            suite: owned("Suite"),
            codename: owned("Codename"),
            date: date_field("Date")?,
            valid_until: date_field("Valid-Until")?,
            architectures: words("Architectures"),
            components: words("Components"),
            acquire_by_hash: paragraph
                .first_line("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            sha256,
        })
    }

    /// Refuses an expired (Valid-Until in the past) or future-dated Release. `now` is a
    /// parameter so tests can pin it.
    pub fn check_dates(&self, now: SystemTime, url: &str) -> Result<(), ReleaseError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some(valid_until) = self.valid_until
            && now > valid_until
        {
            return Err(ReleaseError::Expired {
                url: url.to_owned(),
                valid_until: format_utc(valid_until),
            });
        }
        if let Some(date) = self.date
            && date > now + MAX_FUTURE.as_secs()
        {
            return Err(ReleaseError::NotYetValid {
                url: url.to_owned(),
                date: format_utc(date),
            });
        }
        Ok(())
    }

    /// Refuses a Release that is not the one asked for: its `Suite` or `Codename` must equal
    /// the requested suite (apt's `metaIndex::CheckDist`). A signature only says the archive
    /// published this text once; without this check a mirror could serve, validly signed, the
    /// InRelease of another release (`bullseye` for `bookworm`, `-proposed` for `-updates`) or
    /// of the same release under another name. apt itself only warns ("Conflicting
    /// distribution", "might become fatal one day") and relies on its stored lists to notice a
    /// changed Codename; stevedore keeps no such state and nobody reads warnings on a CI
    /// worker, so a mismatch is an error. As apt does, a suite written with a slash (the old
    /// `stretch/updates`) is compared by its part before the last slash. A Release naming
    /// neither field is refused too: it would pass for any suite.
    pub fn check_suite(&self, requested: &str, url: &str) -> Result<(), ReleaseError> {
        let expected = requested
            .rsplit_once('/')
            .map_or(requested, |(head, _)| head);
        let matches = |field: &Option<String>| field.as_deref() == Some(expected);
        if matches(&self.suite) || matches(&self.codename) {
            return Ok(());
        }
        let shown = |field: &Option<String>| field.clone().unwrap_or_else(|| "(none)".into());
        Err(ReleaseError::WrongSuite {
            url: url.to_owned(),
            requested: requested.to_owned(),
            suite: shown(&self.suite),
            codename: shown(&self.codename),
        })
    }

    /// The hash the Release promises for `path` (relative to the suite directory).
    pub fn file(&self, path: &str, url: &str) -> Result<&FileHash, ReleaseError> {
        self.sha256
            .get(path)
            .ok_or_else(|| ReleaseError::NotListed {
                url: url.to_owned(),
                path: path.to_owned(),
            })
    }
}

/// The text between the armor of a cleartext-signed message, dash-unescaped, or `None` if the
/// text is not cleartext-signed. Used only for `allow_unsigned` repositories.
pub fn cleartext_body(text: &str) -> Option<String> {
    let rest = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----")?;
    let body_start = rest.find("\n\n").map(|i| i + 2)?;
    let body = &rest[body_start..];
    let end = body.find("\n-----BEGIN PGP SIGNATURE-----")?;
    let mut out = String::with_capacity(end + 1);
    for line in body[..end].split('\n') {
        out.push_str(line.strip_prefix("- ").unwrap_or(line));
        out.push('\n');
    }
    Some(out)
}

/// Parses the date form used in Release files: `Sat, 10 Jun 2023 08:56:48 UTC` (also `+0000`
/// or `GMT`, and without the weekday). Seconds since the epoch.
pub fn parse_rfc2822(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = match s.split_once(", ") {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut parts = s.split_whitespace();
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next().unwrap_or("0").parse().ok()?;
    let offset: i64 = match parts.next() {
        None | Some("UTC") | Some("GMT") | Some("Z") => 0,
        Some(z) if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            // `get`: the text is untrusted, and a multi-byte character would make slicing panic.
            let hh: i64 = z.get(1..3)?.parse().ok()?;
            let mm: i64 = z.get(3..5)?.parse().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return None,
    };
    // Years beyond 4 digits would overflow the day arithmetic; no Release is dated there.
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || !(1..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    let secs = days * 86400 + (h * 3600 + m * 60 + sec) as i64 - offset;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `2026-11-23 00:00:00 UTC`, for messages.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Inverse of days_from_civil.
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 Jan 2026 10:25:43 UTC\nValid-Until: Sat, 17 Jan 2026 10:25:43 UTC\nArchitectures: all amd64 arm64\nComponents: main contrib\nAcquire-By-Hash: yes\nSHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  1234 main/binary-amd64/Packages.xz\n";

    #[test]
    fn parses_fields_and_hashes() {
        let r = Release::parse(RELEASE, "u").unwrap();
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.date, Some(1768040743));
        assert_eq!(r.architectures, ["all", "amd64", "arm64"]);
        assert!(r.acquire_by_hash);
        let f = r.file("main/binary-amd64/Packages.xz", "u").unwrap();
        assert_eq!(f.size, 1234);
        let err = r
            .file("main/binary-i386/Packages.xz", "http://m/InRelease")
            .unwrap_err();
        assert!(err.to_string().contains("main/binary-i386/Packages.xz"));
        assert!(err.to_string().contains("http://m/InRelease"));
    }

    #[test]
    fn dates_are_checked_against_the_given_now() {
        let r = Release::parse(RELEASE, "u").unwrap();
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        r.check_dates(at(1768040743 + 3600), "u").unwrap();
        let err = r
            .check_dates(at(1768040743 + 8 * 86400), "http://m/dists/x/InRelease")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("expired at 2026-01-17 10:25:43 UTC"), "{msg}");
        assert!(msg.contains("http://m/dists/x/InRelease"), "{msg}");
        let err = r.check_dates(at(1768040743 - 86400), "u").unwrap_err();
        assert!(matches!(err, ReleaseError::NotYetValid { .. }));
    }

    #[test]
    fn suite_or_codename_must_match_the_request() {
        let r = Release::parse(RELEASE, "u").unwrap();
        r.check_suite("bookworm", "u").unwrap();
        r.check_suite("stable", "u").unwrap();
        r.check_suite("stable/updates", "u").unwrap();
        let err = r
            .check_suite("trixie", "http://m/dists/trixie/InRelease")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://m/dists/trixie/InRelease"), "{err}");
        assert!(err.contains("asked for suite trixie"), "{err}");
        assert!(err.contains("Suite stable, Codename bookworm"), "{err}");
        // Case matters, as in apt: `Bookworm` is another name.
        assert!(r.check_suite("Bookworm", "u").is_err());
        let anonymous = Release::parse(
            &RELEASE
                .replace("Suite: stable\n", "")
                .replace("Codename: bookworm\n", ""),
            "u",
        )
        .unwrap();
        let err = anonymous
            .check_suite("bookworm", "u")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Suite (none), Codename (none)"), "{err}");
    }

    #[test]
    fn real_archive_suite_names_pass() {
        // (requested, Suite, Codename) as deb.debian.org and archive.ubuntu.com publish them.
        let real = [
            ("bookworm", "oldstable", "bookworm"),
            ("bookworm-updates", "oldstable-updates", "bookworm-updates"),
            (
                "bookworm-security",
                "oldstable-security",
                "bookworm-security",
            ),
            ("xenial", "xenial", "xenial"),
            ("xenial-updates", "xenial-updates", "xenial"),
            ("xenial-security", "xenial-security", "xenial"),
            ("noble", "noble", "noble"),
            ("noble-updates", "noble-updates", "noble"),
            ("noble-security", "noble-security", "noble"),
        ];
        for (requested, suite, codename) in real {
            let text = RELEASE
                .replace("Suite: stable", &format!("Suite: {suite}"))
                .replace("Codename: bookworm", &format!("Codename: {codename}"));
            let r = Release::parse(&text, "u").unwrap();
            r.check_suite(requested, "u")
                .unwrap_or_else(|e| panic!("{requested}: {e}"));
        }
        // The swaps a hostile mirror could make among them are refused.
        let noble_proposed = RELEASE
            .replace("Suite: stable", "Suite: noble-proposed")
            .replace("Codename: bookworm", "Codename: noble");
        let r = Release::parse(&noble_proposed, "u").unwrap();
        assert!(r.check_suite("noble-updates", "u").is_err());
    }

    #[test]
    fn rfc2822_variants() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_rfc2822("1 Jan 1970 01:00:00 +0100"), Some(0));
        assert_eq!(
            parse_rfc2822("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1709208000)
        );
        assert_eq!(parse_rfc2822("yesterday"), None);
        // Found by fuzzing: slicing the zone panicked on a multi-byte character, and a huge
        // year overflowed the day count.
        assert_eq!(parse_rfc2822("1 Jan 2026 10:00:00 +0é0"), None);
        assert_eq!(
            parse_rfc2822("1 Jan 9223372036854775807 10:00:00 UTC"),
            None
        );
        assert_eq!(
            parse_rfc2822("31 Dec 9999 23:59:59 UTC"),
            Some(253402300799)
        );
        assert_eq!(format_utc(1709208000), "2024-02-29 12:00:00 UTC");
    }

    #[test]
    fn refuses_release_without_sha256() {
        let err = Release::parse("Origin: x\nMD5Sum:\n 00 1 a\n", "http://m/Release").unwrap_err();
        assert!(err.to_string().contains("no SHA256"));
    }

    #[test]
    fn unsigned_body_is_dash_unescaped() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\n- -dash\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(cleartext_body(text).unwrap(), "Origin: x\n-dash\n");
        assert_eq!(cleartext_body("Origin: x\n"), None);
    }
}
