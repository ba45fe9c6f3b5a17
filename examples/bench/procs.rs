//! Child processes (herald nodes, redis-server) and what is read about them from /proc.
//!
//! Every child is registered by pid. A panic anywhere (main or any task), Ctrl-C and the hard
//! time limit all kill every registered child before the bench exits; the normal path stops
//! them through [`Procs::stop_all`] (or its `Drop`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Opts;

/// Every live child, with its temp config file if any.
static PIDS: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());
/// Set by whichever of panic, Ctrl-C and the time limit ends the bench first.
static EXITING: AtomicBool = AtomicBool::new(false);

fn kill_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Kills (SIGKILL) every child still registered, the last started first (herald nodes before
/// their redis), and removes their temp configs.
pub fn kill_registered() {
    let pids = std::mem::take(&mut *PIDS.lock().unwrap_or_else(|e| e.into_inner()));
    for (pid, config) in pids.into_iter().rev() {
        kill_pid(pid, "-KILL");
        if let Some(path) = config {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Kills every child and exits with `code`; only the first caller does, later ones (say, a
/// task panicking because its server just died) wait here for the exit.
fn exit(code: i32, why: impl FnOnce()) -> ! {
    if EXITING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    why();
    kill_registered();
    std::process::exit(code);
}

/// A panic anywhere kills every child and exits; so do Ctrl-C and the hard time limit.
pub fn install_guards(time_limit: Duration) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| exit(101, || default(info))));
    std::thread::spawn(move || {
        std::thread::sleep(time_limit);
        exit(124, || {
            eprintln!(
                "bench: hard time limit of {}s reached",
                time_limit.as_secs()
            )
        });
    });
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            exit(130, || eprintln!("bench: interrupted"));
        }
    });
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// (user, system) CPU seconds from the text of a `/proc/.../stat` file.
pub fn split_stat(stat: &str) -> (f64, f64) {
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64;
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// (user, system) CPU seconds of a process (all its threads).
pub fn cpu_split(pid: u32) -> (f64, f64) {
    split_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// User + system CPU time of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (u, s) = cpu_split(pid);
    u + s
}

/// One started child: its process, the port it listens on, and a tail of its stderr.
pub struct Proc {
    pub name: String,
    pub port: u16,
    child: Child,
    link_up: Arc<AtomicBool>,
    tail: Arc<Mutex<VecDeque<String>>>,
    config: Option<PathBuf>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(name: String, port: u16, mut cmd: Command, config: Option<PathBuf>) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        PIDS.lock().unwrap().push((child.id(), config.clone()));
        let link_up = Arc::new(AtomicBool::new(false));
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (up, t, n) = (link_up.clone(), tail.clone(), name.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("cluster link up") {
                    up.store(true, Ordering::Release);
                }
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("[{n}] {line}");
                }
                let mut t = t.lock().unwrap();
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Proc {
            name,
            port,
            child,
            link_up,
            tail,
            config,
        }
    }

    fn tail(&self) -> String {
        let t = self.tail.lock().unwrap();
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits until the port accepts connections and, if `link`, until stderr said
    /// `cluster link up`. Panics (with the stderr tail) after 10 seconds or if the child died.
    pub fn wait_ready(&mut self, link: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited early ({status}):\n{}", self.name, self.tail());
            }
            let listening = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if listening && (!link || self.link_up.load(Ordering::Acquire)) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} not ready after 10s:\n{}", self.name, self.tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns how long it took.
    pub fn stop(&mut self, grace: Duration) -> (Duration, String) {
        let t = Instant::now();
        let pid = self.pid();
        kill_pid(pid, "-TERM");
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.to_string(),
                Ok(None) if t.elapsed() < grace => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    break format!("killed after {}s", grace.as_secs());
                }
            }
        };
        let _ = self.child.wait();
        PIDS.lock().unwrap().retain(|p| p.0 != pid);
        if let Some(path) = self.config.take() {
            let _ = std::fs::remove_file(path);
        }
        (t.elapsed(), status)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.pid();
        if PIDS
            .lock()
            .map(|p| p.iter().any(|e| e.0 == pid))
            .unwrap_or(false)
        {
            self.stop(Duration::from_secs(3));
        }
    }
}

/// The bench app, a generous queue, no pings during a run.
const APP: &str = "[[apps]]\nid = \"bench\"\nkey = \"bench-key\"\nsecret = \"bench-secret\"\nping_interval = 3600\nactivity_timeout = 120\nclient_events_per_second = 100000\nmax_presence_members = 100000\n";

/// Starts `o.bin` with a temp config on a free port; with `redis`, joined to that cluster; with
/// `o.console`, the live debug console on (nobody watching); with `o.batch_window`, that
/// `batch_window_ms`.
pub fn start_herald(o: &Opts, name: String, redis: Option<u16>) -> Proc {
    let (bin, console) = (o.bin.as_str(), o.console);
    let port = free_port();
    let window = o
        .batch_window
        .map(|ms| format!("batch_window_ms = {ms}\n"))
        .unwrap_or_default();
    let mut cfg = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = {port}\nmax_request_size = 1000000\nmax_queued_frames = 100000\nmax_pending_per_ip = 0\n{window}\n{APP}"
    );
    if let Some(rp) = redis {
        cfg.push_str(&format!(
            "\n[scaling]\nenabled = true\nurl = \"redis://127.0.0.1:{rp}/0\"\nprefix = \"bench:\"\n"
        ));
    }
    if console {
        cfg.push_str("\n[console]\nenabled = true\n");
    }
    let path = std::env::temp_dir().join(format!("herald-bench-{port}.toml"));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(cfg.as_bytes()))
        .expect("write temp config");
    let mut cmd = Command::new(bin);
    cmd.args(["start", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "herald=info,warn");
    if !std::path::Path::new(bin).exists() {
        panic!("no server binary at {bin} (cargo build --release --bin herald)");
    }
    Proc::spawn(name, port, cmd, Some(path))
}

/// Starts a throwaway redis-server on a free port: no RDB snapshots, no AOF.
pub fn start_redis(bin: &str) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"]);
    Proc::spawn("redis".into(), port, cmd, None)
}
