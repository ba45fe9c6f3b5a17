//! Load benchmark. Starts its own servers (and, for a cluster, its own redis-server), talks to
//! them on 127.0.0.1 only, and kills every child at the end, on panic, on Ctrl-C and at the
//! hard time limit. CPU figures come from /proc (utime + stime), so they hold on a shared,
//! noisy machine. Linux only.
//!
//! Two modes:
//! - `--mode memory` (default): one node; resident memory per idle connection
//!   (`--connections N`, 10000), then a burst fan-out of `--messages M` (500) events to
//!   `--subscribers S` (1000) as deliveries per server CPU-second, then the shutdown time.
//! - `--mode fanout`: `--nodes N` (1) herald processes, `--scaling on|off` (off; on starts a
//!   redis-server and joins every node to it), `--subscribers S` (500) on one public channel
//!   spread round-robin over the nodes, events triggered on node 0 at `--rate R` per second (100)
//!   for `--duration SECS` (10), `--payload BYTES` (100) each; `--runs R` (3) fresh repetitions,
//!   reported as median and spread. Measures deliveries/s, missing and duplicate deliveries,
//!   latency from trigger send to receipt (all, node 0, other nodes), herald CPU per delivery
//!   (all nodes summed) and redis CPU. `--trigger-conns K` (rate/250, 1..8) HTTP connections
//!   share the schedule.
//!
//! Common: `--bin PATH` (target/release/herald), `--redis PATH` (/usr/bin/redis-server),
//! `--time-limit SECS` (900).
//!
//! Run: `cargo build --release --bin herald --examples`, then e.g.
//! `cargo run --release --example bench -- --connections 10000` or
//! `cargo run --release --example bench -- --mode fanout --nodes 3 --scaling on`.

mod client;
#[path = "../common/mod.rs"]
mod common;
mod fanout;
mod memory;
mod procs;

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
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
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
            "--connections" => o.connections = num("--connections") as usize,
            "--subscribers" => o.subscribers = Some(num("--subscribers") as usize),
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
    assert!(
        o.nodes == 1 || o.scaling,
        "--nodes > 1 needs --scaling on (unconnected nodes would not share events)"
    );
    o
}

#[tokio::main]
async fn main() {
    let o = opts();
    procs::install_guards(Duration::from_secs(o.time_limit));
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match o.mode.as_str() {
        "fanout" => fanout::run(&o).await,
        _ => memory::run(&o).await,
    }
    procs::kill_registered();
}
