//! Horizontal scaling on Redis: several Herald nodes sharing one Redis behave as one server.
//!
//! [`Cluster`] is what the adapter calls when scaling is on. It never makes a socket or an HTTP
//! request wait on Redis for a write: broadcasts, presence joins and leaves, cache writes and
//! count updates are queued for the link task (`link.rs`), which sends them in order, batched,
//! and holds them (bounded by count and age) while Redis is unreachable. The listener task
//! (`listener.rs`) reads the one pub/sub connection and applies other nodes' messages to this
//! node's sockets. Queries read Redis directly (one round trip) and add this node's own
//! in-memory counts.
//!
//! Exactness comes from Redis: presence transitions are decided by atomic scripts
//! (`scripts.rs`) and announced in Redis order; each node re-registers what it holds whenever
//! its pub/sub connection is (re)established, so a Redis restarted empty is repopulated within
//! a heartbeat or so; a node that stops heartbeating is reaped by the survivors, exactly once.

mod hooks;
mod link;
mod listener;
mod metrics;
mod queries;
pub mod scripts;
mod state;
mod users;
pub mod wire;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::apps::{App, AppRegistry};
use crate::channels::MemberData;
use crate::config::ScalingConfig;
use crate::local::Local;
use crate::outbox::SocketId;
use crate::protocol::outbound::Frame;
use crate::webhooks::ClusterSink;
pub use queries::RemoteCounts;

/// Why the cluster link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL did not parse.
    #[error("invalid scaling.url: {0}")]
    Url(#[source] redis::RedisError),
}

/// Counters of what the cluster link dropped or skipped; never silent.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Held messages dropped because the outage buffer was full.
    pub dropped_overflow: AtomicU64,
    /// Held messages dropped because they waited longer than `outage_buffer_age`.
    pub dropped_age: AtomicU64,
    /// Messages Redis refused (a script error): dropped, logged.
    pub dropped_refused: AtomicU64,
    /// Pub/sub messages that were not Herald's or were malformed: skipped, logged.
    pub skipped_foreign: AtomicU64,
    /// Times the link to Redis was lost.
    pub outages: AtomicU64,
    /// Times the pub/sub listener subscribed again after losing its connection.
    pub reconnects: AtomicU64,
}

/// One queued write, in the order the node made them.
#[derive(Debug)]
enum Op {
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

/// State shared by the handle, the link task and the listener task.
struct Shared {
    /// This node's id: random, new at every start.
    node: String,
    /// Key prefix.
    prefix: String,
    /// The cluster pub/sub channel (prefix + `channel`).
    bus: String,
    /// This node's own pub/sub channel (join confirmations).
    inbox: String,
    heartbeat: Duration,
    node_timeout: Duration,
    max_held: usize,
    max_age: Duration,
    /// Writes waiting for the link task, with when they were made.
    queue: Mutex<VecDeque<(Instant, Op)>>,
    /// Wakes the link task.
    wake: Notify,
    /// (app, channel) whose local subscription count changed since the last flush.
    dirty: Mutex<HashSet<(String, String)>>,
    /// Set when the listener (re)subscribed: the link task re-registers this node's state.
    resync: AtomicBool,
    /// Whether the last Redis command succeeded.
    up: AtomicBool,
    /// Whether the listener is subscribed. The link task holds its writes while it is not: a
    /// lost pub/sub connection means Redis restarted or is unreachable, and this node must
    /// re-register before its writes (a presence join's snapshot) make sense again.
    subscribed: AtomicBool,
    /// Wakes the link task when the listener has (re)subscribed.
    relinked: Notify,
    /// The other nodes alive at the last heartbeat.
    peers: RwLock<Arc<Vec<String>>>,
    stats: ClusterStats,
    local: Local,
    apps: Arc<AppRegistry>,
    scripts: scripts::Scripts,
    /// Webhooks decided cluster-wide, when some app has a target.
    webhooks: OnceLock<Arc<ClusterSink>>,
    /// The node is leaving the cluster: its vacated/removed webhooks are left (due) in Redis
    /// for the other nodes to sweep, not sent to its own channel.
    leaving: AtomicBool,
}

/// The handle the adapter holds when scaling is on.
pub struct Cluster {
    shared: Arc<Shared>,
    /// A connection for queries, separate from the link task's writes.
    queries: redis::aio::ConnectionManager,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.shared.node)
    }
}

