//! The HTTP side of the test helpers: raw HTTP/1.1 over TCP (with keep-alive) and a Pusher
//! SDK-style signed API client.

use super::*;

// ---------------------------------------------------------------------------------------------
// HTTP

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as JSON (`Value::String` of the text when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 connection that can carry several requests (keep-alive).
pub struct HttpConn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl HttpConn {
    pub async fn open(addr: SocketAddr) -> HttpConn {
        let s = TcpStream::connect(addr).await.expect("tcp connect");
        HttpConn {
            stream: BufReader::new(s),
            host: addr.to_string(),
        }
    }

    /// As [`HttpConn::open`], from the local address `from` (any 127.x.y.z works on Linux), so
    /// per-IP budgets of 127.0.0.1 do not apply to it.
    pub async fn open_from(addr: SocketAddr, from: std::net::IpAddr) -> HttpConn {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::new(from, 0))
            .expect("bind local address");
        let s = sock.connect(addr).await.expect("tcp connect");
        HttpConn {
            stream: BufReader::new(s),
            host: addr.to_string(),
        }
    }

    /// The underlying socket.
    pub fn into_inner(self) -> TcpStream {
        self.stream.into_inner()
    }

    /// Sends one request and reads the response (5 s timeout).
    pub async fn request(&mut self, method: &str, target: &str, body: &[u8]) -> HttpResponse {
        self.request_with(method, target, &[], body).await
    }

    /// As [`HttpConn::request`], with extra headers (a `Content-Type` among them replaces the
    /// default `application/json`).
    pub async fn request_with(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        let typed = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            if !typed {
                head.push_str("Content-Type: application/json\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        tokio::time::timeout(Duration::from_secs(5), async {
            self.stream
                .get_mut()
                .write_all(&bytes)
                .await
                .expect("write request");
            self.read_response().await
        })
        .await
        .unwrap_or_else(|_| panic!("no HTTP response to {method} {target} within 5 s"))
    }

    async fn read_response(&mut self) -> HttpResponse {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.stream.read_line(&mut h).await.expect("header line");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = get("content-length") {
            let len: usize = len.parse().expect("content-length");
            body.resize(len, 0);
            self.stream.read_exact(&mut body).await.expect("body");
        } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).await.expect("chunk size");
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16)
                    .expect("chunk size hex");
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.expect("chunk");
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        HttpResponse {
            status,
            headers,
            body,
        }
    }
}

/// One request on a fresh connection.
pub async fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> HttpResponse {
    HttpConn::open(addr)
        .await
        .request(method, target, body)
        .await
}

/// A Pusher-SDK-style signed HTTP API client.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub prefix: String,
    pub key: String,
    pub secret: String,
    pub app_id: String,
}

impl Api {
    pub fn new(addr: SocketAddr, prefix: &str, key: &str, secret: &str) -> Api {
        Api {
            addr,
            prefix: prefix.to_string(),
            key: key.into(),
            secret: secret.into(),
            app_id: APP_ID.into(),
        }
    }

    /// The auth params plus `extra`, with `auth_signature` over `METHOD\npath\nquery` (path
    /// without the server prefix), like the SDKs do.
    pub fn signed_params(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = vec![
            ("auth_key".into(), self.key.clone()),
            ("auth_timestamp".into(), now_secs().to_string()),
            ("auth_version".into(), "1.0".into()),
        ];
        if !body.is_empty() {
            params.push(("body_md5".into(), md5_hex(body)));
        }
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let sig = rest_signature(&self.secret, method, path, &params);
        params.push(("auth_signature".into(), sig));
        params
    }

    /// Builds `{prefix}{path}?query`; values are sent raw (like the Node SDK) unless `encode`.
    pub fn target(&self, path: &str, params: &[(String, String)], encode: bool) -> String {
        let q = params
            .iter()
            .map(|(k, v)| {
                if encode {
                    format!("{k}={}", percent_encode(v))
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        format!("{}{path}?{q}", self.prefix)
    }

    /// A signed request on a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let params = self.signed_params(method, path, extra, body);
        http(self.addr, method, &self.target(path, &params, false), body).await
    }

    /// Signed GET; returns (status, JSON body).
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let r = self.request("GET", path, query, b"").await;
        (r.status, r.json())
    }

    /// Signed POST of a JSON body; returns (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .request("POST", path, &[], body.to_string().as_bytes())
            .await;
        (r.status, r.json())
    }

    /// `/apps/{id}{rest}`
    pub fn app_path(&self, rest: &str) -> String {
        format!("/apps/{}{rest}", self.app_id)
    }

    /// POST /apps/{id}/events with `body`.
    pub async fn events(&self, body: &Value) -> (u16, Value) {
        self.post(&self.app_path("/events"), body).await
    }

    /// Triggers `name` with `data` on `channels`; asserts 200 `{}`.
    pub async fn trigger(&self, channels: &[&str], name: &str, data: &str) {
        let (s, b) = self
            .events(&json!({"name": name, "channels": channels, "data": data}))
            .await;
        assert_eq!((s, &b), (200, &json!({})), "trigger {name} on {channels:?}");
    }

    /// POST /apps/{id}/batch_events with `{"batch": items}`.
    pub async fn batch(&self, items: Value) -> (u16, Value) {
        self.post(&self.app_path("/batch_events"), &json!({ "batch": items }))
            .await
    }

    /// GET /apps/{id}/connections → the count.
    pub async fn connections(&self) -> u64 {
        let (s, b) = self.get(&self.app_path("/connections"), &[]).await;
        assert_eq!(s, 200, "{b}");
        b["connections"]
            .as_u64()
            .unwrap_or_else(|| panic!("connections count: {b}"))
    }
}
