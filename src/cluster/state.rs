//! Keeping this node's share of the cluster state in Redis: its subscription and connection
//! counts (absolute values, so a write can be repeated or coalesced), and the full
//! re-registration after the pub/sub connection was (re)established, which repairs a Redis that
//! restarted empty or lost this node.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::RedisResult;
use tokio::time::Instant;

use super::hooks::resync_occupancy;
use super::link::{join_cmd, leave_cmd, JoinArgs, LinkState};
use super::users::{user_cmd, watch_cmd};
use super::{queries, wire, Shared};
use crate::protocol::ChannelKind;

/// Writes changed subscription and connection counts (all of them when `all`).
pub(super) async fn flush_counts(
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
        // Subscription counting: the other nodes re-read the count once it is in Redis.
        let counting = shared
            .apps
            .by_id(app)
            .is_some_and(|a| a.config().subscription_count);
        if counting && !ChannelKind::of(channel).is_presence() {
            let notice = wire::count(&shared.node, app, channel);
            pipe.publish(&shared.bus, notice.as_ref()).ignore();
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

/// Re-registers everything this node holds: counts (absolute), presence members (announced
/// when new cluster-wide: every node's view drops a member_added its sockets already know, so
/// only sockets that missed the member hear of it), and forgets
/// entries Redis still has for users who left while it was unreachable (announcing those).
/// A reconciliation follows shortly, for what no announcement covers.
pub(super) async fn resync(
    shared: &Shared,
    conn: &mut ConnectionManager,
    st: &mut LinkState,
) -> RedisResult<()> {
    tracing::debug!(node = %shared.node, "cluster: re-registering state");
    let subs_key = queries::subs_key(&shared.prefix, &shared.node);
    let pres_key = queries::pres_key(&shared.prefix, &shared.node);
    let mut counts = redis::pipe();
    counts.atomic().del(&subs_key).ignore();
    let mut keep: HashSet<String> = HashSet::new();
    let mut joins = redis::pipe();
    for (app_id, ns) in shared.local.all() {
        for (channel, c) in ns.channels.list("") {
            counts
                .hset(
                    &subs_key,
                    queries::field(&app_id, &channel),
                    c.subscriptions,
                )
                .ignore();
        }
        let max = shared
            .apps
            .by_id(&app_id)
            .map_or(usize::MAX, |a| a.config().max_presence_members);
        let state = ns.channels.presence_state();
        // Pending sockets are confirmed later (`rejoin_pending`), once every node is back.
        for (channel, _, m) in &state.pending {
            keep.insert(format!("{app_id}\n{channel}\n{}", m.key));
        }
        for (channel, m) in &state.members {
            keep.insert(format!("{app_id}\n{channel}\n{}", m.key));
            let wire = m.to_wire();
            let args = JoinArgs {
                app: &app_id,
                channel,
                user: &m.key,
                member: &wire,
                socket: "",
                max,
                register: true,
                announce: true,
                webhooks: match shared.member_delay(&app_id) {
                    Some(_) => "0",
                    None => "",
                },
            };
            join_cmd(shared, &mut joins, &args);
        }
    }
    resync_occupancy(shared, &mut joins);
    counts.query_async::<()>(conn).await?;
    resync_users(shared, conn, &mut joins).await?;
    let held: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&pres_key)
        .query_async(conn)
        .await?;
    for entry in held.iter().filter(|e| !keep.contains(*e)) {
        let mut parts = entry.splitn(3, '\n');
        if let (Some(app), Some(channel), Some(user)) = (parts.next(), parts.next(), parts.next()) {
            let delay = shared.member_delay(app);
            leave_cmd(shared, &mut joins, app, channel, user, delay);
        }
    }
    if !joins.is_empty() {
        joins.query_async::<()>(conn).await?;
    }
    flush_counts(shared, conn, st, true).await?;
    load_cache(shared, conn).await?;
    redis::cmd("PUBLISH")
        .arg(&shared.bus)
        .arg(wire::hello(&shared.node).as_ref())
        .query_async::<()>(conn)
        .await?;
    // Once the other nodes have re-registered too, tell each socket what it missed.
    st.next_reconcile = Instant::now() + shared.heartbeat * 2;
    tracing::debug!(node = %shared.node, "cluster: state re-registered");
    Ok(())
}

/// Watchlist events: registers this node's signed-in users (announcing those new
/// cluster-wide) and queues offline for those Redis still lists but this node no longer holds.
async fn resync_users(
    shared: &Shared,
    conn: &mut ConnectionManager,
    pipe: &mut redis::Pipeline,
) -> RedisResult<()> {
    let users_key = format!("{}n:{}:users", shared.prefix, shared.node);
    let mut keep: HashSet<String> = HashSet::new();
    for app in shared
        .apps
        .all()
        .into_iter()
        .filter(|a| a.config().watchlist_events)
    {
        let Some(ns) = shared.local.ns(app.id()) else {
            continue;
        };
        for user in ns.online_users() {
            user_cmd(shared, pipe, &shared.scripts.online, app.id(), &user);
            keep.insert(format!("{}\n{user}", app.id()));
        }
    }
    let held: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&users_key)
        .query_async(conn)
        .await?;
    for entry in held.iter().filter(|e| !keep.contains(*e)) {
        if let Some((app, user)) = entry.split_once('\n') {
            user_cmd(shared, pipe, &shared.scripts.offline, app, user);
        }
    }
    Ok(())
}

/// Confirms every pending presence socket anew (its confirmation may have been lost with the
/// pub/sub connection); run after the other nodes re-registered, so the snapshots are whole.
/// A socket confirmed twice takes the first answer only.
pub(super) async fn rejoin_pending(
    shared: &Shared,
    conn: &mut ConnectionManager,
) -> RedisResult<()> {
    let mut joins = redis::pipe();
    for (app_id, ns) in shared.local.all() {
        let max = shared
            .apps
            .by_id(&app_id)
            .map_or(usize::MAX, |a| a.config().max_presence_members);
        for (channel, socket, m) in ns.channels.presence_state().pending {
            let (wire, sock) = (m.to_wire(), socket.to_string());
            let args = JoinArgs {
                app: &app_id,
                channel: &channel,
                user: &m.key,
                member: &wire,
                socket: &sock,
                max,
                register: true,
                announce: true,
                webhooks: match shared.member_delay(&app_id) {
                    Some(_) => "1",
                    None => "",
                },
            };
            join_cmd(shared, &mut joins, &args);
        }
        // Watchers get a fresh snapshot: transitions may have been missed meanwhile.
        if shared
            .apps
            .by_id(&app_id)
            .is_some_and(|a| a.config().watchlist_events)
        {
            for (socket, ids) in ns.watchlists.lock().repend_all() {
                watch_cmd(shared, &mut joins, &app_id, &socket.to_string(), &ids);
            }
        }
    }
    if !joins.is_empty() {
        joins.query_async::<()>(conn).await?;
    }
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
