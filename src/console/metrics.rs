//! The console's metrics, read from the [`Tap`] on each scrape: viewers connected and events
//! lost by lagging viewers (registered only when `[console] enabled`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::Tap;

/// Encodes the console tap's viewer gauge and dropped-events counter.
#[derive(Debug)]
pub struct ConsoleCollector(pub Arc<Tap>);

impl Collector for ConsoleCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        ConstGauge::new(self.0.viewers() as i64).encode(enc.encode_descriptor(
            "herald_console_viewers",
            "Live debug console streams open on this node",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(self.0.dropped()).encode(enc.encode_descriptor(
            "herald_console_events_dropped",
            "Console events lost because a viewer fell too far behind",
            None,
            MetricType::Counter,
        )?)
    }
}
