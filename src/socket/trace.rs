//! `--debug` logging of every frame in and out of a socket, redacted and truncated. These are
//! plain, never-inlined functions: a `tracing` macro inside a connection's async code would
//! reserve its field set in every connection's future, and these run only when the `debug`
//! level is on for `herald::frames` (the level check is a static load otherwise).
//!
//! Nothing secret is logged in full: `auth` signatures are cut to the app key, `channel_data`
//! and `user_data` are replaced by their length, and the signed string quoted in a refused
//! subscription's error is dropped; every line is cut to [`MAX_LOGGED`] bytes.

use serde_json::Value;

/// Bytes of a frame written to the log at most.
pub const MAX_LOGGED: usize = 200;

/// Logs a frame received from `socket`.
#[inline(never)]
pub fn frame_in(socket: &dyn std::fmt::Display, text: &str) {
    if tracing::enabled!(target: "herald::frames", tracing::Level::DEBUG) {
        let shown = loggable(text);
        tracing::debug!(target: "herald::frames", %socket, len = text.len(), "in: {shown}");
    }
}

/// Logs a frame written to `socket`, taking its text only when logging is on (checking it is
/// UTF-8 would otherwise cost every delivery).
#[inline]
pub fn frame_out_lazy(socket: &dyn std::fmt::Display, frame: &crate::protocol::outbound::Frame) {
    if tracing::enabled!(target: "herald::frames", tracing::Level::DEBUG) {
        frame_out(socket, frame.as_str());
    }
}

/// Logs a frame written to `socket`.
#[inline(never)]
pub fn frame_out(socket: &dyn std::fmt::Display, text: &str) {
    if tracing::enabled!(target: "herald::frames", tracing::Level::DEBUG) {
        let shown = loggable(text);
        tracing::debug!(target: "herald::frames", %socket, len = text.len(), "out: {shown}");
    }
}

/// `text` redacted (see the module docs) and truncated to [`MAX_LOGGED`] bytes.
pub fn loggable(text: &str) -> String {
    let needs_redaction = ["\"auth", "channel_data", "user_data", "digest of"]
        .iter()
        .any(|k| text.contains(k));
    let text = if needs_redaction {
        redact(text)
    } else {
        text.to_owned()
    };
    truncate(&text, MAX_LOGGED)
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn redact(text: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(text) else {
        return "<unparsed frame with credentials, not logged>".to_owned();
    };
    if let Some(data) = v.get_mut("data") {
        match data {
            Value::Object(_) => redact_fields(data),
            // Server frames carry `data` as a JSON string.
            Value::String(inner) => {
                if let Ok(mut d) = serde_json::from_str::<Value>(inner) {
                    redact_fields(&mut d);
                    *inner = d.to_string();
                } else if inner.contains("digest of") {
                    *inner = "<redacted>".to_owned();
                }
            }
            _ => {}
        }
    }
    v.to_string()
}

fn redact_fields(data: &mut Value) {
    let Value::Object(map) = data else { return };
    for (k, v) in map.iter_mut() {
        let Value::String(s) = v else { continue };
        match k.as_str() {
            "auth" => {
                let key = s.split(':').next().unwrap_or("");
                *s = format!("{key}:<redacted>");
            }
            "channel_data" | "user_data" => *s = format!("<{} bytes>", s.len()),
            _ if s.contains("digest of") => {
                let head = s.split("digest of").next().unwrap_or("");
                *s = format!("{head}digest of <redacted>");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_lines_cut() {
        let sub = r#"{"event":"pusher:subscribe","data":{"channel":"presence-x","auth":"key:0123456789abcdef","channel_data":"{\"user_id\":\"secret-user\"}"}}"#;
        let out = loggable(sub);
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(!out.contains("secret-user"), "{out}");
        assert!(
            out.contains("key:<redacted>") && out.contains("presence-x"),
            "{out}"
        );
        let err = r#"{"event":"pusher:subscription_error","channel":"private-x","data":"{\"type\":\"AuthError\",\"error\":\"Invalid signature: Expected HMAC SHA256 hex digest of 1.2:private-x\",\"status\":401}"}"#;
        let out = loggable(err);
        assert!(!out.contains("1.2:private-x"), "{out}");
        let signin = r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"u1\\\"}\"}"}"#;
        assert!(!loggable(signin).contains("u1"));
        let long = "x".repeat(1000);
        assert_eq!(loggable(&long).len(), MAX_LOGGED + '…'.len_utf8());
        assert_eq!(truncate("héllo", 2), "h…");
        assert!(loggable(r#"{"auth":"k:s" broken"#).contains("not logged"));
    }
}
