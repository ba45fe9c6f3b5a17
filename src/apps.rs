//! The apps this server hosts: [`App`] (identity, secret, limits) and [`AppRegistry`], the lookup
//! by id (HTTP API) and by key (WebSocket URL, `auth_key`). Both can change while running
//! (`herald reload`): the registry's maps and each app's config are swapped atomically, and a
//! removed app's sockets are told to close through the app's own cancellation token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::{AppConfig, ClientEventsFrom};
use crate::metrics::{AppMetrics, AppMetricsSource};

/// One app: its config plus the live counters the limits are checked against.
#[derive(Debug)]
pub struct App {
    /// The app id, fixed for the app's life (a reload matches apps by id).
    id: String,
    /// The app key, fixed too: a reload that changes it replaces the app.
    key: String,
    /// Secret and every per-app limit, as configured; swapped by a reload.
    config: ArcSwap<AppConfig>,
    /// Cancelled when the server shuts down (a child of the server's token) or when a reload
    /// removes the app: each of its connections watches it instead of the server's token, so
    /// this costs a socket nothing.
    closing: CancellationToken,
    /// Open WebSocket connections of this app on this node (for `max_connections`, `/connections`).
    connections: AtomicUsize,
    /// Clustered: the app's connections on the other nodes, refreshed by the cluster link, so
    /// `max_connections` holds cluster-wide.
    remote_connections: AtomicUsize,
    /// This app's metrics, resolved once (counting is an atomic add).
    pub metrics: AppMetrics,
}

impl App {
    /// Wraps a validated config, with a token of its own (its metrics are not registered
    /// anywhere).
    pub fn new(config: AppConfig) -> Self {
        Self::with_token(config, CancellationToken::new(), AppMetrics::default())
    }

    fn with_token(config: AppConfig, closing: CancellationToken, metrics: AppMetrics) -> Self {
        Self {
            metrics,
            id: config.id.clone(),
            key: config.key.clone(),
            config: ArcSwap::from_pointee(config),
            closing,
            connections: AtomicUsize::new(0),
            remote_connections: AtomicUsize::new(0),
        }
    }

    /// The app id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The app key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The current config (secret and limits); a reload may replace it at any time, so take it
    /// once per operation.
    pub fn config(&self) -> Arc<AppConfig> {
        self.config.load_full()
    }

    /// Replaces the config (same id and key) on reload: every later check uses the new values.
    pub fn set_config(&self, config: AppConfig) {
        debug_assert!(config.id == self.id && config.key == self.key);
        self.config.store(Arc::new(config));
    }

    /// Cancelled on shutdown or when the app is removed; see [`App::removed`].
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// Whether this app was removed by a reload (its token cancelled by the registry, not by a
    /// shutdown).
    pub fn removed(&self, shutting_down: bool) -> bool {
        self.closing.is_cancelled() && !shutting_down
    }

    /// Whether client events are accepted at all.
    pub fn client_events_enabled(&self) -> bool {
        self.config.load().accept_client_events_from != ClientEventsFrom::None
    }

    /// Takes a connection slot, or refuses when `max_connections` is reached. The slot is
    /// returned by [`App::release_connection`].
    pub fn try_acquire_connection(&self) -> bool {
        let remote = self.remote_connections.load(Ordering::Acquire);
        let limit = self
            .config
            .load()
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
        let config = self.config.load();
        let patterns = &config.allowed_origins;
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

/// Every configured app, by id and by key; replaced as a whole by [`AppRegistry::replace`].
#[derive(Debug)]
pub struct AppRegistry {
    maps: ArcSwap<Maps>,
    /// The server's shutdown token: every app's token is its child.
    shutdown: CancellationToken,
    /// Resolves the metrics of an app (also of one a reload adds).
    metrics: AppMetricsSource,
}

#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl Maps {
    fn insert(&mut self, app: Arc<App>) {
        self.by_id.insert(app.id.clone(), app.clone());
        self.by_key.insert(app.key.clone(), app);
    }
}

/// What [`AppRegistry::replace`] changed, by app id.
#[derive(Debug, Default, PartialEq)]
pub struct AppChanges {
    /// Apps that did not exist before.
    pub added: Vec<String>,
    /// Apps that are gone (their sockets were told to close with 4001). An app whose key
    /// changed is listed as removed and added.
    pub removed: Vec<String>,
    /// Apps whose secret or limits changed (their sockets stay connected).
    pub updated: Vec<String>,
}

impl AppRegistry {
    /// Builds the registry from validated app configs (ids and keys unique), with a shutdown
    /// token of its own.
    pub fn new(apps: &[AppConfig]) -> Self {
        Self::with_shutdown(apps, CancellationToken::new(), AppMetricsSource::default())
    }

