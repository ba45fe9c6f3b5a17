//! The per-connection protocol state, owned by the connection's task: socket id, subscribed
//! channels (capped by `max_channels_per_connection`), signed-in user, the client-event and
//! message (`rate_limiting`) rate limiters. It turns each parsed client message into adapter
//! calls and frames queued on the socket's own outbox.

use super::joined::Joined;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::adapter::Adapter;
use crate::apps::App;
use crate::auth;
use crate::channels::MemberData;
use crate::console::ConsoleEvent;
use crate::metrics::{AuthFailure, MessageKind, RateLimit as Limit};
use crate::outbox::{Outbox, SocketId};
use crate::protocol::channel::{validate, SERVER_TO_USER_PREFIX};
use crate::protocol::outbound;
use crate::protocol::{Access, ChannelKind, ClientMessage, PusherError};
use crate::watchlist::parse_watchlist;
use crate::webhooks::ClientEvent;

/// A refused subscription: the detail for `pusher:subscription_error` and the protocol error.
type Refusal = (String, PusherError);

/// A signed-in user (`pusher:signin`).
struct User {
    /// The `id` from `user_data`.
    id: String,
    /// `user_info` from `user_data`, used for presence joins without `channel_data`.
    info: Option<Box<RawValue>>,
}

/// Fixed one-second window counter for client events.
struct RateLimit {
    window: Instant,
    count: u32,
}

/// Everything one connection knows about itself.
pub struct Session {
    app: Arc<App>,
    adapter: Arc<Adapter>,
    outbox: Outbox,
    socket_id: String,
    /// Subscribed channels → the presence identity used there (presence channels only).
    channels: Joined,
    user: Option<User>,
    rate: RateLimit,
    /// Messages of any kind in the current `rate_limiting` window.
    messages: RateLimit,
}

impl Session {
    /// A fresh session for an accepted connection.
    pub fn new(app: Arc<App>, adapter: Arc<Adapter>, outbox: Outbox) -> Self {
        Self {
            socket_id: outbox.id().to_string(),
            app,
            adapter,
            outbox,
            channels: Joined::default(),
            user: None,
            rate: RateLimit {
                window: Instant::now(),
                count: 0,
            },
            messages: RateLimit {
                window: Instant::now(),
                count: 0,
            },
        }
    }

    /// The connection's outbox.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The wire form of this connection's id.
    pub fn socket_id(&self) -> &str {
        &self.socket_id
    }

    fn id(&self) -> SocketId {
        self.outbox.id()
    }

    /// Queues a protocol frame (a reply) on this socket's outbox, counted.
    fn reply(&self, frame: outbound::Frame) {
        self.app.metrics.sent(MessageKind::Protocol, 1, frame.len());
        self.outbox.try_send(frame);
    }

    fn send_error(&self, err: &PusherError) {
        if let Some(t) = self.adapter.console() {
            t.emit(|| ConsoleEvent::Error {
                app: self.app.id().to_owned(),
                socket_id: self.socket_id.clone(),
                code: Some(err.code().as_u16()),
                message: err.to_string(),
            });
        }
        self.reply(outbound::error(err));
    }

    /// Handles one text frame.
    pub fn handle_text(&mut self, text: &str) {
        super::trace::frame_in(&self.socket_id, text);
        if !self.within_message_limit() {
            self.app.metrics.received(MessageKind::Protocol, text.len());
            return;
        }
        match crate::protocol::inbound::parse(text) {
            Ok(msg) => {
                let kind = match msg {
                    ClientMessage::ClientEvent { .. } => MessageKind::ClientEvent,
                    _ => MessageKind::Protocol,
                };
                self.app.metrics.received(kind, text.len());
                self.handle(msg)
            }
            Err(e) => {
                self.app.metrics.received(MessageKind::Protocol, text.len());
                log_invalid(&self.socket_id, &e);
                self.send_error(&e);
            }
        }
    }

    /// Counts a message against the app's `rate_limiting`; over it, answers 4301 (or asks the
    /// connection to close with 4301) and returns false.
    fn within_message_limit(&mut self) -> bool {
        let limit = self.app.config().rate_limiting;
        if !limit.enabled {
            return true;
        }
        let now = Instant::now();
        if now.duration_since(self.messages.window) >= Duration::from_secs(limit.decay_seconds) {
            self.messages = RateLimit {
                window: now,
                count: 0,
            };
        }
        if self.messages.count < limit.max_attempts {
            self.messages.count += 1;
            return true;
        }
        self.app.metrics.rate_limited(Limit::Messages);
        if limit.terminate_on_limit {
            self.outbox.close(PusherError::MessageRateLimited);
        } else {
            self.send_error(&PusherError::MessageRateLimited);
        }
        false
    }

