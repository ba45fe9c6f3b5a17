//! Configuration: the TOML schema, Reverb's environment variables and the CLI overlay.
//!
//! Precedence, lowest first: the embedded default (the repository's `config.toml`, compiled in),
//! a config file, Reverb's `REVERB_*` variables (process env, then an optional Laravel `.env`),
//! CLI flags. [`Config::validate`] refuses bad values with the name of the key at fault; unknown
//! keys are refused by serde while parsing.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The commented sample config shipped at the repository root; also what runs when nothing is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config.toml");

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
}

/// The `[scaling]` table: several nodes sharing one Redis behave as one server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    /// Join the cluster (Reverb `REVERB_SCALING_ENABLED`).
    pub enabled: bool,
    /// `redis://`, `rediss://` (TLS) or `unix://` URL (Reverb `REDIS_URL`, or built from
    /// `REDIS_HOST`/`REDIS_PORT`/`REDIS_USERNAME`/`REDIS_PASSWORD`/`REDIS_DB`).
    pub url: String,
    /// Prepended to every Redis key and pub/sub channel, so clusters can share one Redis.
    pub prefix: String,
    /// The pub/sub channel name, after the prefix (Reverb `REVERB_SCALING_CHANNEL`).
    pub channel: String,
    /// Seconds between a node's heartbeats (fractions allowed).
    pub heartbeat_interval: f64,
    /// Seconds without a heartbeat after which a node counts as dead and its sockets are
    /// removed cluster-wide (fractions allowed).
    pub node_timeout: f64,
    /// Cross-node publishes held while Redis is unreachable; beyond it the oldest are dropped
    /// (counted and logged).
    pub outage_buffer_messages: usize,
    /// Seconds a held publish may wait for Redis before it is dropped (counted and logged).
    pub outage_buffer_age: u64,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "redis://127.0.0.1:6379/0".into(),
            prefix: "herald:".into(),
            channel: "reverb".into(),
            heartbeat_interval: 1.0,
            node_timeout: 5.0,
            outage_buffer_messages: 10_000,
            outage_buffer_age: 60,
        }
    }
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
    /// Server-wide cap on open WebSocket connections (0: no cap); over it, close 4100.
    pub max_connections: usize,
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
            max_connections: 0,
        }
    }
}

/// Who may send client events (Reverb's `accept_client_events_from`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientEventsFrom {
    /// Any subscriber of the (private or presence) channel.
    All,
    /// Subscribers of the channel only (Reverb's published default).
    Members,
    /// Client events are disabled: 4301.
    None,
}

impl std::str::FromStr for ClientEventsFrom {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "members" => Ok(Self::Members),
            "none" => Ok(Self::None),
            other => Err(ConfigError::Invalid {
                key: "accept_client_events_from".into(),
                reason: format!("'{other}' is not one of all, members, none"),
            }),
        }
    }
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app id used in `/apps/{id}/...` (Reverb `REVERB_APP_ID`).
    pub id: String,
    /// The public key clients connect with (`/app/{key}`, Reverb `REVERB_APP_KEY`).
    pub key: String,
    /// The secret that signs API requests and channel auth (Reverb `REVERB_APP_SECRET`).
    pub secret: String,
    /// Origin host globs allowed to connect; `*` allows all.
    #[serde(default = "default_origins")]
    pub allowed_origins: Vec<String>,
    /// Seconds of silence before the server pings a connection; as long again to answer, or 4201.
    #[serde(default = "d60")]
    pub ping_interval: u64,
    /// Seconds advertised to clients in `connection_established` (must be > 0).
    #[serde(default = "d30")]
    pub activity_timeout: u64,
    /// Open connections allowed for this app on this node (absent: unlimited); over it, 4004.
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// Largest WebSocket message accepted from a client, in bytes; over it, close 1009.
    #[serde(default = "d10000")]
    pub max_message_size: usize,
    /// Who may send client events: `all`, `members` or `none`.
    #[serde(default = "default_client_events")]
    pub accept_client_events_from: ClientEventsFrom,
    /// Distinct users allowed in one presence channel.
    #[serde(default = "d100")]
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes of JSON.
    #[serde(default = "d1024")]
    pub max_presence_user_bytes: usize,
    /// Largest event `data`, in bytes (HTTP triggers: 413 over it; client events: 4301).
    #[serde(default = "d102400")]
    pub max_event_bytes: usize,
    /// Channels one trigger may name.
    #[serde(default = "d100")]
    pub max_channels_per_trigger: usize,
    /// Events one batch may carry.
    #[serde(default = "d10")]
    pub max_batch_size: usize,
    /// Longest channel name.
    #[serde(default = "d200")]
    pub max_channel_name_length: usize,
    /// Longest event name.
    #[serde(default = "d200")]
    pub max_event_name_length: usize,
    /// Client events one connection may send per second; over it, `pusher:error` 4301.
    #[serde(default = "d10_u32")]
    pub client_events_per_second: u32,
    /// Seconds a cache channel keeps its last event.
    #[serde(default = "d1800")]
    pub cache_ttl: u64,
}

