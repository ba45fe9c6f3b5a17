//! One accepted connection: sniffs its first bytes (after the TLS handshake with
//! `[server.tls]`), hands a WebSocket upgrade to `crate::socket` and anything else to hyper,
//! all under the pre-upgrade budgets; then routes each HTTP request (`/console…`, health,
//! readiness, `/app/{key}` upgrades on a kept-alive connection, the Pusher HTTP API).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::is_ready;
use crate::config::MIN_HEAD_SIZE;
use crate::http::console::ConsoleBody;
use crate::http::{self, ApiContext, ApiError};
use crate::limits::{PendingBudget, PendingSlot, QuietLog};
use crate::metrics;
use crate::socket::{self, HeadBudget, Rewind, Sniff, SocketContext};
use crate::tls::LiveTls;

/// On shutdown, how long a kept-alive HTTP connection may still send a request (answered with
/// `Connection: close`) before it is closed: closing it at once would fail a request the client
/// is sending at that moment on it, instead of moving the client to the new process.
const HTTP_DRAIN: Duration = Duration::from_secs(2);

/// Per-request routing state: the prefix, each side's context and the pre-upgrade budgets.
pub(super) struct Router {
    pub(super) prefix: String,
    pub(super) sockets: Arc<SocketContext>,
    pub(super) api: ApiContext,
    pub(super) pending: Arc<PendingBudget>,
    pub(super) first_byte_timeout: Duration,
    pub(super) header_timeout: Duration,
    pub(super) max_head_size: usize,
    /// Connections closed at once for want of a pending slot.
    pub(super) refused: QuietLog,
    /// `[server.tls]`: every connection is TLS.
    pub(super) tls: Option<Arc<LiveTls>>,
    /// Failed TLS handshakes (scanners, clients that do not trust the certificate).
    pub(super) tls_failures: QuietLog,
    /// `/console` is served here (`[console] enabled` without the metrics listener).
    pub(super) console: Option<Arc<http::console::Gate>>,
}

/// Serves one accepted connection. `slot` is its place among the pending (not yet WebSocket)
/// connections, held until its handshake completes or, for HTTP, until it closes.
pub(super) async fn serve_connection(
    stream: TcpStream,
    slot: PendingSlot,
    router: Arc<Router>,
    token: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    if let Some(tls) = &router.tls {
        let acceptor = tls.acceptor();
        return Box::pin(serve_tls(stream, acceptor, slot, router, token)).await;
    }
    // Boxed so neither the peek buffer nor hyper's connection state widens a WebSocket's task.
    let sniffed = timeout(
        router.first_byte_timeout,
        Box::pin(socket::sniff(&stream, &router.prefix)),
    )
    .await;
    match sniffed {
        Err(_) | Ok(Sniff::Closed) => {}
        Ok(Sniff::WebSocket(ws)) => {
            let budget = HeadBudget {
                deadline: Instant::now() + router.header_timeout,
                max_head: router.max_head_size,
                slot,
            };
            socket::accept(stream, ws, router.sockets.clone(), budget).await
        }
        Ok(Sniff::Http) => Box::pin(serve_http(stream, slot, router, token)).await,
    }
}

