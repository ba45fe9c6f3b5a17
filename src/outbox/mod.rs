//! [`SocketId`] and [`Outbox`]: the write side of one socket. A publisher writes a pre-encoded
//! frame straight into the socket (`try_write`) when the socket is idle: nothing queued, no
//! frame in the last [`BUSY_MS`], no backlog in the last [`BACKLOG_MS`]. Otherwise, or when the
//! kernel takes only part of it, the frame goes to a bounded queue that the socket's own task
//! writes out, everything queued in one `writev`. It is the only handle anyone outside a socket's
//! task holds to that socket, so fan-out never awaits a socket: it writes or queues a shared
//! frame or, when the queue is full, asks the socket to close with 4100.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::task::Poll;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::coalesce::Coalescer;
use crate::protocol::outbound::Frame;
use crate::protocol::PusherError;
pub use crate::socket_id::SocketId;

mod syscalls;
use syscalls::{advance, fill, now_ms, send_now, send_vectored_now};
pub use syscalls::{prefetch, Clock};

/// A plain TCP socket publishers may write into while it is idle, and the coalescer that
/// writes it while it is busy.
pub struct Direct {
    /// The socket, shared with its task.
    pub tcp: Arc<TcpStream>,
    /// The server's coalescer, if batching is on.
    pub coalescer: Option<Arc<Coalescer>>,
}

/// A cheap, cloneable handle to one socket's queue.
#[derive(Clone)]
pub struct Outbox(Arc<Shared>);

struct Shared {
    id: SocketId,
    capacity: usize,
    state: Mutex<State>,
    /// The frames the socket's task took from the queue and is writing, outside `state`'s lock
    /// (publishers are never held up by a write in progress). Only that task locks it.
    batch: Mutex<Batch>,
    wake: Notify,
    /// Writes this socket's frames, many per `writev`, while it is busy (plain TCP only).
    coalescer: Option<Arc<Coalescer>>,
}

/// Frames being written by the socket's task, in order; the front one may be partly written.
#[derive(Default)]
struct Batch {
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    written: usize,
}

#[derive(Default)]
struct State {
    /// Frames queued for the socket's task, in order; the front one may be partly written (by a
    /// publisher's direct write that the kernel took only part of).
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    written: usize,
    /// The socket itself, for publishers to write into while it is idle (plain TCP only; TLS
    /// and hyper-upgraded streams always go through the queue and the socket's task), with its
    /// descriptor kept here too: reading it through the `Arc` is a cache miss per delivery.
    direct: Option<(RawFd, Arc<TcpStream>)>,
    /// No more broadcast frames: the socket is closing.
    sealed: bool,
    /// The task holds a batch not yet completely written: nobody may write directly.
    writing: bool,
    /// Frames in that batch (counted against `capacity` until the batch is done).
    inflight: usize,
    /// When the last frame was handed over, in [`now_ms`] units.
    last_ms: u32,
    /// When a frame last joined a queue that already held frames (the task had not caught up:
    /// batching pays), in [`now_ms`] units.
    backlog_ms: u32,
    /// Set once; the socket task sends the matching `pusher:error` (if any) and closes.
    close: Option<PusherError>,
    /// Queued frames wait for the coalescer (the socket is on its list) rather than the task.
    deferred: bool,
    /// Start of the current [`RATE_MS`] interval, in [`now_ms`] units.
    rate_ms: u32,
    /// Frames offered in the current interval, and in the one before.
    rate_count: u16,
    rate_prev: u16,
}

/// Most frames handed to the kernel in one `writev`.
const MAX_SLICES: usize = 64;

/// A socket sent a frame less than this many milliseconds ago gets the next one queued rather
/// than written directly: above ~200 frames/s per socket its task then writes several frames
/// per `writev` instead of one `write()` per frame (see docs/performance.md for the figures);
/// at ordinary rates every frame is written directly.
const BUSY_MS: u32 = 5;

/// Frames per [`RATE_MS`] (in the current interval or the one before) from which a socket's
/// queued frames wait for the coalescer: 200 a second sustained, not two events that happened
/// to come close together (those are written at once, or by the socket's task).
const SUSTAINED: u16 = 10;

/// The interval a socket's frame rate is counted over, in milliseconds.
const RATE_MS: u32 = 50;

