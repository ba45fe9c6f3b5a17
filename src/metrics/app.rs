//! [`AppMetrics`]: one app's counters and gauges, with the `app` label applied once at
//! start-up. Every method is one or two relaxed atomic adds.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::{AppCode, AppFamilies, AppKind, AppLabel};
use crate::protocol::{Access, ChannelKind};

/// What a message is: an event triggered over the HTTP API, a client event, or any other
/// protocol frame (subscribe, ping, errors, subscription_succeeded, member events...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// An HTTP API event (`/events`, `/batch_events`).
    ApiEvent = 0,
    /// A `client-*` event.
    ClientEvent = 1,
    /// Every other frame.
    Protocol = 2,
}

const MESSAGE_KINDS: [&str; 3] = ["api_event", "client_event", "protocol"];

/// Which signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A private/presence/encrypted subscription's `auth`.
    ChannelAuth = 0,
    /// A `pusher:signin`.
    Signin = 1,
    /// An HTTP API request signature (auth_key, timestamp, body_md5, HMAC).
    ApiSignature = 2,
}

const AUTH_KINDS: [&str; 3] = ["channel_auth", "signin", "api_signature"];

/// Which rate limit refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// `client_events_per_second`.
    ClientEvents = 0,
    /// `rate_limiting` (messages of any kind).
    Messages = 1,
}

const RATE_KINDS: [&str; 2] = ["client_events", "messages"];

/// How an admitted connection ended, as the `code` label of `herald_connections_closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseLabel {
    /// Herald closed it with this code.
    Code(u16),
    /// The client sent a close frame.
    Client,
    /// The transport failed (reset, write stalled).
    Gone,
}

/// The close codes an admitted connection can get from Herald, then `client`, `gone`, `other`.
const CLOSE_CODES: [(u16, &str); 9] = [
    (4009, "4009"),
    (4100, "4100"),
    (4200, "4200"),
    (4201, "4201"),
    (4301, "4301"),
    (1002, "1002"),
    (1007, "1007"),
    (1009, "1009"),
    (0, "other"),
];

/// Channel kinds, by name prefix: index `access * 2 + cache`.
pub const CHANNEL_KINDS: [&str; 10] = [
    "public",
    "cache",
    "private",
    "private-cache",
    "private-encrypted",
    "private-encrypted-cache",
    "presence",
    "presence-cache",
    "server-to-user",
    "server-to-user-cache",
];

fn kind_index(kind: ChannelKind) -> usize {
    let access = match kind.access {
        Access::Public => 0,
        Access::Private => 1,
        Access::Encrypted => 2,
        Access::Presence => 3,
        Access::ServerToUser => 4,
    };
    access * 2 + usize::from(kind.cache)
}

/// One app's metrics. Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct AppMetrics(Arc<Handles>);

#[derive(Debug, Default)]
struct Handles {
    connections: Gauge,
    opened: Counter,
    closed: [Counter; CLOSE_CODES.len() + 2],
    slow_consumers: Counter,
    subscriptions: [Gauge; CHANNEL_KINDS.len()],
    channels: [Gauge; CHANNEL_KINDS.len()],
    members: Gauge,
    received: [Counter; 3],
    received_bytes: [Counter; 3],
    sent: [Counter; 3],
    sent_bytes: [Counter; 3],
    dropped: Counter,
    auth_failures: [Counter; 3],
    rate_limited: [Counter; 2],
}

