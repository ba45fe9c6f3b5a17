//! The metrics listener: `GET /metrics` (the OpenMetrics text of every metric), `GET /ready`
//! (readiness, as on the main port) and `GET /up` (liveness), anything else 404. It runs on its
//! own address (loopback by default) so the public WebSocket port never exposes metrics, and
//! keeps answering while the server drains on shutdown (`/ready` is then 503). Connections are
//! few (a Prometheus scraper): at most [`MAX_CONNECTIONS`] at once, each with a head timeout.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// Concurrent connections the metrics listener serves; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// How long a scraper may take to send a request head, and to idle between requests.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the server is ready for traffic (not shutting down, and Redis reachable when
/// clustered); shared by `/ready` on both listeners.
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// Serves the metrics listener until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, most likely: the main listener logs that; do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (metrics, ready, stop) = (metrics.clone(), ready.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = answer(&req, &metrics, &ready);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}

fn answer<B>(req: &Request<B>, metrics: &Metrics, ready: &Readiness) -> Response<Full<Bytes>> {
    let (status, content_type, body): (StatusCode, &str, Bytes) =
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.encode().into(),
            ),
            (&Method::GET, "/ready") => readiness(ready()),
            (&Method::GET, "/up") => (
                StatusCode::OK,
                "application/json",
                Bytes::from_static(br#"{"health":"OK"}"#),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "application/json",
                Bytes::from_static(br#"{"error":"Not found"}"#),
            ),
        };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The `/ready` answer: 200 `{"ready":true}` or 503 `{"ready":false}`.
pub fn readiness(ready: bool) -> (StatusCode, &'static str, Bytes) {
    if ready {
        (
            StatusCode::OK,
            "application/json",
            Bytes::from_static(br#"{"ready":true}"#),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            Bytes::from_static(br#"{"ready":false}"#),
        )
    }
}
