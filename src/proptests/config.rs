//! Config parsing: TOML and the `REVERB_*` / `REDIS_*` overlay never panic on arbitrary input;
//! a config serialised to TOML parses back equal; `.env` files written in every style Laravel
//! uses parse to what was written; secrets never show in `to_masked_toml` or the masked URL.

use std::collections::HashMap;

use proptest::prelude::*;

use super::config;
use crate::config::{
    parse_env_file, AppConfig, ClientEventsFrom, Config, RateLimiting, ScalingConfig, ServerConfig,
};

/// Integers TOML can hold (it has no unsigned 64-bit type).
fn n() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..100_000, 1u64..=i64::MAX as u64]
}

fn app() -> impl Strategy<Value = AppConfig> {
    (
        (
            "[a-zA-Z0-9_-]{1,12}",
            "[a-zA-Z0-9_-]{1,20}",
            "s3cr[a-zA-Z0-9]{12,24}",
        ),
        (n(), n(), proptest::option::of(n()), 1usize..1_000_000),
        prop::collection::vec("[ -~]{0,30}", 1..4),
        prop::sample::select(vec![ClientEventsFrom::Members, ClientEventsFrom::All]),
        (1usize..10_000, 1u32..1000, n()),
        (
            1usize..100_000,
            any::<bool>(),
            1u32..100_000,
            n(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (id, key, secret),
                (ping, activity, max_conn, msg),
                origins,
                from,
                (members, rate, ttl),
                (channels, limited, attempts, decay, terminate),
            )| {
                let mut a = AppConfig::new(&id, &key, &secret);
                a.ping_interval = ping;
                a.activity_timeout = activity;
                a.max_connections = max_conn;
                a.max_message_size = msg;
                a.allowed_origins = origins;
                a.accept_client_events_from = from;
                a.max_presence_members = members;
                a.client_events_per_second = rate;
                a.cache_ttl = ttl;
                a.max_channels_per_connection = channels;
                a.rate_limiting = RateLimiting {
                    enabled: limited,
                    max_attempts: attempts,
                    decay_seconds: decay,
                    terminate_on_limit: terminate,
                };
                a
            },
        )
}

fn full_config() -> impl Strategy<Value = Config> {
    (
        (
            "[ -~]{1,20}",
            any::<u16>(),
            "(/[a-z0-9]{1,8}){0,2}",
            1usize..10_000_000,
            1usize..100_000,
        ),
        prop::collection::vec(app(), 1..4),
        (
            0.001f64..100.0,
            0.001f64..100.0,
            8192usize..1_000_000,
            0usize..100_000,
            0usize..10_000,
        ),
        (
            any::<bool>(),
            "[ -~]{0,40}",
            "[ -~]{0,20}",
            0.001f64..100.0,
            0.001f64..1000.0,
        ),
    )
        .prop_map(
            |(
                (host, port, path, size, queued),
                apps,
                (first_byte, header, head, pending, per_ip),
                (enabled, url, channel, hb, timeout),
            )| {
                let server = ServerConfig {
                    host,
                    port,
                    path,
                    max_request_size: size,
                    max_queued_frames: queued,
                    first_byte_timeout: first_byte,
                    header_timeout: header,
                    max_head_size: head,
                    max_pending_connections: pending,
                    max_pending_per_ip: per_ip,
                    ..ServerConfig::default()
                };
                let scaling = ScalingConfig {
                    enabled,
                    url,
                    channel,
                    heartbeat_interval: hb,
                    node_timeout: timeout,
                    ..ScalingConfig::default()
                };
                Config {
                    server,
                    apps,
                    scaling,
                    metrics: Default::default(),
                    logging: Default::default(),
                }
            },
        )
}

/// A `.env` key and value, and the line style to write it in.
#[derive(Debug, Clone)]
enum Style {
    Bare,
    Double,
    Single,
    Export,
}

fn env_entry() -> impl Strategy<Value = (String, String, Style)> {
    (
        "[A-Z][A-Z0-9_]{0,15}",
        prop_oneof![
            // Bare: no spaces at the ends, no quote at the start, no ` #` comment, no `${`.
            "[a-zA-Z0-9_:/.@=-]{0,30}".prop_map(|v| (v, Style::Bare)),
            "[a-zA-Z0-9_:/.@=-]{0,30}".prop_map(|v| (v, Style::Export)),
            // Quoted: anything but the quote kind, a backslash and `${`.
            "[ -!#%-&(-\\[\\]-~\n]{0,30}".prop_map(|v| (v, Style::Double)),
            "[ -!#%-&(-\\[\\]-~]{0,30}".prop_map(|v| (v, Style::Single)),
        ],
    )
        .prop_map(|(k, (v, s))| (k, v, s))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn from_toml_never_panics(text in any::<String>()) {
        let _ = Config::from_toml(&text);
    }

    /// Documents with the real keys and values of any TOML type: parse or a named error, and
    /// `validate` never panics on what parses.
    #[test]
    fn known_keys_with_any_values_never_panic(
        table in prop::sample::select(vec!["server", "scaling", "[apps]"]),
        key in prop::sample::select(vec![
            "host", "port", "path", "max_request_size", "max_queued_frames", "max_connections",
            "id", "key", "secret", "ping_interval", "activity_timeout", "allowed_origins",
            "accept_client_events_from", "max_message_size", "client_events_per_second",
            "enabled", "url", "heartbeat_interval", "node_timeout", "outage_buffer_messages",
            "first_byte_timeout", "header_timeout", "max_head_size", "max_pending_connections",
            "max_pending_per_ip", "max_channels_per_connection", "rate_limiting",
        ]),
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            any::<bool>().prop_map(|v| v.to_string()),
            any::<String>().prop_map(|v| toml::Value::String(v).to_string()),
            Just("[]".to_owned()), Just("[\"*\", 1]".to_owned()), Just("{}".to_owned()),
            Just("inf".to_owned()), Just("nan".to_owned()), Just("-0".to_owned()),
        ],
    ) {
        let text = format!(
            "[{table}]\n{key} = {value}\n{}",
            if table == "[apps]" { "" } else { "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\n" }
        );
        if let Ok(mut c) = Config::from_toml(&text) {
            let _ = c.validate();
            let _ = c.to_masked_toml();
        }
    }

    #[test]
    fn toml_round_trips(c in full_config()) {
        let text = toml::to_string(&c).unwrap();
        prop_assert_eq!(Config::from_toml(&text).unwrap(), c.clone());
        let mut c = c;
        let _ = c.validate();
    }

    #[test]
    fn secrets_never_show_in_the_masked_config(
        c in full_config(),
        user in "[a-z]{0,8}",
        password in "Pw[!-~]{6,20}",
        in_query in any::<bool>(),
    ) {
        let mut c = c;
        c.scaling.url = if in_query {
            format!("redis://127.0.0.1:6379/0?password={}", password.replace(['&', '?', '#'], "_"))
        } else {
            format!("redis://{user}:{password}@127.0.0.1:6379/0")
        };
        let masked = c.to_masked_toml();
        for app in &c.apps {
            prop_assert!(!masked.contains(&app.secret), "secret shown: {}", masked);
        }
        let password = if in_query { password.replace(['&', '?', '#'], "_") } else { password };
        prop_assert!(!masked.contains(&password), "password shown: {}", masked);
        prop_assert!(!c.scaling.masked_url().contains(&password));
    }

    #[test]
    fn the_env_overlay_never_panics(
        vars in prop::collection::hash_map(
            prop_oneof![
                prop::sample::select(vec![
                    "REVERB_SERVER_HOST", "REVERB_SERVER_PORT", "REVERB_SERVER_PATH",
                    "REVERB_MAX_REQUEST_SIZE", "REVERB_APP_ID", "REVERB_APP_KEY",
                    "REVERB_APP_SECRET", "REVERB_APP_PING_INTERVAL", "REVERB_APP_ACTIVITY_TIMEOUT",
                    "REVERB_APP_MAX_MESSAGE_SIZE", "REVERB_APP_MAX_CONNECTIONS",
                    "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", "REVERB_SCALING_ENABLED",
                    "REVERB_SCALING_CHANNEL", "REVERB_APP_RATE_LIMITING_ENABLED",
                    "REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS", "REVERB_APP_RATE_LIMIT_DECAY_SECONDS",
                    "REVERB_APP_RATE_LIMIT_TERMINATE", "REDIS_URL", "REDIS_HOST", "REDIS_PORT",
                    "REDIS_PASSWORD", "REDIS_USERNAME", "REDIS_DB", "REDIS_SCHEME",
                ]).prop_map(String::from),
                "REVERB_[A-Z_]{0,20}",
            ],
            prop_oneof![any::<String>(), "[0-9]{0,6}", Just("true".to_owned()), Just(String::new())],
            0..8,
        ),
        start_empty in any::<bool>(),
    ) {
        let mut c = if start_empty { Config::from_toml("").unwrap() } else { Config::embedded() };
        if c.apply_env(&vars).is_ok() {
            let _ = c.validate();
        }
    }

    #[test]
    fn env_file_never_panics(text in prop_oneof![
        any::<String>(),
        "([A-Z_]{1,4}=[\"'$#{} a-z\\\\]{0,8}\n){0,6}",
        "(export )?[A-Z]{1,3}=\\$\\{[A-Z]{0,3}\\}?[a-z ]{0,3}",
    ]) {
        let _ = parse_env_file(&text);
    }

    /// Lines in every style, with comments and blank lines between them: each key gets the
    /// value last written for it.
    #[test]
    fn env_file_round_trips(
        entries in prop::collection::vec(env_entry(), 0..12),
        comment in "[ -~]{0,20}",
    ) {
        let mut text = String::new();
        let mut expected: HashMap<String, String> = HashMap::new();
        for (i, (k, v, style)) in entries.iter().enumerate() {
            if i % 3 == 0 {
                text.push_str(&format!("# {comment}\n\n"));
            }
            let line = match style {
                Style::Bare => format!("{k}={v}"),
                Style::Export => format!("export {k}={v}"),
                Style::Double => format!("{k}=\"{}\"", v.replace('\n', "\\n")),
                Style::Single => format!("{k}='{v}'"),
            };
            text.push_str(&line);
            text.push('\n');
            let value = match style {
                Style::Bare | Style::Export => v.trim().to_owned(),
                _ => v.clone(),
            };
            expected.insert(k.clone(), value);
        }
        prop_assert_eq!(parse_env_file(&text), expected);
    }

    #[test]
    fn env_file_expands_earlier_keys(value in "[a-zA-Z0-9_:/.@-]{0,20}", suffix in "[a-z0-9]{0,5}") {
        let text = format!("BASE={value}\nDERIVED=\"${{BASE}}{suffix}\"\nMISSING=${{NOPE}}{suffix}\n");
        let vars = parse_env_file(&text);
        prop_assert_eq!(vars["DERIVED"].clone(), format!("{value}{suffix}"));
        prop_assert_eq!(vars["MISSING"].clone(), suffix);
    }
}
