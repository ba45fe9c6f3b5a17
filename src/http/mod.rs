//! The HTTP API under `{path}/apps/{app_id}/`: routing, body limits, the signature check that
//! runs before any handler, and the handlers (in `events` and `queries`). All reads and writes
//! of channel state go through the adapter.

pub mod error;
mod events;
mod queries;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::adapter::Adapter;
use crate::apps::{App, AppRegistry};
use crate::auth::{self, SignedRequest};
use crate::limits::QuietLog;
use crate::metrics::{AuthFailure, Metrics};
pub use error::{json_response, ApiError};

/// What the HTTP API needs from the server: nothing more.
#[derive(Debug)]
pub struct ApiContext {
    /// Cross-socket reads and writes.
    pub adapter: Arc<Adapter>,
    /// App lookup by id and key.
    pub apps: Arc<AppRegistry>,
    /// Largest accepted body.
    pub max_request_size: usize,
    /// Refused requests, logged at most once per interval with a count.
    pub refused: QuietLog,
    /// Requests by route and status, latency, refusals.
    pub metrics: Arc<Metrics>,
}

/// What routing learnt about a request, for its metrics.
#[derive(Default)]
struct Seen {
    app: Option<Arc<App>>,
    route: &'static str,
}

/// A matched API route.
#[derive(Debug)]
enum Route {
    Events,
    Batch,
    Channels,
    Channel(String),
    Users(String),
    Terminate(String),
    Connections,
}

/// `GET /up`: liveness for load balancers, unauthenticated.
pub fn health() -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, r#"{"health":"OK"}"#.into())
}

/// `GET /ready`: readiness, unauthenticated: 200 `{"ready":true}`, or 503 `{"ready":false}`
/// while shutting down or, clustered, while Redis is unreachable.
pub fn ready(ready: bool) -> Response<Full<Bytes>> {
    let (status, _, body) = crate::metrics::readiness(ready);
    let mut resp = json_response(status, String::new());
    *resp.body_mut() = Full::new(body);
    resp
}

/// Serves one API request; `path` has the server prefix already stripped.
pub async fn serve(req: Request<Incoming>, path: &str, ctx: &ApiContext) -> Response<Full<Bytes>> {
    let start = ctx.metrics.enabled().then(Instant::now);
    let mut seen = Seen {
        app: None,
        route: "unknown",
    };
    let resp = match handle(req, path, ctx, &mut seen).await {
        Ok(resp) => resp,
        Err(e) => {
            if let (ApiError::Unauthorized(_), Some(app)) = (&e, &seen.app) {
                app.metrics.auth_failed(AuthFailure::ApiSignature);
            }
            ctx.refused
                .note(&format_args!("{} {path}: {e}", e.status().as_u16()));
            e.into_response()
        }
    };
    if let Some(start) = start {
        let app = seen.app.as_ref().map_or("", |a| a.id());
        let status = resp.status().as_u16();
        ctx.metrics
            .api_request(app, seen.route, status, start.elapsed());
    }
    resp
}

async fn handle(
    req: Request<Incoming>,
    path: &str,
    ctx: &ApiContext,
    seen: &mut Seen,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(auth::percent_decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (app_id, route, method) = match seg.as_slice() {
        ["apps", id, "events"] => (Some(*id), Route::Events, Method::POST),
        ["apps", id, "batch_events"] => (Some(*id), Route::Batch, Method::POST),
        ["apps", id, "channels"] => (Some(*id), Route::Channels, Method::GET),
        ["apps", id, "channels", ch] => (Some(*id), Route::Channel(ch.to_string()), Method::GET),
        ["apps", id, "channels", ch, "users"] => {
            (Some(*id), Route::Users(ch.to_string()), Method::GET)
        }
        ["apps", id, "users", u, "terminate_connections"] => {
            (Some(*id), Route::Terminate(u.to_string()), Method::POST)
        }
        ["apps", id, "connections"] => (Some(*id), Route::Connections, Method::GET),
        ["users", u, "terminate_connections"] => {
            (None, Route::Terminate(u.to_string()), Method::POST)
        }
        _ => return Err(ApiError::NotFound),
    };
    seen.route = route.name();
    if req.method() != method {
        return Err(ApiError::MethodNotAllowed);
    }
    let query = req.uri().query().map(auth::parse_query).unwrap_or_default();
    let app = match app_id {
        Some(id) => ctx
            .apps
            .by_id(id)
            .ok_or_else(|| ApiError::UnknownApp(id.to_owned()))?,
        None => query
            .iter()
            .find(|(k, _)| k == "auth_key")
            .and_then(|(_, key)| ctx.apps.by_key(key))
            .ok_or(ApiError::UnknownKey)?,
    };
    seen.app = Some(app.clone());
    let body = read_body(req, ctx.max_request_size).await?;
    let signed = SignedRequest {
        method: method.as_str(),
        path,
        query: &query,
        body: &body,
    };
    signed.verify(app.key(), &app.config().secret, unix_now())?;
    dispatch(route, &app, &query, &body, &ctx.adapter).await
}

impl Route {
    /// The `route` label of the request metrics.
    fn name(&self) -> &'static str {
        match self {
            Route::Events => "events",
            Route::Batch => "batch_events",
            Route::Channels => "channels",
            Route::Channel(_) => "channel",
            Route::Users(_) => "channel_users",
            Route::Terminate(_) => "terminate_connections",
            Route::Connections => "connections",
        }
    }
}

async fn dispatch(
    route: Route,
    app: &App,
    query: &[(String, String)],
    body: &[u8],
    adapter: &Adapter,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let body = match route {
        Route::Events => events::trigger(app, body, adapter).await?,
        Route::Batch => events::batch(app, body, adapter).await?,
        Route::Channels => {
            queries::channels(app, param("filter_by_prefix"), param("info"), adapter).await?
        }
        Route::Channel(ch) => queries::channel(app, &ch, param("info"), adapter).await?,
        Route::Users(ch) => queries::users(app, &ch, adapter).await?,
        Route::Terminate(user) => {
            let n = adapter.terminate_user(app, &user).await;
            tracing::info!(app = %app.id(), %user, sockets = n, "terminated user connections");
            "{}".to_owned()
        }
        Route::Connections => {
            let n = adapter.connections(app).await;
            format!(r#"{{"connections":{n}}}"#)
        }
    };
    Ok(json_response(StatusCode::OK, body))
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::BodyTooLarge(limit)),
        Err(_) => Err(ApiError::BodyRead),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
