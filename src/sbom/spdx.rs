//! SPDX 2.3 JSON (<https://spdx.github.io/spdx-spec/v2.3/>): the image as the described
//! package, each Debian package and Maven jar as a package, the files of file and WAR layers
//! as files; `CONTAINS`, `DEPENDS_ON` and `DESCENDANT_OF` (the base image) relationships.

use serde::Serialize;

use super::inventory::{BaseFacts, DebPackage, FileLayer, Inventory, MavenJar};
use crate::digest::Digest;

const NOASSERTION: &str = "NOASSERTION";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    document_describes: Vec<&'static str>,
    packages: Vec<Package>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<File>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<Extracted>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_file_name: Option<String>,
    supplier: String,
    download_location: String,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    license_concluded: &'static str,
    license_declared: String,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    file_name: String,
    checksums: Vec<Checksum>,
    license_concluded: &'static str,
    copyright_text: &'static str,
    comment: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationCode {
    package_verification_code_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Extracted {
    license_id: String,
    extracted_text: String,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

const IMAGE_ID: &str = "SPDXRef-Image";

/// An SPDX id: `SPDXRef-` and letters, digits, `.` and `-` only.
fn spdx_ref(kind: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{kind}-{clean}")
}

fn sha256(d: &Digest) -> Checksum {
    Checksum {
        algorithm: "SHA256",
        checksum_value: d.hex(),
    }
}

fn purl_ref(purl: &str) -> ExternalRef {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: purl.to_string(),
    }
}

/// The document's namespace: unique per image (the manifest digest), the form the SPDX spec
/// suggests for documents without a home of their own.
fn namespace(inv: &Inventory) -> String {
    let name: String = inv
        .image
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "https://spdx.org/spdxdocs/stevedore/{name}-{}",
        inv.image.manifest_digest.hex()
    )
}

fn deb_spdx_id(p: &DebPackage) -> String {
    spdx_ref("deb", &format!("{}-{}", p.name, p.architecture))
}

pub fn write(inv: &Inventory) -> Vec<u8> {
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: IMAGE_ID.into(),
    }];
    let mut contained: Vec<String> = Vec::new();
    let mut contains = |id: &str| contained.push(id.to_string());
    let mut packages = vec![image_package(inv)];
    let mut extracted = std::collections::BTreeMap::new();
    for p in &inv.packages {
        let pkg = deb_package(p);
        contains(&pkg.spdx_id);
        packages.push(pkg);
        for (id, (name, text)) in p.license.iter().flat_map(|l| &l.refs) {
            extracted
                .entry(id.clone())
                .or_insert_with(|| (name.clone(), text.clone()));
        }
    }
    for (i, jar) in inv.jars.iter().enumerate() {
        let pkg = maven_package(i, jar);
        contains(&pkg.spdx_id);
        packages.push(pkg);
    }
    relationships.extend(contained.into_iter().map(|id| Relationship {
        spdx_element_id: IMAGE_ID.into(),
        relationship_type: "CONTAINS",
        related_spdx_element: id,
    }));
    let mut files = Vec::new();
    for (i, layer) in inv.file_layers.iter().enumerate() {
        let (pkg, layer_files) = layer_package(i, layer);
        relationships.push(Relationship {
            spdx_element_id: IMAGE_ID.into(),
            relationship_type: "CONTAINS",
            related_spdx_element: pkg.spdx_id.clone(),
        });
        for f in &layer_files {
            relationships.push(Relationship {
                spdx_element_id: pkg.spdx_id.clone(),
                relationship_type: "CONTAINS",
                related_spdx_element: f.spdx_id.clone(),
            });
        }
        packages.push(pkg);
        files.extend(layer_files);
    }
    if let Some(b) = &inv.base {
        packages.push(base_package(b));
        relationships.push(Relationship {
            spdx_element_id: IMAGE_ID.into(),
            relationship_type: "DESCENDANT_OF",
            related_spdx_element: "SPDXRef-BaseImage".into(),
        });
    }
    for p in &inv.packages {
        for &d in &p.depends_on {
            relationships.push(Relationship {
                spdx_element_id: deb_spdx_id(p),
                relationship_type: "DEPENDS_ON",
                related_spdx_element: deb_spdx_id(&inv.packages[d]),
            });
        }
    }
    let doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("{}@{}", inv.image.name, inv.image.manifest_digest),
        document_namespace: namespace(inv),
        creation_info: CreationInfo {
            created: crate::image::rfc3339(inv.image.created),
            creators: vec![format!("Tool: stevedore-{}", env!("CARGO_PKG_VERSION"))],
        },
        document_describes: vec![IMAGE_ID],
        packages,
        files,
        has_extracted_licensing_infos: extracted
            .into_iter()
            .map(|(license_id, (name, extracted_text))| Extracted {
                license_id,
                extracted_text,
                name,
            })
            .collect(),
        relationships,
    };
    let mut out = serde_json::to_vec_pretty(&doc).expect("SPDX documents serialize");
    out.push(b'\n');
    out
}

