//! Cluster-wide reads: one Redis round trip each, over the other live nodes' keys (this node's
//! own counts come from memory, exact and current). Key names are documented in `scripts.rs`.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::RedisResult;

use super::{Cluster, Shared};

/// Other nodes' share of one channel, and the cluster-wide presence user count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteCounts {
    /// Subscriptions on the other live nodes.
    pub subscriptions: usize,
    /// Distinct users cluster-wide (presence channels; 0 otherwise).
    pub users: usize,
}

/// `P n:{node}:subs`.
pub(super) fn subs_key(prefix: &str, node: &str) -> String {
    format!("{prefix}n:{node}:subs")
}

/// `P n:{node}:conns`.
pub(super) fn conns_key(prefix: &str, node: &str) -> String {
    format!("{prefix}n:{node}:conns")
}

/// `P n:{node}:pres`.
pub(super) fn pres_key(prefix: &str, node: &str) -> String {
    format!("{prefix}n:{node}:pres")
}

/// `P pm:{app}:{channel}`: the members of a presence channel.
fn members_key(prefix: &str, app: &str, channel: &str) -> String {
    format!("{prefix}pm:{app}:{channel}")
}

/// `P cache:{app}:{channel}`.
pub(super) fn cache_key(prefix: &str, app: &str, channel: &str) -> String {
    format!("{prefix}cache:{app}:{channel}")
}

/// `(app, channel)` of a cache key (channel names never hold `:`).
pub(super) fn parse_cache_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?
        .strip_prefix("cache:")?
        .rsplit_once(':')
}

/// A glob that matches `s` literally (for SCAN MATCH).
pub(super) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The hash field of a channel in a node's subscription counts.
pub(super) fn field(app: &str, channel: &str) -> String {
    format!("{app}\n{channel}")
}

pub(super) async fn remote_counts(
    shared: &Shared,
    conn: &mut ConnectionManager,
    app: &str,
    channel: &str,
) -> RedisResult<RemoteCounts> {
    let peers = shared.peers.read().clone();
    let f = field(app, channel);
    let mut pipe = redis::pipe();
    for node in peers.iter() {
        pipe.hget(subs_key(&shared.prefix, node), &f);
    }
    pipe.hlen(members_key(&shared.prefix, app, channel));
    let values: Vec<Option<usize>> = pipe.query_async(conn).await?;
    let users = values.last().copied().flatten().unwrap_or(0);
    let subscriptions = values[..values.len() - 1].iter().flatten().sum();
    Ok(RemoteCounts {
        subscriptions,
        users,
    })
}

pub(super) async fn remote_channels(
    shared: &Shared,
    conn: &mut ConnectionManager,
    app: &str,
    prefix: &str,
) -> RedisResult<Vec<(String, usize)>> {
    let peers = shared.peers.read().clone();
    if peers.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for node in peers.iter() {
        pipe.hgetall(subs_key(&shared.prefix, node));
    }
    let maps: Vec<HashMap<String, usize>> = pipe.query_async(conn).await?;
    let wanted = field(app, prefix);
    let mut sums: HashMap<String, usize> = HashMap::new();
    for map in maps {
        for (f, n) in map {
            if f.starts_with(&wanted) && n > 0 {
                let channel = &f[app.len() + 1..];
                *sums.entry(channel.to_owned()).or_default() += n;
            }
        }
    }
    Ok(sums.into_iter().collect())
}

pub(super) async fn user_counts(
    shared: &Shared,
    conn: &mut ConnectionManager,
    app: &str,
    channels: &[&str],
) -> RedisResult<Vec<usize>> {
    if channels.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for ch in channels {
        pipe.hlen(members_key(&shared.prefix, app, ch));
    }
    pipe.query_async(conn).await
}

pub(super) async fn user_ids(
    shared: &Shared,
    conn: &mut ConnectionManager,
    app: &str,
    channel: &str,
) -> RedisResult<Vec<String>> {
    redis::cmd("HKEYS")
        .arg(members_key(&shared.prefix, app, channel))
        .query_async(conn)
        .await
}

pub(super) async fn remote_connections(
    shared: &Shared,
    conn: &mut ConnectionManager,
    app: &str,
) -> RedisResult<usize> {
    let peers = shared.peers.read().clone();
    if peers.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for node in peers.iter() {
        pipe.hget(conns_key(&shared.prefix, node), app);
    }
    let values: Vec<Option<usize>> = pipe.query_async(conn).await?;
    Ok(values.into_iter().flatten().sum())
}

impl Cluster {
    /// Other nodes' counts for one channel, plus the cluster-wide user count of a presence
    /// channel; `Err` when Redis does not answer (the caller answers locally).
    pub async fn remote_counts(
        &self,
        app: &str,
        channel: &str,
    ) -> redis::RedisResult<RemoteCounts> {
        let shared = &self.shared;
        self.twice(|mut c| async move { self::remote_counts(shared, &mut c, app, channel).await })
            .await
    }

    /// Other nodes' occupied channels (with their subscription counts) under a prefix.
    pub async fn remote_channels(
        &self,
        app: &str,
        prefix: &str,
    ) -> redis::RedisResult<Vec<(String, usize)>> {
        let shared = &self.shared;
        self.twice(|mut c| async move { self::remote_channels(shared, &mut c, app, prefix).await })
            .await
    }

    /// Cluster-wide user counts of presence channels.
    pub async fn user_counts(
        &self,
        app: &str,
        channels: &[&str],
    ) -> redis::RedisResult<Vec<usize>> {
        let shared = &self.shared;
        self.twice(|mut c| async move { self::user_counts(shared, &mut c, app, channels).await })
            .await
    }

    /// Cluster-wide distinct users of a presence channel.
    pub async fn user_ids(&self, app: &str, channel: &str) -> redis::RedisResult<Vec<String>> {
        let shared = &self.shared;
        self.twice(|mut c| async move { self::user_ids(shared, &mut c, app, channel).await })
            .await
    }

    /// Other nodes' open connections of an app.
    pub async fn remote_connections(&self, app: &str) -> redis::RedisResult<usize> {
        let shared = &self.shared;
        self.twice(|mut c| async move { self::remote_connections(shared, &mut c, app).await })
            .await
    }

    /// Runs a query, and once more if the connection had dropped (the first command after Redis
    /// came back fails while the connection manager reconnects).
    async fn twice<T, F, Fut>(&self, query: F) -> redis::RedisResult<T>
    where
        F: Fn(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match query(self.queries.clone()).await {
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                query(self.queries.clone()).await
            }
            done => done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        assert_eq!(cache_key("h:", "app", "cache-x"), "h:cache:app:cache-x");
        assert_eq!(
            parse_cache_key("h:", "h:cache:my:app:cache-x"),
            Some(("my:app", "cache-x"))
        );
        assert_eq!(parse_cache_key("h:", "other:cache:a:b"), None);
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
