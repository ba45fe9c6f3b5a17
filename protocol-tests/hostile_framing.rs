//! WebSocket framing violations from raw sockets: each must be answered with the RFC 6455 close
//! code (1002 protocol error, 1007 invalid UTF-8, 1009 too big) in a close frame before the TCP
//! connection closes, and a canary client must keep receiving its events.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;

/// Sends `bytes` on a fresh raw WebSocket and returns the close code the server answers with.
async fn close_code_for(srv: &TestServer, bytes: &[u8]) -> Option<u16> {
    let mut s = raw_ws(srv.addr).await;
    s.write_all(bytes).await.expect("write frame");
    close_code_until_eof(&mut s, Duration::from_secs(5)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_violations_get_rfc_close_codes() {
    let srv = start_default().await;
    let mut canary = Canary::join(&srv).await;
    let ping = br#"{"event":"pusher:ping","data":{}}"#;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked text frame", frame(0x81, ping, false), 1002),
        (
            "invalid UTF-8 in text",
            frame(0x81, b"{\"event\":\"\xff\xfe\"}", true),
            1007,
        ),
        ("RSV1 set", frame(0xc1, ping, true), 1002),
        ("RSV3 set", frame(0x91, ping, true), 1002),
        ("reserved data opcode 0x3", frame(0x83, ping, true), 1002),
        ("reserved control opcode 0xb", frame(0x8b, b"", true), 1002),
        (
            "control frame over 125 bytes",
            frame(0x89, &[b'x'; 126], true),
            1002,
        ),
        ("fragmented control frame", frame(0x09, b"x", true), 1002),
        (
            "continuation without a start",
            frame(0x80, ping, true),
            1002,
        ),
        (
            "message over max_message_size",
            frame(0x81, &[b' '; 10_001], true),
            1009,
        ),
    ];
    for (what, bytes, want) in cases {
        let got = close_code_for(&srv, &bytes).await;
        assert_eq!(got, Some(want), "{what}");
        canary.check(&srv).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_split_over_fragments_is_1007() {
    let srv = start_default().await;
    let mut canary = Canary::join(&srv).await;
    // "é" is C3 A9: the first fragment ends mid-character, the second starts with a bad byte.
    let mut bytes = frame(0x01, b"{\"event\":\"\xc3", true);
    bytes.extend(frame(0x80, b"\x28\"}", true));
    assert_eq!(close_code_for(&srv, &bytes).await, Some(1007));
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_frames_still_work_on_a_raw_socket() {
    let srv = start_default().await;
    let mut s = raw_ws(srv.addr).await;
    let ping = br#"{"event":"pusher:ping","data":{}}"#;
    s.write_all(&frame(0x81, ping, true)).await.unwrap();
    // A clean close from the client is answered with the same code.
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    s.write_all(&frame(0x88, &close, true)).await.unwrap();
    assert_eq!(
        close_code_until_eof(&mut s, Duration::from_secs(5)).await,
        Some(1000)
    );
}
