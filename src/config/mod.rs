//! Configuration: the TOML schema, Reverb's environment variables and the CLI overlay.
//!
//! Precedence, lowest first: the embedded default (the repository's `config.toml`, compiled in),
//! a config file, Reverb's `REVERB_*` and Laravel's `REDIS_*` variables (process env, then an
//! optional Laravel `.env`), CLI flags. [`Config::validate`] refuses bad values with the name of
//! the key at fault; unknown keys are refused by serde while parsing.
//!
//! Submodules: `app` (the `[[apps]]` entries), `scaling` (the `[scaling]` table and the Redis
//! URL), `env` (`.env` parsing and which variables Herald reads).

mod app;
mod console;
mod env;
mod observability;
mod scaling;
mod tls;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use app::{AppConfig, ClientEventsFrom, RateLimiting};
pub use console::{ConsoleConfig, CONSOLE_VARS};
pub use env::{is_read_var, parse_env_file};
pub use observability::{LogFormat, LoggingConfig, MetricsConfig, OBSERVABILITY_VARS};
pub use scaling::{ScalingConfig, REDIS_VARS};
pub use tls::TlsConfig;
pub use webhooks::{WebhookBatching, WebhookEventType, WebhookFilter, WebhookRetry, WebhookTarget};

/// The commented sample config shipped at the repository root; also what runs when nothing is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config.toml");

/// The smallest `server.max_head_size`: hyper's HTTP/1 read buffer cannot be smaller.
pub const MIN_HEAD_SIZE: usize = 8192;

/// Everything the server needs to start, after every overlay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and process-wide settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// The apps this server hosts: at least one.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// Horizontal scaling on Redis (off by default: no Redis needed).
    #[serde(default)]
    pub scaling: ScalingConfig,
    /// The Prometheus metrics listener (off by default).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Log format.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// The live debug console (off unless the table says so; on in the embedded default).
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// The `[server]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Bind address (Reverb `REVERB_SERVER_HOST`).
    pub host: String,
    /// Bind port; 0 picks a free one (Reverb `REVERB_SERVER_PORT`).
    pub port: u16,
    /// Route prefix for both `/app/{key}` and `/apps/{id}` (Reverb `REVERB_SERVER_PATH`).
    pub path: String,
    /// Largest accepted HTTP API request body, in bytes (Reverb `REVERB_MAX_REQUEST_SIZE`).
    pub max_request_size: usize,
    /// Seconds to wait for sockets to drain on SIGTERM/SIGINT before exiting anyway.
    pub shutdown_timeout: u64,
    /// Frames one socket may have queued before it counts as a slow reader and is closed with 4100.
    pub max_queued_frames: usize,
    /// Milliseconds a busy socket's frames (over ~200 a second) may wait to leave together in
    /// one `writev`; 0 writes every frame on its own, as soon as it is sent.
    pub batch_window_ms: u64,
    /// Server-wide cap on open WebSocket connections (0: no cap); over it, close 4100.
    pub max_connections: usize,
    /// Seconds a new connection may stay silent before it is closed (fractions allowed).
    pub first_byte_timeout: f64,
    /// Seconds a client has to deliver a complete request head, WebSocket handshake or API
    /// request alike; also how long a kept-alive API connection may idle between requests.
    pub header_timeout: f64,
    /// Largest request head (request line and headers), in bytes: 431 over it. At least 8192.
    pub max_head_size: usize,
    /// Connections not yet upgraded to WebSocket (handshakes, API connections) allowed at once,
    /// server-wide (0: no cap); over it, new connections are closed at once.
    pub max_pending_connections: usize,
    /// The same cap per client IP address (0: no cap).
    pub max_pending_per_ip: usize,
    /// Bind with SO_REUSEPORT, so a new Herald can bind the same port while the old one
    /// drains (zero-downtime restart). Off: a second process fails with "address in use".
    pub reuse_port: bool,
    /// File the process id is written to at start and removed from at exit; `herald reload`
    /// reads it to send SIGHUP.
    pub pid_file: Option<PathBuf>,
    /// TLS on the main listener (`[server.tls]`); absent: plain TCP.
    pub tls: Option<TlsConfig>,
    /// Webhook events one target may have queued on this node; over it, new events for that
    /// target are dropped (counted and logged).
    pub max_queued_webhooks: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            path: String::new(),
            max_request_size: 10_000,
            shutdown_timeout: 10,
            max_queued_frames: 1024,
            batch_window_ms: 8,
            max_connections: 0,
            first_byte_timeout: 5.0,
            header_timeout: 10.0,
            max_head_size: 16 * 1024,
            max_pending_connections: 4096,
            max_pending_per_ip: 256,
            reuse_port: true,
            pid_file: None,
            tls: None,
            max_queued_webhooks: 10_000,
        }
    }
}