/// A socket whose task fell behind (a frame found others still queued) less than this many
/// milliseconds ago keeps queueing: on a saturated server, frames then leave in batches (one
/// `writev` each) instead of one `write()` per delivery on the publisher's thread. Once its
/// task keeps up again for this long, publishers write into it directly again.
const BACKLOG_MS: u32 = 50;

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outbox({})", self.0.id)
    }
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames, writing directly into `direct` (the
    /// socket) while it is idle.
    pub fn new(id: SocketId, capacity: usize, direct: Option<Direct>) -> Self {
        let (direct, coalescer) = match direct {
            Some(d) => (Some((d.tcp.as_raw_fd(), d.tcp)), d.coalescer),
            None => (None, None),
        };
        Self(Arc::new(Shared {
            id,
            capacity,
            coalescer,
            state: Mutex::new(State {
                direct,
                last_ms: now_ms().wrapping_sub(BUSY_MS),
                backlog_ms: now_ms().wrapping_sub(BACKLOG_MS),
                ..State::default()
            }),
            batch: Mutex::new(Batch::default()),
            wake: Notify::new(),
        }))
    }

    /// The socket this outbox feeds.
    pub fn id(&self) -> SocketId {
        self.0.id
    }

    /// Sends a frame without waiting: written straight into the socket when it is idle (the
    /// kernel takes it whole or the rest is queued, so frames stay whole and in order), else
    /// queued for the socket's task. A full queue marks the socket for closing with 4100
    /// (slow consumer) and drops the frame; returns whether the frame was taken.
    pub fn try_send(&self, frame: Frame) -> bool {
        self.offer_at(&frame, Clock::now())
    }

    /// [`Outbox::try_send`] for fan-out: a shared frame, cloned (a reference count) only when
    /// it has to be queued (a direct write needs only its bytes), at a time read once for the
    /// whole broadcast (a clock read per delivery was 2 % of the server's samples at 500,000
    /// deliveries a second).
    pub fn offer_at(&self, frame: &Frame, now: Clock) -> bool {
        crate::socket::trace::frame_out_lazy(&self.0.id, frame);
        let mut st = self.0.state.lock();
        if st.close.is_some() || st.sealed {
            return false;
        }
        // A clock read when a broadcast began can be older than the one of the last frame (a
        // broadcast that began later reached this socket first): time never goes back here.
        let now = if (now.0.wrapping_sub(st.last_ms) as i32) < 0 {
            st.last_ms
        } else {
            now.0
        };
        let busy =
            now.wrapping_sub(st.last_ms) < BUSY_MS || now.wrapping_sub(st.backlog_ms) < BACKLOG_MS;
        st.last_ms = now;
        let since = now.wrapping_sub(st.rate_ms);
        if since >= RATE_MS {
            st.rate_prev = if since < 2 * RATE_MS {
                st.rate_count
            } else {
                0
            };
            st.rate_ms = now;
            st.rate_count = 0;
        }
        st.rate_count = st.rate_count.saturating_add(1);
        if st.frames.is_empty() && !st.writing && !busy {
            if let Some(tcp) = &st.direct {
                match send_now(tcp, frame.wire()) {
                    Ok(n) if n == frame.wire().len() => return true,
                    Ok(n) => st.written = n,
                    // Full kernel buffer, or a failed socket: the task finds out when it writes.
                    Err(_) => {}
                }
                st.frames.push_back(frame.clone());
                drop(st);
                self.0.wake.notify_one();
                return true;
            }
        } else if st.frames.len() + st.inflight >= self.0.capacity {
            st.close = Some(PusherError::SlowConsumer);
            drop(st);
            self.0.wake.notify_one();
            return false;
        }
        if !st.frames.is_empty() || st.writing {
            // The task has not caught up: keep batching for a while.
            st.backlog_ms = now;
        }
        st.frames.push_back(frame.clone());
        // A busy socket's frames wait (a few milliseconds at most) for the coalescer, which
        // writes them many per `writev` with no wake-up of the socket's task per frame.
        // A burst that fills a `writev` before the window ends goes to the socket's task at once,
        // so batching never brings a socket that reads fine closer to its queue bound.
        let sustained = st.rate_prev.max(st.rate_count) >= SUSTAINED;
        if let (Some(c), Some(_), false, true) =
            (&self.0.coalescer, &st.direct, st.writing, sustained)
        {
            if !st.deferred {
                st.deferred = true;
                drop(st);
                c.defer(self.clone());
                return true;
            }
            if st.frames.len() < MAX_SLICES {
                return true;
            }
        }
        drop(st);
        self.0.wake.notify_one();
        true
    }

    /// Asks the CPU to start loading this outbox's state, so that [`Outbox::offer_at`] finds it
    /// in cache: fan-out calls it a few subscribers ahead. Each broadcast touches every
    /// subscriber's outbox once, and that first touch was a cache miss, the single largest
    /// user-space cost of a delivery (the lock's `cmpxchg` in `perf annotate`).
    #[inline]
    pub fn prefetch(&self) {
        syscalls::prefetch(&self.0.state);
    }

    /// Called by the coalescer: writes the deferred frames straight into the socket, as many
    /// per `writev` as fit. What the kernel does not take (a full buffer), or a socket its task
    /// is writing or closing, goes back to the task.
    pub(crate) fn flush_deferred(&self) {
        let mut st = self.0.state.lock();
        if !std::mem::take(&mut st.deferred) {
            return;
        }
        let st = &mut *st;
        if !st.writing && st.close.is_none() {
            if let Some(direct) = &st.direct {
                while !st.frames.is_empty() {
                    let mut slices: [IoSlice<'_>; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
                    let count = fill(&mut slices, &st.frames, st.written);
                    let wanted: usize = slices[..count].iter().map(|s| s.len()).sum();
                    match send_vectored_now(direct, &slices[..count]) {
                        Ok(n) => {
                            advance(&mut st.frames, &mut st.written, n);
                            if n < wanted {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if st.frames.is_empty() {
                    return;
                }
            }
        }
        self.0.wake.notify_one();
    }

    /// Queues bytes the socket's own task writes (hello, pings, pongs and the close frame), on
    /// the same ordered path, regardless of seal and capacity (the task bounds them). With
    /// `wake`, the task is woken to write them out if they had to queue; without, they wait for
    /// the task's own flush (which follows each of its writes) or for the next queued frame,
    /// so a peer that pings without reading does not stop the task's reads.
    pub(crate) fn push_own(&self, frame: Frame, wake: bool) {
        let mut st = self.0.state.lock();
        if st.frames.is_empty() && !st.writing {
            if let Some(tcp) = &st.direct {
                match send_now(tcp, frame.wire()) {
                    Ok(n) if n == frame.wire().len() => return,
                    Ok(n) => st.written = n,
                    Err(_) => {}
                }
            }
        }
        st.frames.push_back(frame);
        drop(st);
        if wake {
            self.0.wake.notify_one();
        }
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

    /// Refuses further broadcast frames and lets go of the socket handle (so the socket closes
    /// when its task ends, whoever still holds this outbox).
    pub(crate) fn seal(&self) {
        let mut st = self.0.state.lock();
        st.sealed = true;
        st.direct = None;
    }

    /// Drops queued frames (a slow consumer is closed without them), except a partly written
    /// one, which must be completed so the close frame after it is read as a frame.
    pub(crate) fn discard(&self) {
        let mut batch = self.0.batch.lock();
        let keep = usize::from(batch.written > 0);
        batch.frames.truncate(keep);
        let mut st = self.0.state.lock();
        let keep = usize::from(st.written > 0);
        st.frames.truncate(keep);
    }

    /// Whether the queue overflowed (the socket is to be closed with 4100).
    pub fn overflowed(&self) -> bool {
        self.0.state.lock().close == Some(PusherError::SlowConsumer)
    }

    /// The close request, if any.
    pub fn close_request(&self) -> Option<PusherError> {
        self.0.state.lock().close.clone()
    }

    /// Whether nothing is queued or being written by the socket's task.
    pub fn is_empty(&self) -> bool {
        let st = self.0.state.lock();
        st.frames.is_empty() && !st.writing
    }

    /// Waits until something was queued or a close was requested since the last wake-up.
    pub async fn ready(&self) {
        self.0.wake.notified().await
    }

    /// Writes queued frames with `write` until none is left or `write` returns `Pending` or an
    /// error. The task takes the whole queue as its batch (a swap under the lock, so publishers
    /// are not held up by the write) and hands it to `write` up to [`MAX_SLICES`] frames at a
    /// time as one vectored write, the front one minus what was written of it. While it holds a
    /// batch, publishers queue behind it (`writing`), so no direct write lands between two parts
    /// of a frame or overtakes a queued one.
    pub(crate) fn poll_write_queued(
        &self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        let mut batch = self.0.batch.lock();
        let b = &mut *batch;
        loop {
            if b.frames.is_empty() {
                let mut st = self.0.state.lock();
                st.inflight = 0;
                if st.frames.is_empty() {
                    st.writing = false;
                    return Poll::Ready(Ok(()));
                }
                // The emptied batch's buffer becomes the queue's: no allocation.
                std::mem::swap(&mut st.frames, &mut b.frames);
                b.written = std::mem::take(&mut st.written);
                st.inflight = b.frames.len();
                st.writing = true;
            }
            let mut slices: [IoSlice<'_>; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
            let count = fill(&mut slices, &b.frames, b.written);
            let n = match write(&slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                other => return other.map(|r| r.map(|_| ())),
            };
            advance(&mut b.frames, &mut b.written, n);
        }
    }

    /// Moves every queued frame into `buf` (swapping buffers, so no allocation) and returns the
    /// close request, if any. Used where no socket drains the outbox (unit tests).
    pub fn drain(&self, buf: &mut VecDeque<Frame>) -> Option<PusherError> {
        let mut st = self.0.state.lock();
        std::mem::swap(&mut st.frames, buf);
        st.written = 0;
        st.close.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_broadcast_clock_does_not_turn_time_back() {
        // Two broadcasts reach a socket out of the order their clocks were read in: the rate
        // count must go on, not restart as if 49 days had passed.
        let o = Outbox::new(SocketId::generate(), 64, None);
        let t = now_ms();
        assert!(o.offer_at(&Frame::from_static("a"), Clock(t.wrapping_add(20))));
        assert!(o.offer_at(&Frame::from_static("b"), Clock(t.wrapping_add(10))));
        let st = o.0.state.lock();
        assert_eq!(st.last_ms, t.wrapping_add(20));
        assert_eq!(st.rate_count, 2);
    }

    #[test]
    fn full_outbox_requests_4100_close() {
        let o = Outbox::new(SocketId::generate(), 2, None);
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
