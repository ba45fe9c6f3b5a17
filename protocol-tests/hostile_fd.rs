//! File-descriptor exhaustion: the real `herald` binary runs as a child process with an
//! open-file limit of 64 (`ulimit -n`), and silent connections use up its descriptors. The
//! accept loop must back off instead of spinning (bounded CPU and log lines), the connected
//! canaries must keep exchanging events, and the server must accept again once descriptors
//! are free. It also checks the start-up warning about a low open-file limit.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::net::TcpStream;

/// The open-file limit the child runs under.
const NOFILE: u32 = 64;

/// The child process and the stderr lines it has written so far.
struct Child64 {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _config: TempFile,
}

impl Drop for Child64 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Child64 {
    fn start() -> Child64 {
        let path = std::env::temp_dir().join(format!("herald-fd-{}.toml", std::process::id()));
        let config = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\nmax_connections = 1000\n\
             first_byte_timeout = 60.0\nmax_pending_per_ip = 0\n\
             [[apps]]\nid = \"{APP_ID}\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n"
        );
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {NOFILE} && exec \"$0\" start --config \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_herald"))
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Child64 {
            child,
            lines,
            _config: TempFile(path),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn addr(&self) -> SocketAddr {
        let mut found = None;
        let ok = eventually(Duration::from_secs(10), || {
            found = self.lines().iter().find_map(|l| {
                let rest = l.split("listening on ").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            });
            let done = found.is_some();
            async move { done }
        })
        .await;
        assert!(ok, "no 'listening on' line: {:?}", self.lines());
        found.unwrap()
    }

    /// CPU time (user + system) used so far, in clock ticks (1/100 s on Linux).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/pid/stat");
        let after_comm = stat.rsplit(')').next().expect("stat format");
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the comm field.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

/// A client event from `from` on `private-canary` must reach `to` within 2 s.
async fn canaries_talk(from: &mut Client, to: &mut Client, n: u32) {
    from.client_event("private-canary", "client-tick", json!({ "n": n }))
        .await;
    let v = to.recv_event("client-tick").await;
    assert_eq!(data_json(&v), json!({ "n": n }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fd_exhaustion_backs_off_and_recovers() {
    let herald = Child64::start();
    let addr = herald.addr().await;
    assert!(
        herald
            .lines()
            .iter()
            .any(|l| l.contains("open-file limit 64 is below")),
        "no start-up warning about the open-file limit: {:?}",
        herald.lines()
    );
    let mut a = Client::connect(addr, "").await;
    let mut b = Client::connect(addr, "").await;
    a.subscribe_private("private-canary").await;
    b.subscribe_private("private-canary").await;
    canaries_talk(&mut a, &mut b, 0).await;

    // Silent connections until the server is out of descriptors and says so.
    let mut silent = Vec::new();
    for _ in 0..(NOFILE + 20) {
        silent.push(TcpStream::connect(addr).await.expect("connect (backlog)"));
    }
    let exhausted = eventually(Duration::from_secs(5), || {
        let seen = herald.lines().iter().any(|l| l.contains("failed accepts"));
        async move { seen }
    })
    .await;
    assert!(exhausted, "no 'failed accepts' line: {:?}", herald.lines());

    // While exhausted: little CPU, few log lines, and the canaries still talk.
    let (lines_before, cpu_before) = (herald.lines().len(), herald.cpu_ticks());
    for n in 1..=10 {
        canaries_talk(&mut a, &mut b, n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu = herald.cpu_ticks() - cpu_before;
    let logged = herald.lines().len() - lines_before;
    assert!(
        cpu < 60,
        "{cpu} ticks of CPU in ~2 s while out of descriptors"
    );
    assert!(
        logged <= 3,
        "{logged} log lines in ~2 s: {:?}",
        herald.lines()
    );

    // Descriptors come back: new connections are served again.
    drop(silent);
    let served = eventually(Duration::from_secs(10), || up_ok(addr)).await;
    assert!(
        served,
        "not serving after descriptors were freed: {:?}",
        herald.lines()
    );
    let mut c = Client::connect(addr, "").await;
    c.subscribe_private("private-canary").await;
    canaries_talk(&mut a, &mut c, 11).await;
}
