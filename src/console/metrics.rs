//! The console's metrics, read on each scrape: viewers connected and events lost by lagging
//! viewers (from the [`Tap`]), sign-ins refused by the throttle (registered only when
//! `[console] enabled`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::throttle::SignInThrottle;
use super::Tap;

/// Encodes the console's viewer gauge, dropped-events and throttled sign-ins counters.
#[derive(Debug)]
pub struct ConsoleCollector {
    /// The tap (viewers, drops).
    pub tap: Arc<Tap>,
    /// The sign-in throttle (refusals).
    pub throttle: Arc<SignInThrottle>,
}

impl Collector for ConsoleCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        ConstGauge::new(self.tap.viewers() as i64).encode(enc.encode_descriptor(
            "herald_console_viewers",
            "Live debug console streams open on this node",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(self.tap.dropped()).encode(enc.encode_descriptor(
            "herald_console_events_dropped",
            "Console events lost because a viewer fell too far behind",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(self.throttle.refused()).encode(enc.encode_descriptor(
            "herald_console_signins_throttled",
            "Console sign-ins refused (429) after too many failures",
            None,
            MetricType::Counter,
        )?)
    }
}
