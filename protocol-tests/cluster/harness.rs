//! The cluster test harness: real processes only. `RedisProc` (redis_proc.rs) runs a private
//! `redis-server`; `Node` (node.rs) runs the real `herald` binary with `[scaling]` pointing at
//! it; `Cluster` here is one Redis plus N nodes sharing a key prefix unique to the test, with the
//! polling assertions the tests share. Processes are killed on drop, and when a test panics the
//! tail of every log is printed.

use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::config::{AppConfig, Config};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::common::{Api, Client, APP_ID, KEY, SECRET};
pub use crate::node::Node;
pub use crate::redis_proc::{RedisProc, Resp, RespConn};

/// The log line fragment a node prints once it is subscribed to the cluster's pub/sub channel.
pub const LINK_UP: &str = "cluster link up";
/// Heartbeat and node timeout used by every test cluster (seconds).
pub const HEARTBEAT: f64 = 0.5;
pub const NODE_TIMEOUT: f64 = 2.0;
/// How long cross-node state may take to converge in the normal case.
pub const CONVERGE: Duration = Duration::from_millis(1500);
/// The quiet window used to check that no duplicate or unexpected frame follows.
pub const QUIET_MS: u64 = 500;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory for one cluster's config files and logs.
fn scratch_dir() -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("herald-ctest-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The last `n` lines of a file (for failure reports).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Cluster

/// One Redis and N herald nodes sharing a prefix.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub redis: RedisProc,
    pub prefix: String,
    pub config: Config,
    dir: PathBuf,
}

impl Cluster {
    /// `n` nodes with default app limits.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, |_| {}).await
    }

    /// `n` nodes; `tweak` adjusts the app (limits, client event policy) for every node.
    pub async fn start_with(n: usize, tweak: impl FnOnce(&mut AppConfig)) -> Cluster {
        let dir = scratch_dir();
        let redis = RedisProc::start_new(&dir).await;
        let seq = dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("herald-ctest-", "");
        let prefix = format!("ct-{seq}:");
        let mut config = Config::single_app(APP_ID, KEY, SECRET);
        config.server.host = "127.0.0.1".into();
        config.server.port = 0;
        tweak(&mut config.apps[0]);
        config.scaling.enabled = true;
        config.scaling.url = redis.url();
        config.scaling.prefix = prefix.clone();
        config.scaling.heartbeat_interval = HEARTBEAT;
        config.scaling.node_timeout = NODE_TIMEOUT;
        let mut c = Cluster {
            nodes: Vec::new(),
            redis,
            prefix,
            config,
            dir,
        };
        for _ in 0..n {
            c.add_node().await;
        }
        c
    }

    /// Starts one more node on the same Redis and prefix; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let node = Node::spawn(&self.config, &self.dir, &format!("node{i}")).await;
        self.nodes.push(node);
        i
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// The cluster's pub/sub channel: `<prefix><channel>` (channel defaults to "reverb").
    pub fn pubsub_channel(&self) -> String {
        format!("{}{}", self.prefix, self.config.scaling.channel)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                eprintln!(
                    "---- {} ({}) stderr tail ({}):\n{}",
                    n.name,
                    n.addr,
                    n.stderr_path.display(),
                    tail(&n.stderr_path, 40)
                );
            }
            eprintln!(
                "---- redis (port {}) log tail:\n{}",
                self.redis.port,
                tail(&self.redis.log, 8)
            );
        }
        for n in &mut self.nodes {
            n.kill9();
        }
        self.redis.stop();
        if std::env::var_os("CLUSTER_KEEP_LOGS").is_some() {
            eprintln!("cluster logs kept in {}", self.dir.display());
        } else if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions

/// Polls `f` until it returns `expected` or `d` passes; panics with the last value otherwise.
pub async fn converge<T, F, Fut>(what: &str, d: Duration, expected: T, mut f: F)
where
    T: PartialEq + Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + d;
    loop {
        let got = f().await;
        if got == expected {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: not converged within {d:?}\n  expected {expected:?}\n  last got {got:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts the next frame is `expected` and that nothing else follows within [`QUIET_MS`].
pub async fn expect_once(c: &mut Client, expected: &Value) {
    let v = c.recv().await;
    assert_eq!(&v, expected, "frame on socket {}", c.socket_id);
    c.expect_nothing(QUIET_MS).await;
}

/// Asserts no client receives a text frame within `ms` (waits on all of them at once).
pub async fn quiet_all(clients: &mut [&mut Client], ms: u64) {
    let waits = clients.iter_mut().map(|c| async move {
        if let Some(v) = c.recv_within(Duration::from_millis(ms)).await {
            panic!("socket {}: expected no frame, got {v}", c.socket_id);
        }
    });
    futures_util::future::join_all(waits).await;
}

/// The sorted `id`s of a `/users` answer.
pub fn user_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users array: {body}"))
        .iter()
        .map(|u| u["id"].as_str().unwrap_or("<non-string id>").to_string())
        .collect();
    ids.sort();
    ids
}

/// Every query of interest on one node, in one JSON document (so a failure shows all of it).
pub async fn cluster_view(api: &Api, presence: &str, public: &[&str]) -> Value {
    let chans = api.app_path("/channels");
    let (s0, all) = api.get(&chans, &[]).await;
    let (s1, pres) = api
        .get(
            &chans,
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    let mut out = json!({
        "status": [s0, s1],
        "channels": all,
        "presence_list": pres,
        "connections": api.connections().await,
    });
    let (s, info) = api
        .get(
            &api.app_path(&format!("/channels/{presence}")),
            &[("info", "user_count,subscription_count")],
        )
        .await;
    let (su, users) = api
        .get(&api.app_path(&format!("/channels/{presence}/users")), &[])
        .await;
    out["presence_info"] = json!([s, info]);
    out["users"] = if su == 200 {
        json!(user_ids(&users))
    } else {
        json!([su, users])
    };
    for p in public {
        let (s, info) = api
            .get(
                &api.app_path(&format!("/channels/{p}")),
                &[("info", "subscription_count")],
            )
            .await;
        out[format!("info:{p}")] = json!([s, info]);
    }
    out
}

/// The harness itself, without a cluster: Redis starts, answers, stops and starts again empty
/// on the same port; a node without scaling comes up and serves a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_self_check() {
    let dir = scratch_dir();
    let mut redis = RedisProc::start_new(&dir).await;
    let port = redis.port;
    let mut conn = redis.conn().await;
    let r = conn.cmd(&[b"SET", b"k", b"v"]).await.expect("SET");
    assert_eq!(r, Resp::Simple("OK".into()));
    assert_eq!(redis.publish("nobody", b"x").await, 0);
    redis.stop();
    assert!(RespConn::connect(port).await.is_err(), "redis is down");
    redis.start().await;
    assert_eq!(redis.port, port);
    let r = redis.conn().await.cmd(&[b"GET", b"k"]).await.expect("GET");
    assert_eq!(r, Resp::Bulk(None), "restarted empty");
    let cfg = Config::single_app(APP_ID, KEY, SECRET);
    let mut node = Node::spawn(&cfg, &dir, "plain").await;
    let mut c = node.client().await;
    c.subscribe("self-check").await;
    node.api().trigger(&["self-check"], "e", "1").await;
    assert_eq!(c.recv().await["data"], "1");
    assert!(node.alive());
    node.kill9();
    assert!(!node.alive());
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
