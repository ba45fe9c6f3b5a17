//! A connection's byte stream. [`Wire`] is read by the frame reader (`frames.rs`) and sends the
//! connection's own writes (pings, the closing `pusher:error` and close frame) through the
//! socket's [`Outbox`], the one ordered path that publishers also write into, so they never
//! interleave with broadcast frames. [`Transport`] says whether publishers may write straight
//! into the socket: plain TCP ([`SharedTcp`]) can, any other stream (a hyper-upgraded
//! connection, TLS through [`Rewind`]) cannot and is written only by its task, from the
//! outbox's queue ([`IntoTransport`] picks which when a connection is accepted).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Rewind;
use crate::outbox::Outbox;
use crate::protocol::outbound::Frame;

/// A stream a connection runs on.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// The socket publishers may `try_write` into, when the stream is plain TCP.
    fn direct(&self) -> Option<Arc<TcpStream>> {
        None
    }
}

impl Transport for TokioIo<Upgraded> {}

/// TLS (any stream replayed through [`Rewind`]): encrypted, so only its task writes it.
impl<S: AsyncRead + AsyncWrite + Unpin> Transport for Rewind<S> {}

/// A stream accepted on the listener, as the [`Transport`] its connection runs on once the
/// handshake is done.
pub(crate) trait IntoTransport: AsyncRead + AsyncWrite + Unpin {
    /// What the connection runs on.
    type Transport: Transport + Send + 'static;
    /// Converts the stream (plain TCP becomes shareable with publishers).
    fn into_transport(self) -> Self::Transport;
}

impl IntoTransport for TcpStream {
    type Transport = SharedTcp;
    fn into_transport(self) -> SharedTcp {
        SharedTcp(Arc::new(self))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> IntoTransport for Rewind<S> {
    type Transport = Self;
    fn into_transport(self) -> Self {
        self
    }
}

/// Plain TCP, shared: the connection task reads and writes queued frames through this handle,
/// publishers write through the outbox's clone of the same socket.
pub(crate) struct SharedTcp(pub Arc<TcpStream>);

impl Transport for SharedTcp {
    fn direct(&self) -> Option<Arc<TcpStream>> {
        Some(self.0.clone())
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The socket closes when the last handle (task or outbox) is dropped.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The connection's stream. Until [`Wire::attach`] it passes writes through (a refused
/// connection's error and close); after, a write queues the bytes on the outbox (or writes them
/// straight in when nothing is queued) and a flush writes the outbox's queue out.
pub(crate) struct Wire<S> {
    io: S,
    outbox: Option<Outbox>,
}

impl<S: Transport> Wire<S> {
    /// Wraps a stream; writes pass through until an outbox is attached.
    pub(crate) fn new(io: S) -> Self {
        Self { io, outbox: None }
    }

    /// The socket for direct writes, if the transport has one.
    pub(crate) fn direct(&self) -> Option<Arc<TcpStream>> {
        self.io.direct()
    }

    /// From now on, every write goes through `outbox`.
    pub(crate) fn attach(&mut self, outbox: Outbox) {
        self.outbox = Some(outbox);
    }
}

impl<S: Transport> AsyncRead for Wire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: Transport> AsyncWrite for Wire<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &this.outbox {
            None => Pin::new(&mut this.io).poll_write(cx, buf),
            Some(outbox) => {
                outbox.push_own(Frame::raw(Bytes::copy_from_slice(buf)), false);
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(outbox) = &this.outbox {
            let io = &mut this.io;
            ready!(outbox
                .poll_write_queued(|slices| Pin::new(&mut *io).poll_write_vectored(cx, slices)))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
