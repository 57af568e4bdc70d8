//! End to end against a generated, signed repository on loopback: load, resolve, fetch, read,
//! and every bad input the issue lists.

use crate::apt_support;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use apt_support::*;
use stevedore::apt::{
    self, AptError, Deb, DebError, FetchError, Fetcher, Request, Sources, Wanted,
};

fn sources(server: &Server, keyring: &str) -> Sources {
    Sources {
        mirrors: vec![server.url()],
        suites: vec!["stable".into()],
        components: vec!["main".into()],
        architecture: "amd64".into(),
        keyring: Some(fixtures().join(keyring)),
        allow_unsigned: false,
    }
}

fn fetcher(cache: &tempfile::TempDir) -> Fetcher {
    Fetcher::new(cache.path())
        .unwrap()
        .with_retries(2, Duration::from_millis(20))
}

fn sample_debs() -> Vec<TestDeb> {
    vec![
        TestDeb::new("app", "1.0-1").field("Depends", "libfoo (>= 1.1) | libbar, tool:any"),
        TestDeb::new("libfoo", "1.2-1")
            .compression("zst")
            .field("Multi-Arch", "same"),
        TestDeb::new("libbar", "1.0").compression("gz"),
        TestDeb::new("tool", "3")
            .compression("none")
            .field("Multi-Arch", "allowed"),
        TestDeb::new("base", "1")
            .field("Essential", "yes")
            .field("Priority", "required"),
    ]
}

fn load(
    spec: &RepoSpec,
    keyring: &str,
) -> (
    Repo,
    Server,
    tempfile::TempDir,
    Result<apt::LoadedIndex, AptError>,
) {
    let repo = build_repo(spec);
    let server = Server::serve(repo.root());
    let cache = crate::common::tempdir();
    let result = apt::load_index(
        &[sources(&server, keyring)],
        &fetcher(&cache),
        SystemTime::now(),
    );
    (repo, server, cache, result)
}

#[test]
fn signed_repository_resolves_fetches_and_streams_every_compression() {
    let spec = RepoSpec::new(sample_debs());
    let (_repo, server, cache, loaded) = load(&spec, "test-keyring.gpg");
    let loaded = loaded.unwrap();
    assert_eq!(loaded.suites[0].signers.len(), 1);
    assert!(loaded.suites[0].signers[0].starts_with("F89676F4F53C83A32BE119F507E6C4E401B1B5C2"));

    let request = Request {
        packages: vec!["app".into()],
        minbase: true,
        ..Request::default()
    };
    let resolution = apt::resolve(&loaded.index, &request, &[]).unwrap();
    assert_eq!(resolution.names(), ["app", "base", "libfoo", "tool"]);

    let wanted: Vec<Wanted> = resolution.packages.iter().map(|r| r.wanted()).collect();
    let f = fetcher(&cache);
    let paths = apt::fetch_debs(&f, &resolution).unwrap();
    for (path, w) in paths.iter().zip(&wanted) {
        assert_eq!(path, &cache.path().join("sha256").join(w.sha256.hex()));
    }
    // Cached: a second fetch makes no request.
    let before = server.log.lock().unwrap().len();
    f.fetch_all_blocking(&wanted).unwrap();
    assert_eq!(server.log.lock().unwrap().len(), before);

    for (resolved, path) in resolution.packages.iter().zip(&paths) {
        let deb = Deb::open(path).unwrap();
        assert!(
            deb.control()
                .contains(&format!("Package: {}", resolved.package.name))
        );
        assert!(deb.control_file("md5sums").is_some());
        assert!(deb.control_file("postinst").is_some());
        let mut files = Vec::new();
        deb.for_each_data_entry(|entry| {
            // Real .debs say `./usr/...`; the tar crate writes `usr/...`; accept both.
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let mut body = String::new();
            entry.read_to_string(&mut body)?;
            files.push((path, body));
            Ok(())
        })
        .unwrap();
        let name = &resolved.package.name;
        let hello = files
            .iter()
            .find(|(p, _)| p == &format!("usr/share/{name}/hello"))
            .unwrap_or_else(|| panic!("{name}: {files:?}"));
        assert_eq!(hello.1, format!("{name} {}\n", resolved.package.version));
    }
    let compressions: Vec<_> = paths
        .iter()
        .map(|p| Deb::open(p).unwrap().data_member().0.to_owned())
        .collect();
    for c in ["data.tar.xz", "data.tar.zst", "data.tar"] {
        assert!(compressions.iter().any(|m| m == c), "{compressions:?}");
    }
}