/// A file or WAR layer as a package whose files are all listed (`filesAnalyzed`), with the
/// verification code SPDX defines: the SHA1 of its files' sorted SHA1s.
/// `index` keeps ids unique when two recipes of a chain name a layer alike.
fn layer_package(index: usize, layer: &FileLayer) -> (Package, Vec<File>) {
    use sha1::Digest as _;
    let id = spdx_ref("Layer", &format!("{index}-{}", layer.name));
    let files: Vec<File> = layer
        .files
        .iter()
        .map(|f| File {
            spdx_id: spdx_ref(
                "File",
                &Digest::of(format!("{index}\0{}\0{}", layer.name, f.path).as_bytes()).hex()[..16],
            ),
            file_name: format!(".{}", f.path),
            checksums: vec![
                Checksum {
                    algorithm: "SHA1",
                    checksum_value: f.sha1.clone(),
                },
                sha256(&f.sha256),
            ],
            license_concluded: NOASSERTION,
            copyright_text: NOASSERTION,
            comment: format!("layer {}", f.layer),
        })
        .collect();
    let mut sums: Vec<&str> = layer.files.iter().map(|f| f.sha1.as_str()).collect();
    sums.sort_unstable();
    let code = hex::encode(sha1::Sha1::digest(sums.concat().as_bytes()));
    let pkg = Package {
        spdx_id: id,
        name: layer.name.clone(),
        version_info: Some(layer.digest.to_string()),
        package_file_name: None,
        supplier: NOASSERTION.into(),
        download_location: NOASSERTION.into(),
        files_analyzed: true,
        package_verification_code: Some(VerificationCode {
            package_verification_code_value: code,
        }),
        checksums: vec![sha256(&layer.digest)],
        source_info: Some("image layer written by stevedore from the recipe's files".into()),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        copyright_text: NOASSERTION,
        external_refs: Vec::new(),
        primary_package_purpose: Some("ARCHIVE"),
    };
    (pkg, files)
}

fn image_package(inv: &Inventory) -> Package {
    let img = &inv.image;
    let purl = super::purl::oci(&img.name, &img.manifest_digest.to_string());
    Package {
        spdx_id: IMAGE_ID.into(),
        name: img.name.clone(),
        version_info: Some(img.manifest_digest.to_string()),
        package_file_name: None,
        supplier: NOASSERTION.into(),
        download_location: NOASSERTION.into(),
        files_analyzed: false,
        package_verification_code: None,
        checksums: vec![sha256(&img.manifest_digest)],
        source_info: Some(format!(
            "{}/{} image built by stevedore; config {}",
            img.os, img.architecture, img.config_digest
        )),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        copyright_text: NOASSERTION,
        external_refs: vec![purl_ref(&purl)],
        primary_package_purpose: Some("CONTAINER"),
    }
}

fn deb_package(p: &DebPackage) -> Package {
    let supplier = p
        .maintainer
        .as_ref()
        .map_or_else(|| NOASSERTION.to_string(), |m| actor(m));
    Package {
        spdx_id: deb_spdx_id(p),
        name: p.name.clone(),
        version_info: Some(p.version.clone()),
        package_file_name: None,
        supplier,
        download_location: p.url.clone().unwrap_or_else(|| NOASSERTION.into()),
        files_analyzed: false,
        package_verification_code: None,
        checksums: p.sha256.iter().map(sha256).collect(),
        source_info: Some(format!(
            "built package from: {} {}",
            p.source, p.source_version
        )),
        license_concluded: NOASSERTION,
        license_declared: p
            .license
            .as_ref()
            .map_or_else(|| NOASSERTION.into(), |l| l.expression.clone()),
        copyright_text: NOASSERTION,
        external_refs: vec![purl_ref(&p.purl)],
        primary_package_purpose: None,
    }
}

/// `Name <mail>` (a Maintainer field) as an SPDX actor, `Person: Name (mail)`.
fn actor(maintainer: &str) -> String {
    match maintainer.split_once('<') {
        Some((name, mail)) => format!(
            "Person: {} ({})",
            name.trim().replace(['(', ')'], ""),
            mail.trim_end().trim_end_matches('>')
        ),
        None => format!("Person: {}", maintainer.replace(['(', ')'], "")),
    }
}

/// A jar that `pom.properties` names. `index` keeps ids unique (a jar may sit in two places).
fn maven_package(index: usize, jar: &MavenJar) -> Package {
    let (i, c) = (index, &jar.coordinates);
    Package {
        spdx_id: spdx_ref(
            "maven",
            &format!("{}-{}-{}-{i}", c.group, c.artifact, c.version),
        ),
        name: c.artifact.clone(),
        version_info: Some(c.version.clone()),
        package_file_name: Some(jar.path.clone()),
        supplier: NOASSERTION.into(),
        download_location: NOASSERTION.into(),
        files_analyzed: false,
        package_verification_code: None,
        checksums: vec![sha256(&jar.sha256)],
        source_info: None,
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        copyright_text: NOASSERTION,
        external_refs: vec![purl_ref(&jar.purl)],
        primary_package_purpose: Some("LIBRARY"),
    }
}

/// The registry image the recipe is built `from`.
fn base_package(b: &BaseFacts) -> Package {
    Package {
        spdx_id: "SPDXRef-BaseImage".into(),
        name: b.repository.clone(),
        version_info: Some(b.digest.to_string()),
        package_file_name: None,
        supplier: NOASSERTION.into(),
        download_location: NOASSERTION.into(),
        files_analyzed: false,
        package_verification_code: None,
        checksums: vec![sha256(&b.digest)],
        source_info: Some(format!("recipe `from = \"{}\"`", b.reference)),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        copyright_text: NOASSERTION,
        external_refs: vec![purl_ref(&b.purl)],
        primary_package_purpose: Some("CONTAINER"),
    }
}
