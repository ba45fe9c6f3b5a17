//! The apps this server hosts: [`App`] (identity, secret, limits) and [`AppRegistry`], the lookup
//! by id (HTTP API) and by key (WebSocket URL, `auth_key`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{AppConfig, ClientEventsFrom};
use crate::metrics::{AppMetrics, Metrics};

/// One app: its config plus the live counters the limits are checked against.
#[derive(Debug)]
pub struct App {
    /// Id, key, secret and every per-app limit, as configured.
    pub config: AppConfig,
    /// Open WebSocket connections of this app on this node (for `max_connections`, `/connections`).
    connections: AtomicUsize,
    /// Clustered: the app's connections on the other nodes, refreshed by the cluster link, so
    /// `max_connections` holds cluster-wide.
    remote_connections: AtomicUsize,
    /// This app's metrics, resolved once (counting is an atomic add).
    pub metrics: AppMetrics,
}

impl App {
    /// Wraps a validated config (its metrics are not registered anywhere).
    pub fn new(config: AppConfig) -> Self {
        Self::with_metrics(config, AppMetrics::default())
    }

    /// Wraps a validated config with its registered metrics.
    pub fn with_metrics(config: AppConfig, metrics: AppMetrics) -> Self {
        Self {
            config,
            connections: AtomicUsize::new(0),
            remote_connections: AtomicUsize::new(0),
            metrics,
        }
    }

    /// The app id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The app key.
    pub fn key(&self) -> &str {
        &self.config.key
    }

    /// The app secret (signing key).
    pub fn secret(&self) -> &str {
        &self.config.secret
    }

    /// Whether client events are accepted at all.
    pub fn client_events_enabled(&self) -> bool {
        self.config.accept_client_events_from != ClientEventsFrom::None
    }

    /// Takes a connection slot, or refuses when `max_connections` is reached. The slot is
    /// returned by [`App::release_connection`].
    pub fn try_acquire_connection(&self) -> bool {
        let remote = self.remote_connections.load(Ordering::Acquire);
        let limit = self
            .config
            .max_connections
            .map(|m| (m as usize).saturating_sub(remote));
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| match limit {
                Some(max) if n >= max => None,
                _ => Some(n + 1),
            })
            .inspect(|_| self.metrics.connection_opened())
            .is_ok()
    }

    /// Returns a slot taken by [`App::try_acquire_connection`].
    pub fn release_connection(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Records how many connections the other nodes of the cluster hold.
    pub fn set_remote_connections(&self, n: usize) {
        self.remote_connections.store(n, Ordering::Release);
    }

    /// Open connections of this app on this node.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Whether an `Origin` header value is allowed by `allowed_origins` (host globs).
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let patterns = &self.config.allowed_origins;
        if patterns.iter().any(|p| p == "*") {
            return true;
        }
        let Some(origin) = origin else {
            return false;
        };
        let host = origin_host(origin);
        patterns.iter().any(|p| glob_match(p, host))
    }
}

/// The host part of an Origin header: `https://sub.example.com:8443` → `sub.example.com`.
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    match rest.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => rest,
    }
}

/// Laravel `Str::is`-style glob: `*` matches any run of characters, case-sensitive.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Every configured app, by id and by key.
#[derive(Debug, Default)]
pub struct AppRegistry {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl AppRegistry {
    /// Builds the registry from validated app configs (ids and keys unique), with unregistered
    /// metrics.
    pub fn new(apps: &[AppConfig]) -> Self {
        Self::with_metrics(apps, &Metrics::disabled())
    }

    /// Builds the registry, each app's metrics resolved in `metrics`.
    pub fn with_metrics(apps: &[AppConfig], metrics: &Metrics) -> Self {
        let mut reg = Self::default();
        for cfg in apps {
            let app = Arc::new(App::with_metrics(cfg.clone(), metrics.for_app(&cfg.id)));
            reg.by_id.insert(cfg.id.clone(), app.clone());
            reg.by_key.insert(cfg.key.clone(), app);
        }
        reg
    }

    /// The app with this id (HTTP API path).
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    /// The app with this key (WebSocket path, `auth_key`).
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    /// Every app.
    pub fn all(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(origins: &[&str]) -> App {
        let mut c = AppConfig::new("1", "k", "s");
        c.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
        App::new(c)
    }

    #[test]
    fn origins_follow_reverb() {
        let a = app(&["laravel.com"]);
        assert!(!a.origin_allowed(Some("http://localhost")));
        assert!(!a.origin_allowed(Some("http://sub.laravel.com")));
        assert!(a.origin_allowed(Some("https://laravel.com:443")));
        assert!(!a.origin_allowed(None));
        assert!(!app(&["*.laravel.com"]).origin_allowed(Some("http://laravel.com")));
        assert!(app(&["localhost", "*.localhost"]).origin_allowed(Some("http://sub.localhost")));
        assert!(app(&["*"]).origin_allowed(None));
    }

    #[test]
    fn connection_quota() {
        let mut c = AppConfig::new("1", "k", "s");
        c.max_connections = Some(1);
        let a = App::new(c);
        assert!(a.try_acquire_connection());
        assert!(!a.try_acquire_connection());
        a.release_connection();
        assert!(a.try_acquire_connection());
        assert_eq!(a.connection_count(), 1);
    }
}
