//! The composition root: binds one port for WebSocket and HTTP, builds the shared state once,
//! hands each side its narrow context, applies the pre-upgrade budgets (first-byte and head
//! timeouts, head size, pending connections per server and per IP), routes requests, backs off
//! when accept fails, and shuts down gracefully (stop accepting, close every socket with 4200,
//! drain with a deadline). The listener binds with SO_REUSEPORT (`server.reuse_port`) so a new
//! process can take over the port; with `[server.tls]` every connection is TLS, under the same
//! pre-upgrade budgets. [`Server::reloader`] is the handle SIGHUP uses (`crate::reload`).
//! With `[metrics] enabled` it also binds the metrics listener, which
//! answers until the drain is over (`/ready` is 503 from the moment shutdown begins).
//! `conn.rs` serves each accepted connection (plain or TLS, WebSocket or HTTP) and routes
//! HTTP requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapter::{Adapter, LocalState};
use crate::apps::AppRegistry;
use crate::cluster::{Cluster, ClusterError};
use crate::coalesce::Coalescer;
use crate::config::{Config, ConfigError};
use crate::http::{self, ApiContext};
use crate::limits::{Level, PendingBudget, PendingRefusal, QuietLog};
use crate::metrics::{self, Metrics, ProcessCollector, Readiness, Refusal};
use crate::reload::Reloader;
use crate::socket::SocketContext;
use crate::tls::{LiveTls, TlsError};
use crate::webhooks::metrics::WebhookCollector;
use crate::webhooks::{WebhookError, WebhookStats, Webhooks};

mod conn;

use conn::{console_handler, serve_connection, Router};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The config failed validation.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cluster link could not be set up.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The webhook client could not be built.
    #[error(transparent)]
    Webhooks(#[from] WebhookError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How long a clustered node may take, after its sockets closed, to send what it still holds
/// and leave the cluster.
const CLUSTER_LEAVE: Duration = Duration::from_secs(3);

/// How often expired cache-channel entries are dropped.
const CACHE_SWEEP: Duration = Duration::from_secs(60);

/// How often a flood of identical failures (accept errors, refused connections) is logged.
const QUIET_INTERVAL: Duration = Duration::from_secs(10);

/// The first and the longest pause of the accept loop after a failed accept (out of file
/// descriptors, typically): the loop backs off instead of spinning on a listener that stays
/// readable.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    /// The metrics listener, when `[metrics] enabled`.
    metrics_listener: Option<TcpListener>,
    metrics: Arc<Metrics>,
    /// `/console` on the metrics listener (`[console]` and `[metrics]` both enabled).
    console: Option<metrics::ConsoleHandler>,
    router: Arc<Router>,
    shutdown_timeout: Duration,
    reloader: Arc<Reloader>,
}

