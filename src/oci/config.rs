//! The image config blob (OCI image-spec `config.md`, with Docker's extra runtime fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::null_as_default;
use super::{ParseError, Platform};
use crate::digest::Digest;

/// Largest config blob read: configs are small (a few KiB; long histories a few hundred), and
/// this keeps a hostile one from costing memory. Twice the manifest limit, since a config with
/// thousands of history entries is legitimate where such a manifest is not.
pub const MAX_CONFIG_BYTES: usize = 8 << 20;

/// An image config. Fields stevedore does not use are dropped when read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: RuntimeConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, deserialize_with = "null_as_default")]
    pub history: Vec<History>,
}

/// The runtime defaults (`config` object), in Docker's field names as OCI also uses them, with
/// the Docker-only `Healthcheck`, `Shell` and `OnBuild`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
}

/// The `{}` values of `ExposedPorts` and `Volumes` (any object is accepted when read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Docker's healthcheck; durations in nanoseconds (Go's signed `time.Duration`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub typ: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            typ: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry. Every field the specs define is kept, so a base image's history is
/// carried into a derived image as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

impl ImageConfig {
    /// Parses and validates a config blob: bounded size, JSON of the right shape, well-formed
    /// diff_ids, `rootfs.type` `layers`.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ParseError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ParseError::TooLarge {
                size: bytes.len(),
                limit: MAX_CONFIG_BYTES,
            });
        }
        let config: ImageConfig = serde_json::from_slice(bytes).map_err(ParseError::Json)?;
        if config.rootfs.typ != "layers" {
            return Err(ParseError::RootFsType(config.rootfs.typ));
        }
        Ok(config)
    }

    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }

    /// The `created_by` of each history entry that made a layer (`empty_layer` ones skipped),
    /// in layer order: what `inspect` shows beside each layer.
    pub fn layer_history(&self) -> impl Iterator<Item = &str> {
        self.history
            .iter()
            .filter(|h| h.empty_layer != Some(true))
            .map(|h| h.created_by.as_deref().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_docker_config() {
        let c = ImageConfig::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":null,
            "ExposedPorts":{"80/tcp":{}},"Labels":null,"Healthcheck":{"Test":["CMD","true"],"Interval":-1},
            "Hostname":"x"},"rootfs":{"type":"layers","diff_ids":[]},
            "history":[{"created_by":"a","empty_layer":true},{"created_by":"b"}],"container":"y"}"#,
        )
        .unwrap();
        assert_eq!(c.platform(), Platform::new("linux", "amd64", None));
        assert_eq!(c.config.env.as_deref(), Some(&["A=1".to_string()][..]));
        assert_eq!(c.config.cmd, None);
        assert!(
            c.config
                .exposed_ports
                .as_ref()
                .unwrap()
                .contains_key("80/tcp")
        );
        assert_eq!(c.config.healthcheck.as_ref().unwrap().interval, Some(-1));
        assert_eq!(c.layer_history().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn refuses_bad_configs() {
        let bad_diff = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#;
        assert!(matches!(
            ImageConfig::parse(bad_diff),
            Err(ParseError::Json(_))
        ));
        let bad_type = br#"{"rootfs":{"type":"other","diff_ids":[]}}"#;
        assert!(matches!(
            ImageConfig::parse(bad_type),
            Err(ParseError::RootFsType(_))
        ));
        let big = vec![b' '; MAX_CONFIG_BYTES + 1];
        assert!(matches!(
            ImageConfig::parse(&big),
            Err(ParseError::TooLarge { .. })
        ));
    }
}
