//! A base image made elsewhere (pulled from a registry): what an image built on top of it takes
//! from its manifest and config — layer descriptors, diff_ids, history and runtime config.
//!
//! Only the documents are read here; where the bytes come from (and whether they are ever
//! downloaded) is the caller's business.

use super::{ContainerConfig, Healthcheck, ImageError, ImageFormat, Platform};
use crate::digest::Digest;
use crate::oci::{History, ImageConfig, Manifest, MediaType, RuntimeConfig};

/// A base image's manifest and config, parsed and cross-checked.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The manifest's digest: what the image is pinned to.
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<BaseLayer>,
    /// The config's history entries, as written (including `empty_layer` ones).
    pub history: Vec<History>,
    /// The runtime config the image inherits (`docker build FROM` semantics).
    pub config: ContainerConfig,
    pub platform: Platform,
}

/// One layer of a base image, as its manifest and config describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseLayer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: MediaType,
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
        let unparsable = |document| {
            let digest = manifest_digest.clone();
            move |source| ImageError::BaseDocument {
                digest,
                document,
                source,
            }
        };
        let bad = |problem: String| ImageError::Base {
            digest: manifest_digest.clone(),
            problem,
        };
        let m = Manifest::parse(manifest).map_err(unparsable("manifest"))?;
        if Digest::of(config) != m.config.digest {
            return Err(bad(format!(
                "config bytes do not hash to {}",
                m.config.digest
            )));
        }
        let c = ImageConfig::parse(config).map_err(unparsable("config"))?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            return Err(bad(format!(
                "the manifest lists {} layers, the config {} diff_ids",
                m.layers.len(),
                c.rootfs.diff_ids.len()
            )));
        }
        let layers = m
            .layers
            .iter()
            .zip(&c.rootfs.diff_ids)
            .map(|(d, diff_id)| {
                if super::layer_compression(d.media_type.as_str()).is_none() {
                    return Err(bad(format!(
                        "layer {} has media type `{}`, which stevedore cannot stack on",
                        d.digest, d.media_type
                    )));
                }
                Ok(BaseLayer {
                    digest: d.digest.clone(),
                    size: d.size,
                    media_type: d.media_type.clone(),
                    diff_id: diff_id.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BaseImage {
            manifest_digest: manifest_digest.clone(),
            config_digest: m.config.digest,
            layers,
            platform: c.platform(),
            config: ContainerConfig::from_runtime_config(&c.config),
            history: c.history,
        })
    }
}

/// The media type a base layer gets in an image of `format`: the same bytes under the other
/// family's name (as `skopeo copy --format` does); zstd has no Docker v2.2 name.
pub(super) fn layer_type_for(
    format: ImageFormat,
    media_type: &MediaType,
) -> Result<MediaType, ImageError> {
    media_type
        .layer_in_family(format == ImageFormat::Docker)
        .ok_or_else(|| ImageError::NotInDocker(media_type.clone()))
}

impl ContainerConfig {
    /// The runtime config of an image config's `config` object (Docker's field names). Empty
    /// strings are unset; non-positive durations are left out, as Docker reads them.
    pub fn from_runtime_config(c: &RuntimeConfig) -> ContainerConfig {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let ns = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0);
        ContainerConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: c
                .env
                .iter()
                .flatten()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.clone(), String::new()),
                })
                .collect(),
            workdir: text(&c.working_dir),
            user: text(&c.user),
            exposed_ports: c
                .exposed_ports
                .iter()
                .flat_map(|m| m.keys().cloned())
                .collect(),
            volumes: c.volumes.iter().flat_map(|m| m.keys().cloned()).collect(),
            labels: c.labels.clone().unwrap_or_default(),
            stop_signal: text(&c.stop_signal),
            shell: c.shell.clone(),
            healthcheck: c.healthcheck.as_ref().and_then(|h| {
                Some(Healthcheck {
                    test: h.test.clone()?,
                    interval_ns: ns(h.interval),
                    timeout_ns: ns(h.timeout),
                    start_period_ns: ns(h.start_period),
                    start_interval_ns: ns(h.start_interval),
                    retries: h.retries.and_then(|r| u32::try_from(r).ok()),
                })
            }),
            onbuild: c.on_build.clone().filter(|o| !o.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::names::{DOCKER_LAYER_GZIP, OCI_CONFIG, OCI_MANIFEST};
    use serde_json::json;

    #[test]
    fn reads_docker_config_fields() {
        let c: RuntimeConfig = serde_json::from_value(json!({
            "Env": ["PATH=/usr/bin:/bin", "JAVA_HOME=/opt/java"],
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": null,
            "User": "app",
            "WorkingDir": "",
            "ExposedPorts": {"8080/tcp": {}},
            "Volumes": {"/data": {}},
            "Labels": {"a": "b"},
            "StopSignal": "SIGQUIT"
        }))
        .unwrap();
        let c = ContainerConfig::from_runtime_config(&c);
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
            "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": cd.to_string(), "size": 5}]
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let md = Digest::of(&bytes);
        let b = BaseImage::parse(md.clone(), &bytes, config).unwrap();
        assert_eq!(b.layers.len(), 1);
        assert_eq!(b.platform.architecture, "amd64");
        assert_eq!(
            layer_type_for(ImageFormat::Oci, &b.layers[0].media_type).unwrap(),
            MediaType::OCI_LAYER_GZIP
        );
        assert!(
            BaseImage::parse(md.clone(), &bytes, b"{}").is_err(),
            "config digest is checked"
        );
        let two = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
            "layers": []
        }))
        .unwrap();
        let err = BaseImage::parse(md, &two, config).unwrap_err().to_string();
        assert!(err.contains("0 layers, the config 1 diff_ids"), "{err}");
    }
}
