//! Applying a re-read config to a running server (SIGHUP, `herald reload`): apps added, removed
//! (their sockets closed with 4001) or changed (new secret and limits, sockets kept), and the
//! TLS certificate re-read. Settings that need a new listener or a new cluster link (`[server]`
//! other than the TLS files, `[scaling]`) are reported as ignored until a restart.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::apps::{AppChanges, AppRegistry};
use crate::config::{AppConfig, Config, ConfigError};
use crate::local::LocalState;
use crate::tls::{LiveTls, TlsError};

/// Why a new config was refused (the running one stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config failed validation.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Apps added, removed and updated.
    pub apps: AppChanges,
    /// Whether the TLS certificate and key were re-read.
    pub tls_reloaded: bool,
    /// Dotted keys whose new value needs a restart, so was not applied.
    pub ignored: Vec<String>,
}

/// Applies new configs to the running server; one reload at a time.
#[derive(Debug)]
pub struct Reloader {
    /// The config in force (restart-only settings stay as they were at start).
    current: Mutex<Config>,
    apps: Arc<AppRegistry>,
    local: Arc<LocalState>,
    tls: Option<Arc<LiveTls>>,
}

impl Reloader {
    /// The handle for a server started with `config`.
    pub fn new(
        config: Config,
        apps: Arc<AppRegistry>,
        local: Arc<LocalState>,
        tls: Option<Arc<LiveTls>>,
    ) -> Self {
        Self {
            current: Mutex::new(config),
            apps,
            local,
            tls,
        }
    }

    /// Validates `new` and applies it. Nothing changes when it is refused.
    pub fn apply(&self, mut new: Config) -> Result<ReloadReport, ReloadError> {
        new.validate()?;
        let mut current = self.current.lock();
        let mut ignored = restart_only_changes(&current, &new);
        ignored.extend(webhook_changes(&current.apps, &new.apps));
        let mut tls_reloaded = false;
        if let (Some(live), Some(files)) = (&self.tls, &new.server.tls) {
            live.reload(files)?;
            tls_reloaded = true;
        }
        let apps = self.apps.replace(&new.apps);
        self.local.add_apps(&self.apps.all());
        current.apps = new.apps;
        if tls_reloaded {
            current.server.tls = new.server.tls;
        }
        Ok(ReloadReport {
            apps,
            tls_reloaded,
            ignored,
        })
    }
}

/// Apps whose webhook settings changed (targets, batching, delay, retries): the webhook tasks
/// are built at start, so these take effect at the next restart.
fn webhook_changes(old: &[AppConfig], new: &[AppConfig]) -> Vec<String> {
    new.iter()
        .filter(|n| match old.iter().find(|o| o.id == n.id) {
            Some(o) => {
                o.webhooks != n.webhooks
                    || o.webhook_batching != n.webhook_batching
                    || o.webhook_vacated_delay_ms != n.webhook_vacated_delay_ms
                    || o.webhook_retry != n.webhook_retry
            }
            None => !n.webhooks.is_empty(),
        })
        .map(|n| format!("apps.{}.webhooks", n.id))
        .collect()
}

/// The dotted keys outside `[[apps]]` whose values differ, except the TLS file paths (re-read
/// on reload) when TLS stays on.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| {
        let mut c = c.clone();
        c.apps.clear();
        if old.server.tls.is_some() && new.server.tls.is_some() {
            c.server.tls = None;
        }
        toml::Value::try_from(&c).unwrap_or(toml::Value::Table(Default::default()))
    };
    let mut out = Vec::new();
    diff("", &table(old), &table(new), &mut out);
    out.retain(|k| k != "apps");
    out.sort();
    out
}

fn diff(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(a), toml::Value::Table(b)) => {
            let empty = toml::Value::Table(Default::default());
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&name, x, y, out),
                    (Some(x), None) | (None, Some(x)) if x == &empty => {}
                    _ => out.push(name),
                }
            }
        }
        _ if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, TlsConfig};

    #[test]
    fn restart_only_keys_are_named() {
        let old = Config::single_app("a", "k", "s");
        let mut new = old.clone();
        new.apps.push(AppConfig::new("b", "kb", "sb"));
        new.apps[0].secret = "rotated".into();
        assert!(restart_only_changes(&old, &new).is_empty());
        new.server.port = 9;
        new.scaling.enabled = true;
        assert_eq!(
            restart_only_changes(&old, &new),
            ["scaling.enabled", "server.port"]
        );
        let tls = |c: &str| TlsConfig {
            cert: c.into(),
            key: "k.pem".into(),
        };
        let (mut a, mut b) = (old.clone(), old.clone());
        b.server.tls = Some(tls("c.pem"));
        assert_eq!(restart_only_changes(&a, &b), ["server.tls"]);
        a.server.tls = Some(tls("old.pem"));
        assert!(restart_only_changes(&a, &b).is_empty());
    }

    #[test]
    fn webhook_changes_need_a_restart() {
        let plain = AppConfig::new("a", "ka", "sa");
        let mut hooked = plain.clone();
        hooked.webhooks = vec![crate::config::WebhookTarget {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: vec![crate::config::WebhookEventType::ChannelOccupied],
            filter: Default::default(),
            headers: Default::default(),
        }];
        assert!(
            webhook_changes(std::slice::from_ref(&plain), std::slice::from_ref(&plain)).is_empty()
        );
        assert_eq!(
            webhook_changes(std::slice::from_ref(&plain), std::slice::from_ref(&hooked)),
            ["apps.a.webhooks"]
        );
        assert_eq!(
            webhook_changes(&[], std::slice::from_ref(&hooked)),
            ["apps.a.webhooks"]
        );
        assert!(webhook_changes(&[], std::slice::from_ref(&plain)).is_empty());
        let mut slower = hooked.clone();
        slower.webhook_vacated_delay_ms = 10_000;
        assert_eq!(
            webhook_changes(std::slice::from_ref(&hooked), std::slice::from_ref(&slower)),
            ["apps.a.webhooks"]
        );
    }
}
