//! [`ApiError`]: every way an HTTP API request fails, and the one mapping from those failures to
//! HTTP statuses and JSON error bodies.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::auth::RequestAuthError;
use crate::protocol::ChannelNameError;

/// An HTTP API failure; `Display` is the `error` text of the JSON body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such route.
    #[error("Not found")]
    NotFound,
    /// The app id in the path is not configured.
    #[error("No matching application for ID [{0}]")]
    UnknownApp(String),
    /// The route exists with another method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// The signature check failed.
    #[error("{0}")]
    Unauthorized(#[from] RequestAuthError),
    /// `auth_key` matches no app (un-prefixed routes resolve the app by it).
    #[error("Unknown auth_key")]
    UnknownKey,
    /// The body is over `max_request_size`.
    #[error("Payload too large: the request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// An event's data is over `max_event_bytes`.
    #[error("Payload too large: event data is {size} bytes, the limit is {limit}")]
    DataTooLarge {
        /// Bytes of data sent.
        size: usize,
        /// The app's limit.
        limit: usize,
    },
    /// The body could not be read.
    #[error("Could not read the request body")]
    BodyRead,
    /// The body is not JSON of the expected shape.
    #[error("Invalid JSON body: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// A required field is missing or has the wrong type.
    #[error("Missing or invalid field: {0}")]
    Field(&'static str),
    /// A channel name fails validation.
    #[error("Invalid channel name '{name}': {reason}")]
    InvalidChannel {
        /// The name sent.
        name: String,
        /// Why it was refused.
        reason: ChannelNameError,
    },
    /// More channels than `max_channels_per_trigger`.
    #[error("Too many channels: {0}, the limit is {1}")]
    TooManyChannels(usize, usize),
    /// More events than `max_batch_size`.
    #[error("Too many events in batch: {0}, the limit is {1}")]
    BatchTooLarge(usize, usize),
    /// Event name over `max_event_name_length`.
    #[error("Event name is longer than {0} characters")]
    EventNameTooLong(usize),
    /// Event names starting `pusher:` / `pusher_internal:` belong to the server.
    #[error("Event names starting with pusher: or pusher_internal: are reserved")]
    ReservedEventName,
    /// An encrypted channel among several channels.
    #[error("Encrypted channels must be triggered one channel at a time")]
    EncryptedMulti,
    /// `socket_id` not of the form `\d+\.\d+`.
    #[error("Invalid socket_id '{0}'")]
    InvalidSocketId(String),
    /// An `info` attribute that does not apply (e.g. `user_count` on a non-presence channel).
    #[error("The info attribute {0} is only available for presence channels")]
    PresenceOnlyInfo(&'static str),
    /// `/users` on a non-presence channel.
    #[error("Channel '{0}' is not a presence channel")]
    NotPresence(String),
}

impl ApiError {
    /// The HTTP status for this failure: the only such mapping in Herald.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::UnknownApp(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) | Self::UnknownKey => StatusCode::UNAUTHORIZED,
            Self::BodyTooLarge(_) | Self::DataTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead
            | Self::InvalidJson(_)
            | Self::Field(_)
            | Self::InvalidChannel { .. }
            | Self::TooManyChannels(..)
            | Self::BatchTooLarge(..)
            | Self::EventNameTooLong(_)
            | Self::ReservedEventName
            | Self::EncryptedMulti
            | Self::InvalidSocketId(_)
            | Self::PresenceOnlyInfo(_)
            | Self::NotPresence(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The response: the status and `{"error": "<message>"}`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        json_response(self.status(), body)
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
