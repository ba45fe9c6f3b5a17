//! Pusher error and close codes. [`PusherError`] is every protocol-level failure a socket can
//! see; [`PusherError::code`] is the single, exhaustive mapping from those failures to codes.

/// The Pusher codes Herald sends, as `pusher:error` codes and (for the 40xx-42xx ones) close codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// 4001: unknown app key; pusher-js will not reconnect.
    AppNotFound = 4001,
    /// 4004: the app is over its connection quota; pusher-js will not reconnect.
    OverQuota = 4004,
    /// 4006: the `protocol` parameter is not a number.
    InvalidVersion = 4006,
    /// 4007: the protocol version is not supported.
    UnsupportedProtocol = 4007,
    /// 4009: unauthorized (bad origin, bad auth, terminated by the app).
    Unauthorized = 4009,
    /// 4100: over capacity or too slow; pusher-js reconnects after a back-off.
    OverCapacity = 4100,
    /// 4200: generic "reconnect now" (shutdown) and Reverb's "Invalid message format" error.
    Reconnect = 4200,
    /// 4201: the client did not answer a ping in time.
    PongTimeout = 4201,
    /// 4301: a client event, a subscription over a per-connection limit or a message over the
    /// rate limit was rejected. A close code only with `rate_limiting.terminate_on_limit`.
    ClientEventRejected = 4301,
    /// 4302: a sign-in's `watchlist` had more than 100 ids (only the first 100 are watched).
    WatchlistLimit = 4302,
}

impl CloseCode {
    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// Every protocol failure a WebSocket client can be told about. The `Display` text is the
/// `message` of the `pusher:error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PusherError {
    /// No app has the key in the URL.
    #[error("Application does not exist")]
    AppNotFound,
    /// The Origin header matched none of the app's `allowed_origins`.
    #[error("Origin not allowed")]
    OriginNotAllowed,
    /// The app's `max_connections` is reached on this node.
    #[error("Application is over connection quota")]
    OverQuota,
    /// The `protocol` query parameter is not an integer.
    #[error("Invalid version string format")]
    InvalidVersion,
    /// The `protocol` query parameter is outside 4..=7.
    #[error("Unsupported protocol version")]
    UnsupportedProtocol,
    /// The server-wide connection cap is reached.
    #[error("Over capacity")]
    OverCapacity,
    /// The socket's outbox overflowed: it reads slower than it is sent to.
    #[error("Client is too slow to read its messages")]
    SlowConsumer,
    /// Unparseable frame, wrong field types, unknown `pusher:` event.
    #[error("Invalid message format")]
    InvalidMessage,
    /// The channel name is empty, too long or has characters outside the Pusher charset.
    #[error("Invalid channel name")]
    InvalidChannel,
    /// Bad or missing channel auth signature.
    #[error("Connection is unauthorized")]
    Unauthorized,
    /// A presence channel is at `max_presence_members`.
    #[error("Presence channel member limit reached")]
    MemberLimit,
    /// A presence `user_info` over `max_presence_user_bytes`, or a user id over 128 characters.
    #[error("Presence member data is too large")]
    MemberTooLarge,
    /// A client event on a channel the sender is not subscribed to.
    #[error("The client is not a member of the specified channel.")]
    NotAMember,
    /// Client events are disabled for the app.
    #[error("The app does not have client messaging enabled.")]
    ClientEventsDisabled,
    /// A client event on a public or encrypted channel.
    #[error("Client events are only allowed on private and presence channels")]
    ClientEventChannel,
    /// More client events per second than `client_events_per_second`.
    #[error("Client event rejected due to rate limit")]
    RateLimited,
    /// A client event whose data exceeds `max_event_bytes`.
    #[error("Client event data is too large")]
    EventTooLarge,
    /// `pusher:signin` with a bad signature or bad `user_data`.
    #[error("Invalid user authentication")]
    SigninFailed,
    /// The app terminated this user's connections through the HTTP API.
    #[error("You got disconnected by the app.")]
    Terminated,
    /// The server is shutting down; reconnect at once.
    #[error("Server is shutting down")]
    ShuttingDown,
    /// No frame arrived in answer to a server ping.
    #[error("Pong reply not received in time")]
    PongTimeout,
    /// A subscribe beyond the app's `max_channels_per_connection`.
    #[error("Too many channels on this connection")]
    TooManyChannels,
    /// More messages than the app's `rate_limiting` allows (Reverb's text).
    #[error("Rate limit exceeded")]
    MessageRateLimited,
    /// A sign-in `watchlist` over 100 ids: the first 100 are kept and the sign-in succeeds.
    #[error("Watchlist limit exceeded: only the first 100 user ids are watched")]
    WatchlistLimit,
}

