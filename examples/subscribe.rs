//! Connects like pusher-js, subscribes to the channels given, and prints every frame.
//! Private and presence channels are signed locally with the app secret, as the app's
//! `/broadcasting/auth` endpoint would sign them.
//!
//! `cargo run --example subscribe -- my-channel private-orders presence-room`
//! then, in another terminal, `cargo run --example trigger -- my-channel my-event hi`.

#[path = "common/mod.rs"]
mod common;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let channels: Vec<String> = std::env::args().skip(1).collect();
    let channels = if channels.is_empty() {
        vec!["my-channel".to_owned()]
    } else {
        channels
    };
    let target = common::Target::from_env();
    let (mut ws, socket_id) = target.connect().await;
    println!("connected as socket {socket_id}");
    for channel in &channels {
        let mut data = serde_json::json!({ "channel": channel });
        if channel.starts_with("presence-") {
            let member = format!(r#"{{"user_id":"{socket_id}","user_info":{{"name":"example"}}}}"#);
            data["auth"] = target
                .channel_auth(&socket_id, channel, Some(&member))
                .into();
            data["channel_data"] = member.into();
        } else if channel.starts_with("private-") {
            data["auth"] = target.channel_auth(&socket_id, channel, None).into();
        }
        let frame = serde_json::json!({ "event": "pusher:subscribe", "data": data });
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    while let Some(frame) = common::next_json(&mut ws).await {
        println!("{frame}");
        if frame["event"] == "pusher:ping" {
            let pong = r#"{"event":"pusher:pong","data":{}}"#;
            ws.send(Message::Text(pong.into())).await.unwrap();
        }
    }
}