/// Why a config was refused; always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML did not parse or had unknown keys / wrong types.
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    /// A key had a value outside its range.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The offending key, dotted (`apps[0].activity_timeout`), or the environment variable.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// CLI values that override everything else.
#[derive(Debug, Default, Clone)]
pub struct CliOverrides {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--path`.
    pub path: Option<String>,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// The embedded default: the shipped `config.toml`.
    pub fn embedded() -> Self {
        Self::from_toml(EMBEDDED_DEFAULT).expect("the embedded config.toml is valid")
    }

    /// Parses a TOML document (unknown keys refused).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// A config with one app and defaults everywhere else, bound to 127.0.0.1:0 (tests, examples).
    pub fn single_app(id: &str, key: &str, secret: &str) -> Self {
        Self {
            server: ServerConfig {
                host: "127.0.0.1".into(),
                port: 0,
                ..ServerConfig::default()
            },
            apps: vec![AppConfig::new(id, key, secret)],
            scaling: ScalingConfig::default(),
            metrics: MetricsConfig::default(),
            logging: LoggingConfig::default(),
            console: ConsoleConfig::default(),
        }
    }

    /// Applies Reverb's variables from `vars` (process env merged over a `.env` file by the caller).
    /// `REVERB_APP_*` apply to the first app, creating it when the config has none;
    /// `REVERB_SCALING_*` and `REDIS_*` apply to `[scaling]`.
    pub fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        let get = |k: &str| env::env_value(vars, k);
        if let Some(v) = get("REVERB_SERVER_HOST") {
            self.server.host = v.into();
        }
        if let Some(v) = get("REVERB_SERVER_PORT") {
            self.server.port = parse_num("REVERB_SERVER_PORT", v)?;
        }
        if let Some(v) = vars.get("REVERB_SERVER_PATH") {
            self.server.path = v.trim().into();
        }
        if let Some(v) = get("REVERB_MAX_REQUEST_SIZE") {
            self.server.max_request_size = parse_num("REVERB_MAX_REQUEST_SIZE", v)?;
        }
        app::apply_env(&mut self.apps, vars)?;
        self.metrics.apply_env(vars)?;
        self.console.apply_env(vars)?;
        self.logging.apply_env(vars)?;
        self.scaling.apply_env(vars)
    }

    /// Applies CLI flags, the last overlay.
    pub fn apply_cli(&mut self, cli: &CliOverrides) {
        if let Some(h) = &cli.host {
            self.server.host = h.clone();
        }
        if let Some(p) = cli.port {
            self.server.port = p;
        }
        if let Some(p) = &cli.path {
            self.server.path = p.clone();
        }
        if let Some(p) = &cli.pid_file {
            self.server.pid_file = Some(p.clone());
        }
        if let Some(f) = cli.log_format {
            self.logging.format = f;
        }
    }

    /// Normalises and checks every value; the error names the key at fault.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let path = self.server.path.trim().trim_end_matches('/').to_string();
        self.server.path = if path.is_empty() || path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        if self.server.path.contains(['?', '#', ' ']) {
            return invalid("server.path", "must be a plain URL path prefix like /ws");
        }
        if self.server.host.trim().is_empty() {
            return invalid("server.host", "must not be empty");
        }
        if self.server.max_request_size == 0 {
            return invalid("server.max_request_size", "must be at least 1");
        }
        if self.server.max_queued_webhooks == 0 {
            return invalid("server.max_queued_webhooks", "must be at least 1");
        }
        if self.server.max_queued_frames == 0 {
            return invalid("server.max_queued_frames", "must be at least 1");
        }
        if self.server.batch_window_ms > 100 {
            return invalid("server.batch_window_ms", "must be at most 100");
        }
        for (key, secs) in [
            ("server.first_byte_timeout", self.server.first_byte_timeout),
            ("server.header_timeout", self.server.header_timeout),
        ] {
            if !(secs > 0.0 && secs <= 3600.0) {
                return invalid(key, "must be more than 0 and at most 3600 seconds");
            }
        }
        if self.server.max_head_size < MIN_HEAD_SIZE {
            return invalid("server.max_head_size", "must be at least 8192 bytes");
        }
        if let Some(tls) = &self.server.tls {
            tls.validate()?;
        }
        if self.apps.is_empty() {
            return invalid("apps", "at least one [[apps]] entry is required");
        }
        let (mut ids, mut keys) = (HashSet::new(), HashSet::new());
        for (i, app) in self.apps.iter().enumerate() {
            app.validate(i)?;
            if !ids.insert(app.id.clone()) {
                let reason = format!("duplicate app id '{}'", app.id);
                return invalid(&format!("apps[{i}].id"), &reason);
            }
            if !keys.insert(app.key.clone()) {
                let reason = format!("duplicate app key '{}'", app.key);
                return invalid(&format!("apps[{i}].key"), &reason);
            }
        }
        self.metrics.validate(&self.server.host, self.server.port)?;
        self.scaling.validate()
    }

    /// The effective config as TOML with every secret masked (`herald check-config`): app
    /// secrets and webhook header values keep their first two characters, a password in
    /// `scaling.url` none.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        for app in &mut masked.apps {
            app.secret = mask(&app.secret);
            for target in &mut app.webhooks {
                for value in target.headers.values_mut() {
                    *value = mask(value);
                }
            }
        }
        masked.scaling.url = self.scaling.masked_url();
        masked.console.admin_token = self.console.admin_token.as_deref().map(mask);
        toml::to_string_pretty(&masked).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn mask(secret: &str) -> String {
    let shown: String = secret.chars().take(2).collect();
    format!("{shown}***")
}

fn invalid<T>(key: &str, reason: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    })
}

/// `true`/`false`/`1`/`0`, any case (Reverb's boolean variables).
pub(super) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => invalid(key, &format!("'{value}' is not one of true, false, 1, 0")),
    }
}

pub(super) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        reason: format!("'{value}' is not a valid number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_with_one_app() {
        let mut c = Config::embedded();
        c.validate().unwrap();
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.apps[0].id, "app-id");
        assert_eq!(c.apps[0].key, "app-key");
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.apps[0], AppConfig::new("app-id", "app-key", "app-secret"));
        assert_eq!(c.scaling, ScalingConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = Config::from_toml("[server]\nprot = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
        let e = Config::from_toml("[[apps]]\nid='a'\nkey='b'\nsecret='c'\nping=3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ping"), "{e}");
        let e = Config::from_toml("[scaling]\nredis_url = 'redis://h'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("redis_url"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let mut c = Config::single_app("a", "b", "c");
        c.apps[0].activity_timeout = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("apps[0].activity_timeout"), "{e}");
        let e = Config::from_toml(
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\naccept_client_events_from='some'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("accept_client_events_from"), "{e}");
        let mut c = Config::single_app("a", "b", "c");
        c.apps.push(AppConfig::new("a2", "b", "c"));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("apps[1].key"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_cli_overrides_env() {
        let mut c = Config::embedded();
        let vars: HashMap<String, String> = [
            ("REVERB_SERVER_PORT", "9000"),
            ("REVERB_SERVER_PATH", "ws/"),
            ("REVERB_APP_KEY", "k2"),
            ("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", "none"),
            ("REVERB_APP_MAX_CONNECTIONS", "5"),
            ("REVERB_SCALING_ENABLED", "true"),
            ("REDIS_HOST", "redis.internal"),
            ("REVERB_APP_RATE_LIMITING_ENABLED", "TRUE"),
            ("REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS", "120"),
            ("REVERB_APP_RATE_LIMIT_DECAY_SECONDS", "30"),
            ("REVERB_APP_RATE_LIMIT_TERMINATE", "1"),
            ("REVERB_APP_WATCHLIST_EVENTS", "true"),
            ("REVERB_APP_SUBSCRIPTION_COUNT", "1"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        c.apply_env(&vars).unwrap();
        c.apply_cli(&CliOverrides {
            port: Some(9100),
            ..Default::default()
        });
        c.validate().unwrap();
        assert_eq!(c.server.port, 9100);
        assert_eq!(c.server.path, "/ws");
        assert_eq!(c.apps[0].key, "k2");
        assert_eq!(c.apps[0].max_connections, Some(5));
        assert_eq!(c.apps[0].accept_client_events_from, ClientEventsFrom::None);
        assert!(c.scaling.enabled);
        assert_eq!(c.scaling.url, "redis://redis.internal:6379/0");
        let rl = c.apps[0].rate_limiting;
        assert!(rl.enabled && rl.terminate_on_limit);
        assert_eq!((rl.max_attempts, rl.decay_seconds), (120, 30));
        assert!(c.apps[0].watchlist_events && c.apps[0].subscription_count);
    }

    #[test]
    fn pre_upgrade_budgets_and_rate_limits_are_validated() {
        let mut c = Config::single_app("a", "b", "c");
        c.server.header_timeout = 0.0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("server.header_timeout"), "{e}");
        let mut c = Config::single_app("a", "b", "c");
        c.server.max_head_size = 4096;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("server.max_head_size"), "{e}");
        let mut c = Config::single_app("a", "b", "c");
        c.apps[0].rate_limiting.enabled = true;
        c.apps[0].rate_limiting.decay_seconds = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("apps[0].rate_limiting.decay_seconds"), "{e}");
        let t = "[[apps]]\nid='a'\nkey='b'\nsecret='c'\n[apps.rate_limiting]\nenabled=true\n";
        let c = Config::from_toml(t).unwrap();
        assert!(c.apps[0].rate_limiting.enabled);
        assert_eq!(c.apps[0].rate_limiting.max_attempts, 60);
    }

    #[test]
    fn scaling_is_validated_with_the_rest() {
        let mut c = Config::single_app("a", "b", "c");
        c.scaling.enabled = true;
        c.scaling.url = "http://h".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`scaling.url`"), "{e}");
    }

    #[test]
    fn masked_output_hides_secrets() {
        let out = Config::embedded().to_masked_toml();
        assert!(!out.contains("app-secret"), "{out}");
        assert!(out.contains("ap***"), "{out}");
        let mut c = Config::embedded();
        c.scaling.url = "redis://user:hunter2@host:6379/0".into();
        let out = c.to_masked_toml();
        assert!(!out.contains("hunter2"), "{out}");
        assert!(
            out.contains("url = \"redis://user:***@host:6379/0\""),
            "{out}"
        );
        // Masking is for display only.
        assert_eq!(c.scaling.url, "redis://user:hunter2@host:6379/0");
    }
}
