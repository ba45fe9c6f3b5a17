//! `auth`: percent-decoding, query parsing, `body_md5`, the HTTP API signature and the socket
//! auth strings. Never panics; a request signed as the Pusher SDKs sign it is accepted; any
//! single-byte change to what is signed is refused, unless it leaves the decoded, key-lower-cased
//! parameters unchanged (`auth_key` vs `AUTH_KEY`, `%2f` vs `%2F`), which the Pusher rules
//! define as the same request.

use proptest::prelude::*;

use super::config;
use crate::auth::{
    md5_hex, parse_query, percent_decode, sign, verify_channel, verify_user, AuthError,
    RequestAuthError, SignedRequest, TIMESTAMP_WINDOW,
};

const KEY: &str = "app-key";
const SECRET: &str = "app-secret";
const NOW: u64 = 1_750_000_000;

/// Percent-encodes every byte outside the unreserved set, with upper- or lower-case hex;
/// with `plus`, a space becomes `+` (form encoding).
fn encode(s: &str, upper: bool, plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else if b == b' ' && plus {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// What the signature covers: keys lower-cased, sorted, `auth_signature` left out. Written
/// here from the Pusher docs rather than taken from `auth.rs`.
fn canonical(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    v.sort();
    v
}

fn string_to_sign(method: &str, path: &str, pairs: &[(String, String)]) -> String {
    let query: Vec<String> = canonical(pairs)
        .into_iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

/// A signed API request as an SDK builds it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

impl Req {
    fn verify(&self, now: u64) -> Result<(), RequestAuthError> {
        let query = parse_query(&self.query);
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &query,
            body: &self.body,
        }
        .verify(KEY, SECRET, now)
    }
}

/// Extra parameters an SDK may add (`info`, `filter_by_prefix`, ...): names that are not
/// `auth_*` or `body_md5`, values anything.
fn extra_params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map("[a-z][a-z0-9_]{0,7}", any::<String>(), 0..4).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| !k.starts_with("auth_") && k != "body_md5")
            .collect()
    })
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec!["GET", "POST"]),
        "/apps/[a-zA-Z0-9_-]{1,12}(/[a-z_]{1,10}){0,3}",
        extra_params(),
        prop::collection::vec(any::<u8>(), 0..200),
        -(TIMESTAMP_WINDOW as i64)..=TIMESTAMP_WINDOW as i64,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(method, path, extra, body, skew, upper, plus, shuffle)| {
            let mut pairs = extra;
            pairs.push(("auth_key".into(), KEY.into()));
            pairs.push(("auth_timestamp".into(), (NOW as i64 + skew).to_string()));
            pairs.push(("auth_version".into(), "1.0".into()));
            if !body.is_empty() || shuffle {
                pairs.push(("body_md5".into(), md5_hex(&body)));
            }
            let signature = sign(SECRET, string_to_sign(method, &path, &pairs).as_bytes());
            pairs.push(("auth_signature".into(), signature));
            if shuffle {
                pairs.reverse();
            }
            let query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k, upper, plus), encode(v, upper, plus)))
                .collect();
            Req {
                method: method.into(),
                path,
                query: query.join("&"),
                body,
            }
        })
}

