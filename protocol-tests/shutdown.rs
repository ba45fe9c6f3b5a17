//! Graceful shutdown: connected clients get pusher:error 4200 and close 4200, `run()` returns
//! Ok promptly and the port stops accepting connections.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn expect_shutdown_frames(c: &mut Client) {
    let err = c
        .recv_within(Duration::from_secs(5))
        .await
        .expect("shutdown error frame");
    assert_eq!(
        err,
        json!({"event":"pusher:error","data":{"code":4200,"message":"Server is shutting down"}})
    );
    let (code, _) = c.expect_close_within(Duration::from_secs(5)).await;
    assert_eq!(code, 4200);
}

async fn join_ok(srv: &mut TestServer) {
    let handle = srv.handle.take().unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("run() returns within 5 s of the shutdown signal")
        .expect("server task did not panic");
    assert_eq!(res, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_4200_and_run_returns_ok() {
    let mut srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let mut c = srv.client().await;
    a.subscribe("news").await;
    b.subscribe_private("private-x").await;
    c.subscribe_presence("presence-y", r#"{"user_id":"1"}"#)
        .await;
    srv.shutdown();
    expect_shutdown_frames(&mut a).await;
    expect_shutdown_frames(&mut b).await;
    expect_shutdown_frames(&mut c).await;
    join_ok(&mut srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_shuts_down_promptly() {
    let mut srv = start_default().await;
    let started = tokio::time::Instant::now();
    srv.shutdown();
    join_ok(&mut srv).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_stops_accepting_after_shutdown() {
    let mut srv = start_default().await;
    let mut a = srv.client().await;
    let addr = srv.addr;
    srv.shutdown();
    expect_shutdown_frames(&mut a).await;
    join_ok(&mut srv).await;
    let refused = eventually(Duration::from_secs(2), || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        refused,
        "{addr} still accepts TCP connections after run() returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_unresponsive_client_still_finishes() {
    let mut cfg = config();
    cfg.server.shutdown_timeout = 2;
    let mut srv = start(cfg).await;
    // This client never reads anything, so it never acknowledges the close.
    let _silent = srv.client().await;
    let mut reader = srv.client().await;
    let started = tokio::time::Instant::now();
    srv.shutdown();
    expect_shutdown_frames(&mut reader).await;
    join_ok(&mut srv).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_works_until_shutdown() {
    let mut srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("last").await;
    srv.api().trigger(&["last"], "final", "bye").await;
    assert_eq!(c.recv().await["event"], "final");
    srv.shutdown();
    expect_shutdown_frames(&mut c).await;
    join_ok(&mut srv).await;
}
