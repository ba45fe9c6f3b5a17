//! The live debug console (issue 11) over real sockets: sign-in refuses a wrong secret, never
//! echoes one, sets an HttpOnly SameSite=Strict session cookie, and is throttled per address
//! after repeated failures (429); a viewer's Server-Sent Events stream shows a real client's
//! connection and subscription and an HTTP API event; the event creator triggers through the
//! API's path (a subscriber receives it, bad input gets the API's 400, a form post 415).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn console_config() -> Config {
    let mut cfg = config();
    cfg.console.enabled = true;
    cfg
}

/// Signs in; the session cookie (`name=value`) when one is set.
async fn sign_in(addr: SocketAddr, app: &str, secret: &str) -> (u16, Value, Option<String>) {
    let body = json!({ "app": app, "secret": secret }).to_string();
    let resp = http(addr, "POST", "/console/session", body.as_bytes()).await;
    let cookie = resp.header("set-cookie").map(|c| {
        assert!(
            c.contains("; Path=/console;")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Strict"),
            "{c}"
        );
        c.split(';').next().unwrap().to_owned()
    });
    (resp.status, resp.json(), cookie)
}

async fn session(addr: SocketAddr) -> String {
    let (status, body, cookie) = sign_in(addr, APP_ID, SECRET).await;
    assert_eq!(status, 200, "{body}");
    cookie.expect("a session cookie")
}

/// A request carrying the session cookie.
async fn with_cookie(
    addr: SocketAddr,
    method: &str,
    target: &str,
    cookie: &str,
    body: &[u8],
) -> HttpResponse {
    HttpConn::open(addr)
        .await
        .request_with(method, target, &[("Cookie", cookie)], body)
        .await
}

/// An open SSE stream: the response head is read, then one `data:` line per `next`.
struct Sse(BufReader<TcpStream>);

impl Sse {
    async fn open(addr: SocketAddr, cookie: &str) -> Sse {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /console/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCookie: other=1; {cookie}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        Sse(r)
    }

