//! Untrusted bytes (a damaged .deb, a bogus keyring or InRelease) give errors, never panics.

use crate::apt_support;

use std::io::Read;

use apt_support::*;
use proptest::prelude::*;
use stevedore::apt::Deb;
use stevedore::apt::signature::{Keyring, verify_inrelease};

fn read_everything(path: &std::path::Path) {
    if let Ok(deb) = Deb::open(path) {
        let _ = deb.for_each_data_entry(|entry| {
            let mut sink = Vec::new();
            entry.read_to_end(&mut sink)?;
            Ok(())
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_debs_never_panic(cut in 0usize..2000, flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..4), compression in prop::sample::select(vec!["xz", "zst", "gz", "none"])) {
        let mut bytes = TestDeb::new("fuzz", "1").compression(compression).build();
        for (at, value) in flips {
            let n = bytes.len();
            bytes[at % n] ^= value;
        }
        bytes.truncate(bytes.len().saturating_sub(cut % bytes.len().max(1)));
        let dir = crate::common::tempdir();
        let path = dir.path().join("fuzz.deb");
        std::fs::write(&path, &bytes).unwrap();
        read_everything(&path);
    }

    #[test]
    fn bogus_keyrings_and_inreleases_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), text in "(?s).{0,300}") {
        let _ = Keyring::from_bytes(&bytes, "fuzz.gpg");
        let keyring = Keyring::load(&fixtures().join("test-keyring.gpg")).unwrap();
        let armored = format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{text}\n-----BEGIN PGP SIGNATURE-----\n\n{}\n-----END PGP SIGNATURE-----\n", text.replace('\n', ""));
        let _ = verify_inrelease(&keyring, &armored, "u");
        let _ = verify_inrelease(&keyring, &text, "u");
    }
}

#[test]
fn real_keyring_with_flipped_bytes_never_panics() {
    let original = std::fs::read(keyrings().join("ubuntu-archive-keyring.gpg")).unwrap();
    for i in (0..original.len()).step_by(97) {
        let mut bytes = original.clone();
        bytes[i] ^= 0x5a;
        let _ = Keyring::from_bytes(&bytes, "flipped.gpg");
    }
}

// ---------------------------------------------------------------- fuzzing every apt parser
//
// Property tests over arbitrary bytes and over structure-aware mutations of valid inputs, on
// stable Rust (proptest). A few thousand cases each in the suite; a longer run is
// `STEVEDORE_FUZZ_CASES=200000 cargo test --test it apt_robustness::`.

/// Cases per property: `default`, or `STEVEDORE_FUZZ_CASES` for a long run.
fn cases(default: u32) -> u32 {
    std::env::var("STEVEDORE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fuzz_config(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default),
        // Shrinking a failure is worth it; thousands of shrink steps on slow cases are not.
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

const PACKAGES: &str = "Package: app\nVersion: 1:2.0-1\nArchitecture: amd64\nMulti-Arch: same\nPriority: optional\nDepends: libc6 (>= 2.34), perl:any | awk, foo [amd64] <!nocheck>\nPre-Depends: dpkg (>= 1.17)\nProvides: httpd (= 2), www-server\nConflicts: old (<< 1)\nFilename: pool/main/a/app/app_2.0-1_amd64.deb\nSize: 1234\nInstalled-Size: 12\nSHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nDescription: an app\n long text\n .\n more\n\nPackage: libc6\nVersion: 2.36-9\nArchitecture: amd64\nEssential: yes\nPriority: required\nFilename: pool/main/g/glibc/libc6.deb\nSize: 1\nSHA256: 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\nPackage: awk\nVersion: 1\nArchitecture: all\nFilename: pool/a.deb\nSize: 2\nSHA256: 2123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";

const RELEASE: &str = "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 Jan 2026 10:25:43 UTC\nValid-Until: Sat, 17 Jan 2026 10:25:43 +0000\nArchitectures: all amd64 arm64\nComponents: main contrib\nAcquire-By-Hash: yes\nMD5Sum:\n 0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages.xz\nSHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  1234 main/binary-amd64/Packages.xz\n 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  5678 main/binary-amd64/Packages\n";

/// Lines a mutation may insert or put in place of another: the shapes that have broken
/// parsers before (empty values, lone continuations, huge numbers, non-ASCII space, CR).
fn interesting_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "\t",
            "#",
            ":",
            " .",
            "\r",
            "\u{a0}",
            "Package:",
            "Package: \u{a0}",
            "Version:",
            "Version: 1:2:3-4-5",
            "Version: ~~",
            "Size: 99999999999999999999999",
            "Size: -1",
            "Depends: a (>= ",
            "Depends: a (<< 1) | ",
            "Depends: ,|,",
            "Depends: :any",
            "Provides: x (>= 1)",
            "SHA256: zz",
            "SHA256:",
            " 00 1",
            " zz 1 main/x",
            "Multi-Arch: weird",
            "Architecture: all",
            "Architecture: arm64",
            "Filename: ../../x",
            "Date: Sat, 10 Jan 99999999999 10:25:43 UTC",
            "Date: 1 Jan 2026 10:00:00 +0é0",
            "Valid-Until: 31 Feb 2026 24:61:61 -9999",
            "Suite: bookworm",
            "Codename:",
            "-----BEGIN PGP SIGNATURE-----",
            "- -dash",
            "Hash: SHA256",
        ])
        .prop_map(str::to_owned),
        "(?s).{0,40}",
    ]
}

