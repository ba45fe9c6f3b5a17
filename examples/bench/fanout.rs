//! Timed fan-out across a cluster the bench starts itself: N herald nodes (with their own
//! redis-server when scaling is on), S subscribers of one public channel spread round-robin
//! over the nodes, events triggered through the signed HTTP API on node 0 at a fixed rate.
//! Each event carries its sequence number and send time; every subscriber records what it got,
//! so loss and duplicates are exact and latency is trigger-send to receipt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::{connect_id, private_auth, subscribe_auth, App, Client, Trigger};
use crate::procs::{cpu_seconds, cpu_split, start_herald, start_redis, Proc};
use crate::rawws::{Closed, Frame, Polled, RawWs};
use crate::Opts;

/// How events are published.
struct Publish {
    channel: &'static str,
    event: &'static str,
    warm: &'static str,
    client_events: bool,
}

fn publish(o: &Opts) -> Publish {
    if o.client_events {
        Publish {
            channel: "private-bench",
            event: "client-bench",
            warm: "client-warm",
            client_events: true,
        }
    } else {
        Publish {
            channel: "bench",
            event: "bench",
            warm: "warm",
            client_events: false,
        }
    }
}

/// One publisher: a kept-alive HTTP connection, or a WebSocket subscribed to the channel that
/// sends client events.
enum Publisher {
    Http(Trigger),
    Ws(Client),
}

impl Publisher {
    async fn open(app: &App, p: &Publish) -> Publisher {
        if p.client_events {
            let (mut ws, id) = connect_id(app).await;
            subscribe_auth(&mut ws, p.channel, Some(private_auth(app, &id, p.channel))).await;
            Publisher::Ws(ws)
        } else {
            Publisher::Http(Trigger::connect(app).await)
        }
    }

    async fn send(&mut self, p: &Publish, event: &str, data: impl FnOnce() -> String) {
        match self {
            Publisher::Http(t) => t.send(p.channel, event, data).await,
            Publisher::Ws(ws) => {
                use futures_util::SinkExt;
                let msg = format!(
                    r#"{{"event":"{event}","channel":"{}","data":"{}"}}"#,
                    p.channel,
                    data()
                );
                ws.send(Message::Text(msg.into()))
                    .await
                    .expect("client event");
            }
        }
    }
}

/// What one subscriber saw.
struct Seen {
    node: usize,
    /// Receipts per event sequence number.
    counts: Vec<u8>,
    /// Send-to-receipt latency of each first receipt, in µs.
    latencies: Vec<u32>,
    /// Time of the last receipt, µs since the bench's epoch.
    last_us: u64,
    /// The server closed the socket (or it failed) before the end.
    closed: bool,
}

/// What every subscriber's counting shares.
struct Counting {
    /// `{"event":"<event>"`: a measured delivery.
    event_prefix: String,
    /// `{"event":"<warm-up event>"`.
    warm_prefix: String,
    events: usize,
    epoch: Instant,
    total: AtomicUsize,
    warmed: AtomicUsize,
}

/// One subscriber's counts as it reads.
struct Tally {
    seen: Seen,
    warm: bool,
}

impl Tally {
    fn new(node: usize, events: usize) -> Tally {
        Tally {
            seen: Seen {
                node,
                counts: vec![0; events],
                latencies: Vec::with_capacity(events),
                last_us: 0,
                closed: false,
            },
            warm: false,
        }
    }

