//! [`Coalescer`]: writes busy sockets' frames in batches. A socket that is sent frames faster
//! than one per [`crate::outbox`]'s busy interval stops taking them straight into the kernel;
//! its frames queue, and the socket joins this list once. Every [`WINDOW`], one task writes each
//! listed socket's queue with one `writev`, straight into the socket: at high rates a delivery
//! then costs a share of one syscall instead of a syscall plus a wake-up of the socket's task,
//! for at most [`WINDOW`] of added latency. What a socket does not take (a full kernel buffer)
//! goes back to its own task, which waits for the socket as before.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;

/// How long a busy socket's frames wait to be written together.
pub const WINDOW: Duration = Duration::from_millis(4);

/// The sockets with frames waiting for the next batch.
#[derive(Debug, Default)]
pub struct Coalescer {
    due: Mutex<Vec<Outbox>>,
    wake: Notify,
}

impl Coalescer {
    /// Lists `outbox` for the next batch (the outbox lists itself once until written).
    pub(crate) fn defer(&self, outbox: Outbox) {
        let first = {
            let mut due = self.due.lock();
            due.push(outbox);
            due.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }

    /// Writes the listed sockets every [`WINDOW`] while any are listed, until `shutdown`; then
    /// hands what is left to the sockets' tasks.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            tokio::time::sleep(WINDOW).await;
            std::mem::swap(&mut *self.due.lock(), &mut batch);
            for outbox in batch.drain(..) {
                outbox.flush_deferred();
            }
        }
        let left = std::mem::take(&mut *self.due.lock());
        for outbox in left {
            outbox.flush_deferred();
        }
    }
}
