//! Triggers one event through the signed HTTP API, like `Pusher::trigger` in a server SDK.
//!
//! Run against `herald start` (embedded config):
//! `cargo run --example trigger -- my-channel my-event '{"hello":"world"}'`
//! Override the target with HERALD_ADDR, HERALD_APP_ID, HERALD_KEY, HERALD_SECRET.

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [channel, event, data] = args.as_slice() else {
        eprintln!("usage: trigger CHANNEL EVENT DATA");
        std::process::exit(2);
    };
    let target = common::Target::from_env();
    let body = serde_json::json!({ "name": event, "channels": [channel], "data": data, "info": "subscription_count" });
    let path = format!("/apps/{}/events", target.app_id);
    let (status, body) = target.api("POST", &path, &body.to_string()).await;
    println!("{status}\n{body}");
}