    /// The next event of the stream (chunk-size lines and comments skipped).
    async fn next(&mut self) -> Value {
        let read = async {
            loop {
                let mut line = String::new();
                assert!(
                    self.0.read_line(&mut line).await.unwrap() > 0,
                    "stream ended"
                );
                if let Some(json) = line.trim_end().strip_prefix("data: ") {
                    return serde_json::from_str::<Value>(json).unwrap();
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a console event within 5 s")
    }

    /// The next event of `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let e = self.next().await;
            if e["type"] == kind {
                return e;
            }
        }
    }
}

#[tokio::test]
async fn wrong_secret_is_refused_and_no_secret_is_ever_sent_back() {
    let srv = start(console_config()).await;
    let (status, body, cookie) = sign_in(srv.addr, APP_ID, "wrong").await;
    assert_eq!((status, cookie), (401, None), "{body}");
    let (status, _, _) = sign_in(srv.addr, "no-such-app", SECRET).await;
    assert_eq!(status, 401);
    let (status, body, cookie) = sign_in(srv.addr, APP_ID, SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(body["app"], APP_ID);
    let cookie = cookie.expect("a session cookie");
    assert!(!body.to_string().contains(SECRET), "{body}");
    assert!(!cookie.contains(SECRET), "{cookie}");
    let page = http(srv.addr, "GET", "/console", b"").await;
    assert_eq!(page.status, 200);
    assert!(!String::from_utf8_lossy(&page.body).contains(SECRET));
    // `/console/` sends the browser to `/console`, where the page's relative links resolve.
    let slash = http(srv.addr, "GET", "/console/", b"").await;
    assert_eq!(slash.status, 308);
    let location = slash
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("location"));
    assert_eq!(location.map(|(_, v)| v.as_str()), Some("/console"));

    // The cookie is the session: who it signs in as, refused when absent or forged.
    let me = with_cookie(srv.addr, "GET", "/console/session", &cookie, b"").await;
    assert_eq!((me.status, me.json()["app"].as_str()), (200, Some(APP_ID)));
    assert_eq!(
        http(srv.addr, "GET", "/console/session", b"").await.status,
        401
    );
    let forged = format!("herald_console={APP_ID}.99999999999.00");
    for target in ["/console/stream", "/console/session"] {
        let resp = with_cookie(srv.addr, "GET", target, &forged, b"").await;
        assert_eq!(resp.status, 401, "{target}");
    }
    // The old query-string token is not accepted.
    let token = cookie.split_once('=').unwrap().1;
    let q = format!("/console/stream?app={APP_ID}&token={token}");
    assert_eq!(http(srv.addr, "GET", &q, b"").await.status, 401);
    // Signing out clears the cookie.
    let out = with_cookie(srv.addr, "DELETE", "/console/session", &cookie, b"").await;
    assert_eq!(out.status, 200);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{:?}",
        out.headers
    );
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address() {
    let mut cfg = console_config();
    cfg.metrics.enabled = true;
    cfg.metrics.port = 0;
    let srv = start(cfg).await;
    let admin = srv.metrics.expect("metrics listener");
    for _ in 0..5 {
        assert_eq!(sign_in(admin, APP_ID, "guess").await.0, 401);
    }
    // Locked out: even the right secret gets 429 with Retry-After, and no cookie.
    let body = json!({ "app": APP_ID, "secret": SECRET }).to_string();
    let resp = http(admin, "POST", "/console/session", body.as_bytes()).await;
    assert_eq!(resp.status, 429, "{:?}", resp.json());
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(resp.header("set-cookie").is_none());
    // Another address is not affected.
    let other = "127.0.0.2".parse().unwrap();
    let resp = HttpConn::open_from(admin, other)
        .await
        .request("POST", "/console/session", body.as_bytes())
        .await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    let scrape = http(admin, "GET", "/metrics", b"").await;
    let text = String::from_utf8_lossy(&scrape.body);
    assert!(
        text.contains("herald_console_signins_throttled_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn console_is_absent_when_disabled() {
    let srv = start(config()).await;
    assert_eq!(http(srv.addr, "GET", "/console", b"").await.status, 404);
}

#[tokio::test]
async fn viewer_sees_connections_subscriptions_and_api_events_live() {
    let srv = start(console_config()).await;
    let cookie = session(srv.addr).await;
    let mut sse = Sse::open(srv.addr, &cookie).await;
    let mut client = srv.client().await;
    let connected = sse.next_of("connected").await;
    assert_eq!(connected["app"], APP_ID);
    client.subscribe("news").await;
    let sub = sse.next_of("subscribed").await;
    assert_eq!(sub["channel"], "news");
    srv.api().trigger(&["news"], "headline", "{\"a\":1}").await;
    let ev = sse.next_of("api_event").await;
    assert_eq!(
        (ev["channel"].as_str(), ev["event"].as_str()),
        (Some("news"), Some("headline"))
    );
    assert_eq!(ev["size"], 7);
    client.recv_event("headline").await;

    // The event creator: same path as the API (delivered, shown), same validation (400).
    let q = "/console/events";
    let body = json!({"channel": "news", "name": "from-console", "data": "{}"}).to_string();
    let resp = with_cookie(srv.addr, "POST", q, &cookie, body.as_bytes()).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    client.recv_event("from-console").await;
    assert_eq!(sse.next_of("api_event").await["event"], "from-console");
    let bad = json!({"channel": "news", "name": "pusher:x", "data": "{}"}).to_string();
    let resp = with_cookie(srv.addr, "POST", q, &cookie, bad.as_bytes()).await;
    assert_eq!(resp.status, 400);
    // Without the cookie: 401. As a form (what a cross-site page could post): 415.
    assert_eq!(http(srv.addr, "POST", q, body.as_bytes()).await.status, 401);
    let form = HttpConn::open(srv.addr)
        .await
        .request_with(
            "POST",
            q,
            &[("Cookie", &cookie), ("Content-Type", "text/plain")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(form.status, 415);

    // An error sent to a client: a private channel without auth.
    client
        .send_subscribe(json!({ "channel": "private-x", "auth": "app-key:bad" }))
        .await;
    let err = sse.next_of("error").await;
    assert!(err["code"].is_u64() && err["message"].is_string(), "{err}");

    drop(client);
    assert_eq!(sse.next_of("disconnected").await["app"], APP_ID);
}

#[tokio::test]
async fn with_the_metrics_listener_on_the_console_lives_there_only() {
    let mut cfg = console_config();
    cfg.metrics.enabled = true;
    cfg.metrics.port = 0;
    let srv = start(cfg).await;
    let admin = srv.metrics.expect("metrics listener");
    assert_eq!(http(srv.addr, "GET", "/console", b"").await.status, 404);
    assert_eq!(http(admin, "GET", "/console", b"").await.status, 200);
    let (status, body, _) = sign_in(admin, APP_ID, SECRET).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sign_in(admin, APP_ID, "wrong").await.0, 401);
    let scrape = http(admin, "GET", "/metrics", b"").await;
    assert_eq!(scrape.status, 200);
    let text = String::from_utf8_lossy(&scrape.body);
    assert!(text.contains("herald_console_viewers 0"), "{text}");
    assert!(
        text.contains("herald_console_events_dropped_total 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_webhook_is_shown() {
    use herald::config::{WebhookEventType, WebhookFilter, WebhookTarget};
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", refused.local_addr().unwrap());
    drop(refused);
    let mut cfg = console_config();
    let app = &mut cfg.apps[0];
    app.webhooks = vec![WebhookTarget {
        url,
        event_types: vec![WebhookEventType::ChannelOccupied],
        filter: WebhookFilter::default(),
        headers: Default::default(),
    }];
    app.webhook_retry.max_attempts = 1;
    app.webhook_retry.timeout_ms = 500;
    let srv = start(cfg).await;
    let cookie = session(srv.addr).await;
    let mut sse = Sse::open(srv.addr, &cookie).await;
    let mut client = srv.client().await;
    client.subscribe("occupy-me").await;
    let hook = sse.next_of("webhook").await;
    assert_eq!(
        (hook["ok"].as_bool(), hook["events"].as_u64()),
        (Some(false), Some(1))
    );
}
