//! The live debug console's HTTP side (issue 11, work in progress: `docs/console-wip.md`):
//! `GET /console` (the embedded page), `POST /console/session` (sign in with an app id and its
//! secret or the admin token: a session token, never a secret), `GET /console/stream`
//! (Server-Sent Events of that app's [`ConsoleEvent`](crate::console::ConsoleEvent)s) and
//! `POST /console/events` (the event creator: the HTTP API's own validation and trigger).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::{read_body, unix_now, ApiContext};
use crate::auth::percent_decode;
use crate::console::session::{self, SessionError};
use crate::console::Viewer;

/// A console response body: whole (page, JSON) or a live event stream.
pub type ConsoleBody = BoxBody<Bytes, Infallible>;

/// How often an idle stream sends an SSE comment, so proxies and the browser keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

const PAGE: &str = include_str!("console/index.html");

fn whole(status: StatusCode, content_type: &'static str, body: String) -> Response<ConsoleBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> Response<ConsoleBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    whole(status, "application/json", body)
}

fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Serves `/console…` when the console is enabled; `None` for any other path.
pub async fn serve(
    req: Request<Incoming>,
    path: &str,
    ctx: &ApiContext,
    admin_token: Option<&str>,
) -> Option<Response<ConsoleBody>> {
    let route = path.strip_prefix("/console")?;
    let tap = ctx.adapter.console()?;
    Some(match (req.method(), route) {
        (&Method::GET, "" | "/") => whole(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
        (&Method::POST, "/session") => sign_in(req, ctx, admin_token).await,
        (&Method::GET, "/stream") => match authorised(&req, ctx) {
            Ok(app) => stream(tap.watch(&app)),
            Err(e) => error(StatusCode::UNAUTHORIZED, &e.to_string()),
        },
        (&Method::POST, "/events") => match authorised(&req, ctx) {
            Ok(app) => create_event(req, &app, ctx).await,
            Err(e) => error(StatusCode::UNAUTHORIZED, &e.to_string()),
        },
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    })
}

/// The app a request's `app` and `token` query parameters sign in to.
fn authorised(req: &Request<Incoming>, ctx: &ApiContext) -> Result<String, SessionError> {
    let app = query(req, "app").ok_or(SessionError::BadToken)?;
    let token = query(req, "token").ok_or(SessionError::BadToken)?;
    session::verify(&ctx.apps, &app, &token, unix_now())?;
    Ok(app)
}

async fn sign_in(
    req: Request<Incoming>,
    ctx: &ApiContext,
    admin_token: Option<&str>,
) -> Response<ConsoleBody> {
    #[derive(Deserialize)]
    struct SignIn {
        app: String,
        secret: String,
    }
    let body = match read_body(req, 4096).await {
        Ok(b) => b,
        Err(e) => return error(e.status(), &e.to_string()),
    };
    let Ok(form) = serde_json::from_slice::<SignIn>(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"app\":…,\"secret\":…}");
    };
    match session::sign_in(&ctx.apps, admin_token, &form.app, &form.secret, unix_now()) {
        Ok(token) => {
            let body = serde_json::json!({ "token": token }).to_string();
            whole(StatusCode::OK, "application/json", body)
        }
        // One message for unknown app and wrong secret: the page does not help guess ids.
        Err(_) => error(StatusCode::UNAUTHORIZED, "wrong app id or secret"),
    }
}

/// The event creator: the same validation and trigger as `POST /apps/{id}/events`.
async fn create_event(
    req: Request<Incoming>,
    app: &str,
    ctx: &ApiContext,
) -> Response<ConsoleBody> {
    let Some(app) = ctx.apps.by_id(app) else {
        return error(StatusCode::NOT_FOUND, "unknown app");
    };
    let body = match read_body(req, ctx.max_request_size).await {
        Ok(b) => b,
        Err(e) => return error(e.status(), &e.to_string()),
    };
    match super::events::trigger(&app, &body, &ctx.adapter).await {
        Ok(answer) => whole(StatusCode::OK, "application/json", answer),
        Err(e) => error(e.status(), &e.to_string()),
    }
}

/// The SSE stream of one viewer: a comment at once (the browser's `open`), then one `data:`
/// line of JSON per event, and a keep-alive comment when idle. Ends when the viewer's
/// connection does (dropping the `Viewer`, which switches the tap off with the last one).
fn stream(viewer: Viewer) -> Response<ConsoleBody> {
    let first = futures_util::stream::once(async {
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b": connected\n\n")))
    });
    let events = futures_util::stream::unfold(viewer, |mut v| async move {
        let chunk = match tokio::time::timeout(KEEPALIVE, v.next()).await {
            Err(_) => Bytes::from_static(b": keep-alive\n\n"),
            Ok(None) => return None,
            Ok(Some(event)) => {
                let json = serde_json::to_string(&*event).unwrap_or_default();
                Bytes::from(format!("data: {json}\n\n"))
            }
        };
        Some((Ok::<_, Infallible>(Frame::data(chunk)), v))
    });
    let body = StreamBody::new(futures_util::StreamExt::chain(first, events));
    let mut resp = Response::new(BodyExt::boxed(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