#[test]
fn tampered_inrelease_is_a_bad_signature() {
    let spec = RepoSpec::new(sample_debs());
    let repo = build_repo(&spec);
    let inrelease = repo.root().join("dists/stable/InRelease");
    let text = std::fs::read_to_string(&inrelease).unwrap();
    std::fs::write(
        &inrelease,
        text.replace("Origin: stevedore-test", "Origin: stevedore-evil"),
    )
    .unwrap();
    let server = Server::serve(repo.root());
    let cache = crate::common::tempdir();
    let err = apt::load_index(
        &[sources(&server, "test-keyring.gpg")],
        &fetcher(&cache),
        SystemTime::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("BAD signature") && err.contains("/dists/stable/InRelease"),
        "{err}"
    );
}

#[test]
fn missing_signature_is_refused_unless_allow_unsigned() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.signing = Signing::Unsigned;
    let (repo, server, cache, loaded) = load(&spec, "test-keyring.gpg");
    let err = loaded.unwrap_err().to_string();
    assert!(
        err.contains("is not signed") && err.contains("/dists/stable/InRelease"),
        "{err}"
    );
    let _ = repo;
    let mut unsigned = sources(&server, "test-keyring.gpg");
    unsigned.allow_unsigned = true;
    let loaded = apt::load_index(&[unsigned], &fetcher(&cache), SystemTime::now()).unwrap();
    assert!(loaded.suites[0].signers.is_empty());
    assert!(loaded.index.candidate("app").is_some());
}

#[test]
fn unknown_key_names_the_key() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.signing = Signing::Key {
        secret: "unknown-key.sec.asc",
        faked_time: None,
        digest: None,
    };
    let (_r, _s, _c, loaded) = load(&spec, "test-keyring.gpg");
    let err = loaded.unwrap_err().to_string();
    assert!(
        err.contains("unknown key 92C69662460E71B9A2B2B1D036B33E76FC95684D"),
        "{err}"
    );
    assert!(err.contains("test-keyring.gpg"), "{err}");
}

#[test]
fn revoked_and_expired_keys_and_sha1_are_refused() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.signing = Signing::Key {
        secret: "revoked-key.sec.asc",
        faked_time: None,
        digest: None,
    };
    let (_r, _s, _c, loaded) = load(&spec, "revoked-keyring.gpg");
    let err = loaded.unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");

    spec.signing = Signing::Key {
        secret: "expired-key.sec.asc",
        faked_time: Some("20200601T000000"),
        digest: None,
    };
    // The Release Date must not be in the future relative to the signature; only the key
    // expiry is under test here.
    let (_r, _s, _c, loaded) = load(&spec, "expired-keyring.gpg");
    let err = loaded.unwrap_err().to_string();
    assert!(err.contains("after the key expired on 2020-01-02"), "{err}");

    spec.signing = Signing::Key {
        secret: "test-key.sec.asc",
        faked_time: None,
        digest: Some("SHA1"),
    };
    let (_r, _s, _c, loaded) = load(&spec, "test-keyring.asc");
    let err = loaded.unwrap_err().to_string();
    assert!(err.contains("weak hash SHA1"), "{err}");
}

#[test]
fn expired_release_names_the_url_and_date() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.release_fields = vec![("Valid-Until".into(), now_rfc2822(-3600))];
    let (_r, _s, _c, loaded) = load(&spec, "test-keyring.gpg");
    let err = loaded.unwrap_err().to_string();
    assert!(
        err.contains("expired at") && err.contains("/dists/stable/InRelease"),
        "{err}"
    );
}

#[test]
fn packages_hash_mismatch_stores_nothing() {
    let spec = RepoSpec::new(sample_debs());
    let repo = build_repo(&spec);
    let packages_xz = repo.packages_xz(&spec);
    let mut bytes = std::fs::read(&packages_xz).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&packages_xz, &bytes).unwrap();
    let server = Server::serve(repo.root());
    let cache = crate::common::tempdir();
    let err = apt::load_index(
        &[sources(&server, "test-keyring.gpg")],
        &fetcher(&cache),
        SystemTime::now(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("main/binary-amd64/Packages.xz") && msg.contains("sha256 mismatch"),
        "{msg}"
    );
    assert!(
        msg.contains("expected sha256:") && msg.contains("got sha256:"),
        "{msg}"
    );
    assert_eq!(stored_files(&cache), 0);
}

