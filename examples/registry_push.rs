//! Pushes an OCI image layout with stevedore's registry client; used by `bench/registry-push.sh`
//! to compare with `skopeo copy`.
//!
//! usage: registry_push LAYOUT_DIR REGISTRY/REPO:TAG [--creds USER:PASS] [--ca-file PEM] [--insecure]
//!        [--jobs N]

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use stevedore::digest::Digest;
use stevedore::oci::names as media_types;
use stevedore::registry::{
    BlobRef, BlockingRegistry, HostCredential, ImageToPush, RawManifest, Reference, RegistryOptions,
};

fn read_manifest(layout: &Path, digest: &str, media_type: &str) -> anyhow::Result<RawManifest> {
    let d: Digest = digest.parse()?;
    let bytes = std::fs::read(layout.join("blobs/sha256").join(d.hex()))
        .with_context(|| format!("manifest {d}"))?;
    Ok(RawManifest {
        bytes,
        media_type: media_type.to_owned(),
    })
}

fn blobs_of(layout: &Path, m: &RawManifest, out: &mut Vec<BlobRef>) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
    let descs = v["config"]
        .as_object()
        .into_iter()
        .map(|o| serde_json::Value::Object(o.clone()))
        .chain(v["layers"].as_array().cloned().unwrap_or_default());
    for d in descs {
        let digest: Digest = d["digest"].as_str().context("descriptor digest")?.parse()?;
        out.push(BlobRef {
            path: layout.join("blobs/sha256").join(digest.hex()),
            digest,
            size: d["size"].as_u64().context("descriptor size")?,
            media_type: d["mediaType"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        bail!(
            "usage: registry_push LAYOUT_DIR REGISTRY/REPO:TAG [--creds U:P] [--ca-file PEM] [--insecure] [--jobs N]"
        );
    }
    let layout = Path::new(&args[0]);
    let target: Reference = args[1].parse()?;
    let mut opts = RegistryOptions::default();
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--creds" => opts.host_credentials.push(HostCredential::from_user_pass(
                &target.registry,
                it.next().context("--creds")?,
            )?),
            "--ca-file" => opts.ca_file = Some(it.next().context("--ca-file")?.into()),
            "--insecure" => opts.insecure = true,
            "--jobs" => opts.max_concurrent = it.next().context("--jobs")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).context("index.json")?)?;
    let top = &index["manifests"][0];
    let top_type = top["mediaType"]
        .as_str()
        .unwrap_or(media_types::OCI_MANIFEST);
    let manifest = read_manifest(layout, top["digest"].as_str().context("digest")?, top_type)?;
    let mut image = ImageToPush::new(manifest.clone(), vec![]);
    if stevedore::oci::MediaType::from(top_type).is_index() {
        let v: serde_json::Value = serde_json::from_slice(&manifest.bytes)?;
        for c in v["manifests"].as_array().cloned().unwrap_or_default() {
            let child = read_manifest(
                layout,
                c["digest"].as_str().context("digest")?,
                c["mediaType"].as_str().unwrap_or(media_types::OCI_MANIFEST),
            )?;
            blobs_of(layout, &child, &mut image.blobs)?;
            image.children.push(child);
        }
    } else {
        blobs_of(layout, &manifest, &mut image.blobs)?;
    }
    image.blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    image.blobs.dedup_by(|a, b| a.digest == b.digest);

    let t0 = Instant::now();
    let reg = BlockingRegistry::new(opts)?;
    let r = reg.push_image(&target, &image)?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "pushed {} blobs ({} uploaded, {} skipped, {} mounted), {:.1} MB in {secs:.2}s",
        image.blobs.len(),
        r.blobs_uploaded,
        r.blobs_skipped,
        r.blobs_mounted,
        r.bytes_uploaded as f64 / 1e6
    );
    println!("{}", r.manifest_digest);
    Ok(())
}
