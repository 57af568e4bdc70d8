use proptest::prelude::*;

use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn manifest_json(media_type: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}",
        "config":{{"mediaType":"{}","digest":"{D1}","size":10}},
        "layers":[{{"mediaType":"{}","digest":"{D2}","size":20,"annotations":{{"a":"b"}}}}],
        "unknownField":[1,2,3]}}"#,
        names::OCI_CONFIG,
        names::OCI_LAYER_GZIP
    )
}

fn index_json() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
        {{"mediaType":"{}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
        {{"mediaType":"{}","digest":"{D2}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}},
          "annotations":{{"{REF_NAME}":"v1"}}}}]}}"#,
        names::DOCKER_MANIFEST_LIST,
        names::DOCKER_MANIFEST,
        names::DOCKER_MANIFEST
    )
}

#[test]
fn parses_manifests_of_both_families() {
    for mt in [names::OCI_MANIFEST, names::DOCKER_MANIFEST] {
        let m = Manifest::parse(manifest_json(mt).as_bytes()).unwrap();
        assert_eq!(m.effective_media_type(), mt);
        assert_eq!(m.config.digest.to_string(), D1);
        assert_eq!(m.layers[0].size, 20);
        assert!(m.layers[0].media_type.is_layer());
        assert_eq!(m.layers[0].annotations["a"], "b");
    }
}

#[test]
fn parses_an_index_and_finds_platforms_and_tags() {
    let i = Index::parse(index_json().as_bytes()).unwrap();
    assert!(i.effective_media_type().is_docker());
    let arm = i.find_platform(&"linux/arm64".parse().unwrap()).unwrap();
    assert_eq!(arm.digest.to_string(), D2);
    assert_eq!(i.find_ref_name("v1").unwrap().digest.to_string(), D2);
    assert!(i.find_platform(&"linux/s390x".parse().unwrap()).is_none());
    assert!(matches!(
        Manifest::parse(index_json().as_bytes()),
        Err(ParseError::WrongKind {
            expected: Kind::Manifest,
            found: Kind::Index
        })
    ));
}

#[test]
fn kind_comes_from_shape_without_a_media_type() {
    let m = manifest_json(names::OCI_MANIFEST)
        .replace(&format!(r#""mediaType":"{}","#, names::OCI_MANIFEST), "");
    assert_eq!(parse(m.as_bytes()).unwrap().kind(), Kind::Manifest);
    assert_eq!(
        parse(m.as_bytes()).unwrap().media_type(),
        MediaType::OCI_MANIFEST
    );
    let i = br#"{"schemaVersion":2,"manifests":[]}"#;
    assert_eq!(parse(i).unwrap().kind(), Kind::Index);
}

#[test]
fn refuses_what_is_wrong_naming_it() {
    let cases: Vec<(String, &str)> = vec![
        (
            manifest_json(names::OCI_MANIFEST)
                .replace(r#""schemaVersion":2"#, r#""schemaVersion":1"#),
            "schemaVersion 1",
        ),
        (r#"{"mediaType":"x"}"#.into(), "schemaVersion missing"),
        (
            manifest_json("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            "is not an image manifest or index",
        ),
        (
            index_json().replace(names::DOCKER_MANIFEST_LIST, names::OCI_MANIFEST),
            "has `manifests`",
        ),
        (manifest_json(names::OCI_INDEX), "has `config`"),
        (
            manifest_json(names::OCI_MANIFEST).replace(D2, "sha256:22"),
            "not a sha256 digest",
        ),
        (
            manifest_json(names::OCI_MANIFEST).replace(r#""size":20"#, r#""size":-20"#),
            "invalid value",
        ),
        (
            manifest_json(names::OCI_MANIFEST)
                .replace(r#""size":20"#, &format!(r#""size":{}"#, MAX_BLOB_SIZE + 1)),
            "over the",
        ),
        (r#"{"schemaVersion":2}"#.into(), "neither"),
        (
            r#"{"schemaVersion":2,"config":{},"manifests":[]}"#.into(),
            "both",
        ),
        ("[1,2]".into(), "invalid JSON"),
    ];
    for (doc, want) in cases {
        let err = parse(doc.as_bytes()).expect_err(&doc).to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
    assert!(matches!(parse(&big), Err(ParseError::TooLarge { .. })));
}

#[test]
fn canonical_writing_round_trips_byte_for_byte() {
    let m = Manifest::parse(manifest_json(names::OCI_MANIFEST).as_bytes()).unwrap();
    let bytes = m.to_canonical_json();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.contains("unknownField"), "unknown fields are dropped");
    assert!(text.starts_with(r#"{"config":{"digest":"#), "{text}");
    assert_eq!(Manifest::parse(&bytes).unwrap().to_canonical_json(), bytes);
}

#[test]
fn null_collections_read_as_empty() {
    let m = manifest_json(names::OCI_MANIFEST)
        .replace(r#""annotations":{"a":"b"}"#, r#""annotations":null"#);
    let m = Manifest::parse(m.as_bytes()).unwrap();
    assert!(m.layers[0].annotations.is_empty());
}

/// A valid document with one byte changed, inserted or removed: any outcome but a panic.
fn mutated(doc: String) -> impl Strategy<Value = Vec<u8>> {
    let len = doc.len();
    (0..len, any::<u8>(), 0..3u8).prop_map(move |(at, byte, how)| {
        let mut b = doc.clone().into_bytes();
        match how {
            0 => b[at] = byte,
            1 => b.insert(at, byte),
            _ => {
                b.remove(at);
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(crate::fuzz::config(2000))]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
        let _ = ImageConfig::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_manifests(bytes in mutated(manifest_json(names::DOCKER_MANIFEST))) {
        if let Ok(doc) = parse(&bytes) {
            // Whatever is accepted is valid and writes back to something that parses the same.
            let again = match &doc {
                Document::Manifest(m) => parse(&m.to_canonical_json()),
                Document::Index(i) => parse(&i.to_canonical_json()),
            };
            prop_assert_eq!(again.unwrap(), doc);
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_indexes(bytes in mutated(index_json())) {
        if let Ok(Document::Index(i)) = parse(&bytes) {
            prop_assert!(i.manifests.iter().all(|d| d.size <= MAX_BLOB_SIZE));
        }
    }

    #[test]
    fn platform_parsing_never_panics(s in ".{0,40}") {
        if let Ok(p) = s.parse::<Platform>() {
            prop_assert_eq!(p.to_string(), s);
            prop_assert!(p.matches(&p));
        }
    }
}

/// oci-spec as an independent reader: what we write, it reads back to the same document.
#[test]
fn oci_spec_reads_what_we_write() {
    let m = Manifest::parse(manifest_json(names::OCI_MANIFEST).as_bytes()).unwrap();
    let ours = m.to_canonical_json();
    let theirs: oci_spec::image::ImageManifest = serde_json::from_slice(&ours).unwrap();
    assert_eq!(canonical_json(&theirs), ours);
    let i = Index::parse(index_json().as_bytes()).unwrap();
    let ours = i.to_canonical_json();
    let theirs: oci_spec::image::ImageIndex = serde_json::from_slice(&ours).unwrap();
    assert_eq!(canonical_json(&theirs), ours);
}