    fn handle(&mut self, msg: ClientMessage) {
        match msg {
            ClientMessage::Ping => self.reply(outbound::pong()),
            ClientMessage::Pong | ClientMessage::Ignored => {}
            ClientMessage::Subscribe {
                channel,
                auth,
                channel_data,
            } => self.subscribe(channel, auth, channel_data),
            ClientMessage::Unsubscribe { channel } => {
                if self.channels.remove(channel.as_str()) {
                    self.adapter.unsubscribe(&self.app, &channel, self.id());
                }
            }
            ClientMessage::Signin { auth, user_data } => self.sign_in(&auth, &user_data),
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => {
                if let Err(e) = self.client_event(&event, &channel, data.as_deref()) {
                    self.send_error(&e);
                }
            }
        }
    }

    fn subscribe(&mut self, channel: String, auth: Option<String>, data: Option<String>) {
        let full = self.channels.len() >= self.app.config().max_channels_per_connection
            && !self.channels.contains(channel.as_str());
        let result = if full {
            let err = PusherError::TooManyChannels;
            Err((err.to_string(), err))
        } else {
            self.authorize(&channel, auth.as_deref(), data.as_deref())
        };
        let outcome = result.and_then(|(kind, member)| {
            self.adapter
                .subscribe(&self.app, &channel, kind, &self.outbox, member.as_ref())
                .map(|_| member)
                .map_err(|e| (e.to_string(), e))
        });
        match outcome {
            Ok(member) => {
                self.channels
                    .insert(channel.into_boxed_str(), member.map(|m| m.key));
            }
            Err((detail, err)) => {
                if err == PusherError::Unauthorized {
                    self.app.metrics.auth_failed(AuthFailure::ChannelAuth);
                }
                log_refused_subscription(&self.socket_id, &channel, &err, &detail);
                if err != PusherError::InvalidMessage {
                    self.reply(outbound::subscription_error(&channel, &err, &detail));
                }
                self.send_error(&err);
            }
        }
    }

    /// Checks name and auth; returns the kind and the presence identity. Errors carry the
    /// detail for `pusher:subscription_error` and the protocol error.
    fn authorize(
        &self,
        channel: &str,
        auth: Option<&str>,
        data: Option<&str>,
    ) -> Result<(ChannelKind, Option<MemberData>), Refusal> {
        let app = &self.app;
        let kind = validate(channel, app.config().max_channel_name_length)
            .map_err(|e| (e.to_string(), PusherError::InvalidChannel))?;
        let unauthorized = |detail: String| (detail, PusherError::Unauthorized);
        let check = |signed_data: Option<&str>| {
            let auth = auth
                .filter(|a| !a.is_empty())
                .ok_or_else(|| unauthorized("Missing auth signature".to_owned()))?;
            auth::verify_channel(
                app.key(),
                &app.config().secret,
                &self.socket_id,
                channel,
                signed_data,
                auth,
            )
            .map_err(|e| unauthorized(e.to_string()))
        };
        let member = match kind.access {
            Access::Public => None,
            Access::Private | Access::Encrypted => {
                check(None)?;
                None
            }
            Access::Presence => {
                let max = app.config().max_presence_user_bytes;
                let as_err = |e: PusherError| (e.to_string(), e);
                match (data, &self.user) {
                    (Some(d), _) => {
                        check(Some(d))?;
                        Some(MemberData::from_channel_data(d, max).map_err(as_err)?)
                    }
                    (None, Some(user)) => {
                        check(None)?;
                        let id = serde_json::to_string(&user.id).expect("strings serialise");
                        let id = RawValue::from_string(id).expect("a JSON string is JSON");
                        Some(MemberData::build(id, user.info.clone(), max).map_err(as_err)?)
                    }
                    (None, None) => {
                        return Err(unauthorized(
                            "Presence channels need channel_data or a signed-in user".into(),
                        ))
                    }
                }
            }
            Access::ServerToUser => {
                let wanted = &channel[SERVER_TO_USER_PREFIX.len()..];
                if self.user.as_ref().map(|u| u.id.as_str()) != Some(wanted) {
                    return Err(unauthorized(format!("Not signed in as user {wanted}")));
                }
                None
            }
        };
        Ok((kind, member))
    }