fn default_origins() -> Vec<String> {
    vec!["*".into()]
}
fn default_client_events() -> ClientEventsFrom {
    ClientEventsFrom::Members
}
fn d10() -> usize {
    10
}
fn d10_u32() -> u32 {
    10
}
fn d30() -> u64 {
    30
}
fn d60() -> u64 {
    60
}
fn d100() -> usize {
    100
}
fn d200() -> usize {
    200
}
fn d1024() -> usize {
    1024
}
fn d1800() -> u64 {
    1800
}
fn d10000() -> usize {
    10_000
}
fn d102400() -> usize {
    102_400
}

impl AppConfig {
    /// An app with every limit at its default; handy for tests and the env-only setup.
    pub fn new(id: &str, key: &str, secret: &str) -> Self {
        Self {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            allowed_origins: default_origins(),
            ping_interval: 60,
            activity_timeout: 30,
            max_connections: None,
            max_message_size: 10_000,
            accept_client_events_from: ClientEventsFrom::Members,
            max_presence_members: 100,
            max_presence_user_bytes: 1024,
            max_event_bytes: 102_400,
            max_channels_per_trigger: 100,
            max_batch_size: 10,
            max_channel_name_length: 200,
            max_event_name_length: 200,
            client_events_per_second: 10,
            cache_ttl: 1800,
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
        /// The offending key, dotted (`apps[0].activity_timeout`).
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
        }
    }

    /// Applies Reverb's variables from `vars` (process env merged over a `.env` file by the caller).
    /// `REVERB_APP_*` apply to the first app, creating it when the config has none.
    pub fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
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
        let app_keys = [
            "REVERB_APP_ID",
            "REVERB_APP_KEY",
            "REVERB_APP_SECRET",
            "REVERB_APP_PING_INTERVAL",
            "REVERB_APP_ACTIVITY_TIMEOUT",
            "REVERB_APP_MAX_CONNECTIONS",
            "REVERB_APP_MAX_MESSAGE_SIZE",
            "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM",
        ];
        if !app_keys.iter().any(|k| get(k).is_some()) {
            return Ok(());
        }
        if self.apps.is_empty() {
            self.apps.push(AppConfig::new("", "", ""));
        }
        let app = &mut self.apps[0];
        if let Some(v) = get("REVERB_APP_ID") {
            app.id = v.into();
        }
        if let Some(v) = get("REVERB_APP_KEY") {
            app.key = v.into();
        }
        if let Some(v) = get("REVERB_APP_SECRET") {
            app.secret = v.into();
        }
        if let Some(v) = get("REVERB_APP_PING_INTERVAL") {
            app.ping_interval = parse_num("REVERB_APP_PING_INTERVAL", v)?;
        }
        if let Some(v) = get("REVERB_APP_ACTIVITY_TIMEOUT") {
            app.activity_timeout = parse_num("REVERB_APP_ACTIVITY_TIMEOUT", v)?;
        }
        if let Some(v) = get("REVERB_APP_MAX_CONNECTIONS") {
            app.max_connections = match v.to_ascii_lowercase().as_str() {
                "null" => None,
                _ => Some(parse_num("REVERB_APP_MAX_CONNECTIONS", v)?),
            };
        }
        if let Some(v) = get("REVERB_APP_MAX_MESSAGE_SIZE") {
            app.max_message_size = parse_num("REVERB_APP_MAX_MESSAGE_SIZE", v)?;
        }
        if let Some(v) = get("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM") {
            app.accept_client_events_from = v.parse().map_err(|_| ConfigError::Invalid {
                key: "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM".into(),
                reason: format!("'{v}' is not one of all, members, none"),
            })?;
        }
        Ok(())
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
        if self.server.max_queued_frames == 0 {
            return invalid("server.max_queued_frames", "must be at least 1");
        }
        if self.apps.is_empty() {
            return invalid("apps", "at least one [[apps]] entry is required");
        }
        let (mut ids, mut keys) = (HashSet::new(), HashSet::new());
        for (i, app) in self.apps.iter().enumerate() {
            let k = |name: &str| format!("apps[{i}].{name}");
            for (name, value) in [("id", &app.id), ("key", &app.key), ("secret", &app.secret)] {
                if value.trim().is_empty() {
                    return invalid(&k(name), "must not be empty");
                }
            }
            if app.id.contains('/') || app.key.contains(['/', '?']) {
                return invalid(&k("id"), "id and key must not contain '/' or '?'");
            }
            if !ids.insert(app.id.clone()) {
                return invalid(&k("id"), &format!("duplicate app id '{}'", app.id));
            }
            if !keys.insert(app.key.clone()) {
                return invalid(&k("key"), &format!("duplicate app key '{}'", app.key));
            }
            let positive = [
                ("ping_interval", app.ping_interval as usize),
                ("activity_timeout", app.activity_timeout as usize),
                ("max_message_size", app.max_message_size),
                ("max_presence_members", app.max_presence_members),
                ("max_presence_user_bytes", app.max_presence_user_bytes),
                ("max_event_bytes", app.max_event_bytes),
                ("max_channels_per_trigger", app.max_channels_per_trigger),
                ("max_batch_size", app.max_batch_size),
                ("max_channel_name_length", app.max_channel_name_length),
                ("max_event_name_length", app.max_event_name_length),
                (
                    "client_events_per_second",
                    app.client_events_per_second as usize,
                ),
                ("cache_ttl", app.cache_ttl as usize),
            ];
            if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
                return invalid(&k(name), "must be greater than 0");
            }
            if app.allowed_origins.is_empty() {
                return invalid(
                    &k("allowed_origins"),
                    "must list at least one origin, or \"*\"",
                );
            }
        }
        Ok(())
    }

    /// The effective config as TOML with every secret masked (`herald check-config`).
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        for app in &mut masked.apps {
            app.secret = mask(&app.secret);
        }
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

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        reason: format!("'{value}' is not a valid number"),
    })
}

