//! RFC 6455 edge cases from raw sockets that pin down the server's exact inbound framing
//! behaviour (split and coalesced writes, fragmentation with interleaved control frames, binary
//! frames, client close frames, length and size limits, bytes right behind the handshake), so a
//! rewrite of the frame reader can be checked byte for byte against it. Framing violations
//! proper (reserved bits, opcodes, masking...) are in `hostile_framing.rs`.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const PING: &[u8] = br#"{"event":"pusher:ping","data":{}}"#;
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A raw WebSocket past `connection_established`.
async fn established(srv: &TestServer) -> TcpStream {
    let mut s = raw_ws(srv.addr).await;
    expect_event(&mut s, "pusher:connection_established").await;
    s
}

/// A close frame payload: the code then the reason.
fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(reason);
    out
}

/// Sends `bytes` on a fresh raw WebSocket and returns the payload of the close frame the
/// server answers with before closing the TCP connection.
async fn close_reply(srv: &TestServer, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = established(srv).await;
    s.write_all(bytes).await.expect("write frames");
    close_payload_until_eof(&mut s, CLOSE_WAIT).await
}

fn subscribe(channel: &str) -> String {
    format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_byte_by_byte_is_reassembled() {
    let srv = start_default().await;
    let mut s = established(&srv).await;
    s.set_nodelay(true).unwrap();
    for b in frame(0x81, PING, true) {
        s.write_all(&[b]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    expect_event(&mut s, "pusher:pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_frames_in_one_write_are_each_answered_in_order() {
    let srv = start_default().await;
    let mut s = established(&srv).await;
    // 20 pings, then a subscribe: its answer must come after the 20 pongs.
    let mut bytes: Vec<u8> = (0..20).flat_map(|_| frame(0x81, PING, true)).collect();
    bytes.extend(frame(0x81, subscribe("after-pings").as_bytes(), true));
    s.write_all(&bytes).await.unwrap();
    for _ in 0..20 {
        expect_event(&mut s, "pusher:pong").await;
    }
    let v = expect_event(&mut s, "pusher_internal:subscription_succeeded").await;
    assert_eq!(v["channel"], "after-pings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_between_fragments_is_answered_before_the_message() {
    let srv = start_default().await;
    let mut s = established(&srv).await;
    let msg = subscribe("fragmented");
    let (a, rest) = msg.as_bytes().split_at(10);
    let (b, c) = rest.split_at(20);
    let mut bytes = frame(0x01, a, true);
    bytes.extend(frame(0x89, b"abc", true));
    bytes.extend(frame(0x00, b, true));
    bytes.extend(frame(0x80, c, true));
    s.write_all(&bytes).await.unwrap();
    assert_eq!(read_frame(&mut s).await, (0x8a, b"abc".to_vec()));
    let v = expect_event(&mut s, "pusher_internal:subscription_succeeded").await;
    assert_eq!(v["channel"], "fragmented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_read_as_text_when_utf8() {
    let srv = start_default().await;
    let mut s = established(&srv).await;
    // Valid UTF-8 in a binary frame is handled like a text frame; the answer is text.
    s.write_all(&frame(0x82, PING, true)).await.unwrap();
    expect_event(&mut s, "pusher:pong").await;
    // Invalid UTF-8 in a binary frame is not a WebSocket violation: a pusher:error, and the
    // connection stays open.
    s.write_all(&frame(0x82, b"{\"event\":\"\xff\xfe\"}", true))
        .await
        .unwrap();
    let v = expect_event(&mut s, "pusher:error").await;
    assert_eq!(v["data"]["code"], 4200, "{v}");
    assert_eq!(v["data"]["message"], "Invalid message format", "{v}");
    s.write_all(&frame(0x81, PING, true)).await.unwrap();
    expect_event(&mut s, "pusher:pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_frames_get_exact_replies() {
    let srv = start_default().await;
    let mut canary = Canary::join(&srv).await;
    // A well-formed close is echoed, reason included. A code not allowed on the wire is
    // answered 1002 "Protocol violation" (the library's reply to a close), a malformed close
    // payload 1002 "Protocol error" / 1007 (Herald's replies to a read error).
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "1000 with a reason",
            close_body(1000, b"bye"),
            close_body(1000, b"bye"),
        ),
        ("empty payload", vec![], vec![]),
        (
            "one-byte payload",
            vec![0x03],
            close_body(1002, b"Protocol error"),
        ),
        (
            "1005 on the wire",
            close_body(1005, b""),
            close_body(1002, b"Protocol violation"),
        ),
        (
            "999",
            close_body(999, b""),
            close_body(1002, b"Protocol violation"),
        ),
        (
            "5000",
            close_body(5000, b"x"),
            close_body(1002, b"Protocol violation"),
        ),
        (
            "4000 with an invalid UTF-8 reason",
            close_body(4000, b"\xff\xfe"),
            close_body(1007, b"Invalid UTF-8 in text message"),
        ),
        (
            "3000",
            close_body(3000, b"app code"),
            close_body(3000, b"app code"),
        ),
    ];
    for (what, payload, want) in cases {
        let got = close_reply(&srv, &frame(0x88, &payload, true)).await;
        assert_eq!(got, Some(want), "{what}");
        canary.check(&srv).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_and_fragmentation_violations_get_close_codes() {
    let srv = start_default().await;
    let mut canary = Canary::join(&srv).await;
    // A 64-bit length with its most significant bit set (no payload follows): answered as too
    // big (1009), not as the RFC's malformed length (1002).
    let mut huge = vec![0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
    huge.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    // Two fragments of 6,000 bytes each: each under max_message_size (10,000), not together.
    let mut too_big = frame(0x01, &[b' '; 6_000], true);
    too_big.extend(frame(0x80, &[b' '; 6_000], true));
    // A new text frame while a fragmented message is in progress.
    let mut interrupted = frame(0x01, b"{\"event\":", true);
    interrupted.extend(frame(0x81, PING, true));
    let cases: Vec<(&str, Vec<u8>, u16, &[u8])> = vec![
        // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0. Herald's frame
        // reader refuses it as a protocol error (tungstenite, before it, only compared the
        // length with the size limit and answered 1009).
        (
            "64-bit length with the MSB set",
            huge,
            1002,
            b"Protocol error",
        ),
        (
            "fragments over max_message_size together",
            too_big,
            1009,
            b"Maximum message size exceeded",
        ),
        (
            "text frame inside a fragmented message",
            interrupted,
            1002,
            b"Protocol error",
        ),
    ];
    for (what, bytes, code, reason) in cases {
        let got = close_reply(&srv, &bytes).await;
        assert_eq!(got, Some(close_body(code, reason)), "{what}");
        canary.check(&srv).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_split_inside_the_header_are_reassembled() {
    let srv = start_default().await;
    let mut s = established(&srv).await;
    s.set_nodelay(true).unwrap();
    // Split after the first byte.
    let bytes = frame(0x81, PING, true);
    s.write_all(&bytes[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(&bytes[1..]).await.unwrap();
    expect_event(&mut s, "pusher:pong").await;
    // A 300-byte payload (16-bit extended length), split inside the length.
    let mut msg = subscribe("split-header").into_bytes();
    msg.resize(300, b' ');
    let bytes = frame(0x81, &msg, true);
    assert_eq!(&bytes[..2], &[0x81, 0xfe]);
    s.write_all(&bytes[..3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(&bytes[3..]).await.unwrap();
    let v = expect_event(&mut s, "pusher_internal:subscription_succeeded").await;
    assert_eq!(v["channel"], "split-header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_with_125_bytes_gets_them_back() {
    let srv = start_default().await;
    let mut s = established(&srv).await;
    let payload: Vec<u8> = (0..125u8).collect();
    s.write_all(&frame(0x89, &payload, true)).await.unwrap();
    assert_eq!(read_frame(&mut s).await, (0x8a, payload));
    // Still usable.
    s.write_all(&frame(0x81, PING, true)).await.unwrap();
    expect_event(&mut s, "pusher:pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_in_the_handshake_write_is_not_lost() {
    let srv = start_default().await;
    let mut s = raw_ws_with(srv.addr, &frame(0x81, PING, true)).await;
    expect_event(&mut s, "pusher:connection_established").await;
    expect_event(&mut s, "pusher:pong").await;
}