impl AppMetrics {
    pub(super) fn resolve(f: &AppFamilies, id: &str) -> Self {
        let app = || AppLabel { app: id.to_owned() };
        let kind = |kind: &'static str| AppKind {
            app: id.to_owned(),
            kind,
        };
        let code = |code: &'static str| AppCode {
            app: id.to_owned(),
            code,
        };
        let codes: Vec<&'static str> = CLOSE_CODES
            .iter()
            .map(|(_, c)| *c)
            .chain(["client", "gone"])
            .collect();
        Self(Arc::new(Handles {
            connections: f.connections.get_or_create_owned(&app()),
            opened: f.opened.get_or_create_owned(&app()),
            closed: std::array::from_fn(|i| f.closed.get_or_create_owned(&code(codes[i]))),
            slow_consumers: f.slow_consumers.get_or_create_owned(&app()),
            subscriptions: std::array::from_fn(|i| {
                f.subscriptions.get_or_create_owned(&kind(CHANNEL_KINDS[i]))
            }),
            channels: std::array::from_fn(|i| {
                f.channels.get_or_create_owned(&kind(CHANNEL_KINDS[i]))
            }),
            members: f.members.get_or_create_owned(&app()),
            received: std::array::from_fn(|i| {
                f.received.get_or_create_owned(&kind(MESSAGE_KINDS[i]))
            }),
            received_bytes: std::array::from_fn(|i| {
                f.received_bytes
                    .get_or_create_owned(&kind(MESSAGE_KINDS[i]))
            }),
            sent: std::array::from_fn(|i| f.sent.get_or_create_owned(&kind(MESSAGE_KINDS[i]))),
            sent_bytes: std::array::from_fn(|i| {
                f.sent_bytes.get_or_create_owned(&kind(MESSAGE_KINDS[i]))
            }),
            dropped: f.dropped.get_or_create_owned(&app()),
            auth_failures: std::array::from_fn(|i| {
                f.auth_failures.get_or_create_owned(&kind(AUTH_KINDS[i]))
            }),
            rate_limited: std::array::from_fn(|i| {
                f.rate_limited.get_or_create_owned(&kind(RATE_KINDS[i]))
            }),
        }))
    }

    /// A connection was admitted.
    pub fn connection_opened(&self) {
        self.0.opened.inc();
        self.0.connections.inc();
    }

    /// An admitted connection ended.
    pub fn connection_closed(&self, how: CloseLabel) {
        let i = match how {
            CloseLabel::Code(code) => CLOSE_CODES
                .iter()
                .position(|(c, _)| *c == code)
                .unwrap_or(CLOSE_CODES.len() - 1),
            CloseLabel::Client => CLOSE_CODES.len(),
            CloseLabel::Gone => CLOSE_CODES.len() + 1,
        };
        self.0.closed[i].inc();
        if how == CloseLabel::Code(4100) {
            self.0.slow_consumers.inc();
        }
        self.0.connections.dec();
    }

    /// A socket subscribed (`occupied`: the channel's first subscriber on this node).
    pub fn subscribed(&self, kind: ChannelKind, occupied: bool) {
        let i = kind_index(kind);
        self.0.subscriptions[i].inc();
        if occupied {
            self.0.channels[i].inc();
        }
    }

    /// A socket unsubscribed (`vacated`: the channel's last subscriber on this node).
    pub fn unsubscribed(&self, kind: ChannelKind, vacated: bool) {
        let i = kind_index(kind);
        self.0.subscriptions[i].dec();
        if vacated {
            self.0.channels[i].dec();
        }
    }

    /// A presence member (a user in a channel) was added (`+1`) or removed (`-1`) on this node.
    pub fn members(&self, delta: i64) {
        self.0.members.inc_by(delta);
    }

    /// A message of `bytes` was received.
    pub fn received(&self, kind: MessageKind, bytes: usize) {
        self.0.received[kind as usize].inc();
        self.0.received_bytes[kind as usize].inc_by(bytes as u64);
    }

    /// `n` frames of `bytes` each were queued to sockets (one broadcast, or one reply).
    #[inline]
    pub fn sent(&self, kind: MessageKind, n: usize, bytes: usize) {
        if n > 0 {
            self.0.sent[kind as usize].inc_by(n as u64);
            self.0.sent_bytes[kind as usize].inc_by((n * bytes) as u64);
        }
    }

    /// `n` broadcast deliveries were dropped (full outboxes).
    #[inline]
    pub fn dropped(&self, n: usize) {
        if n > 0 {
            self.0.dropped.inc_by(n as u64);
        }
    }

    /// A signature check failed.
    pub fn auth_failed(&self, kind: AuthFailure) {
        self.0.auth_failures[kind as usize].inc();
    }

    /// A rate limit refused a message.
    pub fn rate_limited(&self, kind: RateLimit) {
        self.0.rate_limited[kind as usize].inc();
    }
}