impl Server {
    /// Validates the config, binds the listener and builds the shared state.
    pub async fn bind(mut config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        let addr = format!("{}:{}", config.server.host, config.server.port);
        let tls = match &config.server.tls {
            Some(files) => Some(Arc::new(LiveTls::load(files)?)),
            None => None,
        };
        let listener = bind_listener(&addr, config.server.reuse_port)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let metrics_listener = if config.metrics.enabled {
            let addr = format!("{}:{}", config.metrics.host, config.metrics.port);
            let l = TcpListener::bind(&addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            Some(l)
        } else {
            None
        };
        let mut metrics = Metrics::new(config.metrics.enabled);
        metrics.register_collector(Box::new(ProcessCollector));
        let shutdown = CancellationToken::new();
        let apps = Arc::new(AppRegistry::with_shutdown(
            &config.apps,
            shutdown.clone(),
            metrics.app_source(),
        ));
        let scaling = &config.scaling;
        let local = Arc::new(LocalState::new(&apps, scaling.enabled));
        let adapter = if scaling.enabled {
            let cluster = Cluster::start(scaling, local.clone(), apps.clone())?;
            metrics.register_collector(cluster.collector());
            Adapter::clustered(local.clone(), cluster)
        } else {
            Adapter::local(local.clone())
        };
        let console = config
            .console
            .enabled
            .then(|| crate::console::Tap::new(crate::console::DEFAULT_CAPACITY));
        let gate = console.as_ref().map(|tap| {
            let gate = Arc::new(http::console::Gate::new(config.console.admin_token.clone()));
            let collector = crate::console::metrics::ConsoleCollector {
                tap: tap.clone(),
                throttle: gate.throttle().clone(),
            };
            metrics.register_collector(Box::new(collector));
            gate
        });
        let mut webhooks =
            Webhooks::new(&apps, config.server.max_queued_webhooks, console.clone())?;
        if let (Some(w), Some(c)) = (&mut webhooks, adapter.cluster()) {
            c.set_webhooks(w.cluster_sink());
        }
        if let Some(w) = &webhooks {
            metrics.register_collector(Box::new(WebhookCollector(w.stats().clone())));
        }
        let adapter = Arc::new(adapter.with_webhooks(webhooks).with_console(console));
        let metrics = Arc::new(metrics);
        let sockets = Arc::new(SocketContext {
            adapter: adapter.clone(),
            apps: apps.clone(),
            shutdown,
            tracker: TaskTracker::new(),
            max_queued_frames: config.server.max_queued_frames,
            max_connections: config.server.max_connections,
            open: AtomicUsize::new(0),
            metrics: metrics.clone(),
            coalescer: Coalescer::new(Duration::from_millis(config.server.batch_window_ms)),
        });
        let reloader = Arc::new(Reloader::new(
            config.clone(),
            apps.clone(),
            local.clone(),
            tls.clone(),
        ));
        let console = gate.clone().filter(|_| config.metrics.enabled).map(|gate| {
            console_handler(
                ApiContext {
                    adapter: adapter.clone(),
                    apps: apps.clone(),
                    max_request_size: config.server.max_request_size,
                    refused: QuietLog::new("refused console requests", Level::Info, QUIET_INTERVAL),
                    metrics: metrics.clone(),
                },
                gate,
            )
        });
        let api = ApiContext {
            adapter,
            apps,
            max_request_size: config.server.max_request_size,
            refused: QuietLog::new("refused API requests", Level::Info, QUIET_INTERVAL),
            metrics: metrics.clone(),
        };
        let srv = &config.server;
        let router = Arc::new(Router {
            prefix: srv.path.clone(),
            sockets,
            api,
            pending: Arc::new(PendingBudget::new(
                srv.max_pending_connections,
                srv.max_pending_per_ip,
            )),
            first_byte_timeout: Duration::from_secs_f64(srv.first_byte_timeout),
            header_timeout: Duration::from_secs_f64(srv.header_timeout),
            max_head_size: srv.max_head_size,
            refused: QuietLog::new("refused connections", Level::Info, QUIET_INTERVAL),
            tls,
            tls_failures: QuietLog::new("failed TLS handshakes", Level::Info, QUIET_INTERVAL),
            console: gate.filter(|_| !config.metrics.enabled),
        });
        Ok(Self {
            listener,
            metrics_listener,
            metrics,
            console,
            router,
            shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout),
            reloader,
        })
    }

