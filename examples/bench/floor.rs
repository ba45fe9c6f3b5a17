//! `floor`: the cost of the writes themselves, measured on the same machine in the same run.
//! One writer thread writes one pre-encoded ~130-byte WebSocket frame to each of S connected
//! loopback sockets, `rate` times a second, one `write()` each; a second thread drains the
//! other ends. The writer thread's own CPU (user and system, from /proc/thread-self/stat) per
//! write is the floor any server's CPU per delivery is compared with: on loopback the writer
//! also pays the receiver's TCP work, as a server does.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (user, system) CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    crate::procs::split_stat(&stat)
}

/// Floor figures: µs of writer CPU per write, total and split.
pub struct Floor {
    pub writes: u64,
    pub us_per_write: f64,
    pub user_us: f64,
    pub sys_us: f64,
    /// How long one round (a write to every socket) took, start to last write: the least
    /// time in which one thread can deliver an event to every subscriber.
    pub round_p50_us: f64,
    pub round_p99_us: f64,
    pub round_max_us: f64,
}

/// Runs the floor for `duration` seconds with `subs` sockets at `rate` rounds per second. With
/// `wait`, the other ends are read the way the bench's subscribers are (a task per socket on a
/// tokio runtime, woken by epoll when data arrives), so the writer also pays the receiver's
/// wake-ups, as a server measured against the bench does; without, one thread polls them every
/// 0.5 ms and no reader ever waits (the floor as first defined: cheaper).
pub fn measure(subs: usize, rate: f64, duration: f64, payload: usize, wait: bool) -> Floor {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut writers = Vec::with_capacity(subs);
    let mut readers = Vec::with_capacity(subs);
    for _ in 0..subs {
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nodelay(true).unwrap();
        client.set_nonblocking(true).unwrap();
        writers.push(server);
        readers.push(client);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let drain_stop = stop.clone();
    let drainer = std::thread::spawn(move || {
        if wait {
            return drain_waiting(readers, drain_stop);
        }
        let mut buf = vec![0u8; 64 * 1024];
        while !drain_stop.load(Ordering::Relaxed) {
            for r in &mut readers {
                loop {
                    match r.read(&mut buf) {
                        Ok(n) if n > 0 => continue,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        _ => break,
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    // The frame a server would send: header plus a Pusher event of about `payload` bytes.
    let json = format!(
        r#"{{"event":"bench","channel":"bench","data":"{}"}}"#,
        "x".repeat(payload.saturating_sub(2))
    );
    let mut frame = vec![0x81u8];
    if json.len() < 126 {
        frame.push(json.len() as u8);
    } else {
        frame.push(126);
        frame.extend_from_slice(&(json.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(json.as_bytes());
    let rounds = (rate * duration).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let writer = std::thread::spawn(move || {
        let (u0, s0) = thread_cpu();
        let start = Instant::now();
        let mut round_us = Vec::with_capacity(rounds as usize);
        for round in 0..rounds {
            let at = start + period * round as u32;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let began = Instant::now();
            for w in &mut writers {
                w.write_all(&frame).expect("floor write");
            }
            round_us.push(began.elapsed().as_micros() as u64);
        }
        let (u1, s1) = thread_cpu();
        (u1 - u0, s1 - s0, round_us)
    });
    let (user, sys, mut round_us) = writer.join().expect("writer");
    round_us.sort_unstable();
    let pick = |q: f64| {
        round_us
            .get(((round_us.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |&v| v as f64)
    };
    stop.store(true, Ordering::Relaxed);
    drainer.join().expect("drainer");
    let writes = rounds * subs as u64;
    let per = |s: f64| s * 1e6 / writes.max(1) as f64;
    Floor {
        writes,
        us_per_write: per(user + sys),
        user_us: per(user),
        sys_us: per(sys),
        round_p50_us: pick(0.5),
        round_p99_us: pick(0.99),
        round_max_us: pick(1.0),
    }
}

/// Reads every socket from tasks that wait for data (epoll), until `stop`.
fn drain_waiting(readers: Vec<TcpStream>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        for r in readers {
            let mut r = tokio::net::TcpStream::from_std(r).expect("tokio stream");
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 4096];
                while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// `floor` on its own: prints the figures and a JSON line.
pub fn run(o: &crate::Opts) {
    let subs = o.subscribers.unwrap_or(500);
    let f = measure(subs, o.rate, o.duration, o.payload, o.floor_wait);
    println!(
        "floor: {subs} sockets x {} writes/s x {}s: {} writes, {:.3} µs CPU per write (user {:.3}, system {:.3}); one round to all sockets: p50 {:.0}, p99 {:.0}, max {:.0} µs",
        o.rate, o.duration, f.writes, f.us_per_write, f.user_us, f.sys_us, f.round_p50_us, f.round_p99_us, f.round_max_us
    );
    println!(
        "{}",
        serde_json::json!({"bench": "floor", "sockets": subs, "rate": o.rate, "duration": o.duration,
            "writes": f.writes, "us_per_write": f.us_per_write, "user_us": f.user_us, "sys_us": f.sys_us,
            "round_p50_us": f.round_p50_us, "round_p99_us": f.round_p99_us, "round_max_us": f.round_max_us})
    );
}
