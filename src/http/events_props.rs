//! Property tests for the trigger and batch bodies (`POST /events`, `POST /batch_events`):
//! never panics on any body; a valid event is accepted and reaches a subscriber with its name
//! and data unchanged. (The signature in front of them is tested in `src/proptests/auth.rs`.)

use std::collections::VecDeque;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{batch, trigger};
use crate::adapter::{Adapter, LocalState};
use crate::apps::{App, AppRegistry};
use crate::config::AppConfig;
use crate::outbox::{Outbox, SocketId};
use crate::proptests::{config, json_value};
use crate::protocol::channel::validate;

fn setup() -> (Arc<App>, Adapter) {
    let apps = AppRegistry::new(&[AppConfig::new("app", "key", "secret")]);
    let app = apps.by_id("app").unwrap().clone();
    (app, Adapter::local(Arc::new(LocalState::new(&apps, false))))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn channel() -> impl Strategy<Value = String> {
    "(private-|presence-|cache-)?[A-Z0-9][-a-zA-Z0-9_=@,.;]{0,40}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_any_body(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), json_value(), json_value(), json_value(), json_value()).prop_map(
            |(name, data, channels, socket_id, info)| json!({
                "name": name, "data": data, "channels": channels,
                "socket_id": socket_id, "info": info,
            }).to_string().into_bytes()
        ),
        prop::collection::vec(json_value(), 0..12)
            .prop_map(|items| json!({ "batch": items }).to_string().into_bytes()),
    ]) {
        let (app, adapter) = setup();
        block_on(async {
            let _ = trigger(&app, &body, &adapter).await;
            let _ = batch(&app, &body, &adapter).await;
        });
    }

    #[test]
    fn a_valid_event_reaches_the_subscriber(
        name in "[a-zA-Z][ -~]{0,50}",
        data in any::<String>(),
        channels in prop::collection::btree_set(channel(), 1..5),
        socket_id in proptest::option::of("[1-9][0-9]{0,8}\\.[1-9][0-9]{0,8}"),
        info in proptest::option::of(prop::sample::select(vec!["user_count", "subscription_count", "user_count,subscription_count", "cache", ""])),
        as_batch in any::<bool>(),
    ) {
        let (app, adapter) = setup();
        let channels: Vec<String> = channels.into_iter().collect();
        let first = channels[0].clone();
        let kind = validate(&first, 200).unwrap();
        let outbox = Outbox::new(SocketId::generate(), 16, None);
        if !kind.is_presence() {
            adapter.subscribe(&app, &first, kind, &outbox, None).unwrap();
            // subscription_succeeded, and cache_miss on a cache channel.
            outbox.drain(&mut VecDeque::new());
        }
        let mut ev = json!({ "name": name, "data": data });
        if let Some(s) = &socket_id { ev["socket_id"] = s.clone().into(); }
        if let Some(i) = info { ev["info"] = i.into(); }
        let result = block_on(async {
            if as_batch {
                ev["channel"] = first.clone().into();
                batch(&app, json!({ "batch": [ev] }).to_string().as_bytes(), &adapter).await
            } else {
                ev["channels"] = channels.clone().into();
                trigger(&app, ev.to_string().as_bytes(), &adapter).await
            }
        });
        prop_assert!(result.is_ok(), "{:?}", result.err());
        let answer: Value = serde_json::from_str(&result.unwrap()).unwrap();
        prop_assert!(answer.is_object());
        if !kind.is_presence() {
            let mut frames = VecDeque::new();
            outbox.drain(&mut frames);
            prop_assert_eq!(frames.len(), 1);
            let frame: Value = serde_json::from_str(frames[0].as_str()).unwrap();
            prop_assert_eq!(&frame["event"], &json!(name));
            prop_assert_eq!(&frame["channel"], &json!(first));
            prop_assert_eq!(&frame["data"], &json!(data));
        }
    }
}
