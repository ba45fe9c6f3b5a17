//! The link task: the only writer to Redis. It sends the queued writes in order (batched in
//! pipelines), keeps this node's counts in Redis, heartbeats, reaps dead nodes, re-registers this
//! node's state after the pub/sub connection was (re)established, and on an outage holds the
//! writes (bounded by count and age, see `Shared::push`) and retries with backoff.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, RedisResult, RetryMethod};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{queries, Op, Shared};

/// Writes sent in one pipeline.
const BATCH: usize = 256;
/// How often connection counts are compared with what Redis has.
const COUNT_TICK: Duration = Duration::from_millis(100);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the link task remembers between steps.
struct LinkState {
    next_beat: Instant,
    /// Connection counts last written, per app.
    conns: HashMap<String, usize>,
    /// The node has registered at least once (a later "new" heartbeat means Redis forgot it).
    registered: bool,
    /// The last step failed: before sending held writes, wait for the other nodes to
    /// resubscribe so they do not miss them.
    recovering: bool,
    /// Peers known before the outage.
    peers_before: usize,
}

pub(super) async fn run(shared: Arc<Shared>, mut conn: ConnectionManager, stop: CancellationToken) {
    let mut st = LinkState {
        next_beat: Instant::now(),
        conns: HashMap::new(),
        registered: false,
        recovering: false,
        peers_before: 0,
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        match step(&shared, &mut conn, &mut st).await {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                if !shared.up.swap(true, Ordering::AcqRel) {
                    let held = shared.queue.lock().len();
                    tracing::info!(held, "cluster: Redis reachable again");
                }
            }
            Err(e) => {
                if shared.up.swap(false, Ordering::AcqRel) {
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
    if let Err(e) = send_queue(shared, conn).await {
        tracing::warn!("cluster: could not send queued messages before leaving: {e}");
    }
    let reaped: RedisResult<i64> = redis::cmd("EVAL")
        .arg(&shared.scripts.reap)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(&shared.bus)
        .arg("")
        .query_async(conn)
        .await;
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
    if st.recovering {
        wait_for_subscribers(shared, conn, st.peers_before + 1).await?;
        st.recovering = false;
    }
    if shared.resync.swap(false, Ordering::AcqRel) {
        if let Err(e) = resync(shared, conn, st).await {
            shared.resync.store(true, Ordering::Release);
            return Err(e);
        }
    }
    send_queue(shared, conn).await?;
    flush_counts(shared, conn, st, false).await?;
    if Instant::now() >= st.next_beat {
        heartbeat(shared, conn, st).await?;
        st.next_beat = Instant::now() + shared.heartbeat;
    }
    refresh_quotas(shared, conn).await
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
        } => {
            join_cmd(
                shared, pipe, app, channel, user, member, socket, *max, *register, true,
            );
        }
        Op::Leave { app, channel, user } => {
            pipe.cmd("EVAL")
                .arg(&shared.scripts.leave)
                .arg(0)
                .arg(&shared.prefix)
                .arg(&shared.node)
                .arg(app)
                .arg(channel)
                .arg(&**user)
                .arg(&shared.bus)
                .ignore();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn join_cmd(
    shared: &Shared,
    pipe: &mut redis::Pipeline,
    app: &str,
    channel: &str,
    user: &str,
    member: &str,
    socket: &str,
    max: usize,
    register: bool,
    announce: bool,
) {
    let flag = |b: bool| if b { "1" } else { "0" };
    pipe.cmd("EVAL")
        .arg(&shared.scripts.join)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(app)
        .arg(channel)
        .arg(user)
        .arg(member)
        .arg(socket)
        .arg(max)
        .arg(&shared.bus)
        .arg(&shared.inbox)
        .arg(flag(register))
        .arg(flag(announce))
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

/// Writes changed subscription and connection counts (all of them when `all`).
async fn flush_counts(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
    all: bool,
) -> RedisResult<()> {
    let dirty: HashSet<(String, String)> = std::mem::take(&mut *shared.dirty.lock());
    let subs_key = queries::subs_key(&shared.prefix, &shared.node);
    let conns_key = queries::conns_key(&shared.prefix, &shared.node);
    let mut pipe = redis::pipe();
    let mut any = false;
    for (app, channel) in &dirty {
        let Some(ns) = shared.local.ns(app) else {
            continue;
        };
        let n = ns.channels.counts(channel).subscriptions;
        let field = queries::field(app, channel);
        if n == 0 {
            pipe.hdel(&subs_key, field).ignore();
        } else {
            pipe.hset(&subs_key, field, n).ignore();
        }
        any = true;
    }
    let mut written = Vec::new();
    for app in shared.apps.all() {
        let n = app.connection_count();
        if all || st.conns.get(app.id()) != Some(&n) {
            pipe.hset(&conns_key, app.id(), n).ignore();
            written.push((app.id().to_owned(), n));
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    if let Err(e) = pipe.query_async::<()>(conn).await {
        shared.dirty.lock().extend(dirty);
        return Err(e);
    }
    st.conns.extend(written);
    Ok(())
}

/// Re-registers everything this node holds: counts (absolute), presence members (without
/// announcing them again: clients know them), pending joins (confirmed anew), and forgets
/// entries Redis still has for users who left while it was unreachable (announcing those).
async fn resync(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
) -> RedisResult<()> {
    let subs_key = queries::subs_key(&shared.prefix, &shared.node);
    let pres_key = queries::pres_key(&shared.prefix, &shared.node);
    let mut counts = redis::pipe();
    counts.atomic().del(&subs_key).ignore();
    let mut keep: HashSet<String> = HashSet::new();
    let mut joins = redis::pipe();
    for (app_id, ns) in shared.local.all() {
        for (channel, c) in ns.channels.list("") {
            counts
                .hset(&subs_key, queries::field(app_id, &channel), c.subscriptions)
                .ignore();
        }
        let max = shared
            .apps
            .by_id(app_id)
            .map_or(usize::MAX, |a| a.config.max_presence_members);
        let state = ns.channels.presence_state();
        for (channel, m) in &state.members {
            keep.insert(format!("{app_id}\n{channel}\n{}", m.key));
            join_cmd(
                shared,
                &mut joins,
                app_id,
                channel,
                &m.key,
                &m.to_wire(),
                "",
                max,
                true,
                false,
            );
        }
        for (channel, socket, m) in &state.pending {
            keep.insert(format!("{app_id}\n{channel}\n{}", m.key));
            let sock = socket.to_string();
            join_cmd(
                shared,
                &mut joins,
                app_id,
                channel,
                &m.key,
                &m.to_wire(),
                &sock,
                max,
                true,
                true,
            );
        }
    }
    counts.query_async::<()>(conn).await?;
    let held: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&pres_key)
        .query_async(conn)
        .await?;
    for entry in held.iter().filter(|e| !keep.contains(*e)) {
        let mut parts = entry.splitn(3, '\n');
        if let (Some(app), Some(channel), Some(user)) = (parts.next(), parts.next(), parts.next()) {
            joins
                .cmd("EVAL")
                .arg(&shared.scripts.leave)
                .arg(0)
                .arg(&shared.prefix)
                .arg(&shared.node)
                .arg(app)
                .arg(channel)
                .arg(user)
                .arg(&shared.bus)
                .ignore();
        }
    }
    if !joins.is_empty() {
        joins.query_async::<()>(conn).await?;
    }
    flush_counts(shared, conn, st, true).await?;
    load_cache(shared, conn).await?;
    // The next heartbeat registers the node; it must not read as "Redis forgot us" again.
    st.registered = false;
    st.next_beat = Instant::now();
    tracing::debug!(node = %shared.node, "cluster: state re-registered");
    Ok(())
}

/// Loads cache channels' last events kept in Redis (a node that started after the event).
async fn load_cache(shared: &Shared, conn: &mut ConnectionManager) -> RedisResult<()> {
    let pattern = format!("{}cache:*", queries::escape_glob(&shared.prefix));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await?;
        for key in keys {
            let Some((app, channel)) = queries::parse_cache_key(&shared.prefix, &key) else {
                continue;
            };
            let Some(ns) = shared.local.ns(app) else {
                continue;
            };
            if ns.cache.get(channel).is_some() {
                continue;
            }
            let (value, ttl): (Option<String>, i64) = redis::pipe()
                .get(&key)
                .cmd("PTTL")
                .arg(&key)
                .query_async(conn)
                .await?;
            if let (Some(v), true) = (value, ttl > 0) {
                if let Some((event, data)) = v.split_once('\n') {
                    ns.cache
                        .store(channel, event, data, Duration::from_millis(ttl as u64));
                }
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Records the heartbeat, learns the live peers and reaps the dead ones.
async fn heartbeat(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
) -> RedisResult<()> {
    let timeout_ms = shared.node_timeout.as_millis() as u64;
    let (added, live, dead): (i64, Vec<String>, Vec<String>) = redis::cmd("EVAL")
        .arg(&shared.scripts.heartbeat)
        .arg(0)
        .arg(&shared.prefix)
        .arg(&shared.node)
        .arg(timeout_ms)
        .query_async(conn)
        .await?;
    if added == 1 && st.registered {
        tracing::warn!("cluster: Redis had forgotten this node; re-registering its state");
        shared.resync.store(true, Ordering::Release);
        shared.wake.notify_one();
    }
    st.registered = true;
    let peers: Vec<String> = live.into_iter().filter(|n| *n != shared.node).collect();
    *shared.peers.write() = Arc::new(peers);
    for node in dead.iter().filter(|n| **n != shared.node) {
        let reaped: i64 = redis::cmd("EVAL")
            .arg(&shared.scripts.reap)
            .arg(0)
            .arg(&shared.prefix)
            .arg(node)
            .arg(&shared.bus)
            .arg(timeout_ms)
            .query_async(conn)
            .await?;
        if reaped == 1 {
            tracing::warn!(%node, "cluster: node stopped heartbeating; removed its sockets cluster-wide");
        }
    }
    Ok(())
}

/// Refreshes, for apps with `max_connections`, how many connections the other nodes hold.
async fn refresh_quotas(shared: &Shared, conn: &mut ConnectionManager) -> RedisResult<()> {
    for app in shared
        .apps
        .all()
        .filter(|a| a.config.max_connections.is_some())
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
    };
    if total <= 10 || total.is_power_of_two() {
        tracing::warn!(total, "cluster: dropped a {what}: {why}");
    }
}