#[derive(Debug, Clone)]
enum LineEdit {
    Delete,
    Duplicate,
    Insert(String),
    Replace(String),
    Truncate(usize),
    Indent,
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        Just(LineEdit::Delete),
        Just(LineEdit::Duplicate),
        interesting_line().prop_map(LineEdit::Insert),
        interesting_line().prop_map(LineEdit::Replace),
        (0usize..80).prop_map(LineEdit::Truncate),
        Just(LineEdit::Indent),
    ]
}

/// Applies line edits (positions taken modulo the line count) to a valid text.
fn mutate_lines(text: &str, edits: &[(usize, LineEdit)]) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    for (at, edit) in edits {
        let i = at % lines.len().max(1);
        match edit {
            LineEdit::Delete if !lines.is_empty() => {
                lines.remove(i);
            }
            LineEdit::Duplicate if !lines.is_empty() => lines.insert(i, lines[i].clone()),
            LineEdit::Insert(l) => lines.insert(i.min(lines.len()), l.clone()),
            LineEdit::Replace(l) if !lines.is_empty() => lines[i] = l.clone(),
            LineEdit::Truncate(n) if !lines.is_empty() => {
                let cut = lines[i]
                    .char_indices()
                    .nth(*n)
                    .map_or(lines[i].len(), |(b, _)| b);
                lines[i].truncate(cut);
            }
            LineEdit::Indent if !lines.is_empty() => lines[i].insert(0, ' '),
            _ => {}
        }
    }
    lines.join("\n")
}

fn edits() -> impl Strategy<Value = Vec<(usize, LineEdit)>> {
    proptest::collection::vec((any::<usize>(), line_edit()), 1..6)
}

/// Every read-only question the index answers, for each package it holds.
fn exercise_index(index: &stevedore::apt::Index) {
    for i in 0..index.len() {
        let p = index.package(i);
        let _ = (p.url(), p.priority_rank(), index.is_candidate(i));
        for alts in p.depends.iter().chain(&p.pre_depends).chain(&p.recommends) {
            let _ = stevedore::apt::index::format_alternatives(alts);
        }
        let _ = index.versions(&p.name).count();
        let _ = index.providers(&p.name).len();
    }
    let _ = index.minbase();
}

/// Scans `text` from memory and from a file: both must agree, and neither may panic.
fn scan_both_ways(text: &str) {
    let mut from_text = stevedore::apt::Index::new("amd64");
    let text_result = from_text.add_packages(text, "P", "http://m/debian");
    let dir = crate::common::tempdir();
    let path = dir.path().join("Packages");
    std::fs::write(&path, text).unwrap();
    let mut from_file = stevedore::apt::Index::new("amd64");
    let file_result =
        from_file.add_packages_file(std::fs::File::open(&path).unwrap(), "P", "http://m/debian");
    assert_eq!(
        text_result.as_ref().map_err(ToString::to_string),
        file_result.as_ref().map_err(ToString::to_string)
    );
    if text_result.is_ok() {
        from_text.finish();
        from_file.finish();
        exercise_index(&from_text);
        exercise_index(&from_file);
        assert_eq!(from_text.len(), from_file.len());
        for i in 0..from_text.len() {
            assert_eq!(from_text.package(i), from_file.package(i));
        }
    }
}

fn exercise_paragraphs(text: &str) {
    for p in stevedore::apt::deb822::paragraphs(text).flatten() {
        assert!(p.line >= 1);
        for (k, _) in p.fields() {
            assert!(!k.is_empty() && !k.contains([' ', '\t']), "{k:?}");
            let _ = p.first_line(k);
            let _ = p.continuation_lines(k).count();
        }
    }
}

