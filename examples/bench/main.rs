//! Load benchmark for any Pusher-compatible server. By default it starts its own Herald (and,
//! for a cluster, its own redis-server), talks to it on 127.0.0.1 only, and kills every child
//! at the end, on panic, on Ctrl-C and at the hard time limit. Given `--url ws://HOST:PORT
//! --app-id ID --key KEY --secret SECRET [--pid PID]` it measures that server instead (CPU and
//! memory figures need its PID). One thread (a current-thread runtime), bounded loops, pre-built
//! frames, no JSON parse of deliveries; CPU from /proc/PID/stat (user and system). Linux only.
//! Readable lines, then one JSON line per measurement.
//!
//! Subcommands (the first argument; `--mode memory|fanout` still works):
//! - `conns`: `--connections N` (10000) idle connections, each subscribed to one of
//!   `--channels C` (100) public channels (0: none); server RSS per connection, connect rate,
//!   failures; then (spawned server only) a burst fan-out and the shutdown time.
//! - `fanout`: `--subscribers S` (500) on one channel, `--rate R` (100) events/s for
//!   `--duration SECS` (10) of `--payload BYTES` (100), over the signed HTTP API on kept-alive
//!   connections, or with `--mode client-events` as client events on a private channel;
//!   deliveries/s, loss, duplicates, latency p50/p99/max (HdrHistogram), server CPU per delivery
//!   split user/system, `--runs R` (3) fresh repetitions as median and spread; `--floor on`
//!   measures the write floor first and prints the ratio (`--floor wait`: its readers wait
//!   for data like the bench's subscribers, so the writer pays their wake-ups too). Cluster: `--nodes N --scaling on`.
//! - `max-rate`: fan-out at `--rate`, doubling (at most `--max-steps`, 6) until p99 passes
//!   100 ms or anything is lost.
//! - `floor`: the write floor (see `floor.rs`).
//! - `presence`: `--members N` (100) join one presence channel at once; join time, time until
//!   every member's list holds all N (the `member_added` fan-out), that every list converges,
//!   server CPU (see `presence.rs`).
//!
//! Common: `--bin PATH` (target/release/herald), `--redis PATH` (/usr/bin/redis-server),
//! `--time-limit SECS` (900), `--console on` (`[console] enabled`, no viewer: its idle cost).
//!
//! Run: `cargo build --release --bin herald --examples`, then e.g.
//! `target/release/examples/bench conns --connections 10000` or
//! `target/release/examples/bench fanout --floor on` or
//! `target/release/examples/bench fanout --nodes 3 --scaling on`.

mod client;
#[path = "../common/mod.rs"]
mod common;
mod fanout;
mod floor;
mod memory;
mod presence;
mod procs;
mod rawws;

use std::time::Duration;

