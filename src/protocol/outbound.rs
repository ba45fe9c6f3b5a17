//! Server → client frames, each serialised once into a shared [`Frame`] that every recipient's
//! outbox holds a cheap clone of.

use serde::Serialize;
use serde_json::value::RawValue;

use super::PusherError;

pub use super::wsframe::Frame;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialise")
}

#[derive(Serialize)]
struct Envelope<'a, D: Serialize + ?Sized> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: &'a D,
}

fn frame<D: Serialize + ?Sized>(event: &str, channel: Option<&str>, data: &D) -> Frame {
    let env = Envelope {
        event,
        channel,
        data,
    };
    Frame::from(serde_json::to_string(&env).expect("frames always serialise"))
}

/// `pusher:connection_established`, with its data double-encoded as pusher-js expects.
pub fn connection_established(socket_id: &str, activity_timeout: u64) -> Frame {
    let data = format!(
        r#"{{"socket_id":{},"activity_timeout":{activity_timeout}}}"#,
        json_str(socket_id)
    );
    frame("pusher:connection_established", None, &data)
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: u16,
    message: &'a str,
}

/// `pusher:error` in Pusher's object form.
pub fn error(err: &PusherError) -> Frame {
    let message = err.to_string();
    let data = ErrorData {
        code: err.code().as_u16(),
        message: &message,
    };
    frame("pusher:error", None, &data)
}

/// `pusher:pong`, the answer to a client `pusher:ping`.
pub fn pong() -> Frame {
    Frame::from_static(r#"{"event":"pusher:pong","data":"{}"}"#)
}

/// `pusher:ping`, sent after `ping_interval` of silence.
pub fn ping() -> Frame {
    Frame::from_static(r#"{"event":"pusher:ping","data":"{}"}"#)
}

/// `pusher_internal:subscription_succeeded` for a non-presence channel.
pub fn subscription_succeeded(channel: &str) -> Frame {
    frame(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        "{}",
    )
}

/// `pusher_internal:subscription_succeeded` for a presence channel; `presence` is the JSON text
/// of `{"presence":{...}}` built by the channel registry.
pub fn presence_succeeded(channel: &str, presence: &str) -> Frame {
    frame(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        presence,
    )
}

#[derive(Serialize)]
struct SubscriptionErrorData<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: &'a str,
    status: u16,
}

/// `pusher:subscription_error` on the channel, so Echo's `.error()` callbacks fire.
pub fn subscription_error(channel: &str, err: &PusherError, detail: &str) -> Frame {
    let data = SubscriptionErrorData {
        kind: err.subscription_error_type(),
        error: detail,
        status: err.subscription_error_status(),
    };
    frame("pusher:subscription_error", Some(channel), &data)
}

/// `pusher_internal:member_added`; `user_id` and `user_info` are raw JSON as the member sent them.
pub fn member_added(channel: &str, user_id: &RawValue, user_info: &RawValue) -> Frame {
    let data = format!(
        r#"{{"user_id":{},"user_info":{}}}"#,
        user_id.get(),
        user_info.get()
    );
    frame("pusher_internal:member_added", Some(channel), &data)
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &RawValue) -> Frame {
    let data = format!(r#"{{"user_id":{}}}"#, user_id.get());
    frame("pusher_internal:member_removed", Some(channel), &data)
}

/// `pusher:cache_miss`, sent to a new subscriber of an empty cache channel.
pub fn cache_miss(channel: &str) -> Frame {
    #[derive(Serialize)]
    struct CacheMiss<'a> {
        event: &'a str,
        channel: &'a str,
    }
    let f = CacheMiss {
        event: "pusher:cache_miss",
        channel,
    };
    Frame::from(serde_json::to_string(&f).expect("frames always serialise"))
}

#[derive(Serialize)]
struct EventFrame<'a> {
    event: &'a str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

/// A channel event (HTTP-triggered, cached or relayed from a client); `data` travels verbatim.
pub fn event(name: &str, channel: &str, data: Option<&str>, user_id: Option<&str>) -> Frame {
    let f = EventFrame {
        event: name,
        channel,
        data,
        user_id,
    };
    Frame::from(serde_json::to_string(&f).expect("frames always serialise"))
}

/// `pusher:signin_success`, echoing the exact `user_data` string.
pub fn signin_success(user_data: &str) -> Frame {
    #[derive(Serialize)]
    struct D<'a> {
        user_data: &'a str,
    }
    frame("pusher:signin_success", None, &D { user_data })
}

