//! The WebSocket side: [`sniff`] recognises a WebSocket request on a fresh connection and
//! [`accept`] completes its handshake (bounded in time and size, `handshake.rs`); [`upgrade`]
//! answers an upgrade that arrived through hyper. Either way the connection task admits the
//! connection (app, protocol, origin, quotas), then runs one loop over the socket's reads, its
//! outbox, its ping timer and the shutdown signal.

mod connection;
pub(crate) mod frames;
mod handshake;
mod joined;
mod rewind;
pub mod session;
pub mod trace;
mod wire;

pub use rewind::Rewind;
pub(crate) use wire::IntoTransport;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpStream;
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
    /// Refused connections by reason.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Writes busy sockets' frames in batches (`None`: `batch_window_ms` is 0).
    pub coalescer: Option<Arc<crate::coalesce::Coalescer>>,
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
    let protocol = req.uri().query().and_then(protocol_param);
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
            Ok(upgraded) => connection::run_upgraded(upgraded, task_ctx, admission).await,
            Err(e) => log_handshake_error(&e),
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

fn protocol_param(query: &str) -> Option<String> {
    crate::auth::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "protocol")
        .map(|(_, v)| v)
}

/// A fresh connection whose first bytes are `GET {prefix}/app/{key}...`: it is taken straight
/// to the WebSocket handshake, without hyper, so an idle socket carries no HTTP machinery.
#[derive(Debug)]
pub struct Sniffed {
    app_key: String,
    protocol: Option<String>,
}

/// What the first bytes of a connection say it is.
#[derive(Debug)]
pub enum Sniff {
    /// A WebSocket request for `{prefix}/app/{key}`: handled by [`accept`].
    WebSocket(Sniffed),
    /// Anything else (another route, or a request line not complete in the first segment): hyper.
    Http,
    /// The peer closed, or the connection failed, before sending anything.
    Closed,
}

/// Bytes looked at to recognise a WebSocket request.
pub const SNIFF_BYTES: usize = 1024;

/// Peeks (without consuming) at a new connection's request line; waits for its first bytes.
pub async fn sniff(stream: &TcpStream, prefix: &str) -> Sniff {
    let mut buf = [0u8; SNIFF_BYTES];
    let n = match stream.peek(&mut buf).await {
        Ok(0) | Err(_) => return Sniff::Closed,
        Ok(n) => n,
    };
    sniff_bytes(&buf[..n], prefix)
}

/// Recognises a WebSocket request from a connection's first bytes (already read, on a TLS
/// connection, where they are replayed with [`Rewind`]); an incomplete request line is `Http`.
pub fn sniff_bytes(data: &[u8], prefix: &str) -> Sniff {
    if data.is_empty() {
        return Sniff::Closed;
    }
    let sniffed = (|| {
        let end = data.iter().position(|&b| b == b'\r' || b == b'\n')?;
        let line = std::str::from_utf8(&data[..end]).ok()?;
        let target = line.strip_prefix("GET ")?.split(' ').next()?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let rest = path.strip_prefix(prefix)?.strip_prefix("/app/")?;
        // A complete request without an Upgrade header goes to hyper, which answers 426.
        let complete = data.windows(4).any(|w| w == b"\r\n\r\n");
        let upgrade = data
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"websocket"));
        if complete && !upgrade {
            return None;
        }
        Some(Sniffed {
            app_key: crate::auth::percent_decode(rest),
            protocol: protocol_param(query),
        })
    })();
    sniffed.map_or(Sniff::Http, Sniff::WebSocket)
}

/// The pre-upgrade budget of one sniffed connection: its head must be complete by `deadline`
/// and fit in `max_head` bytes; `slot` is its place among the pending connections, given back
/// as soon as the handshake is done.
#[derive(Debug)]
pub struct HeadBudget {
    /// When the request head must be complete.
    pub deadline: tokio::time::Instant,
    /// Largest request head, in bytes.
    pub max_head: usize,
    /// Held until the handshake completes.
    pub slot: crate::limits::PendingSlot,
}

/// Completes the WebSocket handshake on a sniffed connection, within `budget`, and runs it.
/// `S` is the plain `TcpStream`, or a TLS stream wrapped in [`Rewind`].
pub(crate) async fn accept<S: IntoTransport>(
    mut stream: S,
    sniffed: Sniffed,
    ctx: Arc<SocketContext>,
    budget: HeadBudget,
) {
    // Boxed: the handshake's buffers are freed once it completes.
    let upgrade = Box::pin(handshake::accept(
        &mut stream,
        budget.max_head,
        budget.deadline,
    ))
    .await;
    drop(budget.slot);
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(e) => {
            log_handshake_error(&e);
            return;
        }
    };
    let app = ctx.apps.by_key(&sniffed.app_key);
    let conn = Box::new(connection::Conn {
        wire: wire::Wire::new(stream.into_transport()),
        reader: frames::FrameReader::new(connection::max_message(app.as_deref()), upgrade.leftover),
    });
    let admission = Box::new(Admission {
        app_key: sniffed.app_key,
        origin: upgrade.origin,
        protocol: sniffed.protocol,
    });
    connection::spawn(conn, ctx, app, admission);
}

/// Kept out of the async code so the connection task's future stays small.
#[inline(never)]
fn log_handshake_error(err: &dyn std::fmt::Display) {
    tracing::debug!("WebSocket handshake failed: {err}");
}