    /// Builds the registry; `shutdown` (the server's) cancels every app's token, and each
    /// app's metrics are resolved in `metrics`.
    pub fn with_shutdown(
        apps: &[AppConfig],
        shutdown: CancellationToken,
        metrics: AppMetricsSource,
    ) -> Self {
        let mut maps = Maps::default();
        for cfg in apps {
            let token = shutdown.child_token();
            let m = metrics.for_app(&cfg.id);
            maps.insert(Arc::new(App::with_token(cfg.clone(), token, m)));
        }
        Self {
            maps: ArcSwap::from_pointee(maps),
            shutdown,
            metrics,
        }
    }

    /// The app with this id (HTTP API path).
    pub fn by_id(&self, id: &str) -> Option<Arc<App>> {
        self.maps.load().by_id.get(id).cloned()
    }

    /// The app with this key (WebSocket path, `auth_key`).
    pub fn by_key(&self, key: &str) -> Option<Arc<App>> {
        self.maps.load().by_key.get(key).cloned()
    }

    /// Every app.
    pub fn all(&self) -> Vec<Arc<App>> {
        self.maps.load().by_id.values().cloned().collect()
    }

    /// Makes `apps` (validated: ids and keys unique) the configured set: unchanged apps are
    /// kept as they are, changed ones get their new config in place (connections and counters
    /// stay), new ones are added, and removed ones (or ones whose key changed) are dropped and
    /// their token cancelled, which closes their sockets with 4001.
    pub fn replace(&self, apps: &[AppConfig]) -> AppChanges {
        let old = self.maps.load_full();
        let mut maps = Maps::default();
        let mut changes = AppChanges::default();
        for cfg in apps {
            match old.by_id.get(&cfg.id) {
                Some(app) if app.key == cfg.key => {
                    if *app.config.load_full() != *cfg {
                        app.set_config(cfg.clone());
                        changes.updated.push(cfg.id.clone());
                    }
                    maps.insert(app.clone());
                }
                existing => {
                    if existing.is_some() {
                        changes.removed.push(cfg.id.clone());
                    }
                    let token = self.shutdown.child_token();
                    let m = self.metrics.for_app(&cfg.id);
                    maps.insert(Arc::new(App::with_token(cfg.clone(), token, m)));
                    changes.added.push(cfg.id.clone());
                }
            }
        }
        self.maps.store(Arc::new(maps));
        for (id, app) in &old.by_id {
            let kept = self.by_id(id).is_some_and(|now| Arc::ptr_eq(&now, app));
            if !kept {
                if !changes.removed.contains(id) {
                    changes.removed.push(id.clone());
                }
                app.closing.cancel();
            }
        }
        changes.added.sort();
        changes.removed.sort();
        changes.updated.sort();
        changes
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

    #[test]
    fn replace_keeps_unchanged_updates_changed_and_cancels_removed() {
        let shutdown = CancellationToken::new();
        let cfgs = [
            AppConfig::new("a", "ka", "sa"),
            AppConfig::new("b", "kb", "sb"),
            AppConfig::new("c", "kc", "sc"),
        ];
        let reg = AppRegistry::with_shutdown(&cfgs, shutdown.clone(), Default::default());
        let (a, b, c) = (
            reg.by_id("a").unwrap(),
            reg.by_id("b").unwrap(),
            reg.by_id("c").unwrap(),
        );
        assert!(a.try_acquire_connection());
        let next = [
            AppConfig::new("a", "ka", "sa"),
            AppConfig::new("b", "kb", "rotated"),
            AppConfig::new("c", "kc2", "sc"),
            AppConfig::new("d", "kd", "sd"),
        ];
        let changes = reg.replace(&next);
        assert_eq!(changes.added, ["c", "d"]);
        assert_eq!(changes.removed, ["c"]);
        assert_eq!(changes.updated, ["b"]);
        assert!(Arc::ptr_eq(&reg.by_id("a").unwrap(), &a));
        assert_eq!(a.connection_count(), 1);
        assert_eq!(b.config().secret, "rotated");
        assert!(c.removed(false) && !a.closing().is_cancelled());
        assert!(reg.by_key("kc").is_none() && reg.by_key("kc2").is_some());
        let changes = reg.replace(&next[..1]);
        assert_eq!(changes.removed, ["b", "c", "d"]);
        assert!(b.removed(false));
        shutdown.cancel();
        assert!(a.closing().is_cancelled() && !a.removed(true));
    }
}
