//! Cluster-wide webhooks: the adapter's hooks (`Cluster::occupied` / `vacated`, and the sink
//! set at start-up) and their Redis writes: a node's first and last subscriber of a channel
//! (occupy / vacate), the sweep of delayed webhooks that are due, the reaper's webhook
//! arguments, and re-registering this node's occupancy after Redis lost it. The decisions are
//! in the scripts (`scripts.rs`); what a script assigns to this node comes back as an `HF`
//! message, sent by the listener through `crate::webhooks::ClusterSink`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::RedisResult;

use super::{Cluster, Op, Shared};
use crate::config::WebhookEventType;
use crate::webhooks::ClusterSink;

/// How long after a delay is over its node sweeps (the delay starts in Redis, a little after
/// the node queued the write).
pub(super) const SWEEP_MARGIN: Duration = Duration::from_millis(50);

impl Cluster {
    /// Webhooks: from now on the occupancy and member transitions of the apps `sink` tracks
    /// are decided in Redis, and this node sends those Redis assigns to it.
    pub fn set_webhooks(&self, sink: Arc<ClusterSink>) {
        let _ = self.shared.webhooks.set(sink);
    }

    /// Webhooks: this node's first subscriber of a channel (nothing for an app whose
    /// occupancy is not tracked).
    pub fn occupied(&self, app_id: &str, channel: &str) {
        if self.shared.channel_delay(app_id).is_some() {
            self.push(Op::Occupy {
                app: app_id.to_owned(),
                channel: channel.to_owned(),
            });
        }
    }

    /// Webhooks: this node's last subscriber of a channel left.
    pub fn vacated(&self, app_id: &str, channel: &str) {
        if let Some(delay) = self.shared.channel_delay(app_id) {
            self.push(Op::Vacate {
                app: app_id.to_owned(),
                channel: channel.to_owned(),
                delay,
            });
            self.shared.sweep_after(Some(delay));
        }
    }
}

impl Shared {
    pub(super) fn channel_delay(&self, app: &str) -> Option<u64> {
        self.webhooks.get()?.channel_delay(app)
    }

    pub(super) fn member_delay(&self, app: &str) -> Option<u64> {
        self.webhooks.get()?.member_delay(app)
    }

    /// Webhooks: sweeps the delayed webhooks once a delay just started is over (heartbeats
    /// sweep too, for those whose node died or was slow).
    pub(super) fn sweep_after(self: &Arc<Self>, delay: Option<u64>) {
        let Some(delay) = delay.filter(|d| *d > 0) else {
            return;
        };
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay) + SWEEP_MARGIN).await;
            if let Some(me) = me.upgrade() {
                me.push(Op::Sweep);
            }
        });
    }
}

/// The occupy script (`announce` false: re-registration, no webhook).
pub(super) fn occupy_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    channel: &str,
    announce: bool,
) {
    pipe.cmd("EVAL")
        .arg(&shared.scripts.occupy)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(app)
        .arg(channel)
        .arg(&shared.inbox)
        .arg(if announce { "1" } else { "0" })
        .ignore();
}

/// Where a script sends this node's vacated/removed webhooks: its own channel, or '' while
/// it leaves the cluster (they then stay in Redis, due, for the others' sweeps).
pub(super) fn hook_inbox(shared: &Shared) -> &str {
    if shared.leaving.load(Ordering::Acquire) {
        ""
    } else {
        &shared.inbox
    }
}

/// The vacate script.
pub(super) fn vacate_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    channel: &str,
    delay: u64,
) {
    pipe.cmd("EVAL")
        .arg(&shared.scripts.vacate)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(app)
        .arg(channel)
        .arg(hook_inbox(shared))
        .arg(delay)
        .ignore();
}

/// The sweep script: due delayed webhooks are sent by this node.
pub(super) fn sweep_cmd(shared: &Shared, pipe: &mut redis::Pipeline) {
    pipe.cmd("EVAL")
        .arg(&shared.scripts.sweep)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.inbox)
        .ignore();
}

/// Sweeps at a heartbeat, when some app has cluster-wide webhooks.
pub(super) async fn sweep(shared: &Shared, conn: &mut ConnectionManager) -> RedisResult<()> {
    if shared.webhooks.get().is_none() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    sweep_cmd(shared, &mut pipe);
    pipe.query_async(conn).await
}

/// The reap script for `node` (`timeout_ms` `None`: the node leaves itself), with its webhook
/// arguments: the channel of the node that sends the webhooks of what the dead node emptied
/// ('' when a node leaves itself: they are delayed for the others to sweep), then each tracked
/// app and its delay.
pub(super) fn reap_cmd(shared: &Shared, node: &str, timeout_ms: Option<u64>) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(&shared.scripts.reap)
        .arg(0)
        .arg(&shared.prefix)
        .arg(node)
        .arg(&shared.bus)
        .arg(timeout_ms.map(|t| t.to_string()).unwrap_or_default());
    let Some(sink) = shared.webhooks.get() else {
        return cmd;
    };
    let leaving = timeout_ms.is_none();
    cmd.arg(if leaving { "" } else { shared.inbox.as_str() });
    for (app, delay) in sink.delays() {
        cmd.arg(app).arg(delay);
    }
    cmd
}

/// Re-registers this node's occupancy of the tracked apps' channels (no webhook: the channels
/// were occupied all along; a pending channel_vacated is cancelled).
pub(super) fn resync_occupancy(shared: &Shared, pipe: &mut redis::Pipeline) {
    if shared.webhooks.get().is_none() {
        return;
    }
    for (app_id, ns) in shared.local.all() {
        if shared.channel_delay(&app_id).is_none() {
            continue;
        }
        for (channel, _) in ns.channels.list("") {
            occupy_cmd(shared, pipe, &app_id, &channel, false);
        }
    }
}

/// The event type of an `HF` message's kind.
pub(super) fn kind(k: &str) -> Option<WebhookEventType> {
    Some(match k {
        "o" => WebhookEventType::ChannelOccupied,
        "v" => WebhookEventType::ChannelVacated,
        "a" => WebhookEventType::MemberAdded,
        "r" => WebhookEventType::MemberRemoved,
        _ => return None,
    })
}
