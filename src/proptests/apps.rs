//! `App::origin_allowed`, which runs on every WebSocket handshake before anything is
//! authenticated: never panics on any `Origin` header or pattern; `*` allows everything; a host
//! pattern allows that host under any scheme, port and path; `*.domain` allows subdomains only.

use proptest::prelude::*;

use super::config;
use crate::apps::App;
use crate::config::AppConfig;

fn app(origins: Vec<String>) -> App {
    let mut cfg = AppConfig::new("app", "key", "secret");
    cfg.allowed_origins = origins;
    App::new(cfg)
}

fn host() -> impl Strategy<Value = String> {
    "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,12}){0,3}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics(
        patterns in prop::collection::vec(prop_oneof![any::<String>(), "[*a-z.:/]{0,12}"], 1..4),
        origin in proptest::option::of(prop_oneof![any::<String>(), "[*a-z.:/0-9]{0,20}"]),
    ) {
        let allowed = app(patterns.clone()).origin_allowed(origin.as_deref());
        if patterns.iter().any(|p| p == "*") {
            prop_assert!(allowed);
        }
        if origin.is_none() && !patterns.iter().any(|p| p == "*") {
            prop_assert!(!allowed);
        }
    }

    #[test]
    fn a_host_pattern_allows_that_host_only(
        host in host(),
        other in host(),
        scheme in prop::sample::select(vec!["https://", "http://", ""]),
        port in proptest::option::of(1u16..),
        path in "(/[a-z]{0,5}){0,2}",
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let origin = format!("{scheme}{host}{port}{path}");
        prop_assert!(app(vec![host.clone()]).origin_allowed(Some(&origin)));
        prop_assert_eq!(app(vec![other.clone()]).origin_allowed(Some(&origin)), other == host);
        let sub = format!("{scheme}x.{host}{port}");
        let wildcard = app(vec![format!("*.{host}")]);
        prop_assert!(wildcard.origin_allowed(Some(&sub)));
        prop_assert!(!wildcard.origin_allowed(Some(&origin)));
    }
}
