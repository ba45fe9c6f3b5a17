//! The `[scaling]` table: clustering over Redis. Holds its keys and defaults, the overlay of
//! Reverb's `REVERB_SCALING_*` and Laravel's `REDIS_*` variables (building a Redis URL from
//! `REDIS_HOST`, `REDIS_PORT`, ... as Reverb does), its validation, and the masking of a
//! password in the URL for display.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::env::env_value;
use super::{invalid, parse_bool, ConfigError};

/// Laravel's Redis connection variables, which Reverb's `config/reverb.php` reads for scaling
/// and Herald reads likewise. `REDIS_URL` wins over the others.
pub const REDIS_VARS: [&str; 6] = [
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_DB",
];

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

impl ScalingConfig {
    /// `url` with any password replaced by `***` (`redis://user:***@host:6379/0`), for logs and
    /// `herald check-config`.
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }

    /// Applies `REVERB_SCALING_ENABLED`, `REVERB_SCALING_CHANNEL` and the `REDIS_*` variables.
    ///
    /// `REDIS_URL` is taken as is. Otherwise, if any of the other `REDIS_*` is set, the URL is
    /// built from them with Reverb's defaults. While scaling is off the URL is unused, so parts
    /// that do not make a URL (a Kubernetes service link such as `REDIS_PORT=tcp://10.0.0.5:6379`)
    /// are ignored then rather than stopping a single node.
    pub(super) fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        if let Some(v) = env_value(vars, "REVERB_SCALING_ENABLED") {
            self.enabled = parse_bool("REVERB_SCALING_ENABLED", v)?;
        }
        if let Some(v) = env_value(vars, "REVERB_SCALING_CHANNEL") {
            self.channel = v.into();
        }
        if let Some(url) = redis_value(vars, "REDIS_URL") {
            self.url = url.into();
            return Ok(());
        }
        if !REDIS_VARS[1..]
            .iter()
            .any(|k| redis_value(vars, k).is_some())
        {
            return Ok(());
        }
        match url_from_parts(vars) {
            Ok(url) => self.url = url,
            Err(e) if self.enabled => return Err(e),
            Err(_) => {}
        }
        Ok(())
    }

    /// Checks the table; the error names the key (`scaling.url`, ...). The URL is only checked
    /// when scaling is enabled, since it is not used otherwise.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled {
            check_url(&self.url)?;
        }
        if !is_period(self.heartbeat_interval) {
            return invalid(
                "scaling.heartbeat_interval",
                "must be a positive number of seconds",
            );
        }
        if !is_period(self.node_timeout) || self.node_timeout <= 2.0 * self.heartbeat_interval {
            let reason = format!(
                "must be more than twice heartbeat_interval ({} s), so one late heartbeat does \
                 not count a node as dead",
                self.heartbeat_interval
            );
            return invalid("scaling.node_timeout", &reason);
        }
        if self.outage_buffer_messages == 0 {
            return invalid("scaling.outage_buffer_messages", "must be at least 1");
        }
        if self.outage_buffer_age == 0 {
            return invalid("scaling.outage_buffer_age", "must be at least 1");
        }
        if self.channel.trim().is_empty() {
            return invalid("scaling.channel", "must not be empty");
        }
        Ok(())
    }
}

/// A positive, finite number of seconds that is at least a nanosecond (so timers accept it).
fn is_period(secs: f64) -> bool {
    Duration::try_from_secs_f64(secs).is_ok_and(|d| !d.is_zero())
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(
        scheme.as_deref(),
        Some("redis" | "rediss" | "unix" | "redis+unix")
    ) {
        return invalid(
            "scaling.url",
            "must start with redis://, rediss:// (TLS), unix:// or redis+unix:// \
             (for a tls:// Redis, write rediss://)",
        );
    }
    // The same parser the client uses, so a URL that passes here is one it accepts. Its
    // messages do not repeat the URL, which may hold a password.
    redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| ConfigError::Invalid {
        key: "scaling.url".into(),
        reason: format!("not a usable Redis URL: {e}"),
    })?;
    Ok(())
}

