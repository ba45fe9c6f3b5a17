//! The per-app webhook keys: `webhooks` (the targets), `webhook_batching`,
//! `webhook_vacated_delay_ms` and `webhook_retry`, with their defaults and checks. Reverb has no
//! webhook keys; the names follow the Pusher dashboard and soketi where they have one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// The kinds of webhook event Pusher defines (protocol reference §5).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEventType {
    /// A channel's subscriptions went 0 → 1.
    ChannelOccupied,
    /// A channel's subscriptions went 1 → 0 (after `webhook_vacated_delay_ms`).
    ChannelVacated,
    /// A presence user's first socket joined.
    MemberAdded,
    /// A presence user's last socket left (after `webhook_vacated_delay_ms`).
    MemberRemoved,
    /// A client event was relayed.
    ClientEvent,
    /// Someone subscribed to a cache channel with nothing cached.
    CacheMiss,
    /// A non-presence channel's subscription count changed.
    SubscriptionCount,
}

impl WebhookEventType {
    /// The `name` of the event in the webhook body.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChannelOccupied => "channel_occupied",
            Self::ChannelVacated => "channel_vacated",
            Self::MemberAdded => "member_added",
            Self::MemberRemoved => "member_removed",
            Self::ClientEvent => "client_event",
            Self::CacheMiss => "cache_miss",
            Self::SubscriptionCount => "subscription_count",
        }
    }
}

/// Which channels a target hears about; both conditions apply when both are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookFilter {
    /// Only channels whose name starts with this.
    pub channel_name_starts_with: Option<String>,
    /// Only channels whose name ends with this.
    pub channel_name_ends_with: Option<String>,
}

impl WebhookFilter {
    /// Whether `channel` passes the filter.
    pub fn matches(&self, channel: &str) -> bool {
        self.channel_name_starts_with
            .as_deref()
            .is_none_or(|p| channel.starts_with(p))
            && self
                .channel_name_ends_with
                .as_deref()
                .is_none_or(|s| channel.ends_with(s))
    }
}

/// One webhook target of an app: where to POST, which events, for which channels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://` or `https://` URL receiving the POSTs.
    pub url: String,
    /// The events this target receives.
    pub event_types: Vec<WebhookEventType>,
    /// Optional channel-name filter.
    #[serde(default)]
    pub filter: WebhookFilter,
    /// Extra headers sent with every request (not `Content-Type` or `X-Pusher-*`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `webhook_batching`: several events per request, gathered for at most `window_ms`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookBatching {
    /// Off (Pusher's default): one event per request.
    pub enabled: bool,
    /// Milliseconds a request waits for more events after its first one.
    pub window_ms: u64,
    /// Most events in one request.
    pub max_events: usize,
}

impl Default for WebhookBatching {
    fn default() -> Self {
        Self {
            enabled: false,
            window_ms: 50,
            max_events: 100,
        }
    }
}

/// `webhook_retry`: how hard a failed request is retried (timeouts, connection errors, 429 and
/// 5xx; any other status is final).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookRetry {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Milliseconds after the first attempt past which no retry starts.
    pub max_elapsed_ms: u64,
    /// Backoff before the first retry, in milliseconds; doubled each time (with jitter).
    pub base_backoff_ms: u64,
    /// Longest backoff between two attempts, in milliseconds.
    pub max_backoff_ms: u64,
    /// Milliseconds one attempt may take (connect, send and response head).
    pub timeout_ms: u64,
}

impl Default for WebhookRetry {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_elapsed_ms: 120_000,
            base_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 5_000,
        }
    }
}

/// Pusher's delay before channel_vacated and member_removed.
pub(super) fn d3000() -> u64 {
    3000
}

/// Headers the server sets itself (a target may not override them).
const RESERVED: [&str; 3] = ["content-type", "x-pusher-key", "x-pusher-signature"];

