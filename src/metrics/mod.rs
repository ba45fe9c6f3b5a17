//! Prometheus metrics (`prometheus-client`). [`Metrics`] owns the registry and the metric
//! families; each app gets an [`AppMetrics`] handle resolved once at start-up (its counters and
//! gauges with the `app` label already applied), which `App` and the app's channel registry
//! hold, so counting on the hot paths is a relaxed atomic add, never a label lookup, a lock or
//! an allocation. Fan-out is counted once per broadcast (recipients × frame length).
//!
//! Scrape-time values (process RSS, CPU, fds in `process.rs`; the cluster link's state in
//! `crate::cluster`) are [`Collector`]s read from their source on each scrape. `serve.rs`
//! answers `/metrics`, `/ready` and `/up` on the separate metrics listener.
//!
//! When `[metrics] enabled` is false, the counters still exist (unregistered cost: the atomic
//! adds) but nothing heavier runs: the HTTP API's per-request families are skipped.

mod app;
mod process;
mod serve;

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use app::{AppMetrics, AuthFailure, CloseLabel, MessageKind, RateLimit, CHANNEL_KINDS};
pub use process::ProcessCollector;
pub use serve::{readiness, serve, Readiness};

/// Labels: the app id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppLabel {
    pub app: String,
}

/// Labels: the app id and a kind (channel kind, message kind, failure kind...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppKind {
    pub app: String,
    pub kind: &'static str,
}

/// Labels: the app id and a close code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppCode {
    pub app: String,
    pub code: &'static str,
}

/// Labels of an HTTP API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    app: String,
    route: &'static str,
    status: u16,
}

/// Labels of an HTTP API latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiRoute {
    app: String,
    route: &'static str,
}

/// Labels: a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// Labels: an HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: u16,
}

/// Why a connection was refused before it became an app's WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `server.max_pending_connections` reached.
    PendingServer,
    /// `server.max_pending_per_ip` reached.
    PendingPerIp,
    /// `server.max_connections` reached (close 4100).
    ServerCap,
    /// The app's `max_connections` reached (close 4004).
    AppQuota,
    /// Unknown app key (close 4001).
    UnknownApp,
    /// Origin not allowed (close 4009).
    Origin,
    /// Bad `protocol` parameter (close 4006 / 4007).
    Protocol,
}

const REFUSALS: [(Refusal, &str); 7] = [
    (Refusal::PendingServer, "pending_connections"),
    (Refusal::PendingPerIp, "pending_per_ip"),
    (Refusal::ServerCap, "max_connections"),
    (Refusal::AppQuota, "app_quota"),
    (Refusal::UnknownApp, "unknown_app"),
    (Refusal::Origin, "origin"),
    (Refusal::Protocol, "protocol"),
];

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn api_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The per-app families; [`Metrics::for_app`] resolves one app's members of each. Cloning
/// shares the families (they are `Arc`s inside).
#[derive(Debug, Default, Clone)]
pub(crate) struct AppFamilies {
    pub connections: Family<AppLabel, Gauge>,
    pub opened: Family<AppLabel, Counter>,
    pub closed: Family<AppCode, Counter>,
    pub slow_consumers: Family<AppLabel, Counter>,
    pub subscriptions: Family<AppKind, Gauge>,
    pub channels: Family<AppKind, Gauge>,
    pub members: Family<AppLabel, Gauge>,
    pub received: Family<AppKind, Counter>,
    pub received_bytes: Family<AppKind, Counter>,
    pub sent: Family<AppKind, Counter>,
    pub sent_bytes: Family<AppKind, Counter>,
    pub dropped: Family<AppLabel, Counter>,
    pub auth_failures: Family<AppKind, Counter>,
    pub rate_limited: Family<AppKind, Counter>,
}

/// Resolves an app's metric handles in the registry it came from ([`Metrics::app_source`]);
/// the default one belongs to no registry (tests, tools).
#[derive(Debug, Default, Clone)]
pub struct AppMetricsSource(AppFamilies);

impl AppMetricsSource {
    /// The handles of one app, resolved once.
    pub fn for_app(&self, id: &str) -> AppMetrics {
        AppMetrics::resolve(&self.0, id)
    }
}

/// Every metric of this node, and the registry the metrics listener encodes.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    registry: Registry,
    apps: AppFamilies,
    accept_failures: Counter,
    refused: Vec<(Refusal, Counter)>,
    api_requests: Family<ApiLabels, Counter>,
    api_latency: HistogramFamily<ApiRoute>,
    api_refused: Family<Status, Counter>,
}