    fn sign_in(&mut self, auth: &str, user_data: &str) {
        let app = &self.app;
        let verified = auth::verify_user(
            app.key(),
            &app.config().secret,
            &self.socket_id,
            user_data,
            auth,
        );
        #[derive(serde::Deserialize)]
        struct UserData {
            id: serde_json::Value,
            #[serde(default)]
            user_info: Option<Box<RawValue>>,
            #[serde(default)]
            watchlist: Option<serde_json::Value>,
        }
        let parsed = serde_json::from_str::<UserData>(user_data)
            .ok()
            .and_then(|u| match u.id {
                serde_json::Value::String(id) if !id.is_empty() => {
                    Some((id, u.user_info, u.watchlist))
                }
                _ => None,
            });
        let (id, info, watchlist) = match (verified, parsed) {
            (Ok(()), Some(user)) => user,
            (verified, _) => {
                self.app.metrics.auth_failed(AuthFailure::Signin);
                log_refused_signin(&self.socket_id, verified.is_ok());
                return self.send_error(&PusherError::SigninFailed);
            }
        };
        let first = match &self.user {
            Some(current) if current.id != id => {
                return self.send_error(&PusherError::SigninFailed)
            }
            Some(_) => false,
            None => true,
        };
        self.reply(outbound::signin_success(user_data));
        if first {
            // Watchlist events: the first 100 ids are watched; more is reported, not refused.
            let watchlist = if self.app.config().watchlist_events {
                let (ids, cut) = parse_watchlist(watchlist.as_ref());
                if cut {
                    self.send_error(&PusherError::WatchlistLimit);
                }
                ids
            } else {
                Vec::new()
            };
            self.adapter
                .sign_in(&self.app, &id, &self.outbox, watchlist);
        }
        self.user = Some(User { id, info });
    }

    fn client_event(
        &mut self,
        event: &str,
        channel: &str,
        data: Option<&str>,
    ) -> Result<(), PusherError> {
        let cfg = &self.app.config();
        if !self.app.client_events_enabled() {
            return Err(PusherError::ClientEventsDisabled);
        }
        let kind = ChannelKind::of(channel);
        if !matches!(kind.access, Access::Private | Access::Presence) {
            return Err(PusherError::ClientEventChannel);
        }
        let member = match self.channels.get(channel) {
            Some(member) => member.clone(),
            None => return Err(PusherError::NotAMember),
        };
        let now = Instant::now();
        if now.duration_since(self.rate.window) >= Duration::from_secs(1) {
            self.rate = RateLimit {
                window: now,
                count: 0,
            };
        }
        if self.rate.count >= cfg.client_events_per_second {
            self.app.metrics.rate_limited(Limit::ClientEvents);
            return Err(PusherError::RateLimited);
        }
        self.rate.count += 1;
        if event.len() > cfg.max_event_name_length {
            return Err(PusherError::InvalidMessage);
        }
        if data.map_or(0, str::len) > cfg.max_event_bytes {
            return Err(PusherError::EventTooLarge);
        }
        let frame = outbound::event(event, channel, data, member.as_deref());
        let hook = ClientEvent {
            event,
            data,
            socket_id: &self.socket_id,
            user_id: member.as_deref(),
        };
        self.adapter
            .relay(&self.app, channel, &frame, self.id(), hook)
    }

    /// Leaves every channel and forgets the sign-in; called once when the connection ends.
    pub fn close(&mut self) {
        for (channel, _) in self.channels.take() {
            self.adapter
                .unsubscribe(&self.app, &channel, self.outbox.id());
        }
        if let Some(user) = self.user.take() {
            self.adapter.sign_out(&self.app, &user.id, self.outbox.id());
        }
    }
}

#[inline(never)]
fn log_invalid(socket: &str, err: &PusherError) {
    tracing::debug!(socket, "invalid message: {err}");
}

/// Logs a refused subscription without the signed string an auth failure quotes (it holds
/// `channel_data`): only the error for auth failures, other details truncated.
#[inline(never)]
fn log_refused_subscription(socket: &str, channel: &str, err: &PusherError, detail: &str) {
    if *err == PusherError::Unauthorized {
        tracing::debug!(socket, channel, "subscription refused: {err}");
    } else {
        let detail = super::trace::truncate(detail, 120);
        tracing::debug!(socket, channel, "subscription refused: {detail}");
    }
}

/// Logs a refused sign-in without the signature or `user_data`.
#[inline(never)]
fn log_refused_signin(socket: &str, signature_ok: bool) {
    let why = if signature_ok {
        "user_data has no non-empty string id"
    } else {
        "bad signature"
    };
    tracing::debug!(socket, "sign-in refused: {why}");
}
