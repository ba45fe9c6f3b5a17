//! [`SocketId`] and [`Outbox`]: the bounded queue of pre-serialised frames for one socket plus a
//! close request. It is the only handle anyone outside a socket's task holds to that socket, so
//! fan-out never awaits a socket: it pushes a shared frame or, when the queue is full, asks the
//! socket to close with 4100.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::protocol::outbound::Frame;
use crate::protocol::PusherError;

/// A connection's id, `"<a>.<b>"` on the wire. `a` is random, `b` a process-wide counter, so ids
/// are unique for the life of the process and unguessable enough to be useless to forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    a: u64,
    b: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl SocketId {
    /// A fresh, never reused id.
    pub fn generate() -> Self {
        Self {
            a: rand::random_range(1..=999_999_999),
            b: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Parses `^\d+\.\d+$` (the form every SDK validates); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('.')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 19 && p.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return None;
        }
        Some(Self {
            a: a.parse().ok()?,
            b: b.parse().ok()?,
        })
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.a, self.b)
    }
}

/// A cheap, cloneable handle to one socket's queue.
#[derive(Clone)]
pub struct Outbox(Arc<Shared>);

struct Shared {
    id: SocketId,
    capacity: usize,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Set once; the socket task sends the matching `pusher:error` (if any) and closes.
    close: Option<PusherError>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outbox({})", self.0.id)
    }
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames.
    pub fn new(id: SocketId, capacity: usize) -> Self {
        Self(Arc::new(Shared {
            id,
            capacity,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        }))
    }

    /// The socket this outbox feeds.
    pub fn id(&self) -> SocketId {
        self.0.id
    }

    /// Queues a frame without waiting. A full queue marks the socket for closing with 4100
    /// (slow consumer) and drops the frame; returns whether the frame was queued.
    pub fn try_send(&self, frame: Frame) -> bool {
        let mut st = self.0.state.lock();
        if st.close.is_some() {
            return false;
        }
        if st.frames.len() >= self.0.capacity {
            st.close = Some(PusherError::SlowConsumer);
            drop(st);
            self.0.wake.notify_one();
            return false;
        }
        st.frames.push_back(frame);
        drop(st);
        self.0.wake.notify_one();
        true
    }

    /// Asks the socket to send `pusher:error` for `reason` and close with its code. The first
    /// request wins; frames already queued are still written first.
    pub fn close(&self, reason: PusherError) {
        let mut st = self.0.state.lock();
        if st.close.is_none() {
            st.close = Some(reason);
        }
        drop(st);
        self.0.wake.notify_one();
    }

    /// Whether the queue overflowed (the socket is to be closed with 4100).
    pub fn overflowed(&self) -> bool {
        self.0.state.lock().close == Some(PusherError::SlowConsumer)
    }

    /// Waits until something was queued or a close was requested since the last drain.
    pub async fn ready(&self) {
        self.0.wake.notified().await
    }

    /// Moves every queued frame into `buf` (swapping buffers, so no allocation) and returns the
    /// close request, if any.
    pub fn drain(&self, buf: &mut VecDeque<Frame>) -> Option<PusherError> {
        let mut st = self.0.state.lock();
        std::mem::swap(&mut st.frames, buf);
        st.close.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_are_pusher_shaped_and_unique() {
        let a = SocketId::generate();
        let b = SocketId::generate();
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(SocketId::parse(&s), Some(a));
        for bad in ["", "1", "1.", ".1", "a.1", "1.2.3", "-1.2", "1.2 "] {
            assert_eq!(SocketId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn full_outbox_requests_4100_close() {
        let o = Outbox::new(SocketId::generate(), 2);
        assert!(o.try_send(Frame::from_static("a")));
        assert!(o.try_send(Frame::from_static("b")));
        assert!(!o.try_send(Frame::from_static("c")));
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Some(PusherError::SlowConsumer));
        assert_eq!(buf.len(), 2);
        assert!(
            !o.try_send(Frame::from_static("d")),
            "closed outboxes refuse frames"
        );
    }
}
