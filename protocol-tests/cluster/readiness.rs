//! Readiness and the Redis metrics of a clustered node: `herald_redis_up` is 1 and `/ready` is
//! 200 while Redis serves; with redis-server stopped, 0 and 503 (on the main port and on the
//! metrics listener) and an outage is counted; once Redis is back, 1 and 200 again, with a
//! pub/sub reconnect counted.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use crate::harness::*;

/// The metrics listener's address, from the node's start-up log line.
fn metrics_addr(log: &str) -> SocketAddr {
    let rest = log
        .split("metrics on http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no metrics line in:\n{log}"));
    rest.split('/').next().unwrap().parse().unwrap()
}

/// One sample's value from `/metrics` (`None` when absent).
async fn sample(addr: SocketAddr, name: &str) -> Option<f64> {
    let resp = http(addr, "GET", "/metrics", b"").await;
    let text = String::from_utf8(resp.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn ready(addr: SocketAddr) -> u16 {
    http(addr, "GET", "/ready", b"").await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gauge_and_readiness_follow_redis() {
    let mut c = Cluster::start(0).await;
    c.config.metrics.enabled = true;
    c.config.metrics.port = 0;
    c.add_node().await;
    let addr = c.node(0).addr;
    let maddr = metrics_addr(&c.node(0).stderr());
    let wait = Duration::from_secs(10);
    converge("redis up", wait, Some(1.0), || {
        sample(maddr, "herald_redis_up")
    })
    .await;
    assert_eq!(ready(addr).await, 200);
    assert_eq!(ready(maddr).await, 200);
    assert_eq!(sample(maddr, "herald_redis_outage_buffer").await, Some(0.0));

    c.redis.stop();
    converge("ready while Redis is down", wait, (503, 503), || async {
        (ready(addr).await, ready(maddr).await)
    })
    .await;
    converge("redis down", wait, Some(0.0), || {
        sample(maddr, "herald_redis_up")
    })
    .await;
    // A trigger during the outage is held for Redis.
    c.node(0).api().trigger(&["held"], "e", "x").await;
    converge("held publish", wait, true, || async {
        sample(maddr, "herald_redis_outage_buffer").await >= Some(1.0)
    })
    .await;
    converge("outage counted", wait, Some(1.0), || {
        sample(maddr, "herald_redis_outages_total")
    })
    .await;

    c.redis.start().await;
    converge("ready again", wait, (200, 200), || async {
        (ready(addr).await, ready(maddr).await)
    })
    .await;
    assert_eq!(sample(maddr, "herald_redis_up").await, Some(1.0));
    converge("reconnect counted", wait, true, || async {
        sample(maddr, "herald_redis_reconnects_total").await >= Some(1.0)
    })
    .await;
    assert_eq!(
        sample(maddr, r#"herald_cluster_dropped_total{reason="overflow"}"#).await,
        Some(0.0)
    );
    assert_eq!(http(addr, "GET", "/metrics", b"").await.status, 404);
}
