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
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use parking_lot::Mutex;
use tokio::net::TcpStream;
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
    /// The frames the socket's task took from the queue and is writing, outside `state`'s lock
    /// (publishers are never held up by a write in progress). Only that task locks it.
    batch: Mutex<Batch>,
    wake: Notify,
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
}

/// Most frames handed to the kernel in one `writev`.
const MAX_SLICES: usize = 64;

/// A socket sent a frame less than this many milliseconds ago gets the next one queued rather
/// than written directly: above ~200 frames/s per socket its task then writes several frames
/// per `writev` instead of one `write()` per frame (see docs/performance.md for the figures);
/// at ordinary rates every frame is written directly.
const BUSY_MS: u32 = 5;

/// A socket whose task fell behind (a frame found others still queued) less than this many
/// milliseconds ago keeps queueing: on a saturated server, frames then leave in batches (one
/// `writev` each) instead of one `write()` per delivery on the publisher's thread. Once its
/// task keeps up again for this long, publishers write into it directly again.
const BACKLOG_MS: u32 = 50;

/// Milliseconds since the first call (wrapping): a cheap clock for [`BUSY_MS`] and
/// [`BACKLOG_MS`].
/// One `send()` of `buf` on a socket publishers share, straight to the kernel: tokio's
/// `try_write` would first consult (and on `WouldBlock` clear) the socket's readiness, which
/// costs more than the rest of a delivery's user-space work. Bypassing it is safe because a
/// frame that does not fit goes to the queue, and the socket's task writes the queue through
/// tokio, whose write then sees `WouldBlock` itself and waits for the next writable edge.
fn send_now(direct: &(RawFd, Arc<TcpStream>), buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: the descriptor belongs to the `TcpStream` held beside it, which stays open at
    // least as long as this borrow (both live in the same locked `State`).
    #[allow(unsafe_code)]
    let fd = unsafe { BorrowedFd::borrow_raw(direct.0) };
    socket2::SockRef::from(&fd).send(buf)
}

fn now_ms() -> u32 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u32
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outbox({})", self.0.id)
    }
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames, writing directly into `direct` (the
    /// socket) while it is idle.
    pub fn new(id: SocketId, capacity: usize, direct: Option<Arc<TcpStream>>) -> Self {
        Self(Arc::new(Shared {
            id,
            capacity,
            state: Mutex::new(State {
                direct: direct.map(|tcp| (tcp.as_raw_fd(), tcp)),
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
        self.offer(&frame)
    }

    /// [`Outbox::try_send`] of a shared frame: cloned (a reference count) only when it has to
    /// be queued; a direct write needs only its bytes.
    pub fn offer(&self, frame: &Frame) -> bool {
        crate::socket::trace::frame_out_lazy(&self.0.id, frame);
        let mut st = self.0.state.lock();
        if st.close.is_some() || st.sealed {
            return false;
        }
        let now = now_ms();
        let busy =
            now.wrapping_sub(st.last_ms) < BUSY_MS || now.wrapping_sub(st.backlog_ms) < BACKLOG_MS;
        st.last_ms = now;
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
        drop(st);
        self.0.wake.notify_one();
        true
    }

    /// Queues bytes the socket's own task writes (hello, pings, and tungstenite's pongs and
    /// close), on the same ordered path, regardless of seal and capacity (the task bounds them).
    /// With `wake`, the task is woken to write them out if they had to queue; without, they wait
    /// for the task's next flush (tungstenite's writes are always followed by one) or for the
    /// next queued frame, so a peer that pings without reading does not stop the task's reads.
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
            let count = b.frames.len().min(MAX_SLICES);
            for (i, f) in b.frames.iter().take(count).enumerate() {
                let skip = if i == 0 { b.written } else { 0 };
                slices[i] = IoSlice::new(&f.wire()[skip..]);
            }
            let mut n = match write(&slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                other => return other.map(|r| r.map(|_| ())),
            };
            while let Some(front) = b.frames.front() {
                let left = front.wire().len() - b.written;
                if n < left {
                    b.written += n;
                    break;
                }
                n -= left;
                b.written = 0;
                b.frames.pop_front();
            }
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
