//! Tests of the `[scaling]` table: env precedence, URL building, validation, masking.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The scaling table after applying `pairs` over the defaults.
fn with_env(pairs: &[(&str, &str)]) -> Result<ScalingConfig, ConfigError> {
    let mut s = ScalingConfig::default();
    s.apply_env(&vars(pairs))?;
    Ok(s)
}

fn url_of(pairs: &[(&str, &str)]) -> String {
    with_env(pairs).unwrap().url
}

fn invalid_key(r: Result<impl std::fmt::Debug, ConfigError>) -> String {
    match r {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

#[test]
fn durations_take_integers_and_fractions() {
    let c =
        super::super::Config::from_toml("[scaling]\nheartbeat_interval = 2\nnode_timeout = 0.5\n")
            .unwrap();
    assert_eq!(c.scaling.heartbeat_interval, 2.0);
    assert_eq!(c.scaling.node_timeout, 0.5);
}

#[test]
fn no_variables_leave_the_table_alone() {
    assert_eq!(with_env(&[]).unwrap(), ScalingConfig::default());
    // Unrelated Redis variables are not read.
    assert_eq!(
        with_env(&[("REDIS_PREFIX", "x_"), ("REDIS_TIMEOUT", "5")]).unwrap(),
        ScalingConfig::default()
    );
}

#[test]
fn enabled_takes_true_false_1_0_in_any_case() {
    for (v, want) in [
        ("true", true),
        ("TRUE", true),
        ("True", true),
        ("1", true),
        ("false", false),
        ("False", false),
        ("0", false),
    ] {
        let mut s = ScalingConfig {
            enabled: !want,
            ..ScalingConfig::default()
        };
        s.apply_env(&vars(&[("REVERB_SCALING_ENABLED", v)]))
            .unwrap();
        assert_eq!(s.enabled, want, "{v}");
    }
    for v in ["yes", "on", "2", "enabled"] {
        let e = with_env(&[("REVERB_SCALING_ENABLED", v)]).unwrap_err();
        assert!(e.to_string().contains("`REVERB_SCALING_ENABLED`"), "{e}");
        assert!(e.to_string().contains(v), "{e}");
    }
    // Empty counts as unset.
    assert!(!with_env(&[("REVERB_SCALING_ENABLED", "")]).unwrap().enabled);
}

#[test]
fn channel_comes_from_reverb_scaling_channel() {
    let s = with_env(&[("REVERB_SCALING_CHANNEL", "my-app")]).unwrap();
    assert_eq!(s.channel, "my-app");
    assert_eq!(
        with_env(&[("REVERB_SCALING_CHANNEL", " ")])
            .unwrap()
            .channel,
        "reverb"
    );
}

#[test]
fn redis_url_is_taken_as_is_and_wins_over_the_parts() {
    let raw = "rediss://u:p%40ss@cache.example.com:6380/3";
    assert_eq!(url_of(&[("REDIS_URL", raw)]), raw);
    assert_eq!(
        url_of(&[
            ("REDIS_URL", raw),
            ("REDIS_HOST", "other"),
            ("REDIS_PORT", "1"),
            ("REDIS_PASSWORD", "x"),
        ]),
        raw
    );
    // An empty or `null` REDIS_URL falls through to the parts.
    assert_eq!(
        url_of(&[("REDIS_URL", ""), ("REDIS_HOST", "h")]),
        "redis://h:6379/0"
    );
    assert_eq!(
        url_of(&[("REDIS_URL", "null"), ("REDIS_HOST", "h")]),
        "redis://h:6379/0"
    );
}

#[test]
fn parts_build_a_url_with_reverbs_defaults() {
    assert_eq!(url_of(&[("REDIS_HOST", "redis")]), "redis://redis:6379/0");
    assert_eq!(
        url_of(&[("REDIS_PORT", "6380")]),
        "redis://127.0.0.1:6380/0"
    );
    assert_eq!(url_of(&[("REDIS_DB", "2")]), "redis://127.0.0.1:6379/2");
    assert_eq!(
        url_of(&[
            ("REDIS_HOST", "r.internal"),
            ("REDIS_PORT", "7000"),
            ("REDIS_USERNAME", "herald"),
            ("REDIS_PASSWORD", "secret"),
            ("REDIS_DB", "4"),
        ]),
        "redis://herald:secret@r.internal:7000/4"
    );
    assert_eq!(
        url_of(&[("REDIS_PASSWORD", "secret")]),
        "redis://:secret@127.0.0.1:6379/0"
    );
    assert_eq!(
        url_of(&[("REDIS_USERNAME", "herald")]),
        "redis://herald@127.0.0.1:6379/0"
    );
    assert_eq!(url_of(&[("REDIS_HOST", "::1")]), "redis://[::1]:6379/0");
}

#[test]
fn user_and_password_are_percent_encoded() {
    let url = url_of(&[
        ("REDIS_USERNAME", "a b@c"),
        ("REDIS_PASSWORD", "p:w/d@#?%~x"),
    ]);
    assert_eq!(
        url,
        "redis://a%20b%40c:p%3Aw%2Fd%40%23%3F%25~x@127.0.0.1:6379/0"
    );
    // The client decodes them back.
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
    assert_eq!(info.redis_settings().username(), Some("a b@c"));
    assert_eq!(info.redis_settings().password(), Some("p:w/d@#?%~x"));
}

#[test]
fn laravels_stock_env_gives_the_default_url() {
    // A fresh Laravel .env: REDIS_PASSWORD=null means no password.
    let s = with_env(&[
        ("REDIS_CLIENT", "phpredis"),
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PASSWORD", "null"),
        ("REDIS_PORT", "6379"),
    ])
    .unwrap();
    assert_eq!(s.url, ScalingConfig::default().url);
    assert_eq!(
        url_of(&[("REDIS_PASSWORD", "(null)")]),
        "redis://127.0.0.1:6379/0"
    );
}

#[test]
fn tls_hosts_give_rediss() {
    for host in [
        "tls://cache.example.com",
        "rediss://cache.example.com",
        "TLS://cache.example.com",
    ] {
        assert_eq!(
            url_of(&[("REDIS_HOST", host), ("REDIS_PORT", "6380")]),
            "rediss://cache.example.com:6380/0",
            "{host}"
        );
    }
    assert_eq!(url_of(&[("REDIS_HOST", "redis://h")]), "redis://h:6379/0");
    assert_eq!(url_of(&[("REDIS_HOST", "tcp://h")]), "redis://h:6379/0");
}

#[test]
fn socket_paths_give_unix_urls() {
    assert_eq!(
        url_of(&[("REDIS_HOST", "/run/redis/redis.sock"), ("REDIS_DB", "1")]),
        "unix:///run/redis/redis.sock?db=1"
    );
    let url = url_of(&[
        ("REDIS_HOST", "unix:///run/redis.sock"),
        ("REDIS_USERNAME", "u"),
        ("REDIS_PASSWORD", "p&q"),
    ]);
    assert_eq!(url, "unix:///run/redis.sock?db=0&user=u&pass=p%26q");
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
    assert_eq!(info.redis_settings().password(), Some("p&q"));
}

#[test]
fn bad_parts_name_the_variable_when_scaling_is_on() {
    let on = ("REVERB_SCALING_ENABLED", "true");
    assert_eq!(
        invalid_key(with_env(&[on, ("REDIS_PORT", "abc")])),
        "REDIS_PORT"
    );
    assert_eq!(
        invalid_key(with_env(&[on, ("REDIS_PORT", "0")])),
        "REDIS_PORT"
    );
    assert_eq!(
        invalid_key(with_env(&[on, ("REDIS_PORT", "70000")])),
        "REDIS_PORT"
    );
    assert_eq!(
        invalid_key(with_env(&[on, ("REDIS_DB", "one")])),
        "REDIS_DB"
    );
    assert_eq!(
        invalid_key(with_env(&[on, ("REDIS_HOST", "tls://")])),
        "REDIS_HOST"
    );
}

#[test]
fn bad_parts_are_ignored_while_scaling_is_off() {
    // Kubernetes injects REDIS_PORT=tcp://IP:PORT for a Service named redis.
    let s = with_env(&[("REDIS_PORT", "tcp://10.0.0.5:6379")]).unwrap();
    assert_eq!(s, ScalingConfig::default());
}

#[test]
fn defaults_validate_and_so_do_built_urls() {
    ScalingConfig::default().validate().unwrap();
    let enabled = ScalingConfig {
        enabled: true,
        ..ScalingConfig::default()
    };
    enabled.validate().unwrap();
    for url in [
        "redis://127.0.0.1:6379/0",
        "rediss://u:p@cache.example.com:6380/2",
        "REDIS://h",
        "unix:///run/redis.sock",
        "redis+unix:///run/redis.sock?db=2",
    ] {
        let s = ScalingConfig {
            url: url.into(),
            ..enabled.clone()
        };
        s.validate().unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[test]
fn url_is_checked_only_when_enabled() {
    let bad = ScalingConfig {
        url: "tls://h:6379".into(),
        ..ScalingConfig::default()
    };
    bad.validate().unwrap();
    for url in [
        "tls://h:6379",
        "http://h",
        "h:6379",
        "",
        "redis://",
        "redis://h/notanumber",
        "unix://relative.sock",
    ] {
        let s = ScalingConfig {
            enabled: true,
            url: url.into(),
            ..ScalingConfig::default()
        };
        assert_eq!(invalid_key(s.validate()), "scaling.url", "{url}");
    }
}

#[test]
fn url_errors_do_not_repeat_the_password() {
    let s = ScalingConfig {
        enabled: true,
        url: "redis://u:hunter2@h/notanumber".into(),
        ..ScalingConfig::default()
    };
    let e = s.validate().unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn timings_and_sizes_are_validated_by_key() {
    let check = |f: &dyn Fn(&mut ScalingConfig)| {
        let mut s = ScalingConfig::default();
        f(&mut s);
        invalid_key(s.validate())
    };
    let hb = "scaling.heartbeat_interval";
    assert_eq!(check(&|s| s.heartbeat_interval = 0.0), hb);
    assert_eq!(check(&|s| s.heartbeat_interval = -1.0), hb);
    assert_eq!(check(&|s| s.heartbeat_interval = f64::NAN), hb);
    assert_eq!(check(&|s| s.heartbeat_interval = f64::INFINITY), hb);
    assert_eq!(check(&|s| s.heartbeat_interval = 1e-12), hb);
    let nt = "scaling.node_timeout";
    assert_eq!(check(&|s| s.node_timeout = 2.0), nt); // exactly 2 × 1.0
    assert_eq!(check(&|s| s.node_timeout = 1e300), nt);
    assert_eq!(check(&|s| s.node_timeout = f64::NAN), nt);
    assert_eq!(
        check(&|s| {
            s.heartbeat_interval = 3.0;
            s.node_timeout = 5.0;
        }),
        nt
    );
    assert_eq!(
        check(&|s| s.outage_buffer_messages = 0),
        "scaling.outage_buffer_messages"
    );
    assert_eq!(
        check(&|s| s.outage_buffer_age = 0),
        "scaling.outage_buffer_age"
    );
    assert_eq!(check(&|s| s.channel = String::new()), "scaling.channel");
    // Fractions and an empty prefix are fine.
    let mut s = ScalingConfig {
        heartbeat_interval: 0.25,
        node_timeout: 0.6,
        prefix: String::new(),
        outage_buffer_messages: 1,
        outage_buffer_age: 1,
        ..ScalingConfig::default()
    };
    s.validate().unwrap();
    s.node_timeout = 2.01;
    s.heartbeat_interval = 1.0;
    s.validate().unwrap();
}

#[test]
fn masking_hides_only_the_password() {
    let cases = [
        (
            "redis://user:hunter2@host:6379/0",
            "redis://user:***@host:6379/0",
        ),
        ("rediss://:hunter2@host:6380/1", "rediss://:***@host:6380/1"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://u:p/w@d@host:6379/0", "redis://u:***@host:6379/0"),
        (
            "unix:///run/redis.sock?db=0&user=u&pass=hunter2",
            "unix:///run/redis.sock?db=0&user=u&pass=***",
        ),
        ("not a url", "not a url"),
    ];
    for (url, want) in cases {
        let s = ScalingConfig {
            url: url.into(),
            ..ScalingConfig::default()
        };
        assert_eq!(s.masked_url(), want, "{url}");
    }
}
