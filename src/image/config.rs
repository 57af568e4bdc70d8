//! The image config: what `docker inspect` shows under `Config`, plus platform, rootfs and
//! history.

use std::collections::BTreeMap;

use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, Os, RootFsBuilder,
};
use serde_json::{Value, json};

use super::{ImageError, ImageSpec, oci_digest, rfc3339};

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

pub(super) fn config_json(spec: &ImageSpec) -> Result<Value, ImageError> {
    let e = |e: oci_spec::OciSpecError| ImageError(e.to_string());
    let c = spec.config;
    let mut runtime = ConfigBuilder::default();
    if let Some(u) = &c.user {
        runtime = runtime.user(u.clone());
    }
    if !c.exposed_ports.is_empty() {
        runtime = runtime.exposed_ports(c.exposed_ports.clone());
    }
    if !c.env.is_empty() {
        runtime = runtime.env(
            c.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(ep) = &c.entrypoint {
        runtime = runtime.entrypoint(ep.clone());
    }
    if let Some(cmd) = &c.cmd {
        runtime = runtime.cmd(cmd.clone());
    }
    if !c.volumes.is_empty() {
        runtime = runtime.volumes(c.volumes.clone());
    }
    if let Some(w) = &c.workdir {
        runtime = runtime.working_dir(w.clone());
    }
    if !c.labels.is_empty() {
        runtime = runtime.labels(
            c.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    if let Some(s) = &c.stop_signal {
        runtime = runtime.stop_signal(s.clone());
    }
    let created = rfc3339(spec.created);
    let history = spec
        .layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(l.created_by.clone())
                .build()
                .map_err(e)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A base image's layers come first: its diff_ids, then ours; its history is kept verbatim
    // (below) since it may hold entries oci-spec's type would reshape.
    let diff_ids = spec
        .base
        .iter()
        .flat_map(|b| b.layers.iter().map(|l| &l.diff_id))
        .chain(spec.layers.iter().map(|l| &l.record.diff_id))
        .map(|d| oci_digest(d).map(|d| d.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::from(spec.platform.architecture.as_str()))
        .os(Os::from(spec.platform.os.as_str()))
        .config(runtime.build().map_err(e)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(e)?,
        )
        .history(history);
    if let Some(v) = &spec.platform.variant {
        builder = builder.variant(v.clone());
    }
    let config = builder.build().map_err(e)?;
    let mut value = serde_json::to_value(&config).map_err(|e| ImageError(e.to_string()))?;
    if let Some(base) = spec.base {
        let ours = value["history"].as_array().cloned().unwrap_or_default();
        value["history"] = Value::Array(base.history.iter().cloned().chain(ours).collect());
    }

    // Docker-only fields that OCI leaves out but `docker inspect` and Docker honour.
    let obj = value["config"]
        .as_object_mut()
        .ok_or_else(|| ImageError("config object missing".into()))?;
    if let Some(h) = &c.healthcheck {
        let mut hc = serde_json::Map::new();
        hc.insert("Test".into(), json!(h.test));
        for (key, v) in [
            ("Interval", h.interval_ns),
            ("Timeout", h.timeout_ns),
            ("StartPeriod", h.start_period_ns),
            ("StartInterval", h.start_interval_ns),
        ] {
            if let Some(v) = v {
                hc.insert(key.into(), json!(v));
            }
        }
        if let Some(r) = h.retries {
            hc.insert("Retries".into(), json!(r));
        }
        obj.insert("Healthcheck".into(), Value::Object(hc));
    }
    if let Some(s) = &c.shell {
        obj.insert("Shell".into(), json!(s));
    }
    if let Some(o) = &c.onbuild {
        obj.insert("OnBuild".into(), json!(o));
    }
    Ok(value)
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