/// The decompressed index is checked too: against the Release's hash of the plain `Packages`,
/// so what the resolver reads is exactly what the archive signed.
#[test]
fn decompressed_index_must_match_the_signed_text_hash() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.mismatched_text = true;
    let (_repo, _server, cache, result) = load(&spec, "test-keyring.gpg");
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("main/binary-amd64/Packages.xz (decompressed)") && err.contains("mismatch"),
        "{err}"
    );
    // Only the verified compressed file is stored, not the text that failed.
    assert_eq!(stored_files(&cache), 1);

    // A text that goes on past its signed size is refused as such, although everything the
    // index scanned of it (while it was being decoded) was fine.
    let mut spec = RepoSpec::new(sample_debs());
    spec.index_bomb = true;
    let (_repo, _server, cache, result) = load(&spec, "test-keyring.gpg");
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("main/binary-amd64/Packages.xz (decompressed)") && err.contains("size"),
        "{err}"
    );
    assert_eq!(stored_files(&cache), 1);

    // A consistent repository stores the text once, and a second load reads it back.
    let (_repo, server, cache, first) = load(&RepoSpec::new(sample_debs()), "test-keyring.gpg");
    assert!(first.unwrap().index.candidate("libbar").is_some());
    let again = apt::load_index(
        &[sources(&server, "test-keyring.gpg")],
        &fetcher(&cache),
        SystemTime::now(),
    )
    .unwrap();
    assert!(again.index.candidate("libbar").is_some());
    assert_eq!(stored_files(&cache), 2, "Packages.xz and its text");

    // A Release that lists only Packages.xz: its text has no signed hash to be stored under,
    // so each load decompresses into an unnamed temporary file, and the store keeps the xz.
    let mut spec = RepoSpec::new(sample_debs());
    spec.unlisted_text = true;
    let (_repo, _server, cache, loaded) = load(&spec, "test-keyring.gpg");
    let loaded = loaded.unwrap();
    let bar = loaded.index.candidate("libbar").unwrap();
    assert_eq!(loaded.index.package(bar).name, "libbar");
    assert_eq!(stored_files(&cache), 1, "only Packages.xz");
}

