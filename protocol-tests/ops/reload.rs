//! Reload on SIGHUP and `herald reload`: a real process, real sockets, real signals.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::{Api, Client, PJS_QUERY};
use crate::proc::{config, temp_dir, Herald};

async fn connect(h: &Herald, key: &str) -> Client {
    Client::connect_path(h.addr, &format!("/app/{key}?{PJS_QUERY}"), None).await
}

fn api(h: &Herald, id: &str, key: &str, secret: &str) -> Api {
    let mut a = Api::new(h.addr, "", key, secret);
    a.app_id = id.into();
    a
}

#[tokio::test]
async fn sighup_adds_removes_and_rotates_apps_and_keeps_unchanged_sockets() {
    let dir = temp_dir("reload");
    let a = ("app-a", "key-a", "secret-a");
    let c = ("app-c", "key-c", "secret-c");
    let h = Herald::start(&dir, &config(&[a, c], "", "")).await;
    let mut sock_a = connect(&h, "key-a").await;
    sock_a.subscribe("room").await;
    let mut sock_c = connect(&h, "key-c").await;
    sock_c.subscribe("room").await;

    // A's secret rotated, C removed, B added, and a restart-only key changed.
    let a2 = ("app-a", "key-a", "secret-a2");
    let b = ("app-b", "key-b", "secret-b");
    h.write_config(&config(&[a2, b], "max_request_size = 20000", ""));
    h.signal(Signal::SIGHUP);
    let log = h.wait_log("reload done", 1).await;
    assert!(
        log.contains("added [app-b], removed [app-c]") && log.contains("updated [app-a]"),
        "{log}"
    );
    assert!(
        log.contains("`server.max_request_size` changed but needs a restart"),
        "{log}"
    );

    // C's socket: pusher:error 4001 then close 4001.
    sock_c.expect_error_and_close(4001, None).await;
    // A's socket is still open, still subscribed, and the new secret signs its API.
    sock_a.sync().await;
    api(&h, a2.0, a2.1, a2.2)
        .trigger(&["room"], "after", "{}")
        .await;
    let ev = sock_a.recv_event("after").await;
    assert_eq!(ev["channel"], "room");
    let (status, _) = api(&h, a.0, a.1, a.2)
        .events(&json!({"name":"x","channels":["room"],"data":"{}"}))
        .await;
    assert_eq!(status, 401, "the old secret no longer signs");
    // B is served: WebSocket and API; C is gone from both.
    let mut sock_b = connect(&h, "key-b").await;
    sock_b.subscribe("b-room").await;
    api(&h, b.0, b.1, b.2)
        .trigger(&["b-room"], "hello", "{}")
        .await;
    sock_b.recv_event("hello").await;
    let mut gone = Client::raw(
        crate::common::ws_open(h.addr, &format!("/app/key-c?{PJS_QUERY}"), None)
            .await
            .unwrap(),
    );
    gone.expect_error_and_close(4001, None).await;
    let (status, _) = api(&h, c.0, c.1, c.2)
        .events(&json!({"name":"x","channels":["room"],"data":"{}"}))
        .await;
    assert_eq!(status, 404, "a removed app's API is gone");

    // An invalid config, sent by `herald reload` through the pid file: refused by key name,
    // the running config stays.
    let bad = config(&[a2, b], "", "").replace(
        "secret = \"secret-b\"",
        "secret = \"secret-b\"\nactivity_timeout = 0",
    );
    h.write_config(&bad);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("reload")
        .arg("--pid-file")
        .arg(&h.pid_file)
        .output()
        .expect("run herald reload");
    assert!(out.status.success(), "{out:?}");
    let log = h.wait_log("reload refused", 1).await;
    assert!(log.contains("apps[1].activity_timeout"), "{log}");
    sock_a.sync().await;
    sock_b.sync().await;
    connect(&h, "key-b").await.sync().await;

    // `herald reload` with the pid file taken from the config.
    let pid_line = format!("pid_file = \"{}\"", h.pid_file.display());
    let with_pid = config(&[a2, b], &pid_line, "");
    h.write_config(&with_pid);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["reload", "--config"])
        .arg(&h.config)
        .output()
        .expect("run herald reload");
    assert!(out.status.success(), "{out:?}");
    h.wait_log("reload done", 2).await;
    tokio::time::timeout(Duration::from_secs(2), sock_a.sync())
        .await
        .expect("A still answers");
}

#[tokio::test]
async fn pid_file_is_removed_at_exit_and_reload_without_server_fails_clearly() {
    let dir = temp_dir("pidfile");
    let mut h = Herald::start(&dir, &config(&[("i", "k", "s")], "", "")).await;
    let pid: u32 = std::fs::read_to_string(&h.pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, h.pid());
    assert!(h.stop(), "clean exit on SIGTERM");
    assert!(!h.pid_file.exists(), "pid file removed at exit");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("reload")
        .arg("--pid-file")
        .arg(&h.pid_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is herald running?"), "{err}");
}
