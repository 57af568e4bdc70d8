//! CycloneDX 1.6 JSON (<https://cyclonedx.org/docs/1.6/json/>): the image as the BOM's subject
//! (`metadata.component`, a container), the distribution, each Debian package and Maven jar as
//! a library, the files of file and WAR layers as files, the base image as a container; the
//! packages' resolved Depends in `dependencies`.

use serde::Serialize;

use super::inventory::{DebPackage, ImageFacts, Inventory};
use crate::digest::Digest;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Component,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize, Default)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<LicenseChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(rename = "externalReferences", skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct LicenseChoice {
    expression: String,
}

#[derive(Serialize)]
struct ExternalReference {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
}

fn sha256(d: &Digest) -> Hash {
    Hash {
        alg: "SHA-256",
        content: d.hex(),
    }
}

fn prop(name: &'static str, value: impl Into<String>) -> Property {
    Property {
        name,
        value: value.into(),
    }
}

/// `urn:uuid:` of a version-5-shaped UUID taken from the manifest digest: the same image always
/// has the same serial number, another image another one.
fn serial_number(manifest: &Digest) -> String {
    let mut b: [u8; 16] = Digest::of(format!("stevedore cyclonedx {manifest}").as_bytes())
        .as_bytes()[..16]
        .try_into()
        .expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

const IMAGE_REF: &str = "image";

pub fn write(inv: &Inventory) -> Vec<u8> {
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    let mut image_deps = Vec::new();
    if let Some(d) = &inv.distro {
        components.push(Component {
            kind: "operating-system",
            bom_ref: Some(format!(
                "os:{}",
                d.qualifier().unwrap_or_else(|| d.id.clone())
            )),
            name: d.id.clone(),
            version: d.version_id.clone(),
            description: d.pretty_name.clone(),
            ..Default::default()
        });
    }
    if let Some(b) = &inv.base {
        components.push(Component {
            kind: "container",
            bom_ref: Some(b.purl.clone()),
            name: b.repository.clone(),
            version: Some(b.digest.to_string()),
            hashes: vec![sha256(&b.digest)],
            purl: Some(b.purl.clone()),
            properties: vec![prop("stevedore:from", b.reference.clone())],
            ..Default::default()
        });
        image_deps.push(b.purl.clone());
    }
    for p in &inv.packages {
        components.push(deb_component(p));
        dependencies.push(Dependency {
            reference: p.purl.clone(),
            depends_on: p
                .depends_on
                .iter()
                .map(|&d| inv.packages[d].purl.clone())
                .collect(),
        });
        image_deps.push(p.purl.clone());
    }
    for jar in &inv.jars {
        let c = &jar.coordinates;
        let bom_ref = format!("{}#{}", jar.purl, jar.path);
        components.push(Component {
            kind: "library",
            bom_ref: Some(bom_ref.clone()),
            group: Some(c.group.clone()),
            name: c.artifact.clone(),
            version: Some(c.version.clone()),
            hashes: vec![sha256(&jar.sha256)],
            purl: Some(jar.purl.clone()),
            properties: vec![prop("stevedore:path", jar.path.clone())],
            ..Default::default()
        });
        image_deps.push(bom_ref);
    }
    for f in inv.file_layers.iter().flat_map(|l| &l.files) {
        components.push(Component {
            kind: "file",
            bom_ref: Some(format!("file:{}:{}", f.layer, f.path)),
            name: f.path.clone(),
            hashes: vec![
                Hash {
                    alg: "SHA-1",
                    content: f.sha1.clone(),
                },
                sha256(&f.sha256),
            ],
            properties: vec![prop("stevedore:layer", f.layer.clone())],
            ..Default::default()
        });
    }
    dependencies.insert(
        0,
        Dependency {
            reference: IMAGE_REF.into(),
            depends_on: image_deps,
        },
    );
    let img = &inv.image;
    let bom = Bom {
        schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: serial_number(&img.manifest_digest),
        version: 1,
        metadata: metadata(img),
        components,
        dependencies,
    };
    let mut out = serde_json::to_vec_pretty(&bom).expect("CycloneDX documents serialize");
    out.push(b'\n');
    out
}

/// A Debian package: its purl is its bom-ref; source and layer as properties.
fn deb_component(p: &DebPackage) -> Component {
    let mut properties = vec![
        prop("stevedore:deb:architecture", p.architecture.clone()),
        prop("stevedore:deb:source", p.source.clone()),
        prop("stevedore:deb:source-version", p.source_version.clone()),
    ];
    if let Some(l) = &p.layer {
        properties.push(prop("stevedore:layer", l.clone()));
    }
    Component {
        kind: "library",
        bom_ref: Some(p.purl.clone()),
        name: p.name.clone(),
        version: Some(p.version.clone()),
        hashes: p.sha256.iter().map(sha256).collect(),
        licenses: p
            .license
            .iter()
            .map(|l| LicenseChoice {
                expression: l.expression.clone(),
            })
            .collect(),
        purl: Some(p.purl.clone()),
        external_references: p
            .url
            .iter()
            .map(|u| ExternalReference {
                kind: "distribution",
                url: u.clone(),
            })
            .collect(),
        properties,
        ..Default::default()
    }
}

/// The image as the BOM's subject, and the tool.
fn metadata(img: &ImageFacts) -> Metadata {
    Metadata {
        timestamp: crate::image::rfc3339(img.created),
        tools: Tools {
            components: vec![Component {
                kind: "application",
                name: "stevedore".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
                ..Default::default()
            }],
        },
        component: Component {
            kind: "container",
            bom_ref: Some(IMAGE_REF.into()),
            name: img.name.clone(),
            version: Some(img.manifest_digest.to_string()),
            hashes: vec![sha256(&img.manifest_digest)],
            purl: Some(super::purl::oci(
                &img.name,
                &img.manifest_digest.to_string(),
            )),
            properties: vec![
                prop("stevedore:config-digest", img.config_digest.to_string()),
                prop(
                    "stevedore:platform",
                    format!("{}/{}", img.os, img.architecture),
                ),
            ],
            ..Default::default()
        },
    }
}
