//! Wire types of the Pusher protocol, with no I/O: inbound client messages, outbound frames,
//! channel names and kinds, and the one mapping from errors to Pusher codes.

pub mod channel;
pub mod close;
pub mod inbound;
pub mod outbound;
pub mod wsframe;

pub use channel::{Access, ChannelKind, ChannelNameError};
pub use close::{CloseCode, PusherError, ViolationCode};
pub use inbound::ClientMessage;
