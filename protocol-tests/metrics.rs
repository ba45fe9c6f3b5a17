//! Observability over real sockets: `/metrics` on the metrics listener scraped after known
//! traffic (exact values), never on the public port; `/ready` on both listeners, 503 while
//! shutting down; and the real binary's `--log-format json` / `--debug` output.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn metrics_config() -> Config {
    let mut cfg = config();
    cfg.metrics.enabled = true;
    cfg.metrics.host = "127.0.0.1".into();
    cfg.metrics.port = 0;
    cfg
}

/// Scrapes `/metrics`: every sample line, keyed by `name{labels}` as written.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let resp = http(addr, "GET", "/metrics", b"").await;
    assert_eq!(resp.status, 200);
    let ct = resp.header("content-type").unwrap_or_default().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = String::from_utf8(resp.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", sorted(m)))
}

fn sorted(m: &HashMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

async fn text_frame(c: &mut Client) -> String {
    match c.next_message(FRAME_TIMEOUT).await {
        Some(Message::Text(t)) => t.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Known traffic, then one scrape checked value by value. Current-thread runtime: an HTTP
/// batch is queued on a socket's outbox before that socket's task can run, so the slow
/// consumer overflows deterministically.
#[tokio::test(flavor = "current_thread")]
async fn scrape_matches_known_traffic() {
    let mut cfg = metrics_config();
    cfg.server.max_queued_frames = 4;
    let srv = start(cfg).await;
    let maddr = srv.metrics.expect("metrics listener bound");
    let app = r#"app="app-id""#;

    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let mut c = srv.client().await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    a.subscribe_presence("presence-room", r#"{"user_id":"1"}"#)
        .await;

    // An API event to two subscribers.
    srv.api().trigger(&["news"], "greet", "hello").await;
    let news = text_frame(&mut a).await;
    assert_eq!(news, r#"{"event":"greet","channel":"news","data":"hello"}"#);
    assert_eq!(text_frame(&mut b).await, news);

    // A client event from a to b.
    let whisper = r#"{"event":"client-typing","channel":"private-chat","data":{"x":1}}"#;
    a.send_text(whisper).await;
    let relayed = text_frame(&mut b).await;
    assert!(relayed.contains("client-typing"), "{relayed}");

    // A bad channel signature and a bad API signature.
    c.send_subscribe(json!({"channel":"private-secret","auth":"app-key:0000"}))
        .await;
    assert_eq!(c.recv().await["event"], "pusher:subscription_error");
    assert_eq!(c.recv().await["event"], "pusher:error");
    let bad = Api::new(srv.addr, "", KEY, "not-the-secret");
    let (status, _) = bad
        .events(&json!({"name":"e","channels":["news"],"data":"x"}))
        .await;
    assert_eq!(status, 401);

    // An unknown app key: refused at admission.
    let ws = ws_open(srv.addr, "/app/no-such-key?protocol=7", None)
        .await
        .unwrap();
    let mut unknown = Client::raw(ws);
    unknown.expect_error_and_close(4001, None).await;

    // A slow consumer: 10 events at once into an outbox of 4.
    let mut d = srv.client().await;
    d.subscribe("slow").await;
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({"name":"e","channel":"slow","data":"x"}))
        .collect();
    let (status, _) = srv.api().batch(json!(batch)).await;
    assert_eq!(status, 200);
    let (code, _, _) = d.drain_until_close(Duration::from_secs(5)).await;
    assert_eq!(code, 4100);
    let slow_frame_len = r#"{"event":"e","channel":"slow","data":"x"}"#.len();

    // The client b leaves.
    b.close().await;

    // Never on the public port.
    assert_eq!(http(srv.addr, "GET", "/metrics", b"").await.status, 404);
    assert_eq!(http(srv.addr, "GET", "/ready", b"").await.status, 200);
    assert_eq!(http(maddr, "GET", "/ready", b"").await.status, 200);
    assert_eq!(http(maddr, "GET", "/up", b"").await.status, 200);
    assert_eq!(http(maddr, "GET", "/nope", b"").await.status, 404);

    // Wait until the server has seen both closes.
    let mut m = scrape(maddr).await;
    for _ in 0..50 {
        if get(&m, &format!("herald_connections{{{app}}}")) == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        m = scrape(maddr).await;
    }
    a.sync().await;
    c.sync().await;
    let m = scrape(maddr).await;
    let expect = |key: &str, v: f64| assert_eq!(get(&m, key), v, "{key}");
    let k = |name: &str, labels: &str| format!("{name}{{{app}{labels}}}");

    expect(&k("herald_connections", ""), 2.0);
    expect(&k("herald_connections_opened_total", ""), 4.0);
    expect(
        &k("herald_connections_closed_total", r#",code="client""#),
        1.0,
    );
    expect(
        &k("herald_connections_closed_total", r#",code="4100""#),
        1.0,
    );
    expect(
        &k("herald_connections_closed_total", r#",code="gone""#),
        0.0,
    );
    expect(&k("herald_slow_consumer_closes_total", ""), 1.0);
    for (kind, subs, chans) in [
        ("public", 1.0, 1.0),
        ("private", 1.0, 1.0),
        ("presence", 1.0, 1.0),
        ("private-encrypted", 0.0, 0.0),
    ] {
        let l = format!(r#",kind="{kind}""#);
        expect(&k("herald_subscriptions", &l), subs);
        expect(&k("herald_channels", &l), chans);
    }
    expect(&k("herald_presence_members", ""), 1.0);
    let api = r#",kind="api_event""#;
    let client = r#",kind="client_event""#;
    expect(&k("herald_messages_received_total", api), 11.0);
    expect(&k("herald_messages_received_bytes_total", api), 15.0);
    expect(&k("herald_messages_received_total", client), 1.0);
    expect(
        &k("herald_messages_received_bytes_total", client),
        whisper.len() as f64,
    );
    expect(&k("herald_messages_sent_total", api), 2.0 + 4.0);
    expect(
        &k("herald_messages_sent_bytes_total", api),
        (2 * news.len() + 4 * slow_frame_len) as f64,
    );
    expect(&k("herald_messages_sent_total", client), 1.0);
    expect(
        &k("herald_messages_sent_bytes_total", client),
        relayed.len() as f64,
    );
    let protocol = r#",kind="protocol""#;
    assert!(get(&m, &k("herald_messages_sent_total", protocol)) >= 10.0);
    assert!(get(&m, &k("herald_messages_received_total", protocol)) >= 8.0);
    expect(&k("herald_deliveries_dropped_total", ""), 6.0);
    expect(
        &k("herald_auth_failures_total", r#",kind="channel_auth""#),
        1.0,
    );
    expect(
        &k("herald_auth_failures_total", r#",kind="api_signature""#),
        1.0,
    );
    expect(&k("herald_auth_failures_total", r#",kind="signin""#), 0.0);
    expect(
        &k("herald_rate_limited_total", r#",kind="client_events""#),
        0.0,
    );
    expect(
        &k(
            "herald_api_requests_total",
            r#",route="events",status="200""#,
        ),
        1.0,
    );
    expect(
        &k(
            "herald_api_requests_total",
            r#",route="batch_events",status="200""#,
        ),
        1.0,
    );
    expect(
        &k(
            "herald_api_requests_total",
            r#",route="events",status="401""#,
        ),
        1.0,
    );
    expect(
        r#"herald_api_requests_total{app="",route="unknown",status="404"}"#,
        1.0,
    );
    expect(
        &k(
            "herald_api_request_duration_seconds_count",
            r#",route="events""#,
        ),
        2.0,
    );
    expect(r#"herald_api_requests_refused_total{status="401"}"#, 1.0);
    expect(r#"herald_api_requests_refused_total{status="404"}"#, 1.0);
    expect(
        r#"herald_connections_refused_total{reason="unknown_app"}"#,
        1.0,
    );
    expect(
        r#"herald_connections_refused_total{reason="pending_per_ip"}"#,
        0.0,
    );
    expect("herald_accept_failures_total", 0.0);
    assert!(get(&m, "process_resident_memory_bytes") > 1e6);
    assert!(get(&m, "process_open_fds") >= 5.0);
    assert!(get(&m, "process_cpu_seconds_total") >= 0.0);
    assert!(
        !m.keys().any(|k| k.starts_with("herald_redis")),
        "no cluster metrics without scaling"
    );
}

/// `/ready` turns 503 as soon as shutdown begins, while connections are still draining, and
/// the metrics listener keeps answering until the drain is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_shutting_down() {
    let mut srv = start(metrics_config()).await;
    let maddr = srv.metrics.unwrap();
    let without = start(config()).await;
    assert!(without.metrics.is_none(), "metrics are off by default");
    assert_eq!(http(without.addr, "GET", "/ready", b"").await.status, 200);
    // A client that never reads: the server waits for its close reply (up to 2 s).
    let silent = ws_open(srv.addr, &format!("/app/{KEY}?protocol=7"), None)
        .await
        .unwrap();
    let resp = http(maddr, "GET", "/ready", b"").await;
    assert_eq!((resp.status, resp.json()), (200, json!({"ready":true})));
    srv.shutdown();
    let mut seen = None;
    for _ in 0..40 {
        let resp = http(maddr, "GET", "/ready", b"").await;
        if resp.status != 200 {
            seen = Some((resp.status, resp.json()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, Some((503, json!({"ready":false}))));
    // Still scrapable during the drain.
    let m = scrape(maddr).await;
    assert!(m.contains_key(r#"herald_connections{app="app-id"}"#));
    drop(silent);
}

/// Runs the real binary with `args` and the given env, returns its stderr lines once
/// `until` appears in one of them (then kills it).
fn herald_stderr(args: &[&str], env: &[(&str, &str)], f: impl FnOnce(u16)) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(["start", "--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn herald");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut out = Vec::new();
    let port = loop {
        let line = lines.next().expect("herald exited early").unwrap();
        out.push(line.clone());
        if let Some(i) = line.find("listening on 127.0.0.1:") {
            let rest = &line[i + "listening on 127.0.0.1:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse::<u16>().unwrap();
        }
    };
    f(port);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    out.extend(lines.map_while(Result::ok));
    let _ = child.wait();
    out
}

#[test]
fn json_log_lines_and_redacted_debug_frames() {
    let channel_data = r#"{"user_id":"u-1","user_info":{"name":"n"}}"#;
    let mut signature = String::new();
    let lines = herald_stderr(&["--log-format", "json", "--debug"], &[], |port| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut c = Client::connect(addr, "").await;
            let auth = channel_auth(&c.socket_id, "presence-x", Some(channel_data));
            signature = auth.split(':').nth(1).unwrap().to_owned();
            c.send_subscribe(
                json!({"channel":"presence-x","auth":auth,"channel_data":channel_data}),
            )
            .await;
            c.recv_event("pusher_internal:subscription_succeeded").await;
            c.sync().await;
        });
    });
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(parsed
        .iter()
        .all(|v| v["level"].is_string() && v["fields"]["message"].is_string()));
    let messages: Vec<&str> = parsed
        .iter()
        .filter_map(|v| v["fields"]["message"].as_str())
        .collect();
    let subscribe = messages
        .iter()
        .find(|m| m.starts_with("in: ") && m.contains("pusher:subscribe"))
        .unwrap_or_else(|| panic!("no inbound subscribe frame: {messages:#?}"));
    assert!(
        subscribe.contains(&format!(
            r#""channel_data":"<{} bytes>""#,
            channel_data.len()
        )),
        "{subscribe}"
    );
    assert!(
        subscribe.contains(r#""auth":"app-key:<redacted>""#),
        "{subscribe}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("out: ") && m.contains("pusher:pong")),
        "{messages:#?}"
    );
    assert_eq!(signature.len(), 64);
    assert!(!lines.join("\n").contains(&signature), "signature logged");

    // The env var selects JSON too; text is the default.
    let lines = herald_stderr(&[], &[("HERALD_LOG_FORMAT", "json")], |_| {});
    assert!(lines.iter().all(|l| l.starts_with('{')), "{lines:#?}");
    let lines = herald_stderr(&[], &[], |_| {});
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{lines:#?}");
}
