//! The link task: the only writer to Redis. It sends the queued writes in order (batched in
//! pipelines), keeps this node's counts in Redis, heartbeats, reaps dead nodes, re-registers this
//! node's state after the pub/sub connection was (re)established, and on an outage holds the
//! writes (bounded by count and age, see `Shared::push`) and retries with backoff.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, RedisResult, RetryMethod};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hooks::{hook_inbox, occupy_cmd, reap_cmd, sweep, sweep_cmd, vacate_cmd};
use super::state::{flush_counts, rejoin_pending, resync};
use super::users::{counts_changed_everywhere, user_cmd, watch_cmd};
use super::{queries, Op, Shared};

/// Writes sent in one pipeline.
const BATCH: usize = 256;
/// How often connection counts are compared with what Redis has.
const COUNT_TICK: Duration = Duration::from_millis(100);
/// How often presence member lists are reconciled anyway (after a failure it is sooner).
const RECONCILE_EVERY: Duration = Duration::from_secs(30);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the link task remembers between steps.
pub(super) struct LinkState {
    pub(super) next_beat: Instant,
    /// Connection counts last written, per app.
    pub(super) conns: HashMap<String, usize>,
    /// The node has registered at least once (a later "new" heartbeat means Redis forgot it).
    pub(super) registered: bool,
    /// The last step failed: before sending held writes, wait for the other nodes to
    /// resubscribe so they do not miss them.
    pub(super) recovering: bool,
    /// Peers known before the outage.
    pub(super) peers_before: usize,
    /// Pending presence sockets are to be confirmed anew (after a re-registration).
    pub(super) rejoin: bool,
    /// An outage was logged (so its end is logged too).
    pub(super) recovering_logged: bool,
    /// When this node next reconciles its sockets' member lists with Redis.
    pub(super) next_reconcile: Instant,
    /// No node is reaped before this (set when Redis comes back).
    pub(super) no_reap_until: Instant,
}

pub(super) async fn run(shared: Arc<Shared>, mut conn: ConnectionManager, stop: CancellationToken) {
    let mut st = LinkState {
        next_beat: Instant::now(),
        conns: HashMap::new(),
        registered: false,
        recovering: false,
        peers_before: 0,
        next_reconcile: Instant::now() + RECONCILE_EVERY,
        recovering_logged: false,
        rejoin: false,
        no_reap_until: Instant::now(),
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        match step(&shared, &mut conn, &mut st).await {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                if !shared.up.swap(true, Ordering::AcqRel) {
                    if st.recovering_logged {
                        tracing::info!("cluster: Redis reachable again; held messages sent");
                    }
                    st.recovering_logged = false;
                }
            }
            Err(e) => {
                if shared.up.swap(false, Ordering::AcqRel) {
                    st.recovering_logged = true;
                    shared.stats.outages.fetch_add(1, Ordering::Relaxed);
                    st.peers_before = shared.peers.read().len();
                    tracing::warn!(
                        "cluster: Redis unreachable ({e}); serving local sockets, holding \
                         cross-node messages (at most {} for {} s)",
                        shared.max_held,
                        shared.max_age.as_secs()
                    );
                }
                st.recovering = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.relinked.notified() => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        let wake_at = st.next_beat.min(Instant::now() + COUNT_TICK);
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = stop.cancelled() => break,
        }
    }
    leave_cluster(&shared, &mut conn, &mut st).await;
}

/// On shutdown: send what is queued, then remove this node's state (its users leave at once).
async fn leave_cluster(shared: &Shared, conn: &mut ConnectionManager, st: &mut LinkState) {
    st.recovering = false;
    shared.leaving.store(true, Ordering::Release);
    if let Err(e) = send_queue(shared, conn).await {
        tracing::warn!("cluster: could not send queued messages before leaving: {e}");
    }
    let reaped: RedisResult<i64> = reap_cmd(shared, &shared.node, None).query_async(conn).await;
    match reaped {
        Ok(_) => tracing::info!(node = %shared.node, "cluster: left the cluster"),
        Err(e) => tracing::warn!("cluster: could not deregister from Redis: {e}"),
    }
}

