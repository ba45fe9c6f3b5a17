//! Console sign-in: an app id with that app's secret (or the `[console] admin_token`) buys a
//! short-lived session token `"<app>.<expires>.<hmac>"`, the HMAC keyed with the app's secret,
//! so rotating the secret signs every console viewer out. The token never contains a secret.

use subtle::ConstantTimeEq;

use crate::apps::AppRegistry;
use crate::auth::sign;

/// How long a console session lasts, in seconds.
pub const SESSION_TTL: u64 = 8 * 3600;

/// Why a console sign-in or session token was refused (the page shows one message for all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No app has that id.
    #[error("unknown app")]
    UnknownApp,
    /// Neither the app's secret nor the admin token.
    #[error("wrong secret")]
    WrongSecret,
    /// The token is malformed, forged, for another app, or expired.
    #[error("invalid or expired session")]
    BadToken,
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn mac(secret: &str, app: &str, expires: u64) -> String {
    sign(secret, format!("herald-console:{app}:{expires}").as_bytes())
}

/// Signs in to `app`'s console with its secret or the admin token; returns a session token
/// valid until `now + SESSION_TTL`.
pub fn sign_in(
    apps: &AppRegistry,
    admin_token: Option<&str>,
    app: &str,
    secret: &str,
    now: u64,
) -> Result<String, SessionError> {
    let found = apps.by_id(app).ok_or(SessionError::UnknownApp)?;
    let app_secret = found.config().secret.clone();
    let admin = admin_token.is_some_and(|t| !t.is_empty() && ct_eq(t, secret));
    if !admin && !ct_eq(&app_secret, secret) {
        return Err(SessionError::WrongSecret);
    }
    let expires = now + SESSION_TTL;
    Ok(format!(
        "{app}.{expires}.{}",
        mac(&app_secret, app, expires)
    ))
}

/// The app a session token was issued for (not yet verified: see [`verify`]).
pub fn app_of(token: &str) -> Option<&str> {
    // App ids may contain dots: the two last fields are split off the right.
    token.rsplitn(3, '.').nth(2)
}

/// Checks a session token for `app`; the app id it was issued for must match.
pub fn verify(apps: &AppRegistry, app: &str, token: &str, now: u64) -> Result<(), SessionError> {
    // App ids may contain dots: split the two last fields off the right.
    let mut parts = token.rsplitn(3, '.');
    let (Some(sig), Some(expires), Some(for_app)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SessionError::BadToken);
    };
    let expires: u64 = expires.parse().map_err(|_| SessionError::BadToken)?;
    if for_app != app || expires < now {
        return Err(SessionError::BadToken);
    }
    let found = apps.by_id(app).ok_or(SessionError::BadToken)?;
    match ct_eq(&mac(&found.config().secret, app, expires), sig) {
        true => Ok(()),
        false => Err(SessionError::BadToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;

    fn apps() -> AppRegistry {
        AppRegistry::new(&[
            AppConfig::new("a.1", "key-a", "secret-a"),
            AppConfig::new("b", "key-b", "secret-b"),
        ])
    }

    #[test]
    fn right_secret_signs_in_and_token_verifies_without_the_secret_in_it() {
        let apps = apps();
        let t = sign_in(&apps, None, "a.1", "secret-a", 100).unwrap();
        assert!(!t.contains("secret-a"));
        assert_eq!(verify(&apps, "a.1", &t, 100), Ok(()));
        assert_eq!(app_of(&t), Some("a.1"));
        assert_eq!(app_of("x.1"), None);
        assert_eq!(
            verify(&apps, "a.1", &t, 101 + SESSION_TTL),
            Err(SessionError::BadToken)
        );
        assert_eq!(verify(&apps, "b", &t, 100), Err(SessionError::BadToken));
    }

    #[test]
    fn wrong_secret_other_apps_secret_and_unknown_app_are_refused() {
        let apps = apps();
        assert_eq!(
            sign_in(&apps, None, "a.1", "nope", 0),
            Err(SessionError::WrongSecret)
        );
        assert_eq!(
            sign_in(&apps, None, "a.1", "secret-b", 0),
            Err(SessionError::WrongSecret)
        );
        assert_eq!(
            sign_in(&apps, None, "zz", "secret-a", 0),
            Err(SessionError::UnknownApp)
        );
        assert_eq!(
            sign_in(&apps, Some(""), "a.1", "", 0),
            Err(SessionError::WrongSecret)
        );
    }

    #[test]
    fn admin_token_signs_in_to_any_app() {
        let apps = apps();
        let t = sign_in(&apps, Some("adm"), "b", "adm", 0).unwrap();
        assert_eq!(verify(&apps, "b", &t, 0), Ok(()));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let apps = apps();
        let t = sign_in(&apps, None, "b", "secret-b", 0).unwrap();
        let forged = format!("{}0", &t[..t.len() - 1]);
        assert_eq!(verify(&apps, "b", &forged, 0), Err(SessionError::BadToken));
        assert_eq!(
            verify(&apps, "b", "garbage", 0),
            Err(SessionError::BadToken)
        );
    }
}
