//! The reports `plan` and `inspect` print on stdout.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::human;
use crate::cache::Cache;
use crate::oci::Platform;
use crate::output::InspectedImage;
use crate::plan::Plan;

/// `plan`: the image, its base, and each layer with its status in `cache`, its location, its
/// key and its sources; then the setup coverage (every command with `scripts`).
/// [`plan_text`] of each platform's plan; with several, each under a `== PLATFORM ==` line.
pub fn plans_text(plans: &[(Platform, Plan)], cache: &Cache, scripts: bool) -> String {
    if let [(_, one)] = plans {
        return plan_text(one, cache, scripts);
    }
    let mut out = String::new();
    for (platform, plan) in plans {
        let _ = writeln!(out, "== {platform} ==");
        out.push_str(&plan_text(plan, cache, scripts));
        out.push('\n');
    }
    out
}

/// [`plan_json`]: one platform's document as it always was; with several, the first
/// platform's document with every platform's (the first included) under `platforms`.
pub fn plans_json(plans: &[(Platform, Plan)], cache: &Cache) -> Value {
    let docs: Vec<Value> = plans.iter().map(|(_, p)| plan_json(p, cache)).collect();
    let mut first = docs[0].clone();
    if docs.len() > 1 {
        first["platforms"] = Value::Array(docs);
    }
    first
}

pub fn plan_text(plan: &Plan, cache: &Cache, scripts: bool) -> String {
    let mut out = String::new();
    let img = &plan.image;
    let _ = writeln!(
        out,
        "image {} tags [{}]  platform {}  format {:?}  compression {}",
        img.name.as_deref().unwrap_or("(unnamed)"),
        img.tags.join(", "),
        img.platform,
        img.format,
        img.compression
    );
    if let Some(base) = &plan.base {
        let _ = writeln!(
            out,
            "base  registry image {base} (its layers come first, never rebuilt)"
        );
    }
    for (i, layer) in plan.layers.iter().enumerate() {
        let status = match cache.layer_record(&layer.key) {
            Some(r) => format!("cached {} ({})", r.digest.short(), human(r.size)),
            None => "would build".to_string(),
        };
        let _ = writeln!(
            out,
            "layer {}/{} {:<16} {}  [{}; {} entries; key {}]",
            i + 1,
            plan.layers.len(),
            layer.name,
            status,
            layer.location,
            layer
                .contents
                .as_ref()
                .map_or_else(|| "cached".to_string(), |c| c.entries.len().to_string()),
            layer.key.short()
        );
        for s in &layer.sources {
            let _ = writeln!(out, "    {s}");
        }
    }
    if let Some(coverage) = plan.coverage() {
        if scripts {
            let _ = writeln!(out);
            for line in coverage.report().lines() {
                let _ = writeln!(out, "{line}");
            }
        } else {
            let _ = writeln!(out, "setup: {}", coverage.summary());
        }
    }
    out
}

/// `inspect`: source, manifest, config, the runtime config's fields, and one line per layer.
pub fn inspect_text(img: &InspectedImage) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "source:   {}", img.source);
    if let Some(index) = &img.index {
        let _ = writeln!(out, "index:    {} ({})", index.digest, index.media_type);
        for (platform, digest) in &index.manifests {
            let p = platform
                .as_ref()
                .map_or("-".to_string(), ToString::to_string);
            let shown = if img.manifest_digest.as_ref() == Some(digest) {
                "  (shown below)"
            } else {
                ""
            };
            let _ = writeln!(out, "  {p:<16} {digest}{shown}");
        }
    }
    if let (Some(d), Some(m)) = (&img.manifest_digest, &img.manifest_doc) {
        let _ = writeln!(out, "manifest: {d} ({})", m.effective_media_type());
    }
    let c = &img.image_config;
    let _ = writeln!(out, "config:   {}", img.config_digest);
    let _ = writeln!(out, "platform: {}", c.platform());
    let _ = writeln!(out, "created:  {}", c.created.as_deref().unwrap_or("-"));
    // The runtime config's fields under their JSON names, as `docker inspect` shows them.
    if let Ok(serde_json::Value::Object(cfg)) = serde_json::to_value(&c.config) {
        let _ = writeln!(out, "Config:");
        for (k, v) in cfg {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    // One history line per layer (entries that made no layer are skipped, so they line up).
    let history: Vec<&str> = c.layer_history().collect();
    let _ = writeln!(out, "layers:");
    for (i, l) in img.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>2}  {}  {:>9}  diff_id {}  {}",
            i + 1,
            l.id,
            human(l.size),
            l.diff_id.as_ref().map_or("?".into(), |d| d.short()),
            history.get(i).copied().unwrap_or("")
        );
    }
    out
}

