//! One webhook target: its bounded queue and the task that drains it. Each target has its own
//! queue and task, so a slow or dead receiver only ever delays its own events. The task batches
//! (when enabled), signs each body once, and retries with exponential backoff and jitter on
//! timeouts, connection errors, 429 and 5xx, within the app's bounds; what it gives up is
//! counted and logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use super::event::{self, Event};
use super::stats::WebhookStats;
use crate::config::{WebhookBatching, WebhookEventType, WebhookRetry, WebhookTarget};
use crate::limits::QuietLog;

/// What every target task shares: the HTTP client, the counters, the throttled failure log and
/// the shutdown signals.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub client: reqwest::Client,
    pub stats: Arc<WebhookStats>,
    pub log: Arc<QuietLog>,
    /// Shutdown: drain what is queued, then stop.
    pub closing: CancellationToken,
    /// The shutdown deadline passed: count what is left as given up, stop now.
    pub abandon: CancellationToken,
}

/// The sending side of one target, held by its app.
#[derive(Debug)]
pub(super) struct Target {
    app: Arc<str>,
    config: WebhookTarget,
    tx: mpsc::Sender<Event>,
}

impl Target {
    /// Whether this target receives `kind` events of `channel`.
    pub fn wants(&self, kind: WebhookEventType, channel: &str) -> bool {
        self.config.event_types.contains(&kind) && self.config.filter.matches(channel)
    }

    /// Queues an event without waiting; a full (or closed) queue drops it, counted and logged.
    pub fn offer(&self, event: &Event, shared: &Shared) {
        match self.tx.try_send(event.clone()) {
            Ok(()) => WebhookStats::add(&shared.stats.queued, 1),
            Err(e) => {
                let why = match e {
                    TrySendError::Full(_) => "queue full (server.max_queued_webhooks)",
                    TrySendError::Closed(_) => "server shutting down",
                };
                WebhookStats::add(&shared.stats.dropped, 1);
                shared.log.note(&format_args!(
                    "app {} target {}: {} event dropped: {why}",
                    self.app,
                    self.config.url,
                    event.kind.name()
                ));
            }
        }
    }
}

/// The settings a target task needs from its app.
#[derive(Debug, Clone)]
pub(super) struct AppSettings {
    pub id: Arc<str>,
    pub key: String,
    /// The app itself, for its current secret (a reload may rotate it).
    pub app: Arc<crate::apps::App>,
    pub batching: WebhookBatching,
    pub retry: WebhookRetry,
}

/// Builds a target and spawns its task on `tracker`.
pub(super) fn start(
    app: &AppSettings,
    config: &WebhookTarget,
    capacity: usize,
    shared: &Shared,
    tracker: &tokio_util::task::TaskTracker,
) -> Target {
    let (tx, rx) = mpsc::channel(capacity);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let key = HeaderValue::from_str(&app.key).unwrap_or(HeaderValue::from_static(""));
    headers.insert(HeaderName::from_static("x-pusher-key"), key);
    for (name, value) in &config.headers {
        // Validated with the config.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let task = Sender {
        app: app.clone(),
        url: config.url.clone(),
        headers,
        rx,
        shared: shared.clone(),
    };
    tracker.spawn(task.run());
    Target {
        app: app.id.clone(),
        config: config.clone(),
        tx,
    }
}

/// Why an attempt failed.
enum Failure {
    /// Worth another attempt (timeout, connection error, 429, 5xx).
    Retry(String),
    /// Final (any other non-2xx status).
    Final(String),
}

struct Sender {
    app: AppSettings,
    url: String,
    headers: HeaderMap,
    rx: mpsc::Receiver<Event>,
    shared: Shared,
}

impl Sender {
    async fn run(mut self) {
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                biased;
                e = self.rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                _ = self.shared.closing.cancelled() => match self.rx.try_recv() {
                    Ok(e) => e,
                    Err(_) => break,
                },
            };
            batch.push(first);
            self.fill(&mut batch).await;
            let abandoned = tokio::select! {
                _ = self.deliver(&batch) => false,
                _ = self.shared.abandon.cancelled() => true,
            };
            if abandoned {
                let left = batch.len() + self.rx.len();
                self.give_up(&batch, left, "shutdown deadline passed");
                break;
            }
            batch.clear();
        }
    }

    /// Adds events to `batch` for at most the batching window (at once when shutting down).
    async fn fill(&mut self, batch: &mut Vec<Event>) {
        let b = self.app.batching;
        if !b.enabled {
            return;
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(b.window_ms);
        while batch.len() < b.max_events {
            if self.shared.closing.is_cancelled() {
                match self.rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => return,
                }
                continue;
            }
            tokio::select! {
                biased;
                e = self.rx.recv() => match e {
                    Some(e) => batch.push(e),
                    None => return,
                },
                _ = tokio::time::sleep_until(until) => return,
                _ = self.shared.closing.cancelled() => {}
            }
        }
    }

    /// Sends one body until it is accepted, refused for good, or the retry bounds are reached.
    async fn deliver(&self, batch: &[Event]) {
        let body = Bytes::from(event::body(event::now_ms(), batch));
        let signature = event::sign(&self.app.app.config().secret, &body);
        let r = self.app.retry;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(r.base_backoff_ms);
        let mut attempt = 1;
        loop {
            let reason = match self.attempt(body.clone(), &signature).await {
                Ok(()) => {
                    WebhookStats::add(&self.shared.stats.delivered, batch.len());
                    WebhookStats::add(&self.shared.stats.requests, 1);
                    return;
                }
                Err(Failure::Final(reason)) => {
                    return self.give_up(batch, batch.len(), &reason);
                }
                Err(Failure::Retry(reason)) => reason,
            };
            let out_of_time = started.elapsed() + backoff > Duration::from_millis(r.max_elapsed_ms);
            if attempt >= r.max_attempts || out_of_time {
                let why = format!("{reason}; gave up after {attempt} attempt(s)");
                return self.give_up(batch, batch.len(), &why);
            }
            WebhookStats::add(&self.shared.stats.retries, 1);
            let jittered = backoff.mul_f64(rand::random_range(0.5..=1.0));
            tokio::time::sleep(jittered).await;
            backoff = (backoff * 2).min(Duration::from_millis(r.max_backoff_ms.max(1)));
            attempt += 1;
        }
    }

    async fn attempt(&self, body: Bytes, signature: &str) -> Result<(), Failure> {
        let sent = self
            .shared
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header("X-Pusher-Signature", signature)
            .timeout(Duration::from_millis(self.app.retry.timeout_ms))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else if status.as_u16() == 429 || status.is_server_error() {
                    Err(Failure::Retry(format!("HTTP {status}")))
                } else {
                    Err(Failure::Final(format!("HTTP {status} (not retried)")))
                }
            }
            Err(e) if e.is_timeout() => Err(Failure::Retry("timed out".into())),
            Err(e) => Err(Failure::Retry(error_chain(&e))),
        }
    }

    /// Counts `n` events as given up and logs it (throttled) with the app, target and types.
    fn give_up(&self, batch: &[Event], n: usize, why: &str) {
        WebhookStats::add(&self.shared.stats.given_up, n);
        let mut kinds: Vec<&str> = batch.iter().map(|e| e.kind.name()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        self.shared.log.note(&format_args!(
            "app {} target {}: {n} event(s) given up ({}): {why}",
            self.app.id,
            self.url,
            kinds.join(", ")
        ));
    }
}

/// The error with its sources ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
