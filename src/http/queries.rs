//! Read-only endpoints: `GET /channels`, `GET /channels/{name}`, `GET /channels/{name}/users`.
//! Attributes that do not apply are refused with 400, as Pusher does.

use serde_json::{Map, Value};

use super::events::Info;
use super::ApiError;
use crate::adapter::Adapter;
use crate::apps::App;
use crate::protocol::channel::validate;
use crate::protocol::ChannelKind;

fn check_name(app: &App, name: &str) -> Result<ChannelKind, ApiError> {
    validate(name, app.config().max_channel_name_length).map_err(|reason| {
        ApiError::InvalidChannel {
            name: name.to_owned(),
            reason,
        }
    })
}

/// `GET /apps/{id}/channels?filter_by_prefix=&info=`: occupied channels only.
pub(super) async fn channels(
    app: &App,
    prefix: Option<&str>,
    info: Option<&str>,
    adapter: &Adapter,
) -> Result<String, ApiError> {
    let prefix = prefix.unwrap_or("");
    let info = Info::parse(info);
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::PresenceOnlyInfo("user_count"));
    }
    let mut out = Map::new();
    for (name, counts) in adapter.channels(app, prefix).await {
        let mut attrs = Map::new();
        if info.user_count {
            if let Some(users) = counts.users {
                attrs.insert("user_count".into(), users.into());
            }
        }
        if info.subscription_count {
            attrs.insert("subscription_count".into(), counts.subscriptions.into());
        }
        out.insert(name, Value::Object(attrs));
    }
    Ok(serde_json::json!({ "channels": out }).to_string())
}

/// `GET /apps/{id}/channels/{name}?info=user_count,subscription_count,cache`.
pub(super) async fn channel(
    app: &App,
    name: &str,
    info: Option<&str>,
    adapter: &Adapter,
) -> Result<String, ApiError> {
    let kind = check_name(app, name)?;
    let info = Info::parse(info);
    if info.user_count && !kind.is_presence() {
        return Err(ApiError::PresenceOnlyInfo("user_count"));
    }
    let counts = adapter.channel_counts(app, name).await;
    let mut out = Map::new();
    out.insert("occupied".into(), (counts.subscriptions > 0).into());
    if info.user_count {
        out.insert("user_count".into(), counts.users.unwrap_or(0).into());
    }
    if info.subscription_count {
        out.insert("subscription_count".into(), counts.subscriptions.into());
    }
    if info.cache && kind.cache {
        let cached = adapter.cached(app, name).await.map(|c| {
            let ttl = c
                .expires
                .saturating_duration_since(std::time::Instant::now());
            serde_json::json!({ "event": c.event, "data": c.data, "ttl": ttl.as_secs() })
        });
        out.insert("cache".into(), cached.unwrap_or(Value::Null));
    }
    Ok(Value::Object(out).to_string())
}

/// `GET /apps/{id}/channels/{name}/users`: distinct users of a presence channel.
pub(super) async fn users(app: &App, name: &str, adapter: &Adapter) -> Result<String, ApiError> {
    if !check_name(app, name)?.is_presence() {
        return Err(ApiError::NotPresence(name.to_owned()));
    }
    let users: Vec<Value> = adapter
        .user_ids(app, name)
        .await
        .iter()
        .map(|id| serde_json::json!({ "id": &**id }))
        .collect();
    Ok(serde_json::json!({ "users": users }).to_string())
}