    /// Counts one text frame received at `now` (µs since the epoch); whether it was a delivery.
    fn text(&mut self, c: &Counting, t: &str, now: u64) -> bool {
        if t.starts_with(&c.event_prefix) {
            let Some((seq, sent)) = parse_data(t) else {
                panic!("malformed bench event: {t}");
            };
            if seq < c.events {
                let seen = &mut self.seen;
                if seen.counts[seq] == 0 {
                    seen.latencies.push(now.saturating_sub(sent) as u32);
                }
                seen.counts[seq] = seen.counts[seq].saturating_add(1);
                return true;
            }
        } else if t.starts_with(&c.warm_prefix) && !self.warm {
            self.warm = true;
            c.warmed.fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    /// Counts the frames one read brought (`frames` hands them over), all received at once.
    fn read(
        &mut self,
        c: &Counting,
        frames: impl FnOnce(&mut dyn FnMut(Frame<'_>) -> bool) -> Result<(), Closed>,
    ) -> Result<(), Closed> {
        // One clock read per read: the frames it brought arrived together.
        let now = c.epoch.elapsed().as_micros() as u64;
        let mut got = 0;
        let parsed = frames(&mut |f| {
            if let Frame::Text(t) = f {
                got += usize::from(self.text(c, t, now));
            }
            true
        });
        if got > 0 {
            self.seen.last_us = now;
            c.total.fetch_add(got, Ordering::Relaxed);
        }
        parsed.inspect_err(|_| self.seen.closed = true)
    }
}

/// One subscriber waiting for its data (epoll, through the runtime), as a browser's socket
/// does: every delivery wakes this thread when it sleeps, and on loopback the server pays that
/// wake-up.
async fn read(mut ws: RawWs, mut tally: Tally, c: Arc<Counting>, stop: CancellationToken) -> Seen {
    // Registered once: a `cancelled()` made per read would register a waker per delivery.
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    loop {
        let read = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = ws.read_ready() => r,
        };
        match read {
            Ok(true) => {}
            Ok(false) => continue,
            Err(Closed) => {
                tally.seen.closed = true;
                break;
            }
        }
        if tally.read(&c, |f| ws.frames(f)).is_err() {
            break;
        }
    }
    tally.seen
}

/// Every subscriber polled once a millisecond (`--readers poll`) from an epoll set nobody
/// waits on, as the floor's polled readers are: the server's sends wake no one.
async fn read_polled(
    subs: Vec<(RawWs, Tally)>,
    c: Arc<Counting>,
    stop: CancellationToken,
) -> Vec<Seen> {
    let mut poll = mio::Poll::new().expect("poller");
    let mut subs: Vec<(Polled, Tally, bool)> = subs
        .into_iter()
        .enumerate()
        .map(|(i, (ws, t))| (ws.into_polled(&poll, mio::Token(i)), t, true))
        .collect();
    let mut events = mio::Events::with_capacity(1024);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_cancelled() {
        tick.tick().await;
        loop {
            poll.poll(&mut events, Some(Duration::ZERO)).expect("poll");
            if events.is_empty() {
                break;
            }
            for ev in &events {
                let (ws, tally, open) = &mut subs[ev.token().0];
                if *open {
                    *open = ws.read_all().is_ok() && tally.read(&c, |f| ws.frames(f)).is_ok();
                    tally.seen.closed |= !*open;
                }
            }
            if events.iter().count() < 1024 {
                break;
            }
        }
    }
    subs.into_iter().map(|(_, t, _)| t.seen).collect()
}

/// `"data":"SEQ:SENT_US:xxx…"` → (SEQ, SENT_US).
fn parse_data(frame: &str) -> Option<(usize, u64)> {
    let (_, data) = frame.split_once(r#""data":""#)?;
    let mut parts = data.splitn(3, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The event payload: `SEQ:SENT_US:` padded with `x` to `size` bytes.
fn payload(seq: usize, sent_us: u64, size: usize) -> String {
    let mut s = format!("{seq}:{sent_us}:");
    let pad = size.saturating_sub(s.len());
    s.extend(std::iter::repeat_n('x', pad));
    s
}

/// Latencies (µs) in an HdrHistogram: 3 significant digits, up to 10 minutes.
fn histogram(latencies: &[u32]) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    for &l in latencies {
        h.saturating_record(u64::from(l.max(1)));
    }
    h
}

fn percentile(h: &hdrhistogram::Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    h.value_at_quantile(p) as f64
}

/// One run's figures, in a fixed order (see `METRICS`).
pub type Figures = Vec<f64>;

/// Name and decimals of each figure, in the order `run_once` returns them.
pub const METRICS: &[(&str, usize)] = &[
    ("events sent", 0),
    ("trigger rate achieved /s", 0),
    ("deliveries", 0),
    ("missing", 0),
    ("duplicates", 0),
    ("sockets closed early", 0),
    ("deliveries /s (wall)", 0),
    ("latency p50 µs", 0),
    ("latency p99 µs", 0),
    ("latency max µs", 0),
    ("node 0 p50 µs", 0),
    ("node 0 p99 µs", 0),
    ("other nodes p50 µs", 0),
    ("other nodes p99 µs", 0),
    ("cross-node extra p50 µs", 0),
    ("cross-node extra p99 µs", 0),
    ("herald CPU s", 2),
    ("herald CPU µs / delivery", 3),
    ("herald user CPU µs / delivery", 3),
    ("herald system CPU µs / delivery", 3),
    ("deliveries / herald CPU-s", 0),
    ("redis CPU s", 2),
    ("redis CPU µs / event", 1),
    ("bench client CPU s", 2),
];

pub async fn run_once(o: &Opts, rate: f64) -> Figures {
    let subscribers = o.subscribers.unwrap_or(500);
    let events = (rate * o.duration).round() as usize;
    assert!(events > 0 && o.nodes > 0 && subscribers > 0);
    let p = publish(o);

    // Servers: started here, or the one given with --url (and --pid for its CPU).
    let mut redis: Option<Proc> =
        (o.scaling && o.external.is_none()).then(|| start_redis(&o.redis));
    if let Some(r) = redis.as_mut() {
        r.wait_ready(false);
    }
    let redis_port = redis.as_ref().map(|r| r.port);
    let mut nodes: Vec<Proc> = Vec::new();
    let (apps, pids): (Vec<App>, Vec<u32>) = match &o.external {
        Some(app) => (vec![app.clone()], o.pid.into_iter().collect()),
        None => {
            nodes = (0..o.nodes)
                .map(|i| start_herald(o, format!("node{i}"), redis_port))
                .collect();
            for n in &mut nodes {
                n.wait_ready(o.scaling);
            }
            (
                nodes.iter().map(|n| App::bench(n.port)).collect(),
                nodes.iter().map(Proc::pid).collect(),
            )
        }
    };
    let node_count = apps.len();

    // Subscribers, round-robin over the nodes, 100 connecting at a time.
    let epoch = Instant::now();
    let stop = CancellationToken::new();
    let counting = Arc::new(Counting {
        event_prefix: format!(r#"{{"event":"{}""#, p.event),
        warm_prefix: format!(r#"{{"event":"{}""#, p.warm),
        events,
        epoch,
        total: AtomicUsize::new(0),
        warmed: AtomicUsize::new(0),
    });
    let mut subs = Vec::with_capacity(subscribers);
    for chunk in (0..subscribers).collect::<Vec<_>>().chunks(100) {
        let opening: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let app = apps[i % node_count].clone();
                let channel = p.channel;
                let private = p.client_events;
                tokio::spawn(async move {
                    let (mut ws, id) = RawWs::connect(&app).await;
                    let auth = private.then(|| private_auth(&app, &id, channel));
                    ws.subscribe(channel, auth).await;
                    ws
                })
            })
            .collect();
        for (&i, ws) in chunk.iter().zip(opening) {
            let ws = ws.await.expect("subscriber");
            subs.push((ws, Tally::new(i % node_count, events)));
        }
    }
    let readers: Vec<tokio::task::JoinHandle<Vec<Seen>>> = if o.poll_readers {
        vec![tokio::spawn(read_polled(
            subs,
            counting.clone(),
            stop.clone(),
        ))]
    } else {
        subs.into_iter()
            .map(|(ws, tally)| {
                let read = read(ws, tally, counting.clone(), stop.clone());
                tokio::spawn(async move { vec![read.await] })
            })
            .collect()
    };
    let (total, warmed) = (&counting.total, &counting.warmed);

    // Warm-up: trigger until every subscriber, on every node, has seen an event.
    let mut http = Publisher::open(&apps[0], &p).await;
    for attempt in 0.. {
        http.send(&p, p.warm, || "warm".into()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if warmed.load(Ordering::Relaxed) == subscribers {
            break;
        }
        assert!(
            attempt < 50,
            "warm-up: {} of {subscribers} subscribers reached",
            warmed.load(Ordering::Relaxed)
        );
    }
    drop(http);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Measured phase: K trigger connections to node 0 share one fixed schedule.
    let herald_cpu = |pids: &[u32]| {
        pids.iter()
            .map(|&p| cpu_split(p))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let redis_cpu = |r: &Option<Proc>| r.as_ref().map(|r| cpu_seconds(r.pid())).unwrap_or(0.0);
    let self_pid = std::process::id();
    let (h0, r0, c0) = (herald_cpu(&pids), redis_cpu(&redis), cpu_seconds(self_pid));
    let k = o.trigger_conns.unwrap_or_else(|| {
        // Client events: Pusher's 10 per second and connection unless the server allows more.
        let per = if p.client_events { 100.0 } else { 250.0 };
        (rate / per).ceil().clamp(1.0, 8.0) as usize
    });
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let size = o.payload;
    let mut triggers = Vec::new();
    let p = Arc::new(p);
    for c in 0..k {
        let (app, p) = (apps[0].clone(), p.clone());
        triggers.push(tokio::spawn(async move {
            let mut http = Publisher::open(&app, &p).await;
            let mut last_sent = start;
            for seq in (c..events).step_by(k) {
                tokio::time::sleep_until((start + period * seq as u32).into()).await;
                http.send(&p, p.event, || {
                    payload(seq, epoch.elapsed().as_micros() as u64, size)
                })
                .await;
                last_sent = Instant::now();
            }
            last_sent
        }));
    }
    let mut last_sent = start;
    for t in triggers {
        last_sent = last_sent.max(t.await.expect("trigger task"));
    }
    let want = events * subscribers;
    // Drain: over capacity, deliveries go on after the last trigger; stop when all are in, or
    // after 5 s without progress (the loss is then counted), or after 300 s in any case.
    let (drain_start, mut progress, mut seen_total) = (Instant::now(), Instant::now(), 0);
    while seen_total < want
        && progress.elapsed() < Duration::from_secs(5)
        && drain_start.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now_total = total.load(Ordering::Relaxed);
        if now_total > seen_total {
            (seen_total, progress) = (now_total, Instant::now());
        }
    }
    let (h1, r1, c1) = (herald_cpu(&pids), redis_cpu(&redis), cpu_seconds(self_pid));
    stop.cancel();
    let mut seen = Vec::with_capacity(subscribers);
    for r in readers {
        seen.extend(r.await.expect("reader"));
    }

    // Servers down before the numbers are crunched.
    for n in &mut nodes {
        n.stop(Duration::from_secs(5));
    }
    if let Some(r) = redis.as_mut() {
        r.stop(Duration::from_secs(5));
    }

    let (mut missing, mut dups, mut delivered, mut closed) = (0usize, 0usize, 0usize, 0usize);
    let (mut all, mut local, mut remote) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_us = 0;
    for s in &seen {
        for &c in &s.counts {
            delivered += c as usize;
            missing += (c == 0) as usize;
            dups += (c as usize).saturating_sub(1);
        }
        closed += s.closed as usize;
        last_us = last_us.max(s.last_us);
        all.extend_from_slice(&s.latencies);
        if s.node == 0 { &mut local } else { &mut remote }.extend_from_slice(&s.latencies);
    }
    let (all, local, remote) = (histogram(&all), histogram(&local), histogram(&remote));
    let start_us = start.duration_since(epoch).as_micros() as u64;
    let wall = (last_us.saturating_sub(start_us) as f64 / 1e6).max(1e-3);
    let send_span = (last_sent.duration_since(start) + period).as_secs_f64();
    let (hu, hs) = (h1.0 - h0.0, h1.1 - h0.1);
    let (hcpu, rcpu) = (if pids.is_empty() { f64::NAN } else { hu + hs }, r1 - r0);
    vec![
        events as f64,
        events as f64 / send_span,
        delivered as f64,
        missing as f64,
        dups as f64,
        closed as f64,
        delivered as f64 / wall,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        if all.is_empty() {
            f64::NAN
        } else {
            all.max() as f64
        },
        percentile(&local, 0.5),
        percentile(&local, 0.99),
        percentile(&remote, 0.5),
        percentile(&remote, 0.99),
        percentile(&remote, 0.5) - percentile(&local, 0.5),
        percentile(&remote, 0.99) - percentile(&local, 0.99),
        hcpu,
        hcpu * 1e6 / delivered.max(1) as f64,
        hu * 1e6 / delivered.max(1) as f64,
        hs * 1e6 / delivered.max(1) as f64,
        delivered as f64 / hcpu.max(0.01),
        rcpu,
        rcpu * 1e6 / events as f64,
        c1 - c0,
    ]
}

fn fmt(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.decimals$}")
    }
}

/// Runs `o.runs` fresh repetitions at `rate`; prints each run, the median table and one JSON
/// line (medians), and returns the medians.
pub async fn run_at(o: &Opts, rate: f64, name: &str) -> Figures {
    let server = match &o.external {
        Some(app) => format!("{} (pid {:?})", app.addr, o.pid),
        None => o.bin.clone(),
    };
    let label = format!(
        "{} node(s), scaling {}, {} subscribers, {} events/s x {}s, {}-byte payload, {}, server {server}",
        o.nodes,
        if o.scaling { "on" } else { "off" },
        o.subscribers.unwrap_or(500),
        rate,
        o.duration,
        o.payload,
        if o.client_events { "client events" } else { "HTTP API" },
    );
    println!("{name}: {label}; {} run(s)", o.runs);
    let floor = o.floor.then(|| {
        let subs = o.subscribers.unwrap_or(500);
        let f = crate::floor::measure(subs, 100.0, 5.0, o.payload, o.floor_wait);
        println!(
            "floor (same run): {:.3} µs CPU per write (user {:.3}, system {:.3}); one round to all sockets takes p50 {:.0} / p99 {:.0} µs",
            f.us_per_write, f.user_us, f.sys_us, f.round_p50_us, f.round_p99_us
        );
        f.us_per_write
    });
    let mut runs: Vec<Figures> = Vec::new();
    for i in 0..o.runs {
        let f = run_once(o, rate).await;
        let line: Vec<String> = [2, 3, 4, 6, 7, 8, 9, 17, 18, 19, 21]
            .iter()
            .map(|&m| format!("{}={}", METRICS[m].0, fmt(f[m], METRICS[m].1)))
            .collect();
        println!("run {}: {}", i + 1, line.join(", "));
        runs.push(f);
    }
    println!("\n| metric | median | spread (min–max) |\n|---|---:|---:|");
    let mut medians = Vec::new();
    let mut json = serde_json::Map::new();
    json.insert("bench".into(), name.into());
    json.insert("rate".into(), rate.into());
    json.insert("subscribers".into(), o.subscribers.unwrap_or(500).into());
    json.insert("client_events".into(), o.client_events.into());
    json.insert(
        "readers".into(),
        if o.poll_readers { "poll" } else { "wait" }.into(),
    );
    for (m, &(metric, d)) in METRICS.iter().enumerate() {
        let mut v: Vec<f64> = runs.iter().map(|r| r[m]).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let median = v[v.len() / 2];
        medians.push(median);
        json.insert(
            metric.into(),
            serde_json::Number::from_f64(median).map_or(serde_json::Value::Null, Into::into),
        );
        println!(
            "| {metric} | {} | {}–{} |",
            fmt(median, d),
            fmt(v[0], d),
            fmt(v[v.len() - 1], d)
        );
    }
    if let Some(floor) = floor {
        let ratio = medians[17] / floor;
        println!("| herald CPU per delivery / floor | {ratio:.2} | |");
        json.insert("floor_us".into(), floor.into());
        json.insert("floor_readers_wait".into(), o.floor_wait.into());
        json.insert(
            "cpu_to_floor".into(),
            serde_json::Number::from_f64(ratio).map_or(serde_json::Value::Null, Into::into),
        );
    }
    let lost: f64 = runs.iter().map(|r| r[3] + r[4]).sum();
    if lost > 0.0 {
        println!("\nWARNING: {lost} missing or duplicate deliveries over all runs");
    }
    println!("{}", serde_json::Value::Object(json));
    medians
}

/// `fanout`: the steady fan-out at `--rate`.
pub async fn run(o: &Opts) {
    run_at(o, o.rate, "fanout").await;
}

/// `max-rate`: doubles the rate from `--rate` until p99 passes 100 ms, anything is lost, or
/// `--max-steps` steps; reports the highest clean rate and its CPU per delivery.
pub async fn max_rate(o: &Opts) {
    let mut rate = o.rate;
    let mut best: Option<(f64, f64, f64)> = None;
    for _ in 0..o.max_steps {
        let m = run_at(o, rate, "max-rate step").await;
        let clean = m[3] == 0.0 && m[4] == 0.0 && m[5] == 0.0 && m[8] <= 100_000.0;
        if !clean {
            break;
        }
        best = Some((rate, m[6], m[17]));
        rate *= 2.0;
    }
    match best {
        Some((rate, dps, cpu)) => {
            println!("max-rate: {rate} events/s sustained = {dps:.0} deliveries/s at {cpu:.3} µs CPU per delivery");
            println!(
                "{}",
                serde_json::json!({"bench": "max-rate", "events_per_s": rate, "deliveries_per_s": dps, "cpu_us_per_delivery": cpu})
            );
        }
        None => println!("max-rate: even {} events/s was not clean", o.rate),
    }
}
