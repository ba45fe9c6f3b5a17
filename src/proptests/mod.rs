//! Property tests (proptest) for every parser and signature path. Each module asserts that its
//! parser never panics on arbitrary input and that valid input round-trips or is accepted.
//!
//! The case budget is fixed (256 per property, `PROPTEST_CASES` overrides it) and the seed is
//! fixed (`PROPTEST_RNG_SEED` overrides it), so CI runs the same cases every time; no failure
//! persistence files are written.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

mod apps;
mod auth;
mod channel;
mod config;
mod frames;
mod inbound;
mod presence;
mod socket_id;
mod wire;

/// The shared budget: deterministic, no persistence files.
pub(crate) fn config() -> ProptestConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    ProptestConfig {
        cases: env("PROPTEST_CASES").map_or(256, |n| n as u32),
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(env("PROPTEST_RNG_SEED").unwrap_or(0x4845_5241_4c44)),
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON without floats (whose text form does not always round-trip exactly).
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON value as compact or pretty text.
pub(crate) fn json_text(v: &serde_json::Value, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(v).unwrap()
    } else {
        v.to_string()
    }
}
