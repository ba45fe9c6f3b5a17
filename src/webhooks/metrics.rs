//! The webhook metrics, read from [`WebhookStats`] on each scrape (so counting stays one relaxed
//! atomic add in the webhook tasks): events queued, delivered, retried, given up, dropped and
//! cancelled, requests sent, and the events waiting in the targets' queues.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::WebhookStats;

/// Encodes this node's webhook counters (all apps and targets).
#[derive(Debug)]
pub struct WebhookCollector(pub Arc<WebhookStats>);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for WebhookCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = self.0.snapshot();
        let depth = s.queued.saturating_sub(s.delivered + s.given_up);
        ConstGauge::new(depth as i64).encode(enc.encode_descriptor(
            "herald_webhook_queue_depth",
            "Webhook events queued for their targets and not yet delivered or given up",
            None,
            MetricType::Gauge,
        )?)?;
        for (name, help, v) in [
            (
                "herald_webhook_events_queued",
                "Webhook events queued for a target",
                s.queued,
            ),
            (
                "herald_webhook_events_delivered",
                "Webhook events delivered (the receiver answered 2xx)",
                s.delivered,
            ),
            (
                "herald_webhook_requests",
                "Webhook requests answered 2xx (a batch is one request)",
                s.requests,
            ),
            (
                "herald_webhook_retries",
                "Webhook request attempts that failed and were retried",
                s.retries,
            ),
            (
                "herald_webhook_events_failed",
                "Webhook events given up: a final 4xx, retries exhausted, or the shutdown deadline",
                s.given_up,
            ),
            (
                "herald_webhook_events_dropped",
                "Webhook events dropped because the target's queue was full",
                s.dropped,
            ),
            (
                "herald_webhook_events_cancelled",
                "channel_vacated / member_removed cancelled by a return within the delay",
                s.cancelled,
            ),
        ] {
            counter(&mut enc, name, help, v)?;
        }
        Ok(())
    }
}