fn mutate(bytes: &mut [u8], at: prop::sample::Index, to: u8) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let i = at.index(bytes.len());
    let changed = bytes[i] != to;
    bytes[i] = to;
    changed
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn percent_decode_inverts_encoding(s in any::<String>(), upper in any::<bool>()) {
        prop_assert_eq!(percent_decode(&encode(&s, upper, false)), s);
    }

    #[test]
    fn percent_decode_never_panics(s in prop_oneof![any::<String>(), "[%0-9a-fA-Fg-z]{0,30}"]) {
        let decoded = percent_decode(&s);
        if !s.contains('%') {
            prop_assert_eq!(decoded, s);
        }
    }

    #[test]
    fn parse_query_inverts_form_encoding(
        pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
        upper in any::<bool>(),
        plus in any::<bool>(),
    ) {
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, upper, plus), encode(v, upper, plus)))
            .collect();
        prop_assert_eq!(parse_query(&query.join("&")), pairs);
    }

    #[test]
    fn parse_query_never_panics(s in prop_oneof![any::<String>(), "[a-z=&%+0-9A-F]{0,40}"]) {
        for (k, v) in parse_query(&s) {
            prop_assert!(!k.contains('+') && !v.contains('+') || s.contains("%2B") || s.contains("%2b"));
        }
    }

    #[test]
    fn body_md5_is_lower_hex_and_sees_every_byte(
        body in prop::collection::vec(any::<u8>(), 1..300),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let md5 = md5_hex(&body);
        prop_assert_eq!(md5.len(), 32);
        prop_assert!(md5.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let mut other = body.clone();
        if mutate(&mut other, at, to) {
            prop_assert_ne!(md5_hex(&other), md5);
        }
    }

    #[test]
    fn signed_requests_are_accepted(req in request()) {
        prop_assert_eq!(req.verify(NOW), Ok(()));
    }

    #[test]
    fn requests_outside_the_timestamp_window_are_refused(req in request(), by in 1u64..100_000) {
        let given: u64 = parse_query(&req.query)
            .into_iter()
            .find(|(k, _)| k == "auth_timestamp")
            .unwrap()
            .1
            .parse()
            .unwrap();
        let refused = |r: Result<(), RequestAuthError>| matches!(r, Err(RequestAuthError::Timestamp { .. }));
        prop_assert!(refused(req.verify(given + TIMESTAMP_WINDOW + by)));
        prop_assert!(refused(req.verify(given.saturating_sub(TIMESTAMP_WINDOW + by))));
    }

    /// One byte of the query string changed: refused, unless the decoded parameters (keys
    /// lower-cased) are the same.
    #[test]
    fn query_mutations_are_refused(
        req in request(),
        at in any::<prop::sample::Index>(),
        to in 0u8..128,
    ) {
        let mut bytes = req.query.clone().into_bytes();
        prop_assume!(mutate(&mut bytes, at, to));
        let mutated = Req { query: String::from_utf8(bytes).unwrap(), ..req.clone() };
        let same = canonical(&parse_query(&mutated.query)) == canonical(&parse_query(&req.query));
        prop_assert_eq!(mutated.verify(NOW).is_ok(), same, "{:?}", mutated.query);
    }

    #[test]
    fn body_method_and_path_mutations_are_refused(
        req in request(),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
        what in 0..3u8,
    ) {
        let mut m = req.clone();
        let changed = match what {
            0 => mutate(&mut m.body, at, to),
            1 => {
                let mut b = m.method.clone().into_bytes();
                let c = mutate(&mut b, at, to & 0x7f);
                m.method = String::from_utf8(b).unwrap();
                c
            }
            _ => {
                let mut b = m.path.clone().into_bytes();
                let c = mutate(&mut b, at, to & 0x7f);
                m.path = String::from_utf8(b).unwrap();
                c && percent_decode(&m.path) != req.path
            }
        };
        prop_assume!(changed);
        prop_assert!(m.verify(NOW).is_err());
    }

    #[test]
    fn verify_never_panics(
        pairs in prop::collection::vec(
            (prop_oneof![
                Just("auth_key".to_owned()), Just("auth_signature".to_owned()),
                Just("auth_timestamp".to_owned()), Just("auth_version".to_owned()),
                Just("body_md5".to_owned()), Just("AUTH_KEY".to_owned()), any::<String>()
            ], any::<String>()),
            0..8,
        ),
        method in any::<String>(),
        path in any::<String>(),
        body in prop::collection::vec(any::<u8>(), 0..50),
        now in any::<u64>(),
    ) {
        let req = SignedRequest { method: &method, path: &path, query: &pairs, body: &body };
        let _ = req.verify(KEY, SECRET, now);
        let _ = req.string_to_sign(&path);
    }

    /// Channel auth (`socket_id:channel[:channel_data]`) and user sign-in
    /// (`socket_id::user::user_data`): accepted as signed, any single-byte change refused.
    #[test]
    fn socket_auth_accepts_the_signature_and_refuses_mutations(
        socket_id in "[0-9]{1,10}\\.[0-9]{1,10}",
        channel in "(private-|presence-)[-a-zA-Z0-9_=@,.;]{1,40}",
        data in proptest::option::of(any::<String>()),
        at in any::<prop::sample::Index>(),
        to in 0u8..128,
        field in 0..4u8,
    ) {
        let to_sign = match &data {
            Some(d) => format!("{socket_id}:{channel}:{d}"),
            None => format!("{socket_id}:{channel}"),
        };
        let auth = format!("{KEY}:{}", sign(SECRET, to_sign.as_bytes()));
        prop_assert_eq!(verify_channel(KEY, SECRET, &socket_id, &channel, data.as_deref(), &auth), Ok(()));
        let user_data = data.clone().unwrap_or_default();
        let user_auth = format!("{KEY}:{}", sign(SECRET, format!("{socket_id}::user::{user_data}").as_bytes()));
        prop_assert_eq!(verify_user(KEY, SECRET, &socket_id, &user_data, &user_auth), Ok(()));

        let ascii_mutation = |s: &str| {
            let mut b = s.as_bytes().to_vec();
            mutate(&mut b, at, to)
                .then(|| String::from_utf8_lossy(&b).into_owned())
                .filter(|m| m != s)
        };
        let refused = |r: Result<(), AuthError>| r.is_err();
        match field {
            0 => if let Some(bad) = ascii_mutation(&auth) {
                prop_assert!(refused(verify_channel(KEY, SECRET, &socket_id, &channel, data.as_deref(), &bad)));
                prop_assert!(refused(verify_user(KEY, SECRET, &socket_id, &user_data, &bad)));
            },
            1 => if let Some(bad) = ascii_mutation(&socket_id) {
                prop_assert!(refused(verify_channel(KEY, SECRET, &bad, &channel, data.as_deref(), &auth)));
                prop_assert!(refused(verify_user(KEY, SECRET, &bad, &user_data, &user_auth)));
            },
            2 => if let Some(bad) = ascii_mutation(&channel) {
                prop_assert!(refused(verify_channel(KEY, SECRET, &socket_id, &bad, data.as_deref(), &auth)));
            },
            _ => if let Some(bad) = ascii_mutation(&user_data) {
                if data.is_some() {
                    prop_assert!(refused(verify_channel(KEY, SECRET, &socket_id, &channel, Some(&bad), &auth)));
                }
                prop_assert!(refused(verify_user(KEY, SECRET, &socket_id, &bad, &user_auth)));
            },
        }
    }
}
