//! `herald install`: fresh app credentials in the shape `php artisan reverb:install` generates
//! (a 6-digit id, 20-character lowercase alphanumeric key and secret), the `.env` lines a Laravel
//! app needs to talk to Herald, and a minimal `config.toml` hosting that app.

use rand::Rng;

/// One app's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `REVERB_APP_ID`: 100000..=999999, like Reverb.
    pub id: String,
    /// `REVERB_APP_KEY`: 20 characters of `[a-z0-9]`.
    pub key: String,
    /// `REVERB_APP_SECRET`: 20 characters of `[a-z0-9]`.
    pub secret: String,
}

/// Where the Laravel app and the browser reach Herald (the `REVERB_HOST`/`PORT`/`SCHEME` lines).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: String,
}

impl Credentials {
    /// New random credentials from the OS-seeded thread RNG.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut token = || -> String {
            (0..20)
                .map(|_| {
                    let i = rng.random_range(0..36u8);
                    char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
                })
                .collect()
        };
        let (key, secret) = (token(), token());
        Self {
            id: rand::rng().random_range(100_000..=999_999u32).to_string(),
            key,
            secret,
        }
    }
}

/// The lines `reverb:install` adds to `.env` (same names, order and quoting), preceded by
/// `BROADCAST_CONNECTION=reverb`, which it sets too.
pub fn env_lines(c: &Credentials, e: &Endpoint) -> String {
    format!(
        "BROADCAST_CONNECTION=reverb\n\
         REVERB_APP_ID={}\n\
         REVERB_APP_KEY={}\n\
         REVERB_APP_SECRET={}\n\
         REVERB_HOST=\"{}\"\n\
         REVERB_PORT={}\n\
         REVERB_SCHEME={}\n\
         \n\
         VITE_REVERB_APP_KEY=\"${{REVERB_APP_KEY}}\"\n\
         VITE_REVERB_HOST=\"${{REVERB_HOST}}\"\n\
         VITE_REVERB_PORT=\"${{REVERB_PORT}}\"\n\
         VITE_REVERB_SCHEME=\"${{REVERB_SCHEME}}\"\n",
        c.id, c.key, c.secret, e.host, e.port, e.scheme
    )
}

/// A config file hosting one app with these credentials, listening on `port`; everything else
/// keeps its default (see the commented sample `config.toml`).
pub fn config_toml(c: &Credentials, port: u16) -> String {
    format!(
        "# Written by `herald install`. Every key not set here has its default; the commented\n\
         # sample config.toml and docs/configuration.md list them all.\n\
         \n\
         [server]\n\
         host = \"0.0.0.0\"\n\
         port = {port}\n\
         \n\
         [[apps]]\n\
         id = \"{}\"\n\
         key = \"{}\"\n\
         secret = \"{}\"\n",
        c.id, c.key, c.secret
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn credentials_have_reverbs_shape_and_the_config_is_valid() {
        let c = Credentials::generate();
        assert_eq!(c.id.len(), 6);
        assert!(c.id.parse::<u32>().is_ok_and(|n| n >= 100_000));
        for s in [&c.key, &c.secret] {
            assert_eq!(s.len(), 20);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
        assert_ne!(c.key, c.secret);
        assert_ne!(c, Credentials::generate());
        let mut config = Config::from_toml(&config_toml(&c, 8080)).unwrap();
        config.validate().unwrap();
        assert_eq!(config.apps[0].secret, c.secret);
        let e = Endpoint {
            host: "localhost".into(),
            port: 8080,
            scheme: "http".into(),
        };
        let vars = crate::config::parse_env_file(&env_lines(&c, &e));
        assert_eq!(vars["REVERB_APP_KEY"], c.key);
        assert_eq!(vars["REVERB_HOST"], "localhost");
    }
}
