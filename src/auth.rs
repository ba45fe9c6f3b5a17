//! Pure signature code: channel authorization, user sign-in, and HTTP API request signatures
//! (sorted decoded query, `body_md5`, timestamp window). Every comparison is constant-time.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Lower-case hex HMAC-SHA256 of `message` keyed with `secret`: every Pusher signature.
pub fn sign(secret: &str, message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Lower-case hex MD5, as `body_md5` carries it.
pub fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a socket-level auth string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No auth, or no `:` in it.
    #[error("Missing or malformed auth signature")]
    Malformed,
    /// The part before `:` is not the app key.
    #[error("Invalid key in subscription auth data: '{0}'")]
    WrongKey(String),
    /// The HMAC does not match.
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {0}")]
    BadSignature(String),
}

/// Checks `auth` (`<key>:<hex>`) against `HMAC(secret, string_to_sign)`.
fn verify_auth(key: &str, secret: &str, string_to_sign: &str, auth: &str) -> Result<(), AuthError> {
    let (given_key, signature) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if !ct_eq(given_key, key) {
        return Err(AuthError::WrongKey(given_key.to_owned()));
    }
    let expected = sign(secret, string_to_sign.as_bytes());
    if ct_eq(&expected, signature) {
        Ok(())
    } else {
        Err(AuthError::BadSignature(string_to_sign.to_owned()))
    }
}

/// Verifies a private / presence subscription: `socket_id:channel[:channel_data]`, with
/// `channel_data` taken byte-exact as received.
pub fn verify_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Result<(), AuthError> {
    let to_sign = match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    verify_auth(key, secret, &to_sign, auth)
}

/// Verifies `pusher:signin`: `socket_id::user::user_data`.
pub fn verify_user(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), AuthError> {
    verify_auth(
        key,
        secret,
        &format!("{socket_id}::user::{user_data}"),
        auth,
    )
}

/// Why an HTTP API request signature was refused (all 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// A required query parameter is absent.
    #[error("Missing query parameter: {0}")]
    Missing(&'static str),
    /// `auth_key` is not the app's key.
    #[error("Unknown auth_key")]
    WrongKey,
    /// `auth_version` other than 1.0.
    #[error("Unsupported auth_version: expected 1.0")]
    Version,
    /// The timestamp is not a number or is more than the window away from now.
    #[error("Timestamp expired: Given timestamp ({given}) not within 600s of server time ({now})")]
    Timestamp {
        /// What the client sent.
        given: String,
        /// Server time, Unix seconds.
        now: u64,
    },
    /// `body_md5` is missing or does not match the body.
    #[error("body_md5 does not match the request body")]
    BodyMd5,
    /// The HMAC does not match.
    #[error("Invalid signature: you should have sent HmacSHA256Hex({0:?}, your_secret_key)")]
    Signature(String),
}

/// The timestamp window of Pusher's API, in seconds.
pub const TIMESTAMP_WINDOW: u64 = 600;

/// A decoded HTTP API request as the signature sees it.
pub struct SignedRequest<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// Path without the configured prefix, as sent (e.g. `/apps/1/events`).
    pub path: &'a str,
    /// Query pairs, percent-decoded (form semantics), keys as sent.
    pub query: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `METHOD\nPATH\nk=v&...` over every param but `auth_signature`, keys lower-cased and sorted.
    pub fn string_to_sign(&self, path: &str) -> String {
        let mut params: Vec<(String, &str)> = self
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
            .collect();
        params.sort();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}\n{}\n{}", self.method, path, query.join("&"))
    }

    /// Full verification against one key/secret pair at time `now` (Unix seconds).
    pub fn verify(&self, key: &str, secret: &str, now: u64) -> Result<(), RequestAuthError> {
        let given_key = self
            .param("auth_key")
            .ok_or(RequestAuthError::Missing("auth_key"))?;
        if !ct_eq(given_key, key) {
            return Err(RequestAuthError::WrongKey);
        }
        let signature = self
            .param("auth_signature")
            .ok_or(RequestAuthError::Missing("auth_signature"))?;
        let version = self
            .param("auth_version")
            .ok_or(RequestAuthError::Missing("auth_version"))?;
        if version != "1.0" {
            return Err(RequestAuthError::Version);
        }
        let ts = self
            .param("auth_timestamp")
            .ok_or(RequestAuthError::Missing("auth_timestamp"))?;
        match ts.parse::<u64>() {
            Ok(t) if t.abs_diff(now) <= TIMESTAMP_WINDOW => {}
            _ => {
                return Err(RequestAuthError::Timestamp {
                    given: ts.to_owned(),
                    now,
                })
            }
        }
        match self.param("body_md5") {
            Some(md5) if !ct_eq(md5, &md5_hex(self.body)) => return Err(RequestAuthError::BodyMd5),
            None if !self.body.is_empty() => return Err(RequestAuthError::BodyMd5),
            _ => {}
        }
        let to_sign = self.string_to_sign(self.path);
        if ct_eq(&sign(secret, to_sign.as_bytes()), signature) {
            return Ok(());
        }
        if self.path.contains('%') {
            let decoded = percent_decode(self.path);
            let alt = self.string_to_sign(&decoded);
            if ct_eq(&sign(secret, alt.as_bytes()), signature) {
                return Ok(());
            }
        }
        Err(RequestAuthError::Signature(to_sign))
    }
}

/// Percent-decodes (no `+` handling: that is for query strings only).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Parses a query string with form semantics: `+` is a space, then percent-decoding.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "auth_vectors.rs"]
mod vectors;