    /// The handle that applies a re-read config to the running server (SIGHUP).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// The webhook counters, when some app has a webhook target.
    pub fn webhook_stats(&self) -> Option<Arc<WebhookStats>> {
        let w = self.router.sockets.adapter.webhooks()?;
        Some(w.stats().clone())
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound address of the metrics listener, when `[metrics] enabled`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then closes every socket with 4200 and waits for the
    /// connections to drain, at most `shutdown_timeout`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let ctx = self.router.sockets.clone();
        let (token, tracker) = (ctx.shutdown.clone(), ctx.tracker.clone());
        tracker.spawn(sweep_caches(ctx.adapter.clone(), token.clone()));
        if let Some(coalescer) = &ctx.coalescer {
            tracker.spawn(coalescer.clone().run(token.clone()));
        }
        let (adapter, apps) = (ctx.adapter.clone(), ctx.apps.clone());
        tracker.spawn(crate::counting::run(adapter, apps, token.clone()));
        // The metrics listener outlives the drain (it is stopped last), so `/ready` answers 503
        // and `/metrics` keeps answering while connections close.
        let metrics_stop = CancellationToken::new();
        let metrics_task = self.metrics_listener.map(|l| {
            let ready_ctx = ctx.clone();
            let ready: Readiness = Arc::new(move || is_ready(&ready_ctx));
            tokio::spawn(metrics::serve(
                l,
                self.metrics.clone(),
                ready,
                self.console.clone(),
                metrics_stop.clone(),
            ))
        });
        tokio::pin!(shutdown);
        let accept_errors = QuietLog::new("failed accepts", Level::Warn, QUIET_INTERVAL);
        let mut backoff = ACCEPT_BACKOFF.0;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff = ACCEPT_BACKOFF.0;
                        let router = self.router.clone();
                        let slot = match router.pending.try_acquire(peer.ip()) {
                            Ok(slot) => slot,
                            Err(refusal) => {
                                self.metrics.refused(match refusal {
                                    PendingRefusal::ServerWide => Refusal::PendingServer,
                                    PendingRefusal::PerIp => Refusal::PendingPerIp,
                                });
                                router.refused.note(&format_args!("{peer}: {refusal}"));
                                continue;
                            }
                        };
                        tracker.spawn(serve_connection(stream, slot, router, token.clone()));
                    }
                    Err(e) if is_per_connection(&e) => {}
                    Err(e) => {
                        // Typically EMFILE/ENFILE: the pending connection stays in the backlog
                        // and the listener stays readable, so retrying at once would spin.
                        self.metrics.accept_failed();
                        accept_errors.note(&format_args!("{e}; pausing accepts {backoff:?}"));
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    }
                },
            }
        }
        // Connections already in the accept queue would be reset when the listener closes:
        // take them (they are served like any other, WebSockets then closed with 4200), then
        // stop listening at once so new connections go to another process on the port.
        // The kernel is asked directly (a non-blocking accept until it would block), not
        // tokio's readiness, which may not have seen the latest arrivals yet.
        if let Ok(listener) = self.listener.into_std() {
            while let Ok((stream, peer)) = listener.accept() {
                let stream = stream.set_nonblocking(true).map(|()| stream);
                let Ok(stream) = stream.and_then(TcpStream::from_std) else {
                    continue;
                };
                if let Ok(slot) = self.router.pending.try_acquire(peer.ip()) {
                    let router = self.router.clone();
                    tracker.spawn(serve_connection(stream, slot, router, token.clone()));
                }
            }
        }
        let open = ctx.open_connections();
        tracing::info!(open, "shutting down: closing every connection with 4200");
        token.cancel();
        tracker.close();
        let started = tokio::time::Instant::now();
        if tokio::time::timeout(self.shutdown_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown deadline reached with connections still open");
        }
        let left = self.shutdown_timeout.saturating_sub(started.elapsed());
        ctx.adapter.flush_webhooks(left).await;
        ctx.adapter.stop(CLUSTER_LEAVE).await;
        metrics_stop.cancel();
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Binds `addr` like `TcpListener::bind` (SO_REUSEADDR, backlog 1024), plus SO_REUSEPORT when
/// asked, trying each address the host resolves to.
async fn bind_listener(addr: &str, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let bound = (|| {
            let socket = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            if reuse_port {
                socket.set_reuse_port(true)?;
            }
            socket.set_nonblocking(true)?;
            socket.bind(&sa.into())?;
            socket.listen(1024)?;
            TcpListener::from_std(socket.into())
        })();
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the host resolves to no address")))
}

/// Readiness: not while shutting down, nor, clustered, while Redis is unreachable.
fn is_ready(ctx: &SocketContext) -> bool {
    !ctx.shutdown.is_cancelled() && ctx.adapter.cluster().is_none_or(Cluster::is_up)
}

async fn sweep_caches(adapter: Arc<Adapter>, token: CancellationToken) {
    let mut tick = tokio::time::interval(CACHE_SWEEP);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => adapter.sweep(),
        }
    }
}

/// Errors of `accept` that concern one connection only (it was reset before it was accepted):
/// the next accept can follow at once.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}
