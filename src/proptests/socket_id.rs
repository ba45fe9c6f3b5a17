//! `SocketId::parse` / `Display`: never panics; accepts exactly `^\d{1,19}\.\d{1,19}$`;
//! every displayed id parses back to itself.

use proptest::prelude::*;

use super::config;
use crate::outbox::SocketId;

fn well_formed(s: &str) -> bool {
    let part = |p: &str| !p.is_empty() && p.len() <= 19 && p.bytes().all(|b| b.is_ascii_digit());
    s.split_once('.').is_some_and(|(a, b)| part(a) && part(b))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_and_accepts_exactly_the_wire_form(
        s in prop_oneof![any::<String>(), "[0-9.]{0,45}", "[0-9]{1,20}\\.[0-9]{1,20}"],
    ) {
        let parsed = SocketId::parse(&s);
        prop_assert_eq!(parsed.is_some(), well_formed(&s));
        if let Some(id) = parsed {
            prop_assert_eq!(SocketId::parse(&id.to_string()), Some(id));
        }
    }

    #[test]
    fn display_round_trips(a in 0u64..10_000_000_000_000_000_000, b in 0u64..10_000_000_000_000_000_000) {
        let text = format!("{a}.{b}");
        let id = SocketId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text);
    }

    #[test]
    fn generated_ids_round_trip(_n in 0..4u8) {
        let id = SocketId::generate();
        prop_assert_eq!(SocketId::parse(&id.to_string()), Some(id));
        prop_assert!(well_formed(&id.to_string()));
    }
}
