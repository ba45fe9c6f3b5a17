//! The outbox's system calls and queue bookkeeping: one `send()` or `sendmsg()` straight into a
//! shared socket (bypassing tokio's readiness, see [`send_now`]), the `writev` slices of a queue
//! and what a partial write leaves of it; and the two cheap helpers of the delivery loop, the
//! millisecond [`Clock`] and a cache prefetch.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::protocol::outbound::Frame;

/// One `send()` of `buf` on a socket publishers share, straight to the kernel: tokio's
/// `try_write` would first consult (and on `WouldBlock` clear) the socket's readiness, which
/// costs more than the rest of a delivery's user-space work. Bypassing it is safe because a
/// frame that does not fit goes to the queue, and the socket's task writes the queue through
/// tokio, whose write then sees `WouldBlock` itself and waits for the next writable edge.
pub(super) fn send_now(direct: &(RawFd, Arc<TcpStream>), buf: &[u8]) -> std::io::Result<usize> {
    socket2::SockRef::from(&borrowed(direct)).send(buf)
}

/// One `sendmsg()` of `bufs`, like [`send_now`].
pub(super) fn send_vectored_now(
    direct: &(RawFd, Arc<TcpStream>),
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    socket2::SockRef::from(&borrowed(direct)).send_vectored(bufs)
}

/// The socket's descriptor, kept beside its `Arc` (reading it through the `Arc` is a cache miss
/// per delivery), borrowed for as long as the pair is.
fn borrowed(direct: &(RawFd, Arc<TcpStream>)) -> BorrowedFd<'_> {
    // SAFETY: the descriptor belongs to the `TcpStream` held beside it, which stays open at
    // least as long as this borrow of both.
    #[allow(unsafe_code)]
    unsafe {
        BorrowedFd::borrow_raw(direct.0)
    }
}

/// Points `slices` at the first frames of `frames` (the front one minus its `written` bytes);
/// returns how many.
pub(super) fn fill<'a>(
    slices: &mut [IoSlice<'a>],
    frames: &'a VecDeque<Frame>,
    written: usize,
) -> usize {
    let count = frames.len().min(slices.len());
    for (i, f) in frames.iter().take(count).enumerate() {
        let skip = if i == 0 { written } else { 0 };
        slices[i] = IoSlice::new(&f.wire()[skip..]);
    }
    count
}

/// Drops from `frames` the `n` bytes just written, the front one partly (`written`).
pub(super) fn advance(frames: &mut VecDeque<Frame>, written: &mut usize, mut n: usize) {
    while let Some(front) = frames.front() {
        let left = front.wire().len() - *written;
        if n < left {
            *written += n;
            break;
        }
        n -= left;
        *written = 0;
        frames.pop_front();
    }
}

/// A reading of the outbox's millisecond clock, taken once per broadcast
/// ([`super::Outbox::offer_at`]).
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub(super) u32);

impl Clock {
    /// The current time.
    pub fn now() -> Clock {
        Clock(now_ms())
    }
}

/// Milliseconds since the first call (wrapping): a cheap clock for the busy, backlog and rate
/// rules.
pub(super) fn now_ms() -> u32 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u32
}

/// Asks the CPU to start loading `value`'s cache line (a no-op off x86_64).
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p: *const T = value;
        // SAFETY: a prefetch is only a hint: it cannot fault and reads nothing the program
        // sees, whatever the address (this one is valid anyway: it comes from a reference).
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
