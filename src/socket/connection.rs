//! One connection's task: admission, `connection_established`, then a single loop over reads,
//! the outbox, the ping timer and shutdown, and finally a close frame with the right code.
//! The task owns its [`Session`] and reads the socket ([`FrameReader`]); writes go through the
//! outbox (see `wire.rs`): publishers write into an idle socket themselves, the task writes what
//! queued up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep, timeout, Instant};

use super::frames::{self, FrameReader, Inbound, ReadEnd};
use super::wire::{Transport, Wire};

use super::session::Session;
use super::{Admission, SocketContext};
use crate::apps::App;
use crate::console::ConsoleEvent;
use crate::metrics::{CloseLabel, MessageKind, Refusal};
use crate::outbox::{Direct, Outbox, SocketId};
use crate::protocol::outbound;
use crate::protocol::{PusherError, ViolationCode};

/// How long a write may stall before the peer is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the peer's close reply after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A connection's two halves: the stream (writes go through its outbox once attached) and the
/// frame reader.
pub(super) struct Conn<S> {
    pub(super) wire: Wire<S>,
    pub(super) reader: FrameReader,
}

/// How the connection loop ended.
enum End {
    /// The transport failed: nothing more to send.
    Gone,
    /// The peer sent a close frame: send this reply, then stop.
    PeerClosed(Bytes),
    /// Close with this Pusher error (a `pusher:error` first, except for slow consumers).
    Close(PusherError),
    /// The peer broke the WebSocket protocol (1002, 1007) or sent too much (1009).
    Violation(ViolationCode),
}

/// The largest frame and message a client of `app` may send (unknown apps get the default).
pub(super) fn max_message(app: Option<&App>) -> usize {
    app.map_or(10_000, |a| a.config().max_message_size)
}

/// Runs a connection that arrived through hyper's upgrade (a kept-alive HTTP connection).
pub(super) async fn run_upgraded(upgraded: Upgraded, ctx: Arc<SocketContext>, adm: Admission) {
    let app = ctx.apps.by_key(&adm.app_key);
    let conn = Box::new(Conn {
        wire: Wire::new(TokioIo::new(upgraded)),
        reader: FrameReader::new(max_message(app.as_deref()), Vec::new()),
    });
    spawn(conn, ctx, app, Box::new(adm));
}

/// Admits an accepted WebSocket and runs it in a task of its own. Everything up to the first
/// wait (admission, the outbox, the session, `connection_established`) is done here, before the
/// task exists, so the task's future holds only what lives as long as the connection: awaited
/// inside the accepting task, the connection lived in a future sized for sniffing and the
/// handshake too (2,448 bytes per idle connection, measured).
pub(super) fn spawn<S: Transport + Send + 'static>(
    mut ws: Box<Conn<S>>,
    ctx: Arc<SocketContext>,
    app: Option<Arc<App>>,
    adm: Box<Admission>,
) {
    let tracker = ctx.tracker.clone();
    let open = ctx.open.fetch_add(1, Ordering::AcqRel) + 1;
    let app = match admit(&ctx, app, &adm, open) {
        Ok(app) => app,
        Err(e) => {
            refused(&ctx, &adm.app_key, &e);
            tracker.spawn(async move {
                finish(&mut ws, End::Close(e)).await;
                ctx.open.fetch_sub(1, Ordering::AcqRel);
            });
            return;
        }
    };
    let direct = ws.wire.direct().map(|tcp| Direct {
        tcp,
        coalescer: ctx.coalescer.clone(),
    });
    let outbox = Outbox::new(SocketId::generate(), ctx.max_queued_frames, direct);
    ws.wire.attach(outbox.clone());
    let session = Session::new(app.clone(), ctx.adapter.clone(), outbox.clone());
    let hello =
        outbound::connection_established(session.socket_id(), app.config().activity_timeout);
    app.metrics.sent(MessageKind::Protocol, 1, hello.len());
    log_connected(session.socket_id(), app.id());
    if let Some(t) = ctx.adapter.console() {
        t.emit(|| ConsoleEvent::Connected {
            app: app.id().to_owned(),
            socket_id: session.socket_id().to_owned(),
            // The console shows the origin on `connected`.
            origin: adm.origin.clone(),
        });
    }
    // Written (or queued) before the session exists for anyone else: it goes out first.
    super::trace::frame_out(&outbox.id(), hello.as_str());
    outbox.push_own(hello, true);
    tracker.spawn(serve(ws, ctx, app, Box::new(session)));
}

/// Admission checks in Pusher's order; on success the app's connection slot is taken.
fn admit(
    ctx: &SocketContext,
    app: Option<Arc<App>>,
    adm: &Admission,
    open: usize,
) -> Result<Arc<App>, PusherError> {
    if ctx.max_connections > 0 && open > ctx.max_connections {
        return Err(PusherError::OverCapacity);
    }
    let app = app.ok_or(PusherError::AppNotFound)?;
    if let Some(p) = &adm.protocol {
        let digits = p.strip_prefix('-').unwrap_or(p);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PusherError::InvalidVersion);
        }
        if !matches!(p.parse::<u32>(), Ok(4..=7)) {
            return Err(PusherError::UnsupportedProtocol);
        }
    }
    if !app.origin_allowed(adm.origin.as_deref()) {
        return Err(PusherError::OriginNotAllowed);
    }
    if !app.try_acquire_connection() {
        return Err(PusherError::OverQuota);
    }
    Ok(app)
}