/// Command-line options; see the module docs for defaults.
pub struct Opts {
    mode: String,
    connections: usize,
    subscribers: Option<usize>,
    messages: usize,
    bin: String,
    redis: String,
    nodes: usize,
    scaling: bool,
    rate: f64,
    duration: f64,
    payload: usize,
    runs: usize,
    trigger_conns: Option<usize>,
    time_limit: u64,
    /// A server the bench did not start.
    external: Option<client::App>,
    pid: Option<u32>,
    client_events: bool,
    floor: bool,
    /// `--floor wait`: the floor's readers wait for data like the bench's subscribers.
    floor_wait: bool,
    /// `[console] enabled` on the servers the bench starts (no viewer connects).
    console: bool,
    channels: usize,
    max_steps: usize,
    /// `--batch-window MS`: `[server] batch_window_ms` on the servers the bench starts.
    batch_window: Option<u64>,
    /// `--readers poll`: the fan-out subscribers are polled, not woken by their data.
    poll_readers: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        mode: "memory".into(),
        connections: 10_000,
        subscribers: None,
        messages: 500,
        bin: "target/release/herald".into(),
        redis: "/usr/bin/redis-server".into(),
        nodes: 1,
        scaling: false,
        rate: 100.0,
        duration: 10.0,
        payload: 100,
        runs: 3,
        trigger_conns: None,
        time_limit: 900,
        external: None,
        pid: None,
        client_events: false,
        floor: false,
        floor_wait: false,
        console: false,
        channels: 100,
        max_steps: 6,
        batch_window: None,
        poll_readers: false,
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(cmd) = args.first().filter(|a| !a.starts_with("--")).cloned() {
        args.remove(0);
        o.mode = match cmd.as_str() {
            "conns" => "memory".into(),
            "fanout" | "max-rate" | "floor" | "presence" => cmd,
            other => {
                panic!("unknown subcommand {other} (conns, fanout, max-rate, floor, presence)")
            }
        };
    }
    let (mut url, mut app_id, mut key, mut secret) = (None, None, None, None);
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        let num = |what: &str| -> f64 {
            v.parse()
                .ok()
                .filter(|n: &f64| *n > 0.0)
                .unwrap_or_else(|| panic!("{what} needs a positive number"))
        };
        match pair[0].as_str() {
            "--mode" if v == "memory" || v == "fanout" => o.mode = v,
            "--mode" if v == "client-events" => o.client_events = true,
            "--mode" if v == "http" => o.client_events = false,
            "--url" => url = Some(v),
            "--app-id" => app_id = Some(v),
            "--key" => key = Some(v),
            "--secret" => secret = Some(v),
            "--pid" => o.pid = Some(num("--pid") as u32),
            "--floor" if v == "on" || v == "off" || v == "wait" => {
                o.floor = v != "off";
                o.floor_wait = v == "wait";
            }
            "--console" if v == "on" || v == "off" => o.console = v == "on",
            "--channels" => o.channels = v.parse().expect("--channels needs a number"),
            "--readers" if v == "poll" || v == "wait" => o.poll_readers = v == "poll",
            "--batch-window" => {
                o.batch_window = Some(v.parse().expect("--batch-window needs a number (ms)"))
            }
            "--max-steps" => o.max_steps = num("--max-steps") as usize,
            "--connections" => o.connections = num("--connections") as usize,
            "--subscribers" | "--members" => o.subscribers = Some(num("--subscribers") as usize),
            "--messages" => o.messages = num("--messages") as usize,
            "--bin" => o.bin = v,
            "--redis" => o.redis = v,
            "--nodes" => o.nodes = num("--nodes") as usize,
            "--scaling" if v == "on" || v == "off" => o.scaling = v == "on",
            "--rate" => o.rate = num("--rate"),
            "--duration" => o.duration = num("--duration"),
            "--payload" => o.payload = num("--payload") as usize,
            "--runs" => o.runs = num("--runs") as usize,
            "--trigger-conns" => o.trigger_conns = Some(num("--trigger-conns") as usize),
            "--time-limit" => o.time_limit = num("--time-limit") as u64,
            other => panic!("unknown option or value: {other} {v}"),
        }
    }
    if let Some(url) = url {
        let addr = url
            .trim_start_matches("ws://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        o.external = Some(client::App {
            addr,
            id: app_id.expect("--url needs --app-id"),
            key: key.expect("--url needs --key"),
            secret: secret.expect("--url needs --secret"),
        });
    }
    assert!(
        o.nodes == 1 || o.scaling,
        "--nodes > 1 needs --scaling on (unconnected nodes would not share events)"
    );
    o
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = opts();
    procs::install_guards(Duration::from_secs(o.time_limit));
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match o.mode.as_str() {
        "fanout" => fanout::run(&o).await,
        "max-rate" => fanout::max_rate(&o).await,
        "floor" => floor::run(&o),
        "presence" => presence::run(&o).await,
        _ => memory::run(&o).await,
    }
    procs::kill_registered();
}
