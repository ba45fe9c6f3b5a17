//! The cluster link's metrics, read from its shared state on each scrape: whether Redis is up,
//! outages and pub/sub reconnects, the outage buffer's size, and what was dropped or skipped
//! ([`super::ClusterStats`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::Shared;

/// Encodes the cluster metrics of this node.
pub(super) struct ClusterCollector(pub(super) Arc<Shared>);

impl std::fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterCollector({})", self.0.node)
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for ClusterCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let st = &s.stats;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let held = s.queue.lock().len();
        gauge(
            &mut enc,
            "herald_redis_up",
            "1 when Redis answers and the pub/sub listener is subscribed, else 0",
            i64::from(s.is_up()),
        )?;
        counter(
            &mut enc,
            "herald_redis_outages",
            "Times the link to Redis was lost",
            get(&st.outages),
        )?;
        counter(
            &mut enc,
            "herald_redis_reconnects",
            "Times the pub/sub listener subscribed again after losing its connection",
            get(&st.reconnects),
        )?;
        gauge(
            &mut enc,
            "herald_redis_outage_buffer",
            "Cross-node writes queued for Redis (held while it is unreachable)",
            held as i64,
        )?;
        let mut m = enc.encode_descriptor(
            "herald_cluster_dropped",
            "Held cross-node messages dropped, by reason (overflow, age, refused)",
            None,
            MetricType::Counter,
        )?;
        for (reason, v) in [
            ("overflow", get(&st.dropped_overflow)),
            ("age", get(&st.dropped_age)),
            ("refused", get(&st.dropped_refused)),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
        }
        counter(
            &mut enc,
            "herald_cluster_skipped_foreign",
            "Pub/sub messages that were not Herald's or were malformed (skipped)",
            get(&st.skipped_foreign),
        )
    }
}