/// The connection's life after admission: the loop, then the session's end and the close.
async fn serve<S: Transport>(
    mut ws: Box<Conn<S>>,
    ctx: Arc<SocketContext>,
    app: Arc<App>,
    mut session: Box<Session>,
) {
    let outbox = session.outbox().clone();
    let end = drive(&mut ws, &ctx, &mut session, &outbox, &app).await;
    session.close();
    // No broadcast frame may follow the close frame; the socket handle is let go of.
    outbox.seal();
    if matches!(end, End::Close(PusherError::SlowConsumer)) {
        outbox.discard();
    }
    app.release_connection();
    closed(&app, &end);
    log_disconnected(session.socket_id());
    if let Some(t) = ctx.adapter.console() {
        t.emit(|| ConsoleEvent::Disconnected {
            app: app.id().to_owned(),
            socket_id: session.socket_id().to_owned(),
            code: end_code(&end),
        });
    }
    // Boxed, like every once-per-connection or once-per-ping write: only the hot loop's state
    // should live in the connection task for the whole connection.
    Box::pin(finish(&mut ws, end)).await;
    ctx.open.fetch_sub(1, Ordering::AcqRel);
}

/// Writes one frame (through the outbox once attached, so after everything queued before it)
/// and flushes, within [`WRITE_TIMEOUT`].
async fn send<S: Transport>(ws: &mut Conn<S>, frame: &[u8]) -> Result<(), ()> {
    let wire = &mut ws.wire;
    let write = async {
        wire.write_all(frame).await?;
        wire.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Why a write did not complete.
enum WriteError {
    /// The transport failed, or stayed blocked for a whole ping interval.
    Gone,
    /// The outbox overflowed while the write was blocked: a slow reader, to close with 4100.
    Overflow,
}

/// Writes out the outbox's queue (many frames per `writev`). A stalled peer is detected with the connection's own ping timer
/// rather than a timer per write (which would widen every connection's future): if the write
/// is still blocked after the timer fires twice (at least one ping interval), the peer is gone.
/// An outbox overflow during a blocked write ends it at once.
async fn write_all<S: Transport>(
    ws: &mut Conn<S>,
    outbox: &Outbox,
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    ping_every: Duration,
) -> Result<(), WriteError> {
    let write = ws.wire.flush();
    tokio::pin!(write);
    let mut stalls = 0;
    loop {
        tokio::select! {
            result = &mut write => return result.map_err(|_| WriteError::Gone),
            _ = outbox.ready() => {
                if outbox.overflowed() {
                    return Err(WriteError::Overflow);
                }
            }
            _ = &mut timer => {
                stalls += 1;
                if stalls >= 2 {
                    return Err(WriteError::Gone);
                }
                timer.as_mut().reset(Instant::now() + ping_every);
            }
        }
    }
}

async fn drive<S: Transport>(
    ws: &mut Conn<S>,
    ctx: &SocketContext,
    session: &mut Session,
    outbox: &Outbox,
    app: &App,
) -> End {
    let ping_every = Duration::from_secs(app.config().ping_interval);
    let mut last_seen = Instant::now();
    let mut pinged = false;
    let mut control_frames = false;
    // Pings answered while the socket could not take the pong: a peer that sends pings without
    // reading. Its pongs are bounded like the outbox: at `max_queued_frames` it is closed.
    let mut unsent_pongs = 0usize;
    let timer = sleep(ping_every);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            // The app's token: a child of the server's, also cancelled when a reload removes
            // the app (then 4001 instead of 4200).
            _ = app.closing().cancelled() => {
                return End::Close(if app.removed(ctx.shutdown.is_cancelled()) {
                    PusherError::AppNotFound
                } else {
                    PusherError::ShuttingDown
                });
            }
            _ = outbox.ready() => {
                if outbox.overflowed() {
                    return End::Close(PusherError::SlowConsumer);
                }
                // Lets the tasks already runnable (publishers among them) go first: frames they
                // queue meanwhile leave in this task's one `writev`. On a saturated server this
                // is what makes batches; on an idle one it costs a pass of the run queue.
                tokio::task::yield_now().await;
                // Writes until the queue is empty, frames queued meanwhile included.
                match write_all(ws, outbox, timer.as_mut(), ping_every).await {
                    Ok(()) => {}
                    Err(WriteError::Gone) => return End::Gone,
                    Err(WriteError::Overflow) => return End::Close(PusherError::SlowConsumer),
                }
                if let Some(reason) = outbox.close_request() {
                    return End::Close(reason);
                }
            },
            msg = ws.reader.next(&mut ws.wire) => {
                last_seen = Instant::now();
                pinged = false;
                match msg {
                    Ok(Inbound::Text(text)) => session.handle_text(&text),
                    Ok(Inbound::Binary(bytes)) => match std::str::from_utf8(&bytes) {
                        Ok(text) => session.handle_text(text),
                        Err(_) => {
                            outbox.try_send(outbound::error(&PusherError::InvalidMessage));
                        }
                    },
                    Ok(Inbound::Ping(pong)) => {
                        control_frames = true;
                        // Written at once if the socket is idle, else queued behind what is
                        // queued; the queue is written without waiting for the socket.
                        outbox.push_own(outbound::Frame::raw(pong), false);
                        match ws.wire.flush().now_or_never() {
                            Some(Ok(())) => unsent_pongs = 0,
                            Some(Err(_)) => return End::Gone,
                            None => {
                                unsent_pongs += 1;
                                if unsent_pongs >= ctx.max_queued_frames {
                                    return End::Close(PusherError::SlowConsumer);
                                }
                            }
                        }
                    }
                    Ok(Inbound::Pong) => control_frames = true,
                    Ok(Inbound::Close(reply)) => return End::PeerClosed(reply),
                    Err(ReadEnd::Gone) => return End::Gone,
                    Err(ReadEnd::Violation(code)) => return End::Violation(code),
                }
            }
            _ = &mut timer => {
                let now = Instant::now();
                if pinged {
                    return End::Close(PusherError::PongTimeout);
                }
                if now >= last_seen + ping_every {
                    if control_frames {
                        let ping = frames::control(0x9, &[]);
                        if Box::pin(send(ws, &ping)).await.is_err() {
                            return End::Gone;
                        }
                    } else {
                        let ping = outbound::ping();
                        app.metrics.sent(MessageKind::Protocol, 1, ping.len());
                        super::trace::frame_out(&outbox.id(), ping.as_str());
                        outbox.push_own(ping, true);
                    }
                    pinged = true;
                    timer.as_mut().reset(now + ping_every);
                } else {
                    timer.as_mut().reset(last_seen + ping_every);
                }
            }
        }
    }
}