async fn step(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
) -> RedisResult<()> {
    if !shared.subscribed.load(Ordering::Acquire) {
        return Err(RedisError::from((
            redis::ErrorKind::Io,
            "the pub/sub connection is down",
        )));
    }
    if st.recovering {
        // Survivors of a long outage all look dead at first: give them time to heartbeat.
        st.no_reap_until = Instant::now() + shared.node_timeout;
        wait_for_subscribers(shared, conn, st.peers_before + 1).await?;
        // Whatever Redis kept, this node re-registers before it sends what it held.
        shared.resync.store(true, Ordering::Release);
    }
    if shared.resync.swap(false, Ordering::AcqRel) {
        if let Err(e) = resync(shared, conn, st).await {
            shared.resync.store(true, Ordering::Release);
            return Err(e);
        }
        heartbeat(shared, conn, st, true).await?;
        st.next_beat = Instant::now() + shared.heartbeat;
        st.rejoin = true;
    }
    if st.recovering {
        wait_for_peers(shared, conn, st).await?;
        st.recovering = false;
    }
    if st.rejoin {
        tracing::debug!("cluster: confirming pending presence joins");
        rejoin_pending(shared, conn).await?;
        st.rejoin = false;
    }
    send_queue(shared, conn).await?;
    flush_counts(shared, conn, st, false).await?;
    if Instant::now() >= st.next_beat {
        heartbeat(shared, conn, st, false).await?;
        st.next_beat = Instant::now() + shared.heartbeat;
    }
    if Instant::now() >= st.next_reconcile {
        reconcile(shared, conn).await?;
        st.next_reconcile = Instant::now() + RECONCILE_EVERY;
    }
    refresh_quotas(shared, conn).await
}

