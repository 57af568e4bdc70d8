//! The image config: what `docker inspect` shows under `Config`, plus platform, rootfs and
//! history.

use std::collections::BTreeMap;

use super::{ImageError, ImageSpec, rfc3339};
use crate::oci::{Empty, HealthConfig, History, ImageConfig, RootFs, RuntimeConfig};

/// Runtime defaults of a container. In a recipe, unset fields are inherited from the base.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// In recipe order; a child overrides a base's variable in place.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// Normalised `PORT/PROTO`.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub shell: Option<Vec<String>>,
    pub healthcheck: Option<Healthcheck>,
    pub onbuild: Option<Vec<String>>,
}

/// Docker's healthcheck; durations in nanoseconds as in the image config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval_ns: Option<u64>,
    pub timeout_ns: Option<u64>,
    pub start_period_ns: Option<u64>,
    pub start_interval_ns: Option<u64>,
    pub retries: Option<u32>,
}

impl ContainerConfig {
    /// Applies a child recipe's settings over this (the base's) config, as Docker does for
    /// `FROM`: scalars replace, env and labels merge by key, ports and volumes accumulate, and
    /// setting an entrypoint drops the inherited cmd.
    pub fn merge(&mut self, child: &ContainerConfig) {
        if child.entrypoint.is_some() {
            self.entrypoint = child.entrypoint.clone();
            self.cmd = None;
        }
        if child.cmd.is_some() {
            self.cmd = child.cmd.clone();
        }
        for (k, v) in &child.env {
            match self.env.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => self.env.push((k.clone(), v.clone())),
            }
        }
        macro_rules! replace {
            ($($f:ident),*) => {$( if child.$f.is_some() { self.$f = child.$f.clone(); } )*};
        }
        replace!(workdir, user, stop_signal, shell, healthcheck, onbuild);
        for p in &child.exposed_ports {
            if !self.exposed_ports.contains(p) {
                self.exposed_ports.push(p.clone());
            }
        }
        for v in &child.volumes {
            if !self.volumes.contains(v) {
                self.volumes.push(v.clone());
            }
        }
        self.labels
            .extend(child.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// The image config of a build: the recipe's runtime settings, platform, the diff_ids and
/// history of the base's layers then ours.
pub(super) fn image_config(spec: &ImageSpec) -> Result<ImageConfig, ImageError> {
    let created = rfc3339(spec.created);
    let base_layers = spec.base.iter().flat_map(|b| &b.layers);
    let diff_ids = base_layers
        .map(|l| l.diff_id.clone())
        .chain(spec.layers.iter().map(|l| l.record.diff_id.clone()))
        .collect();
    // A base image's history comes first, as it was written (every field the specs define).
    let history = spec
        .base
        .iter()
        .flat_map(|b| b.history.iter().cloned())
        .chain(spec.layers.iter().map(|l| History {
            created: Some(created.clone()),
            created_by: Some(l.created_by.clone()),
            ..History::default()
        }))
        .collect();
    Ok(ImageConfig {
        created: Some(created),
        author: None,
        architecture: spec.platform.architecture.clone(),
        os: spec.platform.os.clone(),
        variant: spec.platform.variant.clone(),
        config: runtime_config(spec.config)?,
        rootfs: RootFs {
            typ: "layers".into(),
            diff_ids,
        },
        history,
    })
}

/// The `config` object. Empty lists and maps are left out (`None`), as Docker writes them;
/// Healthcheck, Shell and OnBuild are Docker's own fields, which Docker honours.
fn runtime_config(c: &ContainerConfig) -> Result<RuntimeConfig, ImageError> {
    let set = |items: &[String]| -> Option<BTreeMap<String, Empty>> {
        (!items.is_empty()).then(|| items.iter().map(|p| (p.clone(), Empty {})).collect())
    };
    Ok(RuntimeConfig {
        user: c.user.clone(),
        exposed_ports: set(&c.exposed_ports),
        env: (!c.env.is_empty()).then(|| c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        volumes: set(&c.volumes),
        working_dir: c.workdir.clone(),
        labels: (!c.labels.is_empty()).then(|| c.labels.clone()),
        stop_signal: c.stop_signal.clone(),
        healthcheck: c.healthcheck.as_ref().map(health_config).transpose()?,
        shell: c.shell.clone(),
        on_build: c.onbuild.clone(),
    })
}

fn health_config(h: &Healthcheck) -> Result<HealthConfig, ImageError> {
    let nanos = |field: &'static str, v: Option<u64>| -> Result<Option<i64>, ImageError> {
        v.map(|nanos| i64::try_from(nanos).map_err(|_| ImageError::Duration { field, nanos }))
            .transpose()
    };
    Ok(HealthConfig {
        test: Some(h.test.clone()),
        interval: nanos("Interval", h.interval_ns)?,
        timeout: nanos("Timeout", h.timeout_ns)?,
        start_period: nanos("StartPeriod", h.start_period_ns)?,
        start_interval: nanos("StartInterval", h.start_interval_ns)?,
        retries: h.retries.map(i64::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_follows_docker_from_semantics() {
        let mut base = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())],
            exposed_ports: vec!["80/tcp".into()],
            ..Default::default()
        };
        let child = ContainerConfig {
            entrypoint: Some(vec!["/app".into()]),
            env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
            exposed_ports: vec!["80/tcp".into(), "443/tcp".into()],
            ..Default::default()
        };
        base.merge(&child);
        assert_eq!(base.cmd, None, "an entrypoint resets the inherited cmd");
        assert_eq!(
            base.env,
            vec![
                ("PATH".into(), "/bin".into()),
                ("A".into(), "2".into()),
                ("B".into(), "3".into())
            ]
        );
        assert_eq!(base.exposed_ports, ["80/tcp", "443/tcp"]);
    }
}