impl Cluster {
    /// Starts the link and listener tasks. Redis need not be reachable yet: the node serves its
    /// own sockets meanwhile and joins the cluster when Redis answers.
    pub fn start(
        cfg: &ScalingConfig,
        local: Local,
        apps: Arc<AppRegistry>,
    ) -> Result<Self, ClusterError> {
        let client = redis::Client::open(cfg.url.as_str()).map_err(ClusterError::Url)?;
        let node = format!("{:016x}", rand::random::<u64>());
        let bus = format!("{}{}", cfg.prefix, cfg.channel);
        let shared = Arc::new(Shared {
            inbox: format!("{bus}#{node}"),
            node,
            prefix: cfg.prefix.clone(),
            bus,
            heartbeat: Duration::from_secs_f64(cfg.heartbeat_interval),
            node_timeout: Duration::from_secs_f64(cfg.node_timeout),
            max_held: cfg.outage_buffer_messages,
            max_age: Duration::from_secs(cfg.outage_buffer_age),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            dirty: Mutex::new(HashSet::new()),
            resync: AtomicBool::new(false),
            up: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            relinked: Notify::new(),
            peers: RwLock::new(Arc::new(Vec::new())),
            stats: ClusterStats::default(),
            local,
            apps,
            scripts: scripts::Scripts::new(),
            webhooks: OnceLock::new(),
            leaving: AtomicBool::new(false),
        });
        let manager = |c: redis::Client| {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(3)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            redis::aio::ConnectionManager::new_lazy_with_config(c, config)
        };
        let writes = manager(client.clone()).map_err(ClusterError::Url)?;
        let queries = manager(client.clone()).map_err(ClusterError::Url)?;
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        tasks.spawn(link::run(shared.clone(), writes, stop.clone()));
        tasks.spawn(listener::run(shared.clone(), client, stop.clone()));
        let url = cfg.masked_url();
        tracing::info!(node = %shared.node, channel = %shared.bus, %url, "clustering on Redis");
        Ok(Self {
            shared,
            queries,
            stop,
            tasks,
        })
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// What was dropped or skipped so far.
    pub fn stats(&self) -> &ClusterStats {
        &self.shared.stats
    }

    /// Whether Redis is reachable: the last command succeeded and the pub/sub listener is
    /// subscribed (readiness, and the `herald_redis_up` gauge).
    pub fn is_up(&self) -> bool {
        self.shared.is_up()
    }

    /// The scrape-time collector of the cluster link's metrics.
    pub fn collector(&self) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(metrics::ClusterCollector(self.shared.clone()))
    }

    /// Sends an event to the other nodes (this node delivered it already). For cache channels
    /// the event is also kept in Redis for nodes that start later.
    pub fn publish_event(
        &self,
        app: &App,
        channel: &str,
        frame: &Frame,
        except: Option<SocketId>,
        cache: Option<(&str, &str)>,
    ) {
        let payload = wire::event(&self.shared.node, app.id(), channel, except, frame);
        if let Some((event, data)) = cache {
            self.push(Op::CacheSet {
                key: queries::cache_key(&self.shared.prefix, app.id(), channel),
                value: format!("{event}\n{data}"),
                ttl_ms: app.config().cache_ttl.saturating_mul(1000),
            });
        }
        self.push(Op::Publish(payload));
    }

    /// Asks every other node to close the sockets of `user`.
    pub fn terminate(&self, app: &App, user: &str) {
        self.push(Op::Publish(wire::terminate(
            &self.shared.node,
            app.id(),
            user,
        )));
    }

    /// A socket joined a presence channel and waits (pending) for the cluster's snapshot;
    /// `register` is true for this node's first socket of the user there.
    pub fn join(
        &self,
        app: &App,
        channel: &str,
        socket: SocketId,
        member: &MemberData,
        register: bool,
    ) {
        self.push(Op::Join {
            app: app.id().to_owned(),
            channel: channel.to_owned(),
            user: member.key.clone(),
            member: member.to_wire(),
            socket: socket.to_string(),
            max: app.config().max_presence_members,
            register,
            webhooks: self.shared.member_delay(app.id()).is_some(),
        });
    }

