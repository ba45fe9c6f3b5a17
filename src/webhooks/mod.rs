//! Webhooks (protocol reference §5): the adapter reports channel transitions, client events and
//! cache misses here; each becomes one serialised event queued (never waiting) on the bounded
//! queue of every target of the app that wants it, and per-target tasks POST them signed,
//! batched and retried (`target`). Pusher's delay on vacated/removed lives in `app`.
//!
//! Built only when some app has a target: [`Webhooks::new`] returns `None` otherwise, and for an
//! app without targets each hook is one emptiness check, so webhooks cost nothing when off.

mod app;
mod cluster;
pub mod event;
pub mod metrics;
pub mod stats;
mod target;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::apps::{App, AppRegistry};
use crate::channels::{Joined, Left, MemberData};
use crate::config::WebhookEventType as T;
use crate::limits::{Level, QuietLog};
use app::{channel_key, member_key, AppHooks};
pub use cluster::ClusterSink;
pub use event::ClientEvent;
use event::Event;
pub use stats::{StatsSnapshot, WebhookStats};
use target::{AppSettings, Shared};

/// How often the "webhook events given up / dropped" warning may be written.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why webhooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The webhooks of every app of this node.
#[derive(Debug)]
pub struct Webhooks {
    apps: HashMap<String, Arc<AppHooks>>,
    shared: Shared,
    /// The target tasks.
    senders: TaskTracker,
    /// The delayed vacated/removed timers.
    delays: TaskTracker,
    /// Shutdown: fire every delayed event now.
    expedite: CancellationToken,
    /// Occupancy and member transitions are decided cluster-wide (`ClusterSink`), not here.
    clustered: bool,
}

