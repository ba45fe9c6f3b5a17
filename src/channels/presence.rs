//! Presence bookkeeping for one channel: members keyed by the string form of `user_id`, each
//! with a count of the sockets it has in the channel, so a user with several tabs is one member.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::protocol::PusherError;

/// Who a presence subscriber is, parsed from `channel_data` or the signed-in user.
#[derive(Debug, Clone)]
pub struct MemberData {
    /// The string form of `user_id`: the identity used for de-duplication.
    pub key: Arc<str>,
    /// `user_id` as the JSON value it arrived as (a number stays a number on the wire).
    pub user_id: Box<RawValue>,
    /// `user_info` as raw JSON, `null` when absent.
    pub user_info: Box<RawValue>,
}

/// Longest accepted user id, per Pusher's docs.
pub const MAX_USER_ID_LEN: usize = 128;

impl MemberData {
    /// Parses presence `channel_data` (`{"user_id": str|int, "user_info"?: any}`), enforcing the
    /// user-id length and the app's `user_info` size limit.
    pub fn from_channel_data(data: &str, max_info_bytes: usize) -> Result<Self, PusherError> {
        #[derive(serde::Deserialize)]
        struct ChannelData {
            user_id: Box<RawValue>,
            #[serde(default)]
            user_info: Option<Box<RawValue>>,
        }
        let parsed: ChannelData =
            serde_json::from_str(data).map_err(|_| PusherError::InvalidMessage)?;
        Self::build(parsed.user_id, parsed.user_info, max_info_bytes)
    }

    /// Builds a member from a signed-in user's `id` and optional `user_info`.
    pub fn build(
        user_id: Box<RawValue>,
        user_info: Option<Box<RawValue>>,
        max_info_bytes: usize,
    ) -> Result<Self, PusherError> {
        let key: String = match serde_json::from_str::<serde_json::Value>(user_id.get()) {
            Ok(serde_json::Value::String(s)) if !s.is_empty() => s,
            Ok(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(PusherError::InvalidMessage),
        };
        if key.len() > MAX_USER_ID_LEN {
            return Err(PusherError::MemberTooLarge);
        }
        let user_info = user_info.unwrap_or_else(null);
        if user_info.get().len() > max_info_bytes {
            return Err(PusherError::MemberTooLarge);
        }
        Ok(Self {
            key: key.into(),
            user_id: compact(user_id),
            user_info: compact(user_info),
        })
    }
}

impl MemberData {
    /// The form kept in Redis and carried between nodes: `[key, user_id, user_info]` as JSON
    /// (compact, so it holds no raw newline).
    pub fn to_wire(&self) -> String {
        let key = serde_json::to_string(&*self.key).expect("strings serialise");
        format!("[{key},{},{}]", self.user_id.get(), self.user_info.get())
    }

