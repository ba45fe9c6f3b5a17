//! The queued writes ([`Op`]) and the Redis commands they become. Each per-node script is
//! called as `EVAL <script> 0 <prefix> <node> …` (see `scripts.rs` for their arguments and
//! decisions); the link task (`link.rs`) sends these in order, batched in pipelines, and the
//! re-registration (`state.rs`) reuses the same builders.

use std::sync::Arc;

use bytes::Bytes;

use super::hooks::{hook_inbox, sweep_cmd};
use super::Shared;

/// One queued write, in the order the node made them.
#[derive(Debug)]
pub(super) enum Op {
    /// Publish on the cluster channel.
    Publish(Bytes),
    /// Remember a cache channel's last event for nodes that start later.
    CacheSet {
        key: String,
        value: String,
        ttl_ms: u64,
    },
    /// A presence join (see `scripts::JOIN_BODY`).
    Join {
        app: String,
        channel: String,
        user: Arc<str>,
        member: String,
        socket: String,
        max: usize,
        register: bool,
        /// The app's presence members are tracked for webhooks.
        webhooks: bool,
    },
    /// The node's last socket of a user left a presence channel.
    Leave {
        app: String,
        channel: String,
        user: Arc<str>,
        /// The member_removed webhook delay, for an app whose members are tracked.
        delay: Option<u64>,
    },
    /// Webhooks: the node's first subscriber of a channel (`scripts::OCCUPY_BODY`).
    Occupy { app: String, channel: String },
    /// Webhooks: the node's last subscriber of a channel left (`scripts::VACATE_BODY`).
    Vacate {
        app: String,
        channel: String,
        delay: u64,
    },
    /// Webhooks: send the delayed webhooks that are due (`scripts::SWEEP_BODY`).
    Sweep,
    /// Watchlist events: the node's first signed-in socket of a user (`scripts::ONLINE_BODY`).
    Online { app: String, user: String },
    /// Watchlist events: the node's last signed-in socket of a user went.
    Offline { app: String, user: String },
    /// Watchlist events: which of `ids` are online, answered on this node's channel for
    /// `socket` (`scripts::WATCH_BODY`).
    Watch {
        app: String,
        socket: String,
        ids: Vec<Arc<str>>,
    },
}

/// Adds one queued write to the pipeline the link task sends.
pub(super) fn add_op(shared: &Shared, pipe: &mut redis::Pipeline, op: &Op) {
    match op {
        Op::Publish(payload) => {
            pipe.cmd("PUBLISH")
                .arg(&shared.bus)
                .arg(payload.as_ref())
                .ignore();
        }
        Op::CacheSet { key, value, ttl_ms } => {
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg((*ttl_ms).max(1))
                .ignore();
        }
        Op::Join {
            app,
            channel,
            user,
            member,
            socket,
            max,
            register,
            webhooks,
        } => {
            let args = JoinArgs {
                app,
                channel,
                user,
                member,
                socket,
                max: *max,
                register: *register,
                announce: true,
                webhooks: if *webhooks { "1" } else { "" },
            };
            join_cmd(shared, pipe, &args);
        }
        Op::Leave {
            app,
            channel,
            user,
            delay,
        } => leave_cmd(shared, pipe, app, channel, user, *delay),
        Op::Occupy { app, channel } => occupy_cmd(shared, pipe, app, channel, true),
        Op::Vacate {
            app,
            channel,
            delay,
        } => vacate_cmd(shared, pipe, app, channel, *delay),
        Op::Sweep => sweep_cmd(shared, pipe),
        Op::Online { app, user } => user_cmd(shared, pipe, &shared.scripts.online, app, user),
        Op::Offline { app, user } => user_cmd(shared, pipe, &shared.scripts.offline, app, user),
        Op::Watch { app, socket, ids } => watch_cmd(shared, pipe, app, socket, ids),
    }
}

/// The leave script for one of this node's presence entries.
pub(super) fn leave_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    channel: &str,
    user: &str,
    delay: Option<u64>,
) {
    node_script(shared, pipe, &shared.scripts.leave)
        .arg(app)
        .arg(channel)
        .arg(user)
        .arg(&shared.bus)
        .arg(hook_inbox(shared))
        .arg(delay.map(|d| d.to_string()).unwrap_or_default())
        .ignore();
}

/// The arguments of the join script (see `scripts.rs`).
pub(super) struct JoinArgs<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    pub user: &'a str,
    pub member: &'a str,
    /// The socket to confirm; empty for none.
    pub socket: &'a str,
    pub max: usize,
    /// This node's first socket of the user.
    pub register: bool,
    /// Publish member_added when the user is new cluster-wide.
    pub announce: bool,
    /// Webhooks: '' (the app's members are not tracked), '1' (member_added is decided), '0'
    /// (re-registration: only a pending member_removed is cancelled).
    pub webhooks: &'a str,
}

pub(super) fn join_cmd(shared: &Shared, pipe: &mut redis::Pipeline, j: &JoinArgs<'_>) {
    let flag = |b: bool| if b { "1" } else { "0" };
    node_script(shared, pipe, &shared.scripts.join)
        .arg(j.app)
        .arg(j.channel)
        .arg(j.user)
        .arg(j.member)
        .arg(j.socket)
        .arg(j.max)
        .arg(&shared.bus)
        .arg(&shared.inbox)
        .arg(flag(j.register))
        .arg(flag(j.announce))
        .arg(j.webhooks)
        .ignore();
}

/// The occupy script (`announce` false: re-registration, no webhook).
pub(super) fn occupy_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    channel: &str,
    announce: bool,
) {
    node_script(shared, pipe, &shared.scripts.occupy)
        .arg(app)
        .arg(channel)
        .arg(&shared.inbox)
        .arg(if announce { "1" } else { "0" })
        .ignore();
}

/// The vacate script.
pub(super) fn vacate_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    channel: &str,
    delay: u64,
) {
    node_script(shared, pipe, &shared.scripts.vacate)
        .arg(app)
        .arg(channel)
        .arg(hook_inbox(shared))
        .arg(delay)
        .ignore();
}

/// The online or offline script (watchlist events) for one of this node's signed-in users.
pub(super) fn user_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    script: &str,
    app: &str,
    user: &str,
) {
    node_script(shared, pipe, script)
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

/// Starts `EVAL <script> 0 <prefix> <node>` in `pipe`, the preamble of every per-node script;
/// the caller adds the script's own arguments.
fn node_script<'p>(
    shared: &Shared,
    pipe: &'p mut redis::Pipeline,
    script: &str,
) -> &'p mut redis::Pipeline {
    pipe.cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
}
