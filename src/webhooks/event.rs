//! The webhook wire format (protocol reference §5): one event object, serialised once and shared
//! by every target that receives it; the request body `{"time_ms":…,"events":[…]}`; and its
//! signature, hex HMAC-SHA256 of the exact body bytes with the app secret.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::config::WebhookEventType;

/// One event, already serialised as a JSON object.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its kind (for target selection and logs).
    pub kind: WebhookEventType,
    /// The JSON object, e.g. `{"name":"channel_occupied","channel":"c"}`.
    pub json: Arc<str>,
}

#[derive(Serialize)]
struct Json<'a> {
    name: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<usize>,
}

impl<'a> Json<'a> {
    fn new(kind: WebhookEventType, channel: &'a str) -> Self {
        Self {
            name: kind.name(),
            channel,
            event: None,
            data: None,
            socket_id: None,
            user_id: None,
            subscription_count: None,
        }
    }

    fn build(self, kind: WebhookEventType) -> Event {
        let json = serde_json::to_string(&self).expect("webhook events always serialise");
        Event {
            kind,
            json: json.into(),
        }
    }
}

/// A client event as the webhook reports it.
#[derive(Debug, Clone, Copy)]
pub struct ClientEvent<'a> {
    /// The event name (`client-…`).
    pub event: &'a str,
    /// The event data as the client sent it (a string; `""` when absent).
    pub data: Option<&'a str>,
    /// The sender's socket id, `"a.b"`.
    pub socket_id: &'a str,
    /// The sender's presence `user_id` (presence channels only).
    pub user_id: Option<&'a str>,
}

impl Event {
    /// channel_occupied, channel_vacated or cache_miss: the channel only.
    pub fn channel(kind: WebhookEventType, channel: &str) -> Self {
        Json::new(kind, channel).build(kind)
    }

    /// member_added or member_removed.
    pub fn member(kind: WebhookEventType, channel: &str, user_id: &str) -> Self {
        Json {
            user_id: Some(user_id),
            ..Json::new(kind, channel)
        }
        .build(kind)
    }

    /// client_event.
    pub fn client(channel: &str, e: &ClientEvent<'_>) -> Self {
        let kind = WebhookEventType::ClientEvent;
        Json {
            event: Some(e.event),
            data: Some(e.data.unwrap_or("")),
            socket_id: Some(e.socket_id),
            user_id: e.user_id,
            ..Json::new(kind, channel)
        }
        .build(kind)
    }

    /// subscription_count.
    pub fn subscription_count(channel: &str, count: usize) -> Self {
        let kind = WebhookEventType::SubscriptionCount;
        Json {
            subscription_count: Some(count),
            ..Json::new(kind, channel)
        }
        .build(kind)
    }
}

/// Milliseconds since the Unix epoch, for `time_ms`.
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The request body for `events`, stamped `time_ms`.
pub fn body(time_ms: u128, events: &[Event]) -> String {
    let len: usize = events.iter().map(|e| e.json.len() + 1).sum();
    let mut out = String::with_capacity(len + 40);
    out.push_str("{\"time_ms\":");
    out.push_str(&time_ms.to_string());
    out.push_str(",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.json);
    }
    out.push_str("]}");
    out
}

/// `X-Pusher-Signature`: hex HMAC-SHA256 of the exact body with the app secret.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use WebhookEventType as T;

    #[test]
    fn exact_event_objects() {
        let e = |e: Event| e.json.to_string();
        assert_eq!(
            e(Event::channel(T::ChannelOccupied, "c")),
            r#"{"name":"channel_occupied","channel":"c"}"#
        );
        assert_eq!(
            e(Event::member(T::MemberRemoved, "presence-c", "u\"1")),
            r#"{"name":"member_removed","channel":"presence-c","user_id":"u\"1"}"#
        );
        let c = ClientEvent {
            event: "client-x",
            data: Some("{\"a\":1}"),
            socket_id: "1.2",
            user_id: Some("u"),
        };
        assert_eq!(
            e(Event::client("presence-c", &c)),
            r#"{"name":"client_event","channel":"presence-c","event":"client-x","data":"{\"a\":1}","socket_id":"1.2","user_id":"u"}"#
        );
        assert_eq!(
            e(Event::subscription_count("c", 3)),
            r#"{"name":"subscription_count","channel":"c","subscription_count":3}"#
        );
    }

    #[test]
    fn body_and_signature() {
        let events = [
            Event::channel(T::CacheMiss, "cache-a"),
            Event::channel(T::ChannelVacated, "b"),
        ];
        let b = body(1700000000123, &events);
        assert_eq!(
            b,
            r#"{"time_ms":1700000000123,"events":[{"name":"cache_miss","channel":"cache-a"},{"name":"channel_vacated","channel":"b"}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