fn stored_files(cache: &tempfile::TempDir) -> usize {
    std::fs::read_dir(cache.path().join("sha256"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
        .count()
}

#[test]
fn deb_hash_mismatch_names_the_url_and_both_digests() {
    let spec = RepoSpec::new(sample_debs());
    let (repo, _server, cache, loaded) = load(&spec, "test-keyring.gpg");
    let index = loaded.unwrap().index;
    std::fs::write(&repo.debs["libbar"], b"not the package").unwrap();
    let res = apt::resolve(
        &index,
        &Request {
            packages: vec!["libbar".into()],
            ..Request::default()
        },
        &[],
    )
    .unwrap();
    let before = stored_files(&cache);
    let err = fetcher(&cache)
        .fetch_all_blocking(&[res.packages[0].wanted()])
        .unwrap_err();
    let msg = err.to_string();
    // The size check fires first for a shorter file; both are "nothing stored" errors.
    assert!(msg.contains("pool/main/libbar_1.0_amd64.deb"), "{msg}");
    assert!(matches!(
        err,
        FetchError::SizeMismatch { .. } | FetchError::HashMismatch { .. }
    ));
    assert_eq!(stored_files(&cache), before);

    // Same size, different bytes: a hash mismatch with both digests.
    let original = TestDeb::new("libbar", "1.0").compression("gz").build();
    let mut evil = original.clone();
    let n = evil.len();
    evil[n - 3] ^= 1;
    std::fs::write(&repo.debs["libbar"], &evil).unwrap();
    let err = fetcher(&cache)
        .fetch_all_blocking(&[res.packages[0].wanted()])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("sha256 mismatch")
            && msg.contains(&res.packages[0].package.sha256.to_string()),
        "{msg}"
    );
    assert_eq!(stored_files(&cache), before);
}

#[test]
fn truncated_deb_and_unsupported_compression_name_the_file() {
    let dir = crate::common::tempdir();
    let good = TestDeb::new("cut", "1").build();
    let path = dir.path().join("cut_1_amd64.deb");
    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    let err = Deb::open(&path).unwrap_err();
    assert!(matches!(err, DebError::Truncated { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("cut_1_amd64.deb") && msg.contains("truncated"),
        "{msg}"
    );

    let path = dir.path().join("odd_1_amd64.deb");
    std::fs::write(&path, TestDeb::new("odd", "1").compression("bz2").build()).unwrap();
    let msg = Deb::open(&path).unwrap_err().to_string();
    assert!(
        msg.contains("odd_1_amd64.deb")
            && msg.contains("data.tar.bz2")
            && msg.contains("unsupported compression"),
        "{msg}"
    );
}

#[test]
fn network_down_names_the_url() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let cache = crate::common::tempdir();
    let sources = Sources {
        mirrors: vec!["http://127.0.0.1:9/debian".into()],
        suites: vec!["stable".into()],
        components: vec!["main".into()],
        architecture: "amd64".into(),
        keyring: Some(fixtures().join("test-keyring.gpg")),
        allow_unsigned: false,
    };
    let started = std::time::Instant::now();
    let err = apt::load_index(&[sources], &fetcher(&cache), SystemTime::now())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot download http://127.0.0.1:9/debian/dists/stable/InRelease"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn http_errors_retries_and_resume() {
    let spec = RepoSpec::new(sample_debs());
    let (repo, server, cache, loaded) = load(&spec, "test-keyring.gpg");
    let index = loaded.unwrap().index;
    let res = apt::resolve(
        &index,
        &Request {
            packages: vec!["libfoo".into()],
            ..Request::default()
        },
        &[],
    )
    .unwrap();
    let wanted = res.packages[0].wanted();
    let path = "/pool/main/libfoo_1.2-1_amd64.deb".to_string();
    assert!(repo.debs["libfoo"].exists());
    {
        let mut faults = server.faults.lock().unwrap();
        faults.fail_503.insert(path.clone(), 1);
        faults.cut_after.insert(path.clone(), 100);
    }
    let stored = fetcher(&cache)
        .fetch_all_blocking(std::slice::from_ref(&wanted))
        .unwrap();
    assert_eq!(
        stevedore::digest::digest_reader(std::fs::File::open(&stored[0]).unwrap())
            .unwrap()
            .0,
        wanted.sha256
    );
    let ranges = server.requests_for(&path);
    // 503, then a cut-off 200, then a Range request resuming at byte 100.
    assert_eq!(
        ranges,
        [None, None, Some("bytes=100-".to_string())],
        "{ranges:?}"
    );

    // 404 names the URL and says what to check.
    let missing = Wanted {
        url: format!("{}/pool/main/nope.deb", server.url()),
        ..wanted.clone()
    };
    let cache2 = crate::common::tempdir();
    let err = fetcher(&cache2)
        .fetch_all_blocking(&[missing])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/pool/main/nope.deb: HTTP 404"), "{err}");
}

#[test]
fn packages_cached_by_hash_are_not_downloaded_twice() {
    let spec = RepoSpec::new(sample_debs());
    let (_repo, server, cache, loaded) = load(&spec, "test-keyring.gpg");
    loaded.unwrap();
    apt::load_index(
        &[sources(&server, "test-keyring.gpg")],
        &fetcher(&cache),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(server.requests_for("Packages.xz").len(), 1);
    assert_eq!(server.requests_for("InRelease").len(), 2);
    let _: PathBuf = cache.path().to_owned();
}

#[test]
fn bad_sources_are_refused_up_front() {
    let cache = crate::common::tempdir();
    let good = Sources {
        mirrors: vec!["http://127.0.0.1:9/debian".into()],
        suites: vec!["stable".into()],
        components: vec!["main".into()],
        architecture: "amd64".into(),
        keyring: None,
        allow_unsigned: false,
    };
    let cases = [
        (
            Sources {
                mirrors: vec![],
                ..good.clone()
            },
            "no mirror URL",
        ),
        (
            Sources {
                mirrors: vec!["deb.debian.org/debian".into()],
                ..good.clone()
            },
            "must be an http:// or https:// URL",
        ),
        (
            Sources {
                suites: vec![],
                ..good.clone()
            },
            "no suite",
        ),
        (
            Sources {
                components: vec![],
                ..good.clone()
            },
            "no component",
        ),
    ];
    for (sources, expected) in cases {
        let err = apt::load_index(&[sources], &fetcher(&cache), SystemTime::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
    let arm = Sources {
        architecture: "arm64".into(),
        ..good.clone()
    };
    let err = apt::load_index(&[good, arm], &fetcher(&cache), SystemTime::now())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("architecture arm64 differs from amd64"),
        "{err}"
    );
}

#[test]
fn generated_debs_are_valid_for_dpkg_deb() {
    require_tool("dpkg-deb", "dpkg");
    let dir = crate::common::tempdir();
    for deb in sample_debs() {
        let path = dir.path().join(format!("{}.deb", deb.name));
        std::fs::write(&path, deb.build()).unwrap();
        let out = std::process::Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&path)
            .arg("Package")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            deb.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), deb.name);
        let listing = std::process::Command::new("dpkg-deb")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&listing.stdout)
                .contains(&format!("usr/share/{}/hello", deb.name))
        );
    }
}