fn exercise_release(text: &str) {
    use stevedore::apt::Release;
    if let Ok(r) = Release::parse(text, "u") {
        let _ = r.check_suite("bookworm", "u");
        for now in [0, 1_768_040_743, u64::from(u32::MAX), i64::MAX as u64 / 2] {
            let _ = r.check_dates(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(now),
                "u",
            );
        }
        for path in r.sha256.keys() {
            r.file(path, "u").unwrap();
        }
    }
    let _ = stevedore::apt::release::cleartext_body(text);
}

proptest! {
    #![proptest_config(fuzz_config(3000))]

    #[test]
    fn deb822_and_packages_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let text = String::from_utf8_lossy(&bytes);
        exercise_paragraphs(&text);
        scan_both_ways(&text);
        exercise_release(&text);
    }

    #[test]
    fn mutated_packages_indexes(edits in edits()) {
        let text = mutate_lines(PACKAGES, &edits);
        exercise_paragraphs(&text);
        scan_both_ways(&text);
    }

    #[test]
    fn mutated_release_files(edits in edits()) {
        exercise_release(&mutate_lines(RELEASE, &edits));
    }

    #[test]
    fn release_dates(
        weekday in prop::sample::select(vec!["", "Sat, ", "Xyz, ", ", "]),
        day in prop_oneof![1u64..=28, any::<u64>()],
        month in prop::sample::select(vec!["Jan", "Feb", "Dec", "jan", "é"]),
        year in prop_oneof![1970i64..=9999, any::<i64>()],
        hms in (0u64..24, 0u64..60, 0u64..61),
        zone in prop::sample::select(vec!["", "UTC", "GMT", "Z", "+0000", "-0130", "+99é", "+é00", "+0é0", "--000"]),
    ) {
        let (h, m, s) = hms;
        let text = format!("{weekday}{day} {month} {year} {h:02}:{m:02}:{s:02} {zone}");
        let parsed = stevedore::apt::release::parse_rfc2822(&text);
        let plain = ["", "UTC", "GMT", "Z", "+0000"].contains(&zone);
        if plain && month == "Jan" && (1..=28).contains(&day) && (1970..=9999).contains(&year) && s < 60 {
            let t = parsed.unwrap_or_else(|| panic!("{text:?} is a valid date"));
            let shown = stevedore::apt::release::format_utc(t);
            prop_assert_eq!(shown, format!("{year:04}-01-{day:02} {h:02}:{m:02}:{s:02} UTC"));
        }
    }

    #[test]
    fn version_comparison_is_a_total_order(
        a in "(?s).{0,12}",
        b in "[0-9a-z.+~:-]{0,10}",
        c in "[0-9~.:-]{0,6}",
    ) {
        use std::cmp::Ordering;
        use stevedore::apt::version::{compare, Relation};
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        if compare(&a, &b) != Ordering::Greater && compare(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare(&a, &c), Ordering::Greater, "{:?} {:?} {:?}", a, b, c);
        }
        for op in ["<<", "<=", "=", ">=", ">>", "<", ">"] {
            let rel = Relation::parse(op).unwrap();
            let _ = rel.matches(&a, &b);
        }
    }

    #[test]
    fn dependency_fields_parse_or_fail_and_round_trip(
        pieces in proptest::collection::vec(prop::sample::select(vec![
            "libc6", "a", "b-c+d.e", " ", ",", "|", "(", ")", ">=", "<<", "=", "<", ">", "!",
            "1.0", "1:2~3", "[amd64]", "[!i386", "<!nocheck>", ":any", ":native", ":amd64", ":",
            "\t", "\n ", "é", "\u{a0}",
        ]), 0..24),
        noise in "(?s).{0,30}",
    ) {
        use stevedore::apt::index::{format_alternatives, parse_dependency_field};
        let _ = parse_dependency_field(&noise);
        let field = pieces.concat();
        if let Ok(groups) = parse_dependency_field(&field) {
            for alts in &groups {
                for d in alts {
                    prop_assert!(!d.name.is_empty() && !d.name.contains(char::is_whitespace), "{:?}", d);
                }
                // What is shown (lockfile `why`, messages) reads back as the same relations.
                let shown = format_alternatives(alts);
                let again = parse_dependency_field(&shown).unwrap();
                prop_assert_eq!(&again[..], std::slice::from_ref(alts), "{:?} -> {:?}", field, shown);
            }
        }
    }
}

