//! `presence`: N members join one presence channel at the same moment. Measures how long each
//! join takes (subscribe sent → `subscription_succeeded`), how long until every member has
//! seen everyone (the `member_added` fan-out, O(N²) deliveries), checks that every member's
//! list converges to exactly the N user ids, and the server CPU spent on it all.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use herald::auth::sign;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect_id, App, Client};
use crate::procs::{cpu_split, start_herald};
use crate::Opts;

const CHANNEL: &str = "presence-bench";

/// The digit runs of `text`, as numbers (user ids are plain numbers in this bench).
fn numbers(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|d| d.parse().ok())
}

/// The user ids in a `subscription_succeeded` frame's `ids` list (no JSON parse).
fn snapshot_ids(frame: &str) -> Vec<u32> {
    let Some((_, rest)) = frame.split_once("ids") else {
        return Vec::new();
    };
    let list = rest.split(']').next().unwrap_or("");
    numbers(list).collect()
}

/// The user id of a `member_added` / `member_removed` frame.
fn member_id(frame: &str) -> Option<u32> {
    numbers(frame.split_once("user_id")?.1).next()
}

/// One member: connects, waits for the start signal, joins, then reads member events until it
/// knows all `n` members (or `limit` passes). Returns (join time, converged-at time, list ok)
/// and the socket, still open.
async fn member(
    mut ws: Client,
    socket_id: String,
    user: u32,
    n: usize,
    app: App,
    start: tokio::sync::watch::Receiver<Option<Instant>>,
    limit: Duration,
) -> (Option<Duration>, Option<Duration>, bool, Client) {
    let data = format!(r#"{{"user_id":{user},"user_info":{{"n":{user}}}}}"#);
    let auth = sign(
        &app.secret,
        format!("{socket_id}:{CHANNEL}:{data}").as_bytes(),
    );
    let escaped = data.replace('"', "\\\"");
    let msg = format!(
        r#"{{"event":"pusher:subscribe","data":{{"channel":"{CHANNEL}","auth":"{}:{auth}","channel_data":"{escaped}"}}}}"#,
        app.key
    );
    let mut start = start;
    let t0 = loop {
        if let Some(t) = *start.borrow_and_update() {
            break t;
        }
        if start.changed().await.is_err() {
            return (None, None, false, ws);
        }
    };
    if ws.send(Message::Text(msg.into())).await.is_err() {
        return (None, None, false, ws);
    }
    let (mut joined, mut converged) = (None, None);
    let mut known: HashSet<u32> = HashSet::with_capacity(n);
    let deadline = tokio::time::Instant::from_std(t0 + limit);
    while converged.is_none() {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            _ => break,
        };
        let t = msg.as_str();
        if t.contains("subscription_succeeded") {
            joined = Some(t0.elapsed());
            known.extend(snapshot_ids(t));
        } else if t.contains("member_added") {
            known.extend(member_id(t));
        } else if t.contains("member_removed") {
            if let Some(id) = member_id(t) {
                known.remove(&id);
            }
        } else if t.contains("subscription_error") {
            panic!("member {user} refused: {t}");
        }
        if joined.is_some() && known.len() >= n {
            converged = Some(t0.elapsed());
        }
    }
    let ok = known.len() == n && known.iter().all(|&id| (id as usize) < n);
    // Kept open until every member is done: a leaving member would be removed from the others.
    (joined, converged, ok, ws)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Percentile (nearest rank) of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

pub async fn run(o: &Opts) {
    let n = o.subscribers.unwrap_or(100);
    let (app, mut node, pid) = match &o.external {
        Some(app) => (app.clone(), None, o.pid),
        None => {
            let mut node = start_herald(o, "herald".into(), None);
            node.wait_ready(false);
            let pid = node.pid();
            (App::bench(node.port), Some(node), Some(pid))
        }
    };
    println!(
        "presence: {n} members join {CHANNEL} at once, server {}",
        app.addr
    );
    let limit = Duration::from_secs_f64(o.duration.max(1.0) * 6.0);
    let (tx, rx) = tokio::sync::watch::channel(None);
    let mut members = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let opening: Vec<_> = chunk
            .iter()
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { connect_id(&app).await })
            })
            .collect();
        for (&i, c) in chunk.iter().zip(opening) {
            let (ws, id) = c.await.expect("connect");
            let (app, rx) = (app.clone(), rx.clone());
            members.push(tokio::spawn(member(ws, id, i as u32, n, app, rx, limit)));
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu0 = pid.map(cpu_split);
    let t0 = Instant::now();
    tx.send(Some(t0)).expect("members listen");
    let mut joins = Vec::with_capacity(n);
    let mut converged = Vec::with_capacity(n);
    let mut wrong = 0usize;
    let mut open = Vec::with_capacity(n);
    for m in members {
        let (j, c, ok, ws) = m.await.expect("member task");
        joins.extend(j.map(ms));
        converged.extend(c.map(ms));
        wrong += usize::from(!ok);
        open.push(ws);
    }
    let cpu1 = pid.map(cpu_split);
    drop(open);
    if let Some(node) = node.as_mut() {
        node.stop(Duration::from_secs(5));
    }
    joins.sort_by(f64::total_cmp);
    converged.sort_by(f64::total_cmp);
    // Member events: each member hears of every member that joined after it.
    let member_events = (n * n.saturating_sub(1) / 2) as f64;
    let (user, sys) = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b.0 - a.0, b.1 - a.1),
        _ => (f64::NAN, f64::NAN),
    };
    let figures = [
        ("members", n as f64),
        ("joined", joins.len() as f64),
        ("join p50 ms", pct(&joins, 0.5)),
        ("join p99 ms", pct(&joins, 0.99)),
        ("all joined ms", joins.last().copied().unwrap_or(f64::NAN)),
        ("converged", converged.len() as f64),
        ("lists wrong", wrong as f64),
        ("converged p50 ms", pct(&converged, 0.5)),
        (
            "all converged ms",
            converged.last().copied().unwrap_or(f64::NAN),
        ),
        ("herald user CPU s", user),
        ("herald system CPU s", sys),
        (
            "herald CPU µs / member event",
            (user + sys) * 1e6 / member_events.max(1.0),
        ),
    ];
    let mut json = serde_json::Map::new();
    json.insert("bench".into(), "presence".into());
    for (k, v) in figures {
        println!("{k}: {v:.3}");
        json.insert(
            k.into(),
            serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into),
        );
    }
    if wrong > 0 {
        println!("WARNING: {wrong} of {n} member lists did not converge to the {n} members");
    }
    println!("{}", serde_json::Value::Object(json));
}