/// Checks the webhook keys of app `i`.
pub(super) fn validate(
    i: usize,
    targets: &[WebhookTarget],
    batching: &WebhookBatching,
    retry: &WebhookRetry,
) -> Result<(), ConfigError> {
    for (t, target) in targets.iter().enumerate() {
        let k = |name: &str| format!("apps[{i}].webhooks[{t}].{name}");
        match reqwest::Url::parse(&target.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => return invalid(&k("url"), "must be an http:// or https:// URL"),
            Err(e) => return invalid(&k("url"), &format!("'{}': {e}", target.url)),
        }
        if target.event_types.is_empty() {
            return invalid(&k("event_types"), "must list at least one event type");
        }
        for (name, value) in &target.headers {
            let key = k(&format!("headers.{name}"));
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return invalid(&key, "is set by the server");
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return invalid(&key, "is not a valid header name");
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return invalid(&key, "is not a valid header value");
            }
        }
    }
    let k = |name: &str| format!("apps[{i}].{name}");
    if batching.enabled && (batching.window_ms == 0 || batching.max_events == 0) {
        return invalid(
            &k("webhook_batching"),
            "window_ms and max_events must be greater than 0",
        );
    }
    if retry.max_attempts == 0 || retry.timeout_ms == 0 {
        return invalid(
            &k("webhook_retry"),
            "max_attempts and timeout_ms must be greater than 0",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matches_both_ends() {
        let f = WebhookFilter {
            channel_name_starts_with: Some("private-".into()),
            channel_name_ends_with: Some("-x".into()),
        };
        assert!(f.matches("private-a-x"));
        assert!(!f.matches("private-a"));
        assert!(!f.matches("a-x"));
        assert!(WebhookFilter::default().matches("anything"));
    }

    #[test]
    fn refuses_bad_targets() {
        let t = |url: &str, header: Option<(&str, &str)>| WebhookTarget {
            url: url.into(),
            event_types: vec![WebhookEventType::ChannelOccupied],
            filter: WebhookFilter::default(),
            headers: header
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into_iter()
                .collect(),
        };
        let (b, r) = (WebhookBatching::default(), WebhookRetry::default());
        assert!(validate(0, &[t("http://127.0.0.1:1/x", None)], &b, &r).is_ok());
        let err = validate(0, &[t("ftp://h/x", None)], &b, &r).unwrap_err();
        assert!(err.to_string().contains("apps[0].webhooks[0].url"), "{err}");
        assert!(validate(0, &[t("nope", None)], &b, &r).is_err());
        let err = validate(0, &[t("https://h/", Some(("X-Pusher-Key", "k")))], &b, &r);
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("headers.X-Pusher-Key"));
        assert!(validate(0, &[t("https://h/", Some(("bad name", "k")))], &b, &r).is_err());
        let mut none = t("https://h/", None);
        none.event_types.clear();
        assert!(validate(0, &[none], &b, &r).is_err());
    }

    #[test]
    fn parses_the_documented_shape_and_masks_headers() {
        let text = r#"
[[apps]]
id = "a"
key = "k"
secret = "s"
webhooks = [
  { url = "https://example.com/pusher/webhook", event_types = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss", "subscription_count"], filter = { channel_name_starts_with = "private-", channel_name_ends_with = "" }, headers = { "X-Custom" = "secret-token" } },
]
webhook_batching = { enabled = true, window_ms = 20, max_events = 5 }
webhook_vacated_delay_ms = 300
webhook_retry = { max_attempts = 2 }
"#;
        let mut c = super::super::Config::from_toml(text).unwrap();
        c.validate().unwrap();
        let app = &c.apps[0];
        assert_eq!(app.webhooks[0].event_types.len(), 7);
        assert!(app.webhooks[0].filter.matches("private-x"));
        assert_eq!(app.webhook_batching.max_events, 5);
        assert_eq!(app.webhook_retry.max_attempts, 2);
        assert_eq!(app.webhook_retry.timeout_ms, 5000);
        let out = c.to_masked_toml();
        assert!(!out.contains("secret-token"), "{out}");
        let again = super::super::Config::from_toml(&out).unwrap();
        assert_eq!(again.apps[0].webhooks.len(), 1);
        let bad = text.replace("cache_miss", "cache_hit");
        assert!(super::super::Config::from_toml(&bad).is_err());
    }
}
