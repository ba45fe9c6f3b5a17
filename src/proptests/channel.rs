//! `protocol::channel::validate`: never panics; every name built from the allowed charset is
//! accepted with the kind its prefix implies; a character outside it, or a name over the length
//! limit, is refused.

use proptest::prelude::*;

use super::config;
use crate::protocol::channel::{validate, ChannelKind, ChannelNameError};
use crate::protocol::Access;

/// Every prefix with the kind it implies.
const PREFIXES: &[(&str, Access, bool)] = &[
    ("", Access::Public, false),
    ("cache-", Access::Public, true),
    ("private-", Access::Private, false),
    ("private-cache-", Access::Private, true),
    ("private-encrypted-", Access::Encrypted, false),
    ("private-encrypted-cache-", Access::Encrypted, true),
    ("presence-", Access::Presence, false),
    ("presence-cache-", Access::Presence, true),
    ("#server-to-user-", Access::ServerToUser, false),
];

/// A name body from the allowed charset `[-a-zA-Z0-9_=@,.;]`. It starts with an upper-case
/// letter, a digit or `_`, so it never extends the prefix into a longer one (`private-` +
/// `cache-x`).
fn body() -> impl Strategy<Value = String> {
    "[A-Z0-9_][-a-zA-Z0-9_=@,.;]{0,150}"
}

/// A character outside the charset (`#` included: it is only allowed in the reserved prefix).
fn bad_char() -> impl Strategy<Value = char> {
    any::<char>().prop_filter("outside the charset", |c| {
        !(c.is_ascii_alphanumeric() || "-_=@,.;".contains(*c))
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics(name in any::<String>(), max in 0usize..300) {
        if let Ok(kind) = validate(&name, max) {
            prop_assert!(!name.is_empty() && name.len() <= max);
            prop_assert_eq!(kind, ChannelKind::of(&name));
        }
    }

    #[test]
    fn valid_names_are_accepted_with_their_kind(
        prefix in prop::sample::select(PREFIXES),
        body in body(),
    ) {
        let (prefix, access, cache) = prefix;
        let name = format!("{prefix}{body}");
        let kind = validate(&name, name.len()).unwrap();
        prop_assert_eq!(kind, ChannelKind { access, cache });
        prop_assert_eq!(kind.needs_auth(), matches!(access, Access::Private | Access::Encrypted | Access::Presence));
        prop_assert_eq!(kind.is_presence(), access == Access::Presence);
    }

    #[test]
    fn too_long_names_are_refused(prefix in prop::sample::select(PREFIXES), body in body()) {
        let name = format!("{}{body}", prefix.0);
        prop_assert_eq!(
            validate(&name, name.len() - 1),
            Err(ChannelNameError::TooLong(name.len() - 1))
        );
    }

    #[test]
    fn a_character_outside_the_charset_is_refused(
        prefix in prop::sample::select(PREFIXES),
        body in body(),
        bad in bad_char(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut body = body;
        let mut pos = at.index(body.len() + 1);
        while !body.is_char_boundary(pos) { pos -= 1; }
        body.insert(pos, bad);
        let name = format!("{}{body}", prefix.0);
        prop_assert_eq!(validate(&name, 1000), Err(ChannelNameError::BadCharacter));
    }

    #[test]
    fn the_empty_user_of_server_to_user_is_refused(max in 16usize..300) {
        prop_assert_eq!(validate("#server-to-user-", max), Err(ChannelNameError::Empty));
        prop_assert_eq!(validate("", max), Err(ChannelNameError::Empty));
    }
}