/// `pusher_internal:subscription_count`: a non-presence channel's subscriptions (cluster-wide).
pub fn subscription_count(channel: &str, count: usize) -> Frame {
    let data = format!(r#"{{"subscription_count":{count}}}"#);
    frame("pusher_internal:subscription_count", Some(channel), &data)
}

/// `pusher_internal:watchlist_events` (no channel): one entry per non-empty list, `online` first.
/// pusher-js emits each entry on `pusher.user.watchlist` under its `name`.
pub fn watchlist_events<S: AsRef<str>>(online: &[S], offline: &[S]) -> Frame {
    #[derive(Serialize)]
    struct Entry<'a> {
        name: &'a str,
        user_ids: Vec<&'a str>,
    }
    #[derive(Serialize)]
    struct Events<'a> {
        events: Vec<Entry<'a>>,
    }
    let mut events = Vec::with_capacity(2);
    for (name, ids) in [("online", online), ("offline", offline)] {
        if !ids.is_empty() {
            let user_ids = ids.iter().map(AsRef::as_ref).collect();
            events.push(Entry { name, user_ids });
        }
    }
    let data = serde_json::to_string(&Events { events }).expect("strings serialise");
    frame("pusher_internal:watchlist_events", None, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_frames() {
        assert_eq!(
            connection_established("123.456", 30).as_str(),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":30}"}"#
        );
        assert_eq!(
            subscription_succeeded("test-channel").as_str(),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"test-channel","data":"{}"}"#
        );
        assert_eq!(
            error(&PusherError::AppNotFound).as_str(),
            r#"{"event":"pusher:error","data":{"code":4001,"message":"Application does not exist"}}"#
        );
        assert_eq!(
            cache_miss("cache-test-channel").as_str(),
            r#"{"event":"pusher:cache_miss","channel":"cache-test-channel"}"#
        );
        let id = RawValue::from_string("2".into()).unwrap();
        let info = RawValue::from_string(r#"{"name":"Test User 2"}"#.into()).unwrap();
        assert_eq!(
            member_added("presence-test-channel", &id, &info).as_str(),
            r#"{"event":"pusher_internal:member_added","channel":"presence-test-channel","data":"{\"user_id\":2,\"user_info\":{\"name\":\"Test User 2\"}}"}"#
        );
        assert_eq!(
            member_removed("presence-test-channel", &id).as_str(),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-test-channel","data":"{\"user_id\":2}"}"#
        );
        assert_eq!(
            event(
                "App\\Events\\TestEvent",
                "c",
                Some(r#"{"foo":"bar"}"#),
                None
            )
            .as_str(),
            r#"{"event":"App\\Events\\TestEvent","channel":"c","data":"{\"foo\":\"bar\"}"}"#
        );
        assert_eq!(
            signin_success(r#"{"id":"1","name":"test"}"#).as_str(),
            r#"{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"1\",\"name\":\"test\"}"}}"#
        );
        assert_eq!(
            subscription_count("my-channel", 2).as_str(),
            r#"{"event":"pusher_internal:subscription_count","channel":"my-channel","data":"{\"subscription_count\":2}"}"#
        );
        assert_eq!(
            watchlist_events(&["1"], &["2", "3"]).as_str(),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]},{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}"}"#
        );
        let none: [&str; 0] = [];
        assert_eq!(
            watchlist_events(&none, &["2"]).as_str(),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"offline\",\"user_ids\":[\"2\"]}]}"}"#
        );
        let e = subscription_error("private-x", &PusherError::Unauthorized, "bad");
        assert_eq!(
            e.as_str(),
            r#"{"event":"pusher:subscription_error","channel":"private-x","data":{"type":"AuthError","error":"bad","status":401}}"#
        );
    }
}
