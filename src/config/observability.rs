//! The `[metrics]` and `[logging]` tables: the Prometheus listener (off by default, loopback
//! when on) and the log format, with their `HERALD_METRICS_*` / `HERALD_LOG_FORMAT` variables.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::env::env_value;
use super::{invalid, parse_bool, parse_num, ConfigError};

/// The environment variables of these tables.
pub const OBSERVABILITY_VARS: [&str; 4] = [
    "HERALD_METRICS_ENABLED",
    "HERALD_METRICS_HOST",
    "HERALD_METRICS_PORT",
    "HERALD_LOG_FORMAT",
];

/// The `[metrics]` table: `GET /metrics` (and `/ready`, `/up`) on a listener of its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve metrics (env `HERALD_METRICS_ENABLED`).
    pub enabled: bool,
    /// Address of the metrics listener (env `HERALD_METRICS_HOST`); loopback by default.
    pub host: String,
    /// Port of the metrics listener; 0 picks a free one (env `HERALD_METRICS_PORT`).
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 9601,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("'{other}' is not one of text, json")),
        }
    }
}

/// The `[logging]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `text` or `json` (env `HERALD_LOG_FORMAT`, CLI `--log-format`).
    pub format: LogFormat,
}

impl MetricsConfig {
    /// Applies `HERALD_METRICS_*`.
    pub(super) fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        if let Some(v) = env_value(vars, "HERALD_METRICS_ENABLED") {
            self.enabled = parse_bool("HERALD_METRICS_ENABLED", v)?;
        }
        if let Some(v) = env_value(vars, "HERALD_METRICS_HOST") {
            self.host = v.into();
        }
        if let Some(v) = env_value(vars, "HERALD_METRICS_PORT") {
            self.port = parse_num("HERALD_METRICS_PORT", v)?;
        }
        Ok(())
    }

    /// Checks the listener address when enabled.
    pub(super) fn validate(&self, server_host: &str, server_port: u16) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.host.trim().is_empty() {
            return invalid("metrics.host", "must not be empty");
        }
        if self.port != 0 && self.port == server_port && self.host == server_host {
            return invalid(
                "metrics.port",
                "must differ from server.port: metrics are never served on the public port",
            );
        }
        Ok(())
    }
}

impl LoggingConfig {
    /// Applies `HERALD_LOG_FORMAT`.
    pub(super) fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        if let Some(v) = env_value(vars, "HERALD_LOG_FORMAT") {
            self.format = v.parse().map_err(|reason| ConfigError::Invalid {
                key: "HERALD_LOG_FORMAT".into(),
                reason,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_env_and_validation() {
        let c = Config::embedded();
        assert_eq!(c.metrics, MetricsConfig::default());
        assert!(!c.metrics.enabled);
        assert_eq!(c.logging.format, LogFormat::Text);
        let mut c = Config::single_app("a", "b", "c");
        c.apply_env(&vars(&[
            ("HERALD_METRICS_ENABLED", "true"),
            ("HERALD_METRICS_PORT", "9700"),
            ("HERALD_METRICS_HOST", "127.0.0.2"),
            ("HERALD_LOG_FORMAT", "JSON"),
        ]))
        .unwrap();
        c.validate().unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(
            (c.metrics.host.as_str(), c.metrics.port),
            ("127.0.0.2", 9700)
        );
        assert_eq!(c.logging.format, LogFormat::Json);
        let mut c = Config::single_app("a", "b", "c");
        let e = c
            .apply_env(&vars(&[("HERALD_METRICS_PORT", "x")]))
            .unwrap_err();
        assert!(e.to_string().contains("HERALD_METRICS_PORT"), "{e}");
        let e = c
            .apply_env(&vars(&[("HERALD_LOG_FORMAT", "xml")]))
            .unwrap_err();
        assert!(e.to_string().contains("HERALD_LOG_FORMAT"), "{e}");
        let e = Config::from_toml("[logging]\nformat = 'xml'\n").unwrap_err();
        assert!(e.to_string().contains("format"), "{e}");
        let mut c = Config::single_app("a", "b", "c");
        c.server.port = 9601;
        c.metrics.enabled = true;
        c.metrics.host = c.server.host.clone();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("metrics.port"), "{e}");
    }
}
