//! A private `redis-server` for one test (free port, no persistence, stop and start again empty on
//! the same port), and just enough of RESP to PING, PUBLISH and SUBSCRIBE.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::harness::tail;

// ---------------------------------------------------------------------------------------------
// RESP (just enough of the Redis protocol for PING, PUBLISH and SUBSCRIBE)

/// One RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

/// A raw connection to Redis.
pub struct RespConn {
    stream: BufReader<TcpStream>,
}

impl RespConn {
    pub async fn connect(port: u16) -> std::io::Result<RespConn> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        Ok(RespConn {
            stream: BufReader::new(s),
        })
    }

    pub async fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&out).await
    }

    pub async fn read(&mut self) -> std::io::Result<Resp> {
        Box::pin(self.read_inner()).await
    }

    async fn read_inner(&mut self) -> std::io::Result<Resp> {
        let mut line = Vec::new();
        self.stream.read_until(b'\n', &mut line).await?;
        if line.len() < 3 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "short RESP line",
            ));
        }
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let num = || {
            body.parse::<i64>()
                .map_err(|_| std::io::Error::other(format!("bad RESP number {body:?}")))
        };
        Ok(match line[0] {
            b'+' => Resp::Simple(body.clone()),
            b'-' => Resp::Error(body.clone()),
            b':' => Resp::Int(num()?),
            b'$' => {
                let n = num()?;
                if n < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    self.stream.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Resp::Bulk(Some(buf))
                }
            }
            b'*' => {
                let n = num()?;
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    items.push(self.read().await?);
                }
                Resp::Array(items)
            }
            other => return Err(std::io::Error::other(format!("bad RESP type {other}"))),
        })
    }

    /// Sends a command and reads its reply.
    pub async fn cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Resp> {
        self.send(args).await?;
        self.read().await
    }
}

// ---------------------------------------------------------------------------------------------
// Redis

/// A private `redis-server` on 127.0.0.1, with no persistence.
pub struct RedisProc {
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

impl RedisProc {
    /// Starts Redis on a free port (retrying on another port if that one was taken meanwhile).
    pub async fn start_new(dir: &Path) -> RedisProc {
        let mut last = String::new();
        for _ in 0..5 {
            let mut r = RedisProc {
                port: free_port(),
                child: None,
                log: dir.join("redis.log"),
            };
            match r.try_start().await {
                Ok(()) => return r,
                Err(e) => last = e,
            }
        }
        panic!("redis-server would not start: {last}");
    }

    async fn try_start(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("redis log file");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--save", "", "--appendonly", "no"])
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run redis-server (is it installed?): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                self.child = None;
                return Err(format!(
                    "redis-server exited ({status}):\n{}",
                    tail(&self.log, 10)
                ));
            }
            if self.ping().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err("redis-server did not answer PING within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn ping(&self) -> bool {
        let probe = async {
            let mut c = RespConn::connect(self.port).await.ok()?;
            c.cmd(&[b"PING"]).await.ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_millis(500), probe).await,
            Ok(Some(Resp::Simple(s))) if s == "PONG"
        )
    }

    /// Starts Redis again on the same port, empty.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.try_start().await {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("redis restart failed: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Kills Redis (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A new raw connection.
    pub async fn conn(&self) -> RespConn {
        RespConn::connect(self.port)
            .await
            .expect("connect to redis")
    }

    /// PUBLISH; returns the number of receivers.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> i64 {
        match self
            .conn()
            .await
            .cmd(&[b"PUBLISH", channel.as_bytes(), payload])
            .await
        {
            Ok(Resp::Int(n)) => n,
            other => panic!("PUBLISH answered {other:?}"),
        }
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.stop();
    }
}
