//! Presence `channel_data` and [`MemberData`]: never panics; every valid member is accepted,
//! keeps its `user_id` as sent (a number stays a number) and survives `to_wire` / `from_wire`
//! (the form kept in Redis) unchanged, on one line; the limits are enforced; [`Presence`]
//! counts users, not sockets.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{config, json_text, json_value};
use crate::channels::presence::{snapshot_of, MemberData, Presence, MAX_USER_ID_LEN};
use crate::protocol::PusherError;

/// A valid `user_id`: a non-empty string of at most 128 bytes, or an integer.
fn user_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>()
            .prop_filter("1..=128 bytes", |s| !s.is_empty()
                && s.len() <= MAX_USER_ID_LEN)
            .prop_map(Value::String),
        "[a-z0-9-]{1,20}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
    ]
}

fn key_of(user_id: &Value) -> String {
    match user_id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics(text in prop_oneof![
        any::<String>(),
        json_value().prop_map(|v| v.to_string()),
        (json_value(), json_value()).prop_map(|(id, info)| json!({"user_id": id, "user_info": info}).to_string()),
    ], max in 0usize..2000) {
        if let Ok(m) = MemberData::from_channel_data(&text, max) {
            prop_assert!(!m.key.is_empty() && m.key.len() <= MAX_USER_ID_LEN);
            prop_assert!(m.user_info.get().len() <= max || text.bytes().any(|b| b.is_ascii_whitespace()));
            let back = MemberData::from_wire(&m.to_wire()).unwrap();
            prop_assert_eq!(back.key, m.key);
        }
        let _ = MemberData::from_wire(&text);
    }

    #[test]
    fn valid_members_round_trip_through_the_wire_form(
        id in user_id(),
        info in proptest::option::of(json_value()),
        pretty in any::<bool>(),
    ) {
        let mut data = json!({ "user_id": id });
        if let Some(i) = &info { data["user_info"] = i.clone(); }
        let text = json_text(&data, pretty);
        let m = MemberData::from_channel_data(&text, usize::MAX).unwrap();
        prop_assert_eq!(m.key.to_string(), key_of(&id));
        // The id keeps its JSON type and the info its value, compacted.
        prop_assert_eq!(serde_json::from_str::<Value>(m.user_id.get()).unwrap(), id.clone());
        prop_assert_eq!(
            serde_json::from_str::<Value>(m.user_info.get()).unwrap(),
            info.clone().unwrap_or(Value::Null)
        );
        let wire = m.to_wire();
        prop_assert!(!wire.contains('\n'));
        let back = MemberData::from_wire(&wire).unwrap();
        prop_assert_eq!(&back.key, &m.key);
        prop_assert_eq!(back.user_id.get(), m.user_id.get());
        prop_assert_eq!(back.user_info.get(), m.user_info.get());
        // The snapshot of one member is valid JSON that names it.
        let snap: Value = serde_json::from_str(&snapshot_of([&m].into_iter())).unwrap();
        prop_assert_eq!(&snap["presence"]["count"], &json!(1));
        prop_assert_eq!(&snap["presence"]["ids"][0], &id);
        prop_assert_eq!(&snap["presence"]["hash"][key_of(&id)], &info.unwrap_or(Value::Null));
    }

    #[test]
    fn limits_are_enforced(
        long_id in "[a-z]{129,200}",
        info in json_value(),
        bad_id in prop_oneof![
            Just(json!("")), Just(Value::Null), any::<bool>().prop_map(Value::Bool),
            Just(json!([1])), Just(json!({"id": 1})),
        ],
    ) {
        let text = json!({ "user_id": long_id }).to_string();
        prop_assert_eq!(MemberData::from_channel_data(&text, 1000).err(), Some(PusherError::MemberTooLarge));
        let info_len = info.to_string().len();
        let text = json!({ "user_id": "u", "user_info": info }).to_string();
        prop_assert!(MemberData::from_channel_data(&text, info_len).is_ok());
        prop_assert_eq!(
            MemberData::from_channel_data(&text, info_len - 1).err(),
            Some(PusherError::MemberTooLarge)
        );
        let text = json!({ "user_id": bad_id }).to_string();
        prop_assert_eq!(MemberData::from_channel_data(&text, 1000).err(), Some(PusherError::InvalidMessage));
    }

    /// Joins and leaves of a few users with several sockets each, against a model.
    #[test]
    fn presence_counts_users_not_sockets(ops in prop::collection::vec((0u8..6, any::<bool>()), 0..60)) {
        let mut p = Presence::default();
        let mut model: HashMap<String, usize> = HashMap::new();
        for (user, join) in ops {
            let key = format!("user-{user}");
            if join {
                let m = MemberData::from_channel_data(&json!({"user_id": key}).to_string(), 100).unwrap();
                let new = p.join(&m, 4);
                let sockets = model.get(&key).copied().unwrap_or(0);
                if sockets == 0 && model.len() >= 4 {
                    prop_assert_eq!(new, Err(PusherError::MemberLimit));
                } else {
                    prop_assert_eq!(new, Ok(sockets == 0));
                    *model.entry(key).or_default() += 1;
                }
            } else {
                let left = p.leave(&key);
                match model.get_mut(&key) {
                    None => prop_assert!(left.is_none()),
                    Some(n) => {
                        *n -= 1;
                        prop_assert_eq!(left.is_some(), *n == 0);
                        if *n == 0 { model.remove(&key); }
                    }
                }
            }
            prop_assert_eq!(p.count(), model.len());
            let snap: Value = serde_json::from_str(&p.snapshot()).unwrap();
            prop_assert_eq!(&snap["presence"]["count"], &json!(model.len()));
        }
    }
}
