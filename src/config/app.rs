//! One `[[apps]]` entry: its keys and defaults, the `REVERB_APP_*` overlay onto the first app, and
//! the checks on one app's values (the cross-app checks live in [`super::Config::validate`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::env::env_value;
use super::webhooks::{self, WebhookBatching, WebhookRetry, WebhookTarget};
use super::{invalid, parse_bool, parse_num, ConfigError};

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
    /// Channels one connection may be subscribed to at once; over it, the subscription is
    /// refused with `pusher:subscription_error` and `pusher:error` 4301.
    #[serde(default = "d1000")]
    pub max_channels_per_connection: usize,
    /// Reverb's `rate_limiting`: a cap on every message one connection sends.
    #[serde(default)]
    pub rate_limiting: RateLimiting,
    /// Pusher's "Watchlist events": a signed-in user's `watchlist` receives
    /// `pusher_internal:watchlist_events` (online/offline of the watched user ids).
    #[serde(default)]
    pub watchlist_events: bool,
    /// Pusher's "subscription counting": subscribers of non-presence channels receive
    /// `pusher_internal:subscription_count` as the channel's count changes.
    #[serde(default)]
    pub subscription_count: bool,
    /// Webhook targets (none: webhooks cost nothing).
    #[serde(default)]
    pub webhooks: Vec<WebhookTarget>,
    /// Several webhook events per request.
    #[serde(default)]
    pub webhook_batching: WebhookBatching,
    /// Milliseconds channel_vacated and member_removed wait; a re-occupation or rejoin within
    /// it cancels both them and the matching channel_occupied / member_added.
    #[serde(default = "webhooks::d3000")]
    pub webhook_vacated_delay_ms: u64,
    /// Retries of failed webhook requests.
    #[serde(default)]
    pub webhook_retry: WebhookRetry,
}

/// Reverb 1.9's per-connection message rate limit (`[apps.rate_limiting]`): at most
/// `max_attempts` messages of any kind per `decay_seconds`. Over it a message is dropped and
/// answered with `pusher:error` 4301 "Rate limit exceeded"; with `terminate_on_limit` the
/// connection is closed with 4301 instead.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimiting {
    /// Whether the limit applies (Reverb: off by default).
    pub enabled: bool,
    /// Messages allowed per window.
    pub max_attempts: u32,
    /// The window, in seconds.
    pub decay_seconds: u64,
    /// Close the connection (4301) instead of dropping the message.
    pub terminate_on_limit: bool,
}

impl Default for RateLimiting {
    fn default() -> Self {
        Self {
            enabled: false,
            max_attempts: 60,
            decay_seconds: 60,
            terminate_on_limit: false,
        }
    }
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
fn d1000() -> usize {
    1000
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
            max_channels_per_connection: 1000,
            rate_limiting: RateLimiting::default(),
            watchlist_events: false,
            subscription_count: false,
            webhooks: Vec::new(),
            webhook_batching: WebhookBatching::default(),
            webhook_vacated_delay_ms: webhooks::d3000(),
            webhook_retry: WebhookRetry::default(),
        }
    }

    /// Checks this app's own values; `i` is its index, for the key in the error.
    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let k = |name: &str| format!("apps[{i}].{name}");
        for (name, value) in [
            ("id", &self.id),
            ("key", &self.key),
            ("secret", &self.secret),
        ] {
            if value.trim().is_empty() {
                return invalid(&k(name), "must not be empty");
            }
        }
        if self.id.contains('/') || self.key.contains(['/', '?']) {
            return invalid(&k("id"), "id and key must not contain '/' or '?'");
        }
        // The cluster's messages and Redis keys separate fields with newlines.
        if self.id.contains(['\n', '\r']) {
            return invalid(&k("id"), "id must not contain a line break");
        }
        let positive = [
            ("ping_interval", self.ping_interval as usize),
            ("activity_timeout", self.activity_timeout as usize),
            ("max_message_size", self.max_message_size),
            ("max_presence_members", self.max_presence_members),
            ("max_presence_user_bytes", self.max_presence_user_bytes),
            ("max_event_bytes", self.max_event_bytes),
            ("max_channels_per_trigger", self.max_channels_per_trigger),
            ("max_batch_size", self.max_batch_size),
            ("max_channel_name_length", self.max_channel_name_length),
            ("max_event_name_length", self.max_event_name_length),
            (
                "client_events_per_second",
                self.client_events_per_second as usize,
            ),
            ("cache_ttl", self.cache_ttl as usize),
            (
                "max_channels_per_connection",
                self.max_channels_per_connection,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(&k(name), "must be greater than 0");
        }
        let rl = &self.rate_limiting;
        if rl.enabled && rl.max_attempts == 0 {
            return invalid(&k("rate_limiting.max_attempts"), "must be greater than 0");
        }
        if rl.enabled && rl.decay_seconds == 0 {
            return invalid(&k("rate_limiting.decay_seconds"), "must be greater than 0");
        }
        webhooks::validate(
            i,
            &self.webhooks,
            &self.webhook_batching,
            &self.webhook_retry,
        )?;
        if self.allowed_origins.is_empty() {
            return invalid(
                &k("allowed_origins"),
                "must list at least one origin, or \"*\"",
            );
        }
        Ok(())
    }
}

