//! The cluster wire format: `decode` never panics on arbitrary bytes; `event` and `terminate`
//! round-trip, whatever the frame or user id holds (newlines included).

use proptest::prelude::*;

use super::config;
use crate::cluster::wire::{decode, event, hello, terminate, Message, WireError, MAGIC};
use crate::outbox::SocketId;
use crate::protocol::outbound::Frame;

/// A node id, app id or channel name: never holds a newline (they are validated).
fn field() -> impl Strategy<Value = String> {
    "[^\n]{0,40}"
}

fn socket_id() -> impl Strategy<Value = Option<SocketId>> {
    proptest::option::of(
        "[1-9][0-9]{0,8}\\.[1-9][0-9]{0,8}".prop_map(|s| SocketId::parse(&s).unwrap()),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_herald_shaped_messages(
        kind in prop_oneof![Just("E"), Just("MA"), Just("MR"), Just("J"), Just("S"), Just("N"), Just("T"), Just("X"), Just("")],
        fields in prop::collection::vec(prop_oneof![
            field(), "[0-9.]{0,12}".prop_map(String::from), Just(String::new()), Just("1".to_owned()),
        ], 0..7),
    ) {
        let text = format!("{MAGIC}\n{kind}\n{}", fields.join("\n"));
        if let Err(e) = decode(text.as_bytes()) {
            prop_assert_ne!(e, WireError::Foreign);
        }
    }

    #[test]
    fn foreign_messages_are_told_apart(text in any::<String>()) {
        if !text.starts_with("H1\n") {
            prop_assert_eq!(decode(text.as_bytes()).err(), Some(WireError::Foreign));
        }
    }

    #[test]
    fn event_round_trips(
        node in field(),
        app in field(),
        channel in field(),
        except in socket_id(),
        inner in any::<String>(),
        cut in 1usize..4,
    ) {
        // Frames are JSON objects; whatever they hold (newlines included) survives.
        let frame = Frame::from(format!("{{{inner}}}"));
        let bytes = event(&node, &app, &channel, except, &frame);
        prop_assert_eq!(
            decode(&bytes),
            Ok(Message::Event { node: &node, app: &app, channel: &channel, except, frame: frame.clone() })
        );
        // A cut or padded message is refused, not forwarded.
        let cut = &bytes[..bytes.len() - cut.min(bytes.len())];
        let cut_is_event = matches!(decode(cut), Ok(Message::Event { .. }));
        prop_assert!(!cut_is_event);
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(b"}");
        prop_assert!(decode(&padded).is_err());
    }

    #[test]
    fn hello_round_trips(node in "[^\n]{1,40}") {
        let bytes = hello(&node);
        prop_assert_eq!(decode(&bytes), Ok(Message::Hello { node: &node }));
    }

    #[test]
    fn terminate_round_trips(node in field(), app in field(), user in any::<String>()) {
        let bytes = terminate(&node, &app, &user);
        prop_assert_eq!(decode(&bytes), Ok(Message::Terminate { node: &node, app: &app, user: &user }));
    }

    /// The shapes the Lua scripts publish (`scripts.rs`), with members in `to_wire` form.
    #[test]
    fn script_messages_decode(
        app in field(),
        channel in field(),
        sock in socket_id(),
        members in prop::collection::vec(("[^\n]{1,20}", 0i64..1000), 0..5),
        ok in any::<bool>(),
    ) {
        let wire: Vec<String> = members
            .iter()
            .map(|(key, n)| format!("[{},{n},null]", serde_json::to_string(key).unwrap()))
            .collect();
        let member = wire.first().cloned().unwrap_or_else(|| "[\"u\",1,null]".into());
        let except = sock.map(|s| s.to_string()).unwrap_or_default();
        let text = format!("H1\nMA\n{app}\n{channel}\n{except}\n{member}");
        prop_assert_eq!(
            decode(text.as_bytes()),
            Ok(Message::MemberAdded { app: &app, channel: &channel, except: sock, member: &member })
        );
        let text = format!("H1\nMR\n{app}\n{channel}\n{member}");
        prop_assert_eq!(
            decode(text.as_bytes()),
            Ok(Message::MemberRemoved { app: &app, channel: &channel, member: &member })
        );
        let body = wire.join("\n");
        let socket = sock.unwrap_or_else(|| SocketId::parse("1.1").unwrap());
        let text = format!("H1\nJ\n{app}\n{channel}\n{socket}\n{}\n{body}", if ok { "1" } else { "0" });
        prop_assert_eq!(
            decode(text.as_bytes()),
            Ok(Message::Joined { app: &app, channel: &channel, socket, ok, members: &body })
        );
        let text = format!("H1\nS\n{app}\n{channel}\n{body}");
        prop_assert_eq!(
            decode(text.as_bytes()),
            Ok(Message::Members { app: &app, channel: &channel, members: &body })
        );
        for line in body.lines() {
            prop_assert!(crate::channels::MemberData::from_wire(line).is_some());
        }
    }
}
