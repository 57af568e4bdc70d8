//! Property tests over arbitrary input for every parser of registry data: whatever a registry
//! (or a user) sends, parsing returns a value or an error, never a panic. A few thousand cases
//! each; `STEVEDORE_FUZZ_CASES=1000000 cargo test --lib registry::fuzz_tests` runs a longer search.

use proptest::prelude::*;

use super::auth::{parse_challenge, parse_token_answer, token_lifetime};
use super::credentials::HostCredential;
use super::manifest::ManifestRefs;
use super::push::parse_range;
use super::reference::Reference;
use crate::oci::Platform;

fn config() -> ProptestConfig {
    crate::fuzz::config(3000)
}

/// Text shaped like the input (its alphabet), so the search reaches deep into the parser, plus
/// any string at all.
fn shaped(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[{alphabet}]{{0,120}}")).unwrap(),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn www_authenticate_never_panics(h in shaped(r#"a-zA-Z0-9 =",:/\\._\-"#)) {
        let _ = parse_challenge(&h);
        let _ = parse_challenge(&format!("Bearer {h}"));
    }

    #[test]
    fn bearer_challenges_keep_their_realm(realm in "[a-z0-9:/._-]{1,40}", scope in "[a-z0-9:/,._-]{0,40}") {
        let h = format!(r#"Bearer realm="{realm}",service="s",scope="{scope}""#);
        match parse_challenge(&h) {
            Some(super::auth::Challenge::Bearer { realm: r, scope: s, .. }) => {
                prop_assert_eq!(r, realm);
                prop_assert_eq!(s.unwrap_or_default(), scope);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn range_never_panics_nor_leaves_the_blob(r in shaped("0-9bytes= -"), size in any::<u64>()) {
        if let Some(next) = parse_range(&r, size) {
            prop_assert!(next <= size);
        }
    }

    #[test]
    fn range_numbers_are_exact(end in any::<u64>(), size in any::<u64>()) {
        let got = parse_range(&format!("0-{end}"), size);
        let want = if end == 0 { Some(0) } else { end.checked_add(1).filter(|n| *n <= size) };
        prop_assert_eq!(got, want);
    }

    #[test]
    fn token_answers_never_panic(body in prop_oneof![
        any::<Vec<u8>>(),
        shaped(r#"{}":,0-9a-z_ \-.eE"#).prop_map(String::into_bytes),
        (any::<u64>(), "[a-zA-Z0-9]{0,20}").prop_map(|(n, t)| format!(r#"{{"token":"{t}","expires_in":{n}}}"#).into_bytes()),
    ]) {
        if let Ok((_, life)) = parse_token_answer(&body) {
            prop_assert!(life <= token_lifetime(Some(u64::MAX)));
        }
    }

    #[test]
    fn manifests_and_indexes_never_panic(body in prop_oneof![
        any::<Vec<u8>>(),
        shaped(r#"{}\[\]":,0-9a-f_ \-.sha256mediaTypelayersconfigdigestsizeplatform"#).prop_map(String::into_bytes),
        (any::<u64>(), "[0-9a-f]{0,64}").prop_map(|(n, h)| format!(
            r#"{{"mediaType":"x","config":{{"digest":"sha256:{h}","size":{n}}},"manifests":[{{"digest":"sha256:{h}","size":{n},"platform":{{"os":"linux","architecture":"{h}"}}}}]}}"#
        ).into_bytes()),
    ]) {
        let _ = ManifestRefs::parse(&body);
    }

    #[test]
    fn references_never_panic(s in shaped("a-zA-Z0-9:/@._\\-")) {
        if let Ok(r) = s.parse::<Reference>() {
            // What parses prints back to something that parses to the same.
            prop_assert_eq!(r.to_string().parse::<Reference>().ok(), Some(r));
        }
    }

    #[test]
    fn platforms_and_from_creds_never_panic(s in shaped("a-z0-9/=:@._\\-")) {
        let _ = s.parse::<Platform>();
        let _ = HostCredential::parse(&s);
    }
}
