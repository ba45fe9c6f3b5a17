//! The Redis writes of the two per-app extras: watchlist events (a user's online/offline
//! transitions on this node, a watcher's snapshot request) and subscription counting (the notice
//! that every count may have changed after a node died). The scripts are in `scripts.rs`; the
//! link task (`link.rs`) sends these in order with everything else.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::RedisResult;

use super::{wire, Shared};

/// The online or offline script (watchlist events) for one of this node's signed-in users.
pub(super) fn user_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    script: &str,
    app: &str,
    user: &str,
) {
    pipe.cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(app)
        .arg(user)
        .arg(&shared.bus)
        .ignore();
}

/// The watch script: a watcher's snapshot, answered on this node's channel.
pub(super) fn watch_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    socket: &str,
    ids: &[Arc<str>],
) {
    let cmd = pipe
        .cmd("EVAL")
        .arg(&shared.scripts.watch)
        .arg(0)
        .arg(&shared.prefix)
        .arg(app)
        .arg(socket)
        .arg(&shared.inbox);
    for id in ids {
        cmd.arg(id.as_ref());
    }
    cmd.ignore();
}

/// Subscription counting: a node's counts vanished, so every channel's cluster-wide count may
/// have changed; this node re-sends its own, the others on the published notice.
pub(super) async fn counts_changed_everywhere(
    shared: &Shared,
    conn: &mut ConnectionManager,
) -> RedisResult<()> {
    let counting: Vec<_> = shared
        .apps
        .all()
        .into_iter()
        .filter(|a| a.config().subscription_count)
        .collect();
    if counting.is_empty() {
        return Ok(());
    }
    for app in counting {
        shared.local.mark_all_counts(app.id());
    }
    redis::cmd("PUBLISH")
        .arg(&shared.bus)
        .arg(wire::count(&shared.node, "", "").as_ref())
        .query_async(conn)
        .await
}
