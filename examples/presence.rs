//! Presence demo: three users join `presence-demo` (one of them in two "tabs"), then leave,
//! printing what each member sees: the member list, member_added and member_removed, once
//! per user however many sockets the user has.
//!
//! `cargo run --example presence` against `herald start`.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

const CHANNEL: &str = "presence-demo";

async fn join(target: &common::Target, user: &str) -> common::Client {
    let (mut ws, socket_id) = target.connect().await;
    let member = format!(r#"{{"user_id":"{user}","user_info":{{"name":"{user}"}}}}"#);
    let auth = target.channel_auth(&socket_id, CHANNEL, Some(&member));
    let frame = serde_json::json!({"event":"pusher:subscribe","data":{"channel":CHANNEL,"auth":auth,"channel_data":member}});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let ok = common::next_json(&mut ws).await.unwrap();
    println!(
        "{user} joined; members now: {}",
        ok["data"].as_str().unwrap_or("")
    );
    ws
}

/// Prints what `who` received within a short window.
async fn drain(who: &str, ws: &mut common::Client) {
    while let Ok(Some(frame)) =
        tokio::time::timeout(Duration::from_millis(200), common::next_json(ws)).await
    {
        println!(
            "  {who} sees {} {}",
            frame["event"],
            frame["data"].as_str().unwrap_or("")
        );
    }
}

#[tokio::main]
async fn main() {
    let target = common::Target::from_env();
    let mut alice = join(&target, "alice").await;
    let mut bob_tab1 = join(&target, "bob").await;
    drain("alice", &mut alice).await;
    let bob_tab2 = join(&target, "bob").await;
    println!("bob opened a second tab (no second member_added):");
    drain("alice", &mut alice).await;
    let carol = join(&target, "carol").await;
    drain("alice", &mut alice).await;
    drain("bob", &mut bob_tab1).await;
    println!("bob closes one tab (still present), then carol leaves:");
    drop(bob_tab2);
    drop(carol);
    drain("alice", &mut alice).await;
    let (status, users) = target
        .api(
            "GET",
            &format!("/apps/{}/channels/{CHANNEL}/users", target.app_id),
            "",
        )
        .await;
    println!("GET /users -> {status} {users}");
}