/// The `REVERB_APP_*` variables Herald reads (the last two are Herald's own: Reverb has
/// neither feature).
const APP_VARS: [&str; 14] = [
    "REVERB_APP_ID",
    "REVERB_APP_KEY",
    "REVERB_APP_SECRET",
    "REVERB_APP_PING_INTERVAL",
    "REVERB_APP_ACTIVITY_TIMEOUT",
    "REVERB_APP_MAX_CONNECTIONS",
    "REVERB_APP_MAX_MESSAGE_SIZE",
    "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM",
    "REVERB_APP_RATE_LIMITING_ENABLED",
    "REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS",
    "REVERB_APP_RATE_LIMIT_DECAY_SECONDS",
    "REVERB_APP_RATE_LIMIT_TERMINATE",
    "REVERB_APP_WATCHLIST_EVENTS",
    "REVERB_APP_SUBSCRIPTION_COUNT",
];

/// Applies `REVERB_APP_*` to the first app, creating it when there is none and any is set.
pub(super) fn apply_env(
    apps: &mut Vec<AppConfig>,
    vars: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let get = |k: &str| env_value(vars, k);
    if !APP_VARS.iter().any(|k| get(k).is_some()) {
        return Ok(());
    }
    if apps.is_empty() {
        apps.push(AppConfig::new("", "", ""));
    }
    let app = &mut apps[0];
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
    let rl = &mut app.rate_limiting;
    if let Some(v) = get("REVERB_APP_RATE_LIMITING_ENABLED") {
        rl.enabled = parse_bool("REVERB_APP_RATE_LIMITING_ENABLED", v)?;
    }
    if let Some(v) = get("REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS") {
        rl.max_attempts = parse_num("REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS", v)?;
    }
    if let Some(v) = get("REVERB_APP_RATE_LIMIT_DECAY_SECONDS") {
        rl.decay_seconds = parse_num("REVERB_APP_RATE_LIMIT_DECAY_SECONDS", v)?;
    }
    if let Some(v) = get("REVERB_APP_RATE_LIMIT_TERMINATE") {
        rl.terminate_on_limit = parse_bool("REVERB_APP_RATE_LIMIT_TERMINATE", v)?;
    }
    if let Some(v) = get("REVERB_APP_WATCHLIST_EVENTS") {
        app.watchlist_events = parse_bool("REVERB_APP_WATCHLIST_EVENTS", v)?;
    }
    if let Some(v) = get("REVERB_APP_SUBSCRIPTION_COUNT") {
        app.subscription_count = parse_bool("REVERB_APP_SUBSCRIPTION_COUNT", v)?;
    }
    Ok(())
}