/// Parses a Laravel `.env` file: `KEY=value`, `export KEY=value`, quotes, `#` comments and
/// `${OTHER}` references to earlier keys. Malformed lines are skipped, as phpdotenv is lenient
/// about lines Herald does not read anyway.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_string();
        let raw = raw.trim();
        let value = if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.rsplit_once('"')) {
            inner.0.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.rsplit_once('\'')) {
            inner.0.to_string()
        } else {
            raw.split(" #").next().unwrap_or("").trim().to_string()
        };
        let value = expand_refs(&value, &out);
        out.insert(key, value);
    }
    out
}

fn expand_refs(value: &str, known: &HashMap<String, String>) -> String {
    let mut result = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        result.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + end];
                result.push_str(known.get(name).map(String::as_str).unwrap_or(""));
                rest = &rest[start + end + 1..];
            }
            None => {
                result.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    result.push_str(rest);
    result
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
        assert_eq!(c.apps[0], AppConfig::new("app-id", "app-key", "app-secret"));
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
    }

    #[test]
    fn laravel_env_file_parses() {
        let vars = parse_env_file(
            "# comment\nREVERB_APP_ID=123\nREVERB_APP_KEY=\"quoted key\"\nexport REVERB_HOST='h'\nVITE_KEY=\"${REVERB_APP_KEY}\"\nX=1 # trailing\n",
        );
        assert_eq!(vars["REVERB_APP_ID"], "123");
        assert_eq!(vars["REVERB_APP_KEY"], "quoted key");
        assert_eq!(vars["REVERB_HOST"], "h");
        assert_eq!(vars["VITE_KEY"], "quoted key");
        assert_eq!(vars["X"], "1");
    }

    #[test]
    fn scaling_durations_take_integers_and_fractions() {
        let c =
            Config::from_toml("[scaling]\nheartbeat_interval = 2\nnode_timeout = 0.5\n").unwrap();
        assert_eq!(c.scaling.heartbeat_interval, 2.0);
        assert_eq!(c.scaling.node_timeout, 0.5);
    }

    #[test]
    fn masked_output_hides_secrets() {
        let out = Config::embedded().to_masked_toml();
        assert!(!out.contains("app-secret"), "{out}");
        assert!(out.contains("ap***"), "{out}");
    }
}
