//! One `herald start` process on a config file of its own (in a fresh temporary directory),
//! with `--pid-file` and stderr captured to a file, and helpers to signal it and read its log.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

/// A fresh, empty temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("herald-ops-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A running `herald start`.
pub struct Herald {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pid_file: PathBuf,
    stderr_path: PathBuf,
    child: Option<Child>,
}

impl Herald {
    /// Writes `config` (TOML) to `<dir>/config.toml`, starts herald on it and waits for its
    /// `listening on` line and its pid file.
    pub async fn start(dir: &Path, config: &str) -> Herald {
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, config).expect("write config");
        let pid_file = dir.join("herald.pid");
        let stderr_path = dir.join("herald.stderr");
        let err = File::create(&stderr_path).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("start")
            .arg("--config")
            .arg(&cfg)
            .arg("--pid-file")
            .arg(&pid_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .env("RUST_LOG", "herald=info,warn");
        for (k, _) in std::env::vars() {
            if k.starts_with("REVERB_") || k.starts_with("REDIS_") || k == "HERALD_CONFIG" {
                cmd.env_remove(k);
            }
        }
        let mut h = Herald {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.to_owned(),
            config: cfg,
            pid_file,
            stderr_path,
            child: Some(cmd.spawn().expect("spawn herald")),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = h.child.as_mut().unwrap().try_wait().ok().flatten() {
                panic!("herald exited during start-up ({status}):\n{}", h.stderr());
            }
            if let Some(a) = parse_listening(&h.stderr()) {
                if h.pid_file.exists() {
                    h.addr = a;
                    return h;
                }
            }
            assert!(
                Instant::now() < deadline,
                "herald not up in 10 s:\n{}",
                h.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the config file.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("rewrite config");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("kill");
    }

    /// Everything herald wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Waits until stderr holds `needle` at least `n` times; returns the log.
    pub async fn wait_log(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.stderr();
            if log.matches(needle).count() >= n {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {n} times in 5 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM and wait for the exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        c.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The address in the `listening on 127.0.0.1:PORT ...` start-up line.
fn parse_listening(log: &str) -> Option<SocketAddr> {
    let rest = &log[log.find("listening on ")? + "listening on ".len()..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    token.parse().ok()
}

/// A config with these `(id, key, secret)` apps on 127.0.0.1:0, plus `extra_server` lines in
/// `[server]` and `tail` (more tables) at the end.
pub fn config(apps: &[(&str, &str, &str)], extra_server: &str, tail: &str) -> String {
    let mut s = format!("[server]\nhost = \"127.0.0.1\"\nport = 0\n{extra_server}\n");
    for (id, key, secret) in apps {
        s.push_str(&format!(
            "[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"{secret}\"\n\n"
        ));
    }
    s.push_str(tail);
    s
}
