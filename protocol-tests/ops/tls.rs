//! `[server.tls]`: WebSocket and HTTPS API over TLS with a CA and certificates generated at test
//! time, the pre-upgrade budgets during the TLS handshake, and the certificate re-read on SIGHUP
//! while established connections stay open.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::common::{closed_within, parse_established, Api, APP_ID, KEY, PJS_QUERY, SECRET};
use crate::proc::{config, temp_dir, Herald};

/// A test CA that signs leaf certificates for `localhost` and 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Herald test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a new leaf certificate and its key to `cert`/`key`; returns the certificate DER.
    fn issue(&self, name: &str, cert: &Path, key: &Path) -> Vec<u8> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let kp = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&kp, &self.issuer).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, kp.serialize_pem()).unwrap();
        leaf.der().to_vec()
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// A TLS connection to `addr` as `localhost`, and the certificate the server presented.
async fn tls(ca: &Ca, addr: SocketAddr) -> (TlsStream<TcpStream>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(Duration::from_secs(5), ca.connector().connect(name, tcp))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
    let peer: &CertificateDer = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let der = peer.to_vec();
    (stream, der)
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

async fn wss(ca: &Ca, addr: SocketAddr) -> Wss {
    let (stream, _) = tls(ca, addr).await;
    let req = format!("wss://localhost:{}/app/{KEY}?{PJS_QUERY}", addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    let hello = next_json(&mut ws).await;
    parse_established(&hello);
    ws
}

async fn next_json(ws: &mut Wss) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("read");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut Wss, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn ping_pong(ws: &mut Wss) {
    send(ws, json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(next_json(ws).await["event"], "pusher:pong");
}

/// One HTTPS request (`Connection: close`); returns the status and body.
async fn https(ca: &Ca, addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let (mut s, _) = tls(ca, addr).await;
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn websocket_and_api_over_tls_and_certificate_reload_on_sighup() {
    let dir = temp_dir("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ca = Ca::new();
    let first = ca.issue("herald one", &cert, &key);
    let tls_table = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let budgets = "first_byte_timeout = 0.5\nheader_timeout = 1.0";
    let h = Herald::start(&dir, &config(&[(APP_ID, KEY, SECRET)], budgets, &tls_table)).await;
    assert!(h.stderr().contains("with TLS"), "{}", h.stderr());

    // WebSocket over TLS, fed by a trigger over HTTPS.
    let mut ws = wss(&ca, h.addr).await;
    send(
        &mut ws,
        json!({"event":"pusher:subscribe","data":{"channel":"tls-room"}}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let api = Api::new(h.addr, "", KEY, SECRET);
    let body = json!({"name":"secure","channels":["tls-room"],"data":"{\"ok\":1}"}).to_string();
    let path = api.app_path("/events");
    let params = api.signed_params("POST", &path, &[], body.as_bytes());
    let (status, resp) = https(
        &ca,
        h.addr,
        "POST",
        &api.target(&path, &params, false),
        &body,
    )
    .await;
    assert_eq!((status, resp.as_str()), (200, "{}"));
    let ev = next_json(&mut ws).await;
    assert_eq!(
        (ev["event"].as_str(), ev["data"].as_str()),
        (Some("secure"), Some("{\"ok\":1}"))
    );
    assert_eq!(https(&ca, h.addr, "GET", "/up", "").await.0, 200);

    // Plain HTTP on the TLS port gets no answer; a silent or stalled client is dropped within
    // the pre-upgrade budgets.
    let mut plain = TcpStream::connect(h.addr).await.unwrap();
    plain
        .write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), plain.read(&mut buf)).await;
    assert!(
        !matches!(n, Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 200")),
        "plain HTTP must not be served on a TLS listener"
    );
    let mut silent = TcpStream::connect(h.addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_millis(1500)).await,
        "silent client kept"
    );
    let mut stalled = TcpStream::connect(h.addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    assert!(
        closed_within(&mut stalled, Duration::from_millis(2500)).await,
        "stalled ClientHello kept"
    );

    // New certificate files + SIGHUP: new connections get the new certificate, the old
    // WebSocket stays open.
    let second = ca.issue("herald two", &cert, &key);
    assert_ne!(first, second);
    assert_eq!(tls(&ca, h.addr).await.1, first, "not re-read before SIGHUP");
    h.signal(Signal::SIGHUP);
    let log = h.wait_log("reload done", 1).await;
    assert!(log.contains("TLS certificate re-read"), "{log}");
    assert_eq!(
        tls(&ca, h.addr).await.1,
        second,
        "new certificate after SIGHUP"
    );
    ping_pong(&mut ws).await;

    // A broken certificate file is refused by key name; the current certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    h.signal(Signal::SIGHUP);
    let log = h.wait_log("reload refused", 1).await;
    assert!(log.contains("server.tls.cert"), "{log}");
    assert_eq!(tls(&ca, h.addr).await.1, second);
    ping_pong(&mut ws).await;
}
