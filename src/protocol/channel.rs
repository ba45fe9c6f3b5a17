//! Channel names: validation against the Pusher charset and length limit, and the kind a name
//! implies (public, private, encrypted, presence, server-to-user; cache or not).

/// Who may subscribe and how they prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No auth.
    Public,
    /// `private-`: HMAC over `socket_id:channel`.
    Private,
    /// `private-encrypted-`: auth as private; payloads are opaque and client events refused.
    Encrypted,
    /// `presence-`: HMAC over `socket_id:channel:channel_data`, plus member bookkeeping.
    Presence,
    /// `#server-to-user-{id}`: only the socket signed in as `{id}`.
    ServerToUser,
}

/// What a channel name implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelKind {
    /// The auth rule.
    pub access: Access,
    /// Cache channels replay their last event to new subscribers.
    pub cache: bool,
}

/// The reserved prefix of the channel that carries `sendToUser` events.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

impl ChannelKind {
    /// Classifies a name by its prefix (with the dash, unlike Reverb's looser matcher).
    pub fn of(name: &str) -> Self {
        let (access, cache) = if name.starts_with(SERVER_TO_USER_PREFIX) {
            (Access::ServerToUser, false)
        } else if name.starts_with("private-encrypted-cache-") {
            (Access::Encrypted, true)
        } else if name.starts_with("private-encrypted-") {
            (Access::Encrypted, false)
        } else if name.starts_with("private-cache-") {
            (Access::Private, true)
        } else if name.starts_with("private-") {
            (Access::Private, false)
        } else if name.starts_with("presence-cache-") {
            (Access::Presence, true)
        } else if name.starts_with("presence-") {
            (Access::Presence, false)
        } else {
            (Access::Public, name.starts_with("cache-"))
        };
        Self { access, cache }
    }

    /// Private, encrypted and presence channels need an auth signature.
    pub fn needs_auth(self) -> bool {
        matches!(
            self.access,
            Access::Private | Access::Encrypted | Access::Presence
        )
    }

    /// True for `presence-*`.
    pub fn is_presence(self) -> bool {
        self.access == Access::Presence
    }
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// Empty name.
    #[error("channel name is empty")]
    Empty,
    /// Longer than the app's `max_channel_name_length`.
    #[error("channel name is longer than {0} characters")]
    TooLong(usize),
    /// A character outside `[-a-zA-Z0-9_=@,.;]` (or a `#` other than the server-to-user prefix).
    #[error("channel name contains a character outside [-a-zA-Z0-9_=@,.;]")]
    BadCharacter,
}

/// Checks a channel name and returns its kind.
pub fn validate(name: &str, max_len: usize) -> Result<ChannelKind, ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > max_len {
        return Err(ChannelNameError::TooLong(max_len));
    }
    let body = match name.strip_prefix(SERVER_TO_USER_PREFIX) {
        Some("") => return Err(ChannelNameError::Empty),
        Some(user) => user,
        None => name,
    };
    if !body.bytes().all(is_channel_byte) {
        return Err(ChannelNameError::BadCharacter);
    }
    Ok(ChannelKind::of(name))
}

fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'@' | b',' | b'.' | b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix() {
        let k = |n| ChannelKind::of(n);
        assert_eq!(k("chat").access, Access::Public);
        assert!(k("cache-x").cache && k("cache-x").access == Access::Public);
        assert_eq!(k("private-x").access, Access::Private);
        assert!(k("private-cache-x").cache);
        assert_eq!(k("private-encrypted-x").access, Access::Encrypted);
        assert!(k("private-encrypted-cache-x").cache);
        assert_eq!(k("presence-x").access, Access::Presence);
        assert!(k("presence-cache-x").cache && k("presence-cache-x").is_presence());
        assert_eq!(k("#server-to-user-7").access, Access::ServerToUser);
        assert_eq!(k("privatefoo").access, Access::Public);
        assert_eq!(k("presence-encrypted-x").access, Access::Presence);
    }

    #[test]
    fn validation() {
        assert!(validate("-azAZ9_=@,.;", 200).is_ok());
        assert!(validate("private-App.Models.User.1", 200).is_ok());
        assert_eq!(validate("", 200), Err(ChannelNameError::Empty));
        assert_eq!(validate("a b", 200), Err(ChannelNameError::BadCharacter));
        assert_eq!(validate("#other", 200), Err(ChannelNameError::BadCharacter));
        assert_eq!(validate("ü", 200), Err(ChannelNameError::BadCharacter));
        assert_eq!(
            validate(&"a".repeat(201), 200),
            Err(ChannelNameError::TooLong(200))
        );
        assert!(validate(&"a".repeat(200), 200).is_ok());
        assert!(validate("#server-to-user-42", 200).is_ok());
        assert_eq!(
            validate("#server-to-user-", 200),
            Err(ChannelNameError::Empty)
        );
    }
}
