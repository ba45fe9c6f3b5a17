//! `protocol::inbound::parse`: never panics; every message shape pusher-js and the other SDKs
//! send parses to what was sent, whether `data` is an object or a JSON string holding one, and
//! whatever the whitespace.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{config, json_text, json_value};
use crate::protocol::inbound::parse;
use crate::protocol::{ClientMessage, PusherError};

/// `data` as an object, or double-encoded as a string (non-JS clients).
fn wrap(data: Value, as_string: bool) -> Value {
    if as_string {
        Value::String(data.to_string())
    } else {
        data
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn never_panics_on_arbitrary_envelopes(
        event in prop_oneof![
            any::<String>(),
            "pusher:[a-z_]{0,12}",
            "client-[ -~]{0,12}",
            Just("pusher:subscribe".to_owned()),
            Just("pusher:signin".to_owned()),
        ],
        channel in proptest::option::of(json_value()),
        data in proptest::option::of(json_value()),
        pretty in any::<bool>(),
    ) {
        let mut env = json!({ "event": event });
        if let Some(c) = channel { env["channel"] = c; }
        if let Some(d) = data { env["data"] = d; }
        let _ = parse(&json_text(&env, pretty));
    }

    #[test]
    fn subscribe_round_trips(
        channel in any::<String>(),
        auth in proptest::option::of(any::<String>()),
        channel_data in proptest::option::of(any::<String>()),
        as_string in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let mut data = json!({ "channel": channel });
        if let Some(a) = &auth { data["auth"] = a.clone().into(); }
        if let Some(d) = &channel_data { data["channel_data"] = d.clone().into(); }
        let frame = json!({ "event": "pusher:subscribe", "data": wrap(data.clone(), as_string) });
        prop_assert_eq!(
            parse(&json_text(&frame, pretty)),
            Ok(ClientMessage::Subscribe { channel: channel.clone(), auth, channel_data })
        );
        let frame = json!({ "event": "pusher:unsubscribe", "data": wrap(data, as_string) });
        prop_assert_eq!(
            parse(&json_text(&frame, pretty)),
            Ok(ClientMessage::Unsubscribe { channel })
        );
    }

    #[test]
    fn signin_round_trips(
        auth in any::<String>(),
        user_data in any::<String>(),
        as_string in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let data = json!({ "auth": auth, "user_data": user_data });
        let frame = json!({ "event": "pusher:signin", "data": wrap(data, as_string) });
        prop_assert_eq!(
            parse(&json_text(&frame, pretty)),
            Ok(ClientMessage::Signin { auth, user_data })
        );
    }

    /// Client-event data is relayed as a string: a string verbatim, other JSON compacted.
    #[test]
    fn client_event_round_trips(
        suffix in any::<String>(),
        channel in any::<String>(),
        data in proptest::option::of(json_value()),
        pretty in any::<bool>(),
    ) {
        let event = format!("client-{suffix}");
        let mut frame = json!({ "event": event, "channel": channel });
        if let Some(d) = &data { frame["data"] = d.clone(); }
        // `"data": null` counts as no data (serde's `Option`), as an absent `data` does.
        let expected = data.and_then(|d| match d {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        });
        prop_assert_eq!(
            parse(&json_text(&frame, pretty)),
            Ok(ClientMessage::ClientEvent { event, channel, data: expected })
        );
    }

    #[test]
    fn client_event_without_channel_is_refused(suffix in any::<String>(), data in json_value()) {
        let frame = json!({ "event": format!("client-{suffix}"), "data": data });
        prop_assert_eq!(parse(&frame.to_string()), Err(PusherError::InvalidMessage));
    }

    #[test]
    fn ping_and_pong_ignore_their_data(data in proptest::option::of(json_value())) {
        for (event, expected) in [("pusher:ping", ClientMessage::Ping), ("pusher:pong", ClientMessage::Pong)] {
            let mut frame = json!({ "event": event });
            if let Some(d) = &data { frame["data"] = d.clone(); }
            prop_assert_eq!(parse(&frame.to_string()), Ok(expected));
        }
    }

    /// Unknown `pusher:` events are errors; any other event that is not `client-` is ignored.
    #[test]
    fn other_events(name in any::<String>(), data in json_value()) {
        let frame = json!({ "event": format!("pusher:{name}"), "data": data });
        let known = ["ping", "pong", "subscribe", "unsubscribe", "signin"];
        if !known.contains(&name.as_str()) {
            prop_assert_eq!(parse(&frame.to_string()), Err(PusherError::InvalidMessage));
        }
        if !name.starts_with("pusher:") && !name.starts_with("client-") {
            let frame = json!({ "event": name, "data": data });
            prop_assert_eq!(parse(&frame.to_string()), Ok(ClientMessage::Ignored));
        }
    }
}

/// Deep nesting never overflows the stack. Where a value is parsed into a tree, serde_json's
/// recursion limit (128) refuses it; client-event data without whitespace is relayed as the raw
/// text it is, whatever its depth (it is never parsed into a tree).
#[test]
fn deep_nesting_is_refused_or_relayed_verbatim() {
    for depth in [10usize, 200, 100_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let frame = format!(r#"{{"event":"client-x","channel":"private-a","data":{nested}}}"#);
        let relayed = match parse(&frame) {
            Ok(ClientMessage::ClientEvent { data, .. }) => data,
            other => panic!("depth {depth}: {other:?}"),
        };
        assert_eq!(relayed.as_deref(), Some(nested.as_str()));
        let spaced = format!("{}{}", "[ ".repeat(depth), "]".repeat(depth));
        let frame = format!(r#"{{"event":"client-x","channel":"private-a","data":{spaced}}}"#);
        assert_eq!(parse(&frame).is_ok(), depth < 128, "depth {depth}");
        let frame = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":{nested}}}}}"#);
        assert_eq!(parse(&frame), Err(PusherError::InvalidMessage));
        let data = serde_json::to_string(&format!(r#"{{"channel":{nested}}}"#)).unwrap();
        let frame = format!(r#"{{"event":"pusher:subscribe","data":{data}}}"#);
        assert_eq!(parse(&frame), Err(PusherError::InvalidMessage));
        let frame = format!(r#"{{"event":{nested}}}"#);
        assert_eq!(parse(&frame), Err(PusherError::InvalidMessage));
    }
}
