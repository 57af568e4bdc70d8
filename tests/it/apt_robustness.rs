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
        let dir = tempfile::tempdir().unwrap();
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
