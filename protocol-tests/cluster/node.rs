//! One real `herald start` process, on a config file of its own, with stderr captured to a file.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::{Api, Client, KEY, SECRET};
use crate::harness::{tail, LINK_UP};

/// One `herald start` process.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    child: Option<Child>,
    pub stderr_path: PathBuf,
}

impl Node {
    /// Writes `cfg` to `<dir>/<name>.toml`, runs herald on it and waits until it is ready:
    /// `GET /up` answers 200 and stderr shows [`LINK_UP`] (when scaling is enabled).
    pub async fn spawn(cfg: &Config, dir: &Path, name: &str) -> Node {
        let cfg_path = dir.join(format!("{name}.toml"));
        let text = toml::to_string_pretty(cfg).expect("config renders as TOML");
        std::fs::write(&cfg_path, text).expect("write node config");
        let stderr_path = dir.join(format!("{name}.stderr"));
        let err = File::create(&stderr_path).expect("node stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("start")
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        for (k, _) in std::env::vars() {
            if k.starts_with("REVERB_") || k == "HERALD_CONFIG" {
                cmd.env_remove(k);
            }
        }
        let log = std::env::var("CLUSTER_RUST_LOG").unwrap_or_else(|_| "herald=info,warn".into());
        cmd.env("RUST_LOG", log);
        let child = cmd.spawn().expect("spawn herald");
        let mut node = Node {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: Some(child),
            stderr_path,
        };
        node.wait_ready(cfg.scaling.enabled).await;
        node
    }

    async fn wait_ready(&mut self, scaling: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut up = false;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                panic!(
                    "{} exited during start-up ({status}):\n{}",
                    self.name,
                    tail(&self.stderr_path, 30)
                );
            }
            let log = self.stderr();
            if self.addr.port() == 0 {
                if let Some(a) = parse_listening(&log) {
                    self.addr = a;
                }
            }
            if self.addr.port() != 0 && !up {
                up = up_ok(self.addr).await;
            }
            if up && (!scaling || log.contains(LINK_UP)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} not ready within 10 s (addr {}, /up {}, {LINK_UP:?} {}):\n{}",
                    self.name,
                    self.addr,
                    if up { "200" } else { "not 200" },
                    if log.contains(LINK_UP) {
                        "seen"
                    } else {
                        "never logged"
                    },
                    tail(&self.stderr_path, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the node wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// A WebSocket client connected to this node, `connection_established` read.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr, "").await
    }

    /// A signed HTTP API client on this node.
    pub fn api(&self) -> Api {
        Api::new(self.addr, "", KEY, SECRET)
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM: a graceful stop (the node leaves the cluster); waits until it exited.
    pub async fn term(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..500 {
            if !matches!(c.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} did not exit within 10 s of SIGTERM", self.name);
    }

    /// SIGKILL, no goodbye to the cluster.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
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

/// `GET /up` answers 200 (one short attempt).
async fn up_ok(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), probe).await,
        Ok(Some(true))
    )
}
