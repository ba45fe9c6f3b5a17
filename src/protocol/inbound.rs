//! Parsing of client → server frames into [`ClientMessage`]. Accepts `data` as an object or as a
//! JSON string holding one (non-JS clients send strings), as pusher-js and Reverb do.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::PusherError;

/// One parsed client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `pusher:ping`: answer with `pusher:pong`.
    Ping,
    /// `pusher:pong`: only counts as activity.
    Pong,
    /// `pusher:subscribe`.
    Subscribe {
        /// The channel name, not yet validated.
        channel: String,
        /// `<key>:<signature>`, empty for public channels.
        auth: Option<String>,
        /// Presence member data, exactly as sent (it is signed byte for byte).
        channel_data: Option<String>,
    },
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel name.
        channel: String,
    },
    /// `pusher:signin`.
    Signin {
        /// `<key>:<signature>` over `socket_id::user::user_data`.
        auth: String,
        /// The user object as a JSON string, exactly as sent.
        user_data: String,
    },
    /// A `client-*` event to relay.
    ClientEvent {
        /// The event name (starts with `client-`).
        event: String,
        /// The target channel.
        channel: String,
        /// The data to relay as a string: a string verbatim, other JSON compact-serialised.
        data: Option<String>,
    },
    /// Any other non-`pusher:` event: ignored, as Pusher and Reverb do.
    Ignored,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<String>,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

/// Parses one text frame. Errors are always [`PusherError::InvalidMessage`] (4200).
pub fn parse(text: &str) -> Result<ClientMessage, PusherError> {
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|_| PusherError::InvalidMessage)?;
    if let Some(name) = env.event.strip_prefix("pusher:") {
        return match name {
            "ping" => Ok(ClientMessage::Ping),
            "pong" => Ok(ClientMessage::Pong),
            "subscribe" => {
                let d: SubscribeData = object_data(env.data)?;
                Ok(ClientMessage::Subscribe {
                    channel: d.channel,
                    auth: d.auth,
                    channel_data: d.channel_data,
                })
            }
            "unsubscribe" => {
                let d: SubscribeData = object_data(env.data)?;
                Ok(ClientMessage::Unsubscribe { channel: d.channel })
            }
            "signin" => {
                let d: SigninData = object_data(env.data)?;
                Ok(ClientMessage::Signin {
                    auth: d.auth,
                    user_data: d.user_data,
                })
            }
            _ => Err(PusherError::InvalidMessage),
        };
    }
    if env.event.starts_with("client-") {
        let channel = env.channel.ok_or(PusherError::InvalidMessage)?;
        let data = env.data.map(relay_string).transpose()?;
        return Ok(ClientMessage::ClientEvent {
            event: env.event,
            channel,
            data,
        });
    }
    Ok(ClientMessage::Ignored)
}

/// Decodes `data` as an object, unwrapping one level of JSON-string encoding.
fn object_data<T: serde::de::DeserializeOwned>(raw: Option<&RawValue>) -> Result<T, PusherError> {
    let raw = raw.ok_or(PusherError::InvalidMessage)?;
    let text = raw.get();
    let bad = |_| PusherError::InvalidMessage;
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(bad)?;
        serde_json::from_str(&inner).map_err(bad)
    } else {
        serde_json::from_str(text).map_err(bad)
    }
}

/// Client-event data as relayed: a JSON string verbatim, anything else compact JSON text.
fn relay_string(raw: &RawValue) -> Result<String, PusherError> {
    let text = raw.get();
    let bad = |_| PusherError::InvalidMessage;
    if text.starts_with('"') {
        serde_json::from_str(text).map_err(bad)
    } else if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let v: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        Ok(v.to_string())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_pusher_js_sends() {
        assert_eq!(
            parse(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(parse(r#"{"event":"pusher:pong"}"#), Ok(ClientMessage::Pong));
        assert_eq!(
            parse(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}"#),
            Ok(ClientMessage::Subscribe {
                channel: "my-channel".into(),
                auth: Some(String::new()),
                channel_data: None
            })
        );
        let presence = r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\": \"1\"}","channel":"presence-x"}}"#;
        match parse(presence).unwrap() {
            ClientMessage::Subscribe { channel_data, .. } => {
                assert_eq!(channel_data.as_deref(), Some(r#"{"user_id": "1"}"#))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"c"}}"#),
            Ok(ClientMessage::Unsubscribe {
                channel: "c".into()
            })
        );
        assert_eq!(
            parse(
                r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"1\"}"}}"#
            ),
            Ok(ClientMessage::Signin {
                auth: "k:s".into(),
                user_data: r#"{"id":"1"}"#.into()
            })
        );
    }

    #[test]
    fn string_encoded_data_is_unwrapped() {
        let m = parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"c\"}"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Subscribe { ref channel, .. } if channel == "c"));
    }

    #[test]
    fn client_event_data_becomes_a_string() {
        let m = parse(r#"{"event":"client-t","channel":"private-c","data":{"a": 1}}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::ClientEvent {
                event: "client-t".into(),
                channel: "private-c".into(),
                data: Some(r#"{"a":1}"#.into())
            }
        );
        let m = parse(r#"{"event":"client-t","channel":"private-c","data":"hi"}"#).unwrap();
        assert!(matches!(m, ClientMessage::ClientEvent { data: Some(ref d), .. } if d == "hi"));
        let m = parse(r#"{"event":"client-t","channel":"private-c"}"#).unwrap();
        assert!(matches!(m, ClientMessage::ClientEvent { data: None, .. }));
    }

    #[test]
    fn bad_input_is_4200() {
        for bad in [
            "Hi",
            r#"{"event":[]}"#,
            r#"{"event":"pusher:subscribe","data":"sfsfsfs"}"#,
            r#"{"event":"pusher:subscribe","data":{"channel":[]}}"#,
            r#"{"event":"pusher:subscribe","data":{"channel":null}}"#,
            r#"{"event":"pusher:subscribe","data":{"channel":"c","auth":[]}}"#,
            r#"{"event":"pusher:subscribe","data":{"channel":"c","channel_data":[]}}"#,
            r#"{"event":"pusher:subscribe"}"#,
            r#"{"event":"pusher:whatever","data":{}}"#,
            r#"{"event":"client-x","channel":[]}"#,
            r#"{"event":"client-x","data":{}}"#,
        ] {
            assert_eq!(parse(bad), Err(PusherError::InvalidMessage), "{bad}");
        }
        assert_eq!(
            parse(r#"{"event":"other","data":{}}"#),
            Ok(ClientMessage::Ignored)
        );
    }
}