/// A `REDIS_*` value, with Laravel's `null` and `empty` (as in `REDIS_PASSWORD=null`, the stock
/// Laravel `.env`) counting as unset.
fn redis_value<'a>(vars: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    env_value(vars, key).filter(|v| {
        !["null", "(null)", "empty", "(empty)"]
            .iter()
            .any(|n| v.eq_ignore_ascii_case(n))
    })
}

/// Builds the URL from `REDIS_HOST` (127.0.0.1), `REDIS_PORT` (6379), `REDIS_USERNAME`,
/// `REDIS_PASSWORD` and `REDIS_DB` (0): `redis://[user[:password]@]host:port/db`.
/// A host written `tls://h` or `rediss://h` gives `rediss://`; a socket path (`/run/redis.sock`
/// or `unix:///run/redis.sock`) gives `unix:///run/redis.sock?db=0`.
fn url_from_parts(vars: &HashMap<String, String>) -> Result<String, ConfigError> {
    let get = |k: &str| redis_value(vars, k);
    let raw_host = get("REDIS_HOST").unwrap_or("127.0.0.1");
    let (scheme, host) = split_scheme(raw_host);
    let host = host.trim_end_matches('/');
    let port: u16 = match get("REDIS_PORT") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ConfigError::Invalid {
                key: "REDIS_PORT".into(),
                reason: format!("'{v}' is not a valid port"),
            })?,
        None => 6379,
    };
    let db: u32 = match get("REDIS_DB") {
        Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
            key: "REDIS_DB".into(),
            reason: format!("'{v}' is not a valid database number"),
        })?,
        None => 0,
    };
    let (user, password) = (get("REDIS_USERNAME"), get("REDIS_PASSWORD"));
    if scheme == "unix" || (scheme == "redis" && host.starts_with('/')) {
        let mut url = format!("unix://{host}?db={db}");
        if let Some(u) = user {
            let _ = write!(url, "&user={}", percent_encode(u));
        }
        if let Some(p) = password {
            let _ = write!(url, "&pass={}", percent_encode(p));
        }
        return Ok(url);
    }
    if host.is_empty() {
        return invalid("REDIS_HOST", &format!("'{raw_host}' names no host"));
    }
    let userinfo = match (user, password) {
        (Some(u), Some(p)) => format!("{}:{}@", percent_encode(u), percent_encode(p)),
        (Some(u), None) => format!("{}@", percent_encode(u)),
        (None, Some(p)) => format!(":{}@", percent_encode(p)),
        (None, None) => String::new(),
    };
    let host = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(format!("{scheme}://{userinfo}{host}:{port}/{db}"))
}

/// Splits a scheme off `REDIS_HOST`: `tls://` and `rediss://` mean TLS (Reverb issue #239),
/// `unix://` and `redis+unix://` a socket path; none, `redis://` or `tcp://` plain TCP.
fn split_scheme(host: &str) -> (&'static str, &str) {
    for (prefix, scheme) in [
        ("tls://", "rediss"),
        ("rediss://", "rediss"),
        ("redis://", "redis"),
        ("tcp://", "redis"),
        ("unix://", "unix"),
        ("redis+unix://", "unix"),
    ] {
        if host
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        {
            return (scheme, &host[prefix.len()..]);
        }
    }
    ("redis", host)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Replaces the password of a URL's userinfo, and any `pass=` / `password=` query value, with
/// `***`. The userinfo ends at the last `@`, since a password written unencoded may contain `/`.
fn mask_url(url: &str) -> String {
    let Some(sep) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(sep + 3);
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}:***{}", &rest[..colon], &rest[at..]),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let rest = match rest.split_once('?') {
        Some((before, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k == "pass" || k == "password" => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{before}?{}", pairs.join("&"))
        }
        None => rest,
    };
    format!("{scheme}{rest}")
}

#[cfg(test)]
#[path = "scaling_tests.rs"]
mod tests;