/// One ar member as a hostile .deb could frame it: any name, a declared size that may lie.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    body: Vec<u8>,
    /// Declared size instead of the body's length.
    declared: Option<u64>,
}

fn ar_of(members: &[Member]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for m in members {
        let size = m.declared.unwrap_or(m.body.len() as u64);
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            m.name, 0, 0, 0, 100644, size
        );
        // A name or size too long for its field shifts the header: that is damage to read too.
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&m.body);
        if m.body.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A tar whose entries may declare more (or less) than they hold, and odd types.
fn lying_tar(entries: &[(String, u8, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, declared, body) in entries {
        let mut h = tar::Header::new_gnu();
        let _ = h.set_path(name);
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_size(*declared);
        h.set_mode(0o644);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

/// Compressed at the fastest levels: thousands of cases, and any level reads the same.
fn compress(kind: &str, data: &[u8]) -> (&'static str, Vec<u8>) {
    use std::io::Write;
    match kind {
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
            e.write_all(data).unwrap();
            (".xz", e.finish().unwrap())
        }
        "gz" => (".gz", gz(data)),
        "zst" => (".zst", zstd::encode_all(data, 1).unwrap()),
        _ => ("", data.to_vec()),
    }
}

fn tar_entry() -> impl Strategy<Value = (String, u8, u64, Vec<u8>)> {
    (
        prop::sample::select(vec![
            "./control",
            "control",
            "./md5sums",
            "./postinst",
            "../x",
            "./",
            "/abs",
            "./a/b/c",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![b'0', b'5', b'2', b'1', b'L', b'x', b'g', 0]),
        prop_oneof![
            0u64..600,
            Just(64 << 20),
            Just((64 << 20) + 1),
            Just(u64::MAX >> 4)
        ],
        proptest::collection::vec(any::<u8>(), 0..300),
    )
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "debian-binary",
            "control.tar",
            "control.tar.gz",
            "control.tar.xz",
            "control.tar.zst",
            "data.tar",
            "data.tar.xz",
            "data.tar.gz",
            "data.tar.zst",
            "data.tar.bz2",
            "/",
            "//",
            "/0",
            "/99",
            "#1/20",
            "#1/99999999",
            "debian-binary/",
            "_gpgorigin",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,18}",
    ]
}

/// A hostile .deb: members of any name and declared size, whose bodies are valid or lying
/// tarballs, compressed or not, or plain noise.
fn hostile_deb() -> impl Strategy<Value = Vec<Member>> {
    let body = prop_oneof![
        (
            proptest::collection::vec(tar_entry(), 0..5),
            prop::sample::select(vec!["xz", "gz", "zst", "none"])
        )
            .prop_map(|(entries, kind)| compress(kind, &lying_tar(&entries)).1),
        Just(b"2.0\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..200),
    ];
    let member = (
        member_name(),
        body,
        prop_oneof![
            3 => Just(None),
            1 => prop_oneof![0u64..1000, Just(9_999_999_999)].prop_map(Some),
        ],
    )
        .prop_map(|(name, body, declared)| Member {
            name,
            body,
            declared,
        });
    proptest::collection::vec(member, 0..5)
}

proptest! {
    #![proptest_config(fuzz_config(1500))]

    #[test]
    fn hostile_debs_are_refused_or_read_never_panic(members in hostile_deb(), valid_first in any::<bool>()) {
        let mut members = members;
        if valid_first {
            // Usually well framed at the front, so the parsers behind the framing are reached.
            members.insert(0, Member { name: "debian-binary".into(), body: b"2.0\n".to_vec(), declared: None });
        }
        let dir = crate::common::tempdir();
        let path = dir.path().join("hostile.deb");
        std::fs::write(&path, ar_of(&members)).unwrap();
        read_everything(&path);
    }

    #[test]
    fn debs_with_a_lying_control_or_data_tar(
        control in proptest::collection::vec(tar_entry(), 0..6),
        data in proptest::collection::vec(tar_entry(), 0..6),
        kinds in (prop::sample::select(vec!["xz", "gz", "zst", "none"]), prop::sample::select(vec!["xz", "gz", "zst", "none"])),
    ) {
        let mut control = control;
        control.push(("./control".into(), b'0', 13, b"Package: fuzz".to_vec()));
        let (csuffix, cbody) = compress(kinds.0, &lying_tar(&control));
        let (dsuffix, dbody) = compress(kinds.1, &lying_tar(&data));
        let members = [
            Member { name: "debian-binary".into(), body: b"2.0\n".to_vec(), declared: None },
            Member { name: format!("control.tar{csuffix}"), body: cbody, declared: None },
            Member { name: format!("data.tar{dsuffix}"), body: dbody, declared: None },
        ];
        let dir = crate::common::tempdir();
        let path = dir.path().join("lying.deb");
        std::fs::write(&path, ar_of(&members)).unwrap();
        read_everything(&path);
    }

    #[test]
    fn arbitrary_bytes_as_a_deb(bytes in proptest::collection::vec(any::<u8>(), 0..1200), magic in any::<bool>()) {
        let mut all = if magic { b"!<arch>\n".to_vec() } else { Vec::new() };
        all.extend_from_slice(&bytes);
        let dir = crate::common::tempdir();
        let path = dir.path().join("noise.deb");
        std::fs::write(&path, &all).unwrap();
        read_everything(&path);
    }
}

/// A clearsigned InRelease made once by gpg with the test key.
fn signed_release() -> &'static str {
    static SIGNED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SIGNED.get_or_init(|| {
        String::from_utf8(clearsign(RELEASE, "test-key.sec.asc", None, None)).unwrap()
    })
}

/// The Release text as the signature covers it: trailing white space of each line aside.
fn normalized(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

proptest! {
    #![proptest_config(fuzz_config(2000))]

    /// A mutated InRelease is refused, or it verifies and says exactly what was signed: no
    /// mutation may change the text a good signature vouches for.
    #[test]
    fn mutated_inreleases_never_verify_other_text(
        edits in edits(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let keyring = Keyring::load(&fixtures().join("test-keyring.gpg")).unwrap();
        let mut bytes = mutate_lines(signed_release(), &edits).into_bytes();
        for (at, value) in flips {
            let n = bytes.len().max(1);
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= value;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = stevedore::apt::release::cleartext_body(&text);
        if let Ok(verified) = verify_inrelease(&keyring, &text, "u") {
            prop_assert_eq!(normalized(&verified.text), normalized(RELEASE));
        }
    }

    #[test]
    fn mutated_keyrings_never_panic(
        cut in 0usize..4000,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        repeat in any::<bool>(),
    ) {
        let mut bytes = std::fs::read(fixtures().join("subkey-keyring.gpg")).unwrap();
        if repeat {
            bytes.extend_from_within(..);
        }
        for (at, value) in flips {
            let n = bytes.len();
            bytes[at % n] ^= value;
        }
        bytes.truncate(bytes.len().saturating_sub(cut % bytes.len()));
        if let Ok(keyring) = Keyring::from_bytes(&bytes, "mutated.gpg") {
            let _ = verify_inrelease(&keyring, signed_release(), "u");
        }
    }
}

#[test]
fn extended_ar_names_are_refused_before_the_ar_crate_reads_them() {
    // `/99` without a GNU name table made the ar crate slice out of bounds (a panic).
    for name in ["/99", "//", "#1/20"] {
        let members = [
            Member {
                name: "debian-binary".into(),
                body: b"2.0\n".to_vec(),
                declared: None,
            },
            Member {
                name: name.into(),
                body: vec![b'x'; 40],
                declared: None,
            },
        ];
        let dir = crate::common::tempdir();
        let path = dir.path().join("names.deb");
        std::fs::write(&path, ar_of(&members)).unwrap();
        let err = Deb::open(&path).unwrap_err().to_string();
        assert!(err.contains("plain names") && err.contains(name), "{err}");
    }
}

#[test]
fn control_files_past_the_budget_are_refused_before_allocation() {
    let control = lying_tar(&[
        ("./control".into(), b'0', 13, b"Package: big".to_vec()),
        ("./md5sums".into(), b'0', (64 << 20) + 1, vec![0; 100]),
    ]);
    let members = [
        Member {
            name: "debian-binary".into(),
            body: b"2.0\n".to_vec(),
            declared: None,
        },
        Member {
            name: "control.tar.gz".into(),
            body: gz(&control),
            declared: None,
        },
        Member {
            name: "data.tar".into(),
            body: lying_tar(&[]),
            declared: None,
        },
    ];
    let dir = crate::common::tempdir();
    let path = dir.path().join("big.deb");
    std::fs::write(&path, ar_of(&members)).unwrap();
    let err = Deb::open(&path).unwrap_err().to_string();
    assert!(err.contains("md5sums claims 67108865 bytes"), "{err}");
}