impl PusherError {
    /// The Pusher code for this failure: the only such mapping in Herald.
    pub fn code(&self) -> CloseCode {
        match self {
            Self::AppNotFound => CloseCode::AppNotFound,
            Self::OverQuota => CloseCode::OverQuota,
            Self::InvalidVersion => CloseCode::InvalidVersion,
            Self::UnsupportedProtocol => CloseCode::UnsupportedProtocol,
            Self::OriginNotAllowed
            | Self::Unauthorized
            | Self::NotAMember
            | Self::SigninFailed
            | Self::Terminated => CloseCode::Unauthorized,
            Self::OverCapacity | Self::SlowConsumer | Self::MemberLimit => CloseCode::OverCapacity,
            Self::InvalidMessage | Self::InvalidChannel | Self::ShuttingDown => {
                CloseCode::Reconnect
            }
            Self::PongTimeout => CloseCode::PongTimeout,
            Self::MemberTooLarge
            | Self::ClientEventsDisabled
            | Self::ClientEventChannel
            | Self::RateLimited
            | Self::EventTooLarge
            | Self::TooManyChannels
            | Self::MessageRateLimited => CloseCode::ClientEventRejected,
            Self::WatchlistLimit => CloseCode::WatchlistLimit,
        }
    }

    /// The `type` of the channel-scoped `pusher:subscription_error` this failure produces.
    pub fn subscription_error_type(&self) -> &'static str {
        match self.code() {
            CloseCode::Unauthorized => "AuthError",
            CloseCode::OverCapacity | CloseCode::ClientEventRejected => "LimitReached",
            _ => "InvalidChannel",
        }
    }

    /// The `status` of that `pusher:subscription_error` (401 auth, 400 bad name, else the code).
    pub fn subscription_error_status(&self) -> u16 {
        match self.code() {
            CloseCode::Unauthorized => 401,
            CloseCode::Reconnect => 400,
            other => other.as_u16(),
        }
    }
}

/// RFC 6455 close codes for a peer that broke the WebSocket protocol itself (as opposed to the
/// Pusher protocol above). Each is sent as a close frame before the TCP connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ViolationCode {
    /// 1002: a framing error (unmasked frame, reserved bits, unknown opcode, fragmented or
    /// oversized control frame, bad continuation).
    ProtocolError = 1002,
    /// 1007: a text message that is not valid UTF-8.
    InvalidPayload = 1007,
    /// 1009: a message or frame over `max_message_size`.
    TooBig = 1009,
}

impl ViolationCode {
    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The reason sent in the close frame (1009's is Reverb's).
    pub fn reason(self) -> &'static str {
        match self {
            Self::ProtocolError => "Protocol error",
            Self::InvalidPayload => "Invalid UTF-8 in text message",
            Self::TooBig => "Maximum message size exceeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_protocol_reference() {
        assert_eq!(PusherError::AppNotFound.code().as_u16(), 4001);
        assert_eq!(PusherError::OriginNotAllowed.code().as_u16(), 4009);
        assert_eq!(PusherError::RateLimited.code().as_u16(), 4301);
        assert_eq!(PusherError::PongTimeout.code().as_u16(), 4201);
        assert_eq!(PusherError::ShuttingDown.code().as_u16(), 4200);
        assert_eq!(PusherError::SlowConsumer.code().as_u16(), 4100);
        assert_eq!(PusherError::TooManyChannels.code().as_u16(), 4301);
        assert_eq!(PusherError::MessageRateLimited.code().as_u16(), 4301);
        assert_eq!(PusherError::WatchlistLimit.code().as_u16(), 4302);
        assert_eq!(
            PusherError::TooManyChannels.subscription_error_type(),
            "LimitReached"
        );
        assert_eq!(ViolationCode::ProtocolError.as_u16(), 1002);
        assert_eq!(ViolationCode::InvalidPayload.as_u16(), 1007);
        assert_eq!(
            PusherError::Unauthorized.subscription_error_type(),
            "AuthError"
        );
        assert_eq!(PusherError::Unauthorized.subscription_error_status(), 401);
        assert_eq!(PusherError::InvalidChannel.subscription_error_status(), 400);
        assert_eq!(
            PusherError::MemberLimit.subscription_error_type(),
            "LimitReached"
        );
    }
}
