//! The WebSocket side: [`upgrade`] answers the HTTP upgrade on `{path}/app/{key}` and spawns the
//! connection task, which admits the connection (app, protocol, origin, quotas), then runs one
//! loop over the socket's reads, its outbox, its ping timer and the shutdown signal.

mod connection;
pub mod session;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapter::Adapter;
use crate::apps::AppRegistry;

/// What the socket side needs from the server: nothing more.
#[derive(Debug)]
pub struct SocketContext {
    /// Cross-socket operations.
    pub adapter: Arc<Adapter>,
    /// App lookup by key.
    pub apps: Arc<AppRegistry>,
    /// Cancelled on graceful shutdown: every connection closes with 4200.
    pub shutdown: CancellationToken,
    /// Tracks every connection task so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Per-socket outbox bound.
    pub max_queued_frames: usize,
    /// Server-wide connection cap (0: none).
    pub max_connections: usize,
    /// Open WebSocket connections, all apps.
    pub open: AtomicUsize,
}

impl SocketContext {
    /// Open WebSocket connections on this node.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The parts of the upgrade request the connection task needs.
#[derive(Debug)]
pub struct Admission {
    /// The `{key}` of the URL.
    pub app_key: String,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// The `protocol` query parameter.
    pub protocol: Option<String>,
}

fn bad_request(status: StatusCode, msg: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(msg.as_bytes())));
    *resp.status_mut() = status;
    resp
}

/// Answers a request for `{path}/app/{key}`: 101 and a spawned connection task for a valid
/// WebSocket upgrade, 426 / 400 otherwise. App-level refusals (unknown key, origin, quota) are
/// made over the WebSocket, as Pusher clients expect a `pusher:error` and a close code.
pub fn upgrade<B: Send + 'static>(
    mut req: Request<B>,
    app_key: &str,
    ctx: Arc<SocketContext>,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let is_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return bad_request(StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade required");
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return bad_request(StatusCode::BAD_REQUEST, "Missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let protocol = req.uri().query().and_then(|q| {
        crate::auth::parse_query(q)
            .into_iter()
            .find(|(k, _)| k == "protocol")
            .map(|(_, v)| v)
    });
    let admission = Admission {
        app_key: app_key.to_owned(),
        origin: headers
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        protocol,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_ctx = ctx.clone();
    ctx.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => connection::run(upgraded, task_ctx, admission).await,
            Err(e) => tracing::debug!("upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header"),
    );
    h.insert("X-Powered-By", HeaderValue::from_static("Herald"));
    resp
}
