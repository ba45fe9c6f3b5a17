//! The live debug console's HTTP side (issue 11): `GET /console` (the embedded page),
//! `POST /console/session` (sign in with an app id and its secret or the admin token; sets an
//! `HttpOnly; SameSite=Strict` session cookie, never a secret; failures throttled per IP),
//! `GET /console/session` (who the cookie signs in as), `DELETE /console/session` (sign out),
//! `GET /console/stream` (Server-Sent Events of that app's
//! [`ConsoleEvent`](crate::console::ConsoleEvent)s) and `POST /console/events` (the event
//! creator: the HTTP API's own validation and trigger). Requests with a body must be
//! `Content-Type: application/json`, which a cross-site form cannot send.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::{read_body, unix_now, ApiContext};
use crate::auth::percent_decode;
use crate::console::session::{self, SessionError, SESSION_TTL};
use crate::console::throttle::SignInThrottle;
use crate::console::Viewer;
use crate::limits::{Level, QuietLog};
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

/// A permanent redirect from `…/console/` to the page itself (`…/console`).
fn to_page(path: &str) -> Response<ConsoleBody> {
    let mut resp = whole(StatusCode::PERMANENT_REDIRECT, "text/plain", String::new());
    if let Ok(v) = header::HeaderValue::from_str(path.trim_end_matches('/')) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn error(status: StatusCode, message: &str) -> Response<ConsoleBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    whole(status, "application/json", body)
}

/// The session cookie's name.
const COOKIE: &str = "herald_console";

/// The console's sign-in state shared by its requests: the admin token and the throttle.
#[derive(Debug)]
pub struct Gate {
    admin_token: Option<String>,
    throttle: Arc<SignInThrottle>,
    throttled: QuietLog,
}

impl Gate {
    /// The gate for `[console] admin_token`, with the default throttle.
    pub fn new(admin_token: Option<String>) -> Self {
        Self {
            admin_token,
            throttle: Arc::new(SignInThrottle::default()),
            throttled: QuietLog::new(
                "throttled console sign-ins",
                Level::Warn,
                Duration::from_secs(60),
            ),
        }
    }

    /// The sign-in throttle (its refusals are a metric).
    pub fn throttle(&self) -> &Arc<SignInThrottle> {
        &self.throttle
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The session token from the request's cookie.
fn cookie(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == COOKIE).then(|| percent_decode(v))
        })
}

/// Whether the request says its body is JSON (a cross-site HTML form cannot).
fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Serves `/console…` when the console is enabled; `None` for any other path. `peer` is the
/// client's address (sign-in failures are throttled per address).
pub async fn serve(
    req: Request<Incoming>,
    path: &str,
    ctx: &ApiContext,
    gate: &Gate,
    peer: IpAddr,
) -> Option<Response<ConsoleBody>> {
    let route = path.strip_prefix("/console")?;
    let tap = ctx.adapter.console()?;
    let post = req.method() == Method::POST;
    if post && !is_json(&req) {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        ));
    }
    Some(match (req.method(), route) {
        (&Method::GET, "") => whole(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
        // The page's links are relative to `/console`: from `/console/` they would miss.
        (&Method::GET, "/") => to_page(req.uri().path()),
        (&Method::POST, "/session") => sign_in(req, ctx, gate, peer).await,
        (&Method::GET, "/session") => match authorised(&req, ctx) {
            Ok(app) => whole(
                StatusCode::OK,
                "application/json",
                serde_json::json!({ "app": app }).to_string(),
            ),
            Err(e) => error(StatusCode::UNAUTHORIZED, &e.to_string()),
        },
        (&Method::DELETE, "/session") => {
            let mut resp = whole(StatusCode::OK, "application/json", "{}".into());
            set_cookie(&mut resp, req.uri().path(), "", 0);
            resp
        }
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

/// The app the request's session cookie signs in to.
fn authorised(req: &Request<Incoming>, ctx: &ApiContext) -> Result<String, SessionError> {
    let token = cookie(req).ok_or(SessionError::BadToken)?;
    let app = session::app_of(&token).ok_or(SessionError::BadToken)?;
    session::verify(&ctx.apps, app, &token, unix_now())?;
    Ok(app.to_owned())
}

/// Sets (or, with `max_age` 0, clears) the session cookie, scoped to the console's own path
/// (the request's path up to `/console`, so a `server.path` prefix is kept).
fn set_cookie(resp: &mut Response<ConsoleBody>, path: &str, token: &str, max_age: u64) {
    let scope = path
        .rfind("/console")
        .map_or("/console", |i| &path[..i + "/console".len()]);
    let value = format!(
        "{COOKIE}={}; Path={scope}; Max-Age={max_age}; HttpOnly; SameSite=Strict",
        percent_encode(token)
    );
    if let Ok(v) = header::HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
}

async fn sign_in(
    req: Request<Incoming>,
    ctx: &ApiContext,
    gate: &Gate,
    peer: IpAddr,
) -> Response<ConsoleBody> {
    #[derive(Deserialize)]
    struct SignIn {
        app: String,
        secret: String,
    }
    if let Err(refused) = gate.throttle.check(peer, Instant::now()) {
        gate.throttled.note(&format_args!("{peer}: {refused}"));
        let mut resp = error(StatusCode::TOO_MANY_REQUESTS, &refused.to_string());
        resp.headers_mut()
            .insert(header::RETRY_AFTER, refused.retry_after().into());
        return resp;
    }
    let path = req.uri().path().to_owned();
    let body = match read_body(req, 4096).await {
        Ok(b) => b,
        Err(e) => return error(e.status(), &e.to_string()),
    };
    let Ok(form) = serde_json::from_slice::<SignIn>(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"app\":…,\"secret\":…}");
    };
    let admin = gate.admin_token.as_deref();
    match session::sign_in(&ctx.apps, admin, &form.app, &form.secret, unix_now()) {
        Ok(token) => {
            gate.throttle.succeeded(peer);
            let body = serde_json::json!({ "app": form.app }).to_string();
            let mut resp = whole(StatusCode::OK, "application/json", body);
            set_cookie(&mut resp, &path, &token, SESSION_TTL);
            resp
        }
        // One message for unknown app and wrong secret: the page does not help guess ids.
        Err(_) => {
            gate.throttle.failed(peer, Instant::now());
            error(StatusCode::UNAUTHORIZED, "wrong app id or secret")
        }
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