/// `inspect --format json` (schemas/inspect.schema.json): the manifest and config exactly as
/// stored, and what the text report shows (platform, created, layers with their history).
/// `--json`, its older spelling, gives the same document.
pub fn inspect_json(img: &InspectedImage) -> Value {
    let c = &img.image_config;
    let history: Vec<&str> = c.layer_history().collect();
    let layers: Vec<Value> = img
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "id": l.id,
                "size": l.size,
                "mediaType": l.media_type,
                "diffId": l.diff_id.as_ref().map(ToString::to_string),
                "createdBy": history.get(i).copied(),
            })
        })
        .collect();
    json!({
        "source": img.source,
        "tag": img.tag,
        "manifestDigest": img.manifest_digest.as_ref().map(ToString::to_string),
        "manifest": img.manifest,
        "configDigest": img.config_digest.to_string(),
        "config": img.config,
        "platform": c.platform().to_string(),
        "created": c.created,
        "layers": layers,
        "index": img.index.as_ref().map(|i| json!({
            "digest": i.digest.to_string(),
            "mediaType": i.media_type,
            "manifests": i.manifests.iter().map(|(p, d)| json!({
                "platform": p.as_ref().map(ToString::to_string),
                "digest": d.to_string(),
            })).collect::<Vec<_>>(),
        })),
    })
}

/// `plan --format json` (schemas/plan.schema.json): the image, its base, and per layer its key,
/// whether `cache` holds it (and as which blob), its sources, and its packages with why each
/// was chosen.
pub fn plan_json(plan: &Plan, cache: &Cache) -> Value {
    let img = &plan.image;
    let layers: Vec<Value> = plan
        .layers
        .iter()
        .map(|layer| {
            let record = cache.layer_record(&layer.key);
            let packages: Vec<Value> = plan
                .lock
                .iter()
                .flat_map(|lock| &lock.layers)
                .filter(|l| l.name == layer.name)
                .flat_map(|l| &l.packages)
                .map(|p| {
                    json!({
                        "name": p.name,
                        "version": p.version,
                        "architecture": p.architecture,
                        "size": p.size,
                        "sha256": p.sha256.to_string(),
                        "why": p.why,
                    })
                })
                .collect();
            json!({
                "name": layer.name,
                "location": layer.location.to_string(),
                "key": layer.key.to_string(),
                "cached": record.is_some(),
                "digest": record.as_ref().map(|r| r.digest.to_string()),
                "size": record.as_ref().map(|r| r.size),
                "entries": layer.contents.as_ref().map(|c| c.entries.len()),
                "sources": layer.sources,
                "packages": packages,
            })
        })
        .collect();
    let setup = plan.coverage().map(|c| {
        let s = c.summary();
        json!({
            "packages": s.packages,
            "commands": s.commands,
            "reproduced": s.reproduced,
            "ignored": s.ignored,
            "notCovered": s.not_covered,
        })
    });
    json!({
        "image": {
            "name": img.name,
            "tags": img.tags,
            "platform": img.platform.to_string(),
            "format": format!("{:?}", img.format).to_lowercase(),
            "compression": img.compression.to_string(),
        },
        "base": plan.base.as_ref().map(ToString::to_string),
        "layers": layers,
        "setup": setup,
    })
}
