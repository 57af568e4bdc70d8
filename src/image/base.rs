//! A base image made elsewhere (pulled from a registry): what an image built on top of it takes
//! from its manifest and config — layer descriptors, diff_ids, history and runtime config.
//!
//! Only the documents are read here; where the bytes come from (and whether they are ever
//! downloaded) is the caller's business.

use serde_json::Value;

use super::{
    ContainerConfig, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Healthcheck, ImageError, ImageFormat,
    OCI_LAYER_GZIP, OCI_MANIFEST, Platform,
};
use crate::digest::Digest;

/// A base image's manifest and config, parsed and cross-checked.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The manifest's digest: what the image is pinned to.
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<BaseLayer>,
    /// The config's history entries, verbatim (including `empty_layer` ones).
    pub history: Vec<Value>,
    /// The runtime config the image inherits (`docker build FROM` semantics).
    pub config: ContainerConfig,
    pub platform: Platform,
}

/// One layer of a base image, as its manifest and config describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseLayer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
}

impl BaseImage {
    /// Reads an image manifest (not an index) and its config blob. `manifest_digest` is the
    /// digest the caller verified the manifest bytes against.
    pub fn parse(
        manifest_digest: Digest,
        manifest: &[u8],
        config: &[u8],
    ) -> Result<BaseImage, ImageError> {
        let bad = |m: String| ImageError(format!("base image {manifest_digest}: {m}"));
        let m: Value = serde_json::from_slice(manifest)
            .map_err(|e| bad(format!("manifest is not JSON: {e}")))?;
        let media_type = m["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            return Err(bad(format!(
                "manifest media type {media_type} is not an image manifest"
            )));
        }
        let config_digest: Digest = m["config"]["digest"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| bad("manifest has no config digest".into()))?;
        if Digest::of(config) != config_digest {
            return Err(bad(format!("config bytes do not hash to {config_digest}")));
        }
        let c: Value =
            serde_json::from_slice(config).map_err(|e| bad(format!("config is not JSON: {e}")))?;
        let descriptors = m["layers"].as_array().cloned().unwrap_or_default();
        let diff_ids: Vec<Digest> = c["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if diff_ids.len() != descriptors.len() {
            return Err(bad(format!(
                "the manifest lists {} layers, the config {} diff_ids",
                descriptors.len(),
                diff_ids.len()
            )));
        }
        let layers = descriptors
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| {
                let digest = d["digest"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(format!("bad layer descriptor {d}")))?;
                let media_type = d["mediaType"].as_str().unwrap_or_default().to_string();
                if super::layer_compression(&media_type).is_none() {
                    return Err(bad(format!(
                        "layer {digest} has media type `{media_type}`, which stevedore cannot stack on"
                    )));
                }
                Ok(BaseLayer {
                    digest,
                    size: d["size"].as_u64().unwrap_or_default(),
                    media_type,
                    diff_id,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BaseImage {
            manifest_digest: manifest_digest.clone(),
            config_digest,
            layers,
            history: c["history"].as_array().cloned().unwrap_or_default(),
            config: ContainerConfig::from_image_config(&c["config"]),
            platform: Platform {
                os: c["os"].as_str().unwrap_or_default().to_string(),
                architecture: c["architecture"].as_str().unwrap_or_default().to_string(),
                variant: c["variant"].as_str().map(str::to_string),
            },
        })
    }
}

/// The media type a base layer gets in an image of `format`: the same bytes under the other
/// family's name for gzip (as `skopeo copy --format` does); zstd has no Docker v2.2 name.
pub(super) fn layer_type_for(format: ImageFormat, media_type: &str) -> Result<String, ImageError> {
    Ok(match format {
        ImageFormat::Oci if media_type == DOCKER_LAYER_GZIP => OCI_LAYER_GZIP.to_string(),
        ImageFormat::Docker if media_type == OCI_LAYER_GZIP => DOCKER_LAYER_GZIP.to_string(),
        ImageFormat::Docker if !media_type.starts_with("application/vnd.docker.") => {
            return Err(ImageError(format!(
                "a base layer has media type {media_type}, which Docker v2.2 images cannot carry; use format = \"oci\""
            )));
        }
        _ => media_type.to_string(),
    })
}

impl ContainerConfig {
    /// The runtime config of an image config's `config` object (Docker's field names).
    pub fn from_image_config(c: &Value) -> ContainerConfig {
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        };
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let keys = |v: &Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let ns = |v: &Value| v.as_u64().filter(|n| *n > 0);
        let h = &c["Healthcheck"];
        ContainerConfig {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"])
                .unwrap_or_default()
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.clone(), String::new()),
                })
                .collect(),
            workdir: text(&c["WorkingDir"]),
            user: text(&c["User"]),
            exposed_ports: keys(&c["ExposedPorts"]),
            volumes: keys(&c["Volumes"]),
            labels: c["Labels"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            stop_signal: text(&c["StopSignal"]),
            shell: strings(&c["Shell"]),
            healthcheck: strings(&h["Test"]).map(|test| Healthcheck {
                test,
                interval_ns: ns(&h["Interval"]),
                timeout_ns: ns(&h["Timeout"]),
                start_period_ns: ns(&h["StartPeriod"]),
                start_interval_ns: ns(&h["StartInterval"]),
                retries: h["Retries"].as_u64().and_then(|r| u32::try_from(r).ok()),
            }),
            onbuild: strings(&c["OnBuild"]).filter(|o| !o.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_docker_config_fields() {
        let c = ContainerConfig::from_image_config(&json!({
            "Env": ["PATH=/usr/bin:/bin", "JAVA_HOME=/opt/java"],
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": null,
            "User": "app",
            "WorkingDir": "",
            "ExposedPorts": {"8080/tcp": {}},
            "Volumes": {"/data": {}},
            "Labels": {"a": "b"},
            "StopSignal": "SIGQUIT"
        }));
        assert_eq!(c.env[1], ("JAVA_HOME".into(), "/opt/java".into()));
        assert_eq!(
            c.entrypoint.as_deref(),
            Some(&["/docker-entrypoint.sh".to_string()][..])
        );
        assert_eq!(c.cmd, None);
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.workdir, None, "an empty WorkingDir is unset");
        assert_eq!(c.exposed_ports, ["8080/tcp"]);
        assert_eq!(c.volumes, ["/data"]);
        assert_eq!(c.labels["a"], "b");
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn parse_checks_config_digest_and_layer_count() {
        let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let cd = Digest::of(config);
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": super::super::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": cd.to_string(), "size": 5}]
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let md = Digest::of(&bytes);
        let b = BaseImage::parse(md.clone(), &bytes, config).unwrap();
        assert_eq!(b.layers.len(), 1);
        assert_eq!(b.platform.architecture, "amd64");
        assert_eq!(
            layer_type_for(ImageFormat::Oci, &b.layers[0].media_type).unwrap(),
            OCI_LAYER_GZIP
        );
        assert!(
            BaseImage::parse(md, &bytes, b"{}").is_err(),
            "config digest is checked"
        );
    }
}