/// Serves a TLS connection under the same budgets as a plain one: the ClientHello must come
/// within `first_byte_timeout` and the TLS handshake complete within `header_timeout`, all the
/// while holding the pending slot. The first bytes of the request are then read (TLS cannot be
/// peeked at), recognised like a plain connection's, and replayed to the handshake or to hyper.
async fn serve_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    slot: PendingSlot,
    router: Arc<Router>,
    token: CancellationToken,
) {
    if !matches!(
        timeout(router.first_byte_timeout, stream.readable()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let peer = stream.peer_addr().ok();
    let deadline = Instant::now() + router.header_timeout;
    let mut tls = match timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            router.tls_failures.note(&format_args!("{peer:?}: {e}"));
            return;
        }
        Err(_) => return,
    };
    let mut first = vec![0u8; socket::SNIFF_BYTES];
    let n = match timeout(router.first_byte_timeout, tls.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    first.truncate(n);
    let sniffed = socket::sniff_bytes(&first, &router.prefix);
    let stream = Rewind::new(first, tls);
    match sniffed {
        Sniff::Closed => {}
        Sniff::WebSocket(ws) => {
            let budget = HeadBudget {
                deadline: Instant::now() + router.header_timeout,
                max_head: router.max_head_size,
                slot,
            };
            socket::accept(stream, ws, router.sockets.clone(), budget).await
        }
        Sniff::Http => serve_http(stream, slot, router, token).await,
    }
}

/// Serves HTTP/1.1 (API requests, keep-alive, and upgrades that arrive on such a connection).
/// A request head must arrive within `header_timeout` and fit in `max_head_size`; the same
/// timeout closes a kept-alive connection that waits that long for its next request. On
/// shutdown the connection may still send requests for `HTTP_DRAIN` (each answered with
/// `Connection: close`), then it is closed once its request in flight, if any, is answered.
async fn serve_http<S>(stream: S, slot: PendingSlot, router: Arc<Router>, token: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (header_timeout, max_head) = (router.header_timeout, router.max_head_size);
    let peer = slot.ip();
    let service = service_fn(move |req| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.route(req, peer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_head.max(MIN_HEAD_SIZE))
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                log_http_error(&e);
            }
        }
        _ = token.cancelled() => {
            if timeout(HTTP_DRAIN, conn.as_mut()).await.is_err() {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
    drop(slot);
}

impl Router {
    /// `/console…` when the console is served on this port, else [`Self::route_api`].
    async fn route(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
    ) -> Response<Either<Full<Bytes>, ConsoleBody>> {
        if let Some(gate) = &self.console {
            let path = strip_prefix(req.uri().path(), &self.prefix)
                .filter(|p| *p == "/console" || p.starts_with("/console/"))
                .map(str::to_owned);
            if let Some(path) = path {
                if let Some(resp) = http::console::serve(req, &path, &self.api, gate, peer).await {
                    return resp.map(Either::Right);
                }
                return ApiError::NotFound.into_response().map(Either::Left);
            }
        }
        self.route_api(req).await.map(Either::Left)
    }

    async fn route_api(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let full = req.uri().path().to_owned();
        let Some(path) = strip_prefix(&full, &self.prefix) else {
            return ApiError::NotFound.into_response();
        };
        if path == "/up" {
            return http::health();
        }
        if path == "/ready" {
            return http::ready(is_ready(&self.sockets));
        }
        if let Some(key) = path.strip_prefix("/app/") {
            return socket::upgrade(req, key, self.sockets.clone());
        }
        let mut resp = http::serve(req, path, &self.api).await;
        if self.sockets.shutdown.is_cancelled() {
            // Shutting down: the client's next request goes to a new connection (and process).
            let close = hyper::header::HeaderValue::from_static("close");
            resp.headers_mut().insert(hyper::header::CONNECTION, close);
        }
        resp
    }
}

/// Serves `/console…` on the metrics listener with its own API context.
pub(super) fn console_handler(
    ctx: ApiContext,
    gate: Arc<http::console::Gate>,
) -> metrics::ConsoleHandler {
    let ctx = Arc::new(ctx);
    Arc::new(move |req, peer| {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            match http::console::serve(req, &path, &ctx, &gate, peer).await {
                Some(resp) => resp,
                None => ApiError::NotFound.into_response().map(BodyExt::boxed),
            }
        })
    })
}

/// `path` without the configured prefix, or `None` when it does not start with it.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    path.strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))
}

/// Kept out of the async code so connection futures stay small.
#[inline(never)]
fn log_http_error(err: &hyper::Error) {
    tracing::debug!("http connection error: {err}");
}