impl Metrics {
    /// Builds the registry; `enabled` says whether anything will ever be scraped (when false,
    /// per-request label lookups are skipped).
    pub fn new(enabled: bool) -> Self {
        let mut registry = Registry::default();
        let apps = AppFamilies::default();
        let r = &mut registry;
        let a = &apps;
        r.register(
            "herald_connections",
            "Open WebSocket connections",
            a.connections.clone(),
        );
        r.register(
            "herald_connections_opened",
            "WebSocket connections admitted",
            a.opened.clone(),
        );
        r.register(
            "herald_connections_closed",
            "Admitted WebSocket connections closed, by close code (client: the client closed; gone: the transport failed)",
            a.closed.clone(),
        );
        r.register(
            "herald_slow_consumer_closes",
            "Sockets closed with 4100 because they read slower than they were sent to",
            a.slow_consumers.clone(),
        );
        r.register(
            "herald_subscriptions",
            "Channel subscriptions on this node, by channel kind",
            a.subscriptions.clone(),
        );
        r.register(
            "herald_channels",
            "Occupied channels on this node, by channel kind",
            a.channels.clone(),
        );
        r.register(
            "herald_presence_members",
            "Presence channel members (distinct users per channel) with a socket on this node",
            a.members.clone(),
        );
        r.register(
            "herald_messages_received",
            "Messages received: client frames (client_event, protocol) and HTTP API events (api_event)",
            a.received.clone(),
        );
        r.register(
            "herald_messages_received_bytes",
            "Bytes of the messages received",
            a.received_bytes.clone(),
        );
        r.register(
            "herald_messages_sent",
            "Frames queued to sockets, by kind (api_event, client_event, protocol)",
            a.sent.clone(),
        );
        r.register(
            "herald_messages_sent_bytes",
            "Bytes of the frames queued to sockets",
            a.sent_bytes.clone(),
        );
        r.register(
            "herald_deliveries_dropped",
            "Broadcast deliveries dropped because the socket's outbox was full",
            a.dropped.clone(),
        );
        r.register(
            "herald_auth_failures",
            "Refused signatures, by kind (channel_auth, signin, api_signature)",
            a.auth_failures.clone(),
        );
        r.register(
            "herald_rate_limited",
            "Messages refused by a rate limit, by kind (client_events, messages)",
            a.rate_limited.clone(),
        );
        let accept_failures = Counter::default();
        r.register(
            "herald_accept_failures",
            "Failed accepts on the main listener (e.g. out of file descriptors)",
            accept_failures.clone(),
        );
        let refused_family = Family::<Reason, Counter>::default();
        r.register(
            "herald_connections_refused",
            "Connections refused before becoming an app's WebSocket, by reason",
            refused_family.clone(),
        );
        let refused = REFUSALS
            .iter()
            .map(|(k, reason)| (*k, refused_family.get_or_create_owned(&Reason { reason })))
            .collect();
        let api_requests = Family::<ApiLabels, Counter>::default();
        r.register(
            "herald_api_requests",
            "HTTP API requests, by app, route and status",
            api_requests.clone(),
        );
        let api_latency: HistogramFamily<ApiRoute> =
            Family::new_with_constructor(api_histogram as fn() -> Histogram);
        r.register(
            "herald_api_request_duration_seconds",
            "HTTP API request latency, by app and route",
            api_latency.clone(),
        );
        let api_refused = Family::<Status, Counter>::default();
        r.register(
            "herald_api_requests_refused",
            "HTTP API requests answered with an error, by status (apps known or not)",
            api_refused.clone(),
        );
        Self {
            enabled,
            registry,
            apps,
            accept_failures,
            refused,
            api_requests,
            api_latency,
            api_refused,
        }
    }

    /// Metrics that are never scraped (tests, tools).
    pub fn disabled() -> Self {
        Self::new(false)
    }

    /// Whether the metrics listener is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The handles of one app, resolved once.
    pub fn for_app(&self, id: &str) -> AppMetrics {
        AppMetrics::resolve(&self.apps, id)
    }

    /// What resolves the handles of apps later (a reload adding one), registered here.
    pub fn app_source(&self) -> AppMetricsSource {
        AppMetricsSource(self.apps.clone())
    }

    /// Adds a scrape-time collector (process, cluster); only before the server runs.
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// Counts a failed accept.
    pub fn accept_failed(&self) {
        self.accept_failures.inc();
    }

    /// Counts a refused connection.
    pub fn refused(&self, why: Refusal) {
        if let Some((_, c)) = self.refused.iter().find(|(k, _)| *k == why) {
            c.inc();
        }
    }

    /// Records one HTTP API request (`app` empty when the app is unknown).
    pub fn api_request(&self, app: &str, route: &'static str, status: u16, took: Duration) {
        if !self.enabled {
            return;
        }
        let app = app.to_owned();
        self.api_latency
            .get_or_create(&ApiRoute {
                app: app.clone(),
                route,
            })
            .observe(took.as_secs_f64());
        self.api_requests
            .get_or_create(&ApiLabels { app, route, status })
            .inc();
        if status >= 400 {
            self.api_refused.get_or_create(&Status { status }).inc();
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics: encoding failed: {e}");
        }
        out
    }
}
