//! The live debug console's tap (issue 11): what the adapter and the socket/webhook seams
//! report while a console viewer is connected. Costs one relaxed atomic load per seam when no
//! viewer is connected (events are built lazily, only after that check); while viewers are
//! connected, events go through a small bounded `tokio::sync::broadcast` ring, so a slow
//! viewer loses the oldest events (counted in [`Tap::dropped`]) and delivery never waits.
//! The tap is per node: it sees this node's sockets and the events published through it.

pub mod metrics;
pub mod session;
pub mod throttle;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// How many events a viewer may fall behind before it loses the oldest ones.
pub const DEFAULT_CAPACITY: usize = 256;

/// One thing the console shows. Serialised once per event (an `Arc` is shared by viewers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// The field names are the JSON keys the page reads; each variant says what it reports.
#[allow(missing_docs)]
pub enum ConsoleEvent {
    /// A WebSocket connection was established.
    Connected {
        app: String,
        socket_id: String,
        origin: Option<String>,
    },
    /// A WebSocket connection ended.
    Disconnected {
        app: String,
        socket_id: String,
        code: Option<u16>,
    },
    /// A socket subscribed to a channel (`member_added` for a presence user's first socket).
    Subscribed {
        app: String,
        channel: String,
        socket_id: String,
        member_added: bool,
    },
    /// A socket left a channel (`user` when a presence member was removed).
    Unsubscribed {
        app: String,
        channel: String,
        socket_id: String,
        user: Option<String>,
    },
    /// An event triggered through the HTTP API (or the console's event creator).
    ApiEvent {
        app: String,
        channel: String,
        event: String,
        size: usize,
        except: Option<String>,
    },
    /// A client event relayed from one socket to the others on a channel.
    ClientEvent {
        app: String,
        channel: String,
        event: String,
        socket_id: String,
    },
    /// A `pusher:error` sent to a client.
    Error {
        app: String,
        socket_id: String,
        code: Option<u16>,
        message: String,
    },
    /// A webhook delivery finished (`ok` false when it failed for good).
    Webhook {
        app: String,
        events: usize,
        ok: bool,
    },
    /// This viewer fell behind and lost `events` events (of every app: the ring is shared).
    Dropped { app: String, events: u64 },
}

impl ConsoleEvent {
    /// The app the event belongs to (viewers only see their own app's events).
    pub fn app(&self) -> &str {
        match self {
            Self::Connected { app, .. }
            | Self::Disconnected { app, .. }
            | Self::Subscribed { app, .. }
            | Self::Unsubscribed { app, .. }
            | Self::ApiEvent { app, .. }
            | Self::ClientEvent { app, .. }
            | Self::Error { app, .. }
            | Self::Webhook { app, .. }
            | Self::Dropped { app, .. } => app,
        }
    }

    /// The channel, for events that have one (the console's channel filter).
    pub fn channel(&self) -> Option<&str> {
        match self {
            Self::Subscribed { channel, .. }
            | Self::Unsubscribed { channel, .. }
            | Self::ApiEvent { channel, .. }
            | Self::ClientEvent { channel, .. } => Some(channel),
            _ => None,
        }
    }
}

/// The shared tap: built once when `[console] enabled`, held by the adapter.
#[derive(Debug)]
pub struct Tap {
    sender: broadcast::Sender<Arc<ConsoleEvent>>,
    viewers: AtomicUsize,
    dropped: AtomicU64,
}

impl Tap {
    /// A tap whose viewers may fall `capacity` events behind.
    pub fn new(capacity: usize) -> Arc<Self> {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Arc::new(Self {
            sender,
            viewers: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Reports an event; `build` runs only when a viewer is connected, so a seam costs one
    /// atomic load when nobody watches.
    #[inline]
    pub fn emit(&self, build: impl FnOnce() -> ConsoleEvent) {
        if self.viewers.load(Ordering::Relaxed) == 0 {
            return;
        }
        // An error only means the last viewer left meanwhile: nothing to deliver.
        let _ = self.sender.send(Arc::new(build()));
    }

    /// Whether some viewer is connected (for seams that want to skip more work than `emit`).
    pub fn watched(&self) -> bool {
        self.viewers.load(Ordering::Relaxed) > 0
    }

    /// A new viewer of `app`'s events; the tap is live while it exists.
    pub fn watch(self: &Arc<Self>, app: &str) -> Viewer {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        Viewer {
            tap: self.clone(),
            app: app.to_owned(),
            receiver: self.sender.subscribe(),
        }
    }

    /// Connected viewers.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Events lost by lagging viewers since start-up (summed over viewers).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One console viewer's stream of its app's events.
#[derive(Debug)]
pub struct Viewer {
    tap: Arc<Tap>,
    app: String,
    receiver: broadcast::Receiver<Arc<ConsoleEvent>>,
}

impl Viewer {
    /// The next event of this viewer's app; `None` when the tap is gone. Events lost because
    /// the viewer lagged are counted and logged, and the viewer is told how many
    /// ([`ConsoleEvent::Dropped`]), so the page can show it.
    pub async fn next(&mut self) -> Option<Arc<ConsoleEvent>> {
        loop {
            match self.receiver.recv().await {
                Ok(e) if e.app() == self.app => return Some(e),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.tap.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::debug!(app = %self.app, lost = n, "console viewer lagged; events dropped");
                    return Some(Arc::new(ConsoleEvent::Dropped {
                        app: self.app.clone(),
                        events: n,
                    }));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.tap.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
