//! Property tests for the WebSocket handshake, the first thing an unauthenticated client
//! reaches: `validate` never panics on any head and accepts every valid upgrade whatever the
//! header order, case, extra headers and tokens; `read_head` returns the head whole however the
//! client splits it, keeps what followed it, and refuses a head over the limit.

use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::{read_head, validate, HandshakeError};
use crate::proptests::config;

/// Flips the case of some letters.
fn recase(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn valid_head() -> impl Strategy<Value = (String, String, Option<String>)> {
    (
        "/app/[a-zA-Z0-9_-]{1,20}(\\?[a-z=&0-9]{0,30})?",
        "[A-Za-z0-9+/]{22}==",
        proptest::option::of("https?://[a-z0-9.-]{1,30}(:[0-9]{1,5})?"),
        prop::collection::vec(("X-[A-Za-z-]{1,12}", "[!-~][ -~]{0,30}"), 0..8),
        any::<u64>(),
        prop::sample::select(vec!["Upgrade", "keep-alive, Upgrade", "Upgrade,close"]),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(path, key, origin, extra, mask, connection, shuffle)| {
            let mut headers = vec![
                ("Host".to_owned(), "127.0.0.1".to_owned()),
                (recase("upgrade", mask), recase("websocket", mask >> 7)),
                (
                    recase("connection", mask >> 14),
                    recase(connection, mask >> 21),
                ),
                (recase("sec-websocket-version", mask >> 28), "13".to_owned()),
                (recase("sec-websocket-key", mask >> 35), format!(" {key} ")),
            ];
            if let Some(o) = &origin {
                headers.push(("Origin".to_owned(), o.clone()));
            }
            headers.extend(extra);
            let n = headers.len();
            headers.rotate_left(shuffle.index(n));
            let mut head = format!("GET {path} HTTP/1.1\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            (head, key, origin)
        })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Writes `bytes` in `chunks` pieces to a fresh loopback connection and reads a head from it.
fn read_over_tcp(
    bytes: Vec<u8>,
    cuts: Vec<prop::sample::Index>,
    max_head: usize,
) -> Result<(Vec<u8>, Vec<u8>), HandshakeError> {
    block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.set_nodelay(true).unwrap();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.push(bytes.len());
            points.sort_unstable();
            let mut at = 0;
            for p in points {
                let _ = client.write_all(&bytes[at..p]).await;
                let _ = client.flush().await;
                at = p;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Keep the connection open until the reader is done.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let result = read_head(
            &mut server,
            max_head,
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        writer.abort();
        result
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_never_panics(head in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| b),
        valid_head().prop_map(|(h, _, _)| h.into_bytes()),
        (valid_head(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|((h, _, _), at, b)| {
            let mut h = h.into_bytes();
            let i = at.index(h.len());
            h[i] = b;
            h
        }),
    ]) {
        let _ = validate(&head);
    }

    #[test]
    fn valid_upgrades_are_accepted((head, key, origin) in valid_head()) {
        let (got_origin, accept) = validate(head.as_bytes()).unwrap();
        prop_assert_eq!(got_origin, origin);
        prop_assert_eq!(accept, derive_accept_key(key.as_bytes()));
    }

    #[test]
    fn read_head_returns_the_head_however_it_is_split(
        (head, _, _) in valid_head(),
        after in prop::collection::vec(any::<u8>(), 0..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut bytes = head.clone().into_bytes();
        bytes.extend_from_slice(&after);
        let (got, leftover) = read_over_tcp(bytes, cuts, 16384).unwrap();
        prop_assert_eq!(got, head.into_bytes());
        prop_assert!(after.starts_with(&leftover));
    }

    #[test]
    fn read_head_refuses_a_head_over_the_limit(
        (head, _, _) in valid_head(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        less in 1usize..64,
    ) {
        let max = head.len().saturating_sub(less).max(1);
        let result = read_over_tcp(head.into_bytes(), cuts, max);
        prop_assert!(matches!(result, Err(HandshakeError::TooLarge)), "{:?}", result);
    }
}