    /// This node's last socket of `user` left a presence channel.
    pub fn leave(&self, app_id: &str, channel: &str, user: Arc<str>) {
        let delay = self.shared.member_delay(app_id);
        self.push(Op::Leave {
            app: app_id.to_owned(),
            channel: channel.to_owned(),
            user,
            delay,
        });
        self.shared.sweep_after(delay);
    }

    /// Watchlist events: this node's first signed-in socket of `user`.
    pub fn online(&self, app_id: &str, user: &str) {
        self.push(Op::Online {
            app: app_id.to_owned(),
            user: user.to_owned(),
        });
    }

    /// Watchlist events: this node's last signed-in socket of `user` went.
    pub fn offline(&self, app_id: &str, user: &str) {
        self.push(Op::Offline {
            app: app_id.to_owned(),
            user: user.to_owned(),
        });
    }

    /// Watchlist events: asks which of `ids` are online; the answer comes back to the listener
    /// in Redis order with the online/offline transitions, so the (pending) watcher neither
    /// misses nor doubles one.
    pub fn watch(&self, app_id: &str, socket: SocketId, ids: &[Arc<str>]) {
        self.shared.push(Op::Watch {
            app: app_id.to_owned(),
            socket: socket.to_string(),
            ids: ids.to_vec(),
        });
    }

    /// The local subscription count of a channel changed.
    pub fn touch(&self, app_id: &str, channel: &str) {
        self.shared
            .dirty
            .lock()
            .insert((app_id.to_owned(), channel.to_owned()));
        self.shared.wake.notify_one();
    }

    fn push(&self, op: Op) {
        self.shared.push(op);
    }

    /// Other nodes' counts for one channel, plus the cluster-wide user count of a presence
    /// channel; `Err` when Redis does not answer (the caller answers locally).
    pub async fn remote_counts(
        &self,
        app: &str,
        channel: &str,
    ) -> redis::RedisResult<RemoteCounts> {
        let shared = &self.shared;
        self.twice(
            |mut c| async move { queries::remote_counts(shared, &mut c, app, channel).await },
        )
        .await
    }

    /// Other nodes' occupied channels (with their subscription counts) under a prefix.
    pub async fn remote_channels(
        &self,
        app: &str,
        prefix: &str,
    ) -> redis::RedisResult<Vec<(String, usize)>> {
        let shared = &self.shared;
        self.twice(
            |mut c| async move { queries::remote_channels(shared, &mut c, app, prefix).await },
        )
        .await
    }

    /// Cluster-wide user counts of presence channels.
    pub async fn user_counts(
        &self,
        app: &str,
        channels: &[&str],
    ) -> redis::RedisResult<Vec<usize>> {
        let shared = &self.shared;
        self.twice(|mut c| async move { queries::user_counts(shared, &mut c, app, channels).await })
            .await
    }

    /// Cluster-wide distinct users of a presence channel.
    pub async fn user_ids(&self, app: &str, channel: &str) -> redis::RedisResult<Vec<String>> {
        let shared = &self.shared;
        self.twice(|mut c| async move { queries::user_ids(shared, &mut c, app, channel).await })
            .await
    }

    /// Other nodes' open connections of an app.
    pub async fn remote_connections(&self, app: &str) -> redis::RedisResult<usize> {
        let shared = &self.shared;
        self.twice(|mut c| async move { queries::remote_connections(shared, &mut c, app).await })
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

    /// Leaves the cluster: sends what is still queued (within `deadline`), then removes this
    /// node's state from Redis so the others see its users leave at once.
    pub async fn stop(&self, deadline: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("cluster: Redis did not answer before the shutdown deadline");
        }
    }
}

impl Shared {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire) && self.subscribed.load(Ordering::Acquire)
    }

    /// Queues a write; a full queue drops the oldest write (counted, logged).
    fn push(&self, op: Op) {
        let mut q = self.queue.lock();
        if q.len() >= self.max_held {
            if let Some((_, dropped)) = q.pop_front() {
                let n = self.stats.dropped_overflow.fetch_add(1, Ordering::Relaxed) + 1;
                drop(q);
                link::log_dropped("outage buffer full", &dropped, n);
                q = self.queue.lock();
            }
        }
        q.push_back((Instant::now(), op));
        drop(q);
        self.wake.notify_one();
    }
}
