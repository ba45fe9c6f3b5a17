//! A real HTTP/1.1 webhook receiver on 127.0.0.1:0 for the webhook tests: it records each
//! request (raw header names, exact body) and answers as the test scripts it (a status, after an
//! optional sleep). Raw on purpose, so header casing is checked as sent on the wire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One received request.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Header (name as sent, value).
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Hook {
    /// The value of a header whose name is exactly `name` (case-sensitive).
    pub fn header_exact(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }

    /// The `events` array.
    pub fn events(&self) -> Vec<Value> {
        self.json()["events"].as_array().expect("events").clone()
    }
}

/// How to answer request number `n` (0-based): (status, sleep before answering).
pub type Script = Arc<dyn Fn(usize) -> (u16, Duration) + Send + Sync>;

pub struct Receiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Hook>,
    /// Requests received so far.
    pub count: Arc<AtomicUsize>,
}

impl Receiver {
    /// A receiver answering 200 at once.
    pub async fn ok() -> Receiver {
        Self::scripted(Arc::new(|_| (200, Duration::ZERO))).await
    }

    pub async fn scripted(script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let n = count.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, tx.clone(), script.clone(), n.clone()));
            }
        });
        Receiver {
            url: format!("http://{addr}/pusher/webhook"),
            rx,
            count,
        }
    }

    /// The next request, within `d`.
    pub async fn next_within(&mut self, d: Duration) -> Option<Hook> {
        tokio::time::timeout(d, self.rx.recv()).await.ok().flatten()
    }

    pub async fn next(&mut self) -> Hook {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("a webhook arrives within 5 s")
    }
}

async fn serve(
    mut s: TcpStream,
    tx: mpsc::UnboundedSender<Hook>,
    script: Script,
    count: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    loop {
        let (head_len, headers, len) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                break (n, headers, len);
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        while buf.len() < head_len + len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_len..head_len + len]).into_owned();
        buf.drain(..head_len + len);
        let n = count.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(Hook {
            headers,
            body,
            at: Instant::now(),
        });
        let (status, sleep) = script(n);
        tokio::time::sleep(sleep).await;
        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
