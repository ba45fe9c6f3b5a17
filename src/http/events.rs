//! `POST /events` and `POST /batch_events`: validation against the app's limits, then one
//! adapter trigger per channel (each frame serialised once), and the optional `info` answer.

use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use crate::adapter::Adapter;
use crate::apps::App;
use crate::metrics::MessageKind;
use crate::outbox::SocketId;
use crate::protocol::channel::validate;
use crate::protocol::{Access, ChannelKind};

/// One event as sent: every field optional so each gets a precise 400.
#[derive(Deserialize)]
struct EventBody {
    name: Option<Value>,
    data: Option<Value>,
    channels: Option<Value>,
    channel: Option<Value>,
    socket_id: Option<Value>,
    info: Option<Value>,
}

/// A validated event.
struct Event {
    name: String,
    data: String,
    channels: Vec<String>,
    except: Option<SocketId>,
    info: Info,
}

/// Which `info` attributes were asked for.
#[derive(Default, Clone, Copy)]
pub(super) struct Info {
    pub user_count: bool,
    pub subscription_count: bool,
    pub cache: bool,
}

impl Info {
    pub(super) fn parse(s: Option<&str>) -> Self {
        let mut info = Self::default();
        for attr in s.unwrap_or("").split(',').map(str::trim) {
            match attr {
                "user_count" => info.user_count = true,
                "subscription_count" => info.subscription_count = true,
                "cache" => info.cache = true,
                _ => {}
            }
        }
        info
    }

    fn any(self) -> bool {
        self.user_count || self.subscription_count
    }
}

fn string_field(v: Option<Value>, name: &'static str) -> Result<String, ApiError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ApiError::Field(name)),
    }
}

fn validate_event(app: &App, body: EventBody, batch_item: bool) -> Result<Event, ApiError> {
    let cfg = &app.config();
    let name = string_field(body.name, "name")?;
    if name.is_empty() {
        return Err(ApiError::Field("name"));
    }
    if name.len() > cfg.max_event_name_length {
        return Err(ApiError::EventNameTooLong(cfg.max_event_name_length));
    }
    if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
        return Err(ApiError::ReservedEventName);
    }
    let data = string_field(body.data, "data")?;
    if data.len() > cfg.max_event_bytes {
        return Err(ApiError::DataTooLarge {
            size: data.len(),
            limit: cfg.max_event_bytes,
        });
    }
    let mut channels = match (body.channels, body.channel) {
        (Some(_), _) if batch_item => return Err(ApiError::Field("channel")),
        (Some(Value::Array(list)), None) => list
            .into_iter()
            .map(|c| match c {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::Field("channels")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(Value::String(c))) => vec![c],
        (Some(_), _) => return Err(ApiError::Field("channels")),
        (None, _) => return Err(ApiError::Field("channel")),
    };
    let mut seen = std::collections::HashSet::new();
    channels.retain(|c| seen.insert(c.clone()));
    if channels.is_empty() {
        return Err(ApiError::Field("channels"));
    }
    if channels.len() > cfg.max_channels_per_trigger {
        return Err(ApiError::TooManyChannels(
            channels.len(),
            cfg.max_channels_per_trigger,
        ));
    }
    for c in &channels {
        let kind = validate(c, cfg.max_channel_name_length).map_err(|reason| {
            ApiError::InvalidChannel {
                name: c.clone(),
                reason,
            }
        })?;
        if kind.access == Access::Encrypted && channels.len() > 1 {
            return Err(ApiError::EncryptedMulti);
        }
    }
    let except = match body.socket_id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SocketId::parse(&s).ok_or(ApiError::InvalidSocketId(s))?),
        Some(other) => return Err(ApiError::InvalidSocketId(other.to_string())),
    };
    let info = match body.info {
        None | Some(Value::Null) => Info::default(),
        Some(Value::String(s)) => Info::parse(Some(&s)),
        Some(_) => return Err(ApiError::Field("info")),
    };
    Ok(Event {
        name,
        data,
        channels,
        except,
        info,
    })
}

fn deliver(app: &App, ev: &Event, adapter: &Adapter) {
    app.metrics.received(MessageKind::ApiEvent, ev.data.len());
    for channel in &ev.channels {
        adapter.trigger(app, channel, &ev.name, &ev.data, ev.except);
    }
}

/// `{"user_count":n}` / `{"subscription_count":n}` for one channel, as the trigger `info` asks.
async fn channel_info(app: &App, channel: &str, info: Info, adapter: &Adapter) -> Value {
    let counts = adapter.channel_counts(app, channel).await;
    let mut obj = serde_json::Map::new();
    if ChannelKind::of(channel).is_presence() {
        if info.user_count {
            obj.insert("user_count".into(), counts.users.unwrap_or(0).into());
        }
    } else if info.subscription_count {
        obj.insert("subscription_count".into(), counts.subscriptions.into());
    }
    Value::Object(obj)
}

/// `POST /apps/{id}/events`.
pub(super) async fn trigger(app: &App, body: &[u8], adapter: &Adapter) -> Result<String, ApiError> {
    let ev = validate_event(app, serde_json::from_slice(body)?, false)?;
    deliver(app, &ev, adapter);
    if !ev.info.any() {
        return Ok("{}".into());
    }
    let mut channels = serde_json::Map::new();
    for c in &ev.channels {
        let v = channel_info(app, c, ev.info, adapter).await;
        channels.insert(c.clone(), v);
    }
    Ok(serde_json::json!({ "channels": channels }).to_string())
}

/// `POST /apps/{id}/batch_events`: every item is validated before any is delivered.
pub(super) async fn batch(app: &App, body: &[u8], adapter: &Adapter) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Batch {
        batch: Vec<EventBody>,
    }
    let items = serde_json::from_slice::<Batch>(body)?.batch;
    let max = app.config().max_batch_size;
    if items.len() > max {
        return Err(ApiError::BatchTooLarge(items.len(), max));
    }
    let events = items
        .into_iter()
        .map(|item| validate_event(app, item, true))
        .collect::<Result<Vec<_>, _>>()?;
    for ev in &events {
        deliver(app, ev, adapter);
    }
    if !events.iter().any(|e| e.info.any()) {
        return Ok("{}".into());
    }
    let mut answers = Vec::with_capacity(events.len());
    for ev in &events {
        answers.push(channel_info(app, &ev.channels[0], ev.info, adapter).await);
    }
    Ok(serde_json::json!({ "batch": answers }).to_string())
}

#[cfg(test)]
#[path = "events_props.rs"]
mod props;
