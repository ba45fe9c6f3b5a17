//! Garbage on the cluster's pub/sub channel (`<prefix>reverb`): foreign payloads (text, binary,
//! JSON, a Reverb-shaped message) and damaged copies of real messages (a broadcast, a presence
//! join and leave) captured on the channel. Every node stays up, logs a warning, sends nothing
//! of it to any client and keeps delivering.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::harness::*;

fn ev(event: &str, channel: &str, data: &str) -> serde_json::Value {
    json!({"event": event, "channel": channel, "data": data})
}

/// A raw connection subscribed to the cluster's pub/sub channel.
async fn tap(c: &Cluster) -> RespConn {
    let chan = c.pubsub_channel();
    let mut sub = c.redis.conn().await;
    let r = sub
        .cmd(&[b"SUBSCRIBE", chan.as_bytes()])
        .await
        .expect("SUBSCRIBE");
    assert!(matches!(r, Resp::Array(_)), "SUBSCRIBE answered {r:?}");
    sub
}

/// The messages seen on `tap` within `d` whose payload contains one of `markers`.
async fn collect(tap: &mut RespConn, markers: &[&str], d: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, tap.read()).await {
            Err(_) => return out,
            Ok(r) => {
                if let Resp::Array(items) = r.expect("pub/sub read") {
                    if let Some(Resp::Bulk(Some(p))) = items.get(2) {
                        let has = |m: &str| p.windows(m.len()).any(|w| w == m.as_bytes());
                        if markers.iter().any(|m| has(m)) {
                            out.push(p.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Every text frame (raw, JSON or not) a client receives within `ms`.
async fn raw_texts_within(c: &mut Client, ms: u64) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next_message(left).await {
            None => return out,
            Some(Message::Text(t)) => out.push(t.as_str().to_string()),
            Some(_) => {}
        }
    }
}

/// Damaged copies of a real message, whatever its format: cut at every line break, cut just
/// after the last one, cut in half, missing its last byte, with junk appended, with its first or
/// second line replaced, with its line breaks turned into spaces, with a byte that is not UTF-8.
fn damaged(real: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let breaks: Vec<usize> = (0..real.len()).filter(|&i| real[i] == b'\n').collect();
    for &i in &breaks {
        out.push(real[..i].to_vec());
    }
    if let Some(&last) = breaks.last() {
        out.push(real[..=last].to_vec());
        let first = breaks[0];
        out.push([b"H9", &real[first..]].concat());
        if let Some(&second) = breaks.get(1) {
            out.push([&real[..=first], b"ZZ", &real[second..]].concat());
        }
    }
    out.push(real[..real.len() / 2].to_vec());
    out.push(real[..real.len() - 1].to_vec());
    out.push([real, b"}}}"].concat());
    out.push(
        real.iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect(),
    );
    let mut bad = real.to_vec();
    bad.insert(real.len() / 2, 0xff);
    out.push(bad);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_pubsub_channel_is_survived_and_logged() {
    let mut c = Cluster::start(3).await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut s = c.node(i).client().await;
        s.subscribe("g").await;
        subs.push(s);
    }
    let mut caps = Vec::new();
    let mut watchers = Vec::new();
    for i in 0..3 {
        let mut s = c.node(i).client().await;
        s.subscribe("g-cap").await;
        caps.push(s);
        let mut w = c.node(i).client().await;
        w.subscribe_presence("presence-g", &format!(r#"{{"user_id":"w{i}"}}"#))
            .await;
        watchers.push(w);
    }
    for (i, w) in watchers.iter_mut().enumerate() {
        for _ in i + 1..3 {
            w.recv_event("pusher_internal:member_added").await;
        }
    }
    // Real messages: a broadcast, a presence join and a presence leave, as they travel.
    let mut tap = tap(&c).await;
    c.node(0)
        .api()
        .trigger(&["g-cap"], "cap", "CAPTURE-MARKER")
        .await;
    let mut joiner = c.node(0).client().await;
    joiner
        .subscribe_presence("presence-g", r#"{"user_id":"CAPTURE-USER"}"#)
        .await;
    for w in &mut watchers {
        w.recv_event("pusher_internal:member_added").await;
    }
    joiner.close().await;
    for w in &mut watchers {
        w.recv_event("pusher_internal:member_removed").await;
    }
    for s in &mut caps {
        assert_eq!(s.recv().await, ev("cap", "g-cap", "CAPTURE-MARKER"));
    }
    let markers = ["CAPTURE-MARKER", "CAPTURE-USER"];
    let real = collect(&mut tap, &markers, Duration::from_millis(300)).await;
    for m in markers {
        assert!(
            real.iter().any(|p| String::from_utf8_lossy(p).contains(m)),
            "no publish carrying {m} seen on {}",
            c.pubsub_channel()
        );
    }
    let logs_before: Vec<usize> = c.nodes.iter().map(|n| n.stderr().len()).collect();

    let mut garbage: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        Vec::new(),
        b"{\"type\":\"message\",\"payload\":{".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x81, 0x9c, 0x07, 0xc3, 0x28],
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        b"{}".to_vec(),
        b"\"a string\"".to_vec(),
        json!({"type":"message","application":"O:26:\"Laravel\\Reverb\\Application\":0:{}",
               "payload":{"channel":"reverb-shaped","event":"x","data":"y"}})
        .to_string()
        .into_bytes(),
        json!({"type":"metrics","key":"k","payload":{}})
            .to_string()
            .into_bytes(),
        vec![b'x'; 200_000],
    ];
    for r in &real {
        garbage.extend(damaged(r));
    }
    // One at a time, so a frame that leaks out is pinned to what caused it.
    let chan = c.pubsub_channel();
    let mut leaks = Vec::new();
    for g in &garbage {
        let n = c.redis.publish(&chan, g).await;
        assert!(
            n >= 3,
            "PUBLISH to {chan} reached {n} subscribers, expected the 3 nodes"
        );
        let got = futures_util::future::join_all(
            subs.iter_mut()
                .chain(caps.iter_mut())
                .chain(watchers.iter_mut())
                .map(|s| raw_texts_within(s, 60)),
        )
        .await;
        for (k, frames) in got.into_iter().enumerate() {
            if !frames.is_empty() {
                let what = String::from_utf8_lossy(&g[..g.len().min(120)]).into_owned();
                let channel = ["g", "g-cap", "presence-g"][k / 3];
                leaks.push(format!(
                    "publishing {what:?} sent {frames:?} to the {channel} subscriber on node {}",
                    k % 3
                ));
            }
        }
    }
    // Nobody got a frame out of it (in particular no damaged copy of the captured event reached
    // the g-cap subscribers); every node is up and still delivers cross-node.
    assert!(
        leaks.is_empty(),
        "garbage reached clients:\n{}",
        leaks.join("\n")
    );
    let mut refs: Vec<&mut Client> = subs
        .iter_mut()
        .chain(caps.iter_mut())
        .chain(watchers.iter_mut())
        .collect();
    quiet_all(&mut refs, QUIET_MS).await;
    for (i, n) in c.nodes.iter_mut().enumerate() {
        assert!(n.alive(), "node {i} died of garbage:\n{}", n.stderr());
        let r = http(n.addr, "GET", "/up", b"").await;
        assert_eq!(r.status, 200, "node {i} /up after garbage");
    }
    for from in 0..3 {
        let data = format!("ok-{from}");
        c.node(from).api().trigger(&["g"], "ok", &data).await;
        for (i, s) in subs.iter_mut().enumerate() {
            assert_eq!(
                s.recv().await,
                ev("ok", "g", &data),
                "node {from} -> node {i}"
            );
        }
    }
    let mut refs: Vec<&mut Client> = subs.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
    for s in &mut subs {
        s.sync().await;
    }
    // Each node logged a warning about what it could not read.
    for (i, n) in c.nodes.iter().enumerate() {
        converge(
            &format!("a warning in node {i}'s log"),
            Duration::from_secs(2),
            true,
            || async { n.stderr()[logs_before[i]..].contains(" WARN ") },
        )
        .await;
    }
}