impl Webhooks {
    /// Starts a task per target of every app; `None` when no app has a target.
    /// `max_queued` bounds each target's queue. Must run inside the tokio runtime.
    pub fn new(apps: &AppRegistry, max_queued: usize) -> Result<Option<Self>, WebhookError> {
        if apps.all().iter().all(|a| a.config().webhooks.is_empty()) {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .http1_title_case_headers()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let shared = Shared {
            client,
            stats: Arc::default(),
            log: Arc::new(QuietLog::new(
                "webhook events given up or dropped",
                Level::Warn,
                LOG_INTERVAL,
            )),
            closing: CancellationToken::new(),
            abandon: CancellationToken::new(),
        };
        let senders = TaskTracker::new();
        let mut hooks = HashMap::new();
        for a in apps
            .all()
            .into_iter()
            .filter(|a| !a.config().webhooks.is_empty())
        {
            let c = a.config();
            let settings = AppSettings {
                id: a.id().into(),
                key: a.key().to_owned(),
                app: a.clone(),
                batching: c.webhook_batching,
                retry: c.webhook_retry,
            };
            let targets = c
                .webhooks
                .iter()
                .map(|t| target::start(&settings, t, max_queued, &shared, &senders))
                .collect();
            let mut wanted: Vec<T> = c
                .webhooks
                .iter()
                .flat_map(|t| t.event_types.clone())
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let delay = Duration::from_millis(c.webhook_vacated_delay_ms);
            let h = AppHooks::new(targets, wanted, delay, shared.clone());
            hooks.insert(a.id().to_owned(), Arc::new(h));
        }
        Ok(Some(Self {
            apps: hooks,
            shared,
            senders,
            delays: TaskTracker::new(),
            expedite: CancellationToken::new(),
            clustered: false,
        }))
    }

    /// With `[scaling] enabled`: hands the occupancy and member transitions to the cluster,
    /// which decides them cluster-wide in Redis and sends each through the returned sink on
    /// exactly one node; this node stops deciding them from its own sockets.
    pub fn cluster_sink(&mut self) -> Arc<ClusterSink> {
        self.clustered = true;
        Arc::new(ClusterSink::new(&self.apps))
    }

    /// The counters (queued, delivered, retried, given up, dropped, cancelled).
    pub fn stats(&self) -> &Arc<WebhookStats> {
        &self.shared.stats
    }

    fn hooks(&self, app: &App) -> Option<&Arc<AppHooks>> {
        if app.config().webhooks.is_empty() {
            return None;
        }
        self.apps.get(app.id())
    }

    /// A cache channel's event was stored (a trigger here or on another node): its next
    /// `cache_miss` is sent again.
    pub fn cache_filled(&self, app: &App, channel: &str) {
        if let Some(h) = self.hooks(app) {
            h.cache_filled(channel);
        }
    }

    /// A subscribe's transitions: channel_occupied, then member_added, then cache_miss (at most
    /// one per channel until its cache is written, see `AppHooks::first_miss`).
    pub fn joined(
        &self,
        app: &App,
        channel: &str,
        joined: &Joined,
        member: Option<&MemberData>,
        cache_miss: bool,
    ) {
        let Some(h) = self.hooks(app) else { return };
        if joined.occupied && !self.clustered {
            self.occupied(h, channel);
        }
        if let (true, Some(m), false) = (joined.member_added, member, self.clustered) {
            self.member_added(h, channel, &m.key);
        }
        if cache_miss && !joined.already && h.wants(T::CacheMiss) && h.first_miss(channel) {
            h.emit(channel, &Event::channel(T::CacheMiss, channel));
        }
    }

    /// An unsubscribe's transitions: member_removed, then channel_vacated (both delayed).
    pub fn left(&self, app: &App, channel: &str, left: &Left) {
        let Some(h) = self.hooks(app) else { return };
        if self.clustered {
            return;
        }
        let mut items = Vec::new();
        if let (true, Some(user)) = (left.member_removed, &left.user) {
            if h.wants(T::MemberAdded) || h.wants(T::MemberRemoved) {
                let event = Event::member(T::MemberRemoved, channel, user);
                items.push((member_key(channel, user), event));
            }
        }
        if left.vacated && (h.wants(T::ChannelOccupied) || h.wants(T::ChannelVacated)) {
            let event = Event::channel(T::ChannelVacated, channel);
            items.push((channel_key(channel), event));
        }
        h.departed(items, &self.delays, &self.expedite);
    }

    /// A relayed client event.
    pub fn client_event(&self, app: &App, channel: &str, e: &ClientEvent<'_>) {
        let Some(h) = self.hooks(app) else { return };
        if h.wants(T::ClientEvent) {
            h.emit(channel, &Event::client(channel, e));
        }
    }

    /// A channel's subscription count changed (non-presence channels); the caller throttles as
    /// Pusher does (at most every 5 s for channels over 100 subscribers).
    pub fn subscription_count(&self, app: &App, channel: &str, count: usize) {
        let Some(h) = self.hooks(app) else { return };
        if h.wants(T::SubscriptionCount) {
            h.emit(channel, &Event::subscription_count(channel, count));
        }
    }

    fn occupied(&self, h: &AppHooks, channel: &str) {
        if h.wants(T::ChannelOccupied) || h.wants(T::ChannelVacated) {
            let build = || Event::channel(T::ChannelOccupied, channel);
            h.arrived(channel_key(channel), build, channel);
        }
    }

    fn member_added(&self, h: &AppHooks, channel: &str, user: &str) {
        if h.wants(T::MemberAdded) || h.wants(T::MemberRemoved) {
            let build = || Event::member(T::MemberAdded, channel, user);
            h.arrived(member_key(channel, user), build, channel);
        }
    }

    /// Graceful shutdown, after the sockets are gone: delayed events fire now, every queue is
    /// drained within `deadline`; whatever is still unsent then is counted as given up.
    pub async fn stop(&self, deadline: Duration) {
        let start = tokio::time::Instant::now();
        self.expedite.cancel();
        self.delays.close();
        self.delays.wait().await;
        self.shared.closing.cancel();
        self.senders.close();
        let left = deadline.saturating_sub(start.elapsed());
        if tokio::time::timeout(left, self.senders.wait())
            .await
            .is_err()
        {
            self.shared.abandon.cancel();
            self.senders.wait().await;
            tracing::warn!("shutdown deadline reached with webhooks unsent (counted as given up)");
        }
    }
}
