//! [`Coalescer`]: writes busy sockets' frames in batches. A socket that is sent frames at a
//! sustained rate stops taking them straight into the kernel; its frames queue, and the socket
//! joins this list once, stamped with the time. One window (`[server] batch_window_ms`) after
//! that, one task writes the socket's whole queue with one `writev`, straight into the socket:
//! at high rates a delivery then costs a share of one syscall instead of a syscall plus a
//! wake-up of the socket's task, for at most one window (and a timer tick) of added latency.
//! What a socket does not take (a full kernel buffer) goes back to its own task, which waits
//! for the socket as before.
//!
//! Each socket is due one window after *it* was listed, not when a shared batch is: sockets
//! written late in one pass are listed late for the next, so under a steady load the writes
//! spread over the window instead of arriving as one burst of every socket (which held a
//! worker thread for milliseconds at a time and delayed everything queued behind it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;

/// The sockets with frames waiting, in the order they were listed (so also in the order they
/// are due: the window is the same for all).
#[derive(Debug)]
pub struct Coalescer {
    due: Mutex<VecDeque<(Instant, Outbox)>>,
    wake: Notify,
    /// `[server] batch_window_ms`.
    window: Duration,
}

impl Coalescer {
    /// A coalescer writing each listed socket a `window` after it was listed; `None` for a zero
    /// window (no batching: a busy socket's task writes its frames as they come).
    pub fn new(window: Duration) -> Option<Arc<Self>> {
        (!window.is_zero()).then(|| {
            Arc::new(Self {
                due: Mutex::default(),
                wake: Notify::new(),
                window,
            })
        })
    }

    /// Lists `outbox`, due one window from now (the outbox lists itself once until written).
    pub(crate) fn defer(&self, outbox: Outbox) {
        let at = Instant::now() + self.window;
        let first = {
            let mut due = self.due.lock();
            due.push_back((at, outbox));
            due.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }

    /// Writes each listed socket when it is due, until `shutdown`; then hands what is left to
    /// the sockets' tasks.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut batch = Vec::new();
        loop {
            let next = self.due.lock().front().map(|(at, _)| *at);
            match next {
                None => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.wake.notified() => continue,
                },
                Some(at) => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(at) => {}
                },
            }
            // Everything due by now, taken in one go (the lock is not held while writing).
            let now = Instant::now();
            {
                let mut due = self.due.lock();
                while due.front().is_some_and(|(at, _)| *at <= now) {
                    batch.extend(due.pop_front().map(|(_, o)| o));
                }
            }
            for outbox in batch.drain(..) {
                outbox.flush_deferred();
            }
        }
        let left = std::mem::take(&mut *self.due.lock());
        for (_, outbox) in left {
            outbox.flush_deferred();
        }
    }
}