#[test]
fn signature_by_a_signing_subkey_is_accepted() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.signing = Signing::Key {
        secret: "subkey-key.sec.asc",
        faked_time: None,
        digest: None,
    };
    let (_r, _s, _c, loaded) = load(&spec, "subkey-keyring.gpg");
    let loaded = loaded.unwrap();
    // The primary key can only certify; the good signature is the subkey's.
    assert!(
        loaded.suites[0].signers[0].starts_with("3DE63D84027AF3922CC1B3E86AD28FFFCE0DF3CC"),
        "{:?}",
        loaded.suites[0].signers
    );
}

#[test]
fn stale_partial_file_from_an_earlier_run_is_discarded() {
    let spec = RepoSpec::new(sample_debs());
    let (_repo, server, cache, loaded) = load(&spec, "test-keyring.gpg");
    let index = loaded.unwrap().index;
    let res = apt::resolve(
        &index,
        &Request {
            packages: vec!["libbar".into()],
            ..Request::default()
        },
        &[],
    )
    .unwrap();
    let wanted = res.packages[0].wanted();
    let partial = cache
        .path()
        .join("sha256/.partial")
        .join(wanted.sha256.hex());
    std::fs::write(
        &partial,
        b"garbage from an interrupted transfer of something else",
    )
    .unwrap();
    let stored = fetcher(&cache)
        .fetch_all_blocking(std::slice::from_ref(&wanted))
        .unwrap();
    let (digest, _) =
        stevedore::digest::digest_reader(std::fs::File::open(&stored[0]).unwrap()).unwrap();
    assert_eq!(digest, wanted.sha256);
    let ranges = server.requests_for("libbar_1.0_amd64.deb");
    assert_eq!(
        ranges.len(),
        2,
        "a resumed attempt, then a fresh one: {ranges:?}"
    );
    assert!(ranges[0].is_some() && ranges[1].is_none(), "{ranges:?}");
}

#[test]
fn a_dead_mirror_falls_back_to_the_next() {
    let spec = RepoSpec::new(sample_debs());
    let repo = build_repo(&spec);
    let server = Server::serve(repo.root());
    let cache = crate::common::tempdir();
    let mut both = sources(&server, "test-keyring.gpg");
    both.mirrors.insert(0, "http://127.0.0.1:9/down".into());
    let loaded = apt::load_index(&[both], &fetcher(&cache), SystemTime::now()).unwrap();
    let app = loaded.index.package(loaded.index.candidate("app").unwrap());
    assert!(app.url().starts_with(&server.url()), "{}", app.url());
}

#[test]
fn by_hash_is_used_when_offered_and_falls_back_to_the_plain_path() {
    let mut spec = RepoSpec::new(sample_debs());
    spec.release_fields = vec![("Acquire-By-Hash".into(), "yes".into())];
    let repo = build_repo(&spec);
    let server = Server::serve(repo.root());

    // No by-hash directory on this mirror: 404, then the plain Packages.xz.
    let cache = crate::common::tempdir();
    apt::load_index(
        &[sources(&server, "test-keyring.gpg")],
        &fetcher(&cache),
        SystemTime::now(),
    )
    .unwrap();
    let paths: Vec<String> = server
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("/by-hash/SHA256/")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("/main/binary-amd64/Packages.xz")),
        "{paths:?}"
    );

    // With the by-hash file present, only it is fetched.
    let packages_xz = repo.packages_xz(&spec);
    let hex = stevedore::digest::Digest::of(&std::fs::read(&packages_xz).unwrap()).hex();
    let by_hash = packages_xz.parent().unwrap().join("by-hash/SHA256");
    std::fs::create_dir_all(&by_hash).unwrap();
    std::fs::copy(&packages_xz, by_hash.join(&hex)).unwrap();
    server.log.lock().unwrap().clear();
    let cache = crate::common::tempdir();
    apt::load_index(
        &[sources(&server, "test-keyring.gpg")],
        &fetcher(&cache),
        SystemTime::now(),
    )
    .unwrap();
    let paths: Vec<String> = server
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with(&format!("/by-hash/SHA256/{hex}"))),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.ends_with("Packages.xz")),
        "{paths:?}"
    );
}