/// After an outage, waits (at most `node_timeout`) until as many other nodes as before have
/// re-registered (each does so right after its own re-registration), so held presence joins
/// get snapshots that list every node's members.
async fn wait_for_peers(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
) -> RedisResult<()> {
    let deadline = Instant::now() + shared.node_timeout;
    loop {
        heartbeat(shared, conn, st, false).await?;
        if shared.peers.read().len() >= st.peers_before || Instant::now() >= deadline {
            st.next_beat = Instant::now() + shared.heartbeat;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After an outage, waits (at most `node_timeout`) until as many nodes as before listen on the
/// cluster channel again, so the held messages reach them.
async fn wait_for_subscribers(
    shared: &Shared,
    conn: &mut ConnectionManager,
    want: usize,
) -> RedisResult<()> {
    let deadline = Instant::now() + shared.node_timeout;
    loop {
        let (_, n): (String, usize) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&shared.bus)
            .query_async::<(String, usize)>(conn)
            .await?;
        if n >= want || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends queued writes in order, a pipeline at a time. A write that waited longer than
/// `outage_buffer_age` is dropped (counted, logged). On a connection error the batch goes back
/// to the front of the queue.
async fn send_queue(shared: &Shared, conn: &mut ConnectionManager) -> RedisResult<()> {
    loop {
        // A write must not reach a Redis this node has not re-registered with (a restarted
        // one): stop as soon as the listener has lost its connection or awaits a resync.
        if !shared.subscribed.load(Ordering::Acquire) || shared.resync.load(Ordering::Acquire) {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "Redis connection being re-established",
            )));
        }
        let batch: Vec<_> = {
            let mut q = shared.queue.lock();
            while q
                .front()
                .is_some_and(|(at, _)| at.elapsed() > shared.max_age)
            {
                let (_, op) = q.pop_front().expect("front exists");
                let n = shared.stats.dropped_age.fetch_add(1, Ordering::Relaxed) + 1;
                log_dropped("held longer than outage_buffer_age", &op, n);
            }
            let n = q.len().min(BATCH);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        tracing::trace!(writes = batch.len(), "cluster: sending queued writes");
        let mut pipe = redis::pipe();
        for (_, op) in &batch {
            add_op(shared, &mut pipe, op);
        }
        match pipe.query_async::<()>(conn).await {
            Ok(()) => {}
            Err(e) if retryable(&e) => {
                let mut q = shared.queue.lock();
                for item in batch.into_iter().rev() {
                    q.push_front(item);
                }
                return Err(e);
            }
            Err(e) => {
                let n = shared
                    .stats
                    .dropped_refused
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    dropped = batch.len(),
                    total = n + batch.len() as u64,
                    "cluster: Redis refused a batch: {e}"
                );
            }
        }
    }
}

fn add_op(shared: &Shared, pipe: &mut redis::Pipeline, op: &Op) {
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
    pipe.cmd("EVAL")
        .arg(&shared.scripts.leave)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
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
    pipe.cmd("EVAL")
        .arg(&shared.scripts.join)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
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

/// Connection errors are retried (the writes are held); anything Redis itself refuses is not.
fn retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || !matches!(e.retry_method(), RetryMethod::NoRetry)
}

/// Records the heartbeat, learns the live peers and reaps the dead ones.
pub(super) async fn heartbeat(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
    register: bool,
) -> RedisResult<()> {
    let timeout_ms = shared.node_timeout.as_millis() as u64;
    let (status, live, dead): (i64, Vec<String>, Vec<String>) = redis::cmd("EVAL")
        .arg(&shared.scripts.heartbeat)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(timeout_ms)
        .arg(if register { "1" } else { "0" })
        .query_async(conn)
        .await?;
    if status == -1 && !shared.resync.swap(true, Ordering::AcqRel) {
        if st.registered {
            tracing::warn!("cluster: Redis had forgotten this node; re-registering its state");
        }
        shared.wake.notify_one();
    }
    st.registered |= register;
    let peers: Vec<String> = live.into_iter().filter(|n| *n != shared.node).collect();
    *shared.peers.write() = Arc::new(peers);
    if Instant::now() < st.no_reap_until {
        return Ok(());
    }
    sweep(shared, conn).await?;
    for node in dead.iter().filter(|n| **n != shared.node) {
        let reaped: i64 = reap_cmd(shared, node, Some(timeout_ms))
            .query_async(conn)
            .await?;
        if reaped == 1 {
            tracing::warn!(%node, "cluster: node stopped heartbeating; removed its sockets cluster-wide");
            counts_changed_everywhere(shared, conn).await?;
        }
    }
    Ok(())
}

/// Asks Redis to send this node the member list of every presence channel it has sockets in,
/// in order with the member events, so each socket is told what it missed during a failure
/// (a member who left while Redis was down or restarting, a node that was reaped).
async fn reconcile(shared: &Shared, conn: &mut ConnectionManager) -> RedisResult<()> {
    for (app_id, ns) in shared.local.all() {
        for chunk in ns.channels.viewed_channels().chunks(100) {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(&shared.scripts.members)
                .arg(0)
                .arg(&shared.prefix)
                .arg(&shared.inbox);
            for channel in chunk {
                cmd.arg(&app_id).arg(channel);
            }
            cmd.query_async::<()>(conn).await?;
        }
    }
    Ok(())
}

/// Refreshes, for apps with `max_connections`, how many connections the other nodes hold.
async fn refresh_quotas(shared: &Shared, conn: &mut ConnectionManager) -> RedisResult<()> {
    for app in shared
        .apps
        .all()
        .into_iter()
        .filter(|a| a.config().max_connections.is_some())
    {
        let n = queries::remote_connections(shared, conn, app.id()).await?;
        app.set_remote_connections(n);
    }
    Ok(())
}

/// One log line per dropped write: what it was, and the running total.
pub(super) fn log_dropped(why: &str, op: &Op, total: u64) {
    let what = match op {
        Op::Publish(_) => "broadcast",
        Op::CacheSet { .. } => "cache write",
        Op::Join { .. } => "presence join",
        Op::Leave { .. } => "presence leave",
        Op::Online { .. } => "watchlist online",
        Op::Offline { .. } => "watchlist offline",
        Op::Watch { .. } => "watchlist snapshot",
        Op::Occupy { .. } => "webhook occupancy",
        Op::Vacate { .. } => "webhook vacancy",
        Op::Sweep => "webhook sweep",
    };
    if total <= 10 || total.is_power_of_two() {
        tracing::warn!(total, "cluster: dropped a {what}: {why}");
    }
}