    /// Parses [`MemberData::to_wire`]; `None` for anything else.
    pub fn from_wire(text: &str) -> Option<Self> {
        let (key, user_id, user_info): (String, Box<RawValue>, Box<RawValue>) =
            serde_json::from_str(text).ok()?;
        Some(Self {
            key: key.into(),
            user_id,
            user_info,
        })
    }
}

/// `{"presence":{"ids":[...],"hash":{...},"count":n}}` for any list of members.
pub fn snapshot_of<'a>(members: impl Iterator<Item = &'a MemberData>) -> String {
    let mut ids = String::from("[");
    let mut hash = String::from("{");
    let mut count = 0;
    for (i, m) in members.enumerate() {
        if i > 0 {
            ids.push(',');
            hash.push(',');
        }
        ids.push_str(m.user_id.get());
        hash.push_str(&serde_json::to_string(&*m.key).expect("strings serialise"));
        hash.push(':');
        hash.push_str(m.user_info.get());
        count += 1;
    }
    format!(r#"{{"presence":{{"ids":{ids}],"hash":{hash}}},"count":{count}}}}}"#)
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

/// Drops insignificant whitespace so frames stay compact (Python SDKs send spaced JSON).
fn compact(raw: Box<RawValue>) -> Box<RawValue> {
    if !raw.get().bytes().any(|b| b.is_ascii_whitespace()) {
        return raw;
    }
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(v) => RawValue::from_string(v.to_string()).unwrap_or(raw),
        Err(_) => raw,
    }
}

#[derive(Debug)]
struct Member {
    data: MemberData,
    sockets: usize,
}

/// The members of one presence channel.
#[derive(Debug, Default)]
pub struct Presence {
    members: HashMap<Arc<str>, Member>,
}

impl Presence {
    /// Adds one socket of `member`; returns true when this is the user's first socket (a new
    /// member). A new member beyond `max_members` is refused; more sockets of a member are not.
    pub fn join(&mut self, member: &MemberData, max_members: usize) -> Result<bool, PusherError> {
        if let Some(m) = self.members.get_mut(&member.key) {
            m.sockets += 1;
            return Ok(false);
        }
        if self.members.len() >= max_members {
            return Err(PusherError::MemberLimit);
        }
        self.members.insert(
            member.key.clone(),
            Member {
                data: member.clone(),
                sockets: 1,
            },
        );
        Ok(true)
    }

    /// Removes one socket of the user; returns the member's raw `user_id` when it was the last.
    pub fn leave(&mut self, key: &str) -> Option<Box<RawValue>> {
        let m = self.members.get_mut(key)?;
        m.sockets -= 1;
        if m.sockets > 0 {
            return None;
        }
        self.members.remove(key).map(|m| m.data.user_id)
    }

    /// Distinct users.
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// The distinct users' ids, in string form.
    pub fn user_ids(&self) -> Vec<Arc<str>> {
        self.members.keys().cloned().collect()
    }

    /// `{"presence":{"ids":[...],"hash":{...},"count":n}}`, the subscription_succeeded payload.
    pub fn snapshot(&self) -> String {
        snapshot_of(self.members())
    }

    /// Every member's data.
    pub fn members(&self) -> impl Iterator<Item = &MemberData> {
        self.members.values().map(|m| &m.data)
    }

    /// One member's data by user key.
    pub fn member(&self, key: &str) -> Option<&MemberData> {
        self.members.get(key).map(|m| &m.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(data: &str) -> MemberData {
        MemberData::from_channel_data(data, 1024).unwrap()
    }

    #[test]
    fn dedups_users_across_sockets() {
        let mut p = Presence::default();
        let a = member(r#"{"user_id":1,"user_info":{"name":"A"}}"#);
        let a_str = member(r#"{"user_id":"1"}"#);
        assert_eq!(p.join(&a, 100), Ok(true));
        assert_eq!(
            p.join(&a_str, 100),
            Ok(false),
            "1 and \"1\" are the same user"
        );
        assert_eq!(p.count(), 1);
        assert!(p.leave("1").is_none(), "one socket left");
        assert_eq!(p.leave("1").unwrap().get(), "1");
        assert_eq!(p.count(), 0);
        assert!(p.leave("1").is_none());
    }

    #[test]
    fn snapshot_shape() {
        let mut p = Presence::default();
        p.join(
            &member(r#"{"user_id": 1, "user_info": {"name": "A"}}"#),
            100,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&p.snapshot()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"presence":{"ids":[1],"hash":{"1":{"name":"A"}},"count":1}})
        );
        p.join(&member(r#"{"user_id":"x"}"#), 100).unwrap();
        let v: serde_json::Value = serde_json::from_str(&p.snapshot()).unwrap();
        assert_eq!(v["presence"]["hash"]["x"], serde_json::Value::Null);
        assert_eq!(v["presence"]["count"], 2);
    }

    #[test]
    fn wire_form_round_trips() {
        let m = member(r#"{"user_id": 7, "user_info": {"name": "A\nB"}}"#);
        let wire = m.to_wire();
        assert_eq!(wire, r#"["7",7,{"name":"A\nB"}]"#);
        assert!(!wire.contains('\n'));
        let back = MemberData::from_wire(&wire).unwrap();
        assert_eq!(&*back.key, "7");
        assert_eq!(back.user_id.get(), "7");
        assert!(MemberData::from_wire("nope").is_none());
    }

    #[test]
    fn limits() {
        let mut p = Presence::default();
        p.join(&member(r#"{"user_id":"a"}"#), 1).unwrap();
        assert_eq!(
            p.join(&member(r#"{"user_id":"b"}"#), 1),
            Err(PusherError::MemberLimit)
        );
        assert_eq!(p.join(&member(r#"{"user_id":"a"}"#), 1), Ok(false));
        let big = format!(r#"{{"user_id":"a","user_info":"{}"}}"#, "x".repeat(2000));
        assert_eq!(
            MemberData::from_channel_data(&big, 1024).unwrap_err(),
            PusherError::MemberTooLarge
        );
        let long_id = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert_eq!(
            MemberData::from_channel_data(&long_id, 1024).unwrap_err(),
            PusherError::MemberTooLarge
        );
        for bad in ["{}", r#"{"user_id":true}"#, r#"{"user_id":""}"#, "nope"] {
            assert_eq!(
                MemberData::from_channel_data(bad, 1024).unwrap_err(),
                PusherError::InvalidMessage
            );
        }
    }
}