/// Sends the closing `pusher:error` and close frame, then waits briefly for the peer's reply so
/// the close code is not lost to a TCP reset.
async fn finish<S: Transport>(ws: &mut Conn<S>, end: End) {
    let (code, reason): (u16, String) = match end {
        End::Gone => return,
        End::PeerClosed(reply) => {
            let _ = timeout(CLOSE_GRACE, send(ws, &reply)).await;
            return;
        }
        End::Violation(code) => (code.as_u16(), code.reason().to_owned()),
        End::Close(err) => {
            if err != PusherError::SlowConsumer {
                let text = outbound::error(&err);
                super::trace::frame_out(&"-", text.as_str());
                if send(ws, text.wire()).await.is_err() {
                    return;
                }
            }
            (err.code().as_u16(), err.to_string())
        }
    };
    if send(ws, &frames::close_frame(code, &reason)).await.is_err() {
        return;
    }
    let _ = timeout(CLOSE_GRACE, async {
        while let Ok(msg) = ws.reader.next(&mut ws.wire).await {
            if matches!(msg, Inbound::Close(_)) {
                break;
            }
        }
    })
    .await;
}

// Logging lives in plain functions: a `tracing` macro inside the connection's async code
// reserves its field set in the task's future for the whole connection (measured: +560 bytes
// per connection for two `debug!` calls).

/// Counts and logs a connection refused at admission.
#[inline(never)]
fn refused(ctx: &SocketContext, key: &str, err: &PusherError) {
    let why = match err {
        PusherError::OverCapacity => Refusal::ServerCap,
        PusherError::AppNotFound => Refusal::UnknownApp,
        PusherError::OriginNotAllowed => Refusal::Origin,
        PusherError::OverQuota => Refusal::AppQuota,
        _ => Refusal::Protocol,
    };
    ctx.metrics.refused(why);
    tracing::debug!(key, "connection refused: {err}");
}

/// Counts an admitted connection's end by close code (and the final `pusher:error`).
#[inline(never)]
fn closed(app: &App, end: &End) {
    let how = match end {
        End::Gone => CloseLabel::Gone,
        End::PeerClosed(_) => CloseLabel::Client,
        End::Violation(code) => CloseLabel::Code(code.as_u16()),
        End::Close(err) => {
            if *err != PusherError::SlowConsumer {
                let frame = outbound::error(err);
                app.metrics.sent(MessageKind::Protocol, 1, frame.len());
            }
            CloseLabel::Code(err.code().as_u16())
        }
    };
    app.metrics.connection_closed(how);
}

/// The close code a connection ended with, for the console (`None`: the peer vanished or
/// closed first).
fn end_code(end: &End) -> Option<u16> {
    match end {
        End::Gone | End::PeerClosed(_) => None,
        End::Violation(code) => Some(code.as_u16()),
        End::Close(err) => Some(err.code().as_u16()),
    }
}

#[inline(never)]
fn log_connected(socket: &str, app: &str) {
    tracing::debug!(socket, app, "connected");
}

#[inline(never)]
fn log_disconnected(socket: &str) {
    tracing::debug!(socket, "disconnected");
}
